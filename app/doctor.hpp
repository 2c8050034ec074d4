// `ngstack doctor`: is this machine ready for ngstack, and if not, what fixes
// it. Run before the first bare-metal start and when a start fails.
//
// Every check is a pure function of a HostView (the kernel's files under a
// root directory) and a few facts about this process; nothing starts DPDK, so
// the checks run anywhere and tests feed them fake /sys and /proc trees. Each
// check yields one line: ok, warn or FAIL, what it saw, and for warn/FAIL the
// exact command that fixes it. Groups:
//
//   cpu     instruction sets (SSE4.2 required), lcores exist, SMT siblings of
//           workers, isolcpus/nohz_full/rcu_nocbs, frequency governor
//   memory  free hugepages per NUMA node against eal.memory_mb, hugetlbfs
//           mounted, 1 GiB pages
//   nic     per PCI port: present, driver, IOMMU and vfio-pci, NUMA node
//           against its polling workers, link; per vdev port: nothing, or the
//           af_packet interface exists
//   kernel  root, irqbalance, the DPDK runtime directory, RLIMIT_MEMLOCK
//
// Without a config only the machine checks run (the rest need to know the
// lcores, memory and ports). Exit status: 0 when nothing FAILs, else 1.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "app/host_view.hpp"
#include "conf/config.hpp"

namespace ngstack::app {

enum class CheckStatus { ok, warn, fail };
const char* check_status_name(CheckStatus s);  // "ok", "warn", "FAIL"

struct Check {
  std::string group;  // cpu, memory, nic, kernel, config
  std::string name;
  CheckStatus status = CheckStatus::ok;
  std::string saw;
  std::string fix;  // the command that fixes it; empty for ok
};

// What the checks know about this process (not read from files, so that a
// test can say "not root" without being so).
struct ProcessFacts {
  uid_t euid = 0;
  std::optional<uint64_t> memlock_bytes;  // RLIMIT_MEMLOCK; nullopt: unlimited
  std::set<unsigned> cpus;                // CPUs this process may run on
  // This process; with a fake root the CPUs are the tree's online list.
  static ProcessFacts current(const HostView& host);
};

struct DoctorInput {
  const HostView* host = nullptr;
  ProcessFacts facts;
  const conf::Config* config = nullptr;  // null: machine checks only
  std::string config_path;               // for the fix commands
};

std::vector<Check> check_cpu(const DoctorInput& in);
std::vector<Check> check_memory(const DoctorInput& in);
std::vector<Check> check_nics(const DoctorInput& in);
std::vector<Check> check_kernel(const DoctorInput& in);

struct DoctorReport {
  std::vector<Check> checks;
  bool ok() const;  // no check FAILed
  const Check* find(const std::string& group, const std::string& name) const;
};

DoctorReport run_doctor(const DoctorInput& in);

// One line per check, a count and, without a config, which checks need one.
std::string format_text(const DoctorReport& r, bool have_config);
// {"checks":[{"group","name","status","saw","fix"}...],"ok":bool}; status is
// "ok", "warn" or "fail".
std::string format_json(const DoctorReport& r);

// The whole command: loads the config (a load error is a FAIL line), runs the
// checks under `root`, prints, returns the exit status (0 or 1).
int doctor_main(const std::string& config_path, bool json, const std::string& root);

}  // namespace ngstack::app
