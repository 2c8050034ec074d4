// The ARP cache and the RCU table under it: states, hold queues, release
// order, removal with reclamation after a grace period, and concurrent
// learning from several threads.
#include <gtest/gtest.h>
#include <rte_mbuf.h>

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

// Several workers learn and look up at once while one ages entries out: no
// lookup ever returns a slot that holds another neighbour's address.
TEST(ArpTable, ConcurrentLearnLookupAndRemove) {
  constexpr unsigned kReaders = 3;
  auto t = table(256, 4, kReaders);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> wrong{0}, hits{0};
  std::vector<std::thread> threads;
  for (unsigned r = 0; r < kReaders; ++r)
    threads.emplace_back([&, r] {
      t->index().reader_online(r);
      uint32_t a = r;
      while (!stop.load(std::memory_order_relaxed)) {
        for (int i = 0; i < 64; ++i) {
          a = (a * 1103515245u + 12345u) % 512;
          bool created = false;
          const int32_t s = t->find_or_create(0, a, Link::make(mac(static_cast<uint8_t>(a)), State::reachable), 0, &created);
          if (s == RcuTable::kNone) continue;
          hits.fetch_add(1, std::memory_order_relaxed);
          if (t->at(s).addr != a && t->index().live(s) && t->find(0, a) == s) wrong.fetch_add(1);
        }
        t->index().quiescent(r);
      }
      t->index().reader_offline(r);
    });
  // A control-plane walker (telemetry, `ngstack show`) reads every live
  // entry while slots are removed and reused: inside its Walk no entry it
  // reads changes under it, so each entry's fields match its key.
  std::atomic<uint64_t> walked{0}, torn{0};
  threads.emplace_back([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      const RcuTable::Walk walk(t->index());
      for (unsigned s = 0; s < t->slots(); ++s) {
        const auto slot = static_cast<int32_t>(s);
        if (!t->index().live(slot)) continue;
        const uint64_t k = t->index().key_of(slot);
        const Neighbor& n = t->at(slot);
        const uint16_t port = n.port;
        const uint32_t addr = n.addr;
        // Now and then give the writer time to remove the slot and a reader
        // to reuse it (a grace period needs every worker's quiescent report).
        if (s % 16 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
        if (ArpTable::key(port, addr) != k || n.addr != addr || n.port != port) torn.fetch_add(1);
        walked.fetch_add(1, std::memory_order_relaxed);
      }
    }
  });
  for (int round = 0; round < 200; ++round) {
    for (unsigned s = 0; s < t->slots(); ++s)
      if (t->index().live(static_cast<int32_t>(s)) && (s + static_cast<unsigned>(round)) % 3 == 0)
        t->remove(static_cast<int32_t>(s), [](rte_mbuf**, uint16_t) {});
    std::this_thread::yield();
  }
  stop = true;
  for (auto& th : threads) th.join();
  EXPECT_GT(hits.load(), 1000u);
  EXPECT_EQ(wrong.load(), 0u);
  EXPECT_GT(walked.load(), 10u) << "the walker read entries";
  EXPECT_EQ(torn.load(), 0u) << "a walked entry changed under the walk";
}

}  // namespace
}  // namespace ngstack::stack::arp
