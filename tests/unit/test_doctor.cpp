// `ngstack doctor` over fake /sys and /proc trees: the bare-metal cases this
// VM cannot show (two NUMA nodes, NICs on kernel drivers, no IOMMU, SMT...).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "app/cli.hpp"
#include "app/doctor.hpp"
#include "app/host_view.hpp"
#include "conf/loader.hpp"

using namespace ngstack;
using namespace ngstack::app;
namespace fs = std::filesystem;

namespace {

// A two-socket machine as the kernel shows it: node 0 has CPUs 0-3 and 8-11,
// node 1 CPUs 4-7 and 12-15, CPU n and n+8 are SMT siblings. Two NIC ports
// 0000:01:00.0/.1 on node 0, bound to vfio-pci with an IOMMU; 1024 free 2 MiB
// pages on each node, hugetlbfs mounted, CPUs 1-7 isolated, governor
// performance. Tests then break one thing each.
class FakeHost {
 public:
  FakeHost() {
    std::string tmpl = ::testing::TempDir() + "/doctor-XXXXXX";
    root_ = mkdtemp(tmpl.data());
    write("/proc/cpuinfo",
          "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu sse sse2 ssse3 sse4_1 sse4_2 avx avx2\n\n");
    write("/proc/cmdline", "BOOT_IMAGE=/vmlinuz root=/dev/sda1 isolcpus=1-7 nohz_full=1-7 rcu_nocbs=1-7 quiet\n");
    write("/proc/mounts", "proc /proc proc rw 0 0\nhugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n");
    write("/proc/1/comm", "systemd\n");
    write("/proc/812/comm", "sshd\n");
    write("/sys/devices/system/cpu/online", "0-15\n");
    for (unsigned c = 0; c < 16; ++c) {
      const std::string d = "/sys/devices/system/cpu/cpu" + std::to_string(c);
      const unsigned core = c % 8;
      write(d + "/topology/thread_siblings_list", std::to_string(core) + "," + std::to_string(core + 8) + "\n");
      write(d + "/cpufreq/scaling_governor", "performance\n");
      mkdir(d + "/node" + std::to_string(core / 4));
    }
    for (unsigned n = 0; n < 2; ++n) {
      const std::string d = "/sys/devices/system/node/node" + std::to_string(n);
      write(d + "/cpulist", n == 0 ? "0-3,8-11\n" : "4-7,12-15\n");
      set_free_2m(n, 1024);
    }
    write("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "2048\n");
    write("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "2048\n");
    mkdir("/sys/module/vfio_pci");
    mkdir("/var/run");
    add_nic("0000:01:00.0", "vfio-pci", 0, "12");
    add_nic("0000:01:00.1", "vfio-pci", 0, "13");
  }
  ~FakeHost() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  const std::string& root() const { return root_; }
  std::string path(const std::string& p) const { return root_ + p; }
  void write(const std::string& p, const std::string& text) {
    fs::create_directories(fs::path(path(p)).parent_path());
    std::ofstream(path(p)) << text;
  }
  void mkdir(const std::string& p) { fs::create_directories(path(p)); }
  void remove(const std::string& p) { fs::remove_all(path(p)); }
  void link(const std::string& p, const std::string& target) {
    fs::create_directories(fs::path(path(p)).parent_path());
    fs::remove(path(p));
    fs::create_directory_symlink(target, path(p));
  }
  void set_free_2m(unsigned node, unsigned pages) {
    const std::string d = "/sys/devices/system/node/node" + std::to_string(node) + "/hugepages/hugepages-2048kB/";
    write(d + "nr_hugepages", std::to_string(pages) + "\n");
    write(d + "free_hugepages", std::to_string(pages) + "\n");
  }
  // A PCI function with its driver (empty: none), NUMA node and IOMMU group.
  void add_nic(const std::string& addr, const std::string& driver, int node, const std::string& group) {
    const std::string d = "/sys/bus/pci/devices/" + addr;
    write(d + "/vendor", "0x8086\n");
    write(d + "/device", "0x1572\n");
    write(d + "/numa_node", std::to_string(node) + "\n");
    set_driver(addr, driver);
    if (!group.empty()) {
      mkdir("/sys/kernel/iommu_groups/" + group + "/devices");
      link(d + "/iommu_group", "../../../kernel/iommu_groups/" + group);
    }
  }
  void set_driver(const std::string& addr, const std::string& driver) {
    const std::string d = "/sys/bus/pci/devices/" + addr + "/driver";
    fs::remove(path(d));
    if (driver.empty()) return;
    mkdir("/sys/bus/pci/drivers/" + driver);
    link(d, "../../../bus/pci/drivers/" + driver);
  }

 private:
  std::string root_;
};

// Two PCI ports, main lcore 0, workers on lcores 1 and 2 (node 0), each
// polling one queue of both ports.
std::string pci_yaml(const std::string& workers = "[1, 2]", const std::string& eal_extra = "",
                     const std::string& wan = "0000:01:00.0", const std::string& lan = "0000:01:00.1") {
  return "mode: forwarder\n"
         "eal:\n"
         "  main_lcore: 0\n"
         "  memory_mb: 1024\n" +
         eal_extra +
         "ports:\n"
         "  - {name: wan, device: \"" +
         wan +
         "\", rx_queues: 2}\n"
         "  - {name: lan, device: \"" +
         lan +
         "\", rx_queues: 2}\n"
         "workers:\n"
         "  lcores: " +
         workers +
         "\n"
         "forwarder:\n"
         "  paths:\n"
         "    - {in: wan, out: lan}\n"
         "    - {in: lan, out: wan}\n";
}

class Doctor : public ::testing::Test {
 protected:
  DoctorReport run(const std::string* yaml) {
    view_ = std::make_unique<HostView>(host_.root());
    DoctorInput in;
    in.host = view_.get();
    in.facts = facts_;
    in.config_path = "ngstack.yaml";
    if (yaml) {
      auto cfg = conf::load_string(*yaml, "ngstack.yaml");
      EXPECT_TRUE(cfg.ok()) << cfg.error();
      if (!cfg) return {};
      cfg_ = std::move(*cfg);
      in.config = &*cfg_;
    }
    return run_doctor(in);
  }
  DoctorReport run(const std::string& yaml) { return run(&yaml); }
  DoctorReport run_machine() { return run(nullptr); }

  static Check get(const DoctorReport& r, const std::string& group, const std::string& name) {
    const Check* c = r.find(group, name);
    EXPECT_NE(c, nullptr) << group << " " << name;
    return c ? *c : Check{};
  }
  static std::string all(const DoctorReport& r) { return format_text(r, true); }

  FakeHost host_;
  ProcessFacts facts_{0, std::nullopt, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}};
  std::unique_ptr<HostView> view_;
  std::optional<conf::Config> cfg_;
};

}  // namespace

TEST(HostView, CpuLists) {
  EXPECT_EQ(*parse_cpu_list("0-3,8,10-11\n"), (std::set<unsigned>{0, 1, 2, 3, 8, 10, 11}));
  EXPECT_EQ(*parse_cpu_list(""), std::set<unsigned>{});
  EXPECT_FALSE(parse_cpu_list("1,x").has_value());
  EXPECT_FALSE(parse_cpu_list("4294967295").has_value()) << "would loop forever";
  EXPECT_FALSE(parse_cpu_list("0-4294967295").has_value());
  EXPECT_FALSE(parse_cpu_list("3-1").has_value());
  EXPECT_FALSE(parse_cpu_list("1,").has_value());
  EXPECT_EQ(format_cpu_list({0, 1, 2, 3, 8, 10, 11}), "0-3,8,10,11");
}

TEST(HostView, ReadsUnderItsRoot) {
  FakeHost h;
  HostView v(h.root() + "/");
  EXPECT_EQ(v.path("/proc/cmdline"), h.root() + "/proc/cmdline");
  EXPECT_EQ(*v.read_line("/sys/devices/system/cpu/online"), "0-15");
  EXPECT_EQ(*v.link_name("/sys/bus/pci/devices/0000:01:00.0/driver"), "vfio-pci");
  EXPECT_FALSE(v.read("/proc/nothing").has_value());
  EXPECT_EQ(v.list("/sys/devices/system/node"), (std::vector<std::string>{"node0", "node1"}));
  EXPECT_TRUE(v.writable_or_creatable("/var/run/dpdk"));
  EXPECT_TRUE(HostView("/").is_real_root());
  // A fake root's CPUs are its online list, not this process's affinity.
  EXPECT_EQ(ProcessFacts::current(v).cpus.size(), 16u);
  // Without the online list, the cpuN directories.
  h.remove("/sys/devices/system/cpu/online");
  EXPECT_EQ(ProcessFacts::current(v).cpus.size(), 16u);
}

TEST_F(Doctor, HealthyBareMetalIsAllOk) {
  auto r = run(pci_yaml());
  for (const auto& c : r.checks) EXPECT_EQ(c.status, CheckStatus::ok) << c.group << " " << c.name << ": " << c.saw;
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(get(r, "nic", "wan driver").saw, "0000:01:00.0 on vfio-pci");
  EXPECT_EQ(get(r, "nic", "wan iommu").saw, "IOMMU group 12, vfio-pci loaded");
  EXPECT_EQ(get(r, "nic", "wan link").saw, "unknown until DPDK starts");
  EXPECT_EQ(get(r, "nic", "lan numa").saw,
            "0000:01:00.1 on NUMA node 0, polled by lcore 1 (CPU 1, node 0), lcore 2 (CPU 2, node 0)");
  EXPECT_EQ(get(r, "cpu", "isolation").saw, "worker CPUs 1,2 in isolcpus, nohz_full and rcu_nocbs");
  EXPECT_EQ(get(r, "cpu", "governor").saw, "CPU 1 performance, CPU 2 performance");
  EXPECT_EQ(get(r, "memory", "hugepages").saw,
            "node 0: 2048 MiB free (1024 x 2 MiB, 0 x 1 GiB), needs 1024 MiB (3 of 3 lcores of eal.memory_mb 1024)");
}

TEST_F(Doctor, NicOnTheOtherNumaNodeWarns) {
  host_.add_nic("0000:81:00.0", "vfio-pci", 1, "40");
  auto r = run(pci_yaml("[1, 2]", "", "0000:81:00.0"));
  auto c = get(r, "nic", "wan numa");
  EXPECT_EQ(c.status, CheckStatus::warn);
  EXPECT_EQ(c.saw,
            "0000:81:00.0 is on NUMA node 1 but polled by lcore 1 (CPU 1, node 0), lcore 2 (CPU 2, node 0): every "
            "packet crosses the interconnect");
  EXPECT_EQ(c.fix, "poll wan from worker lcores on node 1 (CPUs 4-7,12-15): edit workers in ngstack.yaml");
  EXPECT_EQ(get(r, "nic", "lan numa").status, CheckStatus::ok);
  EXPECT_TRUE(r.ok()) << "a NUMA mismatch is slow, not broken";

  // Workers on node 1 poll it locally.
  r = run(pci_yaml("[5, 6]", "", "0000:81:00.0"));
  EXPECT_EQ(get(r, "nic", "wan numa").status, CheckStatus::ok);
}

TEST_F(Doctor, KernelDriverFailsWithTheBindFix) {
  host_.set_driver("0000:01:00.0", "ixgbe");
  host_.write("/sys/bus/pci/devices/0000:01:00.0/net/eth2/operstate", "up\n");
  auto r = run(pci_yaml());
  auto c = get(r, "nic", "wan driver");
  EXPECT_EQ(c.status, CheckStatus::fail);
  EXPECT_EQ(
      c.saw,
      "0000:01:00.0 is on the kernel driver ixgbe (interface eth2): DPDK needs it on vfio-pci or uio_pci_generic");
  EXPECT_EQ(
      c.fix,
      "deploy/bind.sh --config ngstack.yaml (or: modprobe vfio-pci && dpdk-devbind.py --bind=vfio-pci 0000:01:00.0)");
  EXPECT_EQ(get(r, "nic", "wan link").saw, "eth2 up (kernel interface)");
  EXPECT_EQ(get(r, "nic", "wan iommu").status, CheckStatus::ok) << "the IOMMU it will need is there";
  EXPECT_FALSE(r.ok());
}

TEST_F(Doctor, NoDriverFails) {
  host_.set_driver("0000:01:00.1", "");
  auto r = run(pci_yaml());
  auto c = get(r, "nic", "lan driver");
  EXPECT_EQ(c.status, CheckStatus::fail);
  EXPECT_EQ(c.saw, "0000:01:00.1 is bound to no driver: DPDK cannot reach it");
  EXPECT_NE(c.fix.find("deploy/bind.sh --config ngstack.yaml"), std::string::npos);
  EXPECT_FALSE(r.ok());
}

TEST_F(Doctor, VfioWithoutIommuFailsUnlessNoIommuMode) {
  host_.remove("/sys/kernel/iommu_groups");
  host_.remove("/sys/bus/pci/devices/0000:01:00.0/iommu_group");
  host_.remove("/sys/bus/pci/devices/0000:01:00.1/iommu_group");
  auto r = run(pci_yaml());
  auto c = get(r, "nic", "wan iommu");
  EXPECT_EQ(c.status, CheckStatus::fail);
  EXPECT_EQ(c.saw,
            "no IOMMU (/sys/kernel/iommu_groups empty): vfio-pci cannot give the device to DPDK, vfio-pci loaded");
  EXPECT_NE(c.fix.find("intel_iommu=on iommu=pt"), std::string::npos);
  EXPECT_NE(c.fix.find("echo 1 > /sys/module/vfio/parameters/enable_unsafe_noiommu_mode"), std::string::npos);
  EXPECT_FALSE(r.ok());

  host_.write("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode", "Y\n");
  r = run(pci_yaml());
  EXPECT_EQ(get(r, "nic", "wan iommu").status, CheckStatus::warn);
  EXPECT_TRUE(r.ok());
}

TEST_F(Doctor, VfioModuleNotLoadedWarnsWhenTheDeviceStillNeedsBinding) {
  host_.remove("/sys/module/vfio_pci");
  host_.set_driver("0000:01:00.0", "i40e");
  auto r = run(pci_yaml());
  auto c = get(r, "nic", "wan iommu");
  EXPECT_EQ(c.status, CheckStatus::warn);
  EXPECT_EQ(c.saw, "IOMMU group 12, vfio-pci module not loaded");
  EXPECT_EQ(c.fix, "modprobe vfio-pci");
}

TEST_F(Doctor, Mlx5NeedsNoBinding) {
  host_.set_driver("0000:01:00.0", "mlx5_core");
  host_.write("/sys/bus/pci/devices/0000:01:00.0/net/enp1s0f0/operstate", "down\n");
  auto r = run(pci_yaml());
  auto c = get(r, "nic", "wan driver");
  EXPECT_EQ(c.status, CheckStatus::ok);
  EXPECT_EQ(c.saw, "0000:01:00.0 on mlx5_core (bifurcated: DPDK works beside the kernel driver, no binding needed)");
  EXPECT_EQ(r.find("nic", "wan iommu"), nullptr) << "mlx5 needs no vfio";
  EXPECT_EQ(get(r, "nic", "wan link").saw, "enp1s0f0 down (kernel interface)");
  EXPECT_TRUE(r.ok());
}

TEST_F(Doctor, MissingDeviceFails) {
  auto r = run(pci_yaml("[1, 2]", "", "02:00.0"));
  auto c = get(r, "nic", "wan device");
  EXPECT_EQ(c.status, CheckStatus::fail);
  EXPECT_EQ(c.saw, "PCI device 0000:02:00.0 (ngstack.yaml:6:17: ports[0].device) not found under /sys/bus/pci/devices");
  EXPECT_EQ(c.fix,
            "find the NIC's address with lspci -D or dpdk-devbind.py --status and set ports[0].device in ngstack.yaml");
  EXPECT_EQ(r.find("nic", "wan driver"), nullptr);
  EXPECT_EQ(get(r, "nic", "lan device").status, CheckStatus::ok);
  EXPECT_FALSE(r.ok());
}

TEST_F(Doctor, MissingSse42Fails) {
  EXPECT_EQ(get(run(pci_yaml()), "cpu", "flags").saw, "sse4_2 (required) present, avx2, no avx512");
  host_.write("/proc/cpuinfo", "processor\t: 0\nflags\t\t: fpu sse sse2 ssse3\n");
  auto r = run_machine();
  auto c = get(r, "cpu", "flags");
  EXPECT_EQ(c.status, CheckStatus::fail);
  EXPECT_NE(c.saw.find("no sse4_2"), std::string::npos);
  EXPECT_NE(c.fix.find("-cpu host"), std::string::npos);
  EXPECT_FALSE(r.ok());
}

TEST_F(Doctor, LcoreThatDoesNotExistFails) {
  facts_.cpus = {0, 1, 2, 3};
  auto r = run(pci_yaml("[1, 6]"));
  auto c = get(r, "cpu", "lcores");
  EXPECT_EQ(c.status, CheckStatus::fail);
  EXPECT_EQ(c.saw, "ngstack.yaml:9:15: workers.lcores: lcore 6 does not exist on this machine (usable CPUs: 0-3)");
  EXPECT_EQ(c.fix, "edit eal.main_lcore, workers.lcores or eal.lcore_cpus in ngstack.yaml to use CPUs among 0-3");
}

TEST_F(Doctor, SmtSiblingsSharedByWorkersWarn) {
  auto r = run(pci_yaml("[1, 9]"));
  auto c = get(r, "cpu", "smt");
  EXPECT_EQ(c.status, CheckStatus::warn);
  EXPECT_EQ(c.saw.substr(0, c.saw.find(':')),
            "workers lcore 1 and lcore 9 are SMT siblings (CPUs 1,9 share a physical core)");
  EXPECT_NE(c.fix.find("echo off > /sys/devices/system/cpu/smt/control"), std::string::npos);

  // A worker beside the main lcore's CPU.
  c = get(run(pci_yaml("[1, 8]")), "cpu", "smt");
  EXPECT_EQ(c.status, CheckStatus::warn);
  EXPECT_EQ(c.saw.substr(0, c.saw.find(':')), "worker lcore 8 is the SMT sibling of the main lcore (CPU 0)");
}

TEST_F(Doctor, IsolationOnTheKernelCommandLine) {
  host_.write("/proc/cmdline", "BOOT_IMAGE=/vmlinuz root=/dev/sda1 quiet\n");
  auto c = get(run(pci_yaml()), "cpu", "isolation");
  EXPECT_EQ(c.status, CheckStatus::warn);
  EXPECT_EQ(c.fix,
            "add \"isolcpus=1,2 nohz_full=1,2 rcu_nocbs=1,2\" to the kernel command line (GRUB_CMDLINE_LINUX in "
            "/etc/default/grub; update-grub; reboot)");

  // Partly there: flags of isolcpus are kept, the worker CPUs added.
  host_.write("/proc/cmdline", "isolcpus=managed_irq,domain,1 nohz_full=1-2 rcu_nocbs=1,2\n");
  c = get(run(pci_yaml()), "cpu", "isolation");
  EXPECT_EQ(c.status, CheckStatus::warn);
  EXPECT_NE(c.saw.find("isolcpus=1 lacks 2"), std::string::npos) << c.saw;
  EXPECT_NE(c.fix.find("\"isolcpus=managed_irq,domain,1,2\""), std::string::npos) << c.fix;

  host_.write("/proc/cmdline", "isolcpus=domain,1-2 nohz_full=1-2 rcu_nocbs=1-2\n");
  EXPECT_EQ(get(run(pci_yaml()), "cpu", "isolation").status, CheckStatus::ok);
}

TEST_F(Doctor, GovernorPowersaveWarnsAndAbsentIsFine) {
  host_.write("/sys/devices/system/cpu/cpu2/cpufreq/scaling_governor", "powersave\n");
  auto c = get(run(pci_yaml()), "cpu", "governor");
  EXPECT_EQ(c.status, CheckStatus::warn);
  EXPECT_EQ(c.saw.substr(0, c.saw.find(" (")), "CPU 2: powersave");
  EXPECT_EQ(c.fix, "for c in 2; do echo performance > /sys/devices/system/cpu/cpu$c/cpufreq/scaling_governor; done");

  for (unsigned cpu : {1, 2}) host_.remove("/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/cpufreq");
  c = get(run(pci_yaml()), "cpu", "governor");
  EXPECT_EQ(c.status, CheckStatus::ok);
  EXPECT_EQ(c.saw, "frequency scaling not exposed (usual in a VM): nothing to set");
}

TEST_F(Doctor, HugepagesShortOnANodeFail) {
  host_.set_free_2m(1, 100);  // 200 MiB on node 1
  // Main lcore on node 0, two workers on node 1: node 1 owes 2/3 of 1024 MiB.
  auto r = run(pci_yaml("[4, 5]"));
  auto c = get(r, "memory", "hugepages");
  EXPECT_EQ(c.status, CheckStatus::fail);
  EXPECT_EQ(c.saw,
            "too few free hugepages: node 1: 200 MiB free (100 x 2 MiB, 0 x 1 GiB), needs 683 MiB (2 of 3 lcores of "
            "eal.memory_mb 1024)");
  EXPECT_EQ(c.fix, "deploy/hugepages.sh --config ngstack.yaml");
  EXPECT_FALSE(r.ok());
  // The same pages suffice when every lcore is on node 0.
  EXPECT_EQ(get(run(pci_yaml()), "memory", "hugepages").status, CheckStatus::ok);
  // 1 GiB pages count.
  host_.write("/sys/devices/system/node/node1/hugepages/hugepages-1048576kB/free_hugepages", "1\n");
  EXPECT_EQ(get(run(pci_yaml("[4, 5]")), "memory", "hugepages").status, CheckStatus::ok);
}

TEST_F(Doctor, NoHugeNeedsNoHugepages) {
  host_.set_free_2m(0, 0);
  host_.set_free_2m(1, 0);
  host_.write("/proc/mounts", "proc /proc proc rw 0 0\n");
  auto r = run(pci_yaml("[1, 2]", "  no_huge: true\n"));
  EXPECT_EQ(get(r, "memory", "hugepages").saw,
            "eal.no_huge: true: ngstack runs on ordinary memory, no hugepages needed");
  EXPECT_EQ(get(r, "memory", "hugetlbfs").status, CheckStatus::ok);
  EXPECT_TRUE(r.ok());

  // Without a config: no hugepages is a warning, with the default reservation as the fix.
  r = run_machine();
  auto c = get(r, "memory", "hugepages");
  EXPECT_EQ(c.status, CheckStatus::warn);
  EXPECT_EQ(c.fix, "deploy/hugepages.sh 1024");
}

TEST_F(Doctor, HugetlbfsNotMounted) {
  host_.write("/proc/mounts", "proc /proc proc rw 0 0\n");
  auto c = get(run(pci_yaml()), "memory", "hugetlbfs");
  EXPECT_EQ(c.status, CheckStatus::fail);
  EXPECT_EQ(c.saw, "no hugetlbfs in /proc/mounts: EAL finds no hugepages to map");
  EXPECT_EQ(c.fix,
            "mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages (or deploy/hugepages.sh --config "
            "ngstack.yaml)");
  EXPECT_EQ(get(run_machine(), "memory", "hugetlbfs").status, CheckStatus::warn);
}

TEST_F(Doctor, OneGigPages) {
  EXPECT_EQ(get(run_machine(), "memory", "1g-pages").saw,
            "not offered by this CPU or kernel (no pdpe1gb): 2 MiB pages serve");
  host_.write("/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages", "4\n");
  host_.write("/sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages", "4\n");
  auto c = get(run_machine(), "memory", "1g-pages");
  EXPECT_EQ(c.status, CheckStatus::warn) << "reserved but no pagesize=1G mount";
  // What the kernel really writes for a 1 GiB mount (fs/hugetlbfs prints it in M).
  host_.write("/proc/mounts", "hugetlbfs /dev/hugepages1G hugetlbfs rw,relatime,pagesize=1024M 0 0\n");
  c = get(run_machine(), "memory", "1g-pages");
  EXPECT_EQ(c.status, CheckStatus::ok);
  EXPECT_EQ(c.saw, "supported; 4 reserved, 4 free");
}

TEST_F(Doctor, IrqbalanceRunningWarns) {
  host_.write("/proc/977/comm", "irqbalance\n");
  auto r = run_machine();
  auto c = get(r, "kernel", "irqbalance");
  EXPECT_EQ(c.status, CheckStatus::warn);
  EXPECT_EQ(c.saw, "irqbalance is running (pid 977): it moves NIC interrupts onto worker cores");
  EXPECT_EQ(c.fix, "systemctl disable --now irqbalance");
  EXPECT_TRUE(r.ok());
}

TEST_F(Doctor, RootRuntimeDirAndMemlock) {
  facts_.euid = 1000;
  facts_.memlock_bytes = 8u << 20;
  auto r = run(pci_yaml());
  auto c = get(r, "kernel", "root");
  EXPECT_EQ(c.status, CheckStatus::fail);
  EXPECT_EQ(c.saw, "euid 1000: ngstack must run as root: DPDK needs raw sockets, hugepages and /var/run/dpdk");
  c = get(r, "kernel", "memlock");
  EXPECT_EQ(c.status, CheckStatus::warn);
  EXPECT_EQ(c.fix, "ulimit -l unlimited (a systemd unit: LimitMEMLOCK=infinity)");

  facts_.euid = 0;
  EXPECT_EQ(get(run(pci_yaml()), "kernel", "memlock").status, CheckStatus::ok) << "root is not held to RLIMIT_MEMLOCK";

  host_.write("/var/run/dpdk", "a file where the directory should be\n");
  c = get(run_machine(), "kernel", "runtime-dir");
  EXPECT_EQ(c.status, CheckStatus::fail);
  EXPECT_EQ(c.fix, "mkdir -p /var/run/dpdk");
}

TEST_F(Doctor, VdevPorts) {
  const std::string yaml =
      "mode: forwarder\n"
      "eal: {main_lcore: 0, no_huge: true}\n"
      "ports:\n"
      "  - {name: a, device: \"net_af_packet0,iface=veth-a\"}\n"
      "  - {name: b, device: \"net_null0,no-rx=1\"}\n"
      "workers: {lcores: [1]}\n"
      "forwarder: {paths: [{in: a, out: b}]}\n";
  auto r = run(yaml);
  auto c = get(r, "nic", "a device");
  EXPECT_EQ(c.status, CheckStatus::fail);
  EXPECT_EQ(c.saw,
            "net_af_packet0 (ngstack.yaml:4:15: ports[0].device): interface veth-a does not exist (/sys/class/net)");
  EXPECT_EQ(get(r, "nic", "b device").saw, "net_null0: virtual device, nothing to check");
  host_.mkdir("/sys/class/net/veth-a");
  r = run(yaml);
  EXPECT_EQ(get(r, "nic", "a device").saw, "net_af_packet0: virtual device on interface veth-a (present)");
  EXPECT_TRUE(r.ok());
}

TEST_F(Doctor, WithoutAConfigOnlyMachineChecks) {
  auto r = run_machine();
  for (const auto& c : r.checks) EXPECT_NE(c.group, "nic");
  EXPECT_EQ(r.find("cpu", "lcores"), nullptr);
  EXPECT_EQ(get(r, "cpu", "cpus").saw, "16 CPUs usable (0-15)");
  const std::string text = format_text(r, false);
  EXPECT_NE(text.find("machine checks only; with --config FILE also:"), std::string::npos);
}

TEST(DoctorOutput, TextAndJsonShape) {
  DoctorReport r;
  r.checks.push_back({"cpu", "flags", CheckStatus::ok, "sse4_2", ""});
  r.checks.push_back(
      {"kernel", "irqbalance", CheckStatus::warn, "running \"x\"", "systemctl disable --now irqbalance"});
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(
      format_json(r),
      R"({"checks":[{"group":"cpu","name":"flags","status":"ok","saw":"sse4_2","fix":""},)"
      R"({"group":"kernel","name":"irqbalance","status":"warn","saw":"running \"x\"","fix":"systemctl disable --now irqbalance"}],"ok":true})"
      "\n");
  r.checks.push_back({"nic", "wan driver", CheckStatus::fail, "on ixgbe", "deploy/bind.sh"});
  EXPECT_FALSE(r.ok());
  EXPECT_NE(format_json(r).find(R"("status":"fail")"), std::string::npos);
  EXPECT_NE(format_json(r).find(R"(],"ok":false})"), std::string::npos);
  EXPECT_EQ(format_text(r, true),
            "ok    cpu     flags       sse4_2\n"
            "warn  kernel  irqbalance  running \"x\"  -> fix: systemctl disable --now irqbalance\n"
            "FAIL  nic     wan driver  on ixgbe  -> fix: deploy/bind.sh\n"
            "1 ok, 1 warn, 1 FAIL: not ready\n");
}

TEST(DoctorMain, ExitStatusFollowsFails) {
  FakeHost h;
  const std::string cfg = h.root() + "/ngstack.yaml";
  std::ofstream(cfg) << pci_yaml();
  ::testing::internal::CaptureStdout();
  const int healthy = doctor_main(cfg, false, h.root());
  const std::string out = ::testing::internal::GetCapturedStdout();
  // This process may not be root; everything else in the tree is healthy.
  EXPECT_EQ(healthy, geteuid() == 0 ? 0 : 1) << out;
  EXPECT_NE(out.find("ok    nic     wan driver"), std::string::npos) << out;

  h.set_driver("0000:01:00.0", "ixgbe");
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(doctor_main(cfg, true, h.root()), 1);
  const std::string json = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(json.rfind("{\"checks\":[", 0), 0u) << json;
  EXPECT_NE(json.find(R"(,"ok":false})"), std::string::npos) << json;

  // A config that does not load is a FAIL line, and the machine checks still run.
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(doctor_main(h.root() + "/missing.yaml", false, h.root()), 1);
  const std::string missing = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(missing.rfind("FAIL  config  load", 0), 0u) << missing;
  EXPECT_NE(missing.find("ok    cpu     flags"), std::string::npos) << missing;
}

TEST(DoctorCli, Arguments) {
  auto o = parse_args({"doctor"});
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->command, Command::doctor);
  EXPECT_TRUE(o->config_path.empty());
  o = parse_args({"doctor", "--config", "a.yaml", "--json", "--root=/tmp/fake"});
  ASSERT_TRUE(o.ok()) << o.error();
  EXPECT_EQ(o->config_path, "a.yaml");
  EXPECT_TRUE(o->doctor_json);
  EXPECT_EQ(o->root, "/tmp/fake");
  EXPECT_EQ(parse_args({"doctor", "-c", "b.yaml"})->config_path, "b.yaml");
  EXPECT_EQ(parse_args({"doctor", "--root"}).error(),
            "--root needs a value (usage: ngstack doctor [--config FILE] [--json] [--root DIR])");
  EXPECT_EQ(parse_args({"doctor", "--duration", "3"}).error(),
            "unknown argument \"--duration\" (usage: ngstack doctor [--config FILE] [--json] [--root DIR])");
  EXPECT_FALSE(parse_args({"doctor", "--json=yes"}).ok());
}
