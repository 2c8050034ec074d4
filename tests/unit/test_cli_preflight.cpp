// Command line parsing and the pre-start checks (root, hugepages).
#include <gtest/gtest.h>

#include "app/cli.hpp"
#include "app/control.hpp"
#include "app/embedded.hpp"
#include "app/json.hpp"
#include "app/preflight.hpp"
#include "conf/loader.hpp"

using namespace ngstack;
using namespace ngstack::app;

TEST(Cli, DefaultsRunTheEmbeddedConfig) {
  auto o = parse_args({});
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->command, Command::run);
  EXPECT_TRUE(o->config_path.empty());
  EXPECT_FALSE(o->duration_s.has_value());
  EXPECT_DOUBLE_EQ(o->stats_interval_s, 1.0);
}

TEST(Cli, AllOptions) {
  auto o = parse_args({"--config", "a.yaml", "-d", "2.5", "--stats-interval=0", "--json", "out.json", "-q"});
  ASSERT_TRUE(o.ok()) << o.error();
  EXPECT_EQ(o->config_path, "a.yaml");
  EXPECT_DOUBLE_EQ(*o->duration_s, 2.5);
  EXPECT_DOUBLE_EQ(o->stats_interval_s, 0.0);
  EXPECT_EQ(o->json_path, "out.json");
  EXPECT_TRUE(o->quiet);
  EXPECT_FALSE(o->hugepages);
  EXPECT_TRUE(parse_args({"--hugepages"})->hugepages);
  EXPECT_FALSE(o->metrics);
  auto m = parse_args({"--metrics", "127.0.0.1:9464"});
  ASSERT_TRUE(m.ok()) << m.error();
  EXPECT_EQ(m->metrics->str(), "127.0.0.1:9464");
  EXPECT_EQ(parse_args({"--metrics=[::1]:9100"})->metrics->str(), "[::1]:9100");
  EXPECT_EQ(parse_args({"check", "x.yaml"})->command, Command::check);
  EXPECT_FALSE(parse_args({"check", "x.yaml"})->offline);
  for (const auto& args : {std::vector<std::string>{"check", "x.yaml", "--offline"},
                           std::vector<std::string>{"check", "--offline", "x.yaml"}}) {
    auto offline = parse_args(args);
    ASSERT_TRUE(offline.ok());
    EXPECT_TRUE(offline->offline);
    EXPECT_EQ(offline->config_path, "x.yaml");
  }
  EXPECT_EQ(parse_args({"--help"})->command, Command::help);
  EXPECT_EQ(parse_args({"-V"})->command, Command::version);
}

TEST(Cli, Errors) {
  EXPECT_EQ(parse_args({"--duration", "0"}).error(), "--duration: expected a positive number of seconds, got \"0\"");
  EXPECT_EQ(parse_args({"-d", "soon"}).error(), "-d: expected a positive number of seconds, got \"soon\"");
  EXPECT_EQ(parse_args({"--config"}).error(), "--config needs a value");
  EXPECT_EQ(parse_args({"--metrics", "9464"}).error(),
            "--metrics: expected ADDRESS:PORT with an IPv4 address or a bracketed IPv6 one (127.0.0.1:9464, "
            "[::1]:9464), got \"9464\"");
  EXPECT_EQ(parse_args({"--frobnicate"}).error(), "unknown argument \"--frobnicate\" (see ngstack --help)");
  EXPECT_EQ(parse_args({"check"}).error(), "usage: ngstack check FILE [--offline]");
  EXPECT_EQ(parse_args({"check", "--offline"}).error(), "usage: ngstack check FILE [--offline]");
  EXPECT_EQ(parse_args({"check", "a.yaml", "b.yaml"}).error(), "usage: ngstack check FILE [--offline]");
  EXPECT_EQ(parse_args({"check", "a.yaml", "--offlin"}).error(), "usage: ngstack check FILE [--offline]");
}

TEST(Cli, ControlCommands) {
  auto o = parse_args({"show", "fib", "--json", "--prefix", "lab"});
  ASSERT_TRUE(o.ok()) << o.error();
  EXPECT_EQ(o->command, Command::control);
  auto r = parse_control_args(o->script_args);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->prefix, "lab");
  EXPECT_EQ(r->words, (std::vector<std::string>{"show", "fib", "--json"}));
  auto c = parse_control(r->words);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->kind, ControlCommand::Kind::show);
  EXPECT_EQ(c->section, "fib");
  EXPECT_TRUE(c->json);
  EXPECT_EQ(parse_control_args({"show", "arp", "--prefix=x"})->prefix, "x");

  c = parse_control({"set", "netisr", "ip", "policy", "source", "mode", "deferred", "qlimit", "512"});
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_EQ(c->kind, ControlCommand::Kind::set_netisr);
  EXPECT_EQ(c->proto, "ip");
  EXPECT_EQ(*c->policy, dispatch::Policy::source);
  EXPECT_EQ(*c->mode, dispatch::Mode::deferred);
  EXPECT_EQ(*c->qlimit, 512u);
  c = parse_control({"set", "netisr", "buckets", "0,1,1,0"});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->buckets, (std::vector<uint16_t>{0, 1, 1, 0}));

  c = parse_control({"route", "add", "198.19.200.0/24", "via", "198.19.1.2"});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->kind, ControlCommand::Kind::route_add);
  EXPECT_EQ(c->prefix.addr, 0xc613c800u);
  EXPECT_EQ(c->prefix.len, 24);
  EXPECT_EQ(c->action, conf::RouteAction::forward);
  EXPECT_EQ(c->via, 0xc6130102u);
  EXPECT_EQ(parse_control({"route", "add", "0.0.0.0/0", "reject"})->action, conf::RouteAction::reject);
  EXPECT_EQ(parse_control({"route", "del", "10.0.0.0/8"})->kind, ControlCommand::Kind::route_del);

  c = parse_control({"arp", "add", "198.19.1.77", "02:00:00:00:00:77", "p1"});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->addr, 0xc613014du);
  EXPECT_EQ(c->mac.addr_bytes[5], 0x77);
  EXPECT_EQ(c->port, "p1");
  c = parse_control({"arp", "del", "198.19.1.77"});
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->port.empty());
}

TEST(Cli, ControlErrors) {
  auto starts = [](const Result<ControlCommand>& c, const std::string& want) {
    return !c.ok() && c.error().rfind(want, 0) == 0;
  };
  EXPECT_TRUE(starts(parse_control({"show"}), "show: what?"));
  EXPECT_TRUE(starts(parse_control({"show", "routes"}), "show: unknown table \"routes\""));
  EXPECT_TRUE(starts(parse_control({"show", "fib", "arp"}), "show: unexpected \"arp\""));
  EXPECT_TRUE(starts(parse_control({"set", "fib"}), "set: only \"set netisr\" exists"));
  EXPECT_TRUE(starts(parse_control({"set", "netisr", "ip"}), "set netisr: PROTO and at least one setting"));
  EXPECT_TRUE(starts(parse_control({"set", "netisr", "ip", "mode"}), "set netisr ip: settings come as KEY VALUE"));
  EXPECT_TRUE(starts(parse_control({"set", "netisr", "ip", "policy", "rss"}), "set netisr: unknown policy \"rss\""));
  EXPECT_TRUE(starts(parse_control({"set", "netisr", "ip", "qlimit", "-1"}), "set netisr qlimit: expected an integer"));
  EXPECT_TRUE(starts(parse_control({"set", "netisr", "buckets", "0,x"}), "set netisr buckets: expected an integer"));
  EXPECT_TRUE(starts(parse_control({"set", "netisr", "buckets", "0,1,"}), "set netisr buckets: empty entry"));
  EXPECT_TRUE(starts(parse_control({"route", "add", "198.19.200.0", "reject"}), "route add: expected an IPv4 prefix"));
  EXPECT_TRUE(starts(parse_control({"route", "add", "198.19.200.0/24", "via", "h2"}), "route add: expected an IPv4 address"));
  EXPECT_TRUE(starts(parse_control({"route", "add", "198.19.200.0/24", "drop"}), "route add: expected via, blackhole"));
  EXPECT_TRUE(starts(parse_control({"route", "flush"}), "route: add or del"));
  EXPECT_TRUE(starts(parse_control({"arp", "add", "198.19.1.77", "02:00:00:00:00:77"}), "arp add: ADDRESS MAC PORT"));
  EXPECT_TRUE(starts(parse_control({"arp", "add", "198.19.1.77", "0200.0000.0077", "p1"}), "arp add: expected a MAC"));
  EXPECT_TRUE(starts(parse_control({"ping"}), "unknown command \"ping\""));
  EXPECT_EQ(parse_args({"show", "ports", "--prefix"}).error(), "--prefix needs a value (the instance's eal.file_prefix)");
  EXPECT_EQ(parse_args({"route", "del", "10.0.0.0/8", "--json"}).error().rfind("route del: one PREFIX", 0), 0u);
}

TEST(Preflight, Root) {
  EXPECT_TRUE(check_root(0).ok());
  EXPECT_EQ(check_root(1000).error(),
            "ngstack must run as root: DPDK needs raw sockets, hugepages and /var/run/dpdk (try: sudo ngstack ...)");
}

TEST(Preflight, Hugepages) {
  const std::string mounted = "nodev /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n";
  EXPECT_TRUE(check_hugepages("HugePages_Total:     512\nHugePages_Free:      512\n", mounted).ok());
  auto none = check_hugepages("HugePages_Total:       0\nHugePages_Free:        0\n", mounted);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error(),
            "no free hugepages are reserved; reserve and mount some (echo 1024 > "
            "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages; mount -t hugetlbfs nodev /dev/hugepages, or "
            "run deploy/hugepages.sh), or set eal.no_huge: true to run on ordinary memory");
  auto unmounted = check_hugepages("HugePages_Free:      512\n", "proc /proc proc rw 0 0\n");
  ASSERT_FALSE(unmounted.ok());
  EXPECT_EQ(unmounted.error().substr(0, 24), "no hugetlbfs is mounted;");
}

TEST(Embedded, ConfigLoadsAndCaptureIsValid) {
  auto cfg = conf::load_string(embedded_config_yaml("/tmp/x.pcap", 0, 1, "p"), "<embedded>");
  ASSERT_TRUE(cfg.ok()) << cfg.error();
  EXPECT_TRUE(cfg->eal.no_huge);
  EXPECT_EQ(cfg->mode, conf::Mode::router);
  ASSERT_EQ(cfg->ports.size(), 2u);

  const std::string path = ::testing::TempDir() + "/flows.pcap";
  ASSERT_TRUE(write_flow_pcap(path, 3, 60, kPcapPort0Mac).ok());
  const std::string data = read_text_file(path);
  ASSERT_EQ(data.size(), 24u + 3 * (16 + 60));
  const auto* frame = reinterpret_cast<const unsigned char*>(data.data() + 24 + 16);
  EXPECT_EQ(frame[1], 0x70) << "addressed to net_pcap0's MAC";
  EXPECT_EQ(frame[12], 0x08);
  EXPECT_EQ(frame[13], 0x00);
  // The IPv4 header checksum verifies: the one's complement sum is 0xffff.
  uint32_t sum = 0;
  for (int i = 0; i < 20; i += 2) sum += static_cast<uint32_t>(frame[14 + i] << 8 | frame[15 + i]);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  EXPECT_EQ(sum, 0xffffu);
}

TEST(Json, EscapesAndNests) {
  JsonWriter j;
  j.begin_object().value("a", "x\"y\n").begin_array("b").begin_object().value("n", uint64_t{7}).end_object().end_array();
  j.value("ok", true).value("r", 0.5).end_object();
  EXPECT_EQ(j.str(), R"({"a":"x\"y\n","b":[{"n":7}],"ok":true,"r":0.5})");
}
