// Command line parsing and the pre-start checks (root, hugepages).
#include <gtest/gtest.h>

#include "app/cli.hpp"
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
  EXPECT_EQ(parse_args({"check", "x.yaml"})->command, Command::check);
  EXPECT_EQ(parse_args({"--help"})->command, Command::help);
  EXPECT_EQ(parse_args({"-V"})->command, Command::version);
}

TEST(Cli, Errors) {
  EXPECT_EQ(parse_args({"--duration", "0"}).error(), "--duration: expected a positive number of seconds, got \"0\"");
  EXPECT_EQ(parse_args({"-d", "soon"}).error(), "-d: expected a positive number of seconds, got \"soon\"");
  EXPECT_EQ(parse_args({"--config"}).error(), "--config needs a value");
  EXPECT_EQ(parse_args({"--frobnicate"}).error(), "unknown argument \"--frobnicate\" (see ngstack --help)");
  EXPECT_EQ(parse_args({"check"}).error(), "usage: ngstack check FILE");
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
