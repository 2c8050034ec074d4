// Structure-aware libFuzzer harness over TCP (stack/tcp), in the pattern of
// lwIP's fuzz3 and smoltcp's iface fuzz target: an input is a script of
// steps run against a fresh TCP (Tcp::create) with the TCP services tcp-echo
// (7), tcp-discard (9), tcp-source (19, 20000 bytes) and http (80, 4
// sessions); port 13 is closed. The rest of router mode (ether, ARP, IPv4,
// FIB over two net_ring ports, the netisr with two workers) is made once per
// process, because the FIB alone costs tens of milliseconds; each input
// rebinds it to timer wheels, tx buffers and counters of its own, and a
// `tcp` netisr protocol of the harness hands segments to the input's Tcp
// with Tcp's own handler and placement (m2cpuid). Peers are four addresses
// (two on p0, one on p1 with MTU 1280, one behind a gateway on p1), eight
// source ports each, so one input drives many interleaved connections. The
// harness also opens connections itself (Tcp::connect, a small client), and
// sends, shuts down, closes or aborts them (Tcp::with).
//
// The harness is the peers. It reads back every frame ngstack transmits
// (net_ring tx rings) and keeps, per 4-tuple, what ngstack last said: its
// ISS, the highest sequence it sent, its ACK (RCV.NXT), window, TSval,
// whether it agreed to timestamps / window scaling / SACK. Segments are built
// relative to those, so a few fuzz bytes make a handshake, acknowledge data,
// SACK a loss, or land exactly at RCV.NXT; anything else (raw numbers,
// deltas, garbage options, bad offsets, bad checksums) is a byte away.
//
// Time is virtual: tcp.cpp and ip.cpp are compiled into this harness with
// rte_rdtsc() redirected to the harness's clock (fuzz_clock.hpp), and the
// workers' timer wheels run on the same clock, so a delay step makes the
// retransmission, delayed-ACK, persist, FIN-WAIT-2 and TIME-WAIT timers fire
// at the times TCP set them. rte_srand() is fixed per input: runs replay.
//
// Input: byte 0 picks the configuration (Nagle, CUBIC, tcp dispatch direct
// or deferred, SYN cookies, receive buffer, SYN backlog); then steps, each
// starting with an op byte:
//   op & 7    0, 1     full segment: conn, flags, mode, [seq], [ack], [window],
//                      [options], payload (see full_segment)
//             2, 3     compact segment: conn, action (a well-behaved peer's
//                      ACK, data, FIN, SYN, RST, duplicate ACK with SACK,
//                      out-of-order data, window); 3: then a delay byte
//             4, 7     delay: one byte, 0.1 ms .. 524 s
//             5        ICMP error quoting one of ngstack's segments
//             6        the harness's client: connect, send, shutdown, close, abort
//   op & 8    segments: held, and sent in one burst with the next
//   op & 16   the worker that receives it
//   op >> 5   7: TCP checksum wrong; 6: NIC says checksums good; 5: NIC
//             says the L4 checksum is bad; else no NIC verdict
// Missing bytes read as 0.
//
// Checked after every input (and the accounting after every step): the
// accounting identity rx + originated == tx + drops + consumed (+ ARP holds
// and fragments), every frame ngstack sent is well formed (IPv4 and TCP
// checksums, header lengths, options, within the egress MTU), no segment was
// dropped as too big for its MTU, no TCP timer was refused for want of timer
// nodes, and after the input's services and Tcp shut down every mbuf is
// back in the pool. Built with AddressSanitizer. FUZZ_TCP_TRACE=1 prints
// every segment both ways and TCP's counters (seeds: make_corpus_tcp.py).
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_random.h>
#include <rte_ring.h>
#include <rte_tcp.h>

#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "conf/loader.hpp"
#include "dispatch/netisr.hpp"
#include "stack/modes/router.hpp"
#include "stack/services/tcp_services.hpp"

using namespace ngstack;
using TcpConnT = ngstack::stack::socket::TcpConn;

// The clock tcp.cpp and ip.cpp read (fuzz_clock.hpp).
static uint64_t g_now = 0;
extern "C" uint64_t ngstack_fuzz_tsc(void) { return g_now; }

namespace {

constexpr unsigned kWorkers = 2;
constexpr unsigned kPorts = 2;
constexpr unsigned kRing = 4096;
constexpr unsigned kPoolSize = 16383;
constexpr unsigned kMaxSteps = 1024;
constexpr uint16_t kMtu[kPorts] = {1500, 1280};

constexpr uint32_t ip4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  return uint32_t{a} << 24 | uint32_t{b} << 16 | uint32_t{c} << 8 | d;
}
constexpr uint32_t kOurAddr[kPorts] = {ip4(198, 18, 1, 1), ip4(198, 19, 1, 1)};
// Peers: the address, the config port it is reached by, its (or its gateway's) MAC.
struct Peer {
  uint32_t addr;
  unsigned port;
  uint8_t mac_last;
};
constexpr Peer kPeers[4] = {
    {ip4(198, 18, 1, 2), 0, 0x02}, {ip4(198, 18, 1, 3), 0, 0x03}, {ip4(198, 19, 1, 2), 1, 0x12},
    {ip4(10, 1, 2, 3), 1, 0x12}};  // behind 198.19.1.2
// The ngstack side of a tuple: a service port, or (kActive) the local port
// of a connection the harness opened (Tcp::connect) to the peer's port.
constexpr uint16_t kServicePorts[5] = {7, 9, 19, 80, 13};  // echo, discard, source, http, closed
constexpr unsigned kActive = 5, kSides = 6;
constexpr uint8_t kServiceOfBits[8] = {0, 1, 2, 3, kActive, 2, 3, 4};
constexpr uint16_t kPeerPortBase = 40000;

const char* kConfigTemplate = R"(mode: router
eal: {no_huge: true}
ports:
  - {name: p0, device: net_ring_fz0}
  - {name: p1, device: net_ring_fz1, mtu: 1280}
workers: {lcores: [1, 2]}
router:
  interfaces:
    - {port: p0, addresses: [198.18.1.1/24]}
    - {port: p1, addresses: [198.19.1.1/24]}
  routes:
    - {prefix: 10.0.0.0/8, via: 198.19.1.2}
  arp:
    max_entries: 16
    static:
      - {port: p0, address: 198.18.1.2, mac: "02:00:00:00:00:02"}
      - {port: p0, address: 198.18.1.3, mac: "02:00:00:00:00:03"}
      - {port: p1, address: 198.19.1.2, mac: "02:00:00:00:00:12"}
  icmp: {rate: 1000000, burst: 1000000}
services:
  - {type: tcp-echo, port: 7}
  - {type: tcp-discard, port: 9}
  - {type: tcp-source, port: 19, bytes: 20000}
  - {type: http, port: 80, body_bytes: 3000, sessions: 4, congestion_control: cubic}
stack:
  groups: 8
  connections: 32
  tcp:
    sndbuf: 16384
    rcvbuf: @RCVBUF@
    nagle: @NAGLE@
    ooo_segments: 8
    worker_buffers: 48     # small enough that the budget refuses data and send()
    syn_backlog: @BACKLOG@
    syn_cookies: @COOKIES@
    congestion_control: @CC@
dispatch: {protocols: {tcp: {mode: @TCPMODE@}}}
)";

void die(const char* what) {
  std::fprintf(stderr, "fuzz_tcp: %s\n", what);
  std::abort();
}

// --- byte order -----------------------------------------------------------------

uint16_t rd16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t rd32(const uint8_t* p) { return uint32_t{rd16(p)} << 16 | rd16(p + 2); }
void wr16(uint8_t* p, uint16_t v) { p[0] = static_cast<uint8_t>(v >> 8), p[1] = static_cast<uint8_t>(v); }
void wr32(uint8_t* p, uint32_t v) { wr16(p, static_cast<uint16_t>(v >> 16)), wr16(p + 2, static_cast<uint16_t>(v)); }
bool seq_gt(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) > 0; }

// The fuzz input, read from the front; past its end every byte is 0.
struct Reader {
  const uint8_t* p;
  size_t n;
  bool empty() const { return n == 0; }
  uint8_t u8() {
    if (n == 0) return 0;
    --n;
    return *p++;
  }
  uint16_t u16() { return static_cast<uint16_t>(u8() << 8 | u8()); }
  uint32_t u32() { return uint32_t{u16()} << 16 | u16(); }
  size_t take(uint8_t* out, size_t len) {
    const size_t k = std::min(len, n);
    std::memcpy(out, p, k);
    p += k, n -= k;
    return k;
  }
};

// --- the peers' view of one 4-tuple ------------------------------------------------

struct Conn {
  bool used = false;
  // What the peer sent.
  uint32_t peer_isn = 0, peer_nxt = 0, peer_acked = 0, peer_ts = 0;
  bool syn_ts = false, syn_ws = false, syn_sack = false;  // options of the peer's last SYN
  // What ngstack sent (read from its frames).
  bool have_iss = false;
  uint32_t st_iss = 0, st_max = 0, st_ack = 0, st_last_seq = 0, st_tsval = 0;
  uint16_t st_win = 65535;
  bool st_ts = false, st_ws = false, st_sack = false;  // options of its SYN-ACK
  uint8_t st_wscale = 0;
  uint16_t mss_est = 536;  // the largest payload it sent
  // kActive: the connection the harness opened, and its local port (from its SYN).
  stack::socket::ConnRef ref;
  unsigned worker = 0;
  uint16_t lport = 0;
  bool syn_sent = false;  // ngstack's SYN is unanswered: the peer's SYN carries an ACK
  bool ts_on() const { return syn_ts && st_ts; }
  uint32_t right_edge() const { return st_ack + (uint32_t{st_win} << (syn_ws && st_ws ? st_wscale : 0)); }
};

constexpr unsigned kConns = 4 * kSides * 8;
unsigned conn_index(unsigned peer, unsigned svc, unsigned pport) { return (peer * kSides + svc) * 8 + pport; }
unsigned peer_of(unsigned conn) { return conn / (kSides * 8); }
unsigned side_of(unsigned conn) { return (conn / 8) % kSides; }
unsigned pport_of(unsigned conn) { return conn % 8; }

// --- the harness --------------------------------------------------------------------

// What lives as long as the process: EAL, the pool, the ports, the router's
// other layers (FIB, ARP, IPv4, ether) and the netisr. Every input gets a
// Tcp and TCP services of its own (and its own timer wheels, tx buffers and
// counters, which the router's layers are rebound to); a `tcp` protocol of
// the harness hands segments to the input's Tcp.
struct Persistent {
  rte_mempool* pool = nullptr;
  uint16_t port_ids[kPorts] = {};
  rte_ring* tx_rings[kPorts][kWorkers] = {};
  std::map<uint8_t, std::unique_ptr<conf::Config>> configs;
  std::unique_ptr<stack::modes::Router> router;
  std::unique_ptr<dispatch::Netisr> netisr;
  dispatch::ProtoId ether = 0, tcp_proto = 0;
  stack::tcp::Tcp* tcp = nullptr;  // the input's
  // The router's WorkerIo between inputs.
  std::unique_ptr<stack::TxBuffers> idle_tx[kWorkers];
  std::unique_ptr<stack::timer::TimerWheel> idle_timers[kWorkers];
  stack::DropCounters idle_drops[kWorkers];
  stack::EventCounters idle_events[kWorkers];
};
Persistent* P = nullptr;
bool g_trace = false;  // FUZZ_TCP_TRACE=1: every segment each way, and TCP's counters at the end

void trace_segment(const char* dir, unsigned conn, uint8_t flags, uint32_t seq, uint32_t ack, uint16_t win,
                   unsigned len, unsigned optlen) {
  char f[7] = "......";
  const char* names = "FSRPAU";
  for (int i = 0; i < 6; ++i)
    if (flags & (1 << i)) f[i] = names[i];
  std::fprintf(stderr, "  %s conn %3u %s seq %10u ack %10u win %5u len %4u opts %2u\n", dir, conn, f, seq, ack, win,
               len, optlen);
}

// One input's stack: made before its first step, shut down and freed after its last.
struct Stack {
  const conf::Config* cfg = nullptr;
  std::unique_ptr<stack::tcp::Tcp> tcp;
  std::vector<std::unique_ptr<stack::services::Service>> services;
  std::unique_ptr<stack::TxBuffers> tx[kWorkers];
  std::unique_ptr<stack::timer::TimerWheel> timers[kWorkers];
  stack::DropCounters drops[kWorkers];
  stack::EventCounters events[kWorkers];
  uint64_t rx = 0;
  unsigned step = 0;
  unsigned max_armed = 0;  // traced: the most timer nodes one wheel held
  Conn conns[kConns];
  std::vector<rte_mbuf*> burst;  // held segments
  unsigned burst_worker = 0;
  uint16_t burst_port = 0;
};

[[noreturn]] void fail(const Stack& s, const char* what) {
  std::fprintf(stderr, "fuzz_tcp: step %u: %s\n", s.step, what);
  std::abort();
}

const conf::Config& config_for(uint8_t v) {
  v &= 0x3f;
  auto it = P->configs.find(v);
  if (it != P->configs.end()) return *it->second;
  std::string y = kConfigTemplate;
  auto put = [&](const std::string& key, const std::string& val) { y.replace(y.find(key), key.size(), val); };
  put("@NAGLE@", (v & 1) ? "false" : "true");
  put("@CC@", (v & 2) ? "cubic" : "newreno");
  put("@TCPMODE@", (v & 4) ? "direct" : "deferred");
  put("@COOKIES@", (v & 8) ? "false" : "true");
  put("@RCVBUF@", (v & 16) ? "4096" : "16384");
  put("@BACKLOG@", (v & 32) ? "1" : "8");
  auto cfg = conf::load_string(y, "<fuzz_tcp>");
  if (!cfg) die(cfg.error().c_str());
  auto& slot = P->configs[v];
  slot = std::make_unique<conf::Config>(std::move(*cfg));
  return *slot;
}

// libFuzzer ends with exit(): remove the EAL runtime directory then.
void remove_runtime_dir() {
  std::error_code ec;
  std::filesystem::remove_all(rte_eal_get_runtime_dir(), ec);
}

void init_router();

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const std::string prefix = "ngstack-fuzz-tcp-" + std::to_string(getpid());
  const char* argv[] = {"fuzz", "--no-huge", "-m", "1024", "--no-pci", "--file-prefix", prefix.c_str(),
                        "--log-level", "error", "--no-telemetry", "-l", "0"};
  if (rte_eal_init(static_cast<int>(std::size(argv)), const_cast<char**>(argv)) < 0) die("EAL did not start");
  std::atexit(remove_runtime_dir);
  spdlog::set_level(spdlog::level::warn);  // services log every start
  g_trace = std::getenv("FUZZ_TCP_TRACE") != nullptr;
  P = new Persistent();
  P->pool = rte_pktmbuf_pool_create("fuzz_tcp_pool", kPoolSize, 0, 0, 2048 + RTE_PKTMBUF_HEADROOM, 0);
  if (!P->pool) die("no mempool");
  for (unsigned p = 0; p < kPorts; ++p) {
    const std::string name = "net_ring_fz" + std::to_string(p);
    rte_ring* rx = rte_ring_create((name + "_rx").c_str(), 64, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (!rx) die("rx ring");
    for (unsigned q = 0; q < kWorkers; ++q) {
      P->tx_rings[p][q] = rte_ring_create((name + "_tx" + std::to_string(q)).c_str(), kRing, 0,
                                          RING_F_SP_ENQ | RING_F_SC_DEQ);
      if (!P->tx_rings[p][q]) die("tx ring");
    }
    const int id = rte_eth_from_rings(name.c_str(), &rx, 1, P->tx_rings[p], kWorkers, 0);
    if (id < 0) die("net_ring port");
    P->port_ids[p] = static_cast<uint16_t>(id);
    rte_eth_conf conf{};
    if (rte_eth_dev_configure(P->port_ids[p], 1, kWorkers, &conf) != 0 ||
        rte_eth_rx_queue_setup(P->port_ids[p], 0, 64, 0, nullptr, P->pool) != 0)
      die("port configure");
    for (uint16_t q = 0; q < kWorkers; ++q)
      if (rte_eth_tx_queue_setup(P->port_ids[p], q, 64, 0, nullptr) != 0) die("tx queue setup");
    if (rte_eth_dev_start(P->port_ids[p]) != 0) die("port start");
  }
  for (unsigned v = 0; v < 64; ++v) config_for(static_cast<uint8_t>(v));  // parse errors show at start
  init_router();
  return 0;
}

namespace {

// --- reading back what ngstack sent -------------------------------------------------

int conn_of_frame(const Stack& s, uint32_t faddr, uint16_t lport, uint16_t fport, bool syn_only) {
  int peer = -1;
  unsigned svc = kActive;
  for (unsigned i = 0; i < 4; ++i)
    if (kPeers[i].addr == faddr) peer = static_cast<int>(i);
  for (unsigned i = 0; i < 5; ++i)
    if (kServicePorts[i] == lport) svc = i;
  if (peer < 0 || fport < kPeerPortBase || fport >= kPeerPortBase + 8) return -1;
  const unsigned idx = conn_index(static_cast<unsigned>(peer), svc, fport - kPeerPortBase);
  // An active open's local port is learnt from its SYN; other ports are gone connections.
  if (svc == kActive && !syn_only && s.conns[idx].lport != lport) return -1;
  return static_cast<int>(idx);
}

// The one's complement sum of a TCP segment and its pseudo header (RFC 9293
// §3.1): 0xffff when the checksum is right.
uint16_t l4_sum(const uint8_t* ip, const uint8_t* l4, uint32_t len) {
  uint32_t sum = rd16(ip + 12) + rd16(ip + 14) + rd16(ip + 16) + rd16(ip + 18) + ip[9] + len;
  for (uint32_t i = 0; i + 1 < len; i += 2) sum += rd16(l4 + i);
  if (len & 1) sum += uint32_t{l4[len - 1]} << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// Checks one frame ngstack sent on config port `port` and learns from it.
void observe(Stack& s, const uint8_t* f, uint32_t len, unsigned port) {
  if (len < 14 + 20) fail(s, "sent a runt frame");
  if (rd16(f + 12) != RTE_ETHER_TYPE_IPV4) return;  // ARP: nothing to learn
  const uint8_t* ip = f + 14;
  const uint32_t total = rd16(ip + 2);
  if (ip[0] != 0x45) fail(s, "sent an IPv4 header that is not 20 bytes");
  if (total > kMtu[port]) fail(s, "sent a packet larger than the egress MTU");
  if (14 + total > len || total < 20) fail(s, "sent a frame shorter than its IPv4 total length");
  if (rte_raw_cksum(ip, 20) != 0xffff) fail(s, "sent an IPv4 header with a bad checksum");
  if (ip[9] != IPPROTO_TCP) return;
  if (total < 40) fail(s, "sent a truncated TCP header");
  const uint8_t* th = ip + 20;
  const uint32_t doff = (th[12] >> 4) * 4u;
  if (doff < 20 || doff > total - 20) fail(s, "sent a TCP data offset out of range");
  if (l4_sum(ip, th, total - 20) != 0xffff) fail(s, "sent a TCP segment with a bad checksum");
  const uint8_t flags = th[13];
  const uint32_t seq = rd32(th + 4), ack = rd32(th + 8);
  const uint32_t payload = total - 20 - doff;
  bool ts = false, ws = false, sack_ok = false;
  uint32_t tsval = 0;
  uint8_t wscale = 0;
  for (uint32_t o = 20; o < doff;) {
    const uint8_t kind = th[o];
    if (kind == 0) break;
    if (kind == 1) {
      ++o;
      continue;
    }
    if (o + 1 >= doff || th[o + 1] < 2 || o + th[o + 1] > doff) fail(s, "sent a malformed TCP option list");
    const uint8_t olen = th[o + 1];
    if (kind == 2 && (olen != 4 || !(flags & RTE_TCP_SYN_FLAG))) fail(s, "sent a bad MSS option");
    if (kind == 2 && rd16(th + o + 2) > kMtu[port] - 40) fail(s, "offered an MSS above the egress MTU");
    if (kind == 3) ws = true, wscale = th[o + 2];
    if (kind == 4) sack_ok = true;
    if (kind == 5 && (olen < 10 || (olen - 2) % 8 != 0)) fail(s, "sent a malformed SACK option");
    if (kind == 8) {
      if (olen != 10) fail(s, "sent a malformed timestamp option");
      ts = true, tsval = rd32(th + o + 2);
    }
    o += olen;
  }
  const bool syn_only = (flags & (RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG)) == RTE_TCP_SYN_FLAG;
  const int idx = conn_of_frame(s, rd32(ip + 16), rd16(th), rd16(th + 2), syn_only);
  if (g_trace) trace_segment("<-", static_cast<unsigned>(idx), flags, seq, ack, rd16(th + 14), payload, doff - 20);
  if (idx < 0) return;
  Conn& c = s.conns[idx];
  const uint32_t seg_len = payload + ((flags & RTE_TCP_SYN_FLAG) ? 1 : 0) + ((flags & RTE_TCP_FIN_FLAG) ? 1 : 0);
  if (syn_only && side_of(static_cast<unsigned>(idx)) == kActive) c.lport = rd16(th), c.syn_sent = true;
  if (flags & RTE_TCP_SYN_FLAG) {
    c.have_iss = true;
    c.st_iss = seq;
    c.st_max = seq + 1;
    c.st_ts = ts, c.st_ws = ws, c.st_sack = sack_ok, c.st_wscale = wscale;
    c.peer_acked = seq;
  }
  if (c.have_iss && !(flags & RTE_TCP_RST_FLAG) && seq_gt(seq + seg_len, c.st_max)) c.st_max = seq + seg_len;
  if (flags & RTE_TCP_ACK_FLAG) c.st_ack = ack, c.syn_sent = false;
  c.st_win = rd16(th + 14);
  if (ts) c.st_tsval = tsval;
  if (payload > 0) {
    c.st_last_seq = seq;
    c.mss_est = static_cast<uint16_t>(std::max<uint32_t>(c.mss_est, payload));
  }
}

void capture(Stack& s) {
  static uint8_t frame[16384];
  for (unsigned p = 0; p < kPorts; ++p)
    for (unsigned q = 0; q < kWorkers; ++q) {
      rte_mbuf* ms[256];
      unsigned n;
      while ((n = rte_ring_dequeue_burst(P->tx_rings[p][q], reinterpret_cast<void**>(ms), 256, nullptr)) > 0)
        for (unsigned i = 0; i < n; ++i) {
          const uint32_t len = std::min<uint32_t>(rte_pktmbuf_pkt_len(ms[i]), sizeof frame);
          const auto* f = static_cast<const uint8_t*>(rte_pktmbuf_read(ms[i], 0, len, frame));
          if (!f) fail(s, "unreadable frame");
          observe(s, f, len, p);
          rte_pktmbuf_free(ms[i]);
        }
    }
}

// --- the worker loop and the checks -------------------------------------------------

uint64_t event(const Stack& s, stack::Event e) {
  uint64_t t = 0;
  for (const auto& c : s.events) t += c.get(e);
  return t;
}
uint64_t drop(const Stack& s, stack::DropReason r) {
  uint64_t t = 0;
  for (const auto& c : s.drops) t += c.get(r);
  return t;
}

void check_accounting(const Stack& s) {
  uint64_t sent = 0, drops = 0;
  for (const auto& tx : s.tx)
    for (uint16_t p = 0; p < kPorts; ++p) sent += tx->stats(p).packets.get();
  for (const auto& d : s.drops) drops += d.total();
  const uint64_t held = P->router->arp().table().held_total() + P->router->ip().fragments_held();
  const uint64_t in = s.rx + event(s, stack::Event::originated);
  const uint64_t out = sent + drops + event(s, stack::Event::consumed) + held;
  if (in != out) {
    std::fprintf(stderr, "accounting: rx %llu + originated %llu != tx %llu + drops %llu + consumed %llu + held %llu\n",
                 static_cast<unsigned long long>(s.rx),
                 static_cast<unsigned long long>(event(s, stack::Event::originated)),
                 static_cast<unsigned long long>(sent), static_cast<unsigned long long>(drops),
                 static_cast<unsigned long long>(event(s, stack::Event::consumed)),
                 static_cast<unsigned long long>(held));
    fail(s, "packets lost or double counted");
  }
  // Every frame is addressed to ngstack: nothing is forwarded, so a packet
  // dropped as too big for its MTU is one TCP made too big.
  if (drop(s, stack::DropReason::ipv4_frag_needed) != 0) fail(s, "TCP sent a segment larger than the egress MTU");
  if (s.tcp->stat(stack::tcp::Stat::no_timer) != 0) fail(s, "TCP found no timer node");
  // The workers' buffer budgets count exactly the mbufs queued: never below
  // 0, never more than the pool has out.
  int64_t queued = 0;
  for (unsigned w = 0; w < kWorkers; ++w) {
    if (s.tcp->buffers_held(w) < 0) fail(s, "a worker's buffer budget went below 0");
    queued += s.tcp->buffers_held(w);
  }
  if (queued > int64_t{P->pool->size} - int64_t{rte_mempool_avail_count(P->pool)})
    fail(s, "the buffer budgets count more mbufs than are out of the pool");
}

// The rest of each worker's loop until nothing is queued: drain, poll,
// timers, tx flush; then what was sent is read back.
void pump(Stack& s) {
  for (unsigned pass = 0; pass < 64; ++pass) {
    unsigned drained = 0;
    for (unsigned w = 0; w < kWorkers; ++w) {
      drained += P->netisr->drain(w, 256);
      P->router->poll(w, g_now);
      s.tcp->poll(w);
      for (auto& sv : s.services) sv->poll(w, g_now);
      s.timers[w]->run(g_now);
      s.tx[w]->flush_all();
    }
    capture(s);
    if (g_trace)
      for (unsigned w = 0; w < kWorkers; ++w) s.max_armed = std::max(s.max_armed, s.timers[w]->armed());
    if (drained == 0) return check_accounting(s);
  }
}

void flush_burst(Stack& s) {
  if (s.burst.empty()) return;
  s.rx += s.burst.size();
  P->netisr->dispatch(s.burst_worker, P->ether, P->port_ids[s.burst_port], 0, s.burst.data(),
                     static_cast<uint16_t>(s.burst.size()));
  s.burst.clear();
  pump(s);
}

void advance(Stack& s, uint8_t d) {
  flush_burst(s);
  // 0: 100 us; else (1 + low nibble) << high nibble milliseconds: 1 ms .. 524 s.
  const uint64_t hz = rte_get_tsc_hz();
  const uint64_t us = d == 0 ? 100 : (uint64_t{1} + (d & 15)) * (uint64_t{1} << (d >> 4)) * 1000;
  g_now += us * hz / 1000000;
  if (g_trace) std::fprintf(stderr, "  .. %llu us\n", static_cast<unsigned long long>(us));
  pump(s);
}

// --- building segments ------------------------------------------------------------------

struct Seg {
  unsigned conn = 0;
  uint8_t flags = 0;
  uint32_t seq = 0, ack = 0;
  uint16_t win = 65535, urp = 0;
  uint8_t opts[64];
  unsigned optlen = 0;
  int raw_doff = -1;
  uint8_t payload[1600];
  unsigned len = 0;
  uint8_t op = 0;
};

const char kHttpRequest[] = "GET / HTTP/1.1\r\nHost: fuzz\r\n\r\n";

void fill_payload(Seg& g, unsigned svc) {
  for (unsigned i = 0; i < g.len; ++i)
    g.payload[i] = svc == 3 ? static_cast<uint8_t>(kHttpRequest[i % (sizeof kHttpRequest - 1)])
                            : static_cast<uint8_t>('a' + (g.seq + i) % 26);
}

void put_ts(Seg& g, uint32_t val, uint32_t ecr) {
  g.opts[g.optlen++] = 1, g.opts[g.optlen++] = 1, g.opts[g.optlen++] = 8, g.opts[g.optlen++] = 10;
  wr32(g.opts + g.optlen, val), wr32(g.opts + g.optlen + 4, ecr);
  g.optlen += 8;
}

// Builds the frame of g, from peer to ngstack, and sends it (or holds it for a burst).
void send_segment(Stack& s, const Seg& g) {
  const Peer& pr = kPeers[peer_of(g.conn)];
  const unsigned svc = side_of(g.conn), pport = pport_of(g.conn);
  const uint16_t lport = svc == kActive ? s.conns[g.conn].lport : kServicePorts[svc];
  const unsigned optlen = std::min((g.optlen + 3) & ~3u, 40u);
  const unsigned hdr = 20 + optlen;
  const unsigned total = 20 + hdr + g.len;
  rte_mbuf* m = rte_pktmbuf_alloc(P->pool);
  if (!m) fail(s, "mbuf pool exhausted");
  auto* f = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, static_cast<uint16_t>(14 + total)));
  if (!f) fail(s, "frame too long");
  std::memset(f, 0, 14 + total);
  const uint8_t our_mac[6] = {0x02, 0, 0, 0, 1, static_cast<uint8_t>(pr.port)};
  const uint8_t peer_mac[6] = {0x02, 0, 0, 0, 0, pr.mac_last};
  std::memcpy(f, our_mac, 6);
  std::memcpy(f + 6, peer_mac, 6);
  wr16(f + 12, RTE_ETHER_TYPE_IPV4);
  uint8_t* ip = f + 14;
  ip[0] = 0x45;
  wr16(ip + 2, static_cast<uint16_t>(total));
  wr16(ip + 4, static_cast<uint16_t>(s.rx));
  wr16(ip + 6, 0x4000);  // DF
  ip[8] = 64;
  ip[9] = IPPROTO_TCP;
  wr32(ip + 12, pr.addr);
  wr32(ip + 16, kOurAddr[pr.port]);
  uint8_t* th = ip + 20;
  wr16(th, static_cast<uint16_t>(kPeerPortBase + pport));
  wr16(th + 2, lport);
  wr32(th + 4, g.seq);
  wr32(th + 8, g.ack);
  th[12] = static_cast<uint8_t>((g.raw_doff >= 0 ? g.raw_doff : static_cast<int>(hdr / 4)) << 4);
  th[13] = g.flags;
  wr16(th + 14, g.win);
  wr16(th + 18, g.urp);
  std::memcpy(th + 20, g.opts, std::min(g.optlen, 40u));  // the rest is EOL (zero) padding
  std::memcpy(th + hdr, g.payload, g.len);
  rte_ipv4_hdr iph;
  std::memcpy(&iph, ip, sizeof iph);
  wr16(ip + 10, rte_be_to_cpu_16(rte_ipv4_cksum(&iph)));
  uint16_t ck = rte_be_to_cpu_16(rte_ipv4_udptcp_cksum(&iph, th));
  const unsigned nic = g.op >> 5;
  if (nic == 7) ck ^= static_cast<uint16_t>(0x0100 | (g.seq & 0xff) | 1);  // wrong
  wr16(th + 16, ck);
  m->port = P->port_ids[pr.port];
  if (nic == 6) m->ol_flags |= RTE_MBUF_F_RX_IP_CKSUM_GOOD | RTE_MBUF_F_RX_L4_CKSUM_GOOD;
  if (nic == 5) m->ol_flags |= RTE_MBUF_F_RX_L4_CKSUM_BAD;
  const unsigned worker = (g.op >> 4) & 1;
  if (g_trace) trace_segment("->", g.conn, g.flags, g.seq, g.ack, g.win, g.len, g.optlen);
  if (!s.burst.empty() && (s.burst_port != pr.port || s.burst.size() >= 32)) flush_burst(s);
  if (s.burst.empty()) s.burst_worker = worker, s.burst_port = static_cast<uint16_t>(pr.port);
  s.burst.push_back(m);
  if (!(g.op & 8)) flush_burst(s);
}

// After the peer sent g: what it has sent so far, as far as it is believable.
void peer_sent(Conn& c, const Seg& g, bool advance_nxt) {
  c.used = true;
  const uint32_t seg_len = g.len + ((g.flags & RTE_TCP_SYN_FLAG) ? 1 : 0) + ((g.flags & RTE_TCP_FIN_FLAG) ? 1 : 0);
  const uint32_t end = g.seq + seg_len;
  if (advance_nxt && seq_gt(end, c.peer_nxt) && static_cast<uint32_t>(end - c.peer_nxt) < (1u << 20)) c.peer_nxt = end;
  if ((g.flags & RTE_TCP_ACK_FLAG) && c.have_iss && seq_gt(g.ack, c.peer_acked) &&
      !seq_gt(g.ack, c.st_max))
    c.peer_acked = g.ack;
}

unsigned decode_conn(uint8_t b) {
  return conn_index(b & 3, kServiceOfBits[(b >> 2) & 7], b >> 5);
}

// op 0, 1: every field from the input.
//   conn   bits 0-1 peer, 2-4 ngstack's side (echo, discard, source, http,
//          the harness's client, source, http, closed port 13), 5-7 peer port
//   flags  the TCP flags byte as sent
//   mode   bits 0-1 SEQ: the peer's next, ngstack's ACK (RCV.NXT), raw u32, its right window edge
//          bits 2-3 ACK: all ngstack sent, the peer's last ACK, raw u32, the last ACK + one segment
//          bit 4, 5: a signed 16-bit delta to SEQ, ACK follows
//          bit 6: the window follows (else 65535); bit 7: an options byte follows
//   options bit 0 MSS (u16), 1 window scale (u8), 2 SACK-permitted, 3 timestamps (a byte:
//          bits 0-1 TSval next / same / older by a u16 / raw u32, bit 2 TSecr raw u32
//          else ngstack's last TSval), 4 SACK blocks (a byte: bits 0-1 blocks - 1, bit 2 raw
//          u32 pairs, else byte pairs in segments (bit 3: bytes) above the last ACK),
//          5 garbage (a length byte, then the bytes), 6 garbage first, 7 data offset (a byte)
//   payload bits 0-5 length, bit 7: the length's low byte follows (length mod 1601), bit 6:
//          the bytes come from the input (else a pattern; HTTP requests for port 80)
void full_segment(Stack& s, Reader& r, uint8_t op) {
  Seg g;
  g.op = op;
  g.conn = decode_conn(r.u8());
  Conn& c = s.conns[g.conn];
  g.flags = r.u8();
  const uint8_t mode = r.u8();
  switch (mode & 3) {
    case 0: g.seq = c.peer_nxt; break;
    case 1: g.seq = c.st_ack; break;
    case 2: g.seq = r.u32(); break;
    default: g.seq = c.right_edge(); break;
  }
  if (mode & 0x10) g.seq += static_cast<uint32_t>(static_cast<int32_t>(static_cast<int16_t>(r.u16())));
  switch ((mode >> 2) & 3) {
    case 0: g.ack = c.st_max; break;
    case 1: g.ack = c.peer_acked; break;
    case 2: g.ack = r.u32(); break;
    default: g.ack = seq_gt(c.peer_acked + c.mss_est, c.st_max) ? c.st_max : c.peer_acked + c.mss_est; break;
  }
  if (mode & 0x20) g.ack += static_cast<uint32_t>(static_cast<int32_t>(static_cast<int16_t>(r.u16())));
  if (mode & 0x40) g.win = r.u16();
  if (g.flags & RTE_TCP_URG_FLAG) g.urp = 1;
  if (mode & 0x80) {
    const uint8_t o = r.u8();
    uint8_t garbage[40];
    unsigned glen = 0;
    if (o & 0x20) glen = static_cast<unsigned>(r.take(garbage, r.u8() % 41u));
    if ((o & 0x40) && glen) std::memcpy(g.opts, garbage, glen), g.optlen = glen;
    if (o & 1) {
      g.opts[g.optlen++] = 2, g.opts[g.optlen++] = 4;
      wr16(g.opts + g.optlen, r.u16());
      g.optlen += 2;
    }
    if (o & 2) g.opts[g.optlen++] = 1, g.opts[g.optlen++] = 3, g.opts[g.optlen++] = 3, g.opts[g.optlen++] = r.u8();
    if (o & 4) g.opts[g.optlen++] = 1, g.opts[g.optlen++] = 1, g.opts[g.optlen++] = 4, g.opts[g.optlen++] = 2;
    if (o & 8) {
      const uint8_t t = r.u8();
      uint32_t val;
      switch (t & 3) {
        case 0: val = ++c.peer_ts; break;
        case 1: val = c.peer_ts; break;
        case 2: val = c.peer_ts - r.u16(); break;
        default: val = r.u32(); break;
      }
      put_ts(g, val, (t & 4) ? r.u32() : c.st_tsval);
    }
    if (o & 0x10) {
      const uint8_t b = r.u8();
      const unsigned n = (b & 3) + 1u;
      if (g.optlen + 2 + 8 * n <= 40) {
        g.opts[g.optlen++] = 5, g.opts[g.optlen++] = static_cast<uint8_t>(2 + 8 * n);
        const uint32_t unit = (b & 8) ? 1 : c.mss_est;
        for (unsigned i = 0; i < n; ++i) {
          uint32_t start, end;
          if (b & 4) {
            start = r.u32(), end = r.u32();
          } else {
            start = c.peer_acked + r.u8() * unit;
            end = start + (r.u8() + 1u) * unit;
          }
          wr32(g.opts + g.optlen, start), wr32(g.opts + g.optlen + 4, end);
          g.optlen += 8;
        }
      }
    }
    if (!(o & 0x40) && glen && g.optlen + glen <= 40) std::memcpy(g.opts + g.optlen, garbage, glen), g.optlen += glen;
    g.optlen = std::min(g.optlen, 40u);
    if (o & 0x80) g.raw_doff = r.u8() & 15;
  }
  const uint8_t p = r.u8();
  g.len = p & 0x3f;
  if (p & 0x80) g.len = ((p & 0x3fu) << 8 | r.u8()) % 1601u;
  fill_payload(g, side_of(g.conn));
  if (p & 0x40) r.take(g.payload, g.len);
  if (g.flags & RTE_TCP_SYN_FLAG) {
    c.syn_ts = c.syn_ws = c.syn_sack = false;
    for (unsigned i = 0; i + 1 < g.optlen;) {  // what this SYN offered, as ngstack will parse it
      const uint8_t k = g.opts[i];
      if (k == 0) break;
      if (k == 1) { ++i; continue; }
      const uint8_t l = g.opts[i + 1];
      if (l < 2 || i + l > g.optlen) break;
      if (k == 3 && l == 3) c.syn_ws = true;
      if (k == 4 && l == 2) c.syn_sack = true;
      if (k == 8 && l == 10) c.syn_ts = true;
      i += l;
    }
    if (!(g.flags & RTE_TCP_ACK_FLAG)) c.have_iss = false;
  }
  peer_sent(c, g, (mode & 3) != 2);
  send_segment(s, g);
}

// op 2, 3: a well-behaved peer's segment in two bytes.
//   conn    as full_segment's
//   action  bits 0-2 what, bits 3-7 a code:
//     0 ACK of all ngstack sent          1 data (code: length), PSH
//     2 FIN (code: data length)          3 SYN (code bits: MSS, window scale, SACK-permitted,
//                                          timestamps, MSS 536 rather than 1460); a fresh ISN
//     4 RST at RCV.NXT (code bit 0: RST+ACK)
//     5 duplicate ACK; with SACK agreed, a block [last ACK + (1 + code % 4) segments, all sent)
//     6 data beyond a hole of 1 + code % 4 segments (the peer's next stays put)
//     7 ACK with window code * 2048 (0: a zero window)
constexpr uint16_t kLengths[32] = {0,   1,   2,   5,   10,   20,   50,   100,  200,  300, 500,
                                   536, 700, 1000, 1200, 1216, 1228, 1240, 1400, 1448, 1460, 1461,
                                   1500, 3,   4,   7,   64,   128,  256,  512,  1024, 1600};
void compact_segment(Stack& s, Reader& r, uint8_t op) {
  Seg g;
  g.op = op;
  g.conn = decode_conn(r.u8());
  Conn& c = s.conns[g.conn];
  const uint8_t a = r.u8();
  const unsigned code = a >> 3;
  g.seq = c.peer_nxt;
  g.ack = c.st_max;
  g.flags = RTE_TCP_ACK_FLAG;
  bool advance_nxt = true;
  switch (a & 7) {
    case 0: break;
    case 1: g.flags |= RTE_TCP_PSH_FLAG, g.len = kLengths[code]; break;
    case 2: g.flags |= RTE_TCP_FIN_FLAG, g.len = kLengths[code]; break;
    case 3:
      if (c.used) c.peer_isn = c.peer_nxt + 100000;  // a new incarnation
      g.seq = c.peer_nxt = c.peer_isn;
      // Answering ngstack's SYN: SYN-ACK (else a new connection's SYN).
      g.ack = c.syn_sent ? c.st_max : 0;
      g.flags = c.syn_sent ? RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG : RTE_TCP_SYN_FLAG;
      if (!c.syn_sent) c.have_iss = false;
      c.syn_ts = code & 8, c.syn_ws = code & 2, c.syn_sack = code & 4;
      if (code & 1) {
        g.opts[g.optlen++] = 2, g.opts[g.optlen++] = 4;
        wr16(g.opts + g.optlen, (code & 16) ? 536 : 1460);
        g.optlen += 2;
      }
      if (c.syn_ws) g.opts[g.optlen++] = 1, g.opts[g.optlen++] = 3, g.opts[g.optlen++] = 3, g.opts[g.optlen++] = 7;
      if (c.syn_sack) g.opts[g.optlen++] = 1, g.opts[g.optlen++] = 1, g.opts[g.optlen++] = 4, g.opts[g.optlen++] = 2;
      if (c.syn_ts) put_ts(g, ++c.peer_ts, 0);
      break;
    case 4:
      g.seq = c.st_ack;
      g.flags = (code & 1) ? RTE_TCP_RST_FLAG | RTE_TCP_ACK_FLAG : RTE_TCP_RST_FLAG;
      if (!(code & 1)) g.ack = 0;
      break;
    case 5:
      g.ack = c.peer_acked;
      if (c.syn_sack && c.st_sack) {
        const uint32_t start = c.peer_acked + (1 + code % 4) * uint32_t{c.mss_est};
        if (seq_gt(c.st_max, start)) {
          g.opts[g.optlen++] = 1, g.opts[g.optlen++] = 1, g.opts[g.optlen++] = 5, g.opts[g.optlen++] = 10;
          wr32(g.opts + g.optlen, start), wr32(g.opts + g.optlen + 4, c.st_max);
          g.optlen += 8;
        }
      }
      break;
    case 6:
      g.seq = c.peer_nxt + (1 + code % 4) * 536u;
      g.len = kLengths[(code >> 2) + 8];
      g.flags |= RTE_TCP_PSH_FLAG;
      advance_nxt = false;
      break;
    default: g.win = static_cast<uint16_t>(code * 2048); break;
  }
  if (c.ts_on() && !(g.flags & RTE_TCP_SYN_FLAG)) put_ts(g, ++c.peer_ts, c.st_tsval);
  fill_payload(g, side_of(g.conn));
  peer_sent(c, g, advance_nxt);
  send_segment(s, g);
}

// op 5: an ICMP error from the peer quoting a segment ngstack sent on conn.
//   conn, then a byte: bits 0-2 type/code (frag needed x2, port, host
//   unreachable, time exceeded, source quench, parameter problem, raw type
//   and code bytes), bit 3 a u16 MTU follows (else 1000), bits 4-5 the quoted
//   SEQ: its last data segment, the peer's last ACK, raw u32, its ISS
void icmp_error(Stack& s, Reader& r, uint8_t op) {
  flush_burst(s);
  const unsigned conn = decode_conn(r.u8());
  const Conn& c = s.conns[conn];
  const uint8_t sel = r.u8();
  static constexpr uint8_t kTypes[7][2] = {{3, 4}, {3, 4}, {3, 3}, {3, 1}, {11, 0}, {4, 0}, {12, 0}};
  uint8_t type, code;
  if ((sel & 7) == 7)
    type = r.u8(), code = r.u8();
  else
    type = kTypes[sel & 7][0], code = kTypes[sel & 7][1];
  const uint16_t mtu = (sel & 8) ? r.u16() : 1000;
  uint32_t qseq;
  switch ((sel >> 4) & 3) {
    case 0: qseq = c.st_last_seq; break;
    case 1: qseq = c.peer_acked; break;
    case 2: qseq = r.u32(); break;
    default: qseq = c.st_iss; break;
  }
  const Peer& pr = kPeers[peer_of(conn)];
  const unsigned svc = side_of(conn), pport = pport_of(conn);
  const uint16_t lport = svc == kActive ? c.lport : kServicePorts[svc];
  constexpr unsigned total = 20 + 8 + 20 + 8;
  rte_mbuf* m = rte_pktmbuf_alloc(P->pool);
  if (!m) fail(s, "mbuf pool exhausted");
  auto* f = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, 14 + total));
  std::memset(f, 0, 14 + total);
  const uint8_t our_mac[6] = {0x02, 0, 0, 0, 1, static_cast<uint8_t>(pr.port)};
  const uint8_t peer_mac[6] = {0x02, 0, 0, 0, 0, pr.mac_last};
  std::memcpy(f, our_mac, 6);
  std::memcpy(f + 6, peer_mac, 6);
  wr16(f + 12, RTE_ETHER_TYPE_IPV4);
  uint8_t* ip = f + 14;
  ip[0] = 0x45;
  wr16(ip + 2, total);
  ip[8] = 64;
  ip[9] = IPPROTO_ICMP;
  wr32(ip + 12, pr.addr);
  wr32(ip + 16, kOurAddr[pr.port]);
  uint8_t* icmp = ip + 20;
  icmp[0] = type, icmp[1] = code;
  wr16(icmp + 6, mtu);
  uint8_t* q = icmp + 8;  // the quoted header: ngstack's segment to the peer
  q[0] = 0x45;
  wr16(q + 2, 40);
  wr16(q + 6, 0x4000);
  q[8] = 64;
  q[9] = IPPROTO_TCP;
  wr32(q + 12, kOurAddr[pr.port]);
  wr32(q + 16, pr.addr);
  rte_ipv4_hdr qh;
  std::memcpy(&qh, q, sizeof qh);
  wr16(q + 10, rte_be_to_cpu_16(rte_ipv4_cksum(&qh)));
  wr16(q + 20, lport);
  wr16(q + 22, static_cast<uint16_t>(kPeerPortBase + pport));
  wr32(q + 24, qseq);
  const uint16_t icmp_ck = static_cast<uint16_t>(~rte_raw_cksum(icmp, total - 20));
  std::memcpy(icmp + 2, &icmp_ck, 2);  // the sum is over words in memory order: stored as is
  rte_ipv4_hdr iph;
  std::memcpy(&iph, ip, sizeof iph);
  wr16(ip + 10, rte_be_to_cpu_16(rte_ipv4_cksum(&iph)));
  m->port = P->port_ids[pr.port];
  s.rx += 1;
  P->netisr->dispatch((op >> 4) & 1, P->ether, m->port, 0, &m, 1);
  pump(s);
}

// The harness's own client: what it opens with Tcp::connect. ctx non-null:
// it reads everything as it arrives and closes after the peer's FIN; else
// it reads only when a step says so.
uint8_t g_pattern[16384];
void active_connected(void*, TcpConnT& c) { c.send(g_pattern, 1000); }
void active_readable(void* ctx, TcpConnT& c) {
  if (!ctx) return;
  c.read(nullptr, c.readable());
  if (c.eof()) c.close();
}
void active_writable(void*, TcpConnT&) {}
void active_closed(void*, TcpConnT&, stack::socket::CloseReason) {}
const stack::socket::TcpHandlers kActiveHandlers = {nullptr, active_connected, active_readable, active_writable,
                                                    active_closed};

// op 6: the harness's client (the conn byte's kActive side). A byte: bits 0-1
// peer, 2-4 the peer's port, 5-7 what: 0 connect (reading as data comes),
// 6 connect (reading when told), and on the open connection (Tcp::with)
// 1 send (a length code byte follows), 2 shutdown, 3 close, 4 abort, 5 read
// everything, 7 send until the buffer is full. The worker: op bit 4.
void app_step(Stack& s, Reader& r, uint8_t op) {
  flush_burst(s);
  const uint8_t a = r.u8();
  const unsigned peer = a & 3, slot = (a >> 2) & 7, what = a >> 5;
  Conn& c = s.conns[conn_index(peer, kActive, slot)];
  if (what == 0 || what == 6) {
    const unsigned w = (op >> 4) & 1;
    auto ref = s.tcp->connect(w, kPeers[peer].addr, static_cast<uint16_t>(kPeerPortBase + slot), kActiveHandlers,
                              what == 0 ? &c : nullptr, g_now);
    if (ref) {
      c.ref = *ref, c.worker = w;
      c.have_iss = false, c.lport = 0;
      c.syn_ts = c.syn_ws = c.syn_sack = true;  // ngstack's SYN offers them all; the peer's SYN-ACK decides
    }
  } else {
    const uint16_t len = what == 1 ? kLengths[r.u8() & 31] : 0;
    s.tcp->with(c.ref, c.worker, g_now, [&](TcpConnT& k) {
      switch (what) {
        case 1: k.send(g_pattern, len); break;
        case 2: k.shutdown(); break;
        case 3: k.close(); break;
        case 4: k.abort(); break;
        case 5: k.read(nullptr, k.readable()); break;
        default:
          while (k.send(g_pattern, sizeof g_pattern) == sizeof g_pattern) {
          }
          break;
      }
    });
  }
  pump(s);
}

// --- one input ------------------------------------------------------------------------

// The router's layers, and the input's Tcp, send and count through these.
std::vector<stack::WorkerIo> worker_io(std::unique_ptr<stack::TxBuffers>* tx,
                                       std::unique_ptr<stack::timer::TimerWheel>* timers,
                                       stack::DropCounters* drops, stack::EventCounters* events) {
  std::vector<stack::WorkerIo> io;
  for (unsigned w = 0; w < kWorkers; ++w) io.push_back({tx[w].get(), &drops[w], &events[w], timers[w].get()});
  return io;
}

void make_worker_io(const conf::Config& cfg, std::unique_ptr<stack::TxBuffers>* tx,
                    std::unique_ptr<stack::timer::TimerWheel>* timers, stack::DropCounters* drops) {
  std::vector<uint16_t> ids(P->port_ids, P->port_ids + kPorts);
  for (unsigned w = 0; w < kWorkers; ++w) {
    tx[w] = std::make_unique<stack::TxBuffers>(ids, static_cast<uint16_t>(w), 32, drops[w]);
    auto wheel = stack::timer::TimerWheel::create({rte_get_tsc_hz(), 1000, 1024, stack::modes::timer_nodes(cfg)});
    if (!wheel) die(wheel.error().c_str());
    timers[w] = std::move(*wheel);
  }
}

void start(Stack& s, uint8_t variant) {
  const conf::Config& cfg = config_for(variant);
  s.cfg = &cfg;
  make_worker_io(cfg, s.tx, s.timers, s.drops);
  const auto io = worker_io(s.tx, s.timers, s.drops, s.events);
  P->router->bind(io);
  const auto& dc = cfg.dispatch;
  auto t = stack::tcp::Tcp::create(cfg, P->router->ip(), kWorkers, dc.buckets,
                                   dispatch::Netisr::round_robin_map(dc.buckets, kWorkers),
                                   stack::modes::ports_rss_key(cfg), rte_get_tsc_hz());
  if (!t) die(t.error().c_str());
  s.tcp = std::move(*t);
  s.tcp->bind(io);
  P->tcp = s.tcp.get();
  for (const auto& sc : cfg.services) {
    if (!conf::is_tcp_service(sc.type)) continue;
    auto sv = stack::services::make_tcp_service(sc, *s.tcp, kWorkers);
    if (!sv) die(sv.error().c_str());
    s.services.push_back(std::move(*sv));
  }
  // stack.dispatch's mode for tcp, as app/runtime.cpp applies it.
  auto st = P->netisr->reconfigure([&](dispatch::DispatchConfig& c) {
    c.protos[P->tcp_proto].mode = dispatch::Mode::deferred;
    if (auto it = dc.protocols.find("tcp"); it != dc.protocols.end() && it->second.mode)
      c.protos[P->tcp_proto].mode = dispatch::mode_from_name(*it->second.mode).value_or(dispatch::Mode::deferred);
  });
  if (!st) die(st.error().c_str());
  const std::atomic<bool> stop{false};
  for (unsigned w = 0; w < kWorkers; ++w)
    if (!P->netisr->sync(w, stop)) die("netisr sync");
  for (unsigned w = 0; w < kWorkers; ++w) s.tcp->worker_online(w);
  for (unsigned i = 0; i < kConns; ++i) {
    Conn& c = s.conns[i];
    c.peer_isn = c.peer_nxt = 0x10000000u * (i % 16) + 0x9e3779b9u * i;
    c.peer_ts = 1000 + i;
  }
}

void finish(Stack& s) {
  flush_burst(s);
  pump(s);
  if (g_trace) {
    for (const auto& v : s.tcp->connections())
      std::fprintf(stderr, "  conn %u:%u %s snd_wnd %u cwnd %u unacked %u sndq %u rcvq %u\n", v.tuple.faddr & 0xff,
                   v.tuple.fport, stack::tcp::state_name(v.state), v.snd_wnd, v.cwnd, v.unacked, v.send_queue,
                   v.recv_queue);
    std::fprintf(stderr, "  timer nodes: at most %u armed on a wheel of %u\n", s.max_armed, s.timers[0]->capacity());
    for (unsigned i = 0; i < stack::tcp::kStatCount; ++i)
      if (const uint64_t n = s.tcp->stat(static_cast<stack::tcp::Stat>(i)))
        std::fprintf(stderr, "  tcp %s %llu\n",
                     std::string(stack::tcp::stat_name(static_cast<stack::tcp::Stat>(i))).c_str(),
                     static_cast<unsigned long long>(n));
  }
  // As Router::shutdown: the services, then TCP (workers offline first: the
  // listen table's grace periods wait for online readers).
  for (unsigned w = 0; w < kWorkers; ++w) s.tcp->worker_offline(w);
  for (auto& sv : s.services) sv->shutdown();
  s.tcp->shutdown();
  for (unsigned w = 0; w < kWorkers; ++w) s.tx[w]->flush_all();
  capture(s);
  check_accounting(s);
  for (unsigned w = 0; w < kWorkers; ++w)
    if (s.tcp->buffers_held(w) != 0) fail(s, "a worker's buffer budget is not back to 0 after shutdown");
  s.services.clear();
  P->tcp = nullptr;
  s.tcp.reset();
  P->router->bind(worker_io(P->idle_tx, P->idle_timers, P->idle_drops, P->idle_events));
  for (auto& t : s.timers) t.reset();
  for (auto& t : s.tx) t.reset();
  const unsigned in_use = P->pool->size - rte_mempool_avail_count(P->pool);
  if (in_use != 0) {
    std::fprintf(stderr, "mempool: %u mbufs still out of the pool after shutdown\n", in_use);
    fail(s, "mbuf leak");
  }
}

// The harness's `tcp` protocol: the input's Tcp's handler and placement.
void tcp_input(void*, unsigned w, uint16_t port, rte_mbuf** pkts, uint16_t n) {
  stack::tcp::Tcp::input_handler(P->tcp, w, port, pkts, n);
}
unsigned tcp_m2cpuid(const void*, const rte_mbuf* m, unsigned source) {
  return stack::tcp::Tcp::m2cpuid(P->tcp, m, source);
}

void init_router() {
  // The router without services: the inputs' Tcps run them.
  static conf::Config cfg = config_for(0);
  cfg.services.clear();
  std::vector<stack::PortInfo> info;
  for (unsigned p = 0; p < kPorts; ++p)
    info.push_back({P->port_ids[p], rte_ether_addr{{0x02, 0, 0, 0, 1, static_cast<uint8_t>(p)}}, cfg.ports[p].mtu});
  auto r = stack::modes::Router::create(cfg, info, P->pool, kWorkers, rte_get_tsc_hz());
  if (!r) die(r.error().c_str());
  P->router = std::move(*r);
  make_worker_io(cfg, P->idle_tx, P->idle_timers, P->idle_drops);
  P->router->bind(worker_io(P->idle_tx, P->idle_timers, P->idle_drops, P->idle_events));
  // As app/runtime.cpp's setup_dispatch.
  P->netisr = std::make_unique<dispatch::Netisr>(kWorkers, cfg.dispatch.buckets, stack::modes::ports_rss_key(cfg));
  auto settings = [](dispatch::ProtocolSpec spec) {
    spec.max_qlimit = std::max<uint32_t>(spec.qlimit, 4096);
    return spec;
  };
  auto e = P->router->register_protocols(*P->netisr, settings);
  if (!e) die(e.error().c_str());
  P->ether = *e;
  // The router registered its own Tcp's `tcp`; TCP goes to the harness's
  // (the spec Tcp::register_protocol makes) instead.
  dispatch::ProtocolSpec spec;
  spec.name = "fuzz_tcp";
  spec.handler = tcp_input;
  spec.policy = dispatch::Policy::cpu;
  spec.m2cpuid = tcp_m2cpuid;
  auto id = P->netisr->register_protocol(settings(spec));
  if (!id) die(id.error().c_str());
  P->tcp_proto = *id;
  P->router->ip().set_upper(P->netisr.get(), IPPROTO_TCP, *id);
  const std::atomic<bool> stop{false};
  for (unsigned w = 0; w < kWorkers; ++w)
    if (!P->netisr->sync(w, stop)) die("netisr sync");
  for (unsigned w = 0; w < kWorkers; ++w) P->router->worker_online(w);
  // ARP announces our addresses at the first poll: sent and dropped here.
  g_now = rte_get_tsc_hz() * 100000;
  for (unsigned w = 0; w < kWorkers; ++w) {
    P->router->poll(w, g_now);
    P->idle_tx[w]->flush_all();
  }
  for (unsigned p = 0; p < kPorts; ++p)
    for (unsigned q = 0; q < kWorkers; ++q) {
      void* m;
      while (rte_ring_dequeue(P->tx_rings[p][q], &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size > 8192) return 0;
  Reader r{data, size};
  const uint8_t variant = r.u8();
  // The same start for every input: ISNs, cookies and timestamps replay.
  g_now = rte_get_tsc_hz() * 100000;
  rte_srand(0x6e6773746163ULL);
  auto s = std::make_unique<Stack>();
  start(*s, variant);
  while (!r.empty() && s->step < kMaxSteps) {
    ++s->step;
    const uint8_t op = r.u8();
    if (g_trace) std::fprintf(stderr, "step %u: op %#x\n", s->step, op);
    switch (op & 7) {
      case 0:
      case 1: full_segment(*s, r, op); break;
      case 6: app_step(*s, r, op); break;
      case 2: compact_segment(*s, r, op); break;
      case 3:
        compact_segment(*s, r, op);
        advance(*s, r.u8());
        break;
      case 5: icmp_error(*s, r, op); break;
      default: advance(*s, r.u8()); break;
    }
  }
  finish(*s);
  return 0;
}
