// The netisr dispatcher: registry, bucket map, the semantics of each dispatch
// mode and policy, exact qdrops, and the ordering contract under concurrency,
// including reconfiguration while traffic flows. Built also with
// ThreadSanitizer: the checker's plain per-flow state is only race-free if the
// dispatcher's hand-offs really order the handlers.
#include <gtest/gtest.h>
#include <rte_eal.h>
#include <rte_cycles.h>
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
  unsigned delay_us = 0;  // per batch: a slow stage, whose backlog outlives its upstream's
  explicit Recorder(unsigned workers) : handled_by(workers) {}

  static void handler(void* ctx, unsigned w, uint16_t, rte_mbuf** pkts, uint16_t n) {
    auto* r = static_cast<Recorder*>(ctx);
    if (r->delay_us != 0) rte_delay_us_block(r->delay_us);
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

// --- chains of protocols -------------------------------------------------------
//
// A handler may dispatch again (the router's ether handler dispatches to ip,
// and a host stack's ip to tcp). The ordering contract holds end to end: the
// Recorder sits at the last stage and checks each (source, flow) there.

namespace {

// A stage whose handler passes its packets on to the next protocol.
struct Forward {
  Netisr* netisr = nullptr;
  ProtoId next = 0;
  static void handler(void* ctx, unsigned w, uint16_t port, rte_mbuf** pkts, uint16_t n) {
    auto* f = static_cast<Forward*>(ctx);
    f->netisr->dispatch(w, f->next, port, 0, pkts, n);
  }
};

unsigned cpu_zero(const void*, const rte_mbuf*, unsigned) { return 0; }
unsigned cpu_one(const void*, const rte_mbuf*, unsigned) { return 1; }

constexpr const char* kStageNames[] = {"ether", "ip", "tcp"};

struct StageSpec {
  Policy policy = Policy::flow;
  Mode mode = Mode::deferred;
  M2CpuFn m2cpuid = cpu_by_flow;
  uint32_t qlimit = 1024;
  uint32_t max_qlimit = 0;
};

// Protocols ids 0..stages-1 in chain order: ether (the entry) -> ip [-> tcp].
struct Chain {
  Recorder rec;
  Netisr n;
  std::vector<std::unique_ptr<Forward>> fwd;
  Chain(unsigned workers, unsigned buckets, const std::vector<StageSpec>& stages)
      : rec(workers), n(workers, buckets, symmetric_rss_key()) {
    for (std::size_t k = 0; k < stages.size(); ++k) {
      ProtocolSpec s = spec(rec, stages[k].policy, stages[k].mode, stages[k].qlimit);
      s.name = kStageNames[k];
      s.m2cpuid = stages[k].m2cpuid;
      s.max_qlimit = stages[k].max_qlimit;
      if (k + 1 < stages.size()) {
        fwd.push_back(std::make_unique<Forward>(Forward{&n, static_cast<ProtoId>(k + 1)}));
        s.handler = Forward::handler;
        s.ctx = fwd.back().get();
      }
      auto id = n.register_protocol(s);
      EXPECT_TRUE(id.ok());
      EXPECT_EQ(*id, k);
    }
  }
  uint64_t qdrops() const {
    uint64_t d = 0;
    for (unsigned p = 0; p < n.protocols(); ++p)
      for (unsigned w = 0; w < n.workers(); ++w) d += n.stats(w, static_cast<ProtoId>(p)).qdrops;
    return d;
  }
};

// The sequence numbers of one (source, flow) in the order `w` handled them at
// the last stage, written as ranges: "0..31, 64..71, 32..63".
std::string handled_order(const Recorder& r, unsigned w) {
  std::string out;
  std::size_t i = 0;
  const auto& v = r.handled_by[w];
  while (i < v.size()) {
    std::size_t j = i;
    while (j + 1 < v.size() && tag(v[j + 1]).seq == tag(v[j]).seq + 1) ++j;
    out += (out.empty() ? "" : ", ") + std::to_string(tag(v[i]).seq);
    if (j > i) out += ".." + std::to_string(tag(v[j]).seq);
    i = j + 1;
  }
  return out;
}

// One thread plays every worker's loop, one step at a time, so that a
// scenario is the same on every run. sync() with `stop` already raised takes
// one step of the barrier and returns false while it has not passed; the
// worker then drains, as a worker waiting inside sync() does.
const std::atomic<bool> kOneStep{true};

struct Stepper {
  Netisr& n;
  std::vector<std::vector<rte_mbuf*>> input;  // per worker, dispatched to protocol 0
  std::vector<std::size_t> next;
  Stepper(Netisr& netisr, unsigned workers) : n(netisr), input(workers), next(workers, 0) {}
  // Returns whether worker w passed sync() (and so dispatched up to `burst`).
  bool step(unsigned w, uint16_t burst, uint16_t drain_batch = 32) {
    if (!n.sync(w, kOneStep)) {
      n.drain(w, drain_batch);
      return false;
    }
    const std::size_t left = input[w].size() - next[w];
    if (left != 0) {
      const auto cnt = static_cast<uint16_t>(std::min<std::size_t>(burst, left));
      n.dispatch(w, 0, 0, static_cast<uint16_t>(w), input[w].data() + next[w], cnt);
      next[w] += cnt;
    }
    n.drain(w, drain_batch);
    return true;
  }
  bool input_done() const {
    for (std::size_t w = 0; w < input.size(); ++w)
      if (next[w] != input[w].size()) return false;
    return true;
  }
};

// Publishes `edit` from a control thread (reconfigure() waits for the online
// workers) and returns once the new configuration is published, so that
// every step after it sees the change pending.
std::thread publish(Netisr& n, std::function<void(DispatchConfig&)> edit, Status* result,
                    std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
  const DispatchConfig before = n.current_config();
  std::thread ctl([&n, edit, result, timeout] { *result = n.reconfigure(edit, timeout); });
  for (;;) {
    const DispatchConfig now = n.current_config();
    bool changed = now.bucket_map != before.bucket_map;
    for (unsigned p = 0; p < n.protocols(); ++p)
      changed = changed || now.protos[p].mode != before.protos[p].mode ||
                now.protos[p].policy != before.protos[p].policy || now.protos[p].qlimit != before.protos[p].qlimit;
    if (changed) return ctl;
    std::this_thread::yield();
  }
}

}  // namespace

// The review's case: ether switched deferred -> direct while ip still had a
// deferred backlog. Worker 0 queued flow 1's ether packets to worker 1, whose
// ether handler queued them to ip on worker 0. Worker 0's own rings are empty,
// but if it adopted now it would run ether inline and queue ip for itself,
// ahead of the backlog worker 1 queued.
TEST(NetisrChain, DownstreamBacklogHoldsTheAdoption) {
  Chain c(2, 2, {{Policy::flow, Mode::deferred}, {Policy::cpu, Mode::deferred, cpu_zero}});
  Stepper s(c.n, 2);
  for (uint32_t seq = 0; seq < 72; ++seq) s.input[0].push_back(packet(0, 1, seq));  // flow 1: bucket 1, worker 1
  c.n.set_online(0, true);
  c.n.set_online(1, true);
  ASSERT_TRUE(s.step(0, 64));      // 0..63 queued to ether on worker 1
  EXPECT_EQ(c.n.drain(1, 64), 64u);  // ... which queues them to ip on worker 0
  ASSERT_EQ(c.n.stats(0, 1).length, 64u);
  Status st = Ok{};
  std::thread ctl = publish(c.n, [](DispatchConfig& cfg) { cfg.protos[0].mode = Mode::direct; }, &st);
  for (unsigned i = 0; i < 100 && !(s.input_done() && c.rec.total == 72); ++i) {
    s.step(0, 8);  // 64..71, ether inline once worker 0 has adopted
    s.step(1, 8);
  }
  ctl.join();
  c.n.set_online(0, false);
  c.n.set_online(1, false);
  EXPECT_TRUE(st.ok()) << st.error();
  EXPECT_EQ(c.rec.total, 72u);
  EXPECT_EQ(c.rec.reorders, 0u) << "ip on worker 0 handled flow 1 as " << handled_order(c.rec, 0);
  EXPECT_EQ(c.n.stats(0, 0).dispatched, 8u) << "64..71 ran ether inline (direct)";
  c.rec.free_all();
}

// Three stages: the backlog sits two hops upstream of the stage that would
// reorder. ether (flow 1 -> worker 1, deferred) -> ip (worker 0, deferred) ->
// tcp (worker 1, deferred); then ether and ip switch to direct. Worker 0 would
// run ether and ip inline and queue tcp ahead of the ip backlog it has yet to
// handle itself (under the new configuration, so to the same tcp ring).
TEST(NetisrChain, ThreeStagesBacklogTwoHopsUpstreamHoldsTheAdoption) {
  Chain c(2, 2,
          {{Policy::flow, Mode::deferred}, {Policy::cpu, Mode::deferred, cpu_zero},
           {Policy::cpu, Mode::deferred, cpu_one}});
  Stepper s(c.n, 2);
  for (uint32_t seq = 0; seq < 72; ++seq) s.input[0].push_back(packet(0, 1, seq));
  c.n.set_online(0, true);
  c.n.set_online(1, true);
  ASSERT_TRUE(s.step(0, 64));
  EXPECT_EQ(c.n.drain(1, 64), 64u);  // ether on worker 1 -> ip queued to worker 0
  ASSERT_EQ(c.n.stats(0, 1).length, 64u);
  Status st = Ok{};
  std::thread ctl = publish(c.n, [](DispatchConfig& cfg) {
    cfg.protos[0].mode = Mode::direct;
    cfg.protos[1].mode = Mode::direct;
  }, &st);
  for (unsigned i = 0; i < 100 && !(s.input_done() && c.rec.total == 72); ++i) {
    s.step(0, 8);
    s.step(1, 8);
  }
  ctl.join();
  c.n.set_online(0, false);
  c.n.set_online(1, false);
  EXPECT_TRUE(st.ok()) << st.error();
  EXPECT_EQ(c.rec.total, 72u);
  EXPECT_EQ(c.rec.reorders, 0u) << "tcp on worker 1 handled flow 1 as " << handled_order(c.rec, 1);
  c.rec.free_all();
}

namespace {

struct ChainResult {
  uint64_t sent = 0, handled = 0, reorders = 0, gaps = 0, qdrops = 0;
  unsigned switches = 0;
};

// run_two_workers for a chain: two worker threads feed protocol 0 (ether)
// with kChainFlows interleaved flows each, the last stage records, and
// `edit(k, c)` makes switch k on a control thread. The input comes in
// switches+1 chunks; switch k is made once both workers have dispatched half
// of chunk k and (for up to 2 ms) ether still has packets queued, so it meets
// packets queued at every stage and more of the same flows to come. Few
// flows, so that every burst carries every flow: a backlog left at a switch
// then always shares flows with the packets that follow it.
constexpr uint32_t kChainFlows = 32;

ChainResult run_chain_two_workers(const std::vector<StageSpec>& stages, unsigned switches,
                                  const std::function<void(unsigned, DispatchConfig&)>& edit,
                                  unsigned last_stage_delay_us = 0, uint32_t flow_stride = 1) {
  Chain c(2, 128, stages);
  c.rec.delay_us = last_stage_delay_us;
  constexpr uint64_t kPerSource = uint64_t{kFlows} * kPerFlow;
  std::vector<std::vector<rte_mbuf*>> input(2);
  for (uint32_t s = 0; s < 2; ++s)
    for (uint32_t i = 0; i < kPerSource; ++i)
      input[s].push_back(packet(s, (i * 7 + s) % kChainFlows * flow_stride, i / kChainFlows));
  ChainResult res;
  res.sent = 2 * kPerSource;
  auto chunk_end = [&](unsigned k) { return kPerSource * (k + 1) / (switches + 1); };
  std::atomic<uint64_t> gate{chunk_end(0)};
  std::atomic<uint64_t> progress[2] = {0, 0};
  std::atomic<bool> stop{false}, done{false};
  std::atomic<unsigned> finished{0};
  auto worker = [&](unsigned w) {
    c.n.set_online(w, true);
    std::size_t next = 0;
    while (!stop.load()) {
      if (!c.n.sync(w, stop)) break;
      const std::size_t limit = std::min<std::size_t>(gate.load(), input[w].size());
      if (next < limit) {
        const auto cnt = static_cast<uint16_t>(std::min<std::size_t>(32, limit - next));
        c.n.dispatch(w, 0, 0, static_cast<uint16_t>(w), input[w].data() + next, cnt);
        next += cnt;
        progress[w].store(next);
        if (next == input[w].size()) finished.fetch_add(1);
      }
      // Half a burst per ring: queues build up at every stage, so a switch
      // finds backlogs longer than one drain batch.
      c.n.drain(w, 16);
      if (done.load()) break;
    }
    c.n.set_online(w, false);
  };
  std::thread t0(worker, 0), t1(worker, 1);
  std::thread ctl([&] {
    while (!stop.load() && res.switches < switches) {
      const unsigned k = res.switches++;
      const uint64_t half = (chunk_end(k) + (k == 0 ? 0 : chunk_end(k - 1))) / 2;
      while (!stop.load() && (progress[0].load() < half || progress[1].load() < half)) std::this_thread::yield();
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(2);
      while (c.n.stats(0, 0).length + c.n.stats(1, 0).length == 0 && std::chrono::steady_clock::now() < give_up)
        std::this_thread::yield();
      auto st = c.n.reconfigure([&](DispatchConfig& cfg) { edit(k, cfg); });
      if (!st.ok() && !stop.load()) ADD_FAILURE() << "switch " << k << ": " << st.error();
      gate.store(chunk_end(k + 1));
    }
    gate.store(kPerSource);
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!(finished.load() == 2 && c.rec.total.load() + c.qdrops() == res.sent) &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  done.store(true);
  stop.store(true);
  ctl.join();
  t0.join();
  t1.join();
  c.n.drain_stopped();
  res.handled = c.rec.total.load();
  res.reorders = c.rec.reorders.load();
  res.gaps = c.rec.gaps.load();
  res.qdrops = c.qdrops();
  c.rec.free_all();
  return res;
}

constexpr Mode kModes[] = {Mode::direct, Mode::hybrid, Mode::deferred};
constexpr Policy kPolicies[] = {Policy::flow, Policy::source, Policy::cpu};

}  // namespace

// ether -> ip with 2 workers; 54 switches: every (ether mode, ip mode) pair
// under every ether policy twice, ip's policy cycling on its own period, and
// the bucket map moved to the other worker every other switch. Queues hold a
// source's whole input, so any loss or reorder is the dispatcher's.
TEST(NetisrChain, TwoStagesReconfiguredMidStreamKeepOrder) {
  const unsigned avail = rte_mempool_avail_count(g_pool);
  const uint32_t q = kFlows * kPerFlow;
  ChainResult r = run_chain_two_workers({{Policy::flow, Mode::deferred, cpu_by_flow, q},
                                         {Policy::flow, Mode::deferred, cpu_by_flow, q}},
                                        54, [](unsigned k, DispatchConfig& c) {
                                          c.protos[0].mode = kModes[k % 3];
                                          c.protos[1].mode = kModes[(k / 3) % 3];
                                          c.protos[0].policy = kPolicies[(k / 9) % 3];
                                          c.protos[1].policy = kPolicies[(k / 2) % 3];
                                          for (auto& w : c.bucket_map) w = static_cast<uint16_t>((w + (k % 2)) % 2);
                                        });
  EXPECT_EQ(r.switches, 54u);
  EXPECT_EQ(r.reorders, 0u);
  EXPECT_EQ(r.gaps, 0u);
  EXPECT_EQ(r.qdrops, 0u);
  EXPECT_EQ(r.handled, r.sent);
  EXPECT_EQ(rte_mempool_avail_count(g_pool), avail);
}

// ether -> ip -> tcp ("(later) tcp"), with queues short enough to overflow
// (ip and tcp: 64 packets) and the limits changed too: drops leave gaps but
// never a reorder, and every packet is handled or counted as a qdrop.
TEST(NetisrChain, ThreeStagesReconfiguredMidStreamKeepOrderAndCountDrops) {
  const unsigned avail = rte_mempool_avail_count(g_pool);
  const uint32_t q = kFlows * kPerFlow;
  ChainResult r = run_chain_two_workers({{Policy::flow, Mode::deferred, cpu_by_flow, q},
                                         {Policy::flow, Mode::deferred, cpu_by_flow, 64, 1024},
                                         {Policy::cpu, Mode::deferred, cpu_by_flow, 64, 1024}},
                                        54, [](unsigned k, DispatchConfig& c) {
                                          c.protos[0].mode = kModes[k % 3];
                                          c.protos[1].mode = kModes[(k / 3) % 3];
                                          c.protos[2].mode = kModes[(k / 9) % 3];
                                          c.protos[0].policy = kPolicies[(k / 2) % 3];
                                          c.protos[1].policy = kPolicies[(k / 5) % 3];
                                          c.protos[2].policy = kPolicies[(k / 27) % 2 == 0 ? 2 : (k % 3)];
                                          c.protos[1].qlimit = k % 4 == 0 ? 1024 : 64;
                                          for (auto& w : c.bucket_map) w = static_cast<uint16_t>((w + (k % 2)) % 2);
                                        });
  EXPECT_EQ(r.switches, 54u);
  EXPECT_EQ(r.reorders, 0u);
  EXPECT_EQ(r.handled + r.qdrops, r.sent);
  RecordProperty("qdrops", std::to_string(r.qdrops));
  EXPECT_EQ(rte_mempool_avail_count(g_pool), avail);
}

// The review's switch over and over, with two workers running. Even flows
// only, ip by cpu (flow % 2: worker 0, deferred or hybrid) and ether by flow
// with the bucket map flipped ((flow + 1) % 2: worker 1): while ether is
// deferred, worker 0's packets take ether on worker 1 and come back for ip,
// so their ip backlog waits in worker 0's own incoming ring while worker 0's
// outgoing rings empty. Every other switch moves ether back onto the source
// (direct, or source or cpu policy): adopting must then wait for that backlog
// too. ip is the slow stage (5 us a batch, as stages after ether are).
TEST(NetisrChain, TwoStagesEtherBackToTheSourceWhileIpIsQueuedThere) {
  const unsigned avail = rte_mempool_avail_count(g_pool);
  const uint32_t q = kFlows * kPerFlow;
  ChainResult r = run_chain_two_workers({{Policy::flow, Mode::deferred, cpu_by_flow, q},
                                         {Policy::cpu, Mode::deferred, cpu_by_flow, q}},
                                        40, [](unsigned k, DispatchConfig& c) {
                                          for (unsigned b = 0; b < c.bucket_map.size(); ++b)
                                            c.bucket_map[b] = static_cast<uint16_t>((b + 1) % 2);
                                          c.protos[0].policy = k % 2 == 0 ? Policy::flow : kPolicies[(k / 2) % 3];
                                          c.protos[0].mode = k % 2 == 0 ? Mode::deferred : kModes[(k / 6) % 3];
                                          c.protos[1].mode = k % 4 == 3 ? Mode::hybrid : Mode::deferred;
                                        },
                                        5, 2);
  EXPECT_EQ(r.switches, 40u);
  EXPECT_EQ(r.reorders, 0u);
  EXPECT_EQ(r.gaps, 0u);
  EXPECT_EQ(r.qdrops, 0u);
  EXPECT_EQ(r.handled, r.sent);
  EXPECT_EQ(rte_mempool_avail_count(g_pool), avail);
}

// Offline workers take no part in the barrier, but what is queued to one is
// in flight: an offline worker with nothing queued does not hold a change; one
// with packets queued holds it (no worker adopts, reconfigure() times out)
// until it runs, and the flow then continues in order.
TEST(NetisrChain, OfflineWorkerHoldsTheBarrierOnlyWhileItHasPacketsQueued) {
  Chain c(2, 2, {{Policy::flow, Mode::deferred}, {Policy::flow, Mode::deferred}});
  Stepper s(c.n, 2);
  for (uint32_t seq = 0; seq < 72; ++seq) s.input[0].push_back(packet(0, 1, seq));  // flow 1: worker 1
  c.n.set_online(0, true);
  Status st = Ok{};
  std::thread ctl = publish(c.n, [](DispatchConfig& cfg) { cfg.protos[1].mode = Mode::hybrid; }, &st);
  EXPECT_TRUE(s.step(0, 64)) << "worker 1 is offline with nothing queued";
  ctl.join();
  EXPECT_TRUE(st.ok()) << st.error();
  ASSERT_EQ(c.n.stats(1, 0).length, 64u);  // 0..63 wait for worker 1

  ctl = publish(c.n, [](DispatchConfig& cfg) { cfg.protos[0].mode = Mode::direct; }, &st,
                std::chrono::milliseconds(100));
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(150);
  while (std::chrono::steady_clock::now() < until) EXPECT_FALSE(s.step(0, 8));
  ctl.join();
  EXPECT_EQ(st.error(), "netisr: worker 0 did not adopt configuration 2 in time");
  EXPECT_EQ(s.next[0], 64u) << "a worker inside the barrier dispatches nothing";
  EXPECT_EQ(c.rec.total, 0u);

  c.n.set_online(1, true);
  for (unsigned i = 0; i < 100 && !(s.input_done() && c.rec.total == 72); ++i) {
    s.step(1, 8);
    s.step(0, 8);
  }
  c.n.set_online(0, false);
  c.n.set_online(1, false);
  EXPECT_EQ(c.rec.total, 72u);
  EXPECT_EQ(c.rec.reorders, 0u) << "ip on worker 1 handled flow 1 as " << handled_order(c.rec, 1);
  EXPECT_EQ(c.n.stats(0, 0).dispatched, 8u) << "64..71 ran ether inline (direct)";
  c.rec.free_all();
}

// Workers stopped inside the barrier, with packets queued at two stages:
// drain_stopped() handles them with each worker's configuration as it stands
// (the old one: the barrier never found the rings empty), in order.
TEST(NetisrChain, DrainStoppedFinishesAnInterruptedBarrierInOrder) {
  Chain c(2, 2, {{Policy::flow, Mode::deferred}, {Policy::cpu, Mode::deferred, cpu_zero}});
  Stepper s(c.n, 2);
  for (uint32_t seq = 0; seq < 72; ++seq) s.input[0].push_back(packet(0, 1, seq));
  const unsigned avail = rte_mempool_avail_count(g_pool);
  c.n.set_online(0, true);
  c.n.set_online(1, true);
  ASSERT_TRUE(s.step(0, 64));
  EXPECT_EQ(c.n.drain(1, 32), 32u);  // ether 0..31 on worker 1 -> ip on worker 0; 32..63 still at ether
  Status st = Ok{};
  std::thread ctl = publish(c.n, [](DispatchConfig& cfg) {
    cfg.protos[0].mode = Mode::direct;
    cfg.protos[1].mode = Mode::direct;
  }, &st, std::chrono::milliseconds(50));
  EXPECT_FALSE(s.step(0, 8)) << "worker 1 has not arrived";
  EXPECT_EQ(c.rec.total, 32u) << "worker 0 handled ip 0..31 while it waited";
  ctl.join();
  EXPECT_FALSE(st.ok());
  c.n.set_online(0, false);
  c.n.set_online(1, false);
  EXPECT_EQ(c.n.drain_stopped(), 32u + 32u) << "ether 32..63 on worker 1, then their ip on worker 0";
  EXPECT_EQ(c.rec.total, 64u);
  EXPECT_EQ(c.rec.reorders, 0u) << "ip on worker 0 handled flow 1 as " << handled_order(c.rec, 0);
  EXPECT_EQ(c.rec.gaps, 0u);
  c.rec.free_all();
  rte_pktmbuf_free_bulk(s.input[0].data() + 64, 8);
  EXPECT_EQ(rte_mempool_avail_count(g_pool), avail + 72);
}
