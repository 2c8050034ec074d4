// Checks of a Config against the machine it is about to run on, before DPDK
// starts: do the lcores exist? The device-dependent checks (queue counts, MTU)
// happen in app/ once devices are probed.
#pragma once

#include <set>
#include <string>

#include "conf/config.hpp"
#include "conf/result.hpp"

namespace ngstack::conf {

// The CPUs this process may run on (sched_getaffinity).
std::set<unsigned> usable_cpus();

// {0,1,2,3,8,10,11} -> "0-3,8,10,11", the kernel's cpulist syntax.
std::string format_cpu_list(const std::set<unsigned>& cpus);

Status check_lcores(const Config& cfg, const std::set<unsigned>& cpus);

}  // namespace ngstack::conf
