// TCP (stack/tcp) through the real stack: a Router built from YAML over a
// net_ring port whose tx rings the test reads back, a real mempool, the
// protocols registered on a real netisr, each worker's own timer wheel. The
// test plays the far end of every connection: it builds segments with
// tests/lib/packet_builder.hpp, hands them to netisr.dispatch() as a worker's
// rx loop would, runs the rest of the worker loop (drain, poll, timers, tx
// flush) and parses what the port sent, asserting bytes, named drops and
// TCP's counters. TCP reads the TSC itself for a segment's time; timers are
// driven by running the wheels at the TSC plus an offset the test advances.
// Every test ends with the mempool back to its full count.
//
// Topology: one port, lan 198.18.1.1/24; the peer is 198.18.1.10 (static ARP).
// Services: tcp-echo on 7, tcp-discard on 9, tcp-source (100 bytes) on 19.
#include <gtest/gtest.h>
#include <rte_cycles.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_pause.h>
#include <rte_ring.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <atomic>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "conf/loader.hpp"
#include "dispatch/netisr.hpp"
#include "dispatch/rss.hpp"
#include "stack/modes/router.hpp"
#include "tests/lib/eal_env.hpp"
#include "tests/lib/packet_builder.hpp"

using namespace ngstack;
using namespace ngstack::stack;
using test::TcpSegment;

namespace {

constexpr unsigned kMaxWorkers = 2;  // one tx queue (and ring) per worker
constexpr unsigned kRing = 4096;
constexpr unsigned kTickUs = 1000, kSlots = 1024;

constexpr uint32_t ip4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  return uint32_t{a} << 24 | uint32_t{b} << 16 | uint32_t{c} << 8 | d;
}
constexpr uint32_t kOurs = ip4(198, 18, 1, 1), kPeer = ip4(198, 18, 1, 10);
constexpr uint8_t kOurMac[6] = {0x02, 0, 0, 0, 0x01, 0x00};
constexpr uint8_t kPeerMac[6] = {0x02, 0, 0, 0, 0x00, 0x10};
constexpr uint16_t kEcho = 7, kDiscard = 9, kSource = 19;
constexpr uint16_t kOurMss = 1460;  // lan's MTU 1500 less 40
constexpr uint8_t kFin = TcpSegment::kFin, kSyn = TcpSegment::kSyn, kRst = TcpSegment::kRst,
                  kPsh = TcpSegment::kPsh, kAck = TcpSegment::kAck;

using Bytes = std::vector<uint8_t>;

uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t be32(const uint8_t* p) { return uint32_t{be16(p)} << 16 | be16(p + 2); }

// A segment as the stack sent it.
struct Seg {
  uint32_t src = 0, dst = 0;
  uint16_t sport = 0, dport = 0;
  uint32_t seq = 0, ack = 0;
  uint8_t flags = 0;
  uint16_t win = 0;
  std::vector<uint8_t> kinds;  // option kinds in order, NOPs left out
  bool has_mss = false;
  uint16_t mss = 0;
  int ws = -1;                 // the window scale option's shift, -1: none
  bool sack_ok = false;
  bool ts = false;
  uint32_t tsval = 0, tsecr = 0;
  std::vector<std::pair<uint32_t, uint32_t>> sack;
  Bytes data;
  bool checksums_ok = false;
  bool to_peer_mac = false;
};

std::optional<Seg> parse(const Bytes& f) {
  if (f.size() < 54 || be16(&f[12]) != 0x0800 || f[23] != 6) return std::nullopt;
  const uint8_t* ip = &f[14];
  const unsigned ihl = (ip[0] & 0x0f) * 4u;
  const unsigned total = be16(ip + 2);
  if (14 + total > f.size() || total < ihl + 20) return std::nullopt;
  const uint8_t* th = ip + ihl;
  const unsigned doff = (th[12] >> 4) * 4u;
  const unsigned tcp_len = total - ihl;
  if (doff < 20 || doff > tcp_len) return std::nullopt;
  Seg s;
  s.to_peer_mac = std::memcmp(&f[0], kPeerMac, 6) == 0;
  s.src = be32(ip + 12);
  s.dst = be32(ip + 16);
  s.sport = be16(th);
  s.dport = be16(th + 2);
  s.seq = be32(th + 4);
  s.ack = be32(th + 8);
  s.flags = th[13];
  s.win = be16(th + 14);
  for (unsigned o = 20; o < doff;) {
    const uint8_t kind = th[o];
    if (kind == 0) break;
    if (kind == 1) {
      ++o;
      continue;
    }
    if (o + 1 >= doff || th[o + 1] < 2 || o + th[o + 1] > doff) break;
    const uint8_t len = th[o + 1];
    s.kinds.push_back(kind);
    const uint8_t* v = th + o + 2;
    if (kind == 2 && len == 4) s.has_mss = true, s.mss = be16(v);
    if (kind == 3 && len == 3) s.ws = v[0];
    if (kind == 4 && len == 2) s.sack_ok = true;
    if (kind == 5)
      for (unsigned i = 0; i + 8 <= len - 2u; i += 8) s.sack.emplace_back(be32(v + i), be32(v + i + 4));
    if (kind == 8 && len == 10) s.ts = true, s.tsval = be32(v), s.tsecr = be32(v + 4);
    o += len;
  }
  s.data.assign(th + doff, th + tcp_len);
  // Both checksums verify: the sums over what they cover, checksum included, fold to 0xffff.
  const bool ip_ok = TcpSegment::fold(TcpSegment::sum(ip, ihl)) == 0xffff;
  const uint32_t pseudo = TcpSegment::sum(ip + 12, 8) + 6 + tcp_len;
  s.checksums_ok = ip_ok && TcpSegment::fold(pseudo + TcpSegment::sum(th, tcp_len)) == 0xffff;
  return s;
}

// What a TSO device puts on the wire for frame `m`: the payload cut into
// tso_segsz pieces, each behind a copy of the headers with its sequence
// number, lengths and both checksums; FIN and PSH only on the last piece.
// A frame without RTE_MBUF_F_TX_TCP_SEG is one piece (its checksums
// completed when it asked for that), or goes as it is.
std::vector<Bytes> cut_as_a_device_would(const rte_mbuf* m, const Bytes& f) {
  const bool tso = m->ol_flags & RTE_MBUF_F_TX_TCP_SEG;
  if (!tso && !(m->ol_flags & RTE_MBUF_F_TX_TCP_CKSUM)) return {f};
  const unsigned l4_len = tso ? m->l4_len : (f[m->l2_len + m->l3_len + 12] >> 4) * 4u;
  const unsigned hdrs = m->l2_len + m->l3_len + l4_len;
  if (f.size() < hdrs) return {};
  const std::size_t payload = f.size() - hdrs;
  const std::size_t seg = std::max<std::size_t>(1, tso ? m->tso_segsz : payload);
  std::vector<Bytes> out;
  const uint32_t seq0 = be32(&f[m->l2_len + m->l3_len + 4]);
  for (std::size_t off = 0; off == 0 || off < payload; off += seg) {
    const std::size_t n = std::min<std::size_t>(seg, payload - off);
    const bool last = off + n == payload;
    Bytes w(f.begin(), f.begin() + hdrs);
    w.insert(w.end(), f.begin() + static_cast<long>(hdrs + off), f.begin() + static_cast<long>(hdrs + off + n));
    uint8_t* ip = &w[m->l2_len];
    uint8_t* th = ip + m->l3_len;
    const unsigned total = m->l3_len + l4_len + static_cast<unsigned>(n);
    ip[2] = static_cast<uint8_t>(total >> 8), ip[3] = static_cast<uint8_t>(total);
    ip[10] = ip[11] = 0;
    const uint16_t ipsum = static_cast<uint16_t>(~TcpSegment::fold(TcpSegment::sum(ip, m->l3_len)));
    ip[10] = static_cast<uint8_t>(ipsum >> 8), ip[11] = static_cast<uint8_t>(ipsum);
    const uint32_t seq = seq0 + static_cast<uint32_t>(off);
    th[4] = static_cast<uint8_t>(seq >> 24), th[5] = static_cast<uint8_t>(seq >> 16);
    th[6] = static_cast<uint8_t>(seq >> 8), th[7] = static_cast<uint8_t>(seq);
    if (!last) th[13] &= static_cast<uint8_t>(~(TcpSegment::kFin | TcpSegment::kPsh));
    th[16] = th[17] = 0;
    const unsigned tcp_len = l4_len + static_cast<unsigned>(n);
    const uint32_t pseudo = TcpSegment::sum(ip + 12, 8) + 6 + tcp_len;
    const uint16_t tsum = static_cast<uint16_t>(~TcpSegment::fold(pseudo + TcpSegment::sum(th, tcp_len)));
    th[16] = static_cast<uint8_t>(tsum >> 8), th[17] = static_cast<uint8_t>(tsum);
    out.push_back(std::move(w));
  }
  return out;
}

std::string flags_of(uint8_t f) {
  std::string s;
  static constexpr std::pair<uint8_t, const char*> kNames[] = {
      {kSyn, "S"}, {kFin, "F"}, {kRst, "R"}, {kPsh, "P"}, {kAck, "."}};
  for (const auto& [bit, name] : kNames)
    if (f & bit) s += name;
  return s;
}

Bytes pattern(std::size_t n, uint8_t seed) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(seed + i * 7 + (i >> 8));
  return b;
}

// The far end of one connection, as the test plays it.
struct Peer {
  uint16_t sport = 0, dport = 0;
  uint32_t snd_nxt = 0;  // the peer's next sequence number
  uint32_t rcv_nxt = 0;  // the next sequence number expected from the stack
  uint32_t iss = 0;      // the stack's ISS
  bool ts = false;
  uint32_t tsval = 100, ts_recent = 0;
  uint16_t window = 65535;
};

// What a passive open offers in its SYN.
struct Offer {
  bool ws = false, ts = false, sack = false;
  uint8_t shift = 2;
};

struct Knobs {
  unsigned workers = 1;
  std::string services = "  - {type: tcp-echo, port: 7}\n  - {type: tcp-discard, port: 9}\n"
                         "  - {type: tcp-source, port: 19, bytes: 100}\n";
  unsigned groups = 128;
  std::string locking = "group";
  std::string tcp = "msl_ms: 50";  // stack.tcp's YAML
  bool tcp_direct = false;         // tcp explicitly in direct mode (2 workers)
  uint64_t tx_offloads = 0;        // what the port enabled (PortInfo::tx_offloads): checksums, TSO
  uint16_t tx_max_segs = 0;
  // Called after register_protocols, before the workers come online.
  std::function<void(modes::Router&)> setup;
};

std::string tcp_yaml(const Knobs& k) {
  std::string y = R"(mode: router
eal: {no_huge: true}
ports:
  - {name: lan, device: net_ring_tcp_lan}
workers: {lcores: [1, 2]}
router:
  interfaces:
    - {port: lan, addresses: [198.18.1.1/24]}
  arp:
    static:
      - {port: lan, address: 198.18.1.10, mac: "02:00:00:00:00:10"}
)";
  if (!k.services.empty()) y += "services:\n" + k.services;
  y += "stack:\n  connections: 1024\n  groups: " + std::to_string(k.groups) + "\n  locking: " + k.locking +
       "\n  tcp: {" + k.tcp + "}\n";
  return y;
}

class TcpTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    spdlog::set_level(spdlog::level::warn);
    pool_ = test::pool("tcp_pool", 4095, RTE_MBUF_DEFAULT_DATAROOM);
    if (port_set_up_) return;
    rte_ring* rx = rte_ring_create("tcp_lan_rx", 64, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    ASSERT_NE(rx, nullptr);
    for (unsigned q = 0; q < kMaxWorkers; ++q) {
      tx_rings_[q] = rte_ring_create(("tcp_lan_tx" + std::to_string(q)).c_str(), kRing, 0,
                                     RING_F_SP_ENQ | RING_F_SC_DEQ);
      ASSERT_NE(tx_rings_[q], nullptr);
    }
    const int id = rte_eth_from_rings("tcp_lan", &rx, 1, tx_rings_, kMaxWorkers, 0);
    ASSERT_GE(id, 0);
    port_ = static_cast<uint16_t>(id);
    rte_eth_conf conf{};
    ASSERT_EQ(rte_eth_dev_configure(port_, 1, kMaxWorkers, &conf), 0);
    ASSERT_EQ(rte_eth_rx_queue_setup(port_, 0, 64, 0, nullptr, pool_), 0);
    for (uint16_t q = 0; q < kMaxWorkers; ++q) ASSERT_EQ(rte_eth_tx_queue_setup(port_, q, 64, 0, nullptr), 0);
    ASSERT_EQ(rte_eth_dev_start(port_), 0);
    port_set_up_ = true;
  }
  static void TearDownTestSuite() { spdlog::set_level(spdlog::level::info); }

  void make(const Knobs& k) {
    workers_ = k.workers;
    auto cfg = conf::load_string(tcp_yaml(k), "tcp-test.yaml");
    ASSERT_TRUE(cfg.ok()) << cfg.error();
    rte_ether_addr mac;
    std::memcpy(mac.addr_bytes, kOurMac, 6);
    std::vector<PortInfo> info{{port_, mac, cfg->ports[0].mtu, k.tx_offloads, k.tx_max_segs}};
    const uint64_t hz = rte_get_tsc_hz();
    auto r = modes::Router::create(*cfg, info, pool_, workers_, hz);
    ASSERT_TRUE(r.ok()) << r.error();
    router_ = std::move(*r);
    std::vector<WorkerIo> io;
    for (unsigned w = 0; w < workers_; ++w) {
      drops_[w] = std::make_unique<DropCounters>();
      events_[w] = std::make_unique<EventCounters>();
      tx_[w] = std::make_unique<TxBuffers>(std::vector<uint16_t>{port_}, static_cast<uint16_t>(w), 32, *drops_[w]);
      auto wheel = timer::TimerWheel::create({hz, kTickUs, kSlots, modes::timer_nodes(*cfg)});
      ASSERT_TRUE(wheel.ok()) << wheel.error();
      timers_[w] = std::move(*wheel);
      io.push_back({tx_[w].get(), drops_[w].get(), events_[w].get(), timers_[w].get()});
    }
    router_->bind(std::move(io));
    netisr_ = std::make_unique<dispatch::Netisr>(workers_, 64, dispatch::symmetric_rss_key(40));
    auto e = router_->register_protocols(*netisr_, [](dispatch::ProtocolSpec s) { return s; });
    ASSERT_TRUE(e.ok()) << e.error();
    ether_ = *e;
    if (k.setup) k.setup(*router_);
    if (k.tcp_direct) {
      const int tcp = netisr_->find_protocol("tcp");
      ASSERT_GE(tcp, 0);
      auto st = netisr_->reconfigure([&](dispatch::DispatchConfig& c) { c.protos[tcp].mode = dispatch::Mode::direct; });
      ASSERT_TRUE(st.ok()) << st.error();
      for (unsigned w = 0; w < workers_; ++w) ASSERT_TRUE(netisr_->sync(w, stop_));
      ASSERT_EQ(netisr_->current_config().protos[tcp].mode, dispatch::Mode::direct);
    }
    for (unsigned w = 0; w < workers_; ++w) router_->worker_online(w);
    online_ = true;
    pump();
    out();  // worker 0's first loop announces our address (gratuitous ARP)
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
    for (unsigned q = 0; q < kMaxWorkers; ++q) free_all(sent(q));
    router_.reset();
    netisr_.reset();
    for (auto& t : timers_) t.reset();
    for (auto& t : tx_) t.reset();
    offset_ = 0;
    EXPECT_EQ(rte_mempool_avail_count(pool_), pool_->size) << "every mbuf back in the pool";
  }

  // --- time and the worker loop ---------------------------------------------------
  uint64_t now() const { return rte_rdtsc() + offset_; }
  void advance_ms(uint64_t ms) {
    offset_ += ms * rte_get_tsc_hz() / 1000;
    pump();
  }
  // The rest of every worker's loop, until nothing is queued: drain, poll, timers, tx flush.
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
  // Worker w receives `pkts` as one burst (its rx loop's dispatch, no more).
  void dispatch(std::vector<rte_mbuf*> pkts, unsigned w = 0) {
    for (auto* m : pkts) m->port = port_;
    netisr_->dispatch(w, ether_, port_, 0, pkts.data(), static_cast<uint16_t>(pkts.size()));
  }
  void input(std::vector<rte_mbuf*> pkts, unsigned w = 0) {
    dispatch(std::move(pkts), w);
    pump();
  }

  // --- frames ---------------------------------------------------------------------
  static TcpSegment segment(uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack, uint8_t flags,
                            Bytes data = {}) {
    TcpSegment s;
    std::memcpy(s.dst_mac, kOurMac, 6);
    std::memcpy(s.src_mac, kPeerMac, 6);
    s.src = kPeer;
    s.dst = kOurs;
    s.sport = sport;
    s.dport = dport;
    s.seq = seq;
    s.ack = ack;
    s.flags = flags;
    s.payload = std::move(data);
    return s;
  }
  rte_mbuf* mbuf(const TcpSegment& s) {
    rte_mbuf* m = test::to_mbuf(pool_, s.bytes(), port_);
    if (!m) std::abort();
    return m;
  }
  rte_mbuf* mbuf(const test::Ipv4Frame& f) {
    rte_mbuf* m = test::to_mbuf(pool_, f.bytes(), port_);
    if (!m) std::abort();
    return m;
  }
  // The peer's next segment on `p`: its sequence number and ACK, its timestamps.
  static TcpSegment next(Peer& p, uint8_t flags, Bytes data = {}) {
    TcpSegment s = segment(p.sport, p.dport, p.snd_nxt, p.rcv_nxt, flags, std::move(data));
    s.window = p.window;
    if (p.ts) s.timestamps(p.tsval++, p.ts_recent);
    p.snd_nxt += static_cast<uint32_t>(s.payload.size()) + ((flags & (kSyn | kFin)) ? 1 : 0);
    return s;
  }

  // What tx queue q sent, in order (the mbufs stay the caller's).
  std::vector<rte_mbuf*> sent(unsigned q) {
    std::vector<rte_mbuf*> v(kRing);
    v.resize(rte_ring_dequeue_burst(tx_rings_[q], reinterpret_cast<void**>(v.data()), kRing, nullptr));
    return v;
  }
  static void free_all(std::vector<rte_mbuf*> v) {
    for (auto* m : v) rte_pktmbuf_free(m);
  }
  static Bytes bytes_of(const rte_mbuf* m) {
    Bytes b(rte_pktmbuf_pkt_len(m));
    const void* p = rte_pktmbuf_read(m, 0, static_cast<uint32_t>(b.size()), b.data());
    if (p != b.data()) std::memcpy(b.data(), p, b.size());
    return b;
  }
  // The TCP segments queue q sent, parsed; the mbufs go back to the pool.
  std::vector<Seg> out_of(unsigned q) {
    std::vector<Seg> segs;
    for (rte_mbuf* m : sent(q)) {
      if (auto s = parse(bytes_of(m))) segs.push_back(std::move(*s));
      rte_pktmbuf_free(m);
    }
    return segs;
  }
  std::vector<Seg> out() {
    std::vector<Seg> segs;
    for (unsigned q = 0; q < kMaxWorkers; ++q) {
      auto more = out_of(q);
      segs.insert(segs.end(), more.begin(), more.end());
    }
    return segs;
  }
  // Every segment is from our service port to the peer, well formed.
  static void expect_well_formed(const Seg& s, const Peer& p) {
    EXPECT_EQ(s.src, kOurs);
    EXPECT_EQ(s.dst, kPeer);
    EXPECT_EQ(s.sport, p.dport);
    EXPECT_EQ(s.dport, p.sport);
    EXPECT_TRUE(s.checksums_ok) << "IP and TCP checksums";
    EXPECT_TRUE(s.to_peer_mac);
  }

  // A passive open to `dport` from `sport`, the SYN offering `o` (and MSS
  // 1460); returns the peer once the handshake's ACK went in. The SYN-ACK is
  // in *synack when asked for.
  Peer open(uint16_t sport, uint16_t dport, Offer o = {}, Seg* synack = nullptr, unsigned w = 0) {
    Peer p;
    p.sport = sport;
    p.dport = dport;
    p.snd_nxt = 0x10000000u + sport * 1000u;
    TcpSegment syn = next(p, kSyn);
    syn.mss(1460);
    if (o.sack) syn.sack_permitted();
    if (o.ts) syn.timestamps(p.tsval++, 0);
    if (o.ws) syn.wscale(o.shift);
    input({mbuf(syn)}, w);
    auto segs = out();
    if (segs.size() != 1) {
      ADD_FAILURE() << "one SYN-ACK for the SYN, got " << segs.size() << " segments";
      return p;
    }
    const Seg& sa = segs[0];
    EXPECT_EQ(sa.flags, kSyn | kAck) << flags_of(sa.flags);
    EXPECT_EQ(sa.ack, p.snd_nxt);
    p.iss = sa.seq;
    p.rcv_nxt = sa.seq + 1;
    p.ts = o.ts && sa.ts;
    p.ts_recent = sa.tsval;
    if (synack) *synack = sa;
    input({mbuf(next(p, kAck))}, w);
    return p;
  }
  // Data from the peer; returns what the stack sent in answer.
  std::vector<Seg> send(Peer& p, const Bytes& data, uint8_t flags = kAck | kPsh) {
    input({mbuf(next(p, flags, data))});
    return out();
  }
  // The peer takes what the stack sent on p: its sequence space up to the
  // end of each segment is acknowledged by the peer's next segment.
  static void take(Peer& p, const std::vector<Seg>& segs) {
    for (const Seg& s : segs) {
      if (s.dport != p.sport) continue;
      if (s.flags & kSyn) p.rcv_nxt = s.seq;  // the SYN-ACK: the stack's ISS
      const uint32_t end = s.seq + static_cast<uint32_t>(s.data.size()) + ((s.flags & (kSyn | kFin)) ? 1 : 0);
      if (static_cast<int32_t>(end - p.rcv_nxt) > 0 && static_cast<int32_t>(s.seq - p.rcv_nxt) <= 0) p.rcv_nxt = end;
      if (s.ts) p.ts_recent = s.tsval;
    }
  }

  uint64_t drops(DropReason r) const {
    uint64_t n = 0;
    for (unsigned w = 0; w < workers_; ++w) n += drops_[w]->get(r);
    return n;
  }
  uint64_t all_drops() const {
    uint64_t n = 0;
    for (unsigned w = 0; w < workers_; ++w) n += drops_[w]->total();
    return n;
  }
  std::string drop_list() const {
    std::string s;
    for (std::size_t i = 0; i < kDropReasonCount; ++i) {
      const auto r = static_cast<DropReason>(i);
      if (const uint64_t n = drops(r)) s += std::string(drop_reason_name(r)) + "=" + std::to_string(n) + " ";
    }
    return s;
  }
  uint64_t stat(tcp::Stat s) { return router_->tcp().stat(s); }
  unsigned live() { return router_->tcp().table().live(); }
  std::optional<tcp::ConnView> conn(uint16_t sport) {
    for (const auto& v : router_->tcp().connections())
      if (v.tuple.fport == sport) return v;
    return std::nullopt;
  }
  std::optional<services::ServiceView> service(conf::ServiceType t) {
    for (const auto& v : router_->services())
      if (v.type == t) return v;
    return std::nullopt;
  }
  // What a segment from us acknowledged and carried, for messages.
  static std::string describe(const std::vector<Seg>& segs) {
    std::string s;
    for (const Seg& g : segs) {
      s += '[';
      s += flags_of(g.flags);
      s += " seq " + std::to_string(g.seq);
      s += " ack " + std::to_string(g.ack);
      s += " len " + std::to_string(g.data.size());
      s += "] ";
    }
    return s;
  }

  static inline rte_mempool* pool_ = nullptr;
  static inline rte_ring* tx_rings_[kMaxWorkers]{};
  static inline uint16_t port_ = 0;
  static inline bool port_set_up_ = false;

  unsigned workers_ = 1;
  std::unique_ptr<modes::Router> router_;
  std::unique_ptr<dispatch::Netisr> netisr_;
  dispatch::ProtoId ether_ = 0;
  std::unique_ptr<TxBuffers> tx_[kMaxWorkers];
  std::unique_ptr<timer::TimerWheel> timers_[kMaxWorkers];
  // Made with each router (TearDown keeps them: the last TxBuffers flush counts into them).
  std::unique_ptr<DropCounters> drops_[kMaxWorkers];
  std::unique_ptr<EventCounters> events_[kMaxWorkers];
  std::atomic<bool> stop_{false};
  bool online_ = false;
  uint64_t offset_ = 0;
};

}  // namespace

// --- (1) passive open --------------------------------------------------------------------

// RFC 9293 §3.7.1, RFC 7323, RFC 2018: the SYN-ACK carries our MSS (the
// interface's MTU less 40) always, and window scaling, timestamps and
// SACK-permitted exactly when the SYN offered each of them.
TEST_F(TcpTest, SynAckOffersMssAndEchoesExactlyTheOptionsOffered) {
  ASSERT_NO_FATAL_FAILURE(make({}));
  uint16_t sport = 40000;
  for (unsigned mask = 0; mask < 8; ++mask) {
    Offer o;
    o.ws = mask & 1;
    o.ts = mask & 2;
    o.sack = mask & 4;
    SCOPED_TRACE("ws " + std::to_string(o.ws) + " ts " + std::to_string(o.ts) + " sack " + std::to_string(o.sack));
    Peer p;
    p.sport = ++sport;
    p.dport = kEcho;
    p.snd_nxt = 0xfffffff0u + mask;  // near the wrap
    TcpSegment syn = next(p, kSyn);
    syn.mss(1400);
    if (o.sack) syn.sack_permitted();
    if (o.ts) syn.timestamps(0x01020304u + mask, 0);
    if (o.ws) syn.wscale(5);
    input({mbuf(syn)});
    auto segs = out();
    ASSERT_EQ(segs.size(), 1u) << describe(segs);
    const Seg& s = segs[0];
    expect_well_formed(s, p);
    EXPECT_EQ(s.flags, kSyn | kAck) << flags_of(s.flags);
    EXPECT_EQ(s.ack, p.snd_nxt) << "the peer's ISN + 1";
    EXPECT_TRUE(s.data.empty());
    ASSERT_FALSE(s.kinds.empty());
    EXPECT_EQ(s.kinds[0], 2) << "MSS first";
    EXPECT_TRUE(s.has_mss);
    EXPECT_EQ(s.mss, kOurMss) << "ours, not the peer's 1400";
    EXPECT_EQ(s.ws >= 0, o.ws);
    if (o.ws) {
      EXPECT_EQ(s.ws, 7);
    }
    EXPECT_EQ(s.ts, o.ts);
    if (o.ts) {
      EXPECT_EQ(s.tsecr, 0x01020304u + mask) << "TSecr echoes the SYN's TSval";
    }
    EXPECT_EQ(s.sack_ok, o.sack);
    EXPECT_TRUE(s.sack.empty());
    EXPECT_EQ(std::count(s.kinds.begin(), s.kinds.end(), 2), 1);
    EXPECT_EQ(s.kinds.size(), 1u + o.ws + o.ts + o.sack) << "no option the SYN did not offer";
    EXPECT_GT(s.win, 0u);
  }
  EXPECT_EQ(stat(tcp::Stat::syn_in), 8u);
  EXPECT_EQ(stat(tcp::Stat::syncache_added), 8u);
  EXPECT_EQ(stat(tcp::Stat::established), 0u) << "no handshake completed";
  EXPECT_EQ(live(), 8u);
  EXPECT_EQ(all_drops(), 0u) << drop_list();
}

// The handshake's ACK establishes the connection; data then comes back
// from tcp-echo, acknowledging the data, with our timestamps and window.
TEST_F(TcpTest, HandshakeThenDataIsEchoed) {
  ASSERT_NO_FATAL_FAILURE(make({}));
  Seg synack;
  Peer p = open(41000, kEcho, {.ws = true, .ts = true, .sack = true, .shift = 2}, &synack);
  EXPECT_TRUE(out().empty()) << "the handshake's ACK is not answered";
  EXPECT_EQ(stat(tcp::Stat::accepts), 1u);
  EXPECT_EQ(stat(tcp::Stat::established), 1u);
  auto v = conn(41000);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->state, tcp::State::established);
  EXPECT_EQ(v->mss, kOurMss - 12u) << "1460 less the timestamp option";
  const Bytes data = pattern(300, 3);
  auto segs = send(p, data);
  ASSERT_EQ(segs.size(), 1u) << describe(segs);
  const Seg& e = segs[0];
  expect_well_formed(e, p);
  EXPECT_EQ(e.seq, synack.seq + 1);
  EXPECT_EQ(e.ack, p.snd_nxt) << "acknowledges the data";
  EXPECT_EQ(e.flags, kAck | kPsh) << flags_of(e.flags);
  EXPECT_EQ(e.data, data);
  ASSERT_TRUE(e.ts);
  EXPECT_EQ(e.tsecr, p.tsval - 1) << "TSecr echoes the data's TSval";
  EXPECT_TRUE(e.sack.empty());
  take(p, segs);
  input({mbuf(next(p, kAck))});
  EXPECT_TRUE(out().empty());
  auto echo = service(conf::ServiceType::tcp_echo);
  ASSERT_TRUE(echo);
  EXPECT_EQ(echo->connections, 1u);
  EXPECT_EQ(echo->io.rx_bytes, 300u);
  EXPECT_EQ(echo->io.tx_bytes, 300u);
  EXPECT_EQ(stat(tcp::Stat::bytes_in), 300u);
  EXPECT_EQ(stat(tcp::Stat::bytes_out), 300u);
  EXPECT_EQ(all_drops(), 0u) << drop_list();
}

// --- (2) closed ports ----------------------------------------------------------------------

// RFC 9293 §3.10.7.1: a segment to a port nobody listens on is answered
// with RST: <SEQ=SEG.ACK><CTL=RST> when it had ACK, else
// <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>; a RST is not answered.
TEST_F(TcpTest, SegmentToAClosedPortGetsRstInTheFormOfItsAck) {
  ASSERT_NO_FATAL_FAILURE(make({}));
  constexpr uint16_t kClosed = 4444;
  // With ACK (and data).
  input({mbuf(segment(5000, kClosed, 1000, 0xabcdef01u, kAck | kPsh, pattern(20, 1)))});
  auto segs = out();
  ASSERT_EQ(segs.size(), 1u) << describe(segs);
  Peer p;
  p.sport = 5000;
  p.dport = kClosed;
  expect_well_formed(segs[0], p);
  EXPECT_EQ(segs[0].flags, kRst) << flags_of(segs[0].flags);
  EXPECT_EQ(segs[0].seq, 0xabcdef01u) << "SEQ = SEG.ACK";
  EXPECT_TRUE(segs[0].data.empty());
  // A SYN without ACK: SEG.LEN counts the SYN.
  input({mbuf(segment(5001, kClosed, 7000, 0, kSyn))});
  segs = out();
  ASSERT_EQ(segs.size(), 1u) << describe(segs);
  EXPECT_EQ(segs[0].flags, kRst | kAck) << flags_of(segs[0].flags);
  EXPECT_EQ(segs[0].seq, 0u);
  EXPECT_EQ(segs[0].ack, 7001u) << "ACK = SEG.SEQ + SEG.LEN (the SYN)";
  EXPECT_EQ(segs[0].dport, 5001u);
  EXPECT_TRUE(segs[0].checksums_ok);
  // No ACK, data and FIN: SEG.LEN counts both.
  input({mbuf(segment(5002, kClosed, 0xfffffffau, 0, kFin | kPsh, pattern(10, 2)))});
  segs = out();
  ASSERT_EQ(segs.size(), 1u) << describe(segs);
  EXPECT_EQ(segs[0].flags, kRst | kAck) << flags_of(segs[0].flags);
  EXPECT_EQ(segs[0].seq, 0u);
  EXPECT_EQ(segs[0].ack, 0xfffffffau + 11u) << "10 bytes and the FIN, across the wrap";
  // A RST to a closed port: dropped, never answered.
  input({mbuf(segment(5003, kClosed, 1, 2, kRst | kAck))});
  EXPECT_TRUE(out().empty());
  EXPECT_EQ(drops(DropReason::tcp_no_socket), 4u);
  EXPECT_EQ(all_drops(), 4u) << drop_list();
  EXPECT_EQ(stat(tcp::Stat::rst_out), 3u);
  EXPECT_EQ(stat(tcp::Stat::rst_in), 1u);
  EXPECT_EQ(live(), 0u);
}

// --- (3) bad input -------------------------------------------------------------------------

// Malformed segments are freed and counted by name, before any lookup: a
// SYN to the echo port that would otherwise be answered draws nothing.
TEST_F(TcpTest, BadInputIsDroppedByNameAndFreed) {
  ASSERT_NO_FATAL_FAILURE(make({}));
  const unsigned full = rte_mempool_avail_count(pool_);
  auto syn = [](uint16_t sport) {
    TcpSegment s = segment(sport, kEcho, 1000, 0, kSyn);
    s.mss(1460);
    return s;
  };
  struct Case {
    const char* what;
    std::function<rte_mbuf*()> make;
    DropReason reason;
  };
  const std::vector<Case> cases = {
      {"an IP payload of 12 bytes",
       [&] {
         test::Ipv4Frame f;
         std::memcpy(f.dst_mac, kOurMac, 6);
         std::memcpy(f.src_mac, kPeerMac, 6);
         f.src = kPeer;
         f.dst = kOurs;
         f.proto = 6;
         f.payload = 12;
         return mbuf(f);
       },
       DropReason::tcp_truncated},
      {"IP's length ends inside the TCP header (the rest is padding)",
       [&] {
         TcpSegment s = syn(5101);
         s.ip_payload = 19;
         return mbuf(s);
       },
       DropReason::tcp_truncated},
      {"data offset 4", [&] {
         TcpSegment s = syn(5102);
         s.data_offset = 4;
         return mbuf(s);
       },
       DropReason::tcp_bad_offset},
      {"data offset 0", [&] {
         TcpSegment s = syn(5103);
         s.data_offset = 0;
         return mbuf(s);
       },
       DropReason::tcp_bad_offset},
      {"data offset 15 beyond a 28-byte segment", [&] {
         TcpSegment s = syn(5104);
         s.payload = pattern(8, 1);
         s.data_offset = 15;
         return mbuf(s);
       },
       DropReason::tcp_bad_offset},
      {"bad checksum", [&] {
         TcpSegment s = syn(5105);
         s.corrupt_checksum = true;
         return mbuf(s);
       },
       DropReason::tcp_bad_checksum},
      {"bad checksum on data", [&] {
         TcpSegment s = segment(5106, kEcho, 1000, 1, kAck, pattern(100, 2));
         s.corrupt_checksum = true;
         return mbuf(s);
       },
       DropReason::tcp_bad_checksum},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const uint64_t before = drops(c.reason);
    input({c.make()});
    EXPECT_EQ(drops(c.reason), before + 1) << drop_list();
    EXPECT_TRUE(out().empty()) << "no SYN-ACK, no RST";
    EXPECT_EQ(rte_mempool_avail_count(pool_), full) << "the segment's mbuf is freed";
  }
  EXPECT_EQ(drops(DropReason::tcp_truncated), 2u);
  EXPECT_EQ(drops(DropReason::tcp_bad_offset), 3u);
  EXPECT_EQ(drops(DropReason::tcp_bad_checksum), 2u);
  EXPECT_EQ(all_drops(), cases.size()) << drop_list();
  EXPECT_EQ(stat(tcp::Stat::segments_in), 0u) << "none reached segment processing";
  EXPECT_EQ(live(), 0u);
  // The same SYN, well formed, is answered: the drops above were the checks.
  input({mbuf(syn(5107))});
  auto segs = out();
  ASSERT_EQ(segs.size(), 1u);
  EXPECT_EQ(segs[0].flags, kSyn | kAck);
}

// --- (4) reassembly ----------------------------------------------------------------------

// Out-of-order segments wait in the reassembly queue; each draws an
// immediate duplicate ACK whose SACK blocks list what is queued, the latest
// segment's block first (RFC 2018 §4). When the hole fills, everything in
// order goes up at once: the echo returns the bytes in order.
TEST_F(TcpTest, OutOfOrderSegmentsAreSackedAndDeliveredInOrder) {
  ASSERT_NO_FATAL_FAILURE(make({}));
  Peer p = open(42000, kEcho, {.sack = true});
  ASSERT_TRUE(out().empty());
  const uint32_t base = p.snd_nxt;
  const Bytes all = pattern(400, 9);
  auto chunk = [&](unsigned i) {
    TcpSegment s = segment(p.sport, p.dport, base + 100 * i, p.rcv_nxt, kAck | kPsh,
                           Bytes(all.begin() + 100 * i, all.begin() + 100 * (i + 1)));
    return s;
  };
  const uint32_t b0 = base, b1 = base + 100, b2 = base + 200, b3 = base + 300, b4 = base + 400;
  // B before A: a duplicate ACK, SACK [B].
  input({mbuf(chunk(1))});
  auto segs = out();
  ASSERT_EQ(segs.size(), 1u) << describe(segs);
  EXPECT_EQ(segs[0].flags, kAck) << flags_of(segs[0].flags);
  EXPECT_EQ(segs[0].ack, b0) << "RCV.NXT did not move";
  EXPECT_TRUE(segs[0].data.empty());
  EXPECT_EQ(segs[0].sack, (std::vector<std::pair<uint32_t, uint32_t>>{{b1, b2}}));
  // D: SACK [D] first, then [B].
  input({mbuf(chunk(3))});
  segs = out();
  ASSERT_EQ(segs.size(), 1u) << describe(segs);
  EXPECT_EQ(segs[0].ack, b0);
  EXPECT_EQ(segs[0].sack, (std::vector<std::pair<uint32_t, uint32_t>>{{b3, b4}, {b1, b2}}));
  EXPECT_EQ(stat(tcp::Stat::ooo_queued), 2u);
  auto echo = service(conf::ServiceType::tcp_echo);
  EXPECT_EQ(echo->io.rx_bytes, 0u) << "nothing delivered past a hole";
  // A fills the first hole: A and B go up together, echoed at once; the ACK
  // still reports D.
  input({mbuf(chunk(0))});
  segs = out();
  ASSERT_EQ(segs.size(), 1u) << describe(segs);
  EXPECT_EQ(segs[0].ack, b2);
  EXPECT_EQ(segs[0].data, Bytes(all.begin(), all.begin() + 200));
  EXPECT_EQ(segs[0].sack, (std::vector<std::pair<uint32_t, uint32_t>>{{b3, b4}}));
  Bytes echoed = segs[0].data;
  take(p, segs);
  p.snd_nxt = b2;
  input({mbuf(next(p, kAck))});  // the peer acknowledges the echo
  EXPECT_TRUE(out().empty());
  // C fills the last hole: C and D.
  input({mbuf(chunk(2))});
  segs = out();
  ASSERT_EQ(segs.size(), 1u) << describe(segs);
  EXPECT_EQ(segs[0].ack, b4);
  EXPECT_TRUE(segs[0].sack.empty()) << "nothing queued any more";
  echoed.insert(echoed.end(), segs[0].data.begin(), segs[0].data.end());
  EXPECT_EQ(echoed, all) << "the bytes came back in order";
  echo = service(conf::ServiceType::tcp_echo);
  EXPECT_EQ(echo->io.rx_bytes, 400u);
  EXPECT_EQ(stat(tcp::Stat::bytes_in), 400u);
  EXPECT_EQ(all_drops(), 0u) << drop_list();
}

// --- (5) RFC 5961 ------------------------------------------------------------------------

// RFC 5961 §3.2: a RST in the window but not at RCV.NXT draws a challenge
// ACK and changes nothing; §4.2: so does a SYN on a synchronized
// connection; a RST exactly at RCV.NXT ends the connection.
TEST_F(TcpTest, RstAndSynInWindowDrawChallengeAcksExactRstResets) {
  ASSERT_NO_FATAL_FAILURE(make({}));
  Peer p = open(43000, kEcho);
  ASSERT_TRUE(out().empty());
  // RST at RCV.NXT + 100.
  input({mbuf(segment(p.sport, p.dport, p.snd_nxt + 100, 0, kRst))});
  auto segs = out();
  ASSERT_EQ(segs.size(), 1u) << describe(segs);
  EXPECT_EQ(segs[0].flags, kAck) << flags_of(segs[0].flags);
  EXPECT_EQ(segs[0].seq, p.rcv_nxt) << "SND.NXT";
  EXPECT_EQ(segs[0].ack, p.snd_nxt) << "RCV.NXT";
  EXPECT_EQ(drops(DropReason::tcp_rst_challenged), 1u);
  EXPECT_EQ(stat(tcp::Stat::challenge_acks), 1u);
  ASSERT_TRUE(conn(p.sport));
  EXPECT_EQ(conn(p.sport)->state, tcp::State::established);
  // A SYN on the established connection (in the window, and at RCV.NXT).
  for (uint32_t at : {p.snd_nxt + 10, p.snd_nxt}) {
    TcpSegment syn = segment(p.sport, p.dport, at, 0, kSyn);
    syn.mss(1460);
    input({mbuf(syn)});
    segs = out();
    ASSERT_EQ(segs.size(), 1u) << describe(segs);
    EXPECT_EQ(segs[0].flags, kAck) << "a challenge ACK, not a SYN-ACK: " << flags_of(segs[0].flags);
    EXPECT_EQ(segs[0].ack, p.snd_nxt);
  }
  EXPECT_EQ(drops(DropReason::tcp_syn_challenged), 2u);
  EXPECT_EQ(stat(tcp::Stat::challenge_acks), 3u);
  EXPECT_EQ(conn(p.sport)->state, tcp::State::established);
  // The connection still works.
  segs = send(p, pattern(5, 4));
  ASSERT_EQ(segs.size(), 1u) << describe(segs);
  EXPECT_EQ(segs[0].data, pattern(5, 4));
  take(p, segs);
  // RST at RCV.NXT: gone, and the service hears it.
  input({mbuf(segment(p.sport, p.dport, p.snd_nxt, 0, kRst))});
  EXPECT_TRUE(out().empty()) << "a RST is not answered";
  EXPECT_FALSE(conn(p.sport));
  EXPECT_EQ(live(), 0u);
  EXPECT_EQ(stat(tcp::Stat::resets), 1u);
  EXPECT_EQ(stat(tcp::Stat::closed), 1u);
  EXPECT_EQ(service(conf::ServiceType::tcp_echo)->resets, 1u);
  // What follows finds only the listener, which answers an ACK that is no
  // SYN cookie with RST (RFC 9293 §3.10.7.2).
  segs = send(p, pattern(5, 5));
  ASSERT_EQ(segs.size(), 1u) << describe(segs);
  EXPECT_EQ(segs[0].flags, kRst);
  EXPECT_EQ(segs[0].seq, p.rcv_nxt) << "SEQ = SEG.ACK";
  EXPECT_EQ(drops(DropReason::tcp_listen_bad_segment), 1u);
  EXPECT_EQ(stat(tcp::Stat::cookies_rejected), 1u);
  EXPECT_EQ(stat(tcp::Stat::rst_in), 2u) << "the challenged RST and the exact one";
}

// --- (6) delayed ACK -----------------------------------------------------------------------

namespace {
// A service that takes connections and leaves what arrives unread (as one
// that reads later would): reading opens the window, and an ACK that
// updates the window is sent at once, which is not what is tested here.
struct Unread {
  unsigned readable = 0;
};
void* unread_accepted(void* ctx, socket::TcpConn&) { return ctx; }
void unread_readable(void* ctx, socket::TcpConn&) { ++static_cast<Unread*>(ctx)->readable; }
constexpr uint16_t kUnread = 5002;
}  // namespace

// RFC 9293 §3.8.6.3 / RFC 1122 §4.2.3.2 / RFC 5681 §4.2: a lone small
// segment is ACKed when the delayed-ACK timer fires, not at once; of
// full-sized segments, every second is ACKed at once.
TEST_F(TcpTest, DelayedAckWaitsForTheTimerOrASecondFullSegment) {
  Unread unread;
  socket::TcpHandlers h;
  h.accepted = unread_accepted;
  h.readable = unread_readable;
  Knobs k;
  k.tcp = "msl_ms: 50, delayed_ack_ms: 40";
  k.setup = [&](modes::Router& r) { ASSERT_TRUE(r.tcp().listen(0, kUnread, h, &unread).ok()); };
  ASSERT_NO_FATAL_FAILURE(make(k));
  Peer p = open(44000, kUnread, {.ws = true});
  ASSERT_TRUE(out().empty());
  // One full-sized segment waits; the second is ACKed at once. (Before the
  // test's clock moves on: TCP arms its timers at the segment's real TSC.)
  EXPECT_TRUE(send(p, pattern(kOurMss, 2)).empty()) << "one full-sized segment";
  auto segs = send(p, pattern(kOurMss, 3));
  ASSERT_EQ(segs.size(), 1u) << describe(segs);
  EXPECT_EQ(segs[0].flags, kAck);
  EXPECT_EQ(segs[0].ack, p.snd_nxt) << "both acknowledged";
  // A small segment waits for the timer.
  EXPECT_TRUE(send(p, pattern(10, 1)).empty()) << "a small segment is not ACKed at once";
  EXPECT_EQ(unread.readable, 3u) << "the service heard of each segment";
  advance_ms(20);
  EXPECT_TRUE(out().empty()) << "nor before the delayed-ACK timeout";
  advance_ms(40);
  segs = out();
  ASSERT_EQ(segs.size(), 1u) << describe(segs);
  EXPECT_EQ(segs[0].flags, kAck);
  EXPECT_EQ(segs[0].ack, p.snd_nxt);
  EXPECT_EQ(stat(tcp::Stat::delayed_acks), 1u) << "the small segment's, by the timer";
  advance_ms(100);
  EXPECT_TRUE(out().empty()) << "and the timer adds no second ACK";
  EXPECT_EQ(stat(tcp::Stat::delayed_acks), 1u);
  EXPECT_EQ(stat(tcp::Stat::bytes_in), 10u + 2 * kOurMss);
  EXPECT_EQ(all_drops(), 0u) << drop_list();
}

// A service that reads at once (tcp-discard), the default 256 KB rcvbuf and
// a peer that offers no window scaling: the window can never be advertised
// above 65535, so reading a 10-byte segment lets the right edge move by 10
// bytes only. That is no window update worth an immediate ACK (RFC 9293
// §3.8.6.2.2, RFC 1122 §4.2.3.3: not until the right edge can move by
// min(MSS, half the buffer)), and the small segment's ACK is still delayed.
// BUG, this test FAILS until stack/tcp/tcp.cpp is fixed: Tcp::read() sets
// ack_now when rcv_space() (up to rcvbuf, 262144) exceeds the window offered
// (65525) by two MSS, although at most 65535 << rcv_wscale can be
// advertised; window_to_advertise()'s silly-window check compares the same
// uncapped space. So every read ACKs at once, moving the right edge by the
// bytes read: no delayed ACK for any connection without window scaling.
TEST_F(TcpTest, DelayedAckWithoutWindowScalingIsNotDefeatedByATinyWindowUpdate) {
  Knobs k;
  k.tcp = "msl_ms: 50, delayed_ack_ms: 40";
  ASSERT_NO_FATAL_FAILURE(make(k));
  Peer p = open(44100, kDiscard);
  ASSERT_TRUE(out().empty());
  auto segs = send(p, pattern(10, 1));
  EXPECT_TRUE(segs.empty()) << "a small segment is not ACKed at once: " << describe(segs);
  advance_ms(60);
  segs = out();
  ASSERT_EQ(segs.size(), 1u) << "the ACK after the delayed-ACK timeout: " << describe(segs);
  EXPECT_EQ(segs[0].ack, p.snd_nxt);
}

// --- (7) retransmission ----------------------------------------------------------------------

// RFC 6298 §5: data not acknowledged goes again when the retransmission
// timer expires, and the timer doubles each time (§5.5); an ACK stops it.
TEST_F(TcpTest, UnacknowledgedDataIsRetransmittedWithTheRtoDoubling) {
  Knobs k;
  k.tcp = "msl_ms: 50, min_rto_ms: 200, initial_rto_ms: 1000";
  ASSERT_NO_FATAL_FAILURE(make(k));
  Peer p = open(45000, kEcho);
  ASSERT_TRUE(out().empty());
  auto v = conn(p.sport);
  ASSERT_TRUE(v);
  ASSERT_EQ(v->rto_us, 200000u) << "the handshake's RTT sample puts the RTO at its floor";
  const Bytes data = pattern(100, 6);
  auto first = send(p, data);
  ASSERT_EQ(first.size(), 1u) << describe(first);
  ASSERT_EQ(first[0].data, data);
  auto expect_again = [&](const char* when) {
    auto segs = out();
    ASSERT_EQ(segs.size(), 1u) << when << ": " << describe(segs);
    EXPECT_EQ(segs[0].seq, first[0].seq) << when;
    EXPECT_EQ(segs[0].data, data) << when;
    EXPECT_TRUE(segs[0].checksums_ok);
  };
  // The echo left at about real time T; the wheel runs at T + offset.
  advance_ms(150);
  EXPECT_TRUE(out().empty()) << "before the RTO";
  advance_ms(100);  // T + 250 > T + 200
  expect_again("first timeout");
  EXPECT_EQ(stat(tcp::Stat::rto_expired), 1u);
  // Now 400 ms from T + 250.
  advance_ms(300);
  EXPECT_TRUE(out().empty()) << "the RTO doubled to 400 ms";
  advance_ms(150);  // T + 700 > T + 650
  expect_again("second timeout");
  EXPECT_EQ(stat(tcp::Stat::rto_expired), 2u);
  // Now 800 ms from T + 700.
  advance_ms(700);
  EXPECT_TRUE(out().empty()) << "the RTO doubled to 800 ms";
  advance_ms(150);  // T + 1550 > T + 1500
  expect_again("third timeout");
  EXPECT_EQ(stat(tcp::Stat::rto_expired), 3u);
  EXPECT_EQ(stat(tcp::Stat::retransmits), 3u);
  EXPECT_EQ(stat(tcp::Stat::retransmitted_bytes), 300u);
  EXPECT_EQ(stat(tcp::Stat::bytes_out), 100u) << "sent once, retransmitted thrice";
  // The connection's own counters (ss -ti, TcpConn::counters) say the same.
  v = conn(p.sport);
  EXPECT_EQ(v->bytes_out, 100u);
  EXPECT_EQ(v->bytes_retrans, 300u);
  EXPECT_EQ(v->retransmits, 3u);
  EXPECT_EQ(v->bytes_acked, 0u);
  // The peer's ACK stops the timer.
  take(p, first);
  input({mbuf(next(p, kAck))});
  EXPECT_TRUE(out().empty());
  EXPECT_EQ(conn(p.sport)->bytes_acked, 100u) << "acknowledged once, however often it went";
  advance_ms(5000);
  EXPECT_TRUE(out().empty()) << "nothing left to retransmit";
  EXPECT_EQ(stat(tcp::Stat::rto_expired), 3u);
  EXPECT_EQ(conn(p.sport)->state, tcp::State::established);
}

// --- (8) connection accounting -------------------------------------------------------------

// Passive close (tcp-echo closes when the peer did: LAST-ACK) and active
// close (tcp-source closes after its 100 bytes: FIN-WAIT-1, FIN-WAIT-2,
// TIME-WAIT for 2 MSL). The counters follow, and every PCB comes back.
TEST_F(TcpTest, ConnectionsAreCountedAndEveryPcbComesBack) {
  Knobs k;
  k.tcp = "msl_ms: 50";
  ASSERT_NO_FATAL_FAILURE(make(k));
  // Passive close.
  Peer e = open(46000, kEcho);
  ASSERT_TRUE(out().empty());
  EXPECT_EQ(live(), 1u);
  auto segs = send(e, pattern(5, 7), kAck | kPsh | kFin);
  ASSERT_EQ(segs.size(), 1u) << describe(segs);
  EXPECT_EQ(segs[0].flags, kAck | kPsh | kFin) << "the echo and our FIN together: " << flags_of(segs[0].flags);
  EXPECT_EQ(segs[0].data, pattern(5, 7));
  EXPECT_EQ(segs[0].ack, e.snd_nxt) << "the data and the peer's FIN";
  EXPECT_EQ(conn(e.sport)->state, tcp::State::last_ack);
  take(e, segs);
  input({mbuf(next(e, kAck))});
  EXPECT_TRUE(out().empty());
  EXPECT_FALSE(conn(e.sport)) << "LAST-ACK ends with the ACK of our FIN";
  EXPECT_EQ(live(), 0u);
  EXPECT_EQ(stat(tcp::Stat::closed), 1u);
  // Active close: tcp-source sends its 100 bytes and FIN after the handshake.
  Peer s;
  s.sport = 46001;
  s.dport = kSource;
  s.snd_nxt = 777;
  input({mbuf(next(s, kSyn).mss(1460))});
  segs = out();
  ASSERT_EQ(segs.size(), 1u) << describe(segs);
  take(s, segs);
  input({mbuf(next(s, kAck))});
  segs = out();
  ASSERT_EQ(segs.size(), 1u) << describe(segs);
  EXPECT_EQ(segs[0].flags, kAck | kPsh | kFin) << flags_of(segs[0].flags);
  ASSERT_EQ(segs[0].data.size(), 100u);
  EXPECT_EQ(std::string(segs[0].data.begin(), segs[0].data.begin() + 8), "ngstack\n");
  EXPECT_EQ(conn(s.sport)->state, tcp::State::fin_wait_1);
  take(s, segs);
  input({mbuf(next(s, kAck))});
  EXPECT_TRUE(out().empty());
  EXPECT_EQ(conn(s.sport)->state, tcp::State::fin_wait_2);
  input({mbuf(next(s, kAck | kFin))});
  segs = out();
  ASSERT_EQ(segs.size(), 1u) << describe(segs);
  EXPECT_EQ(segs[0].flags, kAck);
  EXPECT_EQ(segs[0].ack, s.snd_nxt) << "the peer's FIN acknowledged";
  ASSERT_TRUE(conn(s.sport));
  EXPECT_EQ(conn(s.sport)->state, tcp::State::time_wait);
  EXPECT_EQ(live(), 1u) << "the tuple stays for 2 MSL";
  advance_ms(60);
  EXPECT_EQ(live(), 1u) << "2 MSL is 100 ms";
  advance_ms(60);
  EXPECT_EQ(live(), 0u) << "TIME-WAIT expired";
  EXPECT_FALSE(conn(s.sport));
  EXPECT_TRUE(out().empty());
  EXPECT_EQ(stat(tcp::Stat::syn_in), 2u);
  EXPECT_EQ(stat(tcp::Stat::accepts), 2u);
  EXPECT_EQ(stat(tcp::Stat::established), 2u);
  EXPECT_EQ(stat(tcp::Stat::closed), 2u);
  EXPECT_EQ(stat(tcp::Stat::resets), 0u);
  EXPECT_EQ(stat(tcp::Stat::timeouts), 0u);
  EXPECT_EQ(service(conf::ServiceType::tcp_echo)->connections, 1u);
  EXPECT_EQ(service(conf::ServiceType::tcp_source)->connections, 1u);
  EXPECT_EQ(service(conf::ServiceType::tcp_source)->io.tx_bytes, 100u);
  EXPECT_EQ(all_drops(), 0u) << drop_list();
}

// Connection churn (a load generator opening and closing connections by the
// 100 000 per second): when a connection ends, its timer nodes go back to the
// worker's wheel at once, not at their expiry, or the wheel fills with dead
// nodes (no_timer) long before they would fire. Every connection here holds
// nodes far in the future (a 10 min RTO, a one-hour keepalive); a quarter
// more connections than the wheel has nodes open and close in turn
// on one worker, ending each way a connection ends: LAST-ACK (the peer
// closed first), a RST from the peer when established and in SYN-RECEIVED,
// and TIME-WAIT expiring (freed from its own node's callback, which cancels
// the others). After each close the wheel holds exactly what it held before.
TEST_F(TcpTest, ConnectionChurnGivesEveryTimerNodeBackToTheWheel) {
  Knobs k;
  // Nothing of a live connection is due while the test runs (TIME-WAIT's
  // 40 ms aside): the test's clock moves 50 ms per TIME-WAIT, 4 minutes in all.
  k.tcp = "msl_ms: 20, min_rto_ms: 600000, initial_rto_ms: 600000, max_rto_ms: 600000";
  k.services = "  - {type: tcp-echo, port: 7, keepalive_ms: 3600000}\n"
               "  - {type: tcp-source, port: 19, bytes: 100, keepalive_ms: 3600000}\n";
  ASSERT_NO_FATAL_FAILURE(make(k));
  const timer::TimerWheel& wheel = *timers_[0];
  const unsigned base = wheel.armed();
  const unsigned n = wheel.capacity() + wheel.capacity() / 4;
  unsigned left_armed = 0, first_left = 0;  // closes after which the wheel held more than before
  auto closed = [&](unsigned i) {
    if (wheel.armed() != base && left_armed++ == 0) first_left = i;
  };
  for (unsigned i = 0; i < n; ++i) {
    const uint16_t sport = static_cast<uint16_t>(10000 + i);
    SCOPED_TRACE("connection " + std::to_string(i));
    switch (i % 4) {
      case 0: {  // passive close: FIN, our FIN with the echo, LAST-ACK, ACK
        Peer p = open(sport, kEcho);
        ASSERT_GT(wheel.armed(), base) << "an established connection holds a node";
        auto segs = send(p, pattern(5, 1), kAck | kPsh | kFin);
        ASSERT_EQ(segs.size(), 1u) << describe(segs);
        take(p, segs);
        input({mbuf(next(p, kAck))});
        break;
      }
      case 1: {  // the peer resets an established connection
        Peer p = open(sport, kEcho);
        input({mbuf(next(p, kRst))});
        break;
      }
      case 2: {  // the peer resets in SYN-RECEIVED
        Peer p;
        p.sport = sport;
        p.dport = kEcho;
        p.snd_nxt = 0x20000000u + i;
        input({mbuf(next(p, kSyn).mss(1460))});
        ASSERT_EQ(out().size(), 1u) << "the SYN-ACK";
        ASSERT_GT(wheel.armed(), base) << "the SYN-ACK's retransmission timer";
        input({mbuf(next(p, kRst))});
        break;
      }
      case 3: {  // active close: tcp-source's 100 bytes and FIN, TIME-WAIT for 2 MSL
        Peer p = open(sport, kSource);
        auto segs = out();
        ASSERT_EQ(segs.size(), 1u) << describe(segs);
        take(p, segs);
        input({mbuf(next(p, kAck | kFin))});
        ASSERT_EQ(out().size(), 1u) << "the ACK of the peer's FIN";
        // (Gone already only if the test stalled for 2 MSL of real time.)
        if (auto c = conn(sport)) {
          ASSERT_EQ(c->state, tcp::State::time_wait);
        }
        advance_ms(50);
        break;
      }
    }
    ASSERT_TRUE(out().empty());
    if (live() != 0) {  // the counts below say why
      ADD_FAILURE() << "connection " << i << " did not close";
      break;
    }
    closed(i);
  }
  EXPECT_EQ(left_armed, 0u) << "closes after which the wheel held more nodes than before (the first: connection "
                            << first_left << "); " << wheel.armed() - base << " nodes left armed, of "
                            << wheel.capacity();
  EXPECT_EQ(stat(tcp::Stat::no_timer), 0u) << "timers the full wheel refused";
  EXPECT_EQ(wheel.exhausted(), 0u);
  EXPECT_GE(wheel.cancelled(), n) << "every connection cancelled at least its RTO's node";
  EXPECT_EQ(stat(tcp::Stat::closed), n);
  EXPECT_EQ(stat(tcp::Stat::rto_expired), 0u);
  EXPECT_EQ(all_drops(), 0u) << drop_list();
}

// --- (9) concurrency -----------------------------------------------------------------------

namespace {

constexpr uint16_t kListenPort = 5001;
constexpr uint16_t kPassiveBase = 20000, kActiveBase = 7000;
constexpr unsigned kPassive = 64, kActive = 32;  // connections in all
constexpr unsigned kSegs = 64, kSegLen = 100;   // data segments per passive connection
constexpr unsigned kActiveLen = 700;             // bytes each active connection sends
constexpr int kRounds = 3;                       // of each locking mode

Bytes passive_data(unsigned i, unsigned k) { return pattern(kSegLen, static_cast<uint8_t>(i * 31 + k * 7)); }
Bytes active_data(unsigned i) { return pattern(kActiveLen, static_cast<uint8_t>(i * 13 + 5)); }
uint32_t fnv(uint32_t h, const uint8_t* p, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 16777619u;
  return h;
}

// The receiving side of a passive connection, in the listener's service:
// plain fields, protected by the connection group's lock and nothing else.
struct PassiveRecord {
  bool accepted = false, eof = false;
  uint64_t bytes = 0;
  uint32_t hash = 2166136261u;
  int closed = -1;
};
struct ActiveRecord {
  socket::ConnRef ref;
  unsigned opener = 0;
  uint16_t lport = 0;
  bool connected = false;
  int closed = -1;
};
struct Server {
  PassiveRecord conns[kPassive];
};

void* server_accepted(void* ctx, socket::TcpConn& c) {
  auto* s = static_cast<Server*>(ctx);
  const unsigned i = c.foreign().port - kPassiveBase;
  if (i >= kPassive) return nullptr;
  s->conns[i].accepted = true;
  c.set_user(i);
  return s;
}
void server_readable(void* ctx, socket::TcpConn& c) {
  PassiveRecord& r = static_cast<Server*>(ctx)->conns[c.user()];
  uint8_t buf[4096];
  for (;;) {
    const size_t n = c.read(buf, sizeof buf);
    if (n == 0) break;
    // Read, then write back after a pause: a read-modify-write that loses
    // updates if two workers ran it for one connection at once.
    const uint64_t bytes = r.bytes;
    const uint32_t hash = r.hash;
    for (int spin = 0; spin < 50; ++spin) rte_pause();
    r.hash = fnv(hash, buf, n);
    r.bytes = bytes + n;
  }
  if (c.eof()) {
    r.eof = true;
    c.close();
  }
}
void server_closed(void* ctx, socket::TcpConn& c, socket::CloseReason why) {
  static_cast<Server*>(ctx)->conns[c.user()].closed = static_cast<int>(why);
}
void client_connected(void* ctx, socket::TcpConn&) { static_cast<ActiveRecord*>(ctx)->connected = true; }
void client_closed(void* ctx, socket::TcpConn&, socket::CloseReason why) {
  static_cast<ActiveRecord*>(ctx)->closed = static_cast<int>(why);
}

}  // namespace

// Two workers under direct dispatch (no NIC RSS keeping a connection on one
// queue), each fed by its own thread at once, as two rx loops would: the
// passive opens, data and closes of 64 connections, whose 64 data segments
// each arrive through both workers (the even ones through worker 0, the odd
// ones through worker 1: the threads run in step over the same connections,
// and overtake each other), and 32 active opens (Tcp::connect from each
// worker) that the other worker sends on and closes through Tcp::with. The
// connection groups' locks (8 groups, each shared by both threads; or the
// giant lock) are all that serialises a connection's Tcb, its service
// callbacks and its timers: each connection's bytes must arrive exactly and
// in order (a count and an order-sensitive hash in the service, and the
// bytes the active opens sent), the counters add up, and every PCB comes
// back. Without the group lock (GroupGuard taking no lock) connections lose
// and reorder bytes, and PCBs and mbufs leak. ThreadSanitizer runs this
// through the `shared_tables` test.
TEST_F(TcpTest, ConcurrentDirectWorkersKeepEveryConnectionWhole) {
  for (int run = 0; run < 2 * kRounds; ++run) {
    const char* locking = run % 2 ? "giant" : "group";
    SCOPED_TRACE(std::string(locking) + " locking, round " + std::to_string(run / 2));
    TearDown();
    auto server = std::make_unique<Server>();
    std::vector<ActiveRecord> active(kActive);
    socket::TcpHandlers server_h, client_h;
    server_h.accepted = server_accepted;
    server_h.readable = server_readable;
    server_h.closed = server_closed;
    client_h.connected = client_connected;
    client_h.closed = client_closed;
    Knobs k;
    k.workers = 2;
    k.services.clear();
    k.groups = 8;
    k.locking = locking;
    // A thread that falls behind leaves up to half a connection's segments
    // out of order: room for all of them. TIME-WAIT (20 s) outlasts the
    // threads, which run their wheels in real time.
    k.tcp = "msl_ms: 10000, ooo_segments: 256";
    k.tcp_direct = true;
    k.setup = [&](modes::Router& r) {
      auto l = r.tcp().listen(0, kListenPort, server_h, server.get());
      ASSERT_TRUE(l.ok()) << l.error();
    };
    ASSERT_NO_FATAL_FAILURE(make(k));
    ASSERT_EQ(router_->tcp().table().locking(),
              std::string(locking) == "giant" ? pcb::Locking::giant : pcb::Locking::group);

    std::atomic<uint64_t> fed{0};  // segments the threads handed in
    // Both workers at once, each on its own thread: fn(w, feed) where feed
    // dispatches a burst on w; between bursts the rest of w's loop (poll,
    // timers, tx flush). `keep`: leave what w sent in its ring for the test.
    auto both = [&](bool keep, const std::function<void(unsigned, const std::function<void(std::vector<TcpSegment>&)>&)>& fn) {
      std::atomic<unsigned> ready{0};
      auto run = [&](unsigned w) {
        ready.fetch_add(1);
        while (ready.load() < 2) rte_pause();
        auto feed = [&](std::vector<TcpSegment>& segs) {
          for (std::size_t at = 0; at < segs.size(); at += 32) {
            std::vector<rte_mbuf*> burst;
            for (std::size_t i = at; i < std::min(segs.size(), at + 32); ++i) burst.push_back(mbuf(segs[i]));
            fed.fetch_add(burst.size());
            dispatch(burst, w);
            router_->poll(w, now());
            timers_[w]->run(now());
            tx_[w]->flush_all();
            if (!keep) free_all(sent(w));
          }
          segs.clear();
        };
        fn(w, feed);
        tx_[w]->flush_all();
      };
      std::thread t0(run, 0u), t1(run, 1u);
      t0.join();
      t1.join();
    };
    std::vector<Peer> peers(kPassive);
    for (unsigned i = 0; i < kPassive; ++i) {
      peers[i].sport = static_cast<uint16_t>(kPassiveBase + i);
      peers[i].dport = kListenPort;
      peers[i].snd_nxt = 0x7fffff00u + i * 977u;
    }
    std::vector<Peer> apeers(kActive);  // the far ends of the active opens

    // 1. Passive SYNs (connection i through worker i % 2) and active opens.
    both(true, [&](unsigned w, const auto& feed) {
      std::vector<TcpSegment> segs;
      for (unsigned i = w; i < kPassive; i += 2) {
        TcpSegment syn = next(peers[i], kSyn);
        syn.mss(1460).sack_permitted();
        segs.push_back(syn);
      }
      feed(segs);
      for (unsigned i = w; i < kActive; i += 2) {
        active[i].opener = w;
        auto ref = router_->tcp().connect(w, kPeer, static_cast<uint16_t>(kActiveBase + i), client_h, &active[i], now());
        ASSERT_TRUE(ref.ok()) << ref.error();
        active[i].ref = *ref;
        ASSERT_TRUE(router_->tcp().with(*ref, w, now(), [&](socket::TcpConn& c) { active[i].lport = c.local().port; }));
      }
    });
    std::vector<bool> synack_seen(kPassive), syn_seen(kActive);
    for (const Seg& s : out()) {
      if (s.flags == (kSyn | kAck) && s.sport == kListenPort && s.dport >= kPassiveBase &&
          s.dport < kPassiveBase + kPassive) {
        Peer& p = peers[s.dport - kPassiveBase];
        EXPECT_EQ(s.ack, p.snd_nxt);
        p.iss = s.seq;
        p.rcv_nxt = s.seq + 1;
        synack_seen[s.dport - kPassiveBase] = true;
      } else if (s.flags == kSyn && s.dport >= kActiveBase && s.dport < kActiveBase + kActive) {
        const unsigned i = s.dport - kActiveBase;
        EXPECT_EQ(s.sport, active[i].lport);
        Peer& p = apeers[i];
        p.sport = s.dport;  // the peer's port (it listens on it)
        p.dport = s.sport;
        p.iss = s.seq;
        p.rcv_nxt = s.seq + 1;
        p.snd_nxt = 0x40000000u + i * 1313u;
        syn_seen[i] = true;
      }
    }
    for (unsigned i = 0; i < kPassive; ++i) ASSERT_TRUE(synack_seen[i]) << "no SYN-ACK for passive " << i;
    for (unsigned i = 0; i < kActive; ++i) ASSERT_TRUE(syn_seen[i]) << "no SYN for active " << i;
    EXPECT_EQ(live(), kPassive + kActive);

    // 2. Handshake ACKs, and SYN-ACKs for the active opens, each through the worker it came from.
    both(false, [&](unsigned w, const auto& feed) {
      std::vector<TcpSegment> segs;
      for (unsigned i = w; i < kPassive; i += 2) segs.push_back(next(peers[i], kAck));
      for (unsigned i = w; i < kActive; i += 2) {
        TcpSegment sa = next(apeers[i], kSyn | kAck);
        segs.push_back(sa.mss(1460));
      }
      feed(segs);
    });
    EXPECT_EQ(stat(tcp::Stat::established), kPassive + kActive);
    for (unsigned i = 0; i < kActive; ++i) EXPECT_TRUE(active[i].connected) << "active " << i;

    // 3. Data: segment k of every passive connection through worker k % 2.
    std::vector<uint32_t> base(kPassive);
    for (unsigned i = 0; i < kPassive; ++i) base[i] = peers[i].snd_nxt;
    both(false, [&](unsigned w, const auto& feed) {
      std::vector<TcpSegment> segs;
      for (unsigned j = w; j < kSegs; j += 2)
        for (unsigned i = 0; i < kPassive; ++i)
          segs.push_back(segment(peers[i].sport, kListenPort, base[i] + j * kSegLen, peers[i].rcv_nxt, kAck | kPsh,
                                 passive_data(i, j)));
      feed(segs);
    });
    for (unsigned i = 0; i < kPassive; ++i) {
      peers[i].snd_nxt = base[i] + kSegs * kSegLen;
      uint32_t want = 2166136261u;
      for (unsigned j = 0; j < kSegs; ++j) {
        const Bytes d = passive_data(i, j);
        want = fnv(want, d.data(), d.size());
      }
      const PassiveRecord& r = server->conns[i];
      EXPECT_TRUE(r.accepted) << "passive " << i;
      EXPECT_EQ(r.bytes, kSegs * kSegLen) << "passive " << i << ": every byte, once";
      EXPECT_EQ(r.hash, want) << "passive " << i << ": in order";
    }

    // 4. Closes from both workers: the peers' FINs (connection i through
    // worker i % 2; the service closes on EOF), and each active connection
    // sends its data and closes through the worker that did not open it.
    both(true, [&](unsigned w, const auto& feed) {
      std::vector<TcpSegment> segs;
      for (unsigned i = w; i < kPassive; i += 2) segs.push_back(next(peers[i], kAck | kFin));
      feed(segs);
      for (unsigned i = 0; i < kActive; ++i) {
        if (active[i].opener == w) continue;
        const Bytes d = active_data(i);
        const bool there = router_->tcp().with(active[i].ref, w, now(), [&](socket::TcpConn& c) {
          EXPECT_EQ(c.send(d.data(), d.size()), d.size());
          c.close();
        });
        EXPECT_TRUE(there) << "active " << i;
      }
    });
    std::vector<Bytes> got(kActive);
    std::vector<bool> fin_seen(kActive), our_fin(kPassive);
    for (const Seg& s : out()) {
      EXPECT_TRUE(s.checksums_ok);
      if (s.sport == kListenPort && s.dport >= kPassiveBase && s.dport < kPassiveBase + kPassive && (s.flags & kFin)) {
        const unsigned i = s.dport - kPassiveBase;
        EXPECT_EQ(s.seq, peers[i].rcv_nxt) << "passive " << i << ": our FIN, no data";
        EXPECT_EQ(s.ack, peers[i].snd_nxt) << "passive " << i << ": the data and the FIN acknowledged";
        EXPECT_TRUE(s.data.empty());
        our_fin[i] = true;
      } else if (s.dport >= kActiveBase && s.dport < kActiveBase + kActive) {
        const unsigned i = s.dport - kActiveBase;
        const uint32_t off = s.seq - apeers[i].rcv_nxt;
        if (!s.data.empty()) {
          if (got[i].size() < off + s.data.size()) got[i].resize(off + s.data.size());
          std::copy(s.data.begin(), s.data.end(), got[i].begin() + off);
        }
        if (s.flags & kFin) fin_seen[i] = off + s.data.size() == kActiveLen;
      }
    }
    for (unsigned i = 0; i < kPassive; ++i) {
      EXPECT_TRUE(our_fin[i]) << "passive " << i;
      EXPECT_TRUE(server->conns[i].eof) << "passive " << i;
      peers[i].rcv_nxt += 1;
    }
    for (unsigned i = 0; i < kActive; ++i) {
      EXPECT_EQ(got[i], active_data(i)) << "active " << i << ": its bytes, in order";
      EXPECT_TRUE(fin_seen[i]) << "active " << i << ": FIN after the data";
      apeers[i].rcv_nxt += kActiveLen + 1;
    }

    // 5. The last ACKs (through the other worker than the FIN), and the
    // active opens' peers acknowledge everything and close too.
    both(false, [&](unsigned w, const auto& feed) {
      std::vector<TcpSegment> segs;
      for (unsigned i = 1 - w; i < kPassive; i += 2) segs.push_back(next(peers[i], kAck));
      for (unsigned i = w; i < kActive; i += 2) segs.push_back(next(apeers[i], kAck | kFin));
      feed(segs);
    });
    for (unsigned i = 0; i < kActive; ++i) {
      auto v = conn(apeers[i].sport);
      ASSERT_TRUE(v) << "active " << i;
      EXPECT_EQ(v->state, tcp::State::time_wait) << "active " << i;
    }
    EXPECT_EQ(live(), kActive) << "only TIME-WAIT left";
    // TIME-WAIT expires on whichever wheel armed it.
    advance_ms(21000);
    free_all(sent(0));
    free_all(sent(1));
    EXPECT_EQ(live(), 0u);

    // The counters add up.
    EXPECT_EQ(stat(tcp::Stat::segments_in), fed.load());
    EXPECT_EQ(stat(tcp::Stat::syn_in), kPassive);
    EXPECT_EQ(stat(tcp::Stat::accepts), kPassive);
    EXPECT_EQ(stat(tcp::Stat::connects), kActive);
    EXPECT_EQ(stat(tcp::Stat::established), kPassive + kActive);
    EXPECT_EQ(stat(tcp::Stat::closed), kPassive + kActive);
    EXPECT_EQ(stat(tcp::Stat::data_segments_in), kPassive * kSegs);
    EXPECT_EQ(stat(tcp::Stat::bytes_in), uint64_t{kPassive} * kSegs * kSegLen);
    EXPECT_EQ(stat(tcp::Stat::bytes_out), uint64_t{kActive} * kActiveLen);
    EXPECT_EQ(stat(tcp::Stat::resets), 0u);
    EXPECT_EQ(stat(tcp::Stat::rst_out), 0u);
    EXPECT_EQ(stat(tcp::Stat::timeouts), 0u);
    EXPECT_EQ(all_drops(), 0u) << drop_list();
    for (unsigned i = 0; i < kPassive; ++i) EXPECT_EQ(server->conns[i].closed, -1) << "passive " << i;
    for (unsigned i = 0; i < kActive; ++i) EXPECT_EQ(active[i].closed, -1) << "active " << i;
  }
}

// --- (10) Nagle, path MTU, simultaneous open, TIME-WAIT reuse, CUBIC ---------------------

namespace {
// An ICMP error from the peer, type/code with a next-hop MTU, quoting a
// segment ngstack sent on `p`: the IP header and the first 8 bytes of the
// TCP header, whose sequence number is `seq`. Both checksums right.
test::Ipv4Frame icmp_frame() {
  test::Ipv4Frame f;
  std::memcpy(f.dst_mac, kOurMac, 6);
  std::memcpy(f.src_mac, kPeerMac, 6);
  f.src = kPeer;
  f.dst = kOurs;
  f.proto = 1;
  f.payload = 8 + 20 + 8;
  return f;
}
Bytes icmp_error_bytes(uint8_t type, uint8_t code, uint16_t mtu, const Peer& p, uint32_t seq) {
  Bytes f = icmp_frame().bytes();
  uint8_t* icmp = &f[14 + 20];
  icmp[0] = type;
  icmp[1] = code;
  icmp[6] = static_cast<uint8_t>(mtu >> 8);  // RFC 1191: the next-hop MTU in the low 16 bits
  icmp[7] = static_cast<uint8_t>(mtu);
  uint8_t* q = icmp + 8;  // the quoted IP header: ngstack's segment, ours -> the peer
  q[0] = 0x45;
  q[2] = 1500 >> 8, q[3] = 1500 & 0xff;
  q[6] = 0x40;  // DF
  q[8] = 64;
  q[9] = 6;
  for (int i = 0; i < 4; ++i) q[12 + i] = static_cast<uint8_t>(kOurs >> (24 - 8 * i));
  for (int i = 0; i < 4; ++i) q[16 + i] = static_cast<uint8_t>(kPeer >> (24 - 8 * i));
  const uint16_t qsum = static_cast<uint16_t>(~TcpSegment::fold(TcpSegment::sum(q, 20)));
  q[10] = static_cast<uint8_t>(qsum >> 8), q[11] = static_cast<uint8_t>(qsum);
  uint8_t* th = q + 20;  // the first 8 bytes of the quoted TCP header
  th[0] = static_cast<uint8_t>(p.dport >> 8), th[1] = static_cast<uint8_t>(p.dport);
  th[2] = static_cast<uint8_t>(p.sport >> 8), th[3] = static_cast<uint8_t>(p.sport);
  for (int i = 0; i < 4; ++i) th[4 + i] = static_cast<uint8_t>(seq >> (24 - 8 * i));
  const uint16_t sum = static_cast<uint16_t>(~TcpSegment::fold(TcpSegment::sum(icmp, 36)));
  icmp[2] = static_cast<uint8_t>(sum >> 8), icmp[3] = static_cast<uint8_t>(sum);
  return f;
}

struct Opened {
  unsigned connected = 0, closed = 0;
};
void opened_connected(void* ctx, socket::TcpConn&) { ++static_cast<Opened*>(ctx)->connected; }
void opened_closed(void* ctx, socket::TcpConn&, socket::CloseReason) { ++static_cast<Opened*>(ctx)->closed; }
}  // namespace

// RFC 896 (RFC 9293 §3.7.4): with Nagle on (the default), tcp-echo echoing
// three small segments that arrive before the peer ACKs anything sends the
// first at once and holds the rest, which leave together, as one segment,
// when the ACK of the first arrives. With stack.tcp.nagle: false each small
// piece goes at once.
TEST_F(TcpTest, NagleHoldsSmallSegmentsUntilTheAckUnlessTurnedOff) {
  for (const bool nagle : {true, false}) {
    SCOPED_TRACE(nagle ? "nagle: true (default)" : "nagle: false");
    TearDown();
    Knobs k;
    k.tcp = nagle ? "msl_ms: 50" : "msl_ms: 50, nagle: false";
    ASSERT_NO_FATAL_FAILURE(make(k));
    Peer p = open(47000, kEcho);
    ASSERT_TRUE(out().empty());
    const Bytes a = pattern(10, 1), b = pattern(11, 2), c = pattern(12, 3);
    auto segs = send(p, a);
    ASSERT_EQ(segs.size(), 1u) << describe(segs);
    EXPECT_EQ(segs[0].data, a) << "nothing in flight: the first small piece goes at once";
    const Seg first = segs[0];
    segs = send(p, b);
    auto more = send(p, c);
    segs.insert(segs.end(), more.begin(), more.end());
    if (nagle) {
      EXPECT_TRUE(segs.empty()) << "small pieces wait while data is in flight: " << describe(segs);
      take(p, {first});
      input({mbuf(next(p, kAck))});  // the peer ACKs the first echo
      segs = out();
      ASSERT_EQ(segs.size(), 1u) << "the held pieces leave together: " << describe(segs);
      EXPECT_EQ(segs[0].seq, first.seq + a.size());
      Bytes bc = b;
      bc.insert(bc.end(), c.begin(), c.end());
      EXPECT_EQ(segs[0].data, bc);
    } else {
      ASSERT_EQ(segs.size(), 2u) << "each small piece at once: " << describe(segs);
      EXPECT_EQ(segs[0].seq, first.seq + a.size());
      EXPECT_EQ(segs[0].data, b);
      EXPECT_EQ(segs[1].seq, first.seq + a.size() + b.size());
      EXPECT_EQ(segs[1].data, c);
    }
    EXPECT_EQ(stat(tcp::Stat::bytes_out), a.size() + b.size() + c.size());
    EXPECT_EQ(stat(tcp::Stat::retransmits), 0u);
    EXPECT_EQ(all_drops(), 0u) << drop_list();
  }
}

// RFC 1191 / RFC 5927 §4.1: an ICMP fragmentation-needed (type 3 code 4)
// with a next-hop MTU of 1000, quoting a segment in flight (SND.UNA <= seq
// < SND.MAX), lowers the connection's MSS to 1000 - 40 - 12 (timestamps) and
// resends what was too big in segments of that size; later data too. The
// same error quoting a sequence number outside the flight changes nothing.
TEST_F(TcpTest, FragmentationNeededForDataInFlightLowersTheMss) {
  ASSERT_NO_FATAL_FAILURE(make({}));
  Peer p = open(47100, kEcho, {.ts = true});
  ASSERT_TRUE(out().empty());
  auto v = conn(p.sport);
  ASSERT_TRUE(v);
  ASSERT_EQ(v->mss, kOurMss - 12u);
  const Bytes data = pattern(1400, 4);
  auto segs = send(p, data);
  ASSERT_EQ(segs.size(), 1u) << describe(segs);
  ASSERT_EQ(segs[0].data.size(), 1400u);
  const uint32_t una = segs[0].seq, max = una + 1400;
  constexpr uint16_t kMtu = 1000;
  constexpr unsigned kLowered = kMtu - 40 - 12;
  // Outside the flight: before SND.UNA, at SND.MAX, far beyond it.
  for (uint32_t seq : {una - 1, max, max + 100000}) {
    SCOPED_TRACE("quoting seq " + std::to_string(seq));
    input({test::to_mbuf(pool_, icmp_error_bytes(3, 4, kMtu, p, seq), port_)});
    EXPECT_TRUE(out().empty()) << "no retransmission";
    EXPECT_EQ(conn(p.sport)->mss, kOurMss - 12u) << "the MSS is unchanged";
  }
  EXPECT_EQ(stat(tcp::Stat::icmp_errors_in), 3u) << "the errors reached TCP";
  EXPECT_EQ(stat(tcp::Stat::mss_lowered), 0u);
  // Inside the flight.
  input({test::to_mbuf(pool_, icmp_error_bytes(3, 4, kMtu, p, una + 500), port_)});
  segs = out();
  EXPECT_EQ(stat(tcp::Stat::icmp_errors_in), 4u);
  EXPECT_EQ(stat(tcp::Stat::mss_lowered), 1u);
  EXPECT_EQ(conn(p.sport)->mss, kLowered);
  ASSERT_EQ(segs.size(), 2u) << "the 1400 bytes again, in two segments: " << describe(segs);
  Bytes again;
  uint32_t at = una;
  for (const Seg& s : segs) {
    EXPECT_LE(s.data.size(), kLowered);
    EXPECT_EQ(s.seq, at);
    EXPECT_TRUE(s.ts);
    at += static_cast<uint32_t>(s.data.size());
    again.insert(again.end(), s.data.begin(), s.data.end());
  }
  EXPECT_EQ(again, data);
  EXPECT_EQ(segs[0].data.size(), kLowered);
  // Later data: 1400 bytes more, echoed in segments of the lowered MSS
  // (the peer ACKs each round: Nagle holds the short tail until then).
  take(p, segs);
  const Bytes later = pattern(1400, 5);
  segs = send(p, later);
  Bytes echoed;
  unsigned pieces = 0;
  for (int round = 0; round < 4; ++round) {
    for (const Seg& s : segs) {
      EXPECT_LE(s.data.size(), kLowered) << describe(segs);
      echoed.insert(echoed.end(), s.data.begin(), s.data.end());
      pieces += !s.data.empty();
    }
    if (echoed.size() >= later.size()) break;
    take(p, segs);
    input({mbuf(next(p, kAck))});
    segs = out();
  }
  EXPECT_EQ(echoed, later);
  EXPECT_EQ(pieces, 2u);
  EXPECT_EQ(all_drops(), 0u) << drop_list();
}

namespace {
// The peer's port of the simultaneous opens.
constexpr uint16_t kFar = 6000;
}  // namespace

// RFC 9293 §3.5, figure 8: simultaneous open. Our SYN is answered by the
// peer's own SYN (no ACK): ngstack goes to SYN-RECEIVED and sends SYN-ACK
// (its ISS again, ACK = the peer's ISN + 1); the peer's ACK of it
// establishes the connection (§3.10.7.4, SYN-RECEIVED), `connected` runs
// once, and data flows.
TEST_F(TcpTest, SimultaneousOpenAnswersSynWithSynAckAndEstablishes) {
  ASSERT_NO_FATAL_FAILURE(make({}));
  Opened opened;
  socket::TcpHandlers h;
  h.connected = opened_connected;
  h.closed = opened_closed;
  auto ref = router_->tcp().connect(0, kPeer, kFar, h, &opened, now());
  ASSERT_TRUE(ref.ok()) << ref.error();
  pump();
  auto segs = out();
  ASSERT_EQ(segs.size(), 1u) << describe(segs);
  const Seg syn = segs[0];
  ASSERT_EQ(syn.flags, kSyn) << flags_of(syn.flags);
  EXPECT_EQ(syn.dport, kFar);
  Peer p;
  p.sport = kFar;
  p.dport = syn.sport;
  p.snd_nxt = 0x5a5a0000u;
  const uint32_t peer_isn = p.snd_nxt;
  // The peer's SYN crosses ours: no ACK.
  input({mbuf(next(p, kSyn).mss(1460))});
  segs = out();
  ASSERT_EQ(segs.size(), 1u) << describe(segs);
  expect_well_formed(segs[0], p);
  EXPECT_EQ(segs[0].flags, kSyn | kAck) << flags_of(segs[0].flags);
  EXPECT_EQ(segs[0].seq, syn.seq) << "the same ISS";
  EXPECT_EQ(segs[0].ack, peer_isn + 1);
  EXPECT_TRUE(segs[0].has_mss);
  ASSERT_TRUE(conn(kFar));
  EXPECT_EQ(conn(kFar)->state, tcp::State::syn_received);
  EXPECT_EQ(opened.connected, 0u);
  // The peer acknowledges our SYN.
  p.rcv_nxt = syn.seq + 1;
  input({mbuf(next(p, kAck))});
  segs = out();
  EXPECT_TRUE(segs.empty()) << describe(segs);
  ASSERT_TRUE(conn(kFar));
  EXPECT_EQ(conn(kFar)->state, tcp::State::established);
  EXPECT_EQ(opened.connected, 1u);
  EXPECT_EQ(stat(tcp::Stat::established), 1u);
  // Data both ways; `connected` ran once.
  const bool there =
      router_->tcp().with(*ref, 0, now(), [&](socket::TcpConn& c) { EXPECT_EQ(c.send("hi", 2), 2u); });
  EXPECT_TRUE(there);
  pump();
  segs = out();
  ASSERT_EQ(segs.size(), 1u) << describe(segs);
  EXPECT_EQ(segs[0].seq, syn.seq + 1);
  EXPECT_EQ(segs[0].ack, p.snd_nxt);
  EXPECT_EQ(segs[0].data, (Bytes{'h', 'i'}));
  take(p, segs);
  input({mbuf(next(p, kAck, pattern(5, 1)))});
  EXPECT_EQ(opened.connected, 1u);
  EXPECT_EQ(opened.closed, 0u);
  EXPECT_EQ(stat(tcp::Stat::bytes_in), 5u);
  EXPECT_EQ(stat(tcp::Stat::connects), 1u);
  EXPECT_EQ(stat(tcp::Stat::rst_out), 0u);
}

// Figure 8, line 7: in a simultaneous open each side's SYN-ACK reaches the
// other in SYN-RECEIVED, and that SYN-ACK (the peer's SYN again, now with
// the ACK of ours) establishes the connection, as in FreeBSD (which trims
// the duplicate SYN and processes the ACK) and Linux (tcp_validate_incoming
// lets a SYN-ACK acknowledging SND.NXT through in SYN-RECV).
// BUG, this test FAILS: stack/tcp/tcp.cpp's sync_input finds the SYN-ACK
// unacceptable (SEG.SEQ = IRS < RCV.NXT, its only octet the SYN), sends an
// ACK and drops it: ngstack stays in SYN-RECEIVED until the peer sends
// something else, or its SYN-ACK is retransmitted after an RTO and ACKed.
TEST_F(TcpTest, SimultaneousOpenEstablishesOnThePeersSynAck) {
  ASSERT_NO_FATAL_FAILURE(make({}));
  Opened opened;
  socket::TcpHandlers h;
  h.connected = opened_connected;
  h.closed = opened_closed;
  auto ref = router_->tcp().connect(0, kPeer, kFar, h, &opened, now());
  ASSERT_TRUE(ref.ok()) << ref.error();
  pump();
  auto segs = out();
  ASSERT_EQ(segs.size(), 1u) << describe(segs);
  const Seg syn = segs[0];
  Peer p;
  p.sport = kFar;
  p.dport = syn.sport;
  p.snd_nxt = 0x5a5a0000u;
  const uint32_t peer_isn = p.snd_nxt;
  input({mbuf(next(p, kSyn).mss(1460))});
  segs = out();
  ASSERT_EQ(segs.size(), 1u) << describe(segs);
  ASSERT_EQ(segs[0].flags, kSyn | kAck) << flags_of(segs[0].flags);
  // The peer's SYN-ACK: its SYN again, acknowledging ours.
  input({mbuf(segment(p.sport, p.dport, peer_isn, syn.seq + 1, kSyn | kAck).mss(1460))});
  segs = out();
  for (const Seg& s : segs) EXPECT_FALSE(s.flags & (kRst | kSyn)) << describe(segs);
  ASSERT_TRUE(conn(kFar));
  EXPECT_EQ(conn(kFar)->state, tcp::State::established) << "answered with: " << describe(segs);
  EXPECT_EQ(opened.connected, 1u);
}

// RFC 6191: ngstack closed first (tcp-source after its 100 bytes) and sits
// in TIME-WAIT, timestamps on. A SYN on the same 4-tuple whose TSval is
// older than the connection's last gets TIME-WAIT's answer (an ACK) and
// makes nothing, even with a higher sequence number; one whose TSval is
// newer takes the tuple over: a SYN-ACK, even with a lower sequence number.
TEST_F(TcpTest, TimeWaitIsReusedByASynWithANewerTimestampOnly) {
  Knobs k;
  k.tcp = "msl_ms: 60000";
  ASSERT_NO_FATAL_FAILURE(make(k));
  Peer s = open(47300, kSource, {.ts = true});
  auto segs = out();
  ASSERT_EQ(segs.size(), 1u) << describe(segs);
  ASSERT_EQ(segs[0].flags, kAck | kPsh | kFin) << flags_of(segs[0].flags);
  take(s, segs);
  input({mbuf(next(s, kAck))});
  EXPECT_TRUE(out().empty());
  input({mbuf(next(s, kAck | kFin))});
  segs = out();
  ASSERT_EQ(segs.size(), 1u) << describe(segs);
  EXPECT_EQ(segs[0].flags, kAck);
  ASSERT_TRUE(conn(s.sport));
  ASSERT_EQ(conn(s.sport)->state, tcp::State::time_wait);
  const uint32_t last_tsval = s.tsval - 1;
  const uint64_t accepts = stat(tcp::Stat::accepts);
  // An older TSval, a higher sequence number: the TIME-WAIT treatment.
  TcpSegment old_syn = segment(s.sport, s.dport, s.snd_nxt + 5000, 0, kSyn);
  old_syn.mss(1460).timestamps(last_tsval - 10, 0);
  input({mbuf(old_syn)});
  segs = out();
  ASSERT_EQ(segs.size(), 1u) << describe(segs);
  EXPECT_EQ(segs[0].flags, kAck) << "an ACK, not a SYN-ACK: " << flags_of(segs[0].flags);
  EXPECT_EQ(segs[0].ack, s.snd_nxt);
  ASSERT_TRUE(conn(s.sport));
  EXPECT_EQ(conn(s.sport)->state, tcp::State::time_wait);
  EXPECT_EQ(stat(tcp::Stat::time_wait_reused), 0u);
  EXPECT_EQ(stat(tcp::Stat::syncache_added), 1u) << "no new connection";
  EXPECT_EQ(live(), 1u);
  // A newer TSval, a lower sequence number: a new connection.
  const uint32_t new_isn = s.snd_nxt - 100000;
  TcpSegment new_syn = segment(s.sport, s.dport, new_isn, 0, kSyn);
  new_syn.mss(1460).timestamps(last_tsval + 1000, 0);
  input({mbuf(new_syn)});
  segs = out();
  ASSERT_EQ(segs.size(), 1u) << describe(segs);
  EXPECT_EQ(segs[0].flags, kSyn | kAck) << flags_of(segs[0].flags);
  EXPECT_EQ(segs[0].ack, new_isn + 1);
  EXPECT_TRUE(segs[0].ts);
  EXPECT_EQ(segs[0].tsecr, last_tsval + 1000);
  EXPECT_EQ(stat(tcp::Stat::time_wait_reused), 1u);
  EXPECT_EQ(stat(tcp::Stat::syncache_added), 2u);
  ASSERT_TRUE(conn(s.sport));
  EXPECT_EQ(conn(s.sport)->state, tcp::State::syn_received);
  EXPECT_EQ(live(), 1u) << "the TIME-WAIT Tcb gave way to the new one";
  EXPECT_EQ(stat(tcp::Stat::accepts), accepts);
}

// RFC 9438 §4.6 vs RFC 5681 / RFC 6582: two bulk senders (tcp-source; one
// NewReno, one CUBIC by its service's congestion_control), ten segments in
// flight, the first lost: three duplicate ACKs. NewReno's ssthresh becomes
// half the flight, CUBIC's 0.7 x cwnd. After recovery, in congestion
// avoidance: right after the loss CUBIC sits at the plateau of its cubic
// function and grows more slowly per ACK than NewReno (RFC 9438 §4.3: its
// Reno-friendly estimate grows with alpha 0.53 < 1); a second later it
// climbs back toward W_max faster than NewReno's one segment per RTT
// (§4.4, the concave region: growth by elapsed time, not by ACKs).
TEST_F(TcpTest, CubicReducesToSevenTenthsNewRenoToHalfAndTheyGrowDifferently) {
  Knobs k;
  // A long minimum RTO: no timeout while the test sleeps in real time.
  k.tcp = "msl_ms: 50, min_rto_ms: 30000, initial_rto_ms: 30000, max_rto_ms: 60000";
  k.services = "  - {type: tcp-source, port: 19, bytes: 10000000}\n"
               "  - {type: tcp-source, port: 20, bytes: 10000000, congestion_control: cubic}\n";
  ASSERT_NO_FATAL_FAILURE(make(k));
  constexpr uint16_t kReno = 19, kCubic = 20;
  struct Flow {
    Peer p;
    std::vector<std::pair<uint32_t, uint32_t>> out;  // [seq, end) of new data not yet acknowledged
    uint32_t una = 0, max = 0;
  };
  Flow flows[2];
  // What the stack sent: new segments join their flow's list.
  auto collect = [&]() {
    for (const Seg& s : out()) {
      for (Flow& f : flows) {
        if (s.dport != f.p.sport || s.data.empty()) continue;
        EXPECT_LE(s.data.size(), kOurMss);
        const uint32_t end = s.seq + static_cast<uint32_t>(s.data.size());
        if (tcp::seq_gt(end, f.max)) {
          f.out.emplace_back(s.seq, end);
          f.max = end;
        }
      }
    }
  };
  for (int i = 0; i < 2; ++i) {  // one at a time: open() expects only its SYN-ACK out
    flows[i].p = open(static_cast<uint16_t>(47400 + i), i ? kCubic : kReno);
    flows[i].una = flows[i].max = flows[i].p.rcv_nxt;
    collect();
  }
  ASSERT_EQ(flows[0].out.size(), 10u) << "the initial window";
  ASSERT_EQ(flows[1].out.size(), 10u) << "the initial window";
  auto view = [&](int i) { return *conn(flows[i].p.sport); };
  auto ack_to = [&](int i, uint32_t ack) {
    Flow& f = flows[i];
    f.p.rcv_nxt = ack;
    input({mbuf(next(f.p, kAck))});
    collect();
    while (!f.out.empty() && tcp::seq_leq(f.out.front().second, ack)) f.out.erase(f.out.begin());
    f.una = ack;
  };
  uint32_t cwnd_before[2], flight_at_loss[2];
  for (int i = 0; i < 2; ++i) {
    SCOPED_TRACE(i ? "cubic" : "newreno");
    Flow& f = flows[i];
    cwnd_before[i] = view(i).cwnd;
    EXPECT_EQ(cwnd_before[i] / kOurMss, 10u) << "the initial window";
    const uint64_t fast_before = stat(tcp::Stat::fast_retransmits);
    // The first segment is lost; three duplicate ACKs (limited transmit sends one new segment on each of the first two).
    for (int d = 0; d < 3; ++d) {
      if (d == 2) flight_at_loss[i] = f.max - f.una;
      ack_to(i, f.una);
    }
    EXPECT_EQ(stat(tcp::Stat::fast_retransmits), fast_before + 1);
    const auto v = view(i);
    if (i == 1) {
      EXPECT_NEAR(v.ssthresh, 0.7 * cwnd_before[i], 1.0) << "RFC 9438: beta_cubic 0.7 of cwnd";
    } else {
      EXPECT_EQ(v.ssthresh, flight_at_loss[i] / 2) << "RFC 5681 eq. (4): half the flight";
    }
  }
  EXPECT_EQ(flight_at_loss[0], 12u * kOurMss) << "ten, and two by limited transmit";
  const uint32_t ssthresh[2] = {view(0).ssthresh, view(1).ssthresh};
  EXPECT_LT(ssthresh[0], ssthresh[1]);
  // The rest of the window arrived: more duplicate ACKs inflate the window
  // (new data goes), then the ACK of everything up to the loss ends recovery.
  for (int i = 0; i < 2; ++i) {
    const uint32_t recover = flows[i].max;
    for (int d = 0; d < 8; ++d) ack_to(i, flows[i].una);
    ack_to(i, recover);
    const auto v = view(i);
    EXPECT_EQ(v.ssthresh, ssthresh[i]) << "after fast recovery";
    EXPECT_EQ(v.cwnd, ssthresh[i]) << "RFC 6582 §3.2 step 6";
    ASSERT_FALSE(flows[i].out.empty());
  }
  // Congestion avoidance, right after the loss: the same number of ACKs, one segment each.
  auto grow = [&](int i, unsigned acks) {
    const uint32_t before = view(i).cwnd;
    for (unsigned a = 0; a < acks; ++a) {
      if (flows[i].out.empty()) {
        ADD_FAILURE() << "nothing in flight to acknowledge";
        break;
      }
      ack_to(i, flows[i].out.front().second);
    }
    return view(i).cwnd - before;
  };
  const uint32_t reno_soon = grow(0, 5), cubic_soon = grow(1, 5);
  EXPECT_GT(reno_soon, 0u);
  EXPECT_GT(reno_soon, cubic_soon) << "just after the loss, NewReno grows faster per ACK";
  // A second later (real time: TCP reads the TSC), CUBIC's window climbs
  // back toward W_max by the cubic function; NewReno's growth per ACK is what it was.
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  const uint32_t reno_later = grow(0, 5), cubic_later = grow(1, 5);
  EXPECT_GT(cubic_later, reno_later) << "a second after the loss, CUBIC grows faster per ACK";
  EXPECT_GT(cubic_later, cubic_soon);
  EXPECT_LT(view(1).cwnd, 12u * kOurMss) << "not past W_max (10 segments) by much";
  EXPECT_EQ(stat(tcp::Stat::rto_expired), 0u);
  EXPECT_EQ(all_drops(), 0u) << drop_list();
}

// --- TCP segmentation offload --------------------------------------------------------------

// A port with TSO enabled gets new data as frames of several full segments
// (one mbuf chain, RTE_MBUF_F_TX_TCP_SEG, tso_segsz = the connection's MSS,
// the pseudo-header sum without the length); cut as a device cuts them, the
// pieces are exactly the segments a port without TSO would have carried:
// contiguous, at most one MSS each, the stream's bytes, the FIN alone at the
// end. The counters count wire segments, and frames apart.
TEST_F(TcpTest, WithTsoNewDataLeavesAsMultiSegmentFramesTheDeviceCutsIntoExactSegments) {
  constexpr uint32_t kBytes = 300000;
  Knobs k;
  k.services = "  - {type: tcp-source, port: 19, bytes: " + std::to_string(kBytes) + "}\n";
  k.tx_offloads = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_TSO |
                  RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
  k.tx_max_segs = 16;  // 15 x 2048 bytes of payload per frame at most
  ASSERT_NO_FATAL_FAILURE(make(k));
  Offer o;
  o.ws = o.ts = o.sack = true;
  o.shift = 7;
  Peer p;
  Seg synack;
  // open() reads what follows the handshake's ACK with out(), which would
  // parse a TSO frame as one: take the handshake by hand.
  p.sport = 40100;
  p.dport = kSource;
  p.snd_nxt = 0x7ffff000u;
  TcpSegment syn = next(p, kSyn);
  syn.mss(1460);
  syn.sack_permitted();
  syn.timestamps(p.tsval++, 0);
  syn.wscale(o.shift);
  input({mbuf(syn)});
  auto sa = out();
  ASSERT_EQ(sa.size(), 1u);
  p.iss = sa[0].seq;
  p.rcv_nxt = sa[0].seq + 1;
  p.ts = true;
  p.ts_recent = sa[0].tsval;
  p.window = 65535;  // x 128: 8 MB
  input({mbuf(next(p, kAck))});

  const uint32_t mss = kOurMss - 12;  // less the timestamps option
  uint64_t stream = 0, frames = 0, tso_frames = 0, wire = 0, biggest = 0;
  bool fin = false, content_ok = true;
  for (int round = 0; round < 200 && !fin; ++round) {
    std::vector<Seg> segs;
    for (rte_mbuf* m : sent(0)) {
      const Bytes f = bytes_of(m);
      ++frames;
      if (m->ol_flags & RTE_MBUF_F_TX_TCP_SEG) {
        ++tso_frames;
        EXPECT_EQ(m->tso_segsz, mss);
        EXPECT_GT(m->nb_segs, 1u) << "the payload continues in chained mbufs";
        EXPECT_LE(m->nb_segs, k.tx_max_segs);
        EXPECT_EQ(m->l2_len + m->l3_len + m->l4_len, 14u + 20u + 32u);
        EXPECT_TRUE(m->ol_flags & RTE_MBUF_F_TX_IP_CKSUM);
        // The pseudo-header sum, length left out, is what the device completes.
        const auto* ip = reinterpret_cast<const rte_ipv4_hdr*>(&f[14]);
        const auto* th = reinterpret_cast<const rte_tcp_hdr*>(&f[34]);
        EXPECT_EQ(th->cksum, rte_ipv4_phdr_cksum(ip, m->ol_flags));
        EXPECT_EQ(th->tcp_flags & kFin, 0) << "the FIN goes in a segment of its own";
        biggest = std::max<uint64_t>(biggest, f.size() - 66);
      }
      for (const Bytes& w : cut_as_a_device_would(m, f)) {
        auto s = parse(w);
        if (!s) {
          ADD_FAILURE() << "a cut piece does not parse";
          continue;
        }
        EXPECT_LE(s->data.size(), mss);
        EXPECT_LE(w.size(), 14u + 1500u);
        expect_well_formed(*s, p);
        segs.push_back(std::move(*s));
      }
      rte_pktmbuf_free(m);
    }
    for (const Seg& s : segs) {
      if (s.data.empty() && !(s.flags & kFin)) continue;
      ++wire;
      EXPECT_EQ(s.seq, p.rcv_nxt) << "contiguous, in order, nothing resent";
      for (std::size_t i = 0; i < s.data.size(); ++i)
        content_ok = content_ok && s.data[i] == static_cast<uint8_t>("ngstack\n"[(stream + i) % 8]);
      stream += s.data.size();
      take(p, {s});
      fin = fin || (s.flags & kFin);
    }
    if (segs.empty()) {
      ADD_FAILURE() << "the transfer stalled at " << stream << " bytes";
      break;
    }
    input({mbuf(next(p, kAck))});
  }
  EXPECT_TRUE(fin);
  EXPECT_EQ(stream, kBytes);
  EXPECT_TRUE(content_ok) << "the stream's bytes, in order, across mbuf boundaries";
  EXPECT_GT(tso_frames, 5u);
  EXPECT_GT(biggest, 10u * mss) << "frames of many segments once cwnd opened";
  EXPECT_LE(biggest, 15u * 2048u) << "within the device's mbufs per frame";
  EXPECT_EQ(stat(tcp::Stat::tso_frames_out), tso_frames);
  EXPECT_EQ(stat(tcp::Stat::data_segments_out), wire) << "wire segments, not frames";
  EXPECT_LT(frames, wire / 4);
  EXPECT_EQ(stat(tcp::Stat::retransmits), 0u);
  // Our FIN: the connection ends through LAST-ACK.
  input({mbuf(next(p, kFin | kAck))});
  free_all(sent(0));
  EXPECT_EQ(all_drops(), 0u) << drop_list();
  advance_ms(150);  // TIME-WAIT: 2 MSL of 50 ms
  EXPECT_EQ(live(), 0u);
}

// --- the worker's buffer budget ---------------------------------------------------------------

// stack.tcp.worker_buffers bounds the mbufs one worker's connections queue
// together: tcp-echo facing a closed window fills its send queue to the
// budget, send_space() then offers nothing, the data that follows is dropped
// by name (tcp_worker_budget) and retransmitted later; a tcp-source accepted
// meanwhile cannot send at all (and has nothing in flight to wake it). When
// the window opens and ACKs return the budget, everything is echoed whole,
// the source's retry timer gets its bytes out, and the budget's use goes back to 0.
TEST_F(TcpTest, WorkerBufferBudgetBoundsQueuedMbufsAndTheStreamRecoversWhole) {
  constexpr uint32_t kBudget = 24;
  Knobs k;
  k.tcp = "msl_ms: 50, worker_buffers: " + std::to_string(kBudget);
  ASSERT_NO_FATAL_FAILURE(make(k));
  EXPECT_EQ(router_->tcp().params().worker_buffers, kBudget);
  Peer p = open(40200, kEcho);
  p.window = 0;  // the peer reads nothing: the echo piles up in our send queue
  input({mbuf(next(p, kAck))});
  free_all(sent(0));
  const Bytes data = pattern(80 * 1000, 11);
  uint32_t sent_upto = 0;  // bytes of `data` the stack acknowledged
  auto push = [&](std::size_t upto) {
    // The peer sends from what the stack acknowledged, one 1000-byte segment at a time.
    p.snd_nxt = 0x10000000u + p.sport * 1000u + 1 + sent_upto;
    for (std::size_t off = sent_upto; off < upto; off += 1000) {
      TcpSegment s = next(p, kAck | kPsh, Bytes(data.begin() + static_cast<long>(off),
                                                data.begin() + static_cast<long>(std::min(upto, off + 1000))));
      input({mbuf(s)});
    }
  };
  Bytes echoed;
  Peer src;  // a tcp-source connection, opened once the budget is spent
  uint64_t source_bytes = 0;
  auto collect = [&](const std::vector<Seg>& segs) {
    for (const Seg& s : segs) {
      if (src.sport != 0 && s.dport == src.sport) {
        if (s.seq == src.rcv_nxt) source_bytes += s.data.size();
        take(src, {s});
        continue;
      }
      if (s.dport != p.sport) continue;
      if (s.seq == p.rcv_nxt && !s.data.empty()) echoed.insert(echoed.end(), s.data.begin(), s.data.end());
      take(p, {s});
      if (static_cast<int32_t>(s.ack - (0x10000000u + p.sport * 1000u + 1 + sent_upto)) > 0)
        sent_upto = s.ack - (0x10000000u + p.sport * 1000u + 1);
    }
  };
  push(data.size());
  collect(out());
  EXPECT_LE(router_->tcp().buffers_held(0), int64_t{kBudget} + 1) << "the budget, overshot by one mbuf's room at most";
  EXPECT_GE(router_->tcp().buffers_held(0), int64_t{kBudget} - 1);
  EXPECT_GT(drops(DropReason::tcp_worker_budget), 0u);
  EXPECT_GT(stat(tcp::Stat::worker_budget_full), 0u);
  EXPECT_LT(sent_upto, data.size()) << "the stack did not take everything";
  EXPECT_TRUE(echoed.empty());
  src = open(40201, kSource);
  free_all(sent(0));
  EXPECT_EQ(source_bytes, 0u) << "tcp-source could queue nothing";
  // The window opens: the echo flows, ACKs return the budget, the peer sends the rest again.
  p.window = 65535;
  for (int round = 0; round < 400 && (echoed.size() < data.size()); ++round) {
    input({mbuf(next(p, kAck))});
    collect(out());
    if (sent_upto < data.size()) {
      push(std::min<std::size_t>(data.size(), sent_upto + 8000));
      collect(out());
    }
    advance_ms(2);  // the budget's retry timer offers `writable` again
    collect(out());
  }
  ASSERT_EQ(echoed.size(), data.size());
  EXPECT_TRUE(echoed == data) << "every byte echoed once, in order";
  EXPECT_EQ(source_bytes, 100u) << "the source sent once the budget came back";
  input({mbuf(next(src, kFin | kAck))});
  collect(out());
  EXPECT_LE(router_->tcp().buffers_held(0), int64_t{kBudget} + 1);
  input({mbuf(next(p, kFin | kAck))});
  collect(out());
  input({mbuf(next(p, kAck))});
  advance_ms(150);  // the source's TIME-WAIT: 2 MSL of 50 ms
  free_all(sent(0));
  EXPECT_EQ(live(), 0u);
  EXPECT_EQ(router_->tcp().buffers_held(0), 0) << "the budget's use comes back to 0";
  EXPECT_EQ(drops(DropReason::tcp_worker_budget) + drops(DropReason::tcp_out_of_window), all_drops()) << drop_list();
}
