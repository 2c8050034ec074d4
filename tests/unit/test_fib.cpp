// The FIB: routes added and removed while other threads look up. Every answer
// a reader gets must be a next hop that was valid for its destination at some
// point: no route, the covering /16, or a route of the destination's own /24
// that holds it; never an id past the next-hop table, never another /24's
// next hop (what a tbl8 group freed by a delete and reused by the next add
// would give a reader still inside it without the grace period).
#include <gtest/gtest.h>
#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "stack/route/fib.hpp"
#include "tests/lib/eal_env.hpp"

namespace ngstack::stack::route {
namespace {

constexpr uint32_t kBase = 0xc6120000;  // 198.18.0.0/16
constexpr unsigned kSlash24s = 8;       // 198.18.0.0/24 .. 198.18.7.0/24
constexpr uint16_t kCovering = 0xffff;  // the port of the /16's next hop

std::unique_ptr<Fib> make_fib() {
  test::pool("fib_pool", 255, 256);  // starts EAL: the FIB lives in its memory
  auto f = Fib::create(16, 16);
  EXPECT_TRUE(f.ok()) << (f.ok() ? "" : f.error());
  return std::move(*f);
}

uint32_t mask(uint8_t len) { return len ? ~uint32_t{0} << (32 - len) : 0; }

TEST(Fib, AddRemoveListAndErrors) {
  auto fib = make_fib();
  ASSERT_TRUE(fib->add(0xc6120100, 24, {NextHopKind::forward, 0, 0}, true).ok());
  ASSERT_TRUE(fib->add(0xc6130000, 16, {NextHopKind::forward, 0, 0xc6120102}).ok());
  ASSERT_TRUE(fib->add(0xc6138000, 25, {NextHopKind::blackhole, 0, 0}).ok());
  EXPECT_EQ(fib->routes(), 3u);
  EXPECT_EQ(fib->nexthops(), 3u);
  EXPECT_EQ(fib->nexthop(fib->lookup(0xc6138001)).kind, NextHopKind::blackhole);
  EXPECT_EQ(fib->nexthop(fib->lookup(0xc6130001)).gateway, 0xc6120102u);

  auto dup = fib->add(0xc6130000, 16, {NextHopKind::reject, 0, 0});
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.error().find("exists already"), std::string::npos) << dup.error();
  auto conn = fib->remove(0xc6120100, 24);
  ASSERT_FALSE(conn.ok());
  EXPECT_NE(conn.error().find("connected route"), std::string::npos) << conn.error();
  auto none = fib->remove(0xc6140000, 16);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error(), "no route for 198.20.0.0/16");

  ASSERT_TRUE(fib->remove(0xc6138000, 25).ok());
  EXPECT_EQ(fib->nexthop(fib->lookup(0xc6138001)).gateway, 0xc6120102u) << "the /16 again";
  ASSERT_TRUE(fib->remove(0xc6130000, 16).ok());
  EXPECT_EQ(fib->lookup(0xc6130001), Fib::kNoRoute);
  EXPECT_EQ(fib->routes(), 1u);
  const auto routes = fib->list();
  ASSERT_EQ(routes.size(), 1u);
  EXPECT_TRUE(routes[0].connected);
  Route r;
  EXPECT_TRUE(fib->connected_route(0xc6120163, &r));
  EXPECT_FALSE(fib->connected_route(0xc6130001, &r));
  EXPECT_EQ(fib->nexthops(), 3u) << "next hops are never freed";

  ASSERT_TRUE(fib->add(0, 0, {NextHopKind::reject, 0, 0}).ok()) << "a default route";
  EXPECT_EQ(fib->nexthop(fib->lookup(0x08080808)).kind, NextHopKind::reject);
  EXPECT_EQ(fib->nexthop(fib->lookup(0xc6120163)).kind, NextHopKind::forward) << "longest match wins";
  ASSERT_TRUE(fib->remove(0, 0).ok());
  EXPECT_EQ(fib->lookup(0x08080808), Fib::kNoRoute);
}

// A route of /24 `k`: its next hop names k and the prefix length in `port`,
// and the prefix in `gateway`, so a reader can tell whether it holds a destination.
struct TestRoute {
  uint32_t prefix;
  uint8_t len;
  NextHop nh;
};

TEST(Fib, LiveAddRemoveWithConcurrentReaders) {
  auto fib = make_fib();
  // More readers than this machine may have cores: a reader preempted
  // between its tbl24 and tbl8 reads is the case the grace period is for.
  constexpr unsigned kReaders = 4;
  const std::size_t qsz = rte_rcu_qsbr_get_memsize(kReaders);
  auto* qsbr = static_cast<rte_rcu_qsbr*>(rte_zmalloc(nullptr, qsz, RTE_CACHE_LINE_SIZE));
  ASSERT_NE(qsbr, nullptr);
  ASSERT_EQ(rte_rcu_qsbr_init(qsbr, kReaders), 0);
  for (unsigned r = 0; r < kReaders; ++r) rte_rcu_qsbr_thread_register(qsbr, r);
  fib->attach_qsbr(qsbr);

  // The pool of routes the writer draws from: /25../28 at a few offsets in
  // each /24 (a bounded set: next hops are never freed).
  std::vector<std::vector<TestRoute>> pool(kSlash24s);
  for (unsigned k = 0; k < kSlash24s; ++k)
    for (uint8_t len = 25; len <= 28; ++len)
      for (uint32_t off : {0u, 64u, 128u, 200u}) {
        const uint32_t prefix = (kBase | k << 8 | off) & mask(len);
        pool[k].push_back({prefix, len, {NextHopKind::forward, static_cast<uint16_t>(k * 64 + len), prefix}});
      }
  const NextHop covering{NextHopKind::forward, kCovering, kBase};
  // Destinations, drawn once: the readers' loop is the lookup and the check.
  std::vector<uint32_t> dsts(1 << 14);
  std::mt19937 drng(7);
  for (auto& d : dsts) d = kBase | (drng() % kSlash24s) << 8 | (drng() & 0xff);

  std::atomic<bool> stop{false};
  std::atomic<unsigned> started{0};
  std::atomic<uint64_t> lookups{0}, bad{0};
  std::string first_bad;
  std::mutex bad_mutex;
  std::vector<std::thread> readers;
  for (unsigned t = 0; t < kReaders; ++t)
    readers.emplace_back([&, t] {
      rte_rcu_qsbr_thread_online(qsbr, t);
      uint64_t ids[64];
      uint64_t n = 0;
      std::size_t at = t * 997 % dsts.size();
      started.fetch_add(1);
      while (!stop.load(std::memory_order_relaxed)) {
        uint32_t* dst = &dsts[at];
        at = (at + 64) % dsts.size();
        fib->lookup_bulk(dst, ids, 64);
        for (unsigned i = 0; i < 64; ++i) {
          if (ids[i] == Fib::kNoRoute) continue;  // also the documented recycling transient
          std::string why;
          if (ids[i] > fib->nexthop_capacity()) {
            why = "id " + std::to_string(ids[i]) + " past the next-hop table";
          } else {
            const NextHop& nh = fib->nexthop(ids[i]);
            if (nh.port == kCovering) continue;
            const unsigned k = nh.port / 64, len = nh.port % 64;
            if (k == ((dst[i] >> 8) & 0xff) && (dst[i] & mask(static_cast<uint8_t>(len))) == nh.gateway) continue;
            why = "198.18." + std::to_string((dst[i] >> 8) & 0xff) + "." + std::to_string(dst[i] & 0xff) +
                  " got the next hop of 198.18." + std::to_string((nh.gateway >> 8) & 0xff) + "." +
                  std::to_string(nh.gateway & 0xff) + "/" + std::to_string(len);
          }
          if (bad.fetch_add(1) == 0) {
            std::lock_guard lock(bad_mutex);
            first_bad = why;
          }
        }
        n += 64;
        // Between bursts, holding nothing: as a worker between loop iterations.
        rte_rcu_qsbr_quiescent(qsbr, t);
      }
      lookups.fetch_add(n);
      rte_rcu_qsbr_thread_offline(qsbr, t);
    });
  while (started.load() < kReaders) std::this_thread::yield();

  // The writer keeps one route in every /24 but one (the hole). Each step
  // deletes the route of a /24 (freeing its tbl8 group) and adds one in the
  // hole, which takes that group: a group moves from one /24 to another at
  // every step, while readers look up in all of them. The /16 comes and goes.
  std::mt19937 rng(42);
  std::vector<const TestRoute*> current(kSlash24s, nullptr);
  for (unsigned k = 1; k < kSlash24s; ++k) {
    current[k] = &pool[k][rng() % pool[k].size()];
    ASSERT_TRUE(fib->add(current[k]->prefix, current[k]->len, current[k]->nh).ok());
  }
  unsigned hole = 0, ops = 0;
  bool have_covering = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (std::chrono::steady_clock::now() < deadline && bad.load() == 0) {
    unsigned k = rng() % kSlash24s;
    if (k == hole) k = (k + 1) % kSlash24s;
    ASSERT_TRUE(fib->remove(current[k]->prefix, current[k]->len).ok());
    current[k] = nullptr;
    current[hole] = &pool[hole][rng() % pool[hole].size()];
    ASSERT_TRUE(fib->add(current[hole]->prefix, current[hole]->len, current[hole]->nh).ok());
    hole = k;
    ops += 2;
    if (rng() % 64 == 0) {
      ASSERT_TRUE((have_covering ? fib->remove(kBase, 16) : fib->add(kBase, 16, covering)).ok());
      have_covering = !have_covering;
      ++ops;
    }
  }
  stop.store(true);
  for (auto& t : readers) t.join();
  EXPECT_EQ(bad.load(), 0u) << "first: " << first_bad << " (" << ops << " changes, " << lookups.load() << " lookups)";
  EXPECT_GT(lookups.load(), 0u);
  EXPECT_GT(ops, 20u);  // each change waits for 4 readers sharing few cores: slow here
  std::printf("[ info     ] %u route changes, %llu lookups\n", ops, static_cast<unsigned long long>(lookups.load()));
  fib.reset();
  rte_free(qsbr);
}

}  // namespace
}  // namespace ngstack::stack::route
