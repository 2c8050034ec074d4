#include "app/preflight.hpp"

#include <fstream>
#include <sstream>

namespace ngstack::app {

Status check_root(uid_t euid) {
  if (euid == 0) return Ok{};
  return Error{"ngstack must run as root: DPDK needs raw sockets, hugepages and /var/run/dpdk "
               "(try: sudo ngstack ...)"};
}

Status check_hugepages(const std::string& meminfo, const std::string& mounts) {
  long free_pages = 0;
  std::istringstream in(meminfo);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("HugePages_Free:", 0) == 0) free_pages = std::strtol(line.c_str() + 15, nullptr, 10);
  const bool mounted = mounts.find(" hugetlbfs ") != std::string::npos;
  if (free_pages > 0 && mounted) return Ok{};
  std::string why = free_pages <= 0 ? "no free hugepages are reserved" : "no hugetlbfs is mounted";
  return Error{why +
               "; reserve and mount some (echo 1024 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages; "
               "mount -t hugetlbfs nodev /dev/hugepages, or run deploy/hugepages.sh), "
               "or set eal.no_huge: true to run on ordinary memory"};
}

std::string read_text_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace ngstack::app
