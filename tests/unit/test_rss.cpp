// RSS: the symmetric key really is symmetric, hash-type names, RETA layout.
#include <gtest/gtest.h>
#include <rte_ethdev.h>
#include <rte_thash.h>

#include "dispatch/rss.hpp"

using namespace ngstack::dispatch;

TEST(Rss, SymmetricKeyHashesBothDirectionsAlike) {
  const auto key = symmetric_rss_key(40);
  ASSERT_EQ(key.size(), 40u);
  for (uint32_t i = 0; i < 1000; ++i) {
    const uint32_t a = 0xc6120000 + i * 7919, b = 0xc6130000 + i * 104729;
    const uint16_t pa = static_cast<uint16_t>(1024 + i), pb = static_cast<uint16_t>(80 + i * 3);
    uint32_t fwd[3] = {a, b, static_cast<uint32_t>(pa) << 16 | pb};
    uint32_t rev[3] = {b, a, static_cast<uint32_t>(pb) << 16 | pa};
    EXPECT_EQ(rte_softrss(fwd, 3, key.data()), rte_softrss(rev, 3, key.data())) << i;
  }
}

TEST(Rss, KeyLengthsForEveryNic) {
  EXPECT_EQ(symmetric_rss_key(52).size(), 52u);
  EXPECT_EQ(symmetric_rss_key(52)[51], 0x5a);
}

TEST(Rss, HashTypeNames) {
  EXPECT_EQ(rss_type_from_name("ip"), RTE_ETH_RSS_IP);
  EXPECT_EQ(rss_type_from_name("ipv4-udp"), RTE_ETH_RSS_NONFRAG_IPV4_UDP);
  EXPECT_FALSE(rss_type_from_name("sctp").has_value());
}

TEST(Rss, RetaRoundRobin) {
  std::vector<uint16_t> reta(512);
  fill_reta_round_robin(reta, 3);
  for (std::size_t i = 0; i < reta.size(); ++i) EXPECT_EQ(reta[i], i % 3);
}
