// Config loading: the valid schema, the resolved defaults, and every error path
// with its exact message (file:line:column, key, reason).
#include <gtest/gtest.h>
#include <rte_config.h>

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

// Dumped YAML without its first line (the source) and the "# auto" notes.
std::string without_notes(const std::string& y) {
  std::string out, line;
  std::istringstream in(y.substr(y.find('\n') + 1));
  while (std::getline(in, line)) out += line.substr(0, line.find("  #")) + "\n";
  return out;
}

std::string error_of(const std::string& yaml) {
  auto r = load_string(yaml, "t.yaml");
  EXPECT_FALSE(r.ok()) << "expected an error for:\n" << yaml;
  return r.ok() ? "" : r.error();
}

// `yaml` with `from` replaced by `to`.
std::string edited_in(std::string yaml, const std::string& from, const std::string& to) {
  auto at = yaml.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return yaml.replace(at, from.size(), to);
}

// The error for `yaml` with `from` replaced by `to`.
std::string error_with(std::string yaml, const std::string& from, const std::string& to) {
  auto at = yaml.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return error_of(yaml.replace(at, from.size(), to));
}

// kValid in `mode`, its forwarder section replaced by `section`.
std::string in_mode(const std::string& mode, const std::string& section) {
  std::string s = kValid;
  s.replace(s.find("mode: forwarder"), 15, "mode: " + mode);
  return s.substr(0, s.find("forwarder:\n")) + section;
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
  EXPECT_EQ(without_notes(dump_yaml(*b)), without_notes(dump_yaml(*a)));
}

TEST(ConfigErrors, UnknownKeyNamesFileLineColumnAndKey) {
  EXPECT_EQ(error_of(edited("    rx_queues: 2\n  - name: p1", "    rx_queus: 2\n  - name: p1")),
            "t.yaml:10:5: ports[0].rx_queus: unknown key");
  EXPECT_EQ(error_of(edited("", "colour: blue\n")), "t.yaml:24:1: colour: unknown key");
}

TEST(ConfigErrors, WrongTypes) {
  EXPECT_EQ(error_of(edited("memory_mb: 256", "memory_mb: lots")),
            "t.yaml:4:14: eal.memory_mb: expected an integer, got \"lots\"");
  // Decimal only: base 0 read `010` as 8 and `0x100` as 256.
  EXPECT_EQ(error_of(edited("memory_mb: 256", "memory_mb: 0x100")),
            "t.yaml:4:14: eal.memory_mb: expected a decimal integer, got \"0x100\"");
  EXPECT_EQ(error_of(edited("memory_mb: 256", "memory_mb: 0256")),
            "t.yaml:4:14: eal.memory_mb: expected a decimal integer without leading zeros, got \"0256\" (YAML 1.1 "
            "reads a leading 0 as octal; write the number in decimal)");
  EXPECT_EQ(error_of(edited("memory_mb: 256", "memory_mb: \" 256\"")),
            "t.yaml:4:14: eal.memory_mb: expected an integer, got \" 256\"");
  EXPECT_EQ(error_of(edited("burst: 64", "burst: -0")), "t.yaml:19:10: workers.burst: must be in [1, 512], got -0");
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
            "t.yaml:1:7: mode: unknown mode \"teleporter\" (known: forwarder, router, bridge, traffic, host)");
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

TEST(Config, StackSection) {
  auto d = load_string(edited("", ""), "t.yaml");
  ASSERT_TRUE(d.ok()) << d.error();
  EXPECT_EQ(d->stack.groups, 128u);
  EXPECT_EQ(d->stack.locking, "group");
  EXPECT_EQ(d->stack.lock_type, "spin");
  auto r = load_string(edited("", "stack:\n  groups: 16\n  locking: giant\n  lock_type: queuing\n"), "t.yaml");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->stack.groups, 16u);
  EXPECT_EQ(r->stack.locking, "giant");
  EXPECT_EQ(r->stack.lock_type, "queuing");
  auto again = load_string(dump_yaml(*r), "dump.yaml");
  ASSERT_TRUE(again.ok()) << again.error();
  EXPECT_EQ(again->stack.groups, 16u);
  EXPECT_EQ(again->stack.locking, "giant");
  EXPECT_EQ(again->stack.lock_type, "queuing");
  for (const char* t : {"spin", "queuing", "speculative", "rte_spinlock"}) {
    auto x = load_string(edited("", std::string("stack: {lock_type: ") + t + "}\n"), "t.yaml");
    ASSERT_TRUE(x.ok()) << x.error();
    EXPECT_EQ(x->stack.lock_type, t);
  }
}

TEST(ConfigErrors, StackSection) {
  EXPECT_EQ(error_of(edited("", "stack:\n  groups: 100\n")),
            "t.yaml:25:11: stack.groups: must be a power of two, got 100");
  EXPECT_EQ(error_of(edited("", "stack:\n  groups: 0\n")), "t.yaml:25:11: stack.groups: must be in [1, 65536], got 0");
  EXPECT_EQ(error_of(edited("", "stack:\n  locking: none\n")),
            "t.yaml:25:12: stack.locking: unknown value \"none\" (known: giant, group)");
  EXPECT_EQ(error_of(edited("", "stack:\n  lock_type: mutex\n")),
            "t.yaml:25:14: stack.lock_type: unknown value \"mutex\" (known: spin, queuing, speculative, rte_spinlock)");
  EXPECT_EQ(error_of(edited("", "stack:\n  colour: red\n")).find("t.yaml:25:3: stack.colour"), 0u);
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
            "t.yaml:19:15: workers.lcores: CPU 7 (of lcore 2) does not exist on this machine (usable CPUs: 0,1)");
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
  EXPECT_EQ(st.error(), "t.yaml:18:15: workers.lcores: lcore 2 does not exist on this machine (usable CPUs: 0,1)");
  auto st2 = check_lcores(*r, {1, 2, 5, 6, 7});
  ASSERT_FALSE(st2.ok());
  EXPECT_EQ(st2.error(),
            "t.yaml:3:3: eal.main_lcore: lcore 0 does not exist on this machine (usable CPUs: 1,2,5-7)");
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

namespace {
std::string router_yaml(const std::string& router_section) {
  std::string s = kValid;
  s.replace(s.find("mode: forwarder"), 15, "mode: router");
  return s.substr(0, s.find("forwarder:\n")) + router_section;
}

const char* kRouter = R"(router:
  interfaces:
    - port: p0
      addresses: [198.18.1.1/24, 198.18.9.1/32]
    - port: p1
      addresses: [198.19.1.1/24]
  routes:
    - {prefix: 10.0.0.0/8, via: 198.19.1.2}
    - {prefix: 192.0.2.0/24, action: blackhole}
    - {prefix: 198.51.100.0/24, action: reject}
  arp:
    reachable_ms: 5000
    static:
      - {port: p1, address: 198.19.1.9, mac: "02:00:00:00:00:09"}
  icmp: {rate: 10, burst: 5}
  reassembly: {max_datagrams: 64, timeout_ms: 500}
)";
}  // namespace

TEST(Config, RouterSection) {
  auto r = load_string(router_yaml(kRouter), "t.yaml");
  ASSERT_TRUE(r.ok()) << r.error();
  const RouterConfig& rc = r->router;
  EXPECT_EQ(r->mode, Mode::router);
  ASSERT_EQ(rc.interfaces.size(), 2u);
  EXPECT_EQ(rc.interfaces[0].addresses[1], (Ipv4Prefix{0xc6120901, 32}));
  ASSERT_EQ(rc.routes.size(), 3u);
  EXPECT_EQ(rc.routes[0].via, 0xc6130102u);
  EXPECT_EQ(rc.routes[1].action, RouteAction::blackhole);
  EXPECT_EQ(rc.routes[2].action, RouteAction::reject);
  EXPECT_EQ(rc.arp.reachable_ms, 5000u);
  EXPECT_EQ(rc.arp.stale_ms, 60000u) << "default";
  ASSERT_EQ(rc.arp.statics.size(), 1u);
  EXPECT_EQ(rc.arp.statics[0].port, 1);
  EXPECT_EQ(rc.icmp.rate, 10u);
  EXPECT_EQ(rc.reassembly.max_datagrams, 64u);
  EXPECT_TRUE(r->is_output(0) && r->is_output(1));
  // What `ngstack check` prints loads back to the same router.
  auto again = load_string(dump_yaml(*r), "dump.yaml");
  ASSERT_TRUE(again.ok()) << again.error() << "\n" << dump_yaml(*r);
  EXPECT_EQ(without_notes(dump_yaml(*again)), without_notes(dump_yaml(*r)));
}

TEST(ConfigErrors, RouterSection) {
  auto with = [](const std::string& from, const std::string& to) {
    std::string s = kRouter;
    s.replace(s.find(from), from.size(), to);
    return error_of(router_yaml(s));
  };
  EXPECT_EQ(with("198.18.1.1/24, 198.18.9.1/32", "198.18.1.0/24"),
            "t.yaml:23:19: router.interfaces[0].addresses: 198.18.1.0/24 is the network or broadcast address of its subnet");
  EXPECT_EQ(with("198.19.1.1/24", "198.18.1.7/16"),
            "t.yaml:25:19: router.interfaces[1].addresses: 198.18.1.7/16 overlaps 198.18.1.1/24 (t.yaml:23:19: "
            "router.interfaces[0].addresses)");
  EXPECT_EQ(with("10.0.0.0/8, via", "10.0.0.1/8, via"),
            "t.yaml:27:16: router.routes[0].prefix: \"10.0.0.1/8\" has host bits set; the network is 10.0.0.0/8");
  EXPECT_EQ(with("via: 198.19.1.2", "via: 203.0.113.1"),
            "t.yaml:27:33: router.routes[0].via: 203.0.113.1 is on no interface's subnet; a gateway must be directly "
            "connected");
  EXPECT_EQ(with("action: blackhole", "action: drop"),
            "t.yaml:28:38: router.routes[1].action: unknown action \"drop\" (known: forward, blackhole, reject)");
  EXPECT_EQ(with("{prefix: 10.0.0.0/8, via: 198.19.1.2}", "{prefix: 10.0.0.0/8}"),
            "t.yaml:27:7: router.routes[0]: missing key \"via\" (the gateway), or set action: blackhole or reject");
  EXPECT_EQ(with("port: p1, address: 198.19.1.9", "port: p0, address: 198.19.1.9"),
            "t.yaml:33:29: router.arp.static[0].address: 198.19.1.9 is on no subnet of port p0's interface");
  EXPECT_EQ(with("port: p1\n", "port: p0\n"),
            "t.yaml:24:13: router.interfaces[1].port: port p0 is already an interface (t.yaml:22:13: "
            "router.interfaces[0].port)");
  EXPECT_EQ(error_of(router_yaml("")), "t.yaml:1:1: router: mode router needs a \"router\" section");
  EXPECT_EQ(error_of(kValid + std::string("router: {}\n")),
            "t.yaml:24:1: router: a router section in mode forwarder (set mode: router, or remove the section)");
}

// rte_ip_frag keeps at most this many fragments of a datagram; conf/ sizes
// the pool with its own copy of the number.
static_assert(kMaxFragmentsPerDatagram == RTE_LIBRTE_IP_FRAG_MAX_FRAG);

TEST(Config, PoolCoversArpHoldBudgetAndReassembly) {
  auto r = load_string(router_yaml(kRouter), "t.yaml");
  ASSERT_TRUE(r.ok()) << r.error();
  Config c = *r;
  EXPECT_EQ(c.router.arp.hold_total, 0u) << "auto";
  // 2 ports x (2 rx + 2 tx queues) x 1024 descriptors; 2 workers x 64 datagrams x 8 fragments.
  EXPECT_EQ(c.ring_mbufs(), 8192u);
  EXPECT_EQ(c.reassembly_mbufs(), 1024u);
  // Auto: a quarter of what the pool needs besides it (rings 8192, bursts 2 x 64 x 3,
  // caches 1.5 x 256 x 3 lcores, headroom 8192, in flight 4096, reassembly 1024 = 23040),
  // far below max_entries x hold_packets = 65 536; the pool then holds it too.
  EXPECT_EQ(c.arp_hold_total(), 5760u);
  EXPECT_EQ(c.mbufs_pinned(), 8192u + 5760u + 1024u);
  const unsigned base = c.mbufs_needed();
  EXPECT_EQ(base, 32767u);
  EXPECT_NE(dump_yaml(c).find("    hold_total: 5760  # auto\n"), std::string::npos) << dump_yaml(c);

  // The pool grows with an explicit hold budget...
  c.router.arp.hold_total = 40000;
  EXPECT_EQ(c.arp_hold_total(), 40000u);
  EXPECT_GE(c.mbufs_needed(), 23040u + 40000u);
  EXPECT_GT(c.mbufs_needed(), base);
  c.router.arp.hold_total = 1u << 24;
  EXPECT_EQ(c.arp_hold_total(), 4096u * 16u) << "never more than every queue full";
  c.router.arp.hold_total = 0;
  // ... and with reassembly: 2 workers x 4096 datagrams x 8 fragments.
  c.router.reassembly.max_datagrams = 4096;
  EXPECT_EQ(c.reassembly_mbufs(), 65536u);
  EXPECT_GE(c.mbufs_needed(), c.mbufs_pinned() + 8192u);
  EXPECT_GT(c.mbufs_needed(), base);
  // An explicit pool: the auto budget is a quarter of it.
  c.mempool.mbufs = 100000;
  EXPECT_EQ(c.arp_hold_total(), 25000u);
  EXPECT_EQ(c.mbufs_needed(), 100000u);

  // The key: a number, or auto; loads back from what `ngstack check` prints.
  auto set = [](const std::string& v) {
    std::string s = kRouter;
    const std::string at = "    reachable_ms: 5000\n";
    s.replace(s.find(at), at.size(), at + "    hold_total: " + v + "\n");
    return router_yaml(s);
  };
  auto two_thousand = load_string(set("2000"), "t.yaml");
  ASSERT_TRUE(two_thousand.ok()) << two_thousand.error();
  EXPECT_EQ(two_thousand->arp_hold_total(), 2000u);
  EXPECT_LT(two_thousand->mbufs_needed(), 32767u + 1);
  auto again = load_string(dump_yaml(*two_thousand), "dump.yaml");
  ASSERT_TRUE(again.ok()) << again.error();
  EXPECT_EQ(again->router.arp.hold_total, 2000u);
  auto autos = load_string(set("auto"), "t.yaml");
  ASSERT_TRUE(autos.ok()) << autos.error();
  EXPECT_EQ(autos->router.arp.hold_total, 0u);
  EXPECT_EQ(error_of(set("0")), "t.yaml:32:17: router.arp.hold_total: must be in [1, 16777216], got 0");
}

// An explicit pool smaller than what rings, ARP hold queues and reassembly
// may keep at once would let them empty it and stop rx: refused, naming the keys.
TEST(ConfigErrors, PoolSmallerThanWhatTheStackMayHold) {
  const std::string router = router_yaml(kRouter);
  EXPECT_EQ(error_of(router + "mempool:\n  mbufs: 8192\n"),
            "t.yaml:37:10: mempool.mbufs: 8192 mbufs are fewer than the stack may hold at once: 8192 in rx/tx "
            "rings (ports[].rx_queues x rx_ring + tx_queues x tx_ring) + 2048 in ARP hold queues "
            "(router.arp.hold_total, auto: a quarter of mempool.mbufs) + 1024 in reassembly (2 workers x "
            "router.reassembly.max_datagrams 64 x 8 fragments) = 11264; raise mempool.mbufs to at least 12287 "
            "(or auto), or lower those");
  // At 12 287 the auto budget (3071) fits beside rings and reassembly; at 12 286 it does not.
  auto enough = load_string(router + "mempool:\n  mbufs: 12287\n", "t.yaml");
  EXPECT_TRUE(enough.ok()) << enough.error();
  EXPECT_FALSE(load_string(router + "mempool:\n  mbufs: 12286\n", "t.yaml").ok());
  // An explicit budget is named as it is.
  std::string fixed = kRouter;
  const std::string at = "    reachable_ms: 5000\n";
  fixed.replace(fixed.find(at), at.size(), at + "    hold_total: 8000\n");
  EXPECT_EQ(error_of(router_yaml(fixed) + "mempool: {mbufs: 16384}\n"),
            "t.yaml:37:18: mempool.mbufs: 16384 mbufs are fewer than the stack may hold at once: 8192 in rx/tx "
            "rings (ports[].rx_queues x rx_ring + tx_queues x tx_ring) + 8000 in ARP hold queues "
            "(router.arp.hold_total) + 1024 in reassembly (2 workers x router.reassembly.max_datagrams 64 x 8 "
            "fragments) = 17216; raise mempool.mbufs to at least 17216 (or auto), or lower those");
  // Other modes: the rings alone.
  EXPECT_EQ(error_of(edited("", "mempool:\n  mbufs: 4096\n")),
            "t.yaml:25:10: mempool.mbufs: 4096 mbufs are fewer than the stack may hold at once: 8192 in rx/tx "
            "rings (ports[].rx_queues x rx_ring + tx_queues x tx_ring) = 8192; raise mempool.mbufs to at least "
            "8192 (or auto), or lower those");
  EXPECT_TRUE(load_string(edited("", "mempool:\n  mbufs: 8192\n"), "t.yaml").ok());
}

TEST(Config, BridgeSection) {
  const std::string s =
      in_mode("bridge", "bridge:\n  aging_ms: 2000\n  ports:\n    - {port: p0, vlan: 10}\n    - {port: p1, trunk: [10, 20]}\n");
  auto r = load_string(s, "t.yaml");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->bridge.aging_ms, 2000u);
  EXPECT_EQ(r->bridge.ports[0].access_vlan, 10);
  EXPECT_EQ(r->bridge.ports[1].trunk_vlans, (std::vector<uint16_t>{10, 20}));
  EXPECT_EQ(r->bridge.learn_rate, 10000u) << "default: new stations per second per worker";
  EXPECT_EQ(r->bridge.learn_burst, 1000u);
  auto again = load_string(dump_yaml(*r), "dump.yaml");
  ASSERT_TRUE(again.ok()) << again.error();
  EXPECT_EQ(without_notes(dump_yaml(*again)), without_notes(dump_yaml(*r)));
  const std::string learn = "  aging_ms: 2000\n  learn_rate: 500\n  learn_burst: 20\n";
  auto limited = load_string(edited_in(s, "  aging_ms: 2000\n", learn), "t.yaml");
  ASSERT_TRUE(limited.ok()) << limited.error();
  EXPECT_EQ(limited->bridge.learn_rate, 500u);
  EXPECT_EQ(limited->bridge.learn_burst, 20u);
  auto limited_again = load_string(dump_yaml(*limited), "dump.yaml");
  ASSERT_TRUE(limited_again.ok()) << limited_again.error();
  EXPECT_EQ(limited_again->bridge.learn_rate, 500u);
  EXPECT_EQ(limited_again->bridge.learn_burst, 20u);

  auto bad = [&](const std::string& from, const std::string& to) { return error_with(s, from, to); };
  EXPECT_EQ(bad("vlan: 10", "vlan: 4095"), "t.yaml:23:24: bridge.ports[0].vlan: must be in [1, 4094], got 4095");
  EXPECT_EQ(bad("aging_ms: 2000", "learn_rate: 0"),
            "t.yaml:21:15: bridge.learn_rate: must be in [1, 100000000], got 0");
  EXPECT_EQ(bad("aging_ms: 2000", "learn_burst: 0"),
            "t.yaml:21:16: bridge.learn_burst: must be in [1, 1048576], got 0");
  // `vlan: 010` once became VLAN 8.
  EXPECT_EQ(bad("vlan: 10", "vlan: 010"),
            "t.yaml:23:24: bridge.ports[0].vlan: expected a decimal integer without leading zeros, got \"010\" (YAML "
            "1.1 reads a leading 0 as octal; write the number in decimal)");
  EXPECT_EQ(bad("trunk: [10, 20]", "trunk: [10, 10]"), "t.yaml:24:30: bridge.ports[1].trunk: VLAN 10 is listed twice");
  EXPECT_EQ(bad("{port: p0, vlan: 10}", "{port: p0}"),
            "t.yaml:24:7: bridge.ports[1]: either every bridge port names its VLANs (vlan or trunk) or none does");
  EXPECT_EQ(bad("{port: p1, trunk: [10, 20]}", "{port: p0}"),
            "t.yaml:24:14: bridge.ports[1].port: port p0 is already in the bridge (t.yaml:23:14: bridge.ports[0].port)");
}

TEST(Config, TrafficSection) {
  const std::string s = in_mode("traffic",
      "traffic:\n"
      "  generators:\n"
      "    - port: p0\n"
      "      size: imix\n"
      "      src: 198.18.0.1-198.18.0.10\n"
      "      sport: 1024-2047\n"
      "      flows: 100\n"
      "      rate: {pps: 1500000}\n"
      "      packets: 5000\n"
      "  sinks:\n"
      "    - {port: p1, max_flows: 1000}\n");
  auto r = load_string(s, "t.yaml");
  ASSERT_TRUE(r.ok()) << r.error();
  const auto& g = r->traffic.generators.at(0);
  EXPECT_EQ(g.sizes, (std::vector<uint16_t>{64, 594, 1518}));
  EXPECT_EQ(g.weights, (std::vector<uint16_t>{7, 4, 1}));
  EXPECT_EQ(g.src.first, 0xc6120001u);
  EXPECT_EQ(g.src.count, 10u);
  EXPECT_EQ(g.sport.first, 1024);
  EXPECT_EQ(g.sport.count, 1024u);
  EXPECT_EQ(g.rate_unit, RateUnit::pps);
  EXPECT_EQ(g.rate, 1500000.0);
  EXPECT_EQ(g.packets, 5000u);
  EXPECT_EQ(r->traffic.sinks.at(0).max_flows, 1000u);
  auto again = load_string(dump_yaml(*r), "dump.yaml");
  ASSERT_TRUE(again.ok()) << again.error() << "\n" << dump_yaml(*r);
  EXPECT_EQ(without_notes(dump_yaml(*again)), without_notes(dump_yaml(*r)));

  auto bad = [&](const std::string& from, const std::string& to) { return error_with(s, from, to); };
  EXPECT_EQ(bad("rate: {pps: 1500000}", "rate: {pps: 1, bps: 2}"),
            "t.yaml:27:13: traffic.generators[0].rate: give exactly one of pps, bps, percent");
  EXPECT_EQ(bad("rate: {pps: 1500000}", "rate: {percent: 150}"),
            "t.yaml:27:23: traffic.generators[0].rate.percent: must be above 0 and at most 100, got 150");
  EXPECT_EQ(bad("198.18.0.1-198.18.0.10", "198.18.0.10-198.18.0.1"),
            "t.yaml:24:12: traffic.generators[0].src: the range ends before it starts: \"198.18.0.10-198.18.0.1\"");
  EXPECT_EQ(bad("sport: 1024-2047", "sport: 1024-70000"),
            "t.yaml:25:14: traffic.generators[0].sport: ports are 0..65535, first <= last; got \"1024-70000\"");
  EXPECT_EQ(bad("size: imix", "size: 9001"), "t.yaml:23:13: traffic.generators[0].size: must be in [64, 9000], got 9001");
  EXPECT_EQ(bad("size: imix", "size: 2000"),
            "t.yaml:22:7: traffic.generators[0].size: frame size 2000 exceeds port p0's MTU 1500 + 18");
  EXPECT_EQ(bad("{port: p1, max_flows: 1000}", "{port: p0}"),
            "t.yaml:30:14: traffic.sinks[0].port: port p0 already has a traffic role (t.yaml:22:13: traffic.generators[0].port)");
  EXPECT_EQ(bad("      size: imix\n", "      size: imix\n      weights: [1, 2]\n"),
            "t.yaml:24:16: traffic.generators[0].weights: one weight per size (3)");

  // stop_when_done: round-trips; refused where a generator never ends.
  const std::string until_done = s + "  stop_when_done: true\n  settle_ms: 50\n";
  auto done = load_string(until_done, "t.yaml");
  ASSERT_TRUE(done.ok()) << done.error();
  EXPECT_TRUE(done->traffic.stop_when_done);
  EXPECT_EQ(done->traffic.settle_ms, 50u);
  auto done_again = load_string(dump_yaml(*done), "dump.yaml");
  ASSERT_TRUE(done_again.ok()) << done_again.error();
  EXPECT_TRUE(done_again->traffic.stop_when_done);
  EXPECT_EQ(done_again->traffic.settle_ms, 50u);
  EXPECT_EQ(error_with(until_done, "      packets: 5000\n", ""),
            "t.yaml:30:19: traffic.stop_when_done: traffic.generators[0] (line 22) never ends: give it packets or "
            "duration_ms");
}

TEST(Config, MetricsListen) {
  EXPECT_FALSE(load_string(kValid, "t.yaml")->metrics.listen);
  auto c = load_string(edited("", "metrics: {listen: 127.0.0.1:9464}\n"), "t.yaml");
  ASSERT_TRUE(c.ok()) << c.error();
  ASSERT_TRUE(c->metrics.listen);
  EXPECT_EQ(c->metrics.listen->host, "127.0.0.1");
  EXPECT_EQ(c->metrics.listen->port, 9464);
  EXPECT_EQ(c->metrics.listen_pos.where(), "t.yaml:24:11: metrics.listen");
  auto v6 = load_string(edited("", "metrics:\n  listen: \"[::1]:9100\"\n"), "t.yaml");
  ASSERT_TRUE(v6.ok()) << v6.error();
  EXPECT_EQ(v6->metrics.listen->host, "::1");
  EXPECT_EQ(v6->metrics.listen->str(), "[::1]:9100");
  auto any = load_string(edited("", "metrics: {listen: 0.0.0.0:65535}\n"), "t.yaml");
  ASSERT_TRUE(any.ok()) << any.error();
  EXPECT_EQ(any->metrics.listen->str(), "0.0.0.0:65535");
  // The resolved config keeps it, and loads back.
  EXPECT_NE(dump_yaml(*c).find("metrics:\n  listen: \"127.0.0.1:9464\"\n"), std::string::npos);
  auto back = load_string(dump_yaml(*c), "dump.yaml");
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(back->metrics.listen->str(), "127.0.0.1:9464");
}

TEST(ConfigErrors, MetricsListen) {
  const std::string want = "expected ADDRESS:PORT with an IPv4 address or a bracketed IPv6 one (127.0.0.1:9464, "
                           "[::1]:9464), got ";
  EXPECT_EQ(error_of(edited("", "metrics: {listen: localhost:9464}\n")),
            "t.yaml:24:19: metrics.listen: " + want + "\"localhost:9464\"");
  EXPECT_EQ(error_of(edited("", "metrics: {listen: 127.0.0.1}\n")),
            "t.yaml:24:19: metrics.listen: " + want + "\"127.0.0.1\"");
  EXPECT_EQ(error_of(edited("", "metrics: {listen: \"127.0.0.1:\"}\n")),
            "t.yaml:24:19: metrics.listen: " + want + "\"127.0.0.1:\"");
  EXPECT_EQ(error_of(edited("", "metrics: {listen: 127.0.0.1:http}\n")),
            "t.yaml:24:19: metrics.listen: " + want + "\"127.0.0.1:http\"");
  EXPECT_EQ(error_of(edited("", "metrics: {listen: 127.0.0.1:0}\n")),
            "t.yaml:24:19: metrics.listen: port must be in [1, 65535], got 0");
  EXPECT_EQ(error_of(edited("", "metrics: {listen: 127.0.0.1:70000}\n")),
            "t.yaml:24:19: metrics.listen: port must be in [1, 65535], got 70000");
  EXPECT_EQ(error_of(edited("", "metrics: {listen: \"::1:9464\"}\n")),
            "t.yaml:24:19: metrics.listen: " + want + "\"::1:9464\"");
  EXPECT_EQ(error_of(edited("", "metrics: {listen: \"[::1]9464\"}\n")),
            "t.yaml:24:19: metrics.listen: " + want + "\"[::1]9464\"");
  EXPECT_EQ(error_of(edited("", "metrics: {listen: [127.0.0.1, 9464]}\n")),
            "t.yaml:24:19: metrics.listen: expected a string");
  EXPECT_EQ(error_of(edited("", "metrics: {}\n")),
            "t.yaml:24:10: metrics.listen: missing key \"listen\" (e.g. listen: 127.0.0.1:9464)");
  EXPECT_EQ(error_of(edited("", "metrics: {listen: 127.0.0.1:9464, port: 1}\n")),
            "t.yaml:24:35: metrics.port: unknown key");
  EXPECT_EQ(error_of(edited("", "metrics: 9464\n")), "t.yaml:24:10: metrics: expected a mapping");
}

namespace {
std::string host_yaml(const std::string& extra) {
  std::string s = router_yaml(kRouter);
  s.replace(s.find("mode: router"), 12, "mode: host");
  s.replace(s.find("router:\n"), 8, "host:\n");
  return s + extra;
}
}  // namespace

TEST(Config, HostModeAndServices) {
  auto h = load_string(host_yaml(R"(services:
  - {type: udp-echo, port: 7}
  - {type: udp-discard, port: 9, address: 198.18.1.1}
  - {type: udp-client, server: 198.19.1.2, port: 7, flows: 100, window: 4, payload: 200, rate: 5000, timeout_ms: 50}
)"),
                       "t.yaml");
  ASSERT_TRUE(h.ok()) << h.error();
  EXPECT_EQ(h->mode, Mode::host);
  EXPECT_TRUE(h->is_inet());
  EXPECT_EQ(h->router.interfaces.size(), 2u) << "host: has the router's keys";
  ASSERT_EQ(h->services.size(), 3u);
  EXPECT_EQ(h->services[0].type, ServiceType::udp_echo);
  EXPECT_EQ(h->services[0].address, 0u);
  EXPECT_EQ(h->services[1].address, 0xc6120101u);
  const ServiceConfig& c = h->services[2];
  EXPECT_EQ(c.type, ServiceType::udp_client);
  EXPECT_EQ(c.server, 0xc6130102u);
  EXPECT_EQ(c.flows, 100u);
  EXPECT_EQ(c.window, 4u);
  EXPECT_EQ(c.payload, 200u);
  EXPECT_EQ(c.rate, 5000.0);
  EXPECT_EQ(c.timeout_ms, 50u);
  // What `ngstack check` prints loads back to the same.
  auto again = load_string(dump_yaml(*h), "dump.yaml");
  ASSERT_TRUE(again.ok()) << again.error() << "\n" << dump_yaml(*h);
  EXPECT_EQ(again->mode, Mode::host);
  ASSERT_EQ(again->services.size(), 3u);
  EXPECT_EQ(again->services[2].flows, 100u);
  EXPECT_EQ(again->services[1].address, 0xc6120101u);
  // Router mode takes services too.
  auto r = load_string(router_yaml(kRouter) + "services:\n  - {type: udp-echo, port: 7}\n", "t.yaml");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->services.size(), 1u);
}

TEST(Config, TcpServicesAndStackTcp) {
  auto h = load_string(host_yaml(R"(services:
  - {type: tcp-echo, port: 7, keepalive_ms: 2000}
  - {type: tcp-source, port: 19, bytes: 5000, backlog: 8, congestion_control: cubic}
  - {type: http, port: 80, body_bytes: 100, sessions: 64}
  - {type: tcp-client, server: 198.19.1.2, port: 19, flows: 4, bytes: 10, duration_ms: 500}
stack:
  tcp: {msl_ms: 1000, min_rto_ms: 50, delayed_ack_ms: 10, sndbuf: 65536, rcvbuf: 32768, nagle: false,
        ooo_segments: 8, syn_backlog: 4, syn_cookies: false, congestion_control: cubic, worker_buffers: 500,
        tso: false}
)"),
                       "t.yaml");
  ASSERT_TRUE(h.ok()) << h.error();
  ASSERT_EQ(h->services.size(), 4u);
  EXPECT_EQ(h->services[0].keepalive_ms, 2000u);
  EXPECT_EQ(h->services[1].type, ServiceType::tcp_source);
  EXPECT_EQ(h->services[1].bytes, 5000u);
  EXPECT_EQ(h->services[1].backlog, 8u);
  EXPECT_EQ(h->services[1].congestion_control, "cubic");
  EXPECT_EQ(h->services[2].body_bytes, 100u);
  EXPECT_EQ(h->services[2].sessions, 64u);
  EXPECT_EQ(h->services[3].server, 0xc6130102u);
  EXPECT_EQ(h->services[3].flows, 4u);
  const TcpConfig& t = h->stack.tcp;
  EXPECT_EQ(t.msl_ms, 1000u);
  EXPECT_EQ(t.min_rto_ms, 50u);
  EXPECT_EQ(t.delayed_ack_ms, 10u);
  EXPECT_EQ(t.sndbuf, 65536u);
  EXPECT_EQ(t.rcvbuf, 32768u);
  EXPECT_FALSE(t.nagle);
  EXPECT_EQ(t.ooo_segments, 8u);
  EXPECT_EQ(t.syn_backlog, 4u);
  EXPECT_FALSE(t.syn_cookies);
  EXPECT_EQ(t.congestion_control, "cubic");
  EXPECT_EQ(t.worker_buffers, 500u);
  EXPECT_EQ(h->tcp_worker_buffers(), 500u);
  EXPECT_FALSE(t.tso);
  auto again = load_string(dump_yaml(*h), "dump.yaml");
  ASSERT_TRUE(again.ok()) << again.error() << "\n" << dump_yaml(*h);
  EXPECT_EQ(again->stack.tcp.min_rto_ms, 50u);
  EXPECT_FALSE(again->stack.tcp.syn_cookies);
  EXPECT_EQ(again->services[1].bytes, 5000u);
  EXPECT_EQ(again->services[2].sessions, 64u);
  EXPECT_EQ(again->services[3].duration_ms, 500u);
  EXPECT_EQ(again->services[0].keepalive_ms, 2000u);
  EXPECT_EQ(again->stack.tcp.worker_buffers, 500u);
  EXPECT_FALSE(again->stack.tcp.tso);
  // auto: half of the pool beyond its pinned part, over the workers; it stays auto through a dump.
  auto a = load_string(host_yaml("stack: {tcp: {worker_buffers: auto}}\n"), "t.yaml");
  ASSERT_TRUE(a.ok()) << a.error();
  EXPECT_EQ(a->stack.tcp.worker_buffers, 0u);
  EXPECT_TRUE(a->stack.tcp.tso);
  const uint64_t spare = (a->mbufs_needed() - a->mbufs_pinned()) / 2 / a->workers.list.size();
  EXPECT_EQ(a->tcp_worker_buffers(), std::max<uint64_t>(spare, 64));
  auto a2 = load_string(dump_yaml(*a), "dump.yaml");
  ASSERT_TRUE(a2.ok()) << a2.error();
  EXPECT_EQ(a2->stack.tcp.worker_buffers, 0u);
}

TEST(ConfigErrors, StackTcp) {
  auto err = [](const std::string& yaml) {
    auto r = load_string(yaml, "t.yaml");
    return r.ok() ? std::string("(loaded)") : r.error();
  };
  EXPECT_NE(err(host_yaml("stack: {tcp: {min_rto_ms: 0}}\n")).find("stack.tcp.min_rto_ms: must be in [1, 3600000], got 0"),
            std::string::npos);
  EXPECT_NE(err(host_yaml("stack: {tcp: {min_rto_ms: 5000, max_rto_ms: 1000}}\n"))
                .find("min_rto_ms (5000) is above max_rto_ms (1000)"),
            std::string::npos);
  EXPECT_NE(err(host_yaml("stack: {tcp: {congestion_control: bbr}}\n"))
                .find("stack.tcp.congestion_control: unknown value \"bbr\" (known: newreno, cubic)"),
            std::string::npos);
  EXPECT_NE(err(host_yaml("stack: {tcp: {rcvbuf: 100}}\n")).find("stack.tcp.rcvbuf: must be in [4096,"),
            std::string::npos);
  EXPECT_NE(err(host_yaml("stack: {tcp: {keepalive_probes: 0}}\n")).find("stack.tcp.keepalive_probes: must be in [1, 255], got 0"),
            std::string::npos);
  EXPECT_NE(err(host_yaml("stack: {tcp: {keepalive: true}}\n")).find("stack.tcp.keepalive: unknown key"),
            std::string::npos);
  EXPECT_NE(err(host_yaml("stack: {tcp: {worker_buffers: 3}}\n")).find("stack.tcp.worker_buffers: must be in [16,"),
            std::string::npos);
  EXPECT_NE(err(host_yaml("stack: {tcp: {tso: maybe}}\n")).find("stack.tcp.tso"), std::string::npos);
}

TEST(ConfigErrors, HostModeAndServices) {
  auto err = [](const std::string& yaml) {
    auto r = load_string(yaml, "t.yaml");
    return r.ok() ? std::string("(loaded)") : r.error();
  };
  EXPECT_NE(err(host_yaml("router:\n  interfaces: []\n")).find("a router section in mode host"), std::string::npos);
  EXPECT_NE(err(kValid + std::string("services:\n  - {type: udp-echo, port: 7}\n"))
                .find("services run on the IPv4 stack: set mode: host or mode: router"),
            std::string::npos);
  EXPECT_NE(err(host_yaml("services:\n  - {type: quic-echo, port: 7}\n"))
                .find("services[0].type: unknown service \"quic-echo\" (known: udp-echo, udp-discard, udp-client, "
                      "tcp-echo, tcp-discard, tcp-source, http, tcp-client)"),
            std::string::npos);
  // UDP and TCP ports are apart; two TCP services on one port are not.
  EXPECT_EQ(err(host_yaml("services:\n  - {type: udp-echo, port: 7}\n  - {type: tcp-echo, port: 7}\n")), "(loaded)");
  EXPECT_NE(err(host_yaml("services:\n  - {type: tcp-echo, port: 7}\n  - {type: http, port: 7}\n"))
                .find("services[1].port: TCP port 7 is already bound"),
            std::string::npos);
  EXPECT_NE(err(host_yaml("services:\n  - {type: tcp-client, port: 7}\n")).find("missing key \"server\""),
            std::string::npos);
  EXPECT_NE(err(host_yaml("services:\n  - {type: tcp-echo, port: 7, congestion_control: bbr}\n"))
                .find("services[0].congestion_control: unknown value \"bbr\" (known: newreno, cubic)"),
            std::string::npos);
  EXPECT_NE(err(host_yaml("services:\n  - {type: udp-echo, port: 7}\n  - {type: udp-discard, port: 7}\n"))
                .find("services[1].port: UDP port 7 is already bound"),
            std::string::npos);
  EXPECT_NE(err(host_yaml("services:\n  - {type: udp-echo}\n")).find("missing key \"port\""), std::string::npos);
  EXPECT_NE(err(host_yaml("services:\n  - {type: udp-echo, port: 7, address: 198.18.1.99}\n"))
                .find("198.18.1.99 is no address of an interface"),
            std::string::npos);
  EXPECT_NE(err(host_yaml("services:\n  - {type: udp-client, port: 7}\n")).find("missing key \"server\""),
            std::string::npos);
  EXPECT_NE(err(host_yaml("services:\n  - {type: udp-client, server: 198.19.1.2, port: 7, payload: 8}\n"))
                .find("services[0].payload: must be in [16, 1472], got 8"),
            std::string::npos);
  EXPECT_NE(err(host_yaml("stack: {connections: 10}\nservices:\n  - {type: udp-client, server: 198.19.1.2, port: 7, "
                          "flows: 11}\n"))
                .find("11 flows need as many connections; stack.connections is 10"),
            std::string::npos);
}

// `clients:`: stateful TCP load generators (stack/services/tcp_load.hpp).
TEST(Config, ClientsSection) {
  auto h = load_string(host_yaml(R"(clients:
  stop_when_done: true
  generators:
    - {name: web, target: 198.19.1.2:8080, rate: 2000, connections: 4000, transaction: http, path: /index.html,
       host: example.test, requests: 10, close: rst, timeout_ms: 300}
    - {addresses: 10.1.2.3-10.1.2.6, ports: 80-81, concurrency: 50, duration_ms: 1000, request_bytes: 100,
       response_bytes: 2000, requests: 0, source: 198.18.1.1, max_open: 64}
stack: {tcp: {msl_ms: 500}}
)"),
                       "t.yaml");
  ASSERT_TRUE(h.ok()) << h.error();
  EXPECT_TRUE(h->clients.stop_when_done);
  ASSERT_EQ(h->clients.generators.size(), 2u);
  const ClientConfig& a = h->clients.generators[0];
  EXPECT_EQ(a.name, "web");
  EXPECT_EQ(a.addresses.first, 0xc6130102u);
  EXPECT_EQ(a.addresses.count, 1u);
  EXPECT_EQ(a.ports.first, 8080u);
  EXPECT_EQ(a.ports.count, 1u);
  EXPECT_EQ(a.rate, 2000.0);
  EXPECT_EQ(a.concurrency, 0u);
  EXPECT_EQ(a.connections, 4000u);
  EXPECT_EQ(a.transaction, ClientTransaction::http);
  EXPECT_EQ(a.path, "/index.html");
  EXPECT_EQ(a.host, "example.test");
  EXPECT_EQ(a.requests, 10u);
  EXPECT_EQ(a.close, ClientClose::rst);
  EXPECT_EQ(a.timeout_ms, 300u);
  EXPECT_EQ(a.sessions(), 600u) << "auto: rate x timeout";
  const ClientConfig& b = h->clients.generators[1];
  EXPECT_EQ(b.name, "client1");
  EXPECT_EQ(b.addresses.first, 0x0a010203u);
  EXPECT_EQ(b.addresses.count, 4u);
  EXPECT_EQ(b.ports.first, 80u);
  EXPECT_EQ(b.ports.count, 2u);
  EXPECT_EQ(b.concurrency, 50u);
  EXPECT_EQ(b.duration_ms, 1000u);
  EXPECT_EQ(b.transaction, ClientTransaction::raw);
  EXPECT_EQ(b.request_bytes, 100u);
  EXPECT_EQ(b.response_bytes, 2000u);
  EXPECT_EQ(b.requests, 0u);
  EXPECT_EQ(b.source, 0xc6120101u);
  EXPECT_EQ(b.sessions(), 64u);
  // What `ngstack check` prints loads back to the same.
  const std::string dump = dump_yaml(*h);
  EXPECT_NE(dump.find("clients:\n  stop_when_done: true\n  generators:\n"), std::string::npos) << dump;
  auto again = load_string(dump, "dump.yaml");
  ASSERT_TRUE(again.ok()) << again.error() << "\n" << dump;
  EXPECT_EQ(without_notes(dump_yaml(*again)), without_notes(dump));
  ASSERT_EQ(again->clients.generators.size(), 2u);
  EXPECT_EQ(again->clients.generators[0].path, "/index.html");
  EXPECT_EQ(again->clients.generators[0].close, ClientClose::rst);
  EXPECT_EQ(again->clients.generators[1].addresses.count, 4u);
  EXPECT_EQ(again->clients.generators[1].ports.count, 2u);
  EXPECT_EQ(again->clients.generators[1].max_open, 64u);
  // Router mode takes clients too; defaults.
  auto r = load_string(router_yaml(kRouter) + "clients: {generators: [{target: 198.19.1.2:7, rate: 10}]}\n", "t.yaml");
  ASSERT_TRUE(r.ok()) << r.error();
  const ClientConfig& d = r->clients.generators[0];
  EXPECT_FALSE(r->clients.stop_when_done);
  EXPECT_EQ(d.requests, 1u);
  EXPECT_EQ(d.close, ClientClose::fin);
  EXPECT_EQ(d.request_bytes, 64u);
  EXPECT_EQ(d.timeout_ms, 5000u);
  EXPECT_EQ(d.sessions(), 64u);
}

TEST(ConfigErrors, ClientsSection) {
  auto err = [](const std::string& gen, const std::string& extra = "") {
    return error_of(host_yaml("clients:\n  generators:\n    - {" + gen + "}\n" + extra));
  };
  const std::string at = "t.yaml:38:7: clients.generators[0]";
  EXPECT_EQ(err("target: 198.19.1.2:80, rate: 10, color: red"), "t.yaml:38:41: clients.generators[0].color: unknown key");
  EXPECT_EQ(err("target: 198.19.1.2:80"),
            at + ": set either rate (connections per second) or concurrency (connections kept open), one of them");
  EXPECT_EQ(err("target: 198.19.1.2:80, rate: 10, concurrency: 5"),
            at + ": set either rate (connections per second) or concurrency (connections kept open), one of them");
  EXPECT_EQ(err("rate: 10"),
            at + ": missing key \"target\" (ADDRESS:PORT), or \"addresses\" and \"ports\" (ranges)");
  EXPECT_EQ(err("target: 198.19.1.2, rate: 10"),
            "t.yaml:38:16: clients.generators[0].target: expected ADDRESS:PORT like 198.18.1.2:80, got \"198.19.1.2\"");
  EXPECT_EQ(err("target: 198.19.1.2:0, rate: 10"),
            "t.yaml:38:16: clients.generators[0].target: expected ADDRESS:PORT like 198.18.1.2:80, got \"198.19.1.2:0\"");
  EXPECT_EQ(err("target: 198.19.1.2:80, ports: 80, rate: 10"),
            "t.yaml:38:16: clients.generators[0].target: either target or addresses and ports, not both");
  EXPECT_EQ(err("addresses: 198.19.1.9-198.19.1.2, ports: 80, rate: 10"),
            "t.yaml:38:19: clients.generators[0].addresses: the range ends before it starts: \"198.19.1.9-198.19.1.2\"");
  EXPECT_EQ(err("addresses: 198.19.1.2, ports: 90-80, rate: 10"),
            "t.yaml:38:38: clients.generators[0].ports: ports are 0..65535, first <= last; got \"90-80\"");
  EXPECT_EQ(err("target: 203.0.113.5:80, rate: 10"),
            at + ": no route to 203.0.113.5 (no interface subnet or forwarding route covers it)");
  EXPECT_EQ(err("target: 192.0.2.1:80, rate: 10"),
            at + ": no route to 192.0.2.1 (no interface subnet or forwarding route covers it)")
      << "a blackhole route reaches nothing";
  EXPECT_EQ(err("target: 198.19.1.2:80, rate: 10, source: 198.19.1.2"),
            "t.yaml:38:49: clients.generators[0].source: 198.19.1.2 is no address of an interface");
  EXPECT_EQ(err("target: 198.19.1.2:80, rate: 0"),
            "t.yaml:38:37: clients.generators[0].rate: must be above 0 and at most 100000000, got 0");
  EXPECT_EQ(err("target: 198.19.1.2:80, rate: 10, transaction: ftp"),
            "t.yaml:38:54: clients.generators[0].transaction: unknown value \"ftp\" (known: raw, http)");
  EXPECT_EQ(err("target: 198.19.1.2:80, rate: 10, path: /x"),
            "t.yaml:38:47: clients.generators[0].path: only for transaction: http");
  EXPECT_EQ(err("target: 198.19.1.2:80, rate: 10, transaction: http, request_bytes: 5"),
            "t.yaml:38:75: clients.generators[0].request_bytes: only for transaction: raw");
  EXPECT_EQ(err("target: 198.19.1.2:80, rate: 10, transaction: http, path: x"),
            "t.yaml:38:66: clients.generators[0].path: expected an absolute path (/...) without spaces or quotes");
  EXPECT_EQ(err("target: 198.19.1.2:80, rate: 10, close: linger"),
            "t.yaml:38:48: clients.generators[0].close: unknown value \"linger\" (known: fin, rst)");
  EXPECT_EQ(err("target: 198.19.1.2:80, concurrency: 10, max_open: 5"),
            at + ".max_open: max_open 5 is below concurrency 10");
  EXPECT_EQ(error_of(host_yaml("clients:\n  stop_when_done: true\n  generators:\n    - {target: 198.19.1.2:80, rate: 10}\n")),
            "t.yaml:39:7: clients.generators[0]: stop_when_done needs an end: set connections or duration_ms");
  EXPECT_EQ(err("target: 198.19.1.2:80, rate: 10000"),
            "t.yaml:38:5: clients.generators: the generators may hold 650000 connections at once (max_open, and rate x "
            "2 MSL in TIME-WAIT after close: fin); stack.connections is 16384 (raise it, lower stack.tcp.msl_ms, or "
            "close: rst)");
  EXPECT_EQ(error_of(host_yaml("clients:\n  generators: []\n")), "t.yaml:37:15: clients.generators: no generator listed");
  EXPECT_EQ(error_of(router_yaml(kRouter) + "clients: {stop_when_done: true}\n"),
            "t.yaml:36:10: clients: missing key \"generators\" (a list of load generators)");
  std::string fwd = kValid;
  EXPECT_EQ(error_of(fwd + "clients: {generators: [{target: 198.19.1.2:80, rate: 10}]}\n").find(
                "clients run on the IPv4 stack: set mode: host or mode: router") != std::string::npos,
            true);
}
