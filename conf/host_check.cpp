#include "conf/host_check.hpp"

#include <sched.h>

namespace ngstack::conf {

std::set<unsigned> usable_cpus() {
  std::set<unsigned> out;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return out;
  for (unsigned c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) out.insert(c);
  return out;
}

std::string format_cpu_list(const std::set<unsigned>& cpus) {
  std::string s;
  for (auto it = cpus.begin(); it != cpus.end();) {
    unsigned lo = *it, hi = lo;
    ++it;
    while (it != cpus.end() && *it == hi + 1) hi = *it++;
    if (!s.empty()) s += ",";
    s += std::to_string(lo);
    if (hi != lo) {
      s += hi == lo + 1 ? ',' : '-';  // a pair reads better as "1,2"
      s += std::to_string(hi);
    }
  }
  return s;
}

Status check_lcores(const Config& cfg, const std::set<unsigned>& cpus) {
  auto missing = [&](unsigned lcore) -> std::string {
    const unsigned cpu = cfg.eal.cpu_of(lcore);
    if (cpus.count(cpu)) return "";
    const std::string what = cpu == lcore ? "lcore " + std::to_string(lcore)
                                          : "CPU " + std::to_string(cpu) + " (of lcore " + std::to_string(lcore) + ")";
    return ": " + what + " does not exist on this machine (usable CPUs: " + format_cpu_list(cpus) + ")";
  };
  if (auto m = missing(cfg.eal.cores.front()); !m.empty()) return Error{cfg.eal.cores_pos.where() + m};
  for (const auto& w : cfg.workers.list)
    if (auto m = missing(w.lcore); !m.empty()) return Error{w.pos.where() + m};
  return Ok{};
}

}  // namespace ngstack::conf
