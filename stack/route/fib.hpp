// The IPv4 FIB: longest-prefix match with DPDK's rte_fib (DIR24_8), over a
// next-hop table of our own.
//
// rte_fib maps a prefix to a 64-bit value; ngstack stores an index into the
// next-hop table there (0: no route). Routes that share a gateway share one
// next hop. A connected route's next hop has no gateway: the destination
// itself is the neighbour to resolve. DIR24_8 with 4-byte next hops costs a
// 64 MB first-level table and 1 KB per /25-or-longer prefix group (tbl8).
//
// Live updates. Workers look up without locks while the control thread adds
// and removes static routes (`ngstack route add|del`). rte_fib in DPDK 22.11
// has no RCU of its own, so the rules are ours:
//  * one writer at a time (`mutex_`; the control thread also serialises its
//    commands);
//  * the next-hop table is a fixed array sized at create (config next hops +
//    kRuntimeNextHops) that never moves; a next hop is written, then a
//    release fence, then the FIB entry that names it. Next hops are never
//    freed or reused for another value (routes that share a next hop share
//    its id), so an id a reader holds always means what it meant;
//  * after every change the writer waits for an RCU QSBR grace period
//    (attach_qsbr(): the readers' quiescent-state reports) before returning.
//    DIR24_8 frees a tbl8 group when a change leaves it uniform (the delete
//    of a /25+ route, mostly) and the next add may take that group for
//    another /24; a reader that read the old tbl24 entry just before could
//    otherwise read the reused group and get another /24's next hop.
//
// One transient remains, inherent to DIR24_8: when a group is recycled it
// repoints the tbl24 entry first and zeroes the group after, so a lookup that
// read the tbl24 entry just before may read a zero, i.e. "no route", for that
// instant (counted as ipv4_no_route). Every other result is a next hop that
// was valid for the destination before or after the change.
//
// Capacity: routes and tbl8 groups are the config's plus kRuntimeRoutes and
// kRuntimeTbl8 (4 MB of tbl8 with 4-byte next hops); beyond, add fails with
// "FIB full".
#pragma once

#include <rte_fib.h>
#include <rte_rcu_qsbr.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "conf/result.hpp"

namespace ngstack::stack::route {

enum class NextHopKind : uint8_t { none, forward, blackhole, reject };

struct NextHop {
  NextHopKind kind = NextHopKind::none;
  uint16_t port = 0;     // config port index (forward)
  uint32_t gateway = 0;  // host byte order; 0: connected (the destination is on-link)
  auto operator<=>(const NextHop&) const = default;
};

struct Route {
  uint32_t prefix = 0;  // host byte order, host bits clear
  uint8_t len = 0;
  uint64_t id = 0;      // next-hop id
  NextHop nh;
  bool connected = false;  // an interface's subnet (not deletable)
};

class Fib {
 public:
  static constexpr uint64_t kNoRoute = 0;
  // Headroom for routes added while ngstack runs.
  static constexpr unsigned kRuntimeRoutes = 4096;
  static constexpr unsigned kRuntimeTbl8 = 4096;
  static constexpr unsigned kRuntimeNextHops = 4096;

  // `max_routes`: routes the config adds; `long_prefixes`: how many are
  // longer than /24 (each may need a tbl8 group). The runtime headroom comes on top.
  static Result<std::unique_ptr<Fib>> create(unsigned max_routes, unsigned long_prefixes);
  ~Fib();
  Fib(const Fib&) = delete;
  Fib& operator=(const Fib&) = delete;

  // The QSBR variable the readers report quiescent states to. Without one
  // (before workers exist, or a FIB only one thread uses) no grace period is waited.
  void attach_qsbr(rte_rcu_qsbr* v) { qsbr_ = v; }

  // --- writers (one at a time) -------------------------------------------------
  // Addresses and prefixes in host byte order. Fails if the prefix is already
  // routed (delete it first), or when the FIB or the next-hop table is full.
  Status add(uint32_t prefix, uint8_t len, const NextHop& nh, bool connected = false);
  // Fails if there is no such route, or it is connected. Returns after a grace period.
  Status remove(uint32_t prefix, uint8_t len);

  // --- readers (workers, lock-free) ----------------------------------------------
  // Next-hop ids of n destinations (host byte order), in one batched lookup.
  void lookup_bulk(uint32_t* dsts, uint64_t* ids, unsigned n) const {
    rte_fib_lookup_bulk(fib_, dsts, ids, static_cast<int>(n));
  }
  uint64_t lookup(uint32_t dst) const {
    uint64_t id = kNoRoute;
    rte_fib_lookup_bulk(fib_, &dst, &id, 1);
    return id;
  }
  const NextHop& nexthop(uint64_t id) const { return nexthops_[id]; }

  // --- control path ------------------------------------------------------------
  unsigned routes() const { return nroutes_.load(std::memory_order_relaxed); }
  unsigned nexthops() const { return nnexthops_.load(std::memory_order_acquire) - 1; }
  unsigned nexthop_capacity() const { return nh_capacity_ - 1; }
  // Every route, by prefix then length.
  std::vector<Route> list() const;
  // The connected route that holds `addr` (longest), if any.
  bool connected_route(uint32_t addr, Route* out) const;

 private:
  Fib() = default;
  void grace_period() const;

  rte_fib* fib_ = nullptr;
  rte_rcu_qsbr* qsbr_ = nullptr;
  std::unique_ptr<NextHop[]> nexthops_;  // [0]: no route; fixed size: never moves
  unsigned nh_capacity_ = 0;
  std::atomic<unsigned> nnexthops_{1};
  std::atomic<unsigned> nroutes_{0};
  mutable std::mutex mutex_;             // writers; list() and the maps below
  std::map<NextHop, uint64_t> ids_;
  std::map<std::pair<uint32_t, uint8_t>, Route> table_;
};

}  // namespace ngstack::stack::route
