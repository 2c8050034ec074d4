// The bridge over real DPDK ports (net_ring, whose tx rings the test reads
// back): learning, known unicast, flooding by VLAN, 802.1Q tagging and
// untagging between access and trunk ports, filtering, station moves, the
// table limit, ageing, rate-limited learning, workers sharing the FDB, and a
// pool that is full again at the end.
#include <gtest/gtest.h>
#include <rte_cycles.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_pause.h>
#include <rte_ring.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <thread>

#include "dispatch/netisr.hpp"
#include "stack/bridge/bridge.hpp"
#include "stack/modes/common.hpp"
#include "stack/timer/timer_wheel.hpp"
#include "stack/tsan.hpp"
#include "tests/lib/eal_env.hpp"

using namespace ngstack;
using namespace ngstack::stack;

namespace {

constexpr int kPorts = 3;

class BridgeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pool_ = test::pool("br_pool", 1023, RTE_MBUF_DEFAULT_DATAROOM);
    for (int p = 0; p < kPorts; ++p) {
      const int id = ring_port(std::string("br").append(std::to_string(p)), 256, RING_F_SP_ENQ | RING_F_SC_DEQ,
                               &rx_[p], &tx_[p]);
      ASSERT_GE(id, 0);
      ids_.push_back(static_cast<uint16_t>(id));
    }
  }

  // A started net_ring port over two new rings (`flags` as rte_ring_create's);
  // its port id, or -1.
  static int ring_port(const std::string& name, unsigned ring_size, unsigned flags, rte_ring** rx, rte_ring** tx) {
    *rx = rte_ring_create((name + "rx").c_str(), ring_size, 0, flags);
    *tx = rte_ring_create((name + "tx").c_str(), ring_size, 0, flags);
    const int id = rte_eth_from_rings(name.c_str(), rx, 1, tx, 1, 0);
    rte_eth_conf conf{};
    if (id < 0 || rte_eth_dev_configure(id, 1, 1, &conf) != 0 ||
        rte_eth_rx_queue_setup(id, 0, 64, 0, nullptr, pool_) != 0 ||
        rte_eth_tx_queue_setup(id, 0, 64, 0, nullptr) != 0 || rte_eth_dev_start(id) != 0)
      return -1;
    return id;
  }

  // A bridge config over ports p0..p2; vlans[i]: "" (no VLANs), "a10"
  // (access 10) or "t10,20" (trunk).
  static conf::Config bridge_config(const std::vector<std::string>& vlans, unsigned max_entries, unsigned aging_ms) {
    conf::Config cfg;
    cfg.mode = conf::Mode::bridge;
    cfg.bridge.max_entries = max_entries;
    cfg.bridge.aging_ms = aging_ms;
    for (int p = 0; p < kPorts; ++p) {
      conf::PortConfig pc;
      pc.name = std::string("p").append(std::to_string(p));
      cfg.ports.push_back(pc);
      conf::BridgePortConfig bp;
      bp.port = static_cast<uint16_t>(p);
      const std::string& v = vlans[p];
      if (!v.empty() && v[0] == 'a') bp.access_vlan = static_cast<uint16_t>(std::stoi(v.substr(1)));
      if (!v.empty() && v[0] == 't')
        for (std::size_t at = 1; at < v.size();) {
          std::size_t comma = v.find(',', at);
          bp.trunk_vlans.push_back(static_cast<uint16_t>(std::stoi(v.substr(at, comma - at))));
          at = comma == std::string::npos ? v.size() : comma + 1;
        }
      cfg.bridge.ports.push_back(bp);
    }
    return cfg;
  }

  static std::vector<PortInfo> port_info(const std::vector<uint16_t>& ids) {
    std::vector<PortInfo> info;
    for (uint16_t id : ids) info.push_back({id, {}, 1500});
    return info;
  }

  void make(std::vector<std::string> vlans, unsigned max_entries = 64, unsigned aging_ms = 1000,
            unsigned learn_rate = conf::BridgeConfig{}.learn_rate,
            unsigned learn_burst = conf::BridgeConfig{}.learn_burst) {
    conf::Config cfg = bridge_config(vlans, max_entries, aging_ms);
    cfg.bridge.learn_rate = learn_rate;
    cfg.bridge.learn_burst = learn_burst;
    auto b = Bridge::create(cfg, port_info(ids_), pool_, 1, rte_get_tsc_hz());
    ASSERT_TRUE(b.ok()) << b.error();
    bridge_ = std::move(*b);
    tx_buffers_ = std::make_unique<TxBuffers>(ids_, 0, 32, drops_);
    auto wheel = timer::TimerWheel::create({rte_get_tsc_hz(), 1000, 1024, modes::timer_nodes(cfg)});
    ASSERT_TRUE(wheel.ok()) << wheel.error();
    timers_ = std::move(*wheel);
    bridge_->bind({WorkerIo{tx_buffers_.get(), &drops_, &events_, timers_.get()}});
    bridge_->worker_online(0);
  }

  void TearDown() override {
    if (bridge_) bridge_->worker_offline(0);
    for (int p = 0; p < kPorts; ++p) {
      auto v = sent(p);
      for (auto* m : v) rte_pktmbuf_free(m);
    }
    bridge_.reset();
    EXPECT_EQ(rte_mempool_avail_count(pool_), pool_->size) << "every mbuf back in the pool";
  }

  // A 64-byte frame from `src` to `dst`, with a tag when vlan != 0, received on port `in`.
  rte_mbuf* frame(int in, uint8_t src, uint8_t dst, uint16_t vlan = 0) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool_);
    auto* d = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, 64));
    if (!d) std::abort();
    memset(d, 0, 64);
    auto* eth = reinterpret_cast<rte_ether_hdr*>(d);
    eth->dst_addr = mac(dst);
    eth->src_addr = mac(src);
    if (vlan) {
      eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_VLAN);
      auto* tag = reinterpret_cast<rte_vlan_hdr*>(eth + 1);
      tag->vlan_tci = rte_cpu_to_be_16(vlan);
      tag->eth_proto = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
    } else {
      eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
    }
    m->port = ids_[in];
    return m;
  }

  static rte_ether_addr mac(uint8_t last) {
    if (last == 0xff) return rte_ether_addr{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
    return rte_ether_addr{{0x02, 0, 0, 0, 0, last}};
  }

  void input(rte_mbuf* m) {
    Bridge::netisr_handler(bridge_.get(), 0, dispatch::kMixedPorts, &m, 1);
    tx_buffers_->flush_all();
  }

  std::vector<rte_mbuf*> sent(int p) {
    std::vector<rte_mbuf*> out(256);
    out.resize(rte_ring_dequeue_burst(tx_[p], reinterpret_cast<void**>(out.data()), 256, nullptr));
    return out;
  }

  // 0: untagged; else the VLAN id of the frame's tag.
  static uint16_t tag_of(const rte_mbuf* m) {
    const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
    if (eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_VLAN)) return 0;
    return rte_be_to_cpu_16(reinterpret_cast<const rte_vlan_hdr*>(eth + 1)->vlan_tci) & 0xfff;
  }

  static void free_all(std::vector<rte_mbuf*> v) {
    for (auto* m : v) rte_pktmbuf_free(m);
  }

  std::string port_of(uint16_t vlan, uint8_t station) {
    const rte_ether_addr want = mac(station);
    for (const auto& e : bridge_->fdb())
      if (e.vlan == vlan && rte_is_same_ether_addr(&e.mac, &want)) return e.port;
    return "";
  }

  static inline rte_mempool* pool_ = nullptr;
  static inline rte_ring* rx_[kPorts]{};
  static inline rte_ring* tx_[kPorts]{};
  static inline std::vector<uint16_t> ids_;
  std::unique_ptr<Bridge> bridge_;
  std::unique_ptr<TxBuffers> tx_buffers_;
  std::unique_ptr<timer::TimerWheel> timers_;
  DropCounters drops_;
  EventCounters events_;
};

TEST_F(BridgeTest, LearnsFloodsThenForwardsKnownUnicast) {
  make({"", "", ""});
  input(frame(0, 1, 0xff));  // broadcast from station 1 on p0
  auto s1 = sent(1), s2 = sent(2);
  ASSERT_EQ(s1.size(), 1u);
  ASSERT_EQ(s2.size(), 1u);
  EXPECT_EQ(s1[0], s2[0]) << "a flood shares one mbuf between ports (reference count)";
  EXPECT_TRUE(sent(0).empty()) << "never back out of the ingress port";
  free_all(s1), free_all(s2);
  EXPECT_EQ(port_of(0, 1), "p0");

  input(frame(2, 3, 1));  // station 3 on p2 to station 1: known
  auto to0 = sent(0);
  ASSERT_EQ(to0.size(), 1u);
  EXPECT_TRUE(sent(1).empty()) << "known unicast is not flooded";
  free_all(to0);

  input(frame(0, 1, 9));  // unknown unicast floods
  auto u1 = sent(1), u2 = sent(2);
  EXPECT_EQ(u1.size() + u2.size(), 2u) << "unknown unicast goes to every other port";
  free_all(u1), free_all(u2);
  EXPECT_EQ(events_.get(Event::bridge_flooded), 2u);
  EXPECT_EQ(events_.get(Event::bridge_learned), 2u);

  input(frame(0, 5, 1));  // station 1 lives on p0, the ingress: filtered
  EXPECT_EQ(drops_.get(DropReason::bridge_same_port), 1u);
  input(frame(0, 0xff, 1));  // broadcast source
  EXPECT_EQ(drops_.get(DropReason::bridge_bad_source), 1u);

  input(frame(1, 1, 3));  // station 1 moves to p1
  EXPECT_EQ(events_.get(Event::bridge_moved), 1u);
  EXPECT_EQ(port_of(0, 1), "p1");
  free_all(sent(2));
}

// One burst: station 1 (p0) to unknown station 2, station 2 (p1) answers,
// station 1 again. The burst's destination memo must not keep "unknown"
// for station 2 once the same burst learned it.
TEST_F(BridgeTest, AStationLearnedMidBurstIsKnownToTheRestOfTheBurst) {
  make({"", "", ""});
  rte_mbuf* burst[3] = {frame(0, 1, 2), frame(1, 2, 1), frame(0, 1, 2)};
  Bridge::netisr_handler(bridge_.get(), 0, dispatch::kMixedPorts, burst, 3);
  tx_buffers_->flush_all();
  auto to0 = sent(0), to1 = sent(1), to2 = sent(2);
  EXPECT_EQ(to0.size(), 1u) << "the answer goes to station 1 only";
  EXPECT_EQ(to1.size(), 2u) << "the first frame flooded, the third went to station 2";
  EXPECT_EQ(to2.size(), 1u) << "only the first frame was flooded";
  EXPECT_EQ(events_.get(Event::bridge_flooded), 1u);
  free_all(to0), free_all(to1), free_all(to2);
}

TEST_F(BridgeTest, ReservedGroupAddressesAreNeverRelayed) {
  make({"", "", ""});
  // STP (…00), PAUSE (…01), LACP (…02), 802.1X (…03), LLDP (…0E) and the top of
  // the block (…0F): dropped; …10 is an ordinary multicast and floods.
  for (uint8_t last : {0x00, 0x01, 0x02, 0x03, 0x0e, 0x0f}) {
    rte_mbuf* m = frame(0, 1, 0);
    rte_pktmbuf_mtod(m, rte_ether_hdr*)->dst_addr = rte_ether_addr{{0x01, 0x80, 0xc2, 0x00, 0x00, last}};
    input(m);
    EXPECT_TRUE(sent(1).empty() && sent(2).empty()) << "01:80:c2:00:00:" << int(last) << " was relayed";
  }
  EXPECT_EQ(drops_.get(DropReason::bridge_reserved_group), 6u);
  rte_mbuf* m = frame(0, 1, 0);
  rte_pktmbuf_mtod(m, rte_ether_hdr*)->dst_addr = rte_ether_addr{{0x01, 0x80, 0xc2, 0x00, 0x00, 0x10}};
  input(m);
  auto s1 = sent(1), s2 = sent(2);
  EXPECT_EQ(s1.size() + s2.size(), 2u) << "01:80:c2:00:00:10 is not reserved: flooded";
  free_all(s1), free_all(s2);
}

TEST_F(BridgeTest, AccessAndTrunkPortsTagAndUntag) {
  make({"a10", "a20", "t10,20"});
  input(frame(0, 1, 0xff));  // untagged broadcast in VLAN 10
  EXPECT_TRUE(sent(1).empty()) << "p1 is in VLAN 20";
  auto t = sent(2);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(tag_of(t[0]), 10) << "the trunk gets it tagged";
  EXPECT_EQ(rte_pktmbuf_pkt_len(t[0]), 68u);
  free_all(t);

  input(frame(2, 2, 1, 10));  // tagged VLAN 10 from the trunk to station 1 (known, on p0)
  auto a = sent(0);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(tag_of(a[0]), 0) << "the access port gets it untagged";
  EXPECT_EQ(rte_pktmbuf_pkt_len(a[0]), 60u);
  free_all(a);
  EXPECT_EQ(port_of(10, 2), "p2");
  EXPECT_EQ(port_of(20, 2), "") << "learning is per VLAN";

  input(frame(2, 2, 0xff, 20));  // VLAN 20 broadcast from the trunk: only p1
  EXPECT_TRUE(sent(0).empty());
  free_all(sent(1));

  input(frame(2, 4, 0xff, 30));  // a VLAN the trunk does not carry
  input(frame(2, 4, 0xff));      // untagged on a trunk
  input(frame(0, 4, 0xff, 10));  // tagged on an access port
  EXPECT_EQ(drops_.get(DropReason::bridge_vlan_mismatch), 3u);
  input(frame(1, 6, 0xff));  // VLAN 20 broadcast from p1: the trunk only
  auto tr = sent(2);
  ASSERT_EQ(tr.size(), 1u);
  EXPECT_EQ(tag_of(tr[0]), 20);
  free_all(tr);
}

TEST_F(BridgeTest, TableLimitAndAgeing) {
  make({"", "", ""}, /*max_entries=*/16, /*aging_ms=*/100);
  for (uint8_t s = 1; s <= 20; ++s) input(frame(0, s, 0xee));
  free_all(sent(1)), free_all(sent(2));
  EXPECT_EQ(bridge_->fdb_size(), 16u);
  EXPECT_EQ(events_.get(Event::bridge_fdb_full), 4u) << "full table: counted, and the frame still flooded";
  // A flood of new source MACs into the full table (macof) takes no writer lock.
  const uint64_t locks = bridge_->fdb_lock_acquisitions();
  for (uint8_t s = 100; s < 200; ++s) input(frame(0, s, 0xee));
  free_all(sent(1)), free_all(sent(2));
  EXPECT_EQ(bridge_->fdb_lock_acquisitions(), locks) << "a full table is checked before locking";
  EXPECT_EQ(events_.get(Event::bridge_fdb_full), 104u);
  const uint64_t later = rte_rdtsc() + rte_get_tsc_hz();  // one second later
  bridge_->poll(0, later);
  EXPECT_EQ(timers_->run(later), 16u) << "one ageing timer per learned station";
  EXPECT_EQ(bridge_->fdb_size(), 0u) << "aged out";
  EXPECT_EQ(timers_->armed(), 0u) << "a station's timer ends with it";
}

// A flood of new source MACs (macof) from one worker: it learns its burst at
// once, then at its rate; every frame is still flooded, every source it did
// not learn is counted as bridge_learn_limited, and the FDB writer lock is
// taken once per station learned, never for a frame it refused.
TEST_F(BridgeTest, LearningIsRateLimitedPerWorker) {
  constexpr unsigned kRate = 1000, kBurst = 64;
  make({"", "", ""}, /*max_entries=*/4096, /*aging_ms=*/300000, kRate, kBurst);
  const double hz = static_cast<double>(rte_get_tsc_hz());
  unsigned next = 0;
  auto flood_of_new_sources = [&](unsigned n) {
    for (unsigned i = 0; i < n; ++i, ++next) {
      rte_mbuf* m = frame(0, 1, 0xee);
      rte_pktmbuf_mtod(m, rte_ether_hdr*)->src_addr =
          rte_ether_addr{{0x02, 0x01, 0, 0, static_cast<uint8_t>(next >> 8), static_cast<uint8_t>(next)}};
      input(m);
      free_all(sent(1)), free_all(sent(2));
    }
  };
  const uint64_t locks0 = bridge_->fdb_lock_acquisitions();
  const uint64_t t0 = rte_rdtsc();
  flood_of_new_sources(2000);
  const uint64_t t1 = rte_rdtsc();
  const double first_s = static_cast<double>(t1 - t0) / hz;
  const uint64_t learned = events_.get(Event::bridge_learned);
  EXPECT_GE(learned, kBurst) << "the burst is learned at once";
  EXPECT_LE(learned, kBurst + kRate * first_s + 1) << "then no faster than the rate (" << first_s << " s)";
  EXPECT_EQ(learned + events_.get(Event::bridge_learn_limited), 2000u) << "every source not learned is counted";
  EXPECT_EQ(events_.get(Event::bridge_flooded), 2000u) << "and its frame still flooded";
  EXPECT_EQ(bridge_->fdb_size(), learned);
  EXPECT_LE(bridge_->fdb_lock_acquisitions() - locks0, learned) << "no writer lock for a source not learned";

  // Idle for 30 ms: at 1000/s the worker may learn about 30 more (never more than the burst).
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  flood_of_new_sources(500);
  const double since_s = static_cast<double>(rte_rdtsc() - t1) / hz;
  const uint64_t more = events_.get(Event::bridge_learned) - learned;
  EXPECT_GE(more, 29u) << "tokens come back at the rate";
  // At most a full bucket when the second flood starts plus the rate while it lasts,
  // and at most the rate since the first flood ended (with what was left of a token).
  EXPECT_LE(more, std::min(kBurst + kRate * (since_s - 0.030), kRate * since_s + 1) + 1) << since_s << " s";
  EXPECT_EQ(events_.get(Event::bridge_learned) + events_.get(Event::bridge_learn_limited), 2500u);
  EXPECT_LE(bridge_->fdb_lock_acquisitions() - locks0, learned + more);

  // A known station needs no token: a frame to the first learned station is forwarded, not flooded.
  const uint64_t flooded = events_.get(Event::bridge_flooded);
  rte_mbuf* m = frame(1, 7, 0xee);
  rte_pktmbuf_mtod(m, rte_ether_hdr*)->dst_addr = rte_ether_addr{{0x02, 0x01, 0, 0, 0, 0}};
  input(m);
  auto to0 = sent(0);
  EXPECT_EQ(to0.size(), 1u);
  free_all(to0), free_all(sent(2));
  EXPECT_EQ(events_.get(Event::bridge_flooded), flooded);
}

}  // namespace

// Three workers learn, move stations between ports and forward at once while
// worker 0 also ages entries out: every FDB entry points at a port its station
// was really seen on, the table never exceeds its limit, no slot a worker
// looked up is reused for another station before that worker's next
// quiescent report, and every mbuf comes back. Under ThreadSanitizer
// (deploy/setup.sh) this is the FDB's race test; in any build, reusing a slot
// before its grace period fails it within the first few hundred milliseconds.
TEST_F(BridgeTest, WorkersLearnMoveAndAgeAtOnce) {
  constexpr unsigned kWorkers = 3;
  constexpr unsigned kStations = 40;
  // Ports of their own, with multi-producer rings: all workers send on queue
  // 0. The main thread alone empties them.
  std::vector<uint16_t> ids;
  std::vector<rte_ring*> tx;
  for (int p = 0; p < kPorts; ++p) {
    rte_ring* rx = nullptr;
    rte_ring* t = nullptr;
    const int id = ring_port(std::string("brmt").append(std::to_string(p)), 512, 0, &rx, &t);
    ASSERT_GE(id, 0);
    ids.push_back(static_cast<uint16_t>(id));
    tx.push_back(t);
  }
  // Fewer entries than stations: the limit is hit too. Learning is not
  // rate-limited here: stations age out and are learned again all the time.
  conf::Config cfg = bridge_config({"", "", ""}, 32, /*aging_ms=*/1);
  cfg.bridge.learn_rate = 100000000;
  cfg.bridge.learn_burst = 1 << 20;
  auto b = Bridge::create(cfg, port_info(ids), pool_, kWorkers, rte_get_tsc_hz());
  ASSERT_TRUE(b.ok()) << b.error();
  std::unique_ptr<Bridge> bridge = std::move(*b);
  std::vector<std::unique_ptr<DropCounters>> drops;
  std::vector<std::unique_ptr<EventCounters>> events;
  std::vector<std::unique_ptr<TxBuffers>> bufs;
  std::vector<std::unique_ptr<timer::TimerWheel>> wheels;
  std::vector<WorkerIo> io;
  // A pool per worker: the frees a worker makes itself (drops, a full tx
  // queue) go back to its own pool, so no other thread takes those mbufs.
  std::vector<rte_mempool*> pools;
  for (unsigned w = 0; w < kWorkers; ++w) {
    pools.push_back(test::pool(std::string("brmt_pool").append(std::to_string(w)).c_str(), 1023,
                               RTE_MBUF_DEFAULT_DATAROOM));
    drops.push_back(std::make_unique<DropCounters>());
    events.push_back(std::make_unique<EventCounters>());
    bufs.push_back(std::make_unique<TxBuffers>(ids, 0, 32, *drops.back()));
    auto wheel = timer::TimerWheel::create({rte_get_tsc_hz(), 1000, 1024, modes::timer_nodes(cfg)});
    ASSERT_TRUE(wheel.ok()) << wheel.error();
    wheels.push_back(std::move(*wheel));
    io.push_back({bufs.back().get(), drops.back().get(), events.back().get(), wheels.back().get()});
  }
  bridge->bind(io);

  // seen[s] has bit p set once station s sent a frame on port p.
  std::array<std::atomic<unsigned>, kStations + 1> seen{};
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> bridged{0}, probed{0}, reused{0};
  std::atomic<unsigned> reused_station{0}, reused_by{0};
  const uint64_t spin = rte_get_tsc_hz() / 50000;  // 20 us
  auto drain = [&] {
    rte_mbuf* out[64];
    for (auto* t : tx)
      for (unsigned k; (k = rte_ring_dequeue_burst(t, reinterpret_cast<void**>(out), 64, nullptr)) > 0;) {
        // Hand-off back to the allocating worker, through a pool TSan cannot see.
        for (unsigned i = 0; i < k; ++i) tsan_release(out[i]);
        rte_pktmbuf_free_bulk(out, k);
      }
  };
  std::vector<std::thread> threads;
  for (unsigned w = 0; w < kWorkers; ++w)
    threads.emplace_back([&, w] {
      bridge->worker_online(w);
      uint32_t r = w + 1;
      uint64_t aging_clock = rte_rdtsc();
      while (!stop.load(std::memory_order_relaxed)) {
        for (int i = 0; i < 16; ++i) {
          r = r * 1103515245u + 12345u;
          const auto src = static_cast<uint8_t>(1 + (r >> 8) % kStations);
          const auto dst = static_cast<uint8_t>((r >> 20) % 4 == 0 ? 0xff : 1 + (r >> 12) % kStations);
          const int in = static_cast<int>((r >> 24) % kPorts);
          rte_mbuf* m = rte_pktmbuf_alloc(pools[w]);
          if (!m) break;
          tsan_acquire(m);
          auto* eth = reinterpret_cast<rte_ether_hdr*>(rte_pktmbuf_append(m, 64));
          memset(eth, 0, 64);
          eth->dst_addr = mac(dst);
          eth->src_addr = mac(src);
          eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
          m->port = ids[in];
          seen[src].fetch_or(1u << in, std::memory_order_relaxed);
          Bridge::netisr_handler(bridge.get(), w, dispatch::kMixedPorts, &m, 1);
          bridged.fetch_add(1, std::memory_order_relaxed);
        }
        bufs[w]->flush_all();
        // Still inside the read-side section: look up the station of the
        // last frame (just learned, unless the table was full) and read its
        // slot for a while. Until this worker's quiescent report the slot
        // keeps that station's key, even when a worker's timer ages the station out
        // and the workers learn other stations into freed slots meanwhile.
        const auto station = static_cast<uint8_t>(1 + (r >> 8) % kStations);
        if (const int32_t slot = bridge->fdb_find(0, mac(station)); slot != RcuTable::kNone) {
          const uint64_t k = Bridge::key(0, mac(station));
          const uint64_t until = rte_rdtsc() + spin;
          do {
            const uint64_t now_key = bridge->fdb_key_of(slot);
            if (now_key != k && reused.fetch_add(1) == 0) {
              reused_station = station;
              reused_by = static_cast<unsigned>(now_key & 0xff);
            }
            rte_pause();
          } while (rte_rdtsc() < until);
          probed.fetch_add(1, std::memory_order_relaxed);
        }
        // Quiescent report, then the worker's timers on a clock that runs
        // 100 ms ahead per iteration: every timer finds its station idle for
        // longer than 1 ms and removes it while the others learn it again.
        aging_clock += rte_get_tsc_hz() / 10;
        const uint64_t now = std::max(aging_clock, rte_rdtsc());
        bridge->poll(w, now);
        wheels[w]->run(now);
      }
      bufs[w]->flush_all();
      bridge->worker_offline(w);
    });
  // Long enough for many rounds of ageing (1 ms) and learning again.
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(400);
  while (bridged.load() < 30000 || std::chrono::steady_clock::now() < until)
    drain(), std::this_thread::sleep_for(std::chrono::milliseconds(1));
  stop = true;
  for (auto& t : threads) t.join();
  drain();

  EXPECT_GT(probed.load(), 100u) << "the workers read FDB slots between quiescent reports";
  EXPECT_EQ(reused.load(), 0u) << "a worker that looked up station " << reused_station.load()
                               << " read a slot that holds station " << reused_by.load()
                               << " before its next quiescent report: the slot was reused within the grace period";
  EXPECT_LE(bridge->fdb_size(), 32u);
  for (const auto& e : bridge->fdb()) {
    const unsigned station = e.mac.addr_bytes[5];
    ASSERT_GE(station, 1u);
    ASSERT_LE(station, kStations);
    const int port = std::stoi(e.port.substr(1));
    EXPECT_TRUE(seen[station].load() & (1u << port)) << "station " << station << " on a port it never used";
  }
  uint64_t learned = 0, moved = 0;
  for (const auto& ev : events) learned += ev->get(Event::bridge_learned), moved += ev->get(Event::bridge_moved);
  EXPECT_GT(learned, kStations) << "entries aged out and were learned again";
  EXPECT_GT(moved, 0u);
  bridge->shutdown();
  bridge.reset();
  for (auto* p : pools) EXPECT_EQ(rte_mempool_avail_count(p), p->size) << "every mbuf back in " << p->name;
}
