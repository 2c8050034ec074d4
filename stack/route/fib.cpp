#include "stack/route/fib.hpp"

#include <rte_errno.h>
#include <rte_memory.h>

#include <atomic>

namespace ngstack::stack::route {

Result<Fib> Fib::create(unsigned max_routes, unsigned long_prefixes) {
  static std::atomic<unsigned> serial{0};
  const std::string name = "ngs_fib" + std::to_string(serial.fetch_add(1));
  rte_fib_conf conf{};
  conf.type = RTE_FIB_DIR24_8;
  conf.default_nh = kNoRoute;
  conf.max_routes = static_cast<int>(std::max(max_routes, 16u));
  conf.dir24_8.nh_sz = RTE_FIB_DIR24_8_4B;
  conf.dir24_8.num_tbl8 = std::max(long_prefixes + 64, 256u);
  Fib f;
  f.fib_ = rte_fib_create(name.c_str(), SOCKET_ID_ANY, &conf);
  if (!f.fib_)
    return Error{"cannot create the FIB for " + std::to_string(max_routes) + " routes (" + rte_strerror(rte_errno) +
                 "): it needs about 64 MB plus 1 KB per prefix longer than /24; raise eal.memory_mb"};
  return f;
}

Fib::~Fib() {
  if (fib_) rte_fib_free(fib_);
}

Status Fib::add(uint32_t prefix, uint8_t len, const NextHop& nh) {
  uint64_t id;
  if (auto it = ids_.find(nh); it != ids_.end()) {
    id = it->second;
  } else {
    id = nexthops_.size();
    nexthops_.push_back(nh);
    ids_[nh] = id;
  }
  if (int rc = rte_fib_add(fib_, prefix, len, id); rc != 0) return Error{std::string("rte_fib_add: ") + rte_strerror(-rc)};
  ++routes_;
  return Ok{};
}

}  // namespace ngstack::stack::route
