// Port bring-up: the rx offloads a port asks for (choose_rx_offloads, a pure
// function of the device's capabilities and the port's RSS), their names in
// the summary, and start_port on real virtual devices that offer none.
#include <gtest/gtest.h>
#include <rte_ethdev.h>

#include "app/ports.hpp"
#include "conf/loader.hpp"
#include "tests/lib/eal_env.hpp"

using namespace ngstack;
using namespace ngstack::app;

namespace {

constexpr uint64_t kIpv4 = RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
constexpr uint64_t kUdp = RTE_ETH_RX_OFFLOAD_UDP_CKSUM;
constexpr uint64_t kTcp = RTE_ETH_RX_OFFLOAD_TCP_CKSUM;
constexpr uint64_t kRssHash = RTE_ETH_RX_OFFLOAD_RSS_HASH;
constexpr uint64_t kChecksums = kIpv4 | kUdp | kTcp;
constexpr uint64_t kSomeRssTypes = RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP;

TEST(RxOffloads, NicWithEverythingGetsChecksumsAndHashOnly) {
  // A NIC offering far more (VLAN strip, scatter, LRO, timestamps...): only
  // what the stack uses is asked for, so nothing changes the frames.
  const uint64_t capa = kChecksums | kRssHash | RTE_ETH_RX_OFFLOAD_VLAN_STRIP | RTE_ETH_RX_OFFLOAD_SCATTER |
                        RTE_ETH_RX_OFFLOAD_TCP_LRO | RTE_ETH_RX_OFFLOAD_TIMESTAMP | RTE_ETH_RX_OFFLOAD_KEEP_CRC;
  const auto c = choose_rx_offloads(capa, kSomeRssTypes);
  EXPECT_EQ(c.requested, kChecksums | kRssHash);
  EXPECT_EQ(c.lacking, 0u);
}

TEST(RxOffloads, NoRssMeansNoHashRequested) {
  // ethdev refuses RSS_HASH without RSS; a port that does not hash neither
  // asks for it nor reports it missing.
  const auto c = choose_rx_offloads(kChecksums | kRssHash, 0);
  EXPECT_EQ(c.requested, kChecksums);
  EXPECT_EQ(c.lacking, 0u);
}

TEST(RxOffloads, PartialDeviceAsksForWhatItHasAndNamesTheRest) {
  const auto c = choose_rx_offloads(kIpv4 | kRssHash, kSomeRssTypes);
  EXPECT_EQ(c.requested, kIpv4 | kRssHash);
  EXPECT_EQ(c.lacking, kUdp | kTcp);
  const auto d = choose_rx_offloads(kChecksums, RTE_ETH_RSS_IPV4);
  EXPECT_EQ(d.requested, kChecksums);
  EXPECT_EQ(d.lacking, kRssHash);
}

// rte_eth_dev_info of DPDK 22.11's virtual devices, as probed on this
// machine (app/README.md has the table): they offer no checksum and no hash,
// so nothing is requested and rte_eth_dev_configure sees offloads 0.
TEST(RxOffloads, VirtualDevices) {
  struct Dev {
    const char* name;
    uint64_t capa, rss_types;
  };
  const Dev devs[] = {
      {"net_af_packet", RTE_ETH_RX_OFFLOAD_VLAN_STRIP, 0},
      {"net_pcap", 0, 0},
      {"net_ring", RTE_ETH_RX_OFFLOAD_SCATTER, 0},
      {"net_memif", 0, 0},
      // net_null reports RSS hash types (and a RETA) but no RSS_HASH offload.
      {"net_null", 0, 0x2003ffffc},
  };
  for (const auto& d : devs) {
    const auto c = choose_rx_offloads(d.capa, d.rss_types & kSomeRssTypes);
    EXPECT_EQ(c.requested, 0u) << d.name;
    EXPECT_EQ(c.lacking, kChecksums | (d.rss_types ? kRssHash : 0)) << d.name;
  }
  // net_tap verifies checksums in software and says so with the mbuf flags.
  const auto tap = choose_rx_offloads(kChecksums | RTE_ETH_RX_OFFLOAD_SCATTER, 0);
  EXPECT_EQ(tap.requested, kChecksums);
  EXPECT_EQ(tap.lacking, 0u);
}

TEST(RxOffloads, Names) {
  EXPECT_EQ(rx_offload_names(0), std::vector<std::string>{});
  EXPECT_EQ(rx_offload_names(kChecksums | kRssHash),
            (std::vector<std::string>{"ipv4_cksum", "udp_cksum", "tcp_cksum", "rss_hash"}));
  EXPECT_EQ(rx_offload_list(0), "none");
  EXPECT_EQ(rx_offload_list(kUdp | kRssHash), "udp_cksum, rss_hash");
}

// start_port on devices that offer none of the offloads: the port starts,
// requests nothing, and closes. net_null also takes the RSS branch (it has
// hash types and a RETA but no RSS_HASH offload and no key size).
TEST(RxOffloads, StartPortOnVirtualDevicesRequestsNothing) {
  rte_mempool* pool = test::pool("ports_pool", 4095, RTE_MBUF_DEFAULT_DATAROOM);
  auto cfg = conf::load_string(R"(mode: forwarder
eal: {main_lcore: 0, memory_mb: 256, no_huge: true, file_prefix: t-ports}
ports:
  - {name: a, device: "net_ring_ports0", rx_ring: 256, tx_ring: 256}
  - {name: b, device: "net_null_ports0,no-rx=1", rx_ring: 256, tx_ring: 256}
workers: {lcores: [1]}
forwarder: {paths: [{in: a, out: b}]}
)",
                               "t.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.error();
  auto ports = probe_ports(*cfg);
  ASSERT_TRUE(ports.ok()) << ports.error();
  ASSERT_EQ(ports->size(), 2u);
  for (std::size_t i = 0; i < ports->size(); ++i) {
    auto& p = (*ports)[i];
    ASSERT_TRUE(start_port(*cfg, i, p, pool).ok()) << p.name;
    EXPECT_TRUE(p.started);
    EXPECT_EQ(p.rx_offloads, 0u) << p.name;
  }
  EXPECT_EQ((*ports)[0].driver, "net_ring");
  EXPECT_EQ((*ports)[1].driver, "net_null");
  EXPECT_TRUE((*ports)[1].rss) << "net_null hashes (software RSS types), without the RSS_HASH offload";
  close_ports(*ports);
  EXPECT_TRUE(ports->empty());
}

}  // namespace
