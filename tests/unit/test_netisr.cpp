// The netisr dispatcher: registry, bucket map, the semantics of each dispatch
// mode and policy, exact qdrops, and the ordering contract under concurrency,
// including reconfiguration while traffic flows. Built also with
// ThreadSanitizer: the checker's plain per-flow state is only race-free if the
// dispatcher's hand-offs really order the handlers.
#include <gtest/gtest.h>
#include <rte_eal.h>
#include <rte_mbuf.h>
#include <rte_thash.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "dispatch/netisr.hpp"
#include "dispatch/rss.hpp"
#include "tests/lib/eal_env.hpp"

using namespace ngstack;
using namespace ngstack::dispatch;

namespace {

// Enough mbufs that no test ever reuses one while threads run (see Recorder).
rte_mempool* const g_pool = test::pool("netisr_pool", 131071, 128);

struct Tag {
  uint32_t source, flow, seq;
};

rte_mbuf* packet(uint32_t source, uint32_t flow, uint32_t seq, bool nic_hash = true) {
  rte_mbuf* m = rte_pktmbuf_alloc(g_pool);
  EXPECT_NE(m, nullptr);
  auto* t = reinterpret_cast<Tag*>(rte_pktmbuf_append(m, sizeof(Tag)));
  *t = Tag{source, flow, seq};
  if (nic_hash) {
    m->hash.rss = flow;
    m->ol_flags |= RTE_MBUF_F_RX_RSS_HASH;
  }
  return m;
}

const Tag& tag(const rte_mbuf* m) { return *rte_pktmbuf_mtod(m, const Tag*); }

// Records what each worker handled; frees nothing (the test frees at the end
// so that no mbuf is reused while workers run).
struct Recorder {
  static constexpr unsigned kMaxSources = 2, kMaxFlows = 2048;
  std::vector<std::vector<rte_mbuf*>> handled_by;  // per worker
  // Per (source, flow): next expected seq. Plain memory on purpose.
  std::vector<uint32_t> next_seq = std::vector<uint32_t>(kMaxSources * kMaxFlows, 0);
  // reorders: a packet older than one already handled; gaps: newer than the
  // next expected (a loss upstream, e.g. a qdrop).
  std::atomic<uint64_t> reorders{0}, gaps{0}, total{0};
  explicit Recorder(unsigned workers) : handled_by(workers) {}

  static void handler(void* ctx, unsigned w, uint16_t, rte_mbuf** pkts, uint16_t n) {
    auto* r = static_cast<Recorder*>(ctx);
    for (uint16_t i = 0; i < n; ++i) {
      const Tag& t = tag(pkts[i]);
      uint32_t& next = r->next_seq[t.source * kMaxFlows + t.flow];
      if (t.seq < next)
        r->reorders.fetch_add(1, std::memory_order_relaxed);
      else if (t.seq > next)
        r->gaps.fetch_add(1, std::memory_order_relaxed);
      if (t.seq >= next) next = t.seq + 1;
      r->handled_by[w].push_back(pkts[i]);
    }
    r->total.fetch_add(n, std::memory_order_relaxed);
  }
  void free_all() {
    for (auto& v : handled_by) {
      for (auto* m : v) rte_pktmbuf_free(m);
      v.clear();
    }
  }
};

unsigned cpu_by_flow(const void*, const rte_mbuf* m, unsigned) { return tag(m).flow % 2; }

ProtocolSpec spec(Recorder& r, Policy policy, Mode mode, uint32_t qlimit = 1024) {
  ProtocolSpec s;
  s.name = "test";
  s.handler = Recorder::handler;
  s.ctx = &r;
  s.policy = policy;
  s.mode = mode;
  s.qlimit = qlimit;
  s.m2cpuid = cpu_by_flow;
  return s;
}

}  // namespace

TEST(NetisrRegistry, RegistersAndRejects) {
  Recorder r(2);
  Netisr n(2, 64, symmetric_rss_key());
  auto a = n.register_protocol(spec(r, Policy::flow, Mode::direct));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, 0);
  EXPECT_EQ(n.register_protocol(spec(r, Policy::flow, Mode::direct)).error(), "netisr: protocol test is registered twice");
  ProtocolSpec no_cpu = spec(r, Policy::cpu, Mode::direct);
  no_cpu.name = "nocpu";
  no_cpu.m2cpuid = nullptr;
  EXPECT_EQ(n.register_protocol(no_cpu).error(), "netisr: protocol nocpu has policy cpu but no m2cpuid");
  ProtocolSpec no_handler;
  no_handler.name = "x";
  EXPECT_EQ(n.register_protocol(no_handler).error(), "netisr: protocol x has no handler");
  for (unsigned i = 1; i < kMaxProtocols; ++i) {
    ProtocolSpec s = spec(r, Policy::source, Mode::direct);
    s.name = "p" + std::to_string(i);
    EXPECT_TRUE(n.register_protocol(s).ok());
  }
  ProtocolSpec extra = spec(r, Policy::source, Mode::direct);
  extra.name = "one-too-many";
  EXPECT_FALSE(n.register_protocol(extra).ok());
  EXPECT_EQ(n.find_protocol("p3"), 3);
  EXPECT_EQ(n.find_protocol("nope"), -1);
}

TEST(NetisrRegistry, NamesRoundTrip) {
  for (Policy p : {Policy::source, Policy::flow, Policy::cpu}) EXPECT_EQ(policy_from_name(policy_name(p)), p);
  for (Mode m : {Mode::direct, Mode::hybrid, Mode::deferred}) EXPECT_EQ(mode_from_name(mode_name(m)), m);
  EXPECT_FALSE(policy_from_name("random").has_value());
  EXPECT_FALSE(mode_from_name("eager").has_value());
}

TEST(NetisrRegistry, BucketMap) {
  EXPECT_EQ(Netisr::round_robin_map(8, 3), (std::vector<uint16_t>{0, 1, 2, 0, 1, 2, 0, 1}));
  Netisr n(2, 4, symmetric_rss_key());
  EXPECT_EQ(n.set_bucket_map({0, 1, 1}).error(), "bucket map has 3 entries, expected 4");
  EXPECT_EQ(n.set_bucket_map({0, 1, 2, 0}).error(), "bucket map names worker 2 of 2");
  EXPECT_TRUE(n.set_bucket_map({1, 1, 0, 0}).ok());
  EXPECT_EQ(n.current_config().bucket_map, (std::vector<uint16_t>{1, 1, 0, 0}));
}

TEST(NetisrModes, DirectRunsInlineWhateverTheTarget) {
  Recorder r(2);
  Netisr n(2, 64, symmetric_rss_key());
  const ProtoId p = *n.register_protocol(spec(r, Policy::flow, Mode::direct));
  rte_mbuf* pk[4] = {packet(0, 0, 0), packet(0, 1, 0), packet(0, 2, 0), packet(0, 3, 0)};
  n.dispatch(0, p, 0, 0, pk, 4);
  EXPECT_EQ(r.handled_by[0].size(), 4u) << "flows of worker 1 run on worker 0 too";
  EXPECT_EQ(n.stats(0, p).dispatched, 4u);
  EXPECT_EQ(n.stats(0, p).handled, 4u);
  EXPECT_EQ(n.stats(1, p).queued, 0u);
  r.free_all();
}

TEST(NetisrModes, DeferredQueuesEvenToItselfAndFlowPolicyFollowsTheBucketMap) {
  Recorder r(2);
  Netisr n(2, 4, symmetric_rss_key());
  ASSERT_TRUE(n.set_bucket_map({0, 1, 1, 0}).ok());
  const ProtoId p = *n.register_protocol(spec(r, Policy::flow, Mode::deferred));
  std::vector<rte_mbuf*> pk;
  for (uint32_t f = 0; f < 8; ++f) pk.push_back(packet(0, f, 0));  // buckets 0 1 2 3 0 1 2 3
  n.dispatch(0, p, 0, 0, pk.data(), 8);
  EXPECT_EQ(r.total, 0u) << "deferred never runs inline";
  EXPECT_EQ(n.stats(0, p).queued, 4u);
  EXPECT_EQ(n.stats(1, p).queued, 4u);
  EXPECT_EQ(n.stats(1, p).length, 4u);
  EXPECT_EQ(n.drain(1, 32), 4u);
  EXPECT_EQ(n.drain(0, 32), 4u);
  for (auto* m : r.handled_by[0]) EXPECT_TRUE(tag(m).flow % 4 == 0 || tag(m).flow % 4 == 3);
  for (auto* m : r.handled_by[1]) EXPECT_TRUE(tag(m).flow % 4 == 1 || tag(m).flow % 4 == 2);
  EXPECT_EQ(n.stats(1, p).length, 0u);
  EXPECT_EQ(n.stats(1, p).watermark, 4u);
  EXPECT_EQ(n.stats(1, p).handled, 4u);
  r.free_all();
}

TEST(NetisrModes, HybridInlineOnlyForItselfWithNothingQueued) {
  Recorder r(2);
  Netisr n(2, 2, symmetric_rss_key());
  const ProtoId p = *n.register_protocol(spec(r, Policy::flow, Mode::hybrid));
  rte_mbuf* a[2] = {packet(0, 0, 0), packet(0, 1, 0)};  // flow 0 -> worker 0, flow 1 -> worker 1
  n.dispatch(0, p, 0, 0, a, 2);
  EXPECT_EQ(r.handled_by[0].size(), 1u) << "own flow inline";
  EXPECT_EQ(n.stats(0, p).hybrid, 1u);
  EXPECT_EQ(n.stats(1, p).queued, 1u) << "other worker's flow queued";

  EXPECT_EQ(n.drain(1, 32), 1u);

  // Queue one of our own flow for ourselves (deferred), then switch back to
  // hybrid: worker 0 adopts the switch only after handling what it queued, so
  // the next packet of the flow, handled inline, cannot overtake it.
  const std::atomic<bool> no_stop{false};
  ASSERT_TRUE(n.reconfigure([](DispatchConfig& c) { c.protos[0].mode = Mode::deferred; }).ok());
  ASSERT_TRUE(n.sync(0, no_stop));
  rte_mbuf* b[1] = {packet(0, 0, 1)};
  n.dispatch(0, p, 0, 0, b, 1);
  EXPECT_EQ(n.stats(0, p).length, 1u);
  n.set_online(0, true);
  std::atomic<bool> switched{false};
  std::thread ctl([&] {
    EXPECT_TRUE(n.reconfigure([](DispatchConfig& c) { c.protos[0].mode = Mode::hybrid; }).ok());
    switched = true;
  });
  while (!switched) n.sync(0, no_stop);
  ctl.join();
  n.sync(0, no_stop);
  n.set_online(0, false);
  EXPECT_EQ(n.stats(0, p).length, 0u);
  rte_mbuf* c[1] = {packet(0, 0, 2)};
  n.dispatch(0, p, 0, 0, c, 1);
  EXPECT_EQ(n.stats(0, p).hybrid, 2u) << "handled inline again";
  EXPECT_EQ(r.handled_by[0].size(), 3u);
  EXPECT_EQ(r.reorders, 0u);
  r.free_all();
}

TEST(NetisrModes, SourceAndCpuPolicies) {
  Recorder r(2);
  Netisr n(2, 2, symmetric_rss_key());
  ProtocolSpec s = spec(r, Policy::source, Mode::deferred);
  const ProtoId src = *n.register_protocol(s);
  s = spec(r, Policy::cpu, Mode::deferred);
  s.name = "cpu";
  const ProtoId cpu = *n.register_protocol(s);
  rte_mbuf* a[2] = {packet(0, 1, 0), packet(0, 3, 0)};
  n.dispatch(0, src, 0, 0, a, 2);
  EXPECT_EQ(n.stats(0, src).queued, 2u) << "source: stays on the receiving worker";
  rte_mbuf* b[2] = {packet(0, 4, 0), packet(0, 5, 0)};
  n.dispatch(0, cpu, 0, 0, b, 2);
  EXPECT_EQ(n.stats(0, cpu).queued, 1u) << "cpu: m2cpuid picks flow % 2";
  EXPECT_EQ(n.stats(1, cpu).queued, 1u);
  n.drain(0, 32);
  n.drain(1, 32);
  EXPECT_EQ(r.total, 4u);
  r.free_all();
}

TEST(NetisrFlowId, SoftwareHashWhenTheNicGaveNone) {
  Recorder r(2);
  Netisr n(2, 128, symmetric_rss_key());
  ProtocolSpec s = spec(r, Policy::flow, Mode::deferred);
  s.m2flow = [](const void*, const rte_mbuf* m, uint32_t* flow) {
    *flow = tag(m).flow * 2 + 1;  // odd buckets: worker 1
    return tag(m).flow != 99;     // flow 99: "not IP", no flow id
  };
  const ProtoId p = *n.register_protocol(s);
  rte_mbuf* a[2] = {packet(0, 5, 0, false), packet(0, 99, 0, false)};
  n.dispatch(0, p, 3, 1, a, 2);
  EXPECT_EQ(a[0]->hash.rss, 11u) << "m2flow's id is cached in the mbuf";
  EXPECT_TRUE(a[0]->ol_flags & RTE_MBUF_F_RX_RSS_HASH);
  EXPECT_FALSE(a[1]->ol_flags & RTE_MBUF_F_RX_RSS_HASH);
  // Without a flow id: Toeplitz over (port 3, queue 1).
  uint32_t tuple[1] = {3u << 16 | 1};
  const unsigned expect_worker = rte_softrss(tuple, 1, symmetric_rss_key().data()) % 128 % 2;
  EXPECT_EQ(n.stats(1, p).queued, expect_worker == 1 ? 2u : 1u);
  n.drain(0, 32);
  n.drain(1, 32);
  r.free_all();
}

TEST(NetisrQueueLimit, StalledTargetDropsExactlyTheOverflow) {
  Recorder r(2);
  Netisr n(2, 2, symmetric_rss_key());
  const ProtoId p = *n.register_protocol(spec(r, Policy::flow, Mode::deferred, 100));
  const unsigned avail_before = rte_mempool_avail_count(g_pool);
  std::vector<rte_mbuf*> pk;
  for (uint32_t i = 0; i < 300; ++i) pk.push_back(packet(0, i % 2, i / 2));  // 150 per worker
  for (std::size_t i = 0; i < pk.size(); i += 30) {
    n.dispatch(0, p, 0, 0, pk.data() + i, 30);
    n.drain(0, 32);  // worker 0 runs; worker 1 is stalled
  }
  EXPECT_EQ(n.stats(1, p).queued, 100u);
  EXPECT_EQ(n.stats(1, p).qdrops, 50u);
  EXPECT_EQ(n.stats(0, p).qdrops, 0u);
  EXPECT_EQ(n.stats(1, p).length, 100u);
  EXPECT_EQ(n.stats(1, p).watermark, 100u);
  EXPECT_EQ(rte_mempool_avail_count(g_pool), avail_before - 300 + 50) << "dropped mbufs are freed";
  n.drain(1, 512);
  EXPECT_EQ(r.handled_by[1].size(), 100u);
  EXPECT_EQ(r.handled_by[0].size(), 150u);
  EXPECT_EQ(r.reorders, 0u) << "the first 100 of flow 1 arrived, in order";
  r.free_all();
  EXPECT_EQ(rte_mempool_avail_count(g_pool), avail_before);
}

// --- concurrency -------------------------------------------------------------

namespace {

constexpr uint32_t kFlows = 1024;
constexpr uint32_t kPerFlow = 40;

struct RunResult {
  uint64_t handled = 0, reorders = 0, gaps = 0, qdrops = 0, sent = 0, queued = 0;
};

// Two workers, each the only poller of one "rx queue" that delivers kFlows
// flows interleaved. `control` runs on a third thread while they work.
// With `gate`, a worker dispatches only its first *gate packets: the control
// thread advances the gate between switches, so switches are interleaved
// with traffic whatever the scheduler does.
RunResult run_two_workers(Policy policy, Mode mode, const std::function<void(Netisr&, std::atomic<bool>&)>& control,
                          std::atomic<uint64_t>* gate = nullptr) {
  Recorder r(2);
  Netisr n(2, 128, symmetric_rss_key());
  // Queues that can hold a source's whole input: lossless by construction,
  // so every missing or late packet is the dispatcher's fault.
  const ProtoId p = *n.register_protocol(spec(r, policy, mode, kFlows * kPerFlow));
  std::vector<std::vector<rte_mbuf*>> input(2);
  for (uint32_t s = 0; s < 2; ++s)
    for (uint32_t i = 0; i < kFlows * kPerFlow; ++i) {
      const uint32_t flow = (i * 7 + s) % kFlows;
      input[s].push_back(packet(s, flow, i / kFlows));
    }
  const uint64_t sent = 2ull * kFlows * kPerFlow;
  std::atomic<bool> stop{false}, done{false};
  std::atomic<unsigned> finished{0};
  auto worker = [&](unsigned w) {
    n.set_online(w, true);
    std::size_t next = 0;
    while (!stop.load()) {
      n.sync(w, stop);
      const std::size_t limit = gate ? std::min<std::size_t>(gate->load(), input[w].size()) : input[w].size();
      if (next < limit) {
        const uint16_t cnt = static_cast<uint16_t>(std::min<std::size_t>(32, limit - next));
        n.dispatch(w, p, 0, static_cast<uint16_t>(w), input[w].data() + next, cnt);
        next += cnt;
        if (next == input[w].size()) finished.fetch_add(1);
      }
      n.drain(w, 32);
      if (done.load()) break;
    }
    n.set_online(w, false);
  };
  std::thread t0(worker, 0), t1(worker, 1);
  std::thread ctl([&] { control(n, stop); });
  // Wait until every packet is handled or dropped.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  for (;;) {
    uint64_t drops = n.stats(0, p).qdrops + n.stats(1, p).qdrops;
    if (finished.load() == 2 && r.total.load() + drops == sent) break;
    if (std::chrono::steady_clock::now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  done.store(true);
  stop.store(true);
  ctl.join();
  t0.join();
  t1.join();
  n.drain_stopped();
  RunResult res;
  res.sent = sent;
  res.handled = r.total.load();
  res.reorders = r.reorders.load();
  res.gaps = r.gaps.load();
  for (unsigned w = 0; w < 2; ++w) {
    res.qdrops += n.stats(w, p).qdrops;
    res.queued += n.stats(w, p).queued;
  }
  r.free_all();
  return res;
}

void no_control(Netisr&, std::atomic<bool>&) {}

}  // namespace

class NetisrOrdering : public ::testing::TestWithParam<std::tuple<Policy, Mode>> {};

TEST_P(NetisrOrdering, NoReorderNoLossTwoWorkers) {
  const auto [policy, mode] = GetParam();
  const unsigned avail = rte_mempool_avail_count(g_pool);
  RunResult r = run_two_workers(policy, mode, no_control);
  EXPECT_EQ(r.handled, r.sent);
  EXPECT_EQ(r.reorders, 0u);
  EXPECT_EQ(r.gaps, 0u);
  EXPECT_EQ(r.qdrops, 0u);
  if (mode == Mode::deferred) {
    EXPECT_EQ(r.queued, r.sent);
  }
  if (mode == Mode::direct) {
    EXPECT_EQ(r.queued, 0u);
  }
  EXPECT_EQ(rte_mempool_avail_count(g_pool), avail);
}

INSTANTIATE_TEST_SUITE_P(EveryModeAndPolicy, NetisrOrdering,
                         ::testing::Combine(::testing::Values(Policy::source, Policy::flow, Policy::cpu),
                                            ::testing::Values(Mode::direct, Mode::hybrid, Mode::deferred)),
                         [](const auto& info) {
                           return std::string(policy_name(std::get<0>(info.param))) + "_" +
                                  mode_name(std::get<1>(info.param));
                         });

TEST(NetisrOrdering, ReconfigurationMidStreamKeepsOrder) {
  const unsigned avail = rte_mempool_avail_count(g_pool);
  unsigned changes = 0;
  constexpr unsigned kSwitches = 27;  // every (mode, policy) pair three times
  constexpr uint64_t kPerSource = uint64_t{kFlows} * kPerFlow;
  std::atomic<uint64_t> gate{kPerSource / (kSwitches + 1)};
  RunResult r = run_two_workers(Policy::flow, Mode::deferred, [&](Netisr& n, std::atomic<bool>& stop) {
    const Mode modes[] = {Mode::direct, Mode::hybrid, Mode::deferred};
    const Policy policies[] = {Policy::flow, Policy::source, Policy::cpu};
    while (!stop.load() && changes < kSwitches) {
      const unsigned k = changes++;
      auto st = n.reconfigure([&](DispatchConfig& c) {
        c.protos[0].mode = modes[k % 3];
        c.protos[0].policy = policies[(k / 3) % 3];
        // Move every bucket to the other worker every other change.
        for (auto& w : c.bucket_map) w = static_cast<uint16_t>((w + (k % 2)) % 2);
      });
      if (!st.ok() && !stop.load()) ADD_FAILURE() << st.error();
      gate.store(kPerSource * (k + 2) / (kSwitches + 1));
    }
    gate.store(kPerSource);
  }, &gate);
  EXPECT_EQ(changes, kSwitches) << "every switch happens while traffic flows";
  EXPECT_EQ(r.handled, r.sent);
  EXPECT_EQ(r.reorders, 0u);
  EXPECT_EQ(r.gaps, 0u);
  EXPECT_EQ(r.qdrops, 0u);
  EXPECT_EQ(rte_mempool_avail_count(g_pool), avail);
}

TEST(NetisrQueueLimit, StalledTargetUnderConcurrencyCountsExactDrops) {
  // Worker 0 sends flows of both workers deferred; worker 1 does not run until
  // worker 0 is done, so exactly qlimit of its packets are queued.
  Recorder r(2);
  Netisr n(2, 2, symmetric_rss_key());
  const ProtoId p = *n.register_protocol(spec(r, Policy::flow, Mode::deferred, 64));
  std::vector<rte_mbuf*> pk;
  for (uint32_t i = 0; i < 2000; ++i) pk.push_back(packet(0, i % 2, i / 2));
  std::thread sender([&] {
    for (std::size_t i = 0; i < pk.size(); i += 32) {
      n.dispatch(0, p, 0, 0, pk.data() + i, static_cast<uint16_t>(std::min<std::size_t>(32, pk.size() - i)));
      n.drain(0, 32);
    }
  });
  sender.join();
  std::thread receiver([&] { n.drain(1, 512); });
  receiver.join();
  EXPECT_EQ(n.stats(1, p).qdrops, 1000u - 64u);
  EXPECT_EQ(r.handled_by[1].size(), 64u);
  EXPECT_EQ(r.handled_by[0].size(), 1000u);
  EXPECT_EQ(r.reorders, 0u);
  r.free_all();
}
