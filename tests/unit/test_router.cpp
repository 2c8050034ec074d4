// Router mode's layers (stack/ether, stack/arp resolver, stack/ipv4 ip,
// stack/timer) over real DPDK ports: three net_ring ports whose tx rings the
// test reads back, a real mempool, the Router built from a YAML config, its
// protocols registered on a real netisr, and each worker's own timer wheel.
// A test hands frames to netisr.dispatch() as a worker's rx loop would, then
// runs the rest of the worker loop (drain, poll, timers, tx flush) and reads
// what each port sent, asserting bytes and the named counters. Time for the
// timers is the TSC plus an offset the test advances; every test ends with
// the mempool back to its full count.
//
// Topology (config port: interface address, neighbours):
//   lan  198.18.1.1/24   client 198.18.1.10 (static ARP)
//   wan  198.19.1.1/24   gateway 198.19.1.2 (static) for 10.0.0.0/8;
//                        198.19.1.100.. are on-link and unresolved
//   slim 198.20.1.1/24, MTU 576, gateway 198.20.1.2 (static) for 172.16.0.0/12
#include <gtest/gtest.h>
#include <rte_arp.h>
#include <rte_cycles.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_pause.h>
#include <rte_ring.h>
#include <rte_udp.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "conf/loader.hpp"
#include "dispatch/netisr.hpp"
#include "dispatch/rss.hpp"
#include "stack/flow_hash.hpp"
#include "stack/modes/router.hpp"
#include "tests/lib/eal_env.hpp"

using namespace ngstack;
using namespace ngstack::stack;

namespace {

constexpr int kPorts = 3;
constexpr int kLan = 0, kWan = 1, kSlim = 2;
constexpr unsigned kMaxWorkers = 2;  // one tx queue (and ring) per worker on every port
constexpr unsigned kRing = 1024;
// The workers' wheels: 1 ms ticks, 8 slots. Tests step time to more than one
// revolution past an expiry (kMarginMs), so that they test the router's
// timers and not where the wheel fires within a revolution (see
// TimerWheel.RunEarlyInTheExpiryTickDoesNotDelayTheTimer and
// RouterTest.ArpRetryLeavesOnTimeUnderTheWorkerLoopCadence).
constexpr unsigned kTickUs = 1000, kSlots = 8;
constexpr unsigned kMarginMs = 2 * kSlots * kTickUs / 1000;

constexpr uint32_t ip4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  return uint32_t{a} << 24 | uint32_t{b} << 16 | uint32_t{c} << 8 | d;
}
constexpr uint32_t kLanAddr = ip4(198, 18, 1, 1), kWanAddr = ip4(198, 19, 1, 1), kSlimAddr = ip4(198, 20, 1, 1);
constexpr uint32_t kClient = ip4(198, 18, 1, 10), kGateway = ip4(198, 19, 1, 2), kSlimGateway = ip4(198, 20, 1, 2);
constexpr uint32_t kRemote = ip4(10, 1, 2, 3);        // via kGateway
constexpr uint32_t kSlimRemote = ip4(172, 16, 1, 1);  // via kSlimGateway
constexpr uint32_t kUnresolved = ip4(198, 19, 1, 100);

rte_ether_addr mac(uint8_t a, uint8_t b) { return rte_ether_addr{{0x02, 0, 0, 0, a, b}}; }
rte_ether_addr our_mac(int port) { return mac(1, static_cast<uint8_t>(port)); }
const rte_ether_addr kClientMac = mac(0, 0x10), kGatewayMac = mac(0, 0x02), kSlimGatewayMac = mac(0, 0x22);
const rte_ether_addr kBroadcast{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};

// --- reading frames back --------------------------------------------------------

using Bytes = std::vector<uint8_t>;

uint16_t be16(const Bytes& f, std::size_t off) { return static_cast<uint16_t>(f.at(off) << 8 | f.at(off + 1)); }
uint32_t be32(const Bytes& f, std::size_t off) { return uint32_t{be16(f, off)} << 16 | be16(f, off + 2); }
rte_ether_addr mac_at(const Bytes& f, std::size_t off) {
  rte_ether_addr m;
  std::memcpy(m.addr_bytes, &f.at(off), 6);
  return m;
}
bool same_mac(const rte_ether_addr& a, const rte_ether_addr& b) { return rte_is_same_ether_addr(&a, &b); }
std::string dotted(uint32_t a) {
  return std::to_string(a >> 24) + "." + std::to_string(a >> 16 & 0xff) + "." + std::to_string(a >> 8 & 0xff) + "." +
         std::to_string(a & 0xff);
}

// Offsets in an Ethernet + IPv4 (no options) frame.
constexpr std::size_t kIp = 14, kL4 = 34;
uint8_t ttl(const Bytes& f) { return f.at(kIp + 8); }
uint8_t proto(const Bytes& f) { return f.at(kIp + 9); }
uint16_t ip_id(const Bytes& f) { return be16(f, kIp + 4); }
uint16_t frag_field(const Bytes& f) { return be16(f, kIp + 6); }
uint16_t total_len(const Bytes& f) { return be16(f, kIp + 2); }
uint16_t stored_cksum(const Bytes& f) { return be16(f, kIp + 10); }
uint32_t src_ip(const Bytes& f) { return be32(f, kIp + 12); }
uint32_t dst_ip(const Bytes& f) { return be32(f, kIp + 16); }

// The header checksum recomputed from scratch (RFC 791), as rte_ipv4_cksum
// gives it for the header with its checksum field zeroed.
uint16_t recomputed_cksum(const Bytes& f) {
  rte_ipv4_hdr h;
  std::memcpy(&h, &f.at(kIp), sizeof h);
  h.hdr_checksum = 0;
  return rte_be_to_cpu_16(rte_ipv4_cksum(&h));
}
// What a receiver checks: the sum over the header, checksum included, is 0xffff.
bool header_verifies(const Bytes& f) { return rte_raw_cksum(&f.at(kIp), 20) == 0xffff; }
bool icmp_verifies(const Bytes& f) { return rte_raw_cksum(&f.at(kL4), total_len(f) - 20u) == 0xffff; }

Bytes bytes_of(const rte_mbuf* m) {
  Bytes b(rte_pktmbuf_pkt_len(m));
  const void* p = rte_pktmbuf_read(m, 0, static_cast<uint32_t>(b.size()), b.data());
  if (p != b.data()) std::memcpy(b.data(), p, b.size());
  return b;
}

// --- building frames ------------------------------------------------------------

struct Ip4 {
  uint32_t src = kClient;
  uint32_t dst = kRemote;
  uint8_t proto = IPPROTO_UDP;
  uint8_t ttl = 64;
  uint16_t id = 1;
  uint16_t frag = 0;  // flags and offset (8-byte units), host order
  Bytes payload;      // everything after the IP header
  rte_ether_addr eth_src = kClientMac;
  const rte_ether_addr* eth_dst = nullptr;  // nullptr: the ingress interface's MAC
};

Bytes udp_payload(uint16_t sport, uint16_t dport, std::size_t data_len, uint8_t seed = 0) {
  Bytes b(sizeof(rte_udp_hdr) + data_len);
  auto* u = reinterpret_cast<rte_udp_hdr*>(b.data());
  u->src_port = rte_cpu_to_be_16(sport);
  u->dst_port = rte_cpu_to_be_16(dport);
  u->dgram_len = rte_cpu_to_be_16(static_cast<uint16_t>(b.size()));
  u->dgram_cksum = 0;
  for (std::size_t i = 0; i < data_len; ++i) b[sizeof(rte_udp_hdr) + i] = static_cast<uint8_t>(seed + i * 7);
  return b;
}

Bytes echo_request(uint16_t ident, uint16_t seq, std::size_t data_len) {
  Bytes b(sizeof(rte_icmp_hdr) + data_len);
  auto* icmp = reinterpret_cast<rte_icmp_hdr*>(b.data());
  icmp->icmp_type = RTE_IP_ICMP_ECHO_REQUEST;
  icmp->icmp_code = 0;
  icmp->icmp_ident = rte_cpu_to_be_16(ident);
  icmp->icmp_seq_nb = rte_cpu_to_be_16(seq);
  for (std::size_t i = 0; i < data_len; ++i) b[sizeof(rte_icmp_hdr) + i] = static_cast<uint8_t>(i * 13 + 1);
  icmp->icmp_cksum = 0;
  icmp->icmp_cksum = static_cast<uint16_t>(~rte_raw_cksum(b.data(), b.size()));
  return b;
}

void fill_ipv4(rte_ipv4_hdr* ip, const Ip4& p, std::size_t payload_len) {
  ip->version_ihl = RTE_IPV4_VHL_DEF;
  ip->type_of_service = 0;
  ip->total_length = rte_cpu_to_be_16(static_cast<uint16_t>(sizeof(rte_ipv4_hdr) + payload_len));
  ip->packet_id = rte_cpu_to_be_16(p.id);
  ip->fragment_offset = rte_cpu_to_be_16(p.frag);
  ip->time_to_live = p.ttl;
  ip->next_proto_id = p.proto;
  ip->src_addr = rte_cpu_to_be_32(p.src);
  ip->dst_addr = rte_cpu_to_be_32(p.dst);
  ip->hdr_checksum = 0;
  ip->hdr_checksum = rte_ipv4_cksum(ip);
}

// --- the netisr protocol a test registers above IP (Ip::set_upper) -----------------

struct UpperSink {
  struct Got {
    rte_mbuf* m;
    unsigned worker;
    uint16_t l2_len, l3_len;
  };
  std::vector<Got> got;
  static void handler(void* ctx, unsigned w, uint16_t, rte_mbuf** pkts, uint16_t n) {
    auto& s = *static_cast<UpperSink*>(ctx);
    for (uint16_t i = 0; i < n; ++i)
      s.got.push_back({pkts[i], w, static_cast<uint16_t>(pkts[i]->l2_len), static_cast<uint16_t>(pkts[i]->l3_len)});
  }
};

struct Knobs {
  unsigned workers = 1;
  unsigned reachable_ms = 30000, stale_ms = 60000, retries = 3, retry_ms = 1000, hold_packets = 16;
  unsigned learn_rate = 5000, learn_burst = 1000;
  unsigned reassembly_timeout_ms = 2000;
  bool ip_deferred = false;  // ip: mode deferred, policy flow
  std::string udp_mode;      // set: udp in this dispatch mode (its policy stays cpu)
  bool host = false;         // mode: host (the same stack, forwarding off)
  std::string extra;         // YAML appended at the top level (services:, stack:)
  // Called after register_protocols, before the workers come online.
  std::function<void(dispatch::Netisr&, modes::Router&)> setup;
};

std::string router_yaml(const Knobs& k) {
  const auto n = [](unsigned v) { return std::to_string(v); };
  return std::string(R"(mode: router
eal: {no_huge: true}
ports:
  - {name: lan, device: net_ring_rt_lan}
  - {name: wan, device: net_ring_rt_wan}
  - {name: slim, device: net_ring_rt_slim, mtu: 576}
workers: {lcores: [1, 2]}
router:
  interfaces:
    - {port: lan, addresses: [198.18.1.1/24]}
    - {port: wan, addresses: [198.19.1.1/24]}
    - {port: slim, addresses: [198.20.1.1/24]}
  routes:
    - {prefix: 10.0.0.0/8, via: 198.19.1.2}
    - {prefix: 172.16.0.0/12, via: 198.20.1.2}
  arp:
    reachable_ms: )") +
         n(k.reachable_ms) + "\n    stale_ms: " + n(k.stale_ms) + "\n    retries: " + n(k.retries) +
         "\n    retry_ms: " + n(k.retry_ms) + "\n    hold_packets: " + n(k.hold_packets) +
         "\n    learn_rate: " + n(k.learn_rate) + "\n    learn_burst: " + n(k.learn_burst) + R"(
    max_entries: 64
    static:
      - {port: lan, address: 198.18.1.10, mac: "02:00:00:00:00:10"}
      - {port: wan, address: 198.19.1.2, mac: "02:00:00:00:00:02"}
      - {port: slim, address: 198.20.1.2, mac: "02:00:00:00:00:22"}
  icmp: {rate: 1000, burst: 1000}
  reassembly: {max_datagrams: 64, timeout_ms: )" +
         n(k.reassembly_timeout_ms) + "}\n" + k.extra;
}

class RouterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    spdlog::set_level(spdlog::level::warn);  // no FIB summary per router made
    pool_ = test::pool("rt_pool", 2047, RTE_MBUF_DEFAULT_DATAROOM);
    if (!ids_.empty()) return;
    const char* names[kPorts] = {"rt_lan", "rt_wan", "rt_slim"};
    for (int p = 0; p < kPorts; ++p) {
      const std::string name = names[p];
      rte_ring* rx = rte_ring_create((name + "_rx").c_str(), kRing, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
      ASSERT_NE(rx, nullptr);
      for (unsigned q = 0; q < kMaxWorkers; ++q) {
        tx_rings_[p][q] =
            rte_ring_create((name + "_tx" + std::to_string(q)).c_str(), kRing, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
        ASSERT_NE(tx_rings_[p][q], nullptr);
      }
      const int id = rte_eth_from_rings(name.c_str(), &rx, 1, tx_rings_[p], kMaxWorkers, 0);
      ASSERT_GE(id, 0);
      rte_eth_conf conf{};
      ASSERT_EQ(rte_eth_dev_configure(static_cast<uint16_t>(id), 1, kMaxWorkers, &conf), 0);
      ASSERT_EQ(rte_eth_rx_queue_setup(static_cast<uint16_t>(id), 0, 64, 0, nullptr, pool_), 0);
      for (uint16_t q = 0; q < kMaxWorkers; ++q)
        ASSERT_EQ(rte_eth_tx_queue_setup(static_cast<uint16_t>(id), q, 64, 0, nullptr), 0);
      ASSERT_EQ(rte_eth_dev_start(static_cast<uint16_t>(id)), 0);
      ids_.push_back(static_cast<uint16_t>(id));
    }
  }

  static void TearDownTestSuite() { spdlog::set_level(spdlog::level::info); }

  void make(const Knobs& k) {
    workers_ = k.workers;
    std::string yaml = router_yaml(k);
    if (k.host) {
      yaml.replace(yaml.find("mode: router"), 12, "mode: host");
      yaml.replace(yaml.find("\nrouter:"), 8, "\nhost:");
    }
    auto cfg = conf::load_string(yaml, "router-test.yaml");
    ASSERT_TRUE(cfg.ok()) << cfg.error();
    std::vector<PortInfo> info;
    for (int p = 0; p < kPorts; ++p) info.push_back({ids_[p], our_mac(p), cfg->ports[p].mtu});
    const uint64_t hz = rte_get_tsc_hz();
    auto r = modes::Router::create(*cfg, info, pool_, workers_, hz);
    ASSERT_TRUE(r.ok()) << r.error();
    router_ = std::move(*r);
    std::vector<WorkerIo> io;
    for (unsigned w = 0; w < workers_; ++w) {
      tx_[w] = std::make_unique<TxBuffers>(ids_, static_cast<uint16_t>(w), 32, drops_[w]);
      auto wheel = timer::TimerWheel::create({hz, kTickUs, kSlots, modes::timer_nodes(*cfg)});
      ASSERT_TRUE(wheel.ok()) << wheel.error();
      timers_[w] = std::move(*wheel);
      io.push_back({tx_[w].get(), &drops_[w], &events_[w], timers_[w].get()});
    }
    router_->bind(std::move(io));
    netisr_ = std::make_unique<dispatch::Netisr>(workers_, 64, dispatch::symmetric_rss_key(40));
    auto e = router_->register_protocols(*netisr_, [](dispatch::ProtocolSpec s) { return s; });
    ASSERT_TRUE(e.ok()) << e.error();
    ether_ = *e;
    if (k.setup) k.setup(*netisr_, *router_);
    if (k.ip_deferred || !k.udp_mode.empty()) {
      const int ip = netisr_->find_protocol("ip"), udp = netisr_->find_protocol("udp");
      ASSERT_GE(ip, 0);
      ASSERT_GE(udp, 0);
      // No worker is online for netisr: reconfigure publishes without
      // waiting, and each worker adopts it at its next sync(), as a running
      // worker does at the top of its loop.
      auto st = netisr_->reconfigure([&](dispatch::DispatchConfig& c) {
        if (k.ip_deferred) {
          c.protos[ip].mode = dispatch::Mode::deferred;
          c.protos[ip].policy = dispatch::Policy::flow;
        }
        if (!k.udp_mode.empty()) c.protos[udp].mode = *dispatch::mode_from_name(k.udp_mode);
      });
      ASSERT_TRUE(st.ok()) << st.error();
      for (unsigned w = 0; w < workers_; ++w) ASSERT_TRUE(netisr_->sync(w, stop_));
    }
    for (unsigned w = 0; w < workers_; ++w) router_->worker_online(w);
    online_ = true;
    // Worker 0's first loop announces our addresses (gratuitous ARP).
    pump();
    for (int p = 0; p < kPorts; ++p) announced_[p] = sent(p);
  }

  void TearDown() override {
    if (online_) {
      pump();
      for (unsigned w = 0; w < workers_; ++w) router_->worker_offline(w);
      netisr_->drain_stopped();
      for (unsigned w = 0; w < workers_; ++w) tx_[w]->flush_all();
      router_->shutdown();
      online_ = false;
    }
    for (int p = 0; p < kPorts; ++p) {
      free_all(sent(p));
      free_all(announced_[p]);
    }
    for (auto& g : upper_.got) rte_pktmbuf_free(g.m);
    upper_.got.clear();
    router_.reset();
    netisr_.reset();
    for (auto& t : timers_) t.reset();
    for (auto& t : tx_) t.reset();
    EXPECT_EQ(rte_mempool_avail_count(pool_), pool_->size) << "every mbuf back in the pool";
  }

  // --- time and the worker loop ---------------------------------------------------
  uint64_t now() const { return rte_rdtsc() + offset_; }
  void advance_ms(uint64_t ms) {
    offset_ += ms * rte_get_tsc_hz() / 1000;
    pump();
  }
  // The rest of every worker's loop, until nothing is queued: drain, poll,
  // timers, tx flush.
  void pump() {
    for (int pass = 0; pass < 16; ++pass) {
      unsigned drained = 0;
      for (unsigned w = 0; w < workers_; ++w) {
        drained += netisr_->drain(w, 256);
        router_->poll(w, now());
        timers_[w]->run(now());
        tx_[w]->flush_all();
      }
      if (drained == 0) return;
    }
  }
  // Worker w receives `pkts` on config port `port` as one burst.
  void dispatch(std::vector<rte_mbuf*> pkts, int port = kLan, unsigned w = 0) {
    for (auto* m : pkts) m->port = ids_[port];
    netisr_->dispatch(w, ether_, ids_[port], 0, pkts.data(), static_cast<uint16_t>(pkts.size()));
  }
  void input(std::vector<rte_mbuf*> pkts, int port = kLan, unsigned w = 0) {
    dispatch(std::move(pkts), port, w);
    pump();
  }

  // --- frames ---------------------------------------------------------------------
  rte_mbuf* alloc(std::size_t len) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool_);
    if (!m || !rte_pktmbuf_append(m, static_cast<uint16_t>(len))) std::abort();
    return m;
  }
  rte_mbuf* ipv4(const Ip4& p, int port = kLan) {
    rte_mbuf* m = alloc(sizeof(rte_ether_hdr) + sizeof(rte_ipv4_hdr) + p.payload.size());
    auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
    eth->dst_addr = p.eth_dst ? *p.eth_dst : our_mac(port);
    eth->src_addr = p.eth_src;
    eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
    fill_ipv4(ip, p, p.payload.size());
    std::memcpy(ip + 1, p.payload.data(), p.payload.size());
    m->port = ids_[port];
    return m;
  }
  // A UDP datagram with a correct checksum: `data` from (src, sport) to (dst, dport).
  rte_mbuf* udp_to(uint32_t dst, uint16_t dport, const Bytes& data, uint16_t sport = 1000, uint32_t src = kClient,
                   int port = kLan) {
    Ip4 p;
    p.src = src;
    p.dst = dst;
    p.payload = Bytes(sizeof(rte_udp_hdr));
    p.payload.insert(p.payload.end(), data.begin(), data.end());
    auto* u = reinterpret_cast<rte_udp_hdr*>(p.payload.data());
    u->src_port = rte_cpu_to_be_16(sport);
    u->dst_port = rte_cpu_to_be_16(dport);
    u->dgram_len = rte_cpu_to_be_16(static_cast<uint16_t>(p.payload.size()));
    rte_mbuf* m = ipv4(p, port);
    auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, sizeof(rte_ether_hdr));
    auto* uh = reinterpret_cast<rte_udp_hdr*>(ip + 1);
    uh->dgram_cksum = 0;
    uh->dgram_cksum = rte_ipv4_udptcp_cksum(ip, uh);
    return m;
  }
  static rte_udp_hdr* udp_header(rte_mbuf* m) {
    return rte_pktmbuf_mtod_offset(m, rte_udp_hdr*, sizeof(rte_ether_hdr) + sizeof(rte_ipv4_hdr));
  }
  const services::ServiceView* service(conf::ServiceType t) {
    service_views_ = router_->services();
    for (const auto& v : service_views_)
      if (v.type == t) return &v;
    return nullptr;
  }

  // A UDP datagram of `len` data bytes from the client to `dst`, IP id `id`.
  rte_mbuf* udp(uint32_t dst, uint16_t id, std::size_t len = 32, uint32_t src = kClient) {
    Ip4 p;
    p.src = src;
    p.dst = dst;
    p.id = id;
    p.payload = udp_payload(1000, 2000, len, static_cast<uint8_t>(id));
    return ipv4(p);
  }
  rte_mbuf* arp(uint16_t op, const rte_ether_addr& sha, uint32_t spa, uint32_t tpa, int port,
                const rte_ether_addr& eth_dst, const rte_ether_addr& tha = rte_ether_addr{}) {
    rte_mbuf* m = alloc(60);  // padded to the Ethernet minimum, as on the wire
    std::memset(rte_pktmbuf_mtod(m, void*), 0, 60);
    auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
    eth->dst_addr = eth_dst;
    eth->src_addr = sha;
    eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP);
    auto* a = reinterpret_cast<rte_arp_hdr*>(eth + 1);
    a->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
    a->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
    a->arp_hlen = RTE_ETHER_ADDR_LEN;
    a->arp_plen = 4;
    a->arp_opcode = rte_cpu_to_be_16(op);
    a->arp_data.arp_sha = sha;
    a->arp_data.arp_sip = rte_cpu_to_be_32(spa);
    a->arp_data.arp_tha = tha;
    a->arp_data.arp_tip = rte_cpu_to_be_32(tpa);
    m->port = ids_[port];
    return m;
  }
  // A neighbour on `port` answers our request for `spa`.
  rte_mbuf* arp_reply(const rte_ether_addr& sha, uint32_t spa, int port, uint32_t our_addr) {
    return arp(RTE_ARP_OP_REPLY, sha, spa, our_addr, port, our_mac(port), our_mac(port));
  }
  rte_mbuf* arp_request(const rte_ether_addr& sha, uint32_t spa, int port, uint32_t tpa) {
    return arp(RTE_ARP_OP_REQUEST, sha, spa, tpa, port, kBroadcast);
  }

  // What config port `p` sent on tx queue q (the queue of worker q), in order.
  std::vector<rte_mbuf*> sent(int p, unsigned q) {
    std::vector<rte_mbuf*> out(kRing);
    out.resize(rte_ring_dequeue_burst(tx_rings_[p][q], reinterpret_cast<void**>(out.data()), kRing, nullptr));
    return out;
  }
  std::vector<rte_mbuf*> sent(int p) {
    auto out = sent(p, 0);
    auto more = sent(p, 1);
    out.insert(out.end(), more.begin(), more.end());
    return out;
  }
  // The frames port p sent, as bytes; the mbufs go back to the pool.
  std::vector<Bytes> sent_bytes(int p) { return take_bytes(sent(p)); }
  std::vector<Bytes> sent_bytes(int p, unsigned q) { return take_bytes(sent(p, q)); }
  static std::vector<Bytes> take_bytes(std::vector<rte_mbuf*> v) {
    std::vector<Bytes> out;
    for (auto* m : v) out.push_back(bytes_of(m));
    free_all(std::move(v));
    return out;
  }
  static void free_all(std::vector<rte_mbuf*> v) {
    for (auto* m : v) rte_pktmbuf_free(m);
  }
  bool nothing_sent() {
    bool none = true;
    for (int p = 0; p < kPorts; ++p) {
      auto v = sent(p);
      none &= v.empty();
      free_all(std::move(v));
    }
    return none;
  }

  uint64_t drops(DropReason r) const {
    uint64_t n = 0;
    for (unsigned w = 0; w < workers_; ++w) n += drops_[w].get(r);
    return n;
  }
  uint64_t all_drops() const {
    uint64_t n = 0;
    for (unsigned w = 0; w < workers_; ++w) n += drops_[w].total();
    return n;
  }
  uint64_t events(Event e) const {
    uint64_t n = 0;
    for (unsigned w = 0; w < workers_; ++w) n += events_[w].get(e);
    return n;
  }
  std::vector<services::ServiceView> service_views_;
  const arp::NeighborView* neighbor(uint32_t addr) {
    views_ = router_->neighbors();
    for (const auto& v : views_)
      if (v.addr == addr) return &v;
    return nullptr;
  }
  unsigned learned() {
    unsigned n = 0;
    for (const auto& v : router_->neighbors()) n += v.state != arp::State::permanent;
    return n;
  }

  // An ARP request frame as ngstack sends it from `port` for `target`.
  static void expect_arp_request(const Bytes& f, int port, uint32_t sender, uint32_t target) {
    ASSERT_GE(f.size(), 42u);
    EXPECT_TRUE(same_mac(mac_at(f, 0), kBroadcast));
    EXPECT_TRUE(same_mac(mac_at(f, 6), our_mac(port)));
    EXPECT_EQ(be16(f, 12), RTE_ETHER_TYPE_ARP);
    EXPECT_EQ(be16(f, 14), RTE_ARP_HRD_ETHER);
    EXPECT_EQ(be16(f, 16), RTE_ETHER_TYPE_IPV4);
    EXPECT_EQ(f[18], 6);
    EXPECT_EQ(f[19], 4);
    EXPECT_EQ(be16(f, 20), RTE_ARP_OP_REQUEST);
    EXPECT_TRUE(same_mac(mac_at(f, 22), our_mac(port)));
    EXPECT_EQ(be32(f, 28), sender);
    EXPECT_TRUE(same_mac(mac_at(f, 32), rte_ether_addr{}));
    EXPECT_EQ(be32(f, 38), target);
  }
  // An ICMP error (type, code) from `from` to the client about the datagram
  // with IP id `quoted_id`, sent on lan to the client's MAC.
  static void expect_icmp_error(const Bytes& f, uint8_t type, uint8_t code, uint32_t from, uint16_t quoted_id) {
    ASSERT_GE(f.size(), kL4 + 8 + 20u);
    EXPECT_TRUE(same_mac(mac_at(f, 0), kClientMac));
    EXPECT_TRUE(same_mac(mac_at(f, 6), our_mac(kLan)));
    EXPECT_EQ(be16(f, 12), RTE_ETHER_TYPE_IPV4);
    EXPECT_EQ(proto(f), IPPROTO_ICMP);
    EXPECT_EQ(src_ip(f), from);
    EXPECT_EQ(dst_ip(f), kClient);
    EXPECT_EQ(stored_cksum(f), recomputed_cksum(f));
    EXPECT_EQ(f[kL4], type);
    EXPECT_EQ(f[kL4 + 1], code);
    EXPECT_TRUE(icmp_verifies(f));
    // The quote: the offending datagram's IP header, from the client.
    const std::size_t q = kL4 + 8;
    EXPECT_EQ(f[q] >> 4, 4);
    EXPECT_EQ(be16(f, q + 4), quoted_id);
    EXPECT_EQ(be32(f, q + 12), kClient);
  }

  static inline rte_mempool* pool_ = nullptr;
  static inline rte_ring* tx_rings_[kPorts][kMaxWorkers]{};
  static inline std::vector<uint16_t> ids_;

  unsigned workers_ = 1;
  std::unique_ptr<modes::Router> router_;
  std::unique_ptr<dispatch::Netisr> netisr_;
  dispatch::ProtoId ether_ = 0;
  std::unique_ptr<TxBuffers> tx_[kMaxWorkers];
  std::unique_ptr<timer::TimerWheel> timers_[kMaxWorkers];
  DropCounters drops_[kMaxWorkers];
  EventCounters events_[kMaxWorkers];
  std::atomic<bool> stop_{false};
  bool online_ = false;
  uint64_t offset_ = 0;
  std::vector<rte_mbuf*> announced_[kPorts];
  std::vector<arp::NeighborView> views_;
  UpperSink upper_;
};

// --- start-up -----------------------------------------------------------------------

TEST_F(RouterTest, AnnouncesEachAddressOnceAtStart) {
  ASSERT_NO_FATAL_FAILURE(make({}));
  const uint32_t addrs[kPorts] = {kLanAddr, kWanAddr, kSlimAddr};
  for (int p = 0; p < kPorts; ++p) {
    auto frames = take_bytes(std::move(announced_[p]));
    announced_[p].clear();
    ASSERT_EQ(frames.size(), 1u) << "port " << p;
    expect_arp_request(frames[0], p, addrs[p], addrs[p]);  // RFC 5227 announcement: target = sender
  }
  EXPECT_EQ(events(Event::arp_gratuitous_out), 3u);
  EXPECT_EQ(events(Event::originated), 3u);
  pump();
  EXPECT_TRUE(nothing_sent()) << "announced once";
}

// --- forwarding -----------------------------------------------------------------------

TEST_F(RouterTest, ForwardsToStaticGatewayFastAndSlowPathsAgree) {
  ASSERT_NO_FATAL_FAILURE(make({}));
  // One burst of two identical datagrams: the first resolves the gateway
  // through forward() (the slow path), the second rides the fast path on
  // ARP's memo; a third, alone in its burst, rides the memo kept from the
  // burst before (the neighbour is unchanged).
  Ip4 p;
  p.dst = kRemote;
  p.ttl = 64;
  p.id = 0x4242;
  p.payload = udp_payload(5000, 6000, 100);
  rte_mbuf* ref = ipv4(p);
  const Bytes original = bytes_of(ref);
  rte_pktmbuf_free(ref);
  dispatch({ipv4(p), ipv4(p)});
  EXPECT_EQ(router_->arp().memo_key(0), arp::ArpTable::key(kWan, kGateway)) << "the gateway was memoised";
  pump();
  input({ipv4(p)});
  auto out = sent(kWan);
  ASSERT_EQ(out.size(), 3u);
  std::vector<Bytes> frames;
  for (auto* m : out) {
    EXPECT_EQ(m->l2_len, 14u);
    EXPECT_EQ(m->l3_len, 20u);
    frames.push_back(bytes_of(m));
  }
  free_all(out);
  const Bytes& f = frames[0];
  ASSERT_EQ(f.size(), original.size());
  EXPECT_TRUE(same_mac(mac_at(f, 0), kGatewayMac));
  EXPECT_TRUE(same_mac(mac_at(f, 6), our_mac(kWan)));
  EXPECT_EQ(be16(f, 12), RTE_ETHER_TYPE_IPV4);
  EXPECT_EQ(ttl(f), 63);
  EXPECT_EQ(stored_cksum(f), recomputed_cksum(f)) << "incremental update equals a full recomputation";
  EXPECT_TRUE(header_verifies(f));
  // Everything but the MACs, TTL and checksum is as it came in.
  Bytes expect = original;
  std::memcpy(expect.data(), f.data(), 12);
  expect[kIp + 8] = 63;
  expect[kIp + 10] = f[kIp + 10];
  expect[kIp + 11] = f[kIp + 11];
  EXPECT_EQ(f, expect);
  EXPECT_EQ(frames[1], frames[0]) << "the fast path writes the same bytes as the slow path";
  EXPECT_EQ(frames[2], frames[0]);
  EXPECT_EQ(events(Event::ipv4_forwarded), 3u);
  EXPECT_EQ(all_drops(), 0u);
  EXPECT_TRUE(nothing_sent());
  // The memo outlives a burst only while its neighbour is unchanged: the
  // gateway's new MAC is used from the next burst on.
  const rte_ether_addr moved = mac(0, 0x42);
  ASSERT_TRUE(router_->arp_add("wan", kGateway, moved));
  input({ipv4(p)});
  auto again = sent_bytes(kWan);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_TRUE(same_mac(mac_at(again[0], 0), moved)) << "a changed neighbour is not served from the memo";
}

// RFC 1624 §3: updating the checksum as HC + 0x0100 (RFC 1141) yields 0xffff
// where the correct checksum is 0x0000; RFC 1624 eqn. 3, and Linux's
// ip_decrease_ttl, give 0x0000.
TEST_F(RouterTest, TtlDecrementChecksumWhenTheResultIsZero) {
  ASSERT_NO_FATAL_FAILURE(make({}));
  // Find the IP id for which the forwarded header's checksum is 0x0000.
  Ip4 p;
  p.dst = kRemote;
  p.ttl = 64;
  p.payload = udp_payload(5000, 6000, 10);
  bool found = false;
  for (uint32_t id = 0; id <= 0xffff && !found; ++id) {
    rte_ipv4_hdr h{};
    Ip4 q = p;
    q.id = static_cast<uint16_t>(id);
    q.ttl = 63;
    fill_ipv4(&h, q, q.payload.size());
    if (h.hdr_checksum == 0) p.id = static_cast<uint16_t>(id), found = true;
  }
  ASSERT_TRUE(found);
  input({ipv4(p), ipv4(p)});  // the slow path, then the fast path
  auto frames = sent_bytes(kWan);
  ASSERT_EQ(frames.size(), 2u);
  for (const auto& f : frames) {
    EXPECT_EQ(ttl(f), 63);
    EXPECT_TRUE(header_verifies(f));
    EXPECT_EQ(recomputed_cksum(f), 0x0000);
    EXPECT_EQ(stored_cksum(f), 0x0000) << "the incremental update left 0xffff (RFC 1141), not 0x0000 (RFC 1624)";
  }
}

TEST_F(RouterTest, LinkBroadcastCarryingUnicastIpIsNotForwarded) {
  ASSERT_NO_FATAL_FAILURE(make({}));
  Ip4 p;
  p.dst = kRemote;
  p.eth_dst = &kBroadcast;
  p.payload = udp_payload(1, 2, 8);
  input({ipv4(p)});
  EXPECT_EQ(drops(DropReason::ipv4_link_broadcast), 1u);
  EXPECT_EQ(events(Event::icmp_errors_out), 0u) << "no ICMP error about a link-layer broadcast";
  EXPECT_TRUE(nothing_sent());
}

TEST_F(RouterTest, TtlOneGetsTimeExceeded) {
  ASSERT_NO_FATAL_FAILURE(make({}));
  Ip4 p;
  p.dst = kRemote;
  p.ttl = 1;
  p.id = 0x1111;
  p.payload = udp_payload(1, 2, 8);
  input({ipv4(p)});
  EXPECT_EQ(drops(DropReason::ipv4_ttl_exceeded), 1u);
  EXPECT_TRUE(sent(kWan).empty());
  auto lan = sent_bytes(kLan);
  ASSERT_EQ(lan.size(), 1u);
  expect_icmp_error(lan[0], 11, 0, kLanAddr, 0x1111);
  EXPECT_EQ(lan[0][kL4 + 8 + 8], 1) << "the quoted header has the TTL it arrived with";
  EXPECT_EQ(events(Event::icmp_errors_out), 1u);
  EXPECT_EQ(events(Event::ipv4_forwarded), 0u);
}

TEST_F(RouterTest, DontFragmentTooBigGetsFragNeededWithNextHopMtu) {
  ASSERT_NO_FATAL_FAILURE(make({}));
  Ip4 p;
  p.dst = kSlimRemote;  // out of slim, MTU 576
  p.id = 0x2222;
  p.frag = RTE_IPV4_HDR_DF_FLAG;
  p.payload = udp_payload(1, 2, 1000 - 28);
  input({ipv4(p)});
  EXPECT_EQ(drops(DropReason::ipv4_frag_needed), 1u);
  EXPECT_TRUE(sent(kSlim).empty());
  auto lan = sent_bytes(kLan);
  ASSERT_EQ(lan.size(), 1u);
  expect_icmp_error(lan[0], 3, 4, kLanAddr, 0x2222);
  EXPECT_EQ(be16(lan[0], kL4 + 4), 0) << "unused";
  EXPECT_EQ(be16(lan[0], kL4 + 6), 576) << "RFC 1191: the next-hop MTU";
  EXPECT_LE(total_len(lan[0]), 576u) << "RFC 1812 §4.3.2.3";
}

TEST_F(RouterTest, TooBigWithoutDontFragmentIsFragmented) {
  ASSERT_NO_FATAL_FAILURE(make({}));
  // A whole datagram of 1000 bytes, and a fragment of a larger one (offset
  // 800, more fragments follow) of 1000 bytes, out of slim (MTU 576): the
  // pieces carry (576 - 20) & ~7 = 552 payload bytes at most.
  struct Case {
    uint16_t frag;  // of the input
    uint16_t id;
  };
  for (const Case c : {Case{0, 0x3333}, Case{static_cast<uint16_t>(RTE_IPV4_HDR_MF_FLAG | 100), 0x3334}}) {
    SCOPED_TRACE("input fragment field " + std::to_string(c.frag));
    Ip4 p;
    p.dst = kSlimRemote;
    p.id = c.id;
    p.ttl = 30;
    p.frag = c.frag;
    p.payload = udp_payload(7, 9, 980 - 8);
    const Bytes payload = p.payload;
    const uint64_t fwd_before = events(Event::ipv4_forwarded), out_before = events(Event::ipv4_fragments_out);
    input({ipv4(p)});
    auto frames = sent_bytes(kSlim);
    ASSERT_EQ(frames.size(), 2u);
    const uint16_t base = c.frag & RTE_IPV4_HDR_OFFSET_MASK;
    const bool mf_in = c.frag & RTE_IPV4_HDR_MF_FLAG;
    const uint16_t sizes[2] = {552, 980 - 552};
    Bytes joined;
    for (int i = 0; i < 2; ++i) {
      const Bytes& f = frames[static_cast<std::size_t>(i)];
      SCOPED_TRACE("fragment " + std::to_string(i));
      EXPECT_TRUE(same_mac(mac_at(f, 0), kSlimGatewayMac));
      EXPECT_TRUE(same_mac(mac_at(f, 6), our_mac(kSlim)));
      EXPECT_EQ(be16(f, 12), RTE_ETHER_TYPE_IPV4);
      EXPECT_EQ(total_len(f), 20u + sizes[i]);
      EXPECT_EQ(f.size(), 14u + 20u + sizes[i]);
      EXPECT_LE(total_len(f), 576u);
      EXPECT_EQ(ip_id(f), c.id);
      EXPECT_EQ(ttl(f), 29) << "decremented once, before fragmenting";
      EXPECT_EQ(dst_ip(f), kSlimRemote);
      EXPECT_EQ(src_ip(f), kClient);
      EXPECT_EQ(frag_field(f) & RTE_IPV4_HDR_OFFSET_MASK, base + (i == 0 ? 0 : 552 / 8));
      EXPECT_EQ((frag_field(f) & RTE_IPV4_HDR_MF_FLAG) != 0, i == 0 || mf_in);
      EXPECT_EQ(frag_field(f) & RTE_IPV4_HDR_DF_FLAG, 0);
      EXPECT_EQ(stored_cksum(f), recomputed_cksum(f));
      joined.insert(joined.end(), f.begin() + kL4, f.end());
    }
    EXPECT_EQ(joined, payload) << "the fragments carry the payload, in order";
    EXPECT_EQ(events(Event::ipv4_forwarded) - fwd_before, 1u);
    EXPECT_EQ(events(Event::ipv4_fragments_out) - out_before, 2u);
  }
  EXPECT_EQ(all_drops(), 0u);
  // rx 2 + originated (3 announcements + 4 fragments) == tx 7 + consumed 2.
  EXPECT_EQ(events(Event::consumed), 2u);
  EXPECT_EQ(events(Event::originated), 3u + 4u);
}

// --- ARP resolution --------------------------------------------------------------------

TEST_F(RouterTest, UnresolvedNextHopHoldsThenReplyReleasesInOrder) {
  ASSERT_NO_FATAL_FAILURE(make({}));
  const rte_ether_addr host = mac(0, 0x64);
  input({udp(kUnresolved, 1)});
  auto wan = sent_bytes(kWan);
  ASSERT_EQ(wan.size(), 1u) << "one ARP request";
  expect_arp_request(wan[0], kWan, kWanAddr, kUnresolved);
  EXPECT_EQ(events(Event::arp_held), 1u);
  EXPECT_EQ(events(Event::arp_requests_out), 1u);
  input({udp(kUnresolved, 2)});
  EXPECT_TRUE(sent(kWan).empty()) << "the second packet waits too, with no second request";
  EXPECT_EQ(events(Event::arp_held), 2u);
  EXPECT_EQ(events(Event::arp_requests_out), 1u);
  ASSERT_NE(neighbor(kUnresolved), nullptr);
  EXPECT_EQ(neighbor(kUnresolved)->state, arp::State::incomplete);
  EXPECT_EQ(neighbor(kUnresolved)->held, 2u);
  EXPECT_EQ(router_->arp().held(), 2u);

  input({udp(kUnresolved, 3)});
  EXPECT_EQ(neighbor(kUnresolved)->held, 3u);
  EXPECT_TRUE(sent(kWan).empty());

  // The reply releases the held ones, in order, before anything later.
  input({arp_reply(host, kUnresolved, kWan, kWanAddr)}, kWan);
  input({udp(kUnresolved, 4)});
  wan = sent_bytes(kWan);
  ASSERT_EQ(wan.size(), 4u);
  for (uint16_t i = 0; i < 4; ++i) {
    EXPECT_EQ(ip_id(wan[i]), i + 1) << "in order: the held ones before later ones";
    EXPECT_TRUE(same_mac(mac_at(wan[i], 0), host));
    EXPECT_TRUE(same_mac(mac_at(wan[i], 6), our_mac(kWan)));
    EXPECT_EQ(ttl(wan[i]), 63);
    EXPECT_EQ(stored_cksum(wan[i]), recomputed_cksum(wan[i]));
  }
  EXPECT_EQ(events(Event::arp_released), 3u);
  EXPECT_EQ(events(Event::arp_replies_in), 1u);
  EXPECT_EQ(events(Event::consumed), 1u) << "the reply";
  EXPECT_EQ(neighbor(kUnresolved)->state, arp::State::reachable);
  EXPECT_EQ(neighbor(kUnresolved)->held, 0u);
  EXPECT_EQ(all_drops(), 0u);
  EXPECT_TRUE(nothing_sent());
}

TEST_F(RouterTest, HoldQueueOverflowIsArpHoldFull) {
  Knobs k;
  k.hold_packets = 4;
  ASSERT_NO_FATAL_FAILURE(make(k));
  std::vector<rte_mbuf*> burst;
  for (uint16_t i = 1; i <= 6; ++i) burst.push_back(udp(kUnresolved, i));
  input(burst);
  EXPECT_EQ(events(Event::arp_held), 4u);
  EXPECT_EQ(drops(DropReason::arp_hold_full), 2u);
  auto wan = sent_bytes(kWan);
  ASSERT_EQ(wan.size(), 1u) << "one request for the six";
  expect_arp_request(wan[0], kWan, kWanAddr, kUnresolved);
  input({arp_reply(mac(0, 0x64), kUnresolved, kWan, kWanAddr)}, kWan);
  wan = sent_bytes(kWan);
  ASSERT_EQ(wan.size(), 4u);
  for (uint16_t i = 0; i < 4; ++i) EXPECT_EQ(ip_id(wan[i]), i + 1) << "the first four, in order";
}

TEST_F(RouterTest, ResolutionFailureRetriesThenHostUnreachable) {
  Knobs k;
  k.retries = 2;
  k.retry_ms = 10;
  ASSERT_NO_FATAL_FAILURE(make(k));
  input({udp(kUnresolved, 0x51), udp(kUnresolved, 0x52)});
  auto wan = sent_bytes(kWan);
  ASSERT_EQ(wan.size(), 1u);
  expect_arp_request(wan[0], kWan, kWanAddr, kUnresolved);
  EXPECT_EQ(events(Event::arp_held), 2u);

  advance_ms(2);  // before retry_ms
  EXPECT_TRUE(sent(kWan).empty()) << "no retry before retry_ms";
  advance_ms(8 + kMarginMs);
  wan = sent_bytes(kWan);
  ASSERT_EQ(wan.size(), 1u) << "the second (last) request";
  expect_arp_request(wan[0], kWan, kWanAddr, kUnresolved);
  EXPECT_EQ(events(Event::arp_requests_out), 2u);
  EXPECT_TRUE(sent(kLan).empty()) << "still waiting";
  EXPECT_EQ(router_->arp().held(), 2u);

  advance_ms(10 + kMarginMs);
  EXPECT_TRUE(sent(kWan).empty()) << "retries: 2 requests in all";
  auto lan = sent_bytes(kLan);
  ASSERT_EQ(lan.size(), 2u) << "host unreachable about each held packet";
  expect_icmp_error(lan[0], 3, 1, kLanAddr, 0x51);
  expect_icmp_error(lan[1], 3, 1, kLanAddr, 0x52);
  EXPECT_EQ(drops(DropReason::arp_unresolved), 2u);
  EXPECT_EQ(events(Event::icmp_errors_out), 2u);
  EXPECT_EQ(neighbor(kUnresolved), nullptr) << "the failed entry is removed";
  EXPECT_EQ(router_->arp().held(), 0u);

  // A new packet starts a new resolution. (Handled and flushed without
  // running the wheel: the handler stamps the new entry with the TSC, which
  // the test's advanced timer clock has left behind.)
  dispatch({udp(kUnresolved, 0x53)});
  tx_[0]->flush_all();
  EXPECT_EQ(neighbor(kUnresolved)->state, arp::State::incomplete);
  wan = sent_bytes(kWan);
  ASSERT_EQ(wan.size(), 1u);
  expect_arp_request(wan[0], kWan, kWanAddr, kUnresolved);
}

// The worker loop runs its wheel every iteration (app/worker.cpp), many
// times per tick. With the wheel the application builds (1 ms ticks, 1024
// slots) and a loop iteration every 100 us, the retry must leave within a
// tick of its time (retry_ms after the first request).
TEST_F(RouterTest, ArpRetryLeavesOnTimeUnderTheWorkerLoopCadence) {
  Knobs k;
  k.retries = 2;
  k.retry_ms = 10;
  ASSERT_NO_FATAL_FAILURE(make(k));
  const uint64_t hz = rte_get_tsc_hz();
  auto wheel = timer::TimerWheel::create({hz, 1000, 1024, 256});
  ASSERT_TRUE(wheel.ok());
  timers_[0] = std::move(*wheel);
  router_->bind({{tx_[0].get(), &drops_[0], &events_[0], timers_[0].get()}});
  timers_[0]->run(now());
  input({udp(kUnresolved, 1)});
  free_all(sent(kWan));
  const int32_t slot = router_->arp().table().find(kWan, kUnresolved);
  ASSERT_NE(slot, RcuTable::kNone);
  const uint64_t due = router_->arp().table().at(slot).next_probe_tsc.load();  // the retry's time
  // The loop, on a clock of its own: an iteration every tenth of a tick,
  // in phase with the ticks, for up to 2 s.
  const uint64_t tick = timers_[0]->tick_cycles(), step = tick / 10;
  uint64_t t = rte_rdtsc() / tick * tick;
  while (events(Event::arp_requests_out) < 2 && t < due + 2 * hz) {
    t += step;
    router_->poll(0, t);
    timers_[0]->run(t);
    tx_[0]->flush_all();
  }
  ASSERT_EQ(events(Event::arp_requests_out), 2u);
  auto wan = sent_bytes(kWan);
  ASSERT_EQ(wan.size(), 1u);
  expect_arp_request(wan[0], kWan, kWanAddr, kUnresolved);
  EXPECT_GE(t, due) << "not before retry_ms";
  EXPECT_LE(t, due + tick) << "the retry left "
                           << static_cast<double>(t - due) * 1000.0 / static_cast<double>(hz)
                           << " ms after it was due (retry_ms 10, tick 1 ms)";
}

TEST_F(RouterTest, LearnedNeighbourAgesReachableStaleRemoved) {
  Knobs k;
  k.reachable_ms = 100;
  k.stale_ms = 100;
  k.retry_ms = 10;
  ASSERT_NO_FATAL_FAILURE(make(k));
  const uint32_t host = ip4(198, 19, 1, 50);
  const rte_ether_addr hmac = mac(0, 0x50);
  input({arp_request(hmac, host, kWan, kWanAddr)}, kWan);
  auto wan = sent_bytes(kWan);
  ASSERT_EQ(wan.size(), 1u) << "the request is answered";
  ASSERT_NE(neighbor(host), nullptr) << "the requester is learned (RFC 826)";
  EXPECT_EQ(neighbor(host)->state, arp::State::reachable);
  EXPECT_TRUE(same_mac(neighbor(host)->mac, hmac));

  advance_ms(100 - kMarginMs);
  EXPECT_EQ(neighbor(host)->state, arp::State::reachable) << "before reachable_ms";
  advance_ms(2 * kMarginMs);
  ASSERT_NE(neighbor(host), nullptr);
  EXPECT_EQ(neighbor(host)->state, arp::State::stale) << "after reachable_ms";

  // A stale neighbour is still used, and asked again once (per retry_ms).
  input({udp(host, 7), udp(host, 8)});
  wan = sent_bytes(kWan);
  ASSERT_EQ(wan.size(), 3u);
  expect_arp_request(wan[0], kWan, kWanAddr, host);
  EXPECT_EQ(ip_id(wan[1]), 7);
  EXPECT_TRUE(same_mac(mac_at(wan[1], 0), hmac));
  EXPECT_EQ(ip_id(wan[2]), 8);
  EXPECT_EQ(neighbor(host)->state, arp::State::stale) << "a use is no confirmation";

  advance_ms(100 - 2 * kMarginMs);
  ASSERT_NE(neighbor(host), nullptr) << "before reachable_ms + stale_ms";
  advance_ms(2 * kMarginMs);
  EXPECT_EQ(neighbor(host), nullptr) << "removed after stale_ms more";
  ASSERT_NE(neighbor(kGateway), nullptr) << "permanent entries never age";
  EXPECT_EQ(neighbor(kGateway)->state, arp::State::permanent);
}

// Packets made or answered here draw no ICMP errors (ip.hpp: "output ...
// no ICMP errors about them"): an echo reply to an on-link host that never
// answers ARP is dropped, not answered with host unreachable sent to
// ourselves, which would need ARP for our own address.
TEST_F(RouterTest, EchoReplyToUnresolvableHostDrawsNoIcmpError) {
  Knobs k;
  k.retries = 1;
  k.retry_ms = 10;
  ASSERT_NO_FATAL_FAILURE(make(k));
  const uint32_t ghost = ip4(198, 18, 1, 77);  // pings, but never answers ARP
  Ip4 ping;
  ping.src = ghost;
  ping.dst = kLanAddr;
  ping.proto = IPPROTO_ICMP;
  ping.eth_src = mac(4, 1);
  ping.payload = echo_request(5, 5, 8);
  input({ipv4(ping)});
  auto lan = sent_bytes(kLan);
  ASSERT_EQ(lan.size(), 1u);
  expect_arp_request(lan[0], kLan, kLanAddr, ghost);
  EXPECT_EQ(events(Event::arp_held), 1u) << "the echo reply waits for the ghost's MAC";

  advance_ms(10 + kMarginMs);
  EXPECT_EQ(drops(DropReason::arp_unresolved), 1u) << "the echo reply";
  EXPECT_EQ(events(Event::icmp_errors_out), 0u) << "an ICMP error about our own echo reply";
  EXPECT_EQ(neighbor(kLanAddr), nullptr) << "an ARP entry for our own address";
  lan = sent_bytes(kLan);
  EXPECT_TRUE(lan.empty()) << lan.size() << " frame(s) sent on lan, the first an ARP request for "
                           << (lan.empty() || lan[0].size() < 42 ? "?" : dotted(be32(lan[0], 38))) << " (ours)";
  EXPECT_EQ(events(Event::arp_gratuitous_out), 3u) << "only the start-up announcements";
}

// ARP's one-entry memo is valid within one handler call (resolver.hpp); a
// timer callback is no handler call, and must not send to a MAC the memo kept
// from the worker's last IPv4 burst after the neighbour changed it.
TEST_F(RouterTest, HostUnreachableFromTimerGoesToTheNeighboursCurrentMac) {
  Knobs k;
  k.retries = 1;
  k.retry_ms = 10;
  ASSERT_NO_FATAL_FAILURE(make(k));
  const uint32_t c = ip4(198, 18, 1, 30);
  const rte_ether_addr old_mac = mac(3, 1), new_mac = mac(3, 2);
  input({arp_request(old_mac, c, kLan, kLanAddr)});  // c is learned
  free_all(sent(kLan));
  // One burst from c: a datagram to an unresolved next hop (held), and a ping
  // of ours, whose reply resolves c (and leaves c in the memo).
  Ip4 ping;
  ping.src = c;
  ping.dst = kLanAddr;
  ping.proto = IPPROTO_ICMP;
  ping.eth_src = old_mac;
  ping.payload = echo_request(1, 1, 8);
  rte_mbuf* held = udp(kUnresolved, 0x71, 16, c);
  input({held, ipv4(ping)});
  auto lan = sent_bytes(kLan);
  ASSERT_EQ(lan.size(), 1u);
  EXPECT_TRUE(same_mac(mac_at(lan[0], 0), old_mac));
  EXPECT_EQ(events(Event::arp_held), 1u);
  free_all(sent(kWan));
  // c's interface changes: it asks for our address from its new MAC.
  input({arp_request(new_mac, c, kLan, kLanAddr)});
  lan = sent_bytes(kLan);
  ASSERT_EQ(lan.size(), 1u);
  EXPECT_TRUE(same_mac(mac_at(lan[0], 0), new_mac)) << "answered at the new MAC";
  ASSERT_NE(neighbor(c), nullptr);
  EXPECT_TRUE(same_mac(neighbor(c)->mac, new_mac));
  // Resolution of the next hop fails on the timer: host unreachable to c.
  advance_ms(10 + kMarginMs);
  EXPECT_EQ(drops(DropReason::arp_unresolved), 1u);
  lan = sent_bytes(kLan);
  ASSERT_EQ(lan.size(), 1u);
  EXPECT_EQ(dst_ip(lan[0]), c);
  EXPECT_TRUE(same_mac(mac_at(lan[0], 0), new_mac))
      << "host unreachable sent to the old MAC, kept by the memo of the worker's last IPv4 burst: "
      << (same_mac(mac_at(lan[0], 0), old_mac) ? "yes" : "no");
}

TEST_F(RouterTest, LearnRateLimitsRequestersButAnswersAll) {
  Knobs k;
  k.learn_rate = 1;  // one per second: nothing refills during the test
  k.learn_burst = 4;
  ASSERT_NO_FATAL_FAILURE(make(k));
  std::vector<rte_mbuf*> burst;
  for (uint8_t i = 0; i < 10; ++i) burst.push_back(arp_request(mac(2, i), ip4(198, 18, 1, 20 + i), kLan, kLanAddr));
  input(burst);
  auto lan = sent_bytes(kLan);
  ASSERT_EQ(lan.size(), 10u) << "every request is answered";
  for (uint8_t i = 0; i < 10; ++i) {
    const Bytes& f = lan[i];
    ASSERT_GE(f.size(), 42u);
    EXPECT_TRUE(same_mac(mac_at(f, 0), mac(2, i)));
    EXPECT_TRUE(same_mac(mac_at(f, 6), our_mac(kLan)));
    EXPECT_EQ(be16(f, 20), RTE_ARP_OP_REPLY);
    EXPECT_TRUE(same_mac(mac_at(f, 22), our_mac(kLan)));
    EXPECT_EQ(be32(f, 28), kLanAddr);
    EXPECT_TRUE(same_mac(mac_at(f, 32), mac(2, i)));
    EXPECT_EQ(be32(f, 38), ip4(198, 18, 1, 20 + i));
  }
  EXPECT_EQ(events(Event::arp_replies_out), 10u);
  EXPECT_EQ(events(Event::arp_learn_limited), 6u);
  EXPECT_EQ(learned(), 4u) << "only the burst is learned";
  for (uint8_t i = 0; i < 4; ++i) EXPECT_NE(neighbor(ip4(198, 18, 1, 20 + i)), nullptr);
  EXPECT_EQ(all_drops(), 0u);
}

TEST_F(RouterTest, LearnRateLimitsNewNextHops) {
  Knobs k;
  k.learn_rate = 1;
  k.learn_burst = 4;
  ASSERT_NO_FATAL_FAILURE(make(k));
  std::vector<rte_mbuf*> burst;
  for (uint8_t i = 0; i < 10; ++i) burst.push_back(udp(ip4(198, 19, 1, 100 + i), i));
  input(burst);
  auto wan = sent_bytes(kWan);
  ASSERT_EQ(wan.size(), 4u) << "requests for the first four next hops only";
  for (uint8_t i = 0; i < 4; ++i) expect_arp_request(wan[i], kWan, kWanAddr, ip4(198, 19, 1, 100 + i));
  EXPECT_EQ(events(Event::arp_held), 4u);
  EXPECT_EQ(drops(DropReason::arp_learn_limited), 6u);
  EXPECT_EQ(learned(), 4u);
  // A known next hop does not need the budget.
  input({udp(ip4(198, 19, 1, 100), 20), udp(kRemote, 21)});
  EXPECT_EQ(events(Event::arp_held), 5u);
  EXPECT_EQ(drops(DropReason::arp_learn_limited), 6u);
  EXPECT_EQ(sent_bytes(kWan).size(), 1u) << "the datagram via the static gateway";
}

// --- local delivery ------------------------------------------------------------------------

TEST_F(RouterTest, AnswersEchoRequest) {
  ASSERT_NO_FATAL_FAILURE(make({}));
  for (uint32_t ours : {kLanAddr, kWanAddr}) {
    SCOPED_TRACE("echo to " + std::to_string(ours));
    Ip4 p;
    p.dst = ours;
    p.proto = IPPROTO_ICMP;
    p.ttl = 17;
    p.id = 0x77;
    p.payload = echo_request(0xbeef, 3, 56);
    const Bytes icmp_in = p.payload;
    input({ipv4(p)});
    auto lan = sent_bytes(kLan);
    ASSERT_EQ(lan.size(), 1u);
    const Bytes& f = lan[0];
    EXPECT_TRUE(same_mac(mac_at(f, 0), kClientMac));
    EXPECT_TRUE(same_mac(mac_at(f, 6), our_mac(kLan)));
    EXPECT_EQ(src_ip(f), ours) << "from the address that was pinged";
    EXPECT_EQ(dst_ip(f), kClient);
    EXPECT_EQ(ttl(f), 64);
    EXPECT_EQ(total_len(f), 20u + icmp_in.size());
    EXPECT_EQ(stored_cksum(f), recomputed_cksum(f));
    EXPECT_EQ(f[kL4], RTE_IP_ICMP_ECHO_REPLY);
    EXPECT_EQ(f[kL4 + 1], 0);
    EXPECT_TRUE(icmp_verifies(f));
    EXPECT_TRUE(std::equal(icmp_in.begin() + 4, icmp_in.end(), f.begin() + kL4 + 4))
        << "identifier, sequence and data echoed";
  }
  EXPECT_EQ(events(Event::icmp_echo_replies), 2u);
  EXPECT_EQ(events(Event::ipv4_local), 2u);
  EXPECT_EQ(all_drops(), 0u);
  EXPECT_TRUE(nothing_sent());
}

TEST_F(RouterTest, UdpToAnUnboundPortGetsPortUnreachable) {
  ASSERT_NO_FATAL_FAILURE(make({}));
  input({udp(kLanAddr, 0x99, 20)});
  auto lan = sent_bytes(kLan);
  ASSERT_EQ(lan.size(), 1u);
  expect_icmp_error(lan[0], 3, 3, kLanAddr, 0x99);
  EXPECT_EQ(total_len(lan[0]), 20u + 8u + 20u + 8u + 20u) << "quotes the whole small datagram";
  EXPECT_EQ(drops(DropReason::udp_no_socket), 1u) << "udp has no socket bound to the port";
  // Another protocol: protocol unreachable.
  Ip4 p;
  p.dst = kLanAddr;
  p.proto = 47;
  p.id = 0x9a;
  p.payload = Bytes(24, 0xab);
  input({ipv4(p)});
  lan = sent_bytes(kLan);
  ASSERT_EQ(lan.size(), 1u);
  expect_icmp_error(lan[0], 3, 2, kLanAddr, 0x9a);
  EXPECT_EQ(drops(DropReason::local_no_service), 1u);
  EXPECT_EQ(events(Event::ipv4_local), 2u);
}

TEST_F(RouterTest, UdpToUsGoesToTheRegisteredUpperProtocol) {
  Knobs k;
  k.setup = [this](dispatch::Netisr& netisr, modes::Router& r) {
    dispatch::ProtocolSpec s;
    s.name = "udp-sink";  // in place of the stack's own udp
    s.handler = UpperSink::handler;
    s.ctx = &upper_;
    s.policy = dispatch::Policy::source;
    s.mode = dispatch::Mode::direct;
    auto id = netisr.register_protocol(s);
    ASSERT_TRUE(id.ok()) << id.error();
    r.ip().set_upper(&netisr, IPPROTO_UDP, *id);
  };
  ASSERT_NO_FATAL_FAILURE(make(k));
  rte_mbuf* m = udp(kLanAddr, 0x99, 20);
  const Bytes in = bytes_of(m);
  input({m});
  ASSERT_EQ(upper_.got.size(), 1u);
  EXPECT_EQ(upper_.got[0].m, m) << "the datagram itself, not a copy";
  EXPECT_EQ(upper_.got[0].l2_len, 14u);
  EXPECT_EQ(upper_.got[0].l3_len, 20u);
  EXPECT_EQ(upper_.got[0].worker, 0u);
  EXPECT_EQ(bytes_of(m), in) << "delivered untouched";
  EXPECT_TRUE(nothing_sent()) << "no ICMP error";
  EXPECT_EQ(events(Event::icmp_errors_out), 0u);
  EXPECT_EQ(events(Event::ipv4_local), 1u);
  EXPECT_EQ(all_drops(), 0u);

  // A fragmented datagram is delivered once, reassembled.
  Ip4 p;
  p.dst = kLanAddr;
  p.id = 0x500;
  const Bytes whole = udp_payload(53, 4000, 600 - 8);
  Ip4 a = p, b = p;
  a.frag = RTE_IPV4_HDR_MF_FLAG;
  a.payload.assign(whole.begin(), whole.begin() + 304);
  b.frag = 304 / 8;
  b.payload.assign(whole.begin() + 304, whole.end());
  input({ipv4(a)});
  EXPECT_EQ(upper_.got.size(), 1u) << "not before the datagram is whole";
  input({ipv4(b)});
  ASSERT_EQ(upper_.got.size(), 2u);
  const auto& g = upper_.got[1];
  EXPECT_EQ(g.l2_len, 14u);
  EXPECT_EQ(g.l3_len, 20u);
  const Bytes got = bytes_of(g.m);
  ASSERT_EQ(got.size(), 14u + 20u + 600u);
  EXPECT_EQ(total_len(got), 620u);
  EXPECT_EQ(frag_field(got) & (RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK), 0);
  EXPECT_TRUE(std::equal(whole.begin(), whole.end(), got.begin() + kL4));
  EXPECT_EQ(events(Event::ipv4_reassembled), 1u);
  EXPECT_TRUE(nothing_sent());
}

// --- reassembly --------------------------------------------------------------------------

TEST_F(RouterTest, ReassemblesFragmentedEchoRequestAndAnswers) {
  ASSERT_NO_FATAL_FAILURE(make({}));
  const Bytes icmp = echo_request(0x1234, 9, 1000 - 28);  // a 1000-byte datagram
  Ip4 p;
  p.dst = kLanAddr;
  p.proto = IPPROTO_ICMP;
  p.id = 0x6161;
  Ip4 a = p, b = p;
  a.frag = RTE_IPV4_HDR_MF_FLAG;
  a.payload.assign(icmp.begin(), icmp.begin() + 512);
  b.frag = 512 / 8;
  b.payload.assign(icmp.begin() + 512, icmp.end());
  input({ipv4(b)});  // the last first
  EXPECT_TRUE(nothing_sent());
  EXPECT_EQ(router_->ip().fragments_held(), 1u);
  input({ipv4(a)});
  EXPECT_EQ(router_->ip().fragments_held(), 0u);
  auto lan = sent_bytes(kLan);
  ASSERT_EQ(lan.size(), 1u);
  const Bytes& f = lan[0];
  EXPECT_TRUE(same_mac(mac_at(f, 0), kClientMac));
  EXPECT_EQ(src_ip(f), kLanAddr);
  EXPECT_EQ(dst_ip(f), kClient);
  EXPECT_EQ(total_len(f), 1000u);
  ASSERT_EQ(f.size(), 14u + 1000u);
  EXPECT_EQ(frag_field(f) & (RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK), 0);
  EXPECT_EQ(stored_cksum(f), recomputed_cksum(f));
  EXPECT_EQ(f[kL4], RTE_IP_ICMP_ECHO_REPLY);
  EXPECT_TRUE(icmp_verifies(f)) << "the checksum covers the whole reassembled message";
  EXPECT_TRUE(std::equal(icmp.begin() + 4, icmp.end(), f.begin() + kL4 + 4));
  EXPECT_EQ(events(Event::ipv4_reassembled), 1u);
  EXPECT_EQ(events(Event::icmp_echo_replies), 1u);
  EXPECT_EQ(events(Event::consumed), 1u) << "two fragments made one datagram";
  EXPECT_EQ(all_drops(), 0u);
}

TEST_F(RouterTest, LoneFragmentExpiresOnTheWorkerTimer) {
  Knobs k;
  k.reassembly_timeout_ms = 100;
  ASSERT_NO_FATAL_FAILURE(make(k));
  Ip4 p;
  p.dst = kLanAddr;
  p.proto = IPPROTO_ICMP;
  p.frag = RTE_IPV4_HDR_MF_FLAG;
  p.payload = Bytes(512, 0x5a);
  input({ipv4(p)});
  EXPECT_EQ(router_->ip().fragments_held(), 1u);
  const unsigned avail = rte_mempool_avail_count(pool_);
  advance_ms(100 - kMarginMs);
  EXPECT_EQ(router_->ip().fragments_held(), 1u) << "before the timeout";
  EXPECT_EQ(drops(DropReason::ipv4_reassembly_failed), 0u);
  // The timeout, the sweep interval (10 ms) and the margin.
  advance_ms(2 * kMarginMs + 10);
  EXPECT_EQ(router_->ip().fragments_held(), 0u);
  EXPECT_EQ(drops(DropReason::ipv4_reassembly_failed), 1u);
  EXPECT_EQ(rte_mempool_avail_count(pool_), avail + 1) << "the fragment's mbuf is free";
  EXPECT_TRUE(nothing_sent());
}

// --- two workers, ip deferred -------------------------------------------------------------

class RouterTwoWorkersTest : public RouterTest {
 protected:
  // A client address on lan whose datagrams to `dst` belong to worker `w`.
  uint32_t client_for(unsigned w, uint32_t dst) {
    const auto map = netisr_->current_config().bucket_map;
    for (uint8_t host = 10; host < 250; ++host) {
      rte_mbuf* m = udp(dst, 0, 8, ip4(198, 18, 1, host));
      uint32_t flow = 0;
      const bool ok = ipv4_flow_id(&netisr_->flow_hash(), m, &flow);
      rte_pktmbuf_free(m);
      if (ok && map[flow & (netisr_->buckets() - 1)] == w) return ip4(198, 18, 1, host);
    }
    ADD_FAILURE() << "no client address maps to worker " << w;
    return kClient;
  }
  void make_two() {
    Knobs k;
    k.workers = 2;
    k.ip_deferred = true;
    ASSERT_NO_FATAL_FAILURE(make(k));
  }
};

TEST_F(RouterTwoWorkersTest, DeferredIpRunsOnTheFlowOwner) {
  ASSERT_NO_FATAL_FAILURE(make_two());
  const int ip = netisr_->find_protocol("ip");
  for (unsigned owner : {1u, 0u}) {
    SCOPED_TRACE("flow owned by worker " + std::to_string(owner));
    const uint32_t src = client_for(owner, kRemote);
    const uint64_t before[2] = {events_[0].get(Event::ipv4_forwarded), events_[1].get(Event::ipv4_forwarded)};
    dispatch({udp(kRemote, 1, 16, src), udp(kRemote, 2, 16, src), udp(kRemote, 3, 16, src)}, kLan, 0);
    EXPECT_TRUE(sent(kWan).empty()) << "deferred: nothing handled before the owner drains";
    EXPECT_EQ(events_[owner].get(Event::ipv4_forwarded), before[owner]);
    EXPECT_EQ(netisr_->stats(owner, static_cast<dispatch::ProtoId>(ip)).length, 3u);
    pump();
    EXPECT_EQ(events_[owner].get(Event::ipv4_forwarded) - before[owner], 3u) << "handled by the owner";
    EXPECT_EQ(events_[1 - owner].get(Event::ipv4_forwarded), before[1 - owner]);
    EXPECT_TRUE(sent(kWan, 1 - owner).empty());
    auto wan = sent_bytes(kWan, owner);
    ASSERT_EQ(wan.size(), 3u) << "sent on the owner's tx queue";
    for (uint16_t i = 0; i < 3; ++i) {
      EXPECT_EQ(ip_id(wan[i]), i + 1) << "in order";
      EXPECT_EQ(src_ip(wan[i]), src);
      EXPECT_TRUE(same_mac(mac_at(wan[i], 0), kGatewayMac));
    }
  }
  EXPECT_EQ(all_drops(), 0u);
}

TEST_F(RouterTwoWorkersTest, ArpReplyOnOneWorkerReleasesPacketsHeldByTheOther) {
  ASSERT_NO_FATAL_FAILURE(make_two());
  const uint32_t src = client_for(1, kUnresolved);
  const rte_ether_addr host = mac(0, 0x64);
  // Received by worker 0, handled (and held) by worker 1, the flow's owner.
  input({udp(kUnresolved, 1, 16, src), udp(kUnresolved, 2, 16, src)}, kLan, 0);
  EXPECT_EQ(events_[1].get(Event::arp_held), 2u);
  auto req = sent_bytes(kWan, 1);
  ASSERT_EQ(req.size(), 1u) << "worker 1 asked";
  expect_arp_request(req[0], kWan, kWanAddr, kUnresolved);
  EXPECT_TRUE(sent(kWan, 0).empty());
  // The reply arrives on worker 0 (ARP: policy source, handled where it arrived).
  input({arp_reply(host, kUnresolved, kWan, kWanAddr)}, kWan, 0);
  EXPECT_EQ(events_[0].get(Event::arp_released), 2u);
  auto wan = sent_bytes(kWan, 0);
  ASSERT_EQ(wan.size(), 2u) << "worker 0 sent what worker 1 held";
  for (uint16_t i = 0; i < 2; ++i) {
    EXPECT_EQ(ip_id(wan[i]), i + 1);
    EXPECT_TRUE(same_mac(mac_at(wan[i], 0), host));
    EXPECT_TRUE(same_mac(mac_at(wan[i], 6), our_mac(kWan)));
  }
  EXPECT_EQ(router_->arp().held(), 0u);
  // Later packets of the flow: resolved, forwarded by the owner.
  input({udp(kUnresolved, 3, 16, src)}, kLan, 0);
  wan = sent_bytes(kWan, 1);
  ASSERT_EQ(wan.size(), 1u);
  EXPECT_EQ(ip_id(wan[0]), 3);
  EXPECT_TRUE(same_mac(mac_at(wan[0], 0), host));
  EXPECT_EQ(all_drops(), 0u);
}

}  // namespace

// --- UDP, sockets and services (stack/udp, stack/socket, stack/services) ----------

namespace {
constexpr uint16_t kUdpHeader = 8;
constexpr std::size_t kUdp = kIp + 20;  // the UDP header in a frame without IP options

bool udp_checksum_verifies(const Bytes& f) {
  // The one's complement sum over the pseudo header and the datagram is 0xffff.
  const uint16_t ulen = be16(f, kUdp + 4);
  uint32_t sum = rte_raw_cksum(f.data() + kIp + 12, 8);  // both addresses
  sum += rte_cpu_to_be_16(IPPROTO_UDP) + rte_cpu_to_be_16(ulen);
  sum += rte_raw_cksum(f.data() + kUdp, ulen);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return sum == 0xffff;
}

Bytes data_of(std::size_t n, uint8_t seed) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(seed + 3 * i);
  return b;
}

const char kEchoAndDiscard[] = "services:\n  - {type: udp-echo, port: 7}\n  - {type: udp-discard, port: 9}\n";
}  // namespace

TEST_F(RouterTest, UdpEchoAnswersFromTheAddressAndPortItWasSentTo) {
  Knobs k;
  k.extra = kEchoAndDiscard;
  ASSERT_NO_FATAL_FAILURE(make(k));
  const Bytes data = data_of(21, 5);
  input({udp_to(kLanAddr, 7, data, 4321)});
  auto lan = sent_bytes(kLan);
  ASSERT_EQ(lan.size(), 1u);
  const Bytes& f = lan[0];
  EXPECT_TRUE(same_mac(mac_at(f, 0), kClientMac));
  EXPECT_EQ(src_ip(f), kLanAddr);
  EXPECT_EQ(dst_ip(f), kClient);
  EXPECT_EQ(stored_cksum(f), recomputed_cksum(f));
  EXPECT_EQ(be16(f, kUdp), 7u);
  EXPECT_EQ(be16(f, kUdp + 2), 4321u);
  EXPECT_EQ(be16(f, kUdp + 4), kUdpHeader + data.size());
  EXPECT_TRUE(udp_checksum_verifies(f));
  EXPECT_TRUE(std::equal(data.begin(), data.end(), f.begin() + kUdp + kUdpHeader));
  // udp-discard counts and answers nothing.
  input({udp_to(kWanAddr, 9, data_of(100, 1), 5555, kGateway, kWan)}, kWan);
  EXPECT_TRUE(nothing_sent());
  EXPECT_EQ(events(Event::udp_delivered), 2u);
  EXPECT_EQ(events(Event::udp_sent), 1u);
  EXPECT_EQ(all_drops(), 0u);
  const auto* echo = service(conf::ServiceType::udp_echo);
  ASSERT_NE(echo, nullptr);
  EXPECT_EQ(echo->io.rx_datagrams, 1u);
  EXPECT_EQ(echo->io.tx_datagrams, 1u);
  EXPECT_EQ(echo->io.rx_bytes, data.size());
  const auto* discard = service(conf::ServiceType::udp_discard);
  ASSERT_NE(discard, nullptr);
  EXPECT_EQ(discard->io.rx_datagrams, 1u);
  EXPECT_EQ(discard->io.rx_bytes, 100u);
  EXPECT_EQ(discard->io.tx_datagrams, 0u);
}

TEST_F(RouterTest, UdpBadInputIsDroppedByName) {
  Knobs k;
  k.extra = kEchoAndDiscard;
  ASSERT_NO_FATAL_FAILURE(make(k));
  // A bad checksum.
  rte_mbuf* bad = udp_to(kLanAddr, 7, data_of(20, 1));
  udp_header(bad)->dgram_cksum ^= 0x0101;
  input({bad});
  EXPECT_EQ(drops(DropReason::udp_bad_checksum), 1u);
  // UDP length beyond the IP payload, and below a header.
  rte_mbuf* longer = udp_to(kLanAddr, 7, data_of(20, 2));
  udp_header(longer)->dgram_len = rte_cpu_to_be_16(kUdpHeader + 21);
  rte_mbuf* tiny = udp_to(kLanAddr, 7, data_of(20, 3));
  udp_header(tiny)->dgram_len = rte_cpu_to_be_16(4);
  input({longer, tiny});
  EXPECT_EQ(drops(DropReason::udp_bad_length), 2u);
  // An IP payload too short for a UDP header.
  Ip4 p;
  p.dst = kLanAddr;
  p.payload = Bytes{0x03, 0xe8, 0x00};
  input({ipv4(p)});
  EXPECT_EQ(drops(DropReason::udp_truncated), 1u);
  EXPECT_TRUE(nothing_sent()) << "no echo, no ICMP error about a malformed datagram";
  // A zero checksum: none was computed (RFC 768); accepted and echoed.
  rte_mbuf* zero = udp_to(kLanAddr, 7, data_of(12, 4));
  udp_header(zero)->dgram_cksum = 0;
  input({zero});
  EXPECT_EQ(sent_bytes(kLan).size(), 1u);
  // A UDP length below the IP payload: the datagram is its UDP length.
  rte_mbuf* trimmed = udp_to(kLanAddr, 7, data_of(30, 5));
  {
    auto* ip = rte_pktmbuf_mtod_offset(trimmed, rte_ipv4_hdr*, sizeof(rte_ether_hdr));
    auto* uh = udp_header(trimmed);
    uh->dgram_len = rte_cpu_to_be_16(kUdpHeader + 10);
    // The checksum over those 18 bytes (the pseudo header with the UDP length).
    uint32_t sum = rte_raw_cksum(&ip->src_addr, 8);
    sum += rte_cpu_to_be_16(IPPROTO_UDP) + rte_cpu_to_be_16(kUdpHeader + 10);
    uh->dgram_cksum = 0;
    sum += rte_raw_cksum(uh, kUdpHeader + 10);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    uh->dgram_cksum = static_cast<uint16_t>(~sum);
  }
  input({trimmed});
  auto lan = sent_bytes(kLan);
  ASSERT_EQ(lan.size(), 1u);
  EXPECT_EQ(be16(lan[0], kUdp + 4), kUdpHeader + 10u) << "the echo carries the UDP length's data only";
  EXPECT_EQ(events(Event::udp_length_trimmed), 1u);
  EXPECT_EQ(events(Event::udp_delivered), 2u);
  EXPECT_EQ(drops(DropReason::udp_no_socket), 0u);
}

TEST_F(RouterTest, ConnectedSocketSendsReceivesAndHearsIcmpErrors) {
  ASSERT_NO_FATAL_FAILURE(make({}));
  struct Seen {
    std::vector<Bytes> data;
    std::vector<std::pair<uint8_t, uint8_t>> errors;
  } seen;
  auto* so = router_->udp().open(
      [](void* ctx, socket::UdpSocket&, const socket::Datagram& d) {
        static_cast<Seen*>(ctx)->data.emplace_back(d.data, d.data + d.len);
      },
      [](void* ctx, socket::UdpSocket&, const socket::IcmpNotice& n) {
        static_cast<Seen*>(ctx)->errors.emplace_back(n.type, n.code);
      },
      &seen);
  ASSERT_TRUE(so->connect(0, kClient, 5000).ok());
  EXPECT_EQ(so->local().addr, kLanAddr) << "the route's interface address";
  EXPECT_GE(so->local().port, pcb::kEphemeralFirst);
  EXPECT_EQ(so->send(0, "ping", 4, now()), socket::SendResult::ok);
  pump();
  auto lan = sent_bytes(kLan);
  ASSERT_EQ(lan.size(), 1u);
  EXPECT_EQ(be16(lan[0], kUdp), so->local().port);
  EXPECT_EQ(be16(lan[0], kUdp + 2), 5000u);
  EXPECT_TRUE(udp_checksum_verifies(lan[0]));
  // The answer reaches the socket.
  input({udp_to(kLanAddr, so->local().port, Bytes{'p', 'o', 'n', 'g'}, 5000)});
  ASSERT_EQ(seen.data.size(), 1u);
  EXPECT_EQ(seen.data[0], (Bytes{'p', 'o', 'n', 'g'}));
  // A datagram from another port of the peer is for nobody.
  input({udp_to(kLanAddr, so->local().port, Bytes{'x'}, 5001)});
  EXPECT_EQ(drops(DropReason::udp_no_socket), 1u);
  free_all(sent(kLan));  // its port unreachable
  // Port unreachable about our datagram, quoting its IP header and 8 bytes.
  Ip4 e;
  e.dst = kLanAddr;
  e.proto = IPPROTO_ICMP;
  e.payload = Bytes(8);
  e.payload[0] = 3;
  e.payload[1] = 3;
  e.payload.insert(e.payload.end(), lan[0].begin() + kIp, lan[0].begin() + kUdp + 8);
  auto* ic = reinterpret_cast<rte_icmp_hdr*>(e.payload.data());
  ic->icmp_cksum = static_cast<uint16_t>(~rte_raw_cksum(e.payload.data(), e.payload.size()));
  input({ipv4(e)});
  ASSERT_EQ(seen.errors.size(), 1u);
  EXPECT_EQ(seen.errors[0], std::make_pair(uint8_t{3}, uint8_t{3}));
  EXPECT_EQ(events(Event::udp_icmp_errors_in), 1u);
  const socket::SocketStats st = so->stats();
  EXPECT_EQ(st.tx_datagrams, 1u);
  EXPECT_EQ(st.rx_datagrams, 1u);
  EXPECT_EQ(st.icmp_errors, 1u);
  // Closed: its port is unbound again.
  const uint16_t lport = so->local().port;
  so->close();
  input({udp_to(kLanAddr, lport, Bytes{'z'}, 5000)});
  EXPECT_EQ(drops(DropReason::udp_no_socket), 2u);
  // Backpressure, not a silent drop: no route.
  auto* lone = router_->udp().open(nullptr, nullptr, nullptr);
  EXPECT_FALSE(lone->connect(0, ip4(203, 0, 113, 1), 7).ok()) << "no route: connect says so";
  lone->close();
}

TEST_F(RouterTest, HostModeForwardsNothingAndStillAnswers) {
  Knobs k;
  k.host = true;
  k.extra = kEchoAndDiscard;
  ASSERT_NO_FATAL_FAILURE(make(k));
  input({udp(kRemote, 0x42)});
  EXPECT_EQ(drops(DropReason::ipv4_not_forwarding), 1u);
  EXPECT_TRUE(nothing_sent());
  input({udp_to(kLanAddr, 7, data_of(8, 1))});
  EXPECT_EQ(sent_bytes(kLan).size(), 1u) << "its own services answer";
}

// The burst's datagrams are sorted by connection group: one acquisition of
// each group's lock (group locking) or one of the giant lock for the burst.
TEST_F(RouterTest, UdpBurstTakesEachGroupLockOnce) {
  for (const char* locking : {"group", "giant"}) {
    SCOPED_TRACE(locking);
    TearDown();
    Knobs k;
    k.extra = std::string(kEchoAndDiscard) + "stack: {groups: 16, locking: " + locking + "}\n";
    ASSERT_NO_FATAL_FAILURE(make(k));
    const pcb::PcbTable& t = router_->udp().table();
    const auto& cls = pcb::witness::pcb_classes();
    const uint64_t group0 = t.class_profile(cls.group).acquisitions, giant0 = t.class_profile(cls.giant).acquisitions;
    const uint64_t delivered0 = events(Event::udp_delivered);  // the fixture's counters outlive a router
    std::vector<rte_mbuf*> burst;
    std::set<uint32_t> groups;
    for (uint16_t i = 0; i < 40; ++i) {
      const uint16_t sport = static_cast<uint16_t>(2000 + i);
      burst.push_back(udp_to(kLanAddr, 9, data_of(4, 0), sport));
      groups.insert(t.group_of({kLanAddr, kClient, 9, sport}));
    }
    input(burst);
    EXPECT_EQ(events(Event::udp_delivered) - delivered0, 40u);
    if (std::string(locking) == "group") {
      EXPECT_EQ(t.class_profile(cls.group).acquisitions - group0, groups.size());
      EXPECT_EQ(t.class_profile(cls.giant).acquisitions, giant0);
      EXPECT_EQ(t.burst_acquisitions(), groups.size());
    } else {
      EXPECT_EQ(t.class_profile(cls.giant).acquisitions - giant0, 1u);
      EXPECT_EQ(t.class_profile(cls.group).acquisitions, group0);
      EXPECT_EQ(t.burst_acquisitions(), 1u);
    }
    EXPECT_EQ(t.lookups(), 40u);
    EXPECT_GT(groups.size(), 4u);
  }
}

// Two workers: under deferred dispatch every datagram is handled by the
// owner of its group, whichever worker received it; under direct, by the
// receiving worker. In both, each flow's datagrams reach the socket in order.
TEST_F(RouterTest, UdpRunsOnTheGroupOwnerWhenDeferredAndInOrderEitherWay) {
  struct Got {
    unsigned worker;
    uint16_t sport;
    uint32_t seq;
  };
  for (const char* mode : {"deferred", "direct", "hybrid"}) {
    SCOPED_TRACE(mode);
    TearDown();
    std::vector<Got> got;
    Knobs k;
    k.workers = 2;
    k.udp_mode = mode;
    k.setup = [&got](dispatch::Netisr&, modes::Router& r) {
      auto* so = r.udp().open(
          [](void* ctx, socket::UdpSocket&, const socket::Datagram& d) {
            uint32_t seq;
            std::memcpy(&seq, d.data, sizeof seq);
            static_cast<std::vector<Got>*>(ctx)->push_back({d.worker, d.from.port, seq});
          },
          nullptr, &got);
      ASSERT_TRUE(so->bind(0, 4000).ok());
    };
    ASSERT_NO_FATAL_FAILURE(make(k));
    const pcb::PcbTable& t = router_->udp().table();
    // 16 flows, 6 datagrams each, interleaved, every flow received by worker 0
    // in three bursts (as RSS keeps a flow on one queue).
    for (uint32_t round = 0; round < 3; ++round) {
      std::vector<rte_mbuf*> burst;
      for (uint32_t seq = 2 * round; seq < 2 * round + 2; ++seq)
        for (uint16_t f = 0; f < 16; ++f) {
          Bytes d(4);
          std::memcpy(d.data(), &seq, 4);
          burst.push_back(udp_to(kLanAddr, 4000, d, static_cast<uint16_t>(3000 + f)));
        }
      dispatch(burst, kLan, 0);
    }
    pump();
    ASSERT_EQ(got.size(), 96u);
    std::map<uint16_t, uint32_t> next;
    unsigned on_other = 0;
    for (const Got& g : got) {
      EXPECT_EQ(g.seq, next[g.sport]++) << "flow " << g.sport << " in order";
      const unsigned owner = t.owner_of({kLanAddr, kClient, 4000, g.sport});
      if (std::string(mode) == "direct") {
        EXPECT_EQ(g.worker, 0u) << "direct: the receiving worker";
      } else {
        EXPECT_EQ(g.worker, owner) << "the owner of the flow's group";
      }
      on_other += g.worker != 0;
    }
    if (std::string(mode) != "direct") {
      EXPECT_GT(on_other, 0u) << "some flows belong to worker 1";
    }
  }
}

// Direct dispatch with two workers receiving datagrams of one flow at once
// (no NIC RSS to keep a flow on one queue): both run udp input inline, and
// the connection group's lock (or the giant lock) serialises the socket
// callbacks of that flow. The callback's read-modify-write of the flow's
// state loses updates, and ThreadSanitizer reports the race, without it.
// (The ThreadSanitizer build runs this through the `shared_tables` test.)
TEST_F(RouterTest, UdpConcurrentDirectWorkersSerialiseOneFlowOnItsGroupLock) {
  for (const char* locking : {"group", "giant"}) {
    SCOPED_TRACE(locking);
    TearDown();
    struct FlowState {
      uint64_t datagrams = 0;  // plain: the group lock is its only protection
    } state;
    Knobs k;
    k.workers = 2;
    k.udp_mode = "direct";
    k.extra = std::string("stack: {locking: ") + locking + "}\n";
    k.setup = [&state](dispatch::Netisr&, modes::Router& r) {
      auto* so = r.udp().open(
          [](void* ctx, socket::UdpSocket&, const socket::Datagram&) {
            auto& s = *static_cast<FlowState*>(ctx);
            const uint64_t seen = s.datagrams;
            for (int spin = 0; spin < 100; ++spin) rte_pause();  // widens the window between read and write
            s.datagrams = seen + 1;
          },
          nullptr, &state);
      ASSERT_TRUE(so->bind(0, 4000).ok());
    };
    ASSERT_NO_FATAL_FAILURE(make(k));
    constexpr unsigned kBursts = 500, kBurst = 16;
    std::atomic<bool> go{false};
    auto receive = [&](unsigned w) {
      while (!go.load()) {
      }
      for (unsigned b = 0; b < kBursts; ++b) {
        std::vector<rte_mbuf*> burst;
        for (unsigned i = 0; i < kBurst; ++i) burst.push_back(udp_to(kLanAddr, 4000, data_of(8, 0), 3000));
        dispatch(burst, kLan, w);
      }
    };
    std::thread t0(receive, 0u), t1(receive, 1u);
    go.store(true);
    t0.join();
    t1.join();
    EXPECT_EQ(state.datagrams, 2ull * kBursts * kBurst);
    EXPECT_EQ(drops(DropReason::udp_no_socket), 0u);
  }
}

// udp-client against a peer the test plays (198.18.1.10, echoing on port 7):
// the first request probes alone, then every flow keeps its window full; a
// request left unanswered is lost after timeout_ms; the client stops after
// `requests` and reports responses, lost and round-trip times.
TEST_F(RouterTest, UdpClientKeepsWindowsFullCountsLossAndStops) {
  Knobs k;
  k.extra =
      "services:\n  - {type: udp-client, server: 198.18.1.10, port: 7, flows: 4, window: 2, payload: 24, "
      "requests: 40, timeout_ms: 5}\n";
  ASSERT_NO_FATAL_FAILURE(make(k));
  // The peer answers each request from port 7 to the client's port (be16(f, kUdp)).
  auto reply_all = [&](std::size_t skip_every) {
    std::vector<rte_mbuf*> back;
    std::size_t i = 0;
    std::vector<Bytes> frames = sent_bytes(kLan);
    // make()'s first loop sent the probe beside the gratuitous ARP.
    for (rte_mbuf* m : announced_[kLan])
      if (const Bytes f = bytes_of(m); f.size() > kUdp && f[kIp + 9] == IPPROTO_UDP) frames.push_back(f);
    free_all(std::move(announced_[kLan]));
    announced_[kLan].clear();
    for (const Bytes& f : frames) {
      if (f.size() <= kUdp || f[kIp + 9] != IPPROTO_UDP) continue;
      if (skip_every && ++i % skip_every == 0) continue;
      const Bytes data(f.begin() + kUdp + kUdpHeader, f.begin() + kUdp + be16(f, kUdp + 4));
      back.push_back(udp_to(kLanAddr, be16(f, kUdp), data, 7, kClient));
    }
    if (!back.empty()) input(back);
    return back.size();
  };
  // First poll: one probe request.
  pump();
  EXPECT_EQ(reply_all(0), 1u) << "one probe until the server has answered";
  // Then the windows fill: 4 flows x 2, at the next millisecond's walk.
  advance_ms(2);
  const std::size_t second = reply_all(0);
  EXPECT_GE(second, 8u) << "every flow's window (the probe's flow sent its next on the response)";
  // Every third request of the rest goes unanswered.
  for (int round = 0; round < 20; ++round) {
    advance_ms(10);
    reply_all(3);
  }
  advance_ms(20);
  reply_all(0);
  const auto* c = service(conf::ServiceType::udp_client);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->sockets, 4u);
  EXPECT_EQ(c->requests, 40u) << "stops at `requests`";
  EXPECT_GT(c->lost, 0u);
  EXPECT_EQ(c->requests, c->responses + c->lost) << "every request answered or lost";
  EXPECT_TRUE(c->done);
  EXPECT_EQ(c->latency.samples, c->responses);
  EXPECT_GT(c->latency.max_us, 0.0);
  EXPECT_LE(c->latency.p50_us, c->latency.max_us);
  EXPECT_EQ(c->io.tx_datagrams, 40u);
  EXPECT_EQ(c->io.rx_datagrams, c->responses + c->late);
}

// A socket is told when the egress queue refused this worker's last burst
// (SendResult::queue_full, counted), rather than having more dropped; once a
// loop iteration has gone by it may send again.
TEST_F(RouterTest, SocketSendReportsAFullTxQueueUntilTheNextLoop) {
  ASSERT_NO_FATAL_FAILURE(make({}));
  auto* so = router_->udp().open(nullptr, nullptr, nullptr);
  ASSERT_TRUE(so->connect(0, kClient, 5000).ok());
  unsigned ok = 0, full = 0;
  for (unsigned i = 0; i < 2 * kRing && full == 0; ++i) {
    const socket::SendResult r = so->send(0, "x", 1, now());
    ok += r == socket::SendResult::ok;
    full += r == socket::SendResult::queue_full;
  }
  EXPECT_EQ(full, 1u) << "the send after the refused burst is told";
  EXPECT_GE(ok, kRing) << "the ring took a full ring's worth first";
  EXPECT_GT(drops(DropReason::tx_full), 0u) << "the refused burst itself";
  EXPECT_EQ(so->stats().tx_queue_full, 1u);
  EXPECT_EQ(so->send(0, "x", 1, now()), socket::SendResult::queue_full) << "still, within the loop iteration";
  free_all(sent(kLan));  // the NIC drains its ring
  pump();                // a loop iteration: an empty flush
  EXPECT_EQ(so->send(0, "x", 1, now()), socket::SendResult::ok);
  pump();
}
