// stack/pcb: the connection table in groups, its locks, lock profiling, the
// lock-order checker, the listen table, bursts and active-open port choice.
#include <gtest/gtest.h>
#include <rte_thash.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "dispatch/rss.hpp"
#include "stack/pcb/pcb.hpp"

namespace ngstack::stack::pcb {
namespace {

constexpr uint32_t ip(unsigned a, unsigned b, unsigned c, unsigned d) { return a << 24 | b << 16 | c << 8 | d; }

PcbParams params(unsigned groups = 128, unsigned buckets = 128, Locking locking = Locking::group,
                 LockType type = LockType::spin, unsigned workers = 2, unsigned capacity = 4096) {
  PcbParams p;
  p.groups = groups;
  p.buckets = buckets;
  p.locking = locking;
  p.lock_type = type;
  p.workers = workers;
  p.capacity = capacity;
  p.rss_key = dispatch::symmetric_rss_key(40);
  return p;
}

std::unique_ptr<PcbTable> make(const PcbParams& p) {
  auto t = PcbTable::create("test", p);
  EXPECT_TRUE(t.ok()) << (t.ok() ? "" : t.error());
  return t.ok() ? std::move(*t) : nullptr;
}

FourTuple random_tuple(std::mt19937& rng) {
  return FourTuple{static_cast<uint32_t>(rng()), static_cast<uint32_t>(rng()), static_cast<uint16_t>(rng()),
                   static_cast<uint16_t>(rng())};
}

// What rte_softrss computes for a packet from (src, sport) to (dst, dport).
uint32_t softrss(uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport, const std::vector<uint8_t>& key) {
  rte_ipv4_tuple tuple{};
  tuple.src_addr = src;
  tuple.dst_addr = dst;
  tuple.sport = sport;
  tuple.dport = dport;
  return rte_softrss(reinterpret_cast<uint32_t*>(&tuple), RTE_THASH_V4_L4_LEN, key.data());
}

// The packet the connection receives comes from the foreign end.
uint32_t softrss_received(const FourTuple& t, const std::vector<uint8_t>& key) {
  return softrss(t.faddr, t.laddr, t.fport, t.lport, key);
}

TEST(PcbTable, RejectsBadParams) {
  EXPECT_FALSE(PcbTable::create("x", params(100)).ok());
  EXPECT_FALSE(PcbTable::create("x", params(128, 96)).ok());
  auto p = params();
  p.bucket_map = {0, 1};
  EXPECT_FALSE(PcbTable::create("x", p).ok());
  p = params();
  p.rss_key.resize(8);
  EXPECT_FALSE(PcbTable::create("x", p).ok());
}

TEST(PcbTable, InsertLookupRemove) {
  auto t = make(params(8, 8, Locking::group, LockType::spin, 1, 64));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->per_group(), 8u);
  const FourTuple a{ip(198, 18, 0, 1), ip(198, 19, 0, 2), 80, 40000};
  const FourTuple b{ip(198, 18, 0, 1), ip(198, 19, 0, 2), 80, 40001};
  const uint32_t ga = t->group_of(a);
  {
    auto g = t->lock_group(ga);
    EXPECT_EQ(t->lookup(g, a), nullptr);
    Pcb* p = t->insert(g, a, 7);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->tuple, a);
    EXPECT_EQ(p->group, ga);
    EXPECT_EQ(p->cookie, 7u);
    EXPECT_EQ(t->lookup(g, a), p);
    PcbTable::InsertError err{};
    EXPECT_EQ(t->insert(g, a, 0, &err), nullptr);
    EXPECT_EQ(err, PcbTable::InsertError::exists);
  }
  {
    auto g = t->lock_group(t->group_of(b));
    EXPECT_EQ(t->lookup(g, b), nullptr);  // differs from `a` only in the foreign port
    ASSERT_NE(t->insert(g, b), nullptr);
  }
  EXPECT_EQ(t->live(), 2u);
  {
    auto g = t->lock_group(ga);
    Pcb* p = t->lookup(g, a);
    ASSERT_NE(p, nullptr);
    t->remove(g, p);
    EXPECT_EQ(t->lookup(g, a), nullptr);
  }
  {
    auto g = t->lock_group(t->group_of(b));
    EXPECT_NE(t->lookup(g, b), nullptr);
  }
  EXPECT_EQ(t->live(), 1u);
  EXPECT_EQ(t->counters(ga).inserts.get(), t->group_of(b) == ga ? 2u : 1u);
  EXPECT_EQ(t->counters(ga).removes.get(), 1u);
  EXPECT_EQ(t->counters(ga).exists.get(), 1u);
}

// A group's free list is its own: when it is empty, inserts into that group
// fail (counted) and the PCBs come back on removal; other groups are unaffected.
TEST(PcbTable, GroupFullAndReuse) {
  auto t = make(params(1, 8, Locking::group, LockType::spin, 1, 16));
  ASSERT_TRUE(t);
  std::vector<Pcb*> pcbs;
  auto g = t->lock_group(0);
  for (uint16_t i = 0; i < 16; ++i) {
    Pcb* p = t->insert(g, FourTuple{1, 2, i, 3});
    ASSERT_NE(p, nullptr);
    pcbs.push_back(p);
  }
  PcbTable::InsertError err{};
  EXPECT_EQ(t->insert(g, FourTuple{1, 2, 100, 3}, 0, &err), nullptr);
  EXPECT_EQ(err, PcbTable::InsertError::full);
  EXPECT_EQ(t->counters(0).full.get(), 1u);
  for (Pcb* p : pcbs) t->remove(g, p);
  EXPECT_EQ(t->live(), 0u);
  for (uint16_t i = 0; i < 16; ++i) ASSERT_NE(t->insert(g, FourTuple{1, 2, static_cast<uint16_t>(i + 200), 3}), nullptr);
  for (uint16_t i = 0; i < 16; ++i) EXPECT_NE(t->lookup(g, FourTuple{1, 2, static_cast<uint16_t>(i + 200), 3}), nullptr);
}

// The group is the bucket a NIC (and DPDK's rte_softrss) computes for a packet
// the connection receives: foreign address/port as the source.
TEST(PcbTable, GroupIsTheRssBucketOfRteSoftrss) {
  std::mt19937 rng(1);
  std::vector<uint8_t> random_key(40);
  for (auto& b : random_key) b = static_cast<uint8_t>(rng());
  for (const auto& key : {dispatch::symmetric_rss_key(40), random_key}) {
    for (auto [groups, buckets] : {std::pair{128u, 128u}, std::pair{32u, 128u}, std::pair{512u, 128u}}) {
      auto p = params(groups, buckets);
      p.rss_key = key;
      auto t = make(p);
      ASSERT_TRUE(t);
      for (int i = 0; i < 2000; ++i) {
        const FourTuple tu = random_tuple(rng);
        const uint32_t h = softrss_received(tu, key);
        ASSERT_EQ(t->rss_hash(tu), h);
        ASSERT_EQ(t->bucket_of(tu), h & (buckets - 1));
        ASSERT_EQ(t->group_of(tu), h & (groups - 1));
        if (groups <= buckets) {
          ASSERT_EQ(t->group_of(tu), t->bucket_of(tu) % groups);
        } else {
          ASSERT_EQ(t->bucket_of(tu), t->group_of(tu) % buckets);
        }
        if (groups >= buckets) {
          ASSERT_EQ(t->group_owner(t->group_of(tu)), t->owner_of(tu));
        }
      }
    }
  }
}

// With the symmetric key both directions of a connection hash alike: the
// packets we send (local as source) and those we receive land in one bucket,
// and the peer's view of the connection (its local = our foreign) is in the
// same group.
TEST(PcbTable, BothDirectionsSameBucket) {
  auto t = make(params());
  ASSERT_TRUE(t);
  const auto key = dispatch::symmetric_rss_key(40);
  std::mt19937 rng(2);
  for (int i = 0; i < 2000; ++i) {
    const FourTuple tu = random_tuple(rng);
    const FourTuple peer{tu.faddr, tu.laddr, tu.fport, tu.lport};
    const uint32_t sent = softrss(tu.laddr, tu.faddr, tu.lport, tu.fport, key);
    const uint32_t received = softrss(tu.faddr, tu.laddr, tu.fport, tu.lport, key);
    ASSERT_EQ(sent, received);
    ASSERT_EQ(t->group_of(tu), t->group_of(peer));
    ASSERT_EQ(t->bucket_of(tu), sent & 127);
  }
}

// The in-group hash is not the Toeplitz hash: tuples that collide in Toeplitz
// by construction (symmetric key: XOR-compensating 16-bit words) spread.
TEST(PcbTable, InGroupHashIsNotToeplitz) {
  auto t = make(params());
  ASSERT_TRUE(t);
  std::set<uint32_t> toeplitz, strong;
  for (uint16_t i = 0; i < 256; ++i) {
    // lport ^ fport constant: the symmetric Toeplitz hash cannot tell them apart.
    const FourTuple tu{ip(198, 18, 0, 1), ip(198, 19, 0, 1), static_cast<uint16_t>(1000 + i),
                       static_cast<uint16_t>((1000 + i) ^ 0x5555)};
    toeplitz.insert(t->rss_hash(tu));
    strong.insert(static_cast<uint32_t>(t->tuple_hash(tu)));
  }
  EXPECT_EQ(toeplitz.size(), 1u);
  EXPECT_EQ(strong.size(), 256u);
}

TEST(PcbTable, ListenFallbackAndAcceptInTheTuplesGroup) {
  auto t = make(params(128, 128, Locking::group, LockType::spin, 1));
  ASSERT_TRUE(t);
  auto& L = t->listeners();
  L.reader_online(0);
  const uint32_t us = ip(198, 18, 0, 1), other = ip(198, 18, 0, 2);
  // This thread is reader 0 and changes the table itself: the grace period
  // must not wait for it.
  ASSERT_TRUE(L.add({0, 80, 1}, 0));
  ASSERT_TRUE(L.add({us, 80, 2}, 0));
  EXPECT_FALSE(L.add({us, 80, 3}, 0));  // already bound
  ASSERT_TRUE(L.add({other, 443, 4}, 0));
  EXPECT_EQ(L.size(), 3u);

  const FourTuple syn{us, ip(198, 19, 7, 7), 80, 51000};
  const uint32_t g = t->group_of(syn);
  {
    auto guard = t->lock_group(g);
    auto m = t->lookup_or_listen(guard, syn);
    EXPECT_EQ(m.pcb, nullptr);
    ASSERT_TRUE(m.listener);
    EXPECT_EQ(m.listener->cookie, 2u);  // the exact address beats INADDR_ANY
    Pcb* p = t->accept(guard, syn, *m.listener);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->group, g);
    EXPECT_EQ(p->cookie, 2u);
    auto again = t->lookup_or_listen(guard, syn);
    EXPECT_EQ(again.pcb, p);
    EXPECT_FALSE(again.listener);
  }
  for (uint32_t i = 0; i < t->groups(); ++i) EXPECT_EQ(t->live(i), i == g ? 1u : 0u) << "group " << i;
  EXPECT_EQ(t->counters(g).listen_hits.get(), 1u);
  EXPECT_EQ(t->counters(g).hits.get(), 1u);

  const FourTuple any{other, ip(198, 19, 7, 7), 80, 51000};  // port 80 on another address: INADDR_ANY
  const FourTuple none{us, ip(198, 19, 7, 7), 443, 51000};   // 443 is bound on `other` only
  {
    auto guard = t->lock_group(t->group_of(any));
    auto m = t->lookup_or_listen(guard, any);
    ASSERT_TRUE(m.listener);
    EXPECT_EQ(m.listener->cookie, 1u);
  }
  {
    auto guard = t->lock_group(t->group_of(none));
    EXPECT_FALSE(t->lookup_or_listen(guard, none).listener);
  }
  ASSERT_TRUE(L.remove(us, 80, 0));
  EXPECT_FALSE(L.remove(us, 80, 0));
  {
    auto guard = t->lock_group(t->group_of(FourTuple{us, 9, 80, 9}));
    auto m = t->lookup_or_listen(guard, FourTuple{us, 9, 80, 9});
    ASSERT_TRUE(m.listener);
    EXPECT_EQ(m.listener->cookie, 1u);
  }
  L.reader_offline(0);
}

// Readers look up while a writer adds and removes: old snapshots are freed
// only after the grace period (ASan sees a use after free otherwise).
TEST(ListenTable, ConcurrentReadersWhileTheTableChanges) {
  ListenTable L(2, LockType::spin);
  ASSERT_TRUE(L.add({0, 80, 80}));
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> seen{0};
  std::atomic<unsigned> started{0};
  auto reader = [&](unsigned id) {
    L.reader_online(id);
    uint64_t n = 0;
    for (bool first = true; !stop.load(std::memory_order_relaxed); first = false) {
      if (first) started.fetch_add(1);
      for (uint16_t port = 80; port < 90; ++port) {
        auto e = L.lookup(1, port);
        if (e) {
          EXPECT_EQ(e->cookie, e->lport);
          ++n;
        }
      }
      L.quiescent(id);
    }
    L.reader_offline(id);
    seen.fetch_add(n);
  };
  std::thread r0(reader, 0), r1(reader, 1);
  while (started.load() < 2) std::this_thread::yield();  // the changes race with lookups
  for (int i = 0; i < 300; ++i) {
    const auto port = static_cast<uint16_t>(81 + i % 8);
    ASSERT_TRUE(L.add({0, port, port}));
    ASSERT_TRUE(L.remove(0, port));
  }
  stop = true;
  r0.join();
  r1.join();
  EXPECT_GT(seen.load(), 0u);
  EXPECT_EQ(L.size(), 1u);
}

TEST(PcbLocking, GiantModeTakesOneLockForEveryGroup) {
  auto t = make(params(16, 16, Locking::giant));
  ASSERT_TRUE(t);
  for (uint32_t g = 0; g < 16; ++g)
    for (int i = 0; i < 3; ++i) auto guard = t->lock_group(g);
  const auto& cls = witness::pcb_classes();
  EXPECT_EQ(t->class_profile(cls.giant).acquisitions, 48u);
  EXPECT_EQ(t->class_profile(cls.group).acquisitions, 0u);
  for (uint32_t g = 0; g < 16; ++g) EXPECT_EQ(t->group_profile(g).acquisitions, 0u);
}

TEST(PcbLocking, GroupModeTakesTheGroupsLock) {
  auto t = make(params(16, 16, Locking::group));
  ASSERT_TRUE(t);
  for (uint32_t g = 0; g < 16; ++g)
    for (uint32_t i = 0; i <= g; ++i) auto guard = t->lock_group(g);
  const auto& cls = witness::pcb_classes();
  EXPECT_EQ(t->class_profile(cls.giant).acquisitions, 0u);
  EXPECT_EQ(t->class_profile(cls.group).acquisitions, 16u * 17 / 2);
  for (uint32_t g = 0; g < 16; ++g) EXPECT_EQ(t->group_profile(g).acquisitions, g + 1);
  // The connection lock, under the group's.
  auto guard = t->lock_group(0);
  Pcb* p = nullptr;
  for (uint16_t port = 1; !p; ++port) {
    const FourTuple tu{1, 2, port, 3};
    if (t->group_of(tu) == 0) p = t->insert(guard, tu);
  }
  { ConnGuard c(*p); }
  EXPECT_EQ(t->class_profile(cls.conn).acquisitions, 1u);
}

class LockTypes : public ::testing::TestWithParam<LockType> {};

// Two threads increment a plain counter under the lock; the sum is exact.
TEST_P(LockTypes, ExcludeUnderContention) {
  PcbLock lock;
  lock.init(GetParam(), witness::register_class("test_counter", 50));
  uint64_t counter = 0;
  constexpr int kIters = 200000;
  auto work = [&] {
    for (int i = 0; i < kIters; ++i) {
      LockHold h(lock);
      counter = counter + 1;
    }
  };
  std::thread a(work), b(work);
  a.join();
  b.join();
  EXPECT_EQ(counter, 2u * kIters);
  const LockProfile p = lock.profile();
  EXPECT_EQ(p.acquisitions, 2u * kIters);
  EXPECT_LE(p.contended, p.acquisitions);
  EXPECT_GT(p.hold_cycles, 0u);
}

// One thread holds the lock while the other asks for it: the other's first
// try fails, so it is counted as contended and its wait covers the hold.
TEST_P(LockTypes, ProfileCountsContention) {
  PcbLock lock;
  lock.init(GetParam(), witness::register_class("test_profile", 50));
  std::atomic<bool> held{false}, trying{false};
  std::thread holder([&] {
    LockHold h(lock);
    held = true;
    while (!trying.load()) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  });
  while (!held.load()) std::this_thread::yield();
  std::thread waiter([&] {
    trying = true;
    LockHold h(lock);
  });
  holder.join();
  waiter.join();
  const LockProfile p = lock.profile();
  EXPECT_EQ(p.acquisitions, 2u);
  EXPECT_EQ(p.contended, 1u);
  // 50 ms at any TSC rate of at least 100 MHz.
  EXPECT_GT(p.wait_max, 5'000'000u);
  EXPECT_GT(p.hold_max, 5'000'000u);
  EXPECT_GE(p.wait_cycles, p.wait_max);
}

INSTANTIATE_TEST_SUITE_P(All, LockTypes,
                         ::testing::Values(LockType::spin, LockType::queuing, LockType::speculative,
                                           LockType::rte_spinlock),
                         [](const auto& info) { return std::string(lock_type_name(info.param)); });

TEST(PcbLocking, LockTypeAndLockingNames) {
  for (auto n : {"spin", "queuing", "speculative", "rte_spinlock"}) {
    auto t = lock_type_from_name(n);
    ASSERT_TRUE(t);
    EXPECT_STREQ(lock_type_name(*t), n);
  }
  EXPECT_FALSE(lock_type_from_name("mutex"));
  EXPECT_EQ(locking_from_name("giant"), Locking::giant);
  EXPECT_EQ(locking_from_name("group"), Locking::group);
  EXPECT_FALSE(locking_from_name("none"));
}

// --- the lock-order checker -----------------------------------------------------

std::vector<std::string> g_witness_messages;
void record_witness(const char* m) { g_witness_messages.emplace_back(m); }

class Witness : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!witness::kEnabled) GTEST_SKIP() << "the lock-order checker is compiled out (NDEBUG)";
    g_witness_messages.clear();
    witness::reset_learned_order();
    previous_ = witness::set_handler(record_witness);
  }
  void TearDown() override {
    if (witness::kEnabled) {
      witness::set_handler(previous_);
      witness::reset_learned_order();
    }
  }
  witness::Handler previous_ = nullptr;
};

TEST_F(Witness, DeclaredOrderPasses) {
  auto t = make(params(4, 4));
  ASSERT_TRUE(t);
  LockHold listen(t->listeners().writer_lock());
  auto g = t->lock_group(0);
  Pcb* p = nullptr;
  for (uint16_t port = 1; !p; ++port)
    if (t->group_of(FourTuple{1, 2, port, 3}) == 0) p = t->insert(g, FourTuple{1, 2, port, 3});
  ConnGuard c(*p);
  EXPECT_TRUE(g_witness_messages.empty());
  EXPECT_EQ(witness::held_count(), 3u);
}

// A group lock, then the listen table's writer lock: the declared order reversed.
TEST_F(Witness, CatchesGroupThenListen) {
  auto t = make(params(4, 4));
  ASSERT_TRUE(t);
  {
    auto g = t->lock_group(1);
    LockHold listen(t->listeners().writer_lock());
  }
  ASSERT_EQ(g_witness_messages.size(), 1u);
  EXPECT_NE(g_witness_messages[0].find("reversal"), std::string::npos) << g_witness_messages[0];
  EXPECT_NE(g_witness_messages[0].find("pcb_listen"), std::string::npos) << g_witness_messages[0];
  EXPECT_NE(g_witness_messages[0].find("pcb_group"), std::string::npos) << g_witness_messages[0];
  EXPECT_EQ(witness::held_count(), 0u);
}

// Two group locks at once would deadlock against a thread taking them the
// other way round.
TEST_F(Witness, CatchesTwoGroupLocks) {
  auto t = make(params(4, 4));
  ASSERT_TRUE(t);
  {
    auto a = t->lock_group(0);
    auto b = t->lock_group(1);
  }
  ASSERT_EQ(g_witness_messages.size(), 1u);
  EXPECT_NE(g_witness_messages[0].find("second \"pcb_group\""), std::string::npos) << g_witness_messages[0];
}

// Classes of equal rank: the order is learned, on any thread, and its reversal caught.
TEST_F(Witness, CatchesALearnedOrderReversedOnAnotherThread) {
  PcbLock a, b;
  a.init(LockType::spin, witness::register_class("test_a", 40));
  b.init(LockType::rte_spinlock, witness::register_class("test_b", 40));
  std::thread([&] {
    LockHold ha(a);
    LockHold hb(b);
  }).join();
  EXPECT_TRUE(g_witness_messages.empty());
  {
    LockHold hb(b);
    LockHold ha(a);
  }
  ASSERT_EQ(g_witness_messages.size(), 1u);
  EXPECT_NE(g_witness_messages[0].find("\"test_a\" -> \"test_b\" was seen before"), std::string::npos)
      << g_witness_messages[0];
}

// Without a handler the checker aborts with its message.
TEST_F(Witness, AbortsByDefault) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto t = make(params(4, 4));
  ASSERT_TRUE(t);
  witness::set_handler(nullptr);
  EXPECT_DEATH(
      {
        auto g = t->lock_group(1);
        LockHold listen(t->listeners().writer_lock());
      },
      "witness: lock order reversal");
}

// --- bursts ----------------------------------------------------------------------------

// Tuples spread over exactly `groups` groups, `per` each, interleaved.
std::vector<FourTuple> burst_over(const PcbTable& t, unsigned groups, unsigned per) {
  std::vector<std::vector<FourTuple>> by_group(t.groups());
  for (uint16_t port = 1; port != 0; ++port) {
    const FourTuple tu{ip(198, 18, 0, 1), ip(198, 19, 0, 1), 80, port};
    auto& v = by_group[t.group_of(tu)];
    if (v.size() < per) v.push_back(tu);
  }
  std::vector<FourTuple> out;
  for (unsigned i = 0; i < per; ++i)
    for (unsigned g = 0; g < groups; ++g) out.push_back(by_group[g * 3 % t.groups()][i]);
  return out;
}

TEST(PcbBurst, OneAcquisitionPerGroup) {
  for (Locking mode : {Locking::group, Locking::giant}) {
    auto t = make(params(16, 16, mode));
    ASSERT_TRUE(t);
    const auto burst = burst_over(*t, 5, 12);  // 60 packets in 5 groups
    {
      auto g = t->lock_group(t->group_of(burst[7]));
      ASSERT_NE(t->insert(g, burst[7]), nullptr);
    }
    const auto& cls = witness::pcb_classes();
    const uint64_t before = t->class_profile(mode == Locking::giant ? cls.giant : cls.group).acquisitions;
    unsigned calls = 0, packets = 0, hits = 0;
    std::set<uint32_t> groups;
    t->for_each_group(burst.data(), static_cast<unsigned>(burst.size()),
                      [&](GroupGuard& g, const uint16_t* idx, unsigned n) {
                        ++calls;
                        EXPECT_TRUE(groups.insert(g.group()).second);
                        for (unsigned i = 0; i < n; ++i) {
                          EXPECT_EQ(t->group_of(burst[idx[i]]), g.group());
                          if (i) {
                            EXPECT_LT(idx[i - 1], idx[i]);  // burst order within the group
                          }
                          if (t->lookup(g, burst[idx[i]])) ++hits;
                          ++packets;
                        }
                      });
    EXPECT_EQ(calls, 5u);
    EXPECT_EQ(packets, 60u);
    EXPECT_EQ(hits, 1u);
    const uint64_t acquisitions =
        t->class_profile(mode == Locking::giant ? cls.giant : cls.group).acquisitions - before;
    EXPECT_EQ(acquisitions, mode == Locking::giant ? 1u : 5u) << locking_name(mode);
    EXPECT_EQ(t->lookups(), 60u);
    uint64_t bursts = 0;
    for (uint32_t g = 0; g < t->groups(); ++g) bursts += t->counters(g).bursts.get();
    EXPECT_EQ(bursts, 5u);
  }
}

// --- active open --------------------------------------------------------------------------

TEST(PcbConnect, PortLandsInABucketOfTheOpeningWorker) {
  auto p = params(128, 128, Locking::group, LockType::spin, 4, 1 << 16);
  auto t = make(p);
  ASSERT_TRUE(t);
  const auto key = dispatch::symmetric_rss_key(40);
  const uint32_t laddr = ip(198, 18, 0, 1), faddr = ip(198, 19, 0, 80);
  ASSERT_TRUE(t->listeners().add({0, kEphemeralFirst, 99}));  // a bound port is never chosen
  for (unsigned w = 0; w < 4; ++w) t->listeners().reader_online(w);
  std::set<uint16_t> ports;
  for (unsigned w = 0; w < 4; ++w) {
    for (int i = 0; i < 200; ++i) {
      auto tu = t->connect(w, laddr, faddr, 80, w);
      ASSERT_TRUE(tu);
      EXPECT_GE(tu->lport, kEphemeralFirst);
      EXPECT_NE(tu->lport, kEphemeralFirst);
      EXPECT_EQ(t->owner_of(*tu), w);
      // The reply, from faddr:80 to laddr:lport, hashed as the NIC does, in
      // the round-robin bucket map (bucket b -> worker b % 4).
      EXPECT_EQ((softrss(faddr, laddr, 80, tu->lport, key) & 127) % 4, w);
      EXPECT_TRUE(ports.insert(tu->lport).second);
      auto g = t->lock_group(t->group_of(*tu));
      Pcb* pcb = t->lookup(g, *tu);
      ASSERT_NE(pcb, nullptr);
      EXPECT_EQ(pcb->cookie, w);
    }
  }
  for (unsigned w = 0; w < 4; ++w) t->listeners().reader_offline(w);
}

// When every port owned by the worker is taken, connect says so.
TEST(PcbConnect, ExhaustionIsReported) {
  auto t = make(params(128, 128, Locking::group, LockType::spin, 1, 1 << 16));
  ASSERT_TRUE(t);
  t->listeners().reader_online(0);
  unsigned n = 0;
  while (t->connect(0, 1, 2, 3)) ++n;
  EXPECT_EQ(n, 65536u - kEphemeralFirst);
  t->listeners().reader_offline(0);
}

// --- concurrency ---------------------------------------------------------------------------

struct ConcurrencyCase {
  Locking locking;
  LockType type;
};

class PcbConcurrency : public ::testing::TestWithParam<ConcurrencyCase> {};

// Two workers insert, look up (their own tuples and the other's) and remove in
// shared groups (4 groups), both through single lookups and bursts.
TEST_P(PcbConcurrency, TwoWorkersInsertLookupRemove) {
  auto t = make(params(4, 4, GetParam().locking, GetParam().type, 2, 1024));
  ASSERT_TRUE(t);
  constexpr int kRounds = 300;
  constexpr uint16_t kPer = 64;
  std::atomic<int> errors{0};
  auto worker = [&](unsigned w) {
    t->listeners().reader_online(w);
    std::vector<FourTuple> mine, theirs;
    for (uint16_t i = 0; i < kPer; ++i) {
      mine.push_back(FourTuple{ip(198, 18, 0, 1), ip(198, 19, 0, static_cast<uint8_t>(w)), 80,
                               static_cast<uint16_t>(1000 + i)});
      theirs.push_back(FourTuple{ip(198, 18, 0, 1), ip(198, 19, 0, static_cast<uint8_t>(1 - w)), 80,
                                 static_cast<uint16_t>(1000 + i)});
    }
    for (int r = 0; r < kRounds; ++r) {
      for (const auto& tu : mine) {
        auto g = t->lock_group(t->group_of(tu));
        Pcb* p = t->insert(g, tu, w);
        if (!p) {
          ++errors;
          continue;
        }
        ConnGuard c(*p);
        p->state = static_cast<uint8_t>(r);
      }
      t->for_each_group(theirs.data(), kPer, [&](GroupGuard& g, const uint16_t* idx, unsigned n) {
        for (unsigned i = 0; i < n; ++i)
          if (Pcb* p = t->lookup(g, theirs[idx[i]]); p && p->cookie != 1 - w) ++errors;
      });
      t->for_each_group(mine.data(), kPer, [&](GroupGuard& g, const uint16_t* idx, unsigned n) {
        for (unsigned i = 0; i < n; ++i) {
          Pcb* p = t->lookup(g, mine[idx[i]]);
          if (!p || p->cookie != w || p->tuple != mine[idx[i]]) {
            ++errors;
            continue;
          }
          t->remove(g, p);
        }
      });
      t->listeners().quiescent(w);
    }
    t->listeners().reader_offline(w);
  };
  std::thread a(worker, 0), b(worker, 1);
  a.join();
  b.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(t->live(), 0u);
  uint64_t inserts = 0, removes = 0;
  for (uint32_t g = 0; g < t->groups(); ++g) {
    inserts += t->counters(g).inserts.get();
    removes += t->counters(g).removes.get();
  }
  EXPECT_EQ(inserts, 2u * kRounds * kPer);
  EXPECT_EQ(removes, 2u * kRounds * kPer);
  const auto& cls = witness::pcb_classes();
  const LockProfile lp = t->class_profile(GetParam().locking == Locking::giant ? cls.giant : cls.group);
  EXPECT_GE(lp.acquisitions, 2u * kRounds * kPer);
  EXPECT_EQ(t->class_profile(GetParam().locking == Locking::giant ? cls.group : cls.giant).acquisitions, 0u);
}

INSTANTIATE_TEST_SUITE_P(Modes, PcbConcurrency,
                         ::testing::Values(ConcurrencyCase{Locking::group, LockType::spin},
                                           ConcurrencyCase{Locking::giant, LockType::spin},
                                           ConcurrencyCase{Locking::group, LockType::queuing},
                                           ConcurrencyCase{Locking::group, LockType::speculative},
                                           ConcurrencyCase{Locking::giant, LockType::rte_spinlock}),
                         [](const auto& info) {
                           return std::string(locking_name(info.param.locking)) + "_" +
                                  lock_type_name(info.param.type);
                         });

}  // namespace
}  // namespace ngstack::stack::pcb
