// The ARP cache and the RCU table under it: states, hold queues and the
// table-wide hold budget, release order, removal with reclamation after a
// grace period, and concurrent learning, lookups and walks from several
// threads.
#include <gtest/gtest.h>
#include <rte_cycles.h>
#include <rte_mbuf.h>
#include <rte_pause.h>
#include <rte_rcu_qsbr.h>

#include <array>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "stack/arp/arp.hpp"
#include "stack/arp/arp_table.hpp"
#include "tests/lib/eal_env.hpp"

namespace ngstack::stack::arp {
namespace {

rte_mempool* pool() { return test::pool("arp_pool", 1023, 256); }

rte_ether_addr mac(uint8_t last) { return rte_ether_addr{{0x02, 0, 0, 0, 0, last}}; }

std::unique_ptr<ArpTable> table(unsigned capacity = 64, unsigned hold = 4, unsigned readers = 1) {
  pool();  // starts EAL: the table lives in its memory
  auto t = ArpTable::create({capacity, hold, readers});
  EXPECT_TRUE(t.ok()) << (t.ok() ? "" : t.error());
  return std::move(*t);
}

TEST(ArpTable, LinkPacksMacAndState) {
  const Link l = Link::make(mac(7), State::stale);
  EXPECT_EQ(l.state(), State::stale);
  const rte_ether_addr m = l.mac();
  const rte_ether_addr want = mac(7);
  EXPECT_TRUE(rte_is_same_ether_addr(&m, &want));
  EXPECT_TRUE(l.usable());
  EXPECT_FALSE(Link::make(mac(1), State::incomplete).usable());
}

TEST(ArpTable, CreateFindHoldConfirmReleasesInOrder) {
  auto t = table();
  bool created = false;
  const int32_t s = t->find_or_create(1, 0xc6120102, Link::make({}, State::incomplete), 0, &created);
  ASSERT_NE(s, RcuTable::kNone);
  EXPECT_TRUE(created);
  EXPECT_TRUE(t->index().live(s));
  EXPECT_EQ(t->find(1, 0xc6120102), s);
  EXPECT_EQ(t->find(0, 0xc6120102), RcuTable::kNone) << "entries are per port";
  EXPECT_EQ(t->size(), 1u);

  std::vector<rte_mbuf*> sent;
  rte_mbuf* pkts[5];
  for (auto& p : pkts) p = rte_pktmbuf_alloc(pool());
  Link link;
  bool full = false;
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(t->hold(s, pkts[i], &link, &full));
  EXPECT_FALSE(t->hold(s, pkts[4], &link, &full));
  EXPECT_TRUE(full) << "the hold queue is bounded";
  rte_pktmbuf_free(pkts[4]);

  t->confirm(s, mac(9), 100, [&](rte_mbuf** held, uint16_t n, const rte_ether_addr& m) {
    const rte_ether_addr want = mac(9);
    EXPECT_TRUE(rte_is_same_ether_addr(&m, &want));
    for (uint16_t i = 0; i < n; ++i) sent.push_back(held[i]);
  });
  ASSERT_EQ(sent.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(sent[i], pkts[i]) << "held packets leave in arrival order";
  for (auto* m : sent) rte_pktmbuf_free(m);
  const Link now{t->at(s).link.load()};
  EXPECT_EQ(now.state(), State::reachable);
  EXPECT_FALSE(t->hold(s, pkts[0], &link, &full)) << "a resolved entry holds nothing";
  EXPECT_TRUE(link.usable());
  EXPECT_EQ(rte_mempool_avail_count(pool()), pool()->size);
}

TEST(ArpTable, PermanentEntriesIgnoreConfirmations) {
  auto t = table();
  bool created = false;
  const int32_t s = t->find_or_create(0, 1, Link::make(mac(1), State::permanent), 0, &created);
  t->confirm(s, mac(2), 5, [](rte_mbuf**, uint16_t, const rte_ether_addr&) {});
  const Link l{t->at(s).link.load()};
  EXPECT_EQ(l.state(), State::permanent);
  EXPECT_EQ(l.mac().addr_bytes[5], 1);
}

TEST(ArpTable, RemoveDisposesHeldAndReclaimsAfterGracePeriod) {
  auto t = table(16, 4, 1);
  t->index().reader_online(0);
  bool created = false;
  const int32_t s = t->find_or_create(0, 7, Link::make({}, State::incomplete), 0, &created);
  Link link;
  bool full;
  rte_mbuf* m = rte_pktmbuf_alloc(pool());
  ASSERT_TRUE(t->hold(s, m, &link, &full));
  unsigned disposed = 0;
  t->remove(s, [&](rte_mbuf** held, uint16_t n) {
    disposed += n;
    rte_pktmbuf_free_bulk(held, n);
  });
  EXPECT_EQ(disposed, 1u);
  EXPECT_EQ(t->find(0, 7), RcuTable::kNone);
  EXPECT_FALSE(t->index().live(s));
  EXPECT_EQ(Link{t->at(s).link.load()}.state(), State::dead) << "a late holder sees dead and retries";
  EXPECT_FALSE(t->hold(s, m, &link, &full));

  // The reader has not passed a quiescent state: the slot must not come back
  // for another key yet, however many keys come and go.
  std::vector<int32_t> seen;
  for (uint32_t a = 100; a < 115; ++a) {
    const int32_t n = t->find_or_create(0, a, Link::make({}, State::incomplete), 0, &created);
    ASSERT_NE(n, RcuTable::kNone) << "capacity is about live keys, not slots in their grace period";
    EXPECT_NE(n, s);
    seen.push_back(n);
  }
  for (int32_t n : seen) t->remove(n, [](rte_mbuf**, uint16_t) {});
  t->index().quiescent(0);
  // After the grace period the removed slots are reclaimed (at the next
  // removal) and reused.
  bool reused = false;
  for (uint32_t a = 200; a < 264 && !reused; ++a) {
    const int32_t n = t->find_or_create(0, a, Link::make({}, State::incomplete), 0, &created);
    reused |= n == s;
    t->remove(n, [](rte_mbuf**, uint16_t) {});
  }
  EXPECT_TRUE(reused);
  t->index().reader_offline(0);
  EXPECT_EQ(rte_mempool_avail_count(pool()), pool()->size);
}

// A slot comes back once its grace period is over, not only at a later
// removal: here every spare slot is retired while a reader holds the grace
// period back, and nothing is left to remove when it ends; the next new
// neighbour still finds a slot.
TEST(ArpTable, SlotsComeBackAfterTheGracePeriodWithoutAnotherRemoval) {
  auto t = table(16, 4, 1);
  t->index().reader_online(0);
  bool created = false;
  auto add = [&](uint32_t a) { return t->find_or_create(0, a, Link::make(mac(1), State::reachable), 0, &created); };
  for (uint32_t round = 0; round < 2; ++round) {
    std::vector<int32_t> slots;
    for (uint32_t a = 1; a <= 16; ++a) slots.push_back(add(100 * round + a));
    for (int32_t s : slots) {
      ASSERT_NE(s, RcuTable::kNone);
      t->remove(s, [](rte_mbuf**, uint16_t) {});
    }
  }
  EXPECT_EQ(t->size(), 0u);
  EXPECT_EQ(t->index().retired(), 32u) << "all 2 x 16 slots wait for the reader";
  EXPECT_EQ(add(999), RcuTable::kNone) << "no slot may be reused yet";
  t->index().quiescent(0);
  EXPECT_NE(add(999), RcuTable::kNone) << "the grace period is over: the insert takes a retired slot";
  EXPECT_EQ(t->index().retired(), 0u);
  t->index().reader_offline(0);
}

TEST(ArpTable, FullTableRefusesNewNeighbours) {
  auto t = table(16);
  bool created = false;
  for (uint32_t a = 1; a <= 16; ++a)
    ASSERT_NE(t->find_or_create(0, a, Link::make(mac(1), State::reachable), 0, &created), RcuTable::kNone);
  EXPECT_EQ(t->find_or_create(0, 99, Link::make(mac(1), State::reachable), 0, &created), RcuTable::kNone);
  EXPECT_NE(t->find_or_create(0, 5, Link::make(mac(1), State::reachable), 0, &created), RcuTable::kNone)
      << "an existing neighbour is still found";
  // An address scan into the full table takes no writer lock.
  const uint64_t locks = t->index().lock_acquisitions();
  for (uint32_t a = 100; a < 200; ++a)
    EXPECT_EQ(t->find_or_create(0, a, Link::make(mac(1), State::reachable), 0, &created), RcuTable::kNone);
  EXPECT_EQ(t->index().lock_acquisitions(), locks) << "a full table is checked before locking";
}

// The table-wide hold budget (router.arp.hold_total): a sender spraying a
// large connected subnet makes many incomplete entries, and together they
// hold no more than the budget. Exactly the overflow is refused, as
// budget_full (counted as arp_hold_budget); each queue keeps its own limit
// (arp_hold_full); and what is held returns to zero as entries resolve or go.
TEST(ArpTable, HoldBudgetBoundsAllQueuesTogether) {
  pool();
  auto made = ArpTable::create({64, 4, 1, /*hold_total=*/10});
  ASSERT_TRUE(made.ok()) << made.error();
  auto& t = *made;
  EXPECT_EQ(t->hold_budget(), 10u);
  bool created = false;
  std::vector<int32_t> slots;
  for (uint32_t a = 1; a <= 8; ++a)
    slots.push_back(t->find_or_create(0, a, Link::make({}, State::incomplete), 0, &created));
  DropCounters drops;
  unsigned taken = 0;
  Link link;
  // Three packets for each of 8 neighbours: 24 offered, 10 fit.
  for (int32_t s : slots)
    for (int i = 0; i < 3; ++i) {
      rte_mbuf* m = rte_pktmbuf_alloc(pool());
      const Hold h = t->hold(s, m, &link);
      if (h == Hold::taken) {
        ++taken;
        continue;
      }
      EXPECT_NE(h, Hold::resolved);
      drops.inc(hold_drop_reason(h));
      rte_pktmbuf_free(m);
    }
  EXPECT_EQ(taken, 10u);
  EXPECT_EQ(t->held_total(), 10u);
  EXPECT_EQ(drops.get(DropReason::arp_hold_budget), 14u) << "exactly the overflow, under its own name";
  EXPECT_EQ(drops.get(DropReason::arp_hold_full), 0u);
  EXPECT_EQ(drop_reason_name(DropReason::arp_hold_budget), "arp_hold_budget");
  bool full = false;
  rte_mbuf* extra = rte_pktmbuf_alloc(pool());
  EXPECT_FALSE(t->hold(slots[5], extra, &link, &full));
  EXPECT_TRUE(full) << "the bool form reports the budget as full";

  // Neighbour 1 answers: its 3 packets leave and give their room back.
  unsigned released = 0;
  t->confirm(slots[0], mac(1), 1, [&](rte_mbuf** held, uint16_t n, const rte_ether_addr&) {
    released += n;
    rte_pktmbuf_free_bulk(held, n);
  });
  EXPECT_EQ(released, 3u);
  EXPECT_EQ(t->held_total(), 7u);
  EXPECT_EQ(t->hold(slots[0], extra, &link), Hold::resolved) << "a resolved entry holds nothing";
  // Neighbour 4 (1 held) takes 3 more: then its own queue of 4 is full first.
  for (int i = 0; i < 3; ++i) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool());
    ASSERT_EQ(t->hold(slots[3], m, &link), Hold::taken);
  }
  EXPECT_EQ(t->hold(slots[3], extra, &link), Hold::queue_full);
  EXPECT_EQ(hold_drop_reason(Hold::queue_full), DropReason::arp_hold_full);
  EXPECT_EQ(t->held_total(), 10u);
  EXPECT_EQ(t->hold(slots[6], extra, &link), Hold::budget_full);
  rte_pktmbuf_free(extra);

  // Neighbour 2 fails to answer (removed with its 3 packets), the rest are confirmed.
  unsigned disposed = 0;
  t->remove(slots[1], [&](rte_mbuf** held, uint16_t n) {
    disposed += n;
    rte_pktmbuf_free_bulk(held, n);
  });
  EXPECT_EQ(disposed, 3u);
  EXPECT_EQ(t->held_total(), 7u);
  for (std::size_t i = 2; i < slots.size(); ++i)
    t->confirm(slots[i], mac(2), 2, [&](rte_mbuf** held, uint16_t n, const rte_ether_addr&) {
      rte_pktmbuf_free_bulk(held, n);
    });
  EXPECT_EQ(t->held_total(), 0u) << "nothing held once every entry resolved or went";
  EXPECT_EQ(rte_mempool_avail_count(pool()), pool()->size);

  // 0 (the default): only the per-entry bound, capacity x hold_packets in all.
  EXPECT_EQ(table(64, 4)->hold_budget(), 256u);
}

// Workers holding packets on their own neighbours at once never take more
// than the budget between them: one atomic, reserved with a compare-and-swap.
TEST(ArpTable, HoldBudgetIsExactWithConcurrentHolders) {
  constexpr unsigned kThreads = 3, kPerThread = 120, kBudget = 100;
  pool();
  auto made = ArpTable::create({64, 16, kThreads, kBudget});
  ASSERT_TRUE(made.ok()) << made.error();
  auto& t = *made;
  bool created = false;
  std::vector<std::vector<int32_t>> own(kThreads);
  std::vector<std::vector<rte_mbuf*>> pkts(kThreads);
  for (unsigned w = 0; w < kThreads; ++w)
    for (uint32_t a = 0; a < 8; ++a) {
      own[w].push_back(t->find_or_create(0, 100 * (w + 1) + a, Link::make({}, State::incomplete), 0, &created));
      for (unsigned i = 0; i < kPerThread / 8; ++i) pkts[w].push_back(rte_pktmbuf_alloc(pool()));
    }
  std::atomic<unsigned> taken{0}, over{0};
  std::vector<std::thread> threads;
  for (unsigned w = 0; w < kThreads; ++w)
    threads.emplace_back([&, w] {
      Link link;
      for (std::size_t i = 0; i < pkts[w].size(); ++i) {
        const Hold h = t->hold(own[w][i % 8], pkts[w][i], &link);
        if (h == Hold::taken) {
          taken.fetch_add(1);
          pkts[w][i] = nullptr;
        } else if (h == Hold::budget_full) {
          over.fetch_add(1);
        }
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(taken.load(), kBudget);
  EXPECT_EQ(over.load(), kThreads * kPerThread - kBudget);
  EXPECT_EQ(t->held_total(), kBudget);
  for (auto& v : pkts)
    for (auto* m : v)
      if (m) rte_pktmbuf_free(m);
  for (auto& v : own)
    for (int32_t s : v) t->remove(s, [](rte_mbuf** held, uint16_t n) { rte_pktmbuf_free_bulk(held, n); });
  EXPECT_EQ(t->held_total(), 0u);
  EXPECT_EQ(rte_mempool_avail_count(pool()), pool()->size);
}

// A control-plane walk (telemetry, `ngstack show`) is an RCU reader: a slot
// removed while it walks is not reused until it ends, so the entry it may be
// reading cannot be rewritten under it.
TEST(ArpTable, WalkHoldsRemovedSlotsUntilItEnds) {
  auto t = table(16);
  bool created = false;
  auto add = [&](uint32_t a) { return t->find_or_create(0, a, Link::make(mac(1), State::reachable), 0, &created); };
  auto remove = [&](int32_t slot) { t->remove(slot, [](rte_mbuf**, uint16_t) {}); };
  const int32_t victim = add(1);
  ASSERT_NE(victim, RcuTable::kNone);
  std::vector<int32_t> others;
  for (uint32_t a = 2; a <= 5; ++a) others.push_back(add(a));
  // Freed slots are reused last-freed first: `count` new entries reach the victim's if it is free.
  auto reused_by_new_entries = [&](uint32_t first_addr, uint32_t count) {
    bool reused = false;
    for (uint32_t a = first_addr; a < first_addr + count; ++a) reused |= add(a) == victim;
    return reused;
  };
  {
    const RcuTable::Walk walk(t->index());
    remove(victim);
    // More removals run the reclaimer: with no worker online, only the walk
    // keeps the victim's slot from being due.
    for (int32_t s : others) remove(s);
    EXPECT_FALSE(reused_by_new_entries(100, 8)) << "a slot removed during a walk was reused before the walk ended";
  }
  for (uint32_t a = 100; a < 108; ++a) remove(t->find(0, a));
  EXPECT_TRUE(reused_by_new_entries(200, 16)) << "after the walk the slot is reused";
}

// The MAC every test neighbour `addr` has: an identity beside the address.
rte_ether_addr mac_of(uint32_t addr) {
  return rte_ether_addr{{0x02, 0x00, static_cast<uint8_t>(addr >> 24), static_cast<uint8_t>(addr >> 16),
                         static_cast<uint8_t>(addr >> 8), static_cast<uint8_t>(addr)}};
}

// Whether the entry in `slot` still belongs to neighbour (port 0, addr):
// the slot's key, the entry's address and port, and its MAC (unless the
// entry was removed meanwhile, which leaves the link dead).
bool belongs_to(const ArpTable& t, int32_t slot, uint32_t addr) {
  const Neighbor& n = t.at(slot);
  const Link l{n.link.load(std::memory_order_acquire)};
  const rte_ether_addr want = mac_of(addr);
  const rte_ether_addr got = l.mac();
  return t.index().key_of(slot) == ArpTable::key(0, addr) && n.addr == addr && n.port == 0 &&
         (l.state() == State::dead || rte_is_same_ether_addr(&got, &want));
}

// Readers look neighbours up while a writer replaces them as fast as it can
// (remove one, learn another: with a last-in first-out free list the new
// entry takes the slot just freed, once nothing can read it any more). Each
// reader stays in its read-side section a while after its lookup, reading
// the entry again and again: until its next quiescent report, the slot must
// keep showing the neighbour it looked up, however often that neighbour is
// removed meanwhile. Reusing a slot before the grace period shows another
// neighbour's address here within milliseconds.
TEST(ArpTable, ConcurrentLearnLookupAndRemove) {
  constexpr unsigned kReaders = 2;
  constexpr unsigned kKeys = 16;
  auto t = table(64, 4, kReaders);
  const uint64_t hz = rte_get_tsc_hz();
  const uint64_t spin = hz / 50000;  // 20 us inside each read-side section
  std::array<std::atomic<uint32_t>, kKeys> current{};  // the neighbour at each index
  bool created = false;
  for (uint32_t i = 0; i < kKeys; ++i) {
    current[i] = 1 + i;
    ASSERT_NE(t->find_or_create(0, 1 + i, Link::make(mac_of(1 + i), State::reachable), 0, &created), RcuTable::kNone);
  }
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> checked{0}, wrong{0}, replaced{0}, refused{0};
  std::atomic<uint32_t> first_looked_up{0}, first_seen{0};
  std::vector<std::thread> threads;
  for (unsigned r = 0; r < kReaders; ++r)
    threads.emplace_back([&, r] {
      t->index().reader_online(r);
      uint32_t x = 7 + r;
      while (!stop.load(std::memory_order_relaxed)) {
        x = x * 1103515245u + 12345u;
        const uint32_t a = current[(x >> 16) % kKeys].load(std::memory_order_relaxed);
        const int32_t s = t->find(0, a);
        if (s != RcuTable::kNone) {
          const uint64_t until = rte_rdtsc() + spin;
          do {
            if (!belongs_to(*t, s, a) && wrong.fetch_add(1) == 0) {
              first_looked_up = a;
              first_seen = t->at(s).addr;
            }
            checked.fetch_add(1, std::memory_order_relaxed);
            rte_pause();
          } while (rte_rdtsc() < until);
        }
        t->index().quiescent(r);
      }
      t->index().reader_offline(r);
    });
  // The writer is the control path (no RCU reader): it looks slots up under
  // the writer lock only (remove_entry), and learns with find_or_create. It
  // replaces a batch of neighbours, then waits for a grace period, so that
  // what it freed is due for reuse before the next batch: slots come back
  // only at a removal, and a writer that outran the readers would find the
  // free list empty.
  threads.emplace_back([&] {
    uint32_t x = 99, next = 1000;
    rte_rcu_qsbr* qsbr = t->index().qsbr();
    while (!stop.load(std::memory_order_relaxed)) {
      for (int b = 0; b < 32; ++b) {
        x = x * 1103515245u + 12345u;
        const unsigned i = (x >> 16) % kKeys;
        const uint32_t fresh = next++;
        t->remove_entry(0, current[i].load(std::memory_order_relaxed));
        if (t->find_or_create(0, fresh, Link::make(mac_of(fresh), State::reachable), 0, &created) == RcuTable::kNone)
          refused.fetch_add(1);
        current[i].store(fresh, std::memory_order_relaxed);
        replaced.fetch_add(1, std::memory_order_relaxed);
      }
      const uint64_t token = rte_rcu_qsbr_start(qsbr);
      while (!stop.load(std::memory_order_relaxed) && rte_rcu_qsbr_check(qsbr, token, false) == 0)
        std::this_thread::yield();
    }
  });
  // A control-plane walker (telemetry, `ngstack show`) reads every live
  // entry while slots are removed and reused: inside its Walk no entry it
  // reads changes under it, so each entry's fields keep matching its key.
  std::atomic<uint64_t> walked{0}, torn{0};
  threads.emplace_back([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      const RcuTable::Walk walk(t->index());
      for (unsigned s = 0; s < t->slots(); ++s) {
        const auto slot = static_cast<int32_t>(s);
        if (!t->index().live(slot)) continue;
        const auto addr = static_cast<uint32_t>(t->index().key_of(slot));
        const uint64_t until = rte_rdtsc() + spin / 8;
        do {
          if (!belongs_to(*t, slot, addr)) torn.fetch_add(1);
          rte_pause();
        } while (rte_rdtsc() < until);
        walked.fetch_add(1, std::memory_order_relaxed);
      }
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  stop = true;
  for (auto& th : threads) th.join();
  // Each batch waits for every reader: on a loaded 2-core machine that is a
  // scheduler time slice, so a few hundred batches a second at best.
  EXPECT_GT(replaced.load(), 100u) << "the writer replaced neighbours";
  EXPECT_EQ(refused.load(), 0u) << "a new neighbour found no free slot";
  EXPECT_GT(checked.load(), 1000u) << "the readers read entries";
  EXPECT_EQ(wrong.load(), 0u) << "a reader that looked up neighbour " << first_looked_up.load()
                              << " read a slot that shows neighbour " << first_seen.load()
                              << " before its next quiescent report: the slot was reused within the grace period";
  EXPECT_GT(walked.load(), 10u) << "the walker read entries";
  EXPECT_EQ(torn.load(), 0u) << "a walked entry changed under the walk";
}

}  // namespace
}  // namespace ngstack::stack::arp
