#include "app/doctor.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <map>
#include <sstream>

#include "app/json.hpp"
#include "app/preflight.hpp"
#include "conf/host_check.hpp"
#include "conf/loader.hpp"

namespace ngstack::app {

const char* check_status_name(CheckStatus s) {
  switch (s) {
    case CheckStatus::ok: return "ok";
    case CheckStatus::warn: return "warn";
    case CheckStatus::fail: return "FAIL";
  }
  return "?";
}

namespace {
std::optional<unsigned> parse_unsigned(const std::string& s) {
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
  return v;
}
}  // namespace

ProcessFacts ProcessFacts::current(const HostView& host) {
  ProcessFacts f;
  f.euid = geteuid();
  rlimit rl{};
  if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) f.memlock_bytes = rl.rlim_cur;
  if (host.is_real_root()) {
    f.cpus = conf::usable_cpus();
  } else if (auto online = host.read_line("/sys/devices/system/cpu/online"); online && parse_cpu_list(*online)) {
    f.cpus = *parse_cpu_list(*online);
  } else {  // no online list: the cpuN directories
    for (const auto& e : host.list("/sys/devices/system/cpu"))
      if (e.rfind("cpu", 0) == 0)
        if (auto n = parse_unsigned(e.substr(3))) f.cpus.insert(*n);
  }
  return f;
}

bool DoctorReport::ok() const {
  return std::none_of(checks.begin(), checks.end(), [](const Check& c) { return c.status == CheckStatus::fail; });
}

const Check* DoctorReport::find(const std::string& group, const std::string& name) const {
  for (const auto& c : checks)
    if (c.group == group && c.name == name) return &c;
  return nullptr;
}

namespace {

Check ok(std::string group, std::string name, std::string saw) {
  return {std::move(group), std::move(name), CheckStatus::ok, std::move(saw), {}};
}
Check warn(std::string group, std::string name, std::string saw, std::string fix) {
  return {std::move(group), std::move(name), CheckStatus::warn, std::move(saw), std::move(fix)};
}
Check fail(std::string group, std::string name, std::string saw, std::string fix) {
  return {std::move(group), std::move(name), CheckStatus::fail, std::move(saw), std::move(fix)};
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

// "CPU 3" or "CPUs 2,3".
std::string cpus_word(const std::set<unsigned>& cpus) {
  return (cpus.size() == 1 ? "CPU " : "CPUs ") + format_cpu_list(cpus);
}

std::string cpu_path(unsigned cpu) { return "/sys/devices/system/cpu/cpu" + std::to_string(cpu); }

// NUMA node ids present (nodeN directories); empty without NUMA support.
std::vector<unsigned> numa_nodes(const HostView& host) {
  std::vector<unsigned> out;
  for (const auto& e : host.list("/sys/devices/system/node"))
    if (e.rfind("node", 0) == 0)
      if (auto n = parse_unsigned(e.substr(4))) out.push_back(*n);
  std::sort(out.begin(), out.end());
  return out;
}

// The NUMA node of a CPU: its node's cpulist, else the cpuN/nodeM link; 0
// when the kernel shows no NUMA topology (one node).
unsigned node_of_cpu(const HostView& host, unsigned cpu) {
  for (unsigned n : numa_nodes(host))
    if (auto list = host.read_line("/sys/devices/system/node/node" + std::to_string(n) + "/cpulist"))
      if (auto cpus = parse_cpu_list(*list); cpus && cpus->count(cpu)) return n;
  for (const auto& e : host.list(cpu_path(cpu)))
    if (e.rfind("node", 0) == 0)
      if (auto n = parse_unsigned(e.substr(4))) return *n;
  return 0;
}

struct Lcore {
  unsigned lcore, cpu;
};

std::vector<Lcore> lcores_of(const conf::Config& cfg) {
  std::vector<Lcore> out;
  for (unsigned l : cfg.eal.cores) out.push_back({l, cfg.eal.cpu_of(l)});
  return out;
}

std::set<unsigned> worker_cpus(const conf::Config& cfg) {
  std::set<unsigned> s;
  for (const auto& w : cfg.workers.list) s.insert(cfg.eal.cpu_of(w.lcore));
  return s;
}

std::string lcore_desc(const conf::Config& cfg, unsigned lcore) {
  const unsigned cpu = cfg.eal.cpu_of(lcore);
  return "lcore " + std::to_string(lcore) + (cpu == lcore ? "" : " (CPU " + std::to_string(cpu) + ")");
}

std::string hugepages_fix(const DoctorInput& in) {
  return in.config ? "deploy/hugepages.sh --config " + in.config_path : "deploy/hugepages.sh 1024";
}

// ---- cpu ------------------------------------------------------------------

Check cpu_flags(const HostView& host) {
  const auto cpuinfo = host.read("/proc/cpuinfo");
  if (!cpuinfo) return warn("cpu", "flags", "cannot read /proc/cpuinfo", "mount -t proc proc /proc");
  std::set<std::string> flags;
  std::istringstream in(*cpuinfo);
  std::string line;
  bool found = false;
  while (!found && std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0 || line.find(':') == std::string::npos) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    for (std::string w; words >> w;) flags.insert(w);
    found = true;
  }
  if (!found)
    return warn("cpu", "flags", "no x86 flags line in /proc/cpuinfo: cannot tell whether DPDK's build runs here",
                "run on an x86-64 CPU with SSE4.2");
  if (!flags.count("sse4_2"))
    return fail(
        "cpu", "flags",
        "no sse4_2 in /proc/cpuinfo: DPDK's x86-64 build needs SSE4.2 (it would stop with an illegal instruction)",
        "run on a CPU with SSE4.2; on a VM, expose the host CPU model (e.g. qemu -cpu host)");
  std::string saw = "sse4_2 (required) present";
  saw += flags.count("avx2") ? ", avx2" : ", no avx2 (scalar paths)";
  saw += flags.count("avx512f") ? ", avx512f" : ", no avx512";
  return ok("cpu", "flags", saw);
}

Check cpu_lcores(const DoctorInput& in) {
  const auto& cfg = *in.config;
  const std::string usable = format_cpu_list(in.facts.cpus);
  if (auto st = conf::check_lcores(cfg, in.facts.cpus); !st)
    return fail(
        "cpu", "lcores", st.error(),
        "edit eal.main_lcore, workers.lcores or eal.lcore_cpus in " + in.config_path + " to use CPUs among " + usable);
  std::set<unsigned> used;
  for (const auto& l : lcores_of(cfg)) used.insert(l.cpu);
  return ok("cpu", "lcores",
            "main lcore " + std::to_string(cfg.eal.cores.front()) + " and " + std::to_string(cfg.workers.list.size()) +
                " worker(s) on CPUs " + format_cpu_list(used) + "; " + std::to_string(in.facts.cpus.size()) +
                " CPUs usable (" + usable + ")");
}

Check cpu_smt(const DoctorInput& in) {
  const auto& cfg = *in.config;
  const unsigned main_cpu = cfg.eal.cpu_of(cfg.eal.cores.front());
  std::map<unsigned, unsigned> worker_of_cpu;  // CPU -> worker lcore
  for (const auto& w : cfg.workers.list) worker_of_cpu.emplace(cfg.eal.cpu_of(w.lcore), w.lcore);
  std::vector<std::string> problems;
  bool any_topology = false;
  for (const auto& w : cfg.workers.list) {
    const unsigned cpu = cfg.eal.cpu_of(w.lcore);
    const auto list = in.host->read_line(cpu_path(cpu) + "/topology/thread_siblings_list");
    if (!list) continue;
    any_topology = true;
    const auto siblings = parse_cpu_list(*list);
    if (!siblings) continue;
    for (unsigned s : *siblings) {
      if (s == cpu) continue;
      if (auto it = worker_of_cpu.find(s); it != worker_of_cpu.end()) {
        // Report each pair once, from its lower CPU.
        if (cpu < s)
          problems.push_back("workers " + lcore_desc(cfg, w.lcore) + " and " + lcore_desc(cfg, it->second) +
                             " are SMT siblings (CPUs " + std::to_string(cpu) + "," + std::to_string(s) +
                             " share a physical core)");
      } else if (s == main_cpu) {
        problems.push_back("worker " + lcore_desc(cfg, w.lcore) + " is the SMT sibling of the main lcore (CPU " +
                           std::to_string(s) + ")");
      }
    }
  }
  if (!any_topology) return ok("cpu", "smt", "CPU topology not exposed (thread_siblings_list): nothing to check");
  if (problems.empty())
    return ok("cpu", "smt",
              "each worker has its physical core to itself (no SMT sibling is a worker or the main lcore)");
  return warn("cpu", "smt", join(problems, "; ") + ": siblings share execution units and caches, so each gets less",
              "choose worker lcores on distinct physical cores (see cpuN/topology/thread_siblings_list), or turn SMT "
              "off: echo off > /sys/devices/system/cpu/smt/control");
}

// A kernel command-line CPU list parameter: its flags (isolcpus=domain,...)
// and its CPUs.
struct CmdlineCpus {
  bool present = false;
  std::vector<std::string> flags;
  std::set<unsigned> cpus;
};

CmdlineCpus cmdline_cpus(const std::string& cmdline, const std::string& key) {
  CmdlineCpus out;
  std::istringstream in(cmdline);
  for (std::string tok; in >> tok;) {
    if (tok == "--") break;  // what follows goes to init
    if (tok.rfind(key + "=", 0) != 0) continue;
    out = {};
    out.present = true;
    std::string rest = tok.substr(key.size() + 1);
    std::istringstream items(rest);
    std::vector<std::string> cpu_items;
    for (std::string item; std::getline(items, item, ',');) {
      if (!item.empty() && !std::isdigit(static_cast<unsigned char>(item[0])))
        out.flags.push_back(item);
      else
        cpu_items.push_back(item);
    }
    if (auto cpus = parse_cpu_list(join(cpu_items, ","))) out.cpus = *cpus;
  }
  return out;
}

Check cpu_isolation(const DoctorInput& in) {
  const auto workers = worker_cpus(*in.config);
  const std::string cmdline = in.host->read_line("/proc/cmdline").value_or("");
  std::vector<std::string> missing, add;
  for (const char* key : {"isolcpus", "nohz_full", "rcu_nocbs"}) {
    const auto p = cmdline_cpus(cmdline, key);
    std::set<unsigned> lacking;
    for (unsigned c : workers)
      if (!p.cpus.count(c)) lacking.insert(c);
    if (lacking.empty()) continue;
    missing.push_back(std::string(key) + (p.present ? "=" + format_cpu_list(p.cpus) + " lacks " : " absent, lacks ") +
                      format_cpu_list(lacking));
    std::set<unsigned> want = p.cpus;
    want.insert(workers.begin(), workers.end());
    std::vector<std::string> items = p.flags;
    items.push_back(format_cpu_list(want));
    add.push_back(std::string(key) + "=" + join(items, ","));
  }
  if (missing.empty())
    return ok("cpu", "isolation", "worker " + cpus_word(workers) + " in isolcpus, nohz_full and rcu_nocbs");
  return warn("cpu", "isolation",
              "worker " + cpus_word(workers) + " not isolated on /proc/cmdline (" + join(missing, "; ") +
                  "): the scheduler, timer ticks and RCU callbacks interrupt the poll loops",
              "add \"" + join(add, " ") +
                  "\" to the kernel command line (GRUB_CMDLINE_LINUX in /etc/default/grub; update-grub; reboot)");
}

Check cpu_governor(const DoctorInput& in) {
  const auto workers = worker_cpus(*in.config);
  std::vector<std::string> slow, seen;
  std::vector<unsigned> slow_cpus;
  for (unsigned c : workers) {
    const auto g = in.host->read_line(cpu_path(c) + "/cpufreq/scaling_governor");
    if (!g) continue;
    seen.push_back("CPU " + std::to_string(c) + " " + *g);
    if (*g != "performance") {
      slow.push_back("CPU " + std::to_string(c) + ": " + *g);
      slow_cpus.push_back(c);
    }
  }
  if (seen.empty()) return ok("cpu", "governor", "frequency scaling not exposed (usual in a VM): nothing to set");
  if (slow.empty()) return ok("cpu", "governor", join(seen, ", "));
  std::string list;
  for (unsigned c : slow_cpus) list += (list.empty() ? "" : " ") + std::to_string(c);
  return warn(
      "cpu", "governor",
      join(slow, ", ") + " (not performance): a polling core is always busy, a lower clock only costs packets",
      "for c in " + list + "; do echo performance > /sys/devices/system/cpu/cpu$c/cpufreq/scaling_governor; done");
}

// ---- memory ---------------------------------------------------------------

struct HugeNode {
  unsigned node = 0;
  uint64_t free_2m = 0, total_2m = 0, free_1g = 0, total_1g = 0;
  uint64_t free_mb() const { return free_2m * 2 + free_1g * 1024; }
  std::string describe() const {
    return "node " + std::to_string(node) + ": " + std::to_string(free_mb()) + " MiB free (" + std::to_string(free_2m) +
           " x 2 MiB, " + std::to_string(free_1g) + " x 1 GiB)";
  }
};

uint64_t read_count(const HostView& host, const std::string& path) {
  auto line = host.read_line(path);
  if (!line) return 0;
  auto v = parse_unsigned(*line);
  return v ? *v : 0;
}

std::vector<HugeNode> huge_nodes(const HostView& host) {
  std::vector<HugeNode> out;
  auto fill = [&](HugeNode& h, const std::string& dir) {
    h.free_2m = read_count(host, dir + "/hugepages-2048kB/free_hugepages");
    h.total_2m = read_count(host, dir + "/hugepages-2048kB/nr_hugepages");
    h.free_1g = read_count(host, dir + "/hugepages-1048576kB/free_hugepages");
    h.total_1g = read_count(host, dir + "/hugepages-1048576kB/nr_hugepages");
  };
  for (unsigned n : numa_nodes(host)) {
    HugeNode h;
    h.node = n;
    fill(h, "/sys/devices/system/node/node" + std::to_string(n) + "/hugepages");
    out.push_back(h);
  }
  if (out.empty()) {  // no NUMA in this kernel: the global counts are node 0's
    HugeNode h;
    fill(h, "/sys/kernel/mm/hugepages");
    out.push_back(h);
  }
  return out;
}

Check memory_hugepages(const DoctorInput& in) {
  const auto nodes = huge_nodes(*in.host);
  if (in.config && in.config->eal.no_huge)
    return ok("memory", "hugepages", "eal.no_huge: true: ngstack runs on ordinary memory, no hugepages needed");
  if (!in.config) {
    uint64_t total = 0;
    std::vector<std::string> per;
    for (const auto& n : nodes) {
      total += n.free_mb();
      per.push_back(n.describe());
    }
    if (total > 0) return ok("memory", "hugepages", join(per, "; "));
    return warn("memory", "hugepages",
                "no free hugepages (" + join(per, "; ") + "): configs with eal.no_huge: false cannot start",
                hugepages_fix(in));
  }
  // EAL with -m and no --socket-mem asks each NUMA node for memory in
  // proportion to the lcores on it (eal_dynmem_calc_num_pages_per_socket).
  const auto& cfg = *in.config;
  const auto lcores = lcores_of(cfg);
  std::map<unsigned, unsigned> lcores_on;
  for (const auto& l : lcores) ++lcores_on[node_of_cpu(*in.host, l.cpu)];
  std::vector<std::string> short_nodes, per;
  for (const auto& [node, count] : lcores_on) {
    const uint64_t need = (uint64_t{cfg.eal.memory_mb} * count + lcores.size() - 1) / lcores.size();
    HugeNode h;
    h.node = node;
    for (const auto& n : nodes)
      if (n.node == node) h = n;
    const std::string line = h.describe() + ", needs " + std::to_string(need) + " MiB (" + std::to_string(count) +
                             " of " + std::to_string(lcores.size()) + " lcores of eal.memory_mb " +
                             std::to_string(cfg.eal.memory_mb) + ")";
    per.push_back(line);
    if (h.free_mb() < need) short_nodes.push_back(line);
  }
  if (!short_nodes.empty())
    return fail("memory", "hugepages", "too few free hugepages: " + join(short_nodes, "; "), hugepages_fix(in));
  return ok("memory", "hugepages", join(per, "; "));
}

struct HugeMount {
  std::string dir, pagesize;  // pagesize: "" when the mount uses the default size
};

std::vector<HugeMount> huge_mounts(const HostView& host) {
  std::vector<HugeMount> out;
  std::istringstream in(host.read("/proc/mounts").value_or(""));
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    std::string dev, dir, type, opts;
    if (!(f >> dev >> dir >> type >> opts) || type != "hugetlbfs") continue;
    HugeMount m{dir, ""};
    if (auto p = opts.find("pagesize="); p != std::string::npos) {
      const std::string rest = opts.substr(p + 9);
      m.pagesize = rest.substr(0, rest.find(','));
    }
    out.push_back(m);
  }
  return out;
}

Check memory_hugetlbfs(const DoctorInput& in) {
  const auto mounts = huge_mounts(*in.host);
  const bool no_huge = in.config && in.config->eal.no_huge;
  if (!mounts.empty()) {
    std::vector<std::string> s;
    for (const auto& m : mounts) s.push_back(m.dir + (m.pagesize.empty() ? "" : " (pagesize=" + m.pagesize + ")"));
    return ok("memory", "hugetlbfs", "mounted on " + join(s, ", "));
  }
  if (no_huge) return ok("memory", "hugetlbfs", "not mounted; not needed (eal.no_huge: true)");
  const std::string saw = "no hugetlbfs in /proc/mounts: EAL finds no hugepages to map";
  const std::string fix =
      "mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages (or " + hugepages_fix(in) + ")";
  return in.config ? fail("memory", "hugetlbfs", saw, fix) : warn("memory", "hugetlbfs", saw, fix);
}

Check memory_1g(const DoctorInput& in) {
  const std::string dir = "/sys/kernel/mm/hugepages/hugepages-1048576kB";
  if (!in.host->exists(dir))
    return ok("memory", "1g-pages", "not offered by this CPU or kernel (no pdpe1gb): 2 MiB pages serve");
  const uint64_t total = read_count(*in.host, dir + "/nr_hugepages"),
                 free = read_count(*in.host, dir + "/free_hugepages");
  const std::string saw = "supported; " + std::to_string(total) + " reserved, " + std::to_string(free) + " free";
  if (free > 0 && !(in.config && in.config->eal.no_huge)) {
    const auto mounts = huge_mounts(*in.host);
    const bool mounted_1g =
        // The kernel prints a 1 GiB mount as pagesize=1024M (mount -o takes 1G too).
        std::any_of(mounts.begin(), mounts.end(), [](const HugeMount& m) {
          return m.pagesize == "1024M" || m.pagesize == "1G" || m.pagesize == "1048576k";
        });
    if (!mounted_1g)
      return warn("memory", "1g-pages", saw + ", but no hugetlbfs is mounted with pagesize=1G: EAL cannot use them",
                  "mkdir -p /dev/hugepages1G && mount -t hugetlbfs -o pagesize=1G nodev /dev/hugepages1G");
  }
  return ok("memory", "1g-pages", saw);
}

// ---- nic ------------------------------------------------------------------

// "01:00.0" -> "0000:01:00.0" (DPDK accepts both); lower case.
std::string pci_sysfs_name(std::string dev) {
  std::transform(dev.begin(), dev.end(), dev.begin(), [](unsigned char c) { return std::tolower(c); });
  if (std::count(dev.begin(), dev.end(), ':') == 1) dev = "0000:" + dev;
  return dev;
}

std::vector<std::string> vdev_ifaces(const std::string& device) {
  std::vector<std::string> out;
  std::istringstream in(device);
  std::string item;
  std::getline(in, item, ',');  // the driver name
  while (std::getline(in, item, ',')) {
    const auto eq = item.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = item.substr(0, eq);
    if (key == "iface" || key == "rx_iface" || key == "rx_iface_in" || key == "tx_iface")
      out.push_back(item.substr(eq + 1));
  }
  return out;
}

bool is_dpdk_driver(const std::string& d) { return d == "vfio-pci" || d == "uio_pci_generic" || d == "igb_uio"; }
bool is_bifurcated_driver(const std::string& d) { return d == "mlx4_core" || d == "mlx5_core"; }

void check_pci_port(const DoctorInput& in, std::size_t index, std::vector<Check>& out) {
  const auto& cfg = *in.config;
  const auto& port = cfg.ports[index];
  const std::string addr = pci_sysfs_name(port.device_name());
  const std::string dir = "/sys/bus/pci/devices/" + addr;
  const std::string pname = port.name;
  const std::string bind_fix = "deploy/bind.sh --config " + in.config_path +
                               " (or: modprobe vfio-pci && dpdk-devbind.py --bind=vfio-pci " + addr + ")";
  if (!in.host->exists(dir)) {
    out.push_back(fail("nic", pname + " device",
                       "PCI device " + addr + " (" + port.device_pos.where() + ") not found under /sys/bus/pci/devices",
                       "find the NIC's address with lspci -D or dpdk-devbind.py --status and set ports[" +
                           std::to_string(index) + "].device in " + in.config_path));
    return;
  }
  const std::string vendor_device =
      in.host->read_line(dir + "/vendor").value_or("?") + ":" + in.host->read_line(dir + "/device").value_or("?");
  out.push_back(ok("nic", pname + " device", "PCI device " + addr + " present (" + vendor_device + ")"));

  // Driver.
  const auto driver = in.host->link_name(dir + "/driver");
  std::vector<std::string> netdevs = in.host->list(dir + "/net");
  if (!driver) {
    out.push_back(fail("nic", pname + " driver", addr + " is bound to no driver: DPDK cannot reach it", bind_fix));
  } else if (is_dpdk_driver(*driver)) {
    out.push_back(ok("nic", pname + " driver", addr + " on " + *driver));
  } else if (is_bifurcated_driver(*driver)) {
    out.push_back(
        ok("nic", pname + " driver",
           addr + " on " + *driver + " (bifurcated: DPDK works beside the kernel driver, no binding needed)"));
  } else {
    out.push_back(fail("nic", pname + " driver",
                       addr + " is on the kernel driver " + *driver +
                           (netdevs.empty() ? "" : " (interface " + join(netdevs, ",") + ")") +
                           ": DPDK needs it on vfio-pci or uio_pci_generic",
                       bind_fix));
  }

  // IOMMU and vfio-pci, when the device is or should be on vfio-pci.
  const bool wants_vfio =
      !driver || (!is_bifurcated_driver(*driver) && *driver != "uio_pci_generic" && *driver != "igb_uio");
  if (wants_vfio) {
    const bool groups = !in.host->list("/sys/kernel/iommu_groups").empty();
    const auto group = in.host->link_name(dir + "/iommu_group");
    const bool vfio_loaded = in.host->exists("/sys/module/vfio_pci") || (driver && *driver == "vfio-pci");
    const bool noiommu =
        in.host->read_line("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode").value_or("N") == "Y";
    const std::string iommu_fix =
        "add \"intel_iommu=on iommu=pt\" (AMD: \"amd_iommu=on iommu=pt\") to the kernel command line and reboot; "
        "without an IOMMU: echo 1 > /sys/module/vfio/parameters/enable_unsafe_noiommu_mode (no DMA isolation)";
    std::vector<std::string> saw;
    CheckStatus st = CheckStatus::ok;
    std::string fix;
    if (groups && group) {
      saw.push_back("IOMMU group " + *group);
    } else if (noiommu) {
      saw.push_back(std::string(groups ? "no IOMMU group for " + addr : "no IOMMU (/sys/kernel/iommu_groups empty)") +
                    "; vfio runs in unsafe no-IOMMU mode (no DMA isolation)");
      st = CheckStatus::warn;
      fix = iommu_fix;
    } else {
      saw.push_back(std::string(groups ? "no IOMMU group for " + addr : "no IOMMU (/sys/kernel/iommu_groups empty)") +
                    ": vfio-pci cannot give the device to DPDK");
      // On vfio-pci already, this is what stops the start; otherwise the
      // driver line FAILs already and this says what the binding will need.
      st = driver && *driver == "vfio-pci" ? CheckStatus::fail : CheckStatus::warn;
      fix = iommu_fix;
    }
    if (!vfio_loaded) {
      saw.push_back("vfio-pci module not loaded");
      if (st == CheckStatus::ok) st = CheckStatus::warn;
      fix = fix.empty() ? "modprobe vfio-pci" : "modprobe vfio-pci; " + fix;
    } else {
      saw.push_back("vfio-pci loaded");
    }
    out.push_back({"nic", pname + " iommu", st, join(saw, ", "), fix});
  }

  // NUMA: the NIC's node against the nodes of the workers polling it.
  const auto numa = in.host->read_line(dir + "/numa_node");
  const int nic_node = numa && !numa->empty() ? std::atoi(numa->c_str()) : -1;
  std::vector<std::string> pollers, far;
  std::set<unsigned> pollers_cpus;
  for (const auto& w : cfg.workers.list) {
    if (std::none_of(w.rx.begin(), w.rx.end(), [&](const conf::RxQueueRef& r) { return r.port == index; })) continue;
    const unsigned cpu = cfg.eal.cpu_of(w.lcore);
    const unsigned node = node_of_cpu(*in.host, cpu);
    const std::string d =
        "lcore " + std::to_string(w.lcore) + " (CPU " + std::to_string(cpu) + ", node " + std::to_string(node) + ")";
    pollers.push_back(d);
    if (nic_node >= 0 && node != static_cast<unsigned>(nic_node)) far.push_back(d);
  }
  if (nic_node < 0) {
    out.push_back(ok("nic", pname + " numa", "no NUMA node reported for " + addr + " (one node)"));
  } else if (!far.empty()) {
    const std::string node_cpus =
        in.host->read_line("/sys/devices/system/node/node" + std::to_string(nic_node) + "/cpulist").value_or("?");
    out.push_back(warn("nic", pname + " numa",
                       addr + " is on NUMA node " + std::to_string(nic_node) + " but polled by " + join(far, ", ") +
                           ": every packet crosses the interconnect",
                       "poll " + pname + " from worker lcores on node " + std::to_string(nic_node) + " (CPUs " +
                           node_cpus + "): edit workers in " + in.config_path));
  } else {
    out.push_back(ok("nic", pname + " numa",
                     addr + " on NUMA node " + std::to_string(nic_node) +
                         (pollers.empty() ? "" : ", polled by " + join(pollers, ", "))));
  }

  // Link: only the kernel knows it before DPDK starts, and only on its driver.
  std::string link = "unknown until DPDK starts";
  if (driver && !is_dpdk_driver(*driver)) {
    std::vector<std::string> states;
    for (const auto& n : netdevs)
      if (auto s = in.host->read_line(dir + "/net/" + n + "/operstate")) states.push_back(n + " " + *s);
    if (!states.empty()) link = join(states, ", ") + " (kernel interface)";
  }
  out.push_back(ok("nic", pname + " link", link));
}

void check_vdev_port(const DoctorInput& in, std::size_t index, std::vector<Check>& out) {
  const auto& port = in.config->ports[index];
  const auto ifaces = vdev_ifaces(port.device);
  if (ifaces.empty()) {
    out.push_back(ok("nic", port.name + " device", port.device_name() + ": virtual device, nothing to check"));
    return;
  }
  std::vector<std::string> missing;
  for (const auto& i : ifaces)
    if (!in.host->exists("/sys/class/net/" + i)) missing.push_back(i);
  if (missing.empty()) {
    out.push_back(ok("nic", port.name + " device",
                     port.device_name() + ": virtual device on interface " + join(ifaces, ", ") + " (present)"));
    return;
  }
  out.push_back(
      fail("nic", port.name + " device",
           port.device_name() + " (" + port.device_pos.where() + "): interface " + join(missing, ", ") +
               " does not exist (/sys/class/net)",
           "create it (the lab configs: deploy/lab up router|bridge) or name an existing interface in ports[" +
               std::to_string(index) + "].device of " + in.config_path));
}

// ---- kernel ---------------------------------------------------------------

Check kernel_root(const DoctorInput& in) {
  if (auto st = check_root(in.facts.euid); !st) {
    std::string msg = st.error();
    msg = msg.substr(0, msg.find(" (try:"));
    return fail("kernel", "root", "euid " + std::to_string(in.facts.euid) + ": " + msg, "sudo ngstack ...");
  }
  return ok("kernel", "root", "running as root");
}

Check kernel_irqbalance(const DoctorInput& in) {
  for (const auto& e : in.host->list("/proc")) {
    if (!parse_unsigned(e)) continue;
    if (in.host->read_line("/proc/" + e + "/comm").value_or("") == "irqbalance")
      return warn("kernel", "irqbalance",
                  "irqbalance is running (pid " + e + "): it moves NIC interrupts onto worker cores",
                  "systemctl disable --now irqbalance");
  }
  return ok("kernel", "irqbalance", "not running");
}

Check kernel_runtime_dir(const DoctorInput& in) {
  const std::string dir = "/var/run/dpdk";
  const bool exists = in.host->exists(dir);
  if (in.host->writable_or_creatable(dir))
    return ok("kernel", "runtime-dir", dir + (exists ? " writable" : " absent, can be created"));
  return fail("kernel", "runtime-dir",
              dir + (exists ? " is not writable" : " cannot be created") + ": EAL keeps its runtime files there",
              in.facts.euid == 0 ? "mkdir -p " + dir : "sudo ngstack ... (root owns " + dir + ")");
}

std::string human_bytes(uint64_t b) {
  if (b >= (uint64_t{1} << 20) && b % (uint64_t{1} << 20) == 0) return std::to_string(b >> 20) + " MiB";
  return std::to_string(b >> 10) + " KiB";
}

Check kernel_memlock(const DoctorInput& in) {
  if (!in.facts.memlock_bytes) return ok("kernel", "memlock", "ulimit -l unlimited");
  const std::string lim = "ulimit -l " + human_bytes(*in.facts.memlock_bytes);
  if (in.facts.euid == 0) return ok("kernel", "memlock", lim + "; root is not held to it (CAP_IPC_LOCK)");
  if (!in.config) return ok("kernel", "memlock", lim + " (compared with eal.memory_mb when --config is given)");
  const uint64_t need = uint64_t{in.config->eal.memory_mb} << 20;
  if (*in.facts.memlock_bytes >= need)
    return ok("kernel", "memlock", lim + ", eal.memory_mb needs " + human_bytes(need));
  return warn("kernel", "memlock",
              lim + " is below eal.memory_mb (" + human_bytes(need) + "): DMA mappings of the memory would fail",
              "ulimit -l unlimited (a systemd unit: LimitMEMLOCK=infinity)");
}

}  // namespace

std::vector<Check> check_cpu(const DoctorInput& in) {
  std::vector<Check> out{cpu_flags(*in.host)};
  if (!in.config) {
    out.push_back(ok("cpu", "cpus",
                     std::to_string(in.facts.cpus.size()) + " CPUs usable (" + format_cpu_list(in.facts.cpus) + ")"));
    return out;
  }
  out.push_back(cpu_lcores(in));
  out.push_back(cpu_smt(in));
  out.push_back(cpu_isolation(in));
  out.push_back(cpu_governor(in));
  return out;
}

std::vector<Check> check_memory(const DoctorInput& in) {
  return {memory_hugepages(in), memory_hugetlbfs(in), memory_1g(in)};
}

std::vector<Check> check_nics(const DoctorInput& in) {
  std::vector<Check> out;
  if (!in.config) return out;
  for (std::size_t i = 0; i < in.config->ports.size(); ++i) {
    if (in.config->ports[i].is_vdev())
      check_vdev_port(in, i, out);
    else
      check_pci_port(in, i, out);
  }
  return out;
}

std::vector<Check> check_kernel(const DoctorInput& in) {
  return {kernel_root(in), kernel_irqbalance(in), kernel_runtime_dir(in), kernel_memlock(in)};
}

DoctorReport run_doctor(const DoctorInput& in) {
  DoctorReport r;
  for (auto* group : {check_cpu, check_memory, check_nics, check_kernel}) {
    auto c = group(in);
    r.checks.insert(r.checks.end(), c.begin(), c.end());
  }
  return r;
}

std::string format_text(const DoctorReport& r, bool have_config) {
  std::size_t width = 0;
  for (const auto& c : r.checks) width = std::max(width, c.name.size());
  std::string out;
  unsigned counts[3] = {0, 0, 0};
  for (const auto& c : r.checks) {
    ++counts[static_cast<int>(c.status)];
    char head[64];
    std::snprintf(head, sizeof head, "%-4s  %-6s  ", check_status_name(c.status), c.group.c_str());
    out += head + c.name + std::string(width - c.name.size() + 2, ' ') + c.saw;
    if (!c.fix.empty()) out += "  -> fix: " + c.fix;
    out += '\n';
  }
  out += std::to_string(counts[0]) + " ok, " + std::to_string(counts[1]) + " warn, " + std::to_string(counts[2]) +
         " FAIL: " + (r.ok() ? "ready" : "not ready") + "\n";
  if (!have_config)
    out +=
        "machine checks only; with --config FILE also: lcores, SMT siblings, CPU isolation and governor of the "
        "workers, hugepages per NUMA node for eal.memory_mb, NICs (driver, IOMMU, NUMA, link), memlock\n";
  return out;
}

std::string format_json(const DoctorReport& r) {
  JsonWriter j;
  j.begin_object().begin_array("checks");
  for (const auto& c : r.checks) {
    j.begin_object()
        .value("group", c.group)
        .value("name", c.name)
        .value("status", c.status == CheckStatus::fail ? "fail" : check_status_name(c.status))
        .value("saw", c.saw)
        .value("fix", c.fix)
        .end_object();
  }
  j.end_array().value("ok", r.ok()).end_object();
  return j.str() + "\n";
}

int doctor_main(const std::string& config_path, bool json, const std::string& root) {
  const HostView host(root.empty() ? "/" : root);
  DoctorInput in;
  in.host = &host;
  in.facts = ProcessFacts::current(host);
  in.config_path = config_path;
  std::optional<conf::Config> cfg;
  std::vector<Check> load_checks;
  if (!config_path.empty()) {
    auto loaded = conf::load_file(config_path);
    if (loaded) {
      cfg = std::move(*loaded);
      in.config = &*cfg;
    } else {
      load_checks.push_back(
          fail("config", "load", loaded.error(),
               "correct " + config_path + " (ngstack check " + config_path + " shows the same error)"));
    }
  }
  DoctorReport r = run_doctor(in);
  r.checks.insert(r.checks.begin(), load_checks.begin(), load_checks.end());
  const std::string text = json ? format_json(r) : format_text(r, in.config != nullptr);
  std::fputs(text.c_str(), stdout);
  return r.ok() ? 0 : 1;
}

}  // namespace ngstack::app
