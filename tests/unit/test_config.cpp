// Config loading: the valid schema, the resolved defaults, and every error path
// with its exact message (file:line:column, key, reason).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "conf/host_check.hpp"
#include "conf/loader.hpp"

using namespace ngstack::conf;

namespace {

const char* kValid = R"(mode: forwarder
eal:
  main_lcore: 0
  memory_mb: 256
  no_huge: true
  file_prefix: t1
ports:
  - name: p0
    device: net_af_packet0,iface=veth0
    rx_queues: 2
  - name: p1
    device: net_af_packet1,iface=veth1
    rx_queues: 2
    mac: 02:00:00:00:00:11
    rss:
      hash: [ipv4-udp, ipv4-tcp]
workers:
  lcores: [1, 2]
  burst: 64
forwarder:
  paths:
    - {in: p0, out: p1, dst_mac: "02:00:00:00:00:22"}
    - {in: p1, out: p0}
)";

// Loads kValid with one line replaced (or appended when `from` is empty).
std::string edited(const std::string& from, const std::string& to) {
  std::string s = kValid;
  if (from.empty()) return s + to;
  auto at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return s.replace(at, from.size(), to);
}

std::string error_of(const std::string& yaml) {
  auto r = load_string(yaml, "t.yaml");
  EXPECT_FALSE(r.ok()) << "expected an error for:\n" << yaml;
  return r.ok() ? "" : r.error();
}

}  // namespace

TEST(Config, LoadsValidFileWithDefaults) {
  auto r = load_string(kValid, "t.yaml");
  ASSERT_TRUE(r.ok()) << r.error();
  const Config& c = *r;
  EXPECT_EQ(c.mode, Mode::forwarder);
  EXPECT_EQ(c.eal.cores, (std::vector<unsigned>{0, 1, 2}));
  EXPECT_TRUE(c.eal.no_huge);
  EXPECT_EQ(c.eal.memory_mb, 256u);
  ASSERT_EQ(c.ports.size(), 2u);
  EXPECT_EQ(c.ports[0].rx_ring, 1024);
  EXPECT_EQ(c.ports[0].mtu, 1500);
  EXPECT_TRUE(c.ports[0].promiscuous);
  EXPECT_EQ(c.tx_queues_of(c.ports[0]), 2) << "tx queues default to one per worker";
  EXPECT_FALSE(c.ports[0].mac.has_value());
  ASSERT_TRUE(c.ports[1].mac.has_value());
  EXPECT_EQ(format_mac(*c.ports[1].mac), "02:00:00:00:00:11");
  EXPECT_EQ(c.ports[1].rss.hash_names, (std::vector<std::string>{"ipv4-udp", "ipv4-tcp"}));
  EXPECT_EQ(c.workers.burst, 64);
  ASSERT_EQ(c.forwarder.paths.size(), 2u);
  EXPECT_EQ(c.forwarder.paths[0].in_port, 0);
  EXPECT_EQ(c.forwarder.paths[0].out_port, 1);
  ASSERT_TRUE(c.forwarder.paths[0].dst_mac.has_value());
  EXPECT_FALSE(c.forwarder.paths[1].dst_mac.has_value());
  // Auto assignment: queue q of every port on worker q.
  EXPECT_EQ(c.workers.list[0].rx, (std::vector<RxQueueRef>{{0, 0}, {1, 0}}));
  EXPECT_EQ(c.workers.list[1].rx, (std::vector<RxQueueRef>{{0, 1}, {1, 1}}));
}

TEST(Config, DumpedYamlLoadsBackToTheSameConfig) {
  auto a = load_string(kValid, "t.yaml");
  ASSERT_TRUE(a.ok());
  auto b = load_string(dump_yaml(*a), "dump.yaml");
  ASSERT_TRUE(b.ok()) << b.error() << "\n" << dump_yaml(*a);
  // Same text once the first line (the source) and the "# auto" notes are gone.
  auto body = [](const std::string& y) {
    std::string out, line;
    std::istringstream in(y.substr(y.find('\n') + 1));
    while (std::getline(in, line)) out += line.substr(0, line.find("  #")) + "\n";
    return out;
  };
  EXPECT_EQ(body(dump_yaml(*b)), body(dump_yaml(*a)));
}

TEST(ConfigErrors, UnknownKeyNamesFileLineColumnAndKey) {
  EXPECT_EQ(error_of(edited("    rx_queues: 2\n  - name: p1", "    rx_queus: 2\n  - name: p1")),
            "t.yaml:10:5: ports[0].rx_queus: unknown key");
  EXPECT_EQ(error_of(edited("", "colour: blue\n")), "t.yaml:24:1: colour: unknown key");
}

TEST(ConfigErrors, WrongTypes) {
  EXPECT_EQ(error_of(edited("memory_mb: 256", "memory_mb: lots")),
            "t.yaml:4:14: eal.memory_mb: expected an integer, got \"lots\"");
  EXPECT_EQ(error_of(edited("no_huge: true", "no_huge: maybe")),
            "t.yaml:5:12: eal.no_huge: expected true or false, got \"maybe\"");
  EXPECT_EQ(error_of(edited("lcores: [1, 2]", "lcores: 1")), "t.yaml:18:11: workers.lcores: expected a list");
  EXPECT_EQ(error_of(edited("mac: 02:00:00:00:00:11", "mac: 02:00:00:00:11")),
            "t.yaml:14:10: ports[1].mac: expected a MAC address like 02:00:00:00:00:01, got \"02:00:00:00:11\"");
}

TEST(ConfigErrors, ImpossibleValues) {
  EXPECT_EQ(error_of(edited("burst: 64", "burst: 0")), "t.yaml:19:10: workers.burst: must be in [1, 512], got 0");
  EXPECT_EQ(error_of(edited("    rx_queues: 2\n  - name: p1", "    rx_queues: 5000\n  - name: p1")),
            "t.yaml:10:16: ports[0].rx_queues: must be in [1, 1024], got 5000");
  EXPECT_EQ(error_of(edited("mode: forwarder", "mode: teleporter")),
            "t.yaml:1:7: mode: unknown mode \"teleporter\" (known: forwarder)");
  EXPECT_EQ(error_of(edited("hash: [ipv4-udp, ipv4-tcp]", "hash: [ipv4-udp, sctp]")),
            "t.yaml:16:24: ports[1].rss.hash: unknown hash type \"sctp\" (known: ip, tcp, udp, ipv4, ipv4-tcp, "
            "ipv4-udp, ipv6, ipv6-tcp, ipv6-udp)");
  EXPECT_EQ(error_of(edited("hash: [ipv4-udp, ipv4-tcp]", "hash: [ip]\n      key: abcd")),
            "t.yaml:17:12: ports[1].rss.key: expected \"symmetric\" or 40 to 52 bytes as hex digits (80 to 104 "
            "characters)");
  EXPECT_EQ(error_of(edited("", "mempool:\n  mbufs: 10\n")), "t.yaml:25:10: mempool.mbufs: must be in [1024, 16777216], got 10");
}

TEST(ConfigErrors, PortUsedTwice) {
  EXPECT_EQ(error_of(edited("name: p1", "name: p0")),
            "t.yaml:11:11: ports[1].name: port name \"p0\" is used twice (first at t.yaml:8:5: ports[0].name)");
  EXPECT_EQ(error_of(edited("net_af_packet1,iface=veth1", "net_af_packet0,iface=veth9")),
            "t.yaml:12:13: ports[1].device: device \"net_af_packet0\" is used twice (first at t.yaml:9:5: "
            "ports[0].device)");
  EXPECT_EQ(error_of(edited("- {in: p1, out: p0}", "- {in: p0, out: p0}")),
            "t.yaml:23:12: forwarder.paths[1].in: port p0 is already the input of a path (t.yaml:22:12: "
            "forwarder.paths[0].in)");
}

TEST(ConfigErrors, LcoresAndWorkers) {
  EXPECT_EQ(error_of(edited("lcores: [1, 2]", "lcores: [1, 1]")),
            "t.yaml:18:15: workers.lcores: lcore 1 is listed twice");
  EXPECT_EQ(error_of(edited("lcores: [1, 2]", "lcores: [0, 2]")),
            "t.yaml:18:12: workers.lcores: lcore 0 is the main lcore (t.yaml:3:3: eal.main_lcore); workers need "
            "lcores of their own");
  EXPECT_EQ(error_of(edited("    rx_queues: 2\n  - name: p1", "    rx_queues: 2\n    tx_queues: 1\n  - name: p1")),
            "t.yaml:11:5: ports[0].tx_queues: port p0 has 1 tx queue(s) but there are 2 workers; every worker needs a tx "
            "queue of its own on every port");
}

TEST(ConfigErrors, ExplicitRxAssignment) {
  const std::string base = edited("  burst: 64\n", "  burst: 64\n  rx:\n    - lcore: 1\n      queues: [p0/0, p1/0]\n"
                                                   "    - lcore: 2\n      queues: [p0/1, p1/1]\n");
  auto ok = load_string(base, "t.yaml");
  ASSERT_TRUE(ok.ok()) << ok.error();
  EXPECT_FALSE(ok->workers.auto_assign);
  EXPECT_EQ(ok->workers.list[1].rx, (std::vector<RxQueueRef>{{0, 1}, {1, 1}}));

  auto replace = [&](const std::string& a, const std::string& b) {
    std::string s = base;
    return s.replace(s.find(a), a.size(), b);
  };
  EXPECT_EQ(error_of(replace("[p0/1, p1/1]", "[p0/1, p1/0]")),
            "t.yaml:24:22: workers.rx[1].queues: p1/0 is already polled (t.yaml:22:22: workers.rx[0].queues); each "
            "rx queue has exactly one worker");
  EXPECT_EQ(error_of(replace("[p0/1, p1/1]", "[p0/1]")),
            "t.yaml:21:5: workers.rx: p1/1 is polled by no worker; packets on it would never be freed");
  EXPECT_EQ(error_of(replace("[p0/1, p1/1]", "[p0/1, p1/7]")),
            "t.yaml:24:22: workers.rx[1].queues: port p1 has 2 rx queue(s); queue 7 does not exist");
  EXPECT_EQ(error_of(replace("[p0/1, p1/1]", "[p0/1, p9/1]")),
            "t.yaml:24:22: workers.rx[1].queues: no port named \"p9\"");
  EXPECT_EQ(error_of(replace("- lcore: 2", "- lcore: 3")),
            "t.yaml:23:14: workers.rx[1].lcore: lcore 3 is not in workers.lcores");
}

TEST(ConfigErrors, MissingSectionsAndKeys) {
  EXPECT_EQ(error_of("mode: forwarder\n"), "t.yaml:1:1: ports: missing key \"ports\": at least one port is required");
  EXPECT_EQ(error_of(edited("    device: net_af_packet1,iface=veth1\n", "")),
            "t.yaml:11:5: ports[1]: missing key \"device\"");
  EXPECT_EQ(error_of(edited("- {in: p1, out: p0}", "- {in: p1, out: p5}")),
            "t.yaml:23:21: forwarder.paths[1].out: no port named \"p5\"");
  EXPECT_EQ(error_of(""), "t.yaml: the file is empty");
}

TEST(Config, DispatchSection) {
  auto r = load_string(edited("", "dispatch:\n  mode: hybrid\n  buckets: 4\n  bucket_map: [2, 1, 2, 1]\n"
                                  "  protocols:\n    ether: {policy: cpu, qlimit: 2048}\n"),
                       "t.yaml");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(*r->dispatch.mode, "hybrid");
  EXPECT_EQ(r->dispatch.buckets, 4u);
  EXPECT_EQ(r->dispatch.bucket_map, (std::vector<uint16_t>{1, 0, 1, 0})) << "lcores become worker indices";
  EXPECT_EQ(*r->dispatch.protocols.at("ether").policy, "cpu");
  EXPECT_EQ(*r->dispatch.protocols.at("ether").qlimit, 2048u);
  EXPECT_FALSE(r->dispatch.protocols.at("ether").mode.has_value());
  auto again = load_string(dump_yaml(*r), "dump.yaml");
  ASSERT_TRUE(again.ok()) << again.error();
  EXPECT_EQ(again->dispatch.bucket_map, r->dispatch.bucket_map);
  EXPECT_EQ(*again->dispatch.protocols.at("ether").policy, "cpu");

  auto d = load_string(edited("", "dispatch: {buckets: 128}\n"), "t.yaml");
  ASSERT_TRUE(d.ok());
  EXPECT_FALSE(d->dispatch.mode.has_value());
  EXPECT_TRUE(d->dispatch.bucket_map.empty()) << "auto: round robin";
}

TEST(ConfigErrors, DispatchSection) {
  EXPECT_EQ(error_of(edited("", "dispatch:\n  mode: eager\n")),
            "t.yaml:25:9: dispatch.mode: unknown value \"eager\" (known: direct, hybrid, deferred)");
  EXPECT_EQ(error_of(edited("", "dispatch:\n  buckets: 100\n")),
            "t.yaml:25:12: dispatch.buckets: must be a power of two, got 100");
  EXPECT_EQ(error_of(edited("", "dispatch:\n  buckets: 2\n  bucket_map: [1]\n")),
            "t.yaml:26:15: dispatch.bucket_map: has 1 entries; one per bucket (2) is needed");
  EXPECT_EQ(error_of(edited("", "dispatch:\n  buckets: 2\n  bucket_map: [1, 0]\n")),
            "t.yaml:26:19: dispatch.bucket_map: lcore 0 runs no worker");
  EXPECT_EQ(error_of(edited("", "dispatch:\n  protocols:\n    ether: {policy: random}\n")),
            "t.yaml:26:21: dispatch.protocols.ether.policy: unknown value \"random\" (known: source, flow, cpu)");
  EXPECT_EQ(error_of(edited("", "dispatch:\n  protocols:\n    ether: {qlimit: 0}\n")),
            "t.yaml:26:21: dispatch.protocols.ether.qlimit: must be in [1, 1048576], got 0");
  EXPECT_EQ(error_of(edited("", "dispatch:\n  protocols:\n    ether: {colour: red}\n")),
            "t.yaml:26:13: dispatch.protocols.ether.colour: unknown key");
}

TEST(Config, LcoreCpus) {
  auto r = load_string(edited("  main_lcore: 0\n", "  main_lcore: 0\n  lcore_cpus: {2: 0}\n"), "t.yaml");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->eal.cpu_of(2), 0u);
  EXPECT_EQ(r->eal.cpu_of(1), 1u);
  EXPECT_TRUE(check_lcores(*r, {0, 1}).ok()) << "lcore 2 runs on CPU 0";
  auto bad = load_string(edited("  main_lcore: 0\n", "  main_lcore: 0\n  lcore_cpus: {2: 7}\n"), "t.yaml");
  ASSERT_TRUE(bad.ok());
  EXPECT_EQ(check_lcores(*bad, {0, 1}).error(),
            "t.yaml:19:15: workers.lcores: CPU 7 (of lcore 2) does not exist on this machine (usable CPUs: 0-1)");
}

TEST(ConfigErrors, YamlSyntaxError) {
  EXPECT_EQ(error_of("ports: [\n  name: x\n"), "t.yaml:3:1: YAML syntax error: end of sequence flow not found");
}

TEST(ConfigErrors, MissingAndUnreadableFiles) {
  auto r = load_file("/nonexistent/ngstack.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), "cannot read config file /nonexistent/ngstack.yaml: No such file or directory");
  auto d = load_file("/tmp");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error(), "cannot read config file /tmp: it is a directory");
}

TEST(HostCheck, LcoreThatDoesNotExist) {
  auto r = load_string(kValid, "t.yaml");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(check_lcores(*r, {0, 1, 2, 3}).ok());
  auto st = check_lcores(*r, {0, 1});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error(), "t.yaml:18:15: workers.lcores: lcore 2 does not exist on this machine (usable CPUs: 0-1)");
  auto st2 = check_lcores(*r, {1, 2, 5, 6, 7});
  ASSERT_FALSE(st2.ok());
  EXPECT_EQ(st2.error(),
            "t.yaml:3:3: eal.main_lcore: lcore 0 does not exist on this machine (usable CPUs: 1-2,5-7)");
}

TEST(Examples, EveryShippedExampleLoads) {
  int seen = 0;
  for (const auto& e : std::filesystem::directory_iterator(NGSTACK_SOURCE_DIR "/conf/examples")) {
    if (e.path().extension() != ".yaml") continue;
    auto r = load_file(e.path().string());
    EXPECT_TRUE(r.ok()) << e.path() << ": " << (r.ok() ? "" : r.error());
    ++seen;
  }
  EXPECT_GE(seen, 2);
}
