// The IPv4 FIB: longest-prefix match with DPDK's rte_fib (DIR24_8), over a
// next-hop table of our own.
//
// rte_fib maps a prefix to a 64-bit value; ngstack stores an index into
// `nexthops_` there (0: no route). Routes that share a gateway share one next
// hop. A connected route's next hop has no gateway: the destination itself is
// the neighbour to resolve.
//
// The FIB is built once, before workers start, and read-only afterwards, so
// lookups need no synchronisation. DIR24_8 with 4-byte next hops costs a
// 64 MB first-level table and 1 KB per /25-or-longer prefix group (tbl8).
#pragma once

#include <rte_fib.h>

#include <cstdint>
#include <map>
#include <string>
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

class Fib {
 public:
  static constexpr uint64_t kNoRoute = 0;

  // `max_routes`: routes that will be added; `long_prefixes`: how many are
  // longer than /24 (each needs a tbl8 group).
  static Result<Fib> create(unsigned max_routes, unsigned long_prefixes);
  Fib(Fib&& o) noexcept : fib_(o.fib_), nexthops_(std::move(o.nexthops_)), ids_(std::move(o.ids_)), routes_(o.routes_) {
    o.fib_ = nullptr;
  }
  Fib& operator=(Fib&&) = delete;
  ~Fib();

  // Addresses and prefixes in host byte order.
  Status add(uint32_t prefix, uint8_t len, const NextHop& nh);

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
  unsigned routes() const { return routes_; }
  unsigned nexthops() const { return static_cast<unsigned>(nexthops_.size() - 1); }

 private:
  Fib() = default;
  rte_fib* fib_ = nullptr;
  std::vector<NextHop> nexthops_{NextHop{}};  // [0]: no route
  std::map<NextHop, uint64_t> ids_;
  unsigned routes_ = 0;
};

}  // namespace ngstack::stack::route
