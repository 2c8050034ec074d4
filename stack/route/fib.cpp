#include "stack/route/fib.hpp"

#include <rte_errno.h>
#include <rte_memory.h>

namespace ngstack::stack::route {

namespace {
std::string prefix_text(uint32_t prefix, uint8_t len) {
  return std::to_string(prefix >> 24) + "." + std::to_string((prefix >> 16) & 0xff) + "." +
         std::to_string((prefix >> 8) & 0xff) + "." + std::to_string(prefix & 0xff) + "/" + std::to_string(len);
}
}  // namespace

Result<std::unique_ptr<Fib>> Fib::create(unsigned max_routes, unsigned long_prefixes) {
  static std::atomic<unsigned> serial{0};
  const std::string name = "ngs_fib" + std::to_string(serial.fetch_add(1));
  rte_fib_conf conf{};
  conf.type = RTE_FIB_DIR24_8;
  conf.default_nh = kNoRoute;
  conf.max_routes = static_cast<int>(std::max(max_routes, 16u) + kRuntimeRoutes);
  conf.dir24_8.nh_sz = RTE_FIB_DIR24_8_4B;
  conf.dir24_8.num_tbl8 = std::max(long_prefixes + 64, 256u) + kRuntimeTbl8;
  std::unique_ptr<Fib> f(new Fib());
  // Every config route may bring a next hop of its own; id 0 is "no route".
  f->nh_capacity_ = std::max(max_routes, 16u) + kRuntimeNextHops + 1;
  f->nexthops_ = std::make_unique<NextHop[]>(f->nh_capacity_);
  f->fib_ = rte_fib_create(name.c_str(), SOCKET_ID_ANY, &conf);
  if (!f->fib_)
    return Error{"cannot create the FIB for " + std::to_string(max_routes) + " routes (" + rte_strerror(rte_errno) +
                 "): it needs about 64 MB plus 1 KB per prefix longer than /24; raise eal.memory_mb"};
  return f;
}

Fib::~Fib() {
  if (fib_) rte_fib_free(fib_);
}

void Fib::grace_period() const {
  // Every online reader passes a quiescent state: none still holds a tbl24
  // entry or tbl8 group it read before the change.
  if (qsbr_) rte_rcu_qsbr_synchronize(qsbr_, RTE_QSBR_THRID_INVALID);
}

Status Fib::add(uint32_t prefix, uint8_t len, const NextHop& nh, bool connected) {
  std::lock_guard lock(mutex_);
  if (len > 32) return Error{"prefix length " + std::to_string(len) + " is not in [0, 32]"};
  if (auto it = table_.find({prefix, len}); it != table_.end())
    return Error{"a " + std::string(it->second.connected ? "connected" : "static") + " route for " +
                 prefix_text(prefix, len) + " exists already"};
  uint64_t id;
  if (auto it = ids_.find(nh); it != ids_.end()) {
    id = it->second;
  } else {
    const unsigned n = nnexthops_.load(std::memory_order_relaxed);
    if (n >= nh_capacity_)
      return Error{"the next-hop table is full (" + std::to_string(nh_capacity_ - 1) +
                   " distinct next hops since start)"};
    id = n;
    nexthops_[id] = nh;
    // The next hop is in place before any FIB entry names it.
    nnexthops_.store(n + 1, std::memory_order_release);
    ids_[nh] = id;
  }
  std::atomic_thread_fence(std::memory_order_release);
  if (int rc = rte_fib_add(fib_, prefix, len, id); rc != 0)
    return Error{rc == -ENOSPC ? "the FIB is full (routes or /25+ groups)" : std::string("rte_fib_add: ") + rte_strerror(-rc)};
  table_[{prefix, len}] = Route{prefix, len, id, nh, connected};
  nroutes_.fetch_add(1, std::memory_order_relaxed);
  grace_period();  // an add that leaves a tbl8 group uniform recycles it too
  return Ok{};
}

Status Fib::remove(uint32_t prefix, uint8_t len) {
  std::lock_guard lock(mutex_);
  auto it = table_.find({prefix, len});
  if (it == table_.end()) return Error{"no route for " + prefix_text(prefix, len)};
  if (it->second.connected) return Error{prefix_text(prefix, len) + " is a connected route: it cannot be deleted"};
  if (int rc = rte_fib_delete(fib_, prefix, len); rc != 0)
    return Error{std::string("rte_fib_delete: ") + rte_strerror(-rc)};
  table_.erase(it);
  nroutes_.fetch_sub(1, std::memory_order_relaxed);
  // A tbl8 group this freed may be reused by the next add: wait until no
  // reader can still be inside it.
  grace_period();
  return Ok{};
}

std::vector<Route> Fib::list() const {
  std::lock_guard lock(mutex_);
  std::vector<Route> out;
  out.reserve(table_.size());
  for (const auto& [k, r] : table_) out.push_back(r);
  return out;
}

bool Fib::connected_route(uint32_t addr, Route* out) const {
  std::lock_guard lock(mutex_);
  bool found = false;
  for (const auto& [k, r] : table_) {
    if (!r.connected) continue;
    const uint32_t mask = r.len ? ~uint32_t{0} << (32 - r.len) : 0;
    if ((addr & mask) == r.prefix && (!found || r.len > out->len)) {
      *out = r;
      found = true;
    }
  }
  return found;
}

}  // namespace ngstack::stack::route
