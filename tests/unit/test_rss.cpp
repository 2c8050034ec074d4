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

// --- table-driven Toeplitz and the IPv4 flow id ------------------------------

#include <rte_ether.h>
#include <rte_ip.h>

#include <random>

#include "dispatch/toeplitz.hpp"
#include "stack/flow_hash.hpp"

namespace {
// The Microsoft RSS verification suite's key and IPv4 vectors.
const std::vector<uint8_t> kMsKey = {
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa};
struct MsVector {
  uint8_t dst[4];
  uint16_t dport;
  uint8_t src[4];
  uint16_t sport;
  uint32_t ipv4, ipv4_tcp;
};
const MsVector kMsVectors[] = {
    {{161, 142, 100, 80}, 1766, {66, 9, 149, 187}, 2794, 0x323e8fc2, 0x51ccc178},
    {{65, 69, 140, 83}, 4739, {199, 92, 111, 2}, 14230, 0xd718262a, 0xc626b0ea},
    {{12, 22, 207, 184}, 38024, {24, 19, 198, 95}, 12898, 0xd2d0a5de, 0x5c2b394a},
    {{209, 142, 163, 6}, 2217, {38, 27, 205, 30}, 48228, 0x82989176, 0xafc7327f},
    {{202, 188, 127, 2}, 1303, {153, 39, 163, 191}, 44251, 0x5d1809c5, 0x10e828a2},
};

// An mbuf over a stack buffer: enough for parsers, never freed.
struct FakeFrame {
  alignas(64) rte_mbuf m{};
  uint8_t data[128]{};
  FakeFrame(const MsVector& v, uint8_t proto, uint16_t frag = 0, uint16_t len = 54) {
    m.buf_addr = data;
    m.data_off = 0;
    m.data_len = len;
    m.pkt_len = len;
    auto* eth = reinterpret_cast<rte_ether_hdr*>(data);
    eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(data + 14);
    ip->version_ihl = 0x45;
    ip->next_proto_id = proto;
    ip->fragment_offset = rte_cpu_to_be_16(frag);
    memcpy(&ip->src_addr, v.src, 4);
    memcpy(&ip->dst_addr, v.dst, 4);
    const uint16_t ports[2] = {rte_cpu_to_be_16(v.sport), rte_cpu_to_be_16(v.dport)};
    memcpy(data + 34, ports, 4);
  }
};
}  // namespace

TEST(Toeplitz, MatchesRteSoftrssForRandomKeysAndInputs) {
  std::mt19937 rng(42);
  for (int k = 0; k < 20; ++k) {
    std::vector<uint8_t> key(40);
    for (auto& b : key) b = static_cast<uint8_t>(rng());
    ToeplitzHash t(key);
    for (int i = 0; i < 200; ++i) {
      uint32_t words[3] = {static_cast<uint32_t>(rng()), static_cast<uint32_t>(rng()), static_cast<uint32_t>(rng())};
      uint8_t bytes[12];
      for (int w = 0; w < 3; ++w)
        for (int b = 0; b < 4; ++b) bytes[w * 4 + b] = static_cast<uint8_t>(words[w] >> (24 - 8 * b));
      for (unsigned len : {1u, 2u, 3u}) ASSERT_EQ(t.hash(bytes, len * 4), rte_softrss(words, len, key.data()));
    }
  }
}

TEST(Toeplitz, MicrosoftVerificationVectorsThroughTheIpv4FlowId) {
  ToeplitzHash t(kMsKey);
  for (const auto& v : kMsVectors) {
    uint32_t flow = 0;
    FakeFrame tcp(v, IPPROTO_TCP);
    ASSERT_TRUE(ngstack::stack::ipv4_flow_id(&t, &tcp.m, &flow));
    EXPECT_EQ(flow, v.ipv4_tcp);
    FakeFrame other(v, IPPROTO_GRE);
    ASSERT_TRUE(ngstack::stack::ipv4_flow_id(&t, &other.m, &flow));
    EXPECT_EQ(flow, v.ipv4) << "non-TCP/UDP hashes the 2-tuple";
    FakeFrame fragment(v, IPPROTO_TCP, RTE_IPV4_HDR_MF_FLAG);
    ASSERT_TRUE(ngstack::stack::ipv4_flow_id(&t, &fragment.m, &flow));
    EXPECT_EQ(flow, v.ipv4) << "fragments hash the 2-tuple, as NICs do";
  }
}

TEST(Toeplitz, FlowIdRejectsWhatItCannotParse) {
  ToeplitzHash t(kMsKey);
  uint32_t flow = 0;
  FakeFrame runt(kMsVectors[0], IPPROTO_TCP, 0, 20);
  EXPECT_FALSE(ngstack::stack::ipv4_flow_id(&t, &runt.m, &flow));
  FakeFrame arp(kMsVectors[0], IPPROTO_TCP);
  reinterpret_cast<rte_ether_hdr*>(arp.data)->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP);
  EXPECT_FALSE(ngstack::stack::ipv4_flow_id(&t, &arp.m, &flow));
  FakeFrame bad_ihl(kMsVectors[0], IPPROTO_TCP);
  reinterpret_cast<rte_ipv4_hdr*>(bad_ihl.data + 14)->version_ihl = 0x44;
  EXPECT_FALSE(ngstack::stack::ipv4_flow_id(&t, &bad_ihl.m, &flow));
  FakeFrame truncated_ports(kMsVectors[0], IPPROTO_TCP, 0, 36);
  ASSERT_TRUE(ngstack::stack::ipv4_flow_id(&t, &truncated_ports.m, &flow));
  EXPECT_EQ(flow, kMsVectors[0].ipv4) << "no room for ports: 2-tuple";
}

TEST(Toeplitz, SymmetricKeyGivesBothDirectionsOneFlowId) {
  ToeplitzHash t(symmetric_rss_key(40));
  for (const auto& v : kMsVectors) {
    MsVector rev{{v.src[0], v.src[1], v.src[2], v.src[3]}, v.sport, {v.dst[0], v.dst[1], v.dst[2], v.dst[3]}, v.dport, 0, 0};
    FakeFrame a(v, IPPROTO_UDP), b(rev, IPPROTO_UDP);
    uint32_t fa = 0, fb = 0;
    ASSERT_TRUE(ngstack::stack::ipv4_flow_id(&t, &a.m, &fa));
    ASSERT_TRUE(ngstack::stack::ipv4_flow_id(&t, &b.m, &fb));
    EXPECT_EQ(fa, fb);
  }
}
