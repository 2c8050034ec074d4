#include "app/embedded.hpp"

#include <arpa/inet.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "conf/loader.hpp"

namespace ngstack::app {

namespace {
void put16(std::vector<uint8_t>& b, std::size_t off, uint16_t v) {
  b[off] = static_cast<uint8_t>(v >> 8);
  b[off + 1] = static_cast<uint8_t>(v);
}

uint16_t ipv4_checksum(const uint8_t* h, std::size_t len) {
  uint32_t sum = 0;
  for (std::size_t i = 0; i < len; i += 2) sum += static_cast<uint32_t>(h[i] << 8 | h[i + 1]);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}
}  // namespace

Status write_flow_pcap(const std::string& path, unsigned flows, unsigned frame_len, const uint8_t (&dst)[6]) {
  if (frame_len < 42 || frame_len > 9000) return Error{"frame length must be in [42, 9000]"};
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return Error{"cannot write " + path + ": " + std::strerror(errno)};
  // pcap global header: magic, v2.4, UTC, sigfigs, snaplen, LINKTYPE_ETHERNET.
  const uint32_t gh[6] = {0xa1b2c3d4, 0x00040002, 0, 0, 65535, 1};
  bool ok = std::fwrite(gh, sizeof gh, 1, f) == 1;
  std::vector<uint8_t> pkt(frame_len, 0);
  for (unsigned i = 0; i < flows && ok; ++i) {
    std::fill(pkt.begin(), pkt.end(), 0);
    const uint8_t src[6] = {0x02, 0, 0, 0, 0, 0x01};
    std::memcpy(&pkt[0], dst, 6);
    std::memcpy(&pkt[6], src, 6);
    put16(pkt, 12, 0x0800);
    uint8_t* ip = &pkt[14];
    ip[0] = 0x45;
    put16(pkt, 16, static_cast<uint16_t>(frame_len - 14));
    ip[8] = 64;
    ip[9] = 17;  // UDP
    const uint8_t saddr[4] = {198, 18, static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
    const uint8_t daddr[4] = {198, 19, static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i + 1)};
    std::memcpy(ip + 12, saddr, 4);
    std::memcpy(ip + 16, daddr, 4);
    put16(pkt, 24, ipv4_checksum(ip, 20));
    put16(pkt, 34, static_cast<uint16_t>(1024 + i % 60000));  // UDP source port
    put16(pkt, 36, 9);                                         // discard
    put16(pkt, 38, static_cast<uint16_t>(frame_len - 34));     // UDP length; checksum 0 = none
    const uint32_t rh[4] = {0, i, frame_len, frame_len};
    ok = std::fwrite(rh, sizeof rh, 1, f) == 1 && std::fwrite(pkt.data(), pkt.size(), 1, f) == 1;
  }
  if (std::fclose(f) != 0) ok = false;
  if (!ok) return Error{"cannot write " + path + ": " + std::strerror(errno)};
  return Ok{};
}

// Router mode between two virtual ports: UDP flows from 198.18.x.y (the
// capture) arrive on `source` (198.18.254.1/16) and are routed to
// 198.19.0.0/16 via 198.19.255.2, a neighbour on `sink` (198.19.255.1/30)
// whose MAC is a static ARP entry: net_null answers no ARP.
std::string embedded_config_yaml(const std::string& pcap_path, unsigned main_lcore, unsigned worker_lcore,
                                 const std::string& file_prefix) {
  return "mode: router\n"
         "eal:\n"
         "  main_lcore: " + std::to_string(main_lcore) + "\n"
         "  memory_mb: 512\n"
         "  no_huge: true\n"
         "  file_prefix: " + file_prefix + "\n"
         "ports:\n"
         "  - name: source\n"
         "    device: net_pcap0,rx_pcap=" + pcap_path + ",infinite_rx=1\n"
         "  - name: sink\n"
         "    device: net_null0,no-rx=1\n"
         "workers:\n"
         "  lcores: [" + std::to_string(worker_lcore) + "]\n"
         "router:\n"
         "  interfaces:\n"
         "    - {port: source, addresses: [198.18.254.1/16]}\n"
         "    - {port: sink, addresses: [198.19.255.1/30]}\n"
         "  routes:\n"
         "    - {prefix: 198.19.0.0/16, via: 198.19.255.2}\n"
         "  arp:\n"
         "    static:\n"
         "      - {port: sink, address: 198.19.255.2, mac: \"02:00:00:00:00:03\"}\n";
}

Result<conf::Config> load_embedded(const std::set<unsigned>& cpus, std::string& tmp_dir) {
  if (cpus.size() < 2)
    return Error{"the embedded default needs 2 usable CPUs (one main lcore, one worker); this process may use " +
                 std::to_string(cpus.size())};
  char dir[] = "/tmp/ngstack-embedded-XXXXXX";
  if (!mkdtemp(dir)) return Error{std::string("cannot create a temporary directory: ") + std::strerror(errno)};
  tmp_dir = dir;
  const std::string pcap = tmp_dir + "/flows.pcap";
  // 1024 flows of 64-byte frames on the wire (60 bytes + the FCS the NIC adds).
  // Addressed to the router's `source` port: net_pcap's first port has the
  // fixed MAC 02:70:63:61:70:00 ("pcap" and the port's index), and a router
  // routes only frames sent to its own MAC.
  if (auto st = write_flow_pcap(pcap, 1024, 60, kPcapPort0Mac); !st) return Error{st.error()};
  auto it = cpus.begin();
  const unsigned main_lcore = *it++;
  const unsigned worker_lcore = *it;
  return conf::load_string(
      embedded_config_yaml(pcap, main_lcore, worker_lcore, "ngstack-embedded-" + std::to_string(getpid())),
      "<embedded>");
}

}  // namespace ngstack::app
