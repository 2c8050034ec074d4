// ICMP as a router sends it: when an error may be sent (RFC 1812 §4.3.2.7),
// the error message itself (checksums, quote within 576 bytes, next-hop MTU),
// the echo reply, and the rate limiter.
#include <gtest/gtest.h>
#include <rte_icmp.h>
#include <rte_ip.h>

#include "stack/ipv4/icmp.hpp"
#include "tests/lib/eal_env.hpp"
#include "tests/lib/packet_builder.hpp"

using namespace ngstack;
using namespace ngstack::stack::ipv4;
using ngstack::test::ip;
using ngstack::test::Ipv4Frame;

namespace {

rte_mempool* pool() { return test::pool("icmp", 255, 2048); }

// Frame with an ICMP header of `type` (and a valid ICMP checksum) as payload.
std::vector<uint8_t> icmp_frame(uint8_t type, uint16_t data = 32) {
  Ipv4Frame f;
  f.proto = IPPROTO_ICMP;
  f.payload = static_cast<uint16_t>(8 + data);
  auto b = f.bytes();
  uint8_t* icmp = &b[34];
  icmp[0] = type;
  icmp[4] = 0x12, icmp[5] = 0x34, icmp[6] = 0, icmp[7] = 1;  // id, seq
  for (uint16_t i = 0; i < data; ++i) icmp[8 + i] = static_cast<uint8_t>(i);
  const uint16_t ck = static_cast<uint16_t>(~rte_raw_cksum(icmp, 8 + data));
  std::memcpy(icmp + 2, &ck, 2);
  return b;
}

bool may(const std::vector<uint8_t>& bytes, bool link_broadcast = false) {
  rte_mbuf* m = test::to_mbuf(pool(), bytes);
  const bool r = may_send_error(m, 14, link_broadcast);
  rte_pktmbuf_free(m);
  return r;
}

bool sums_to_ffff(const void* p, std::size_t len) { return rte_raw_cksum(p, len) == 0xffff; }

}  // namespace

TEST(IcmpErrors, WhenAnErrorMayBeSent) {
  EXPECT_TRUE(may(Ipv4Frame{}.bytes()));
  EXPECT_FALSE(may(Ipv4Frame{}.bytes(), true)) << "arrived as a link-layer broadcast";
  for (uint32_t dst : {ip(255, 255, 255, 255), ip(224, 0, 0, 9)}) {
    Ipv4Frame f;
    f.dst = dst;
    EXPECT_FALSE(may(f.bytes())) << std::hex << dst;
  }
  for (uint32_t src : {0u, ip(127, 0, 0, 1), ip(224, 1, 2, 3), ip(255, 255, 255, 255), ip(240, 0, 0, 1)}) {
    Ipv4Frame f;
    f.src = src;
    EXPECT_FALSE(may(f.bytes())) << "source not a unique host: " << std::hex << src;
  }
  Ipv4Frame frag;
  frag.frag = 0x2000;  // MF, offset 0: the first fragment
  EXPECT_TRUE(may(frag.bytes()));
  frag.frag = 0x0010;  // offset 128 bytes: not the first
  EXPECT_FALSE(may(frag.bytes()));
  EXPECT_TRUE(may(icmp_frame(RTE_IP_ICMP_ECHO_REQUEST))) << "a query may draw an error";
  for (uint8_t t : {3, 4, 5, 11, 12}) EXPECT_FALSE(may(icmp_frame(t))) << "never about an ICMP error, type " << int(t);
}

TEST(IcmpErrors, TimeExceededQuotesWithin576Bytes) {
  Ipv4Frame f;
  f.payload = 1000;
  f.ttl = 1;
  const auto orig = f.bytes();
  rte_mbuf* o = test::to_mbuf(pool(), orig);
  rte_mbuf* e = build_error(pool(), o, 14, IcmpError::ttl_exceeded, ip(198, 18, 1, 1));
  ASSERT_NE(e, nullptr);
  ASSERT_EQ(rte_pktmbuf_pkt_len(e), 576u) << "RFC 1812 §4.3.2.3";
  const auto* h = rte_pktmbuf_mtod(e, const rte_ipv4_hdr*);
  EXPECT_TRUE(sums_to_ffff(h, 20)) << "IP header checksum";
  EXPECT_EQ(rte_be_to_cpu_32(h->src_addr), ip(198, 18, 1, 1));
  EXPECT_EQ(rte_be_to_cpu_32(h->dst_addr), f.src) << "to the offending packet's source";
  EXPECT_EQ(h->next_proto_id, IPPROTO_ICMP);
  const auto* icmp = rte_pktmbuf_mtod_offset(e, const uint8_t*, 20);
  EXPECT_EQ(icmp[0], 11);
  EXPECT_EQ(icmp[1], 0);
  EXPECT_TRUE(sums_to_ffff(icmp, 576 - 20)) << "ICMP checksum";
  EXPECT_EQ(std::memcmp(icmp + 8, &orig[14], 576 - 28), 0) << "the original IP header and payload, quoted";
  EXPECT_GE(rte_pktmbuf_headroom(e), 64) << "room for the link header";
  rte_pktmbuf_free(o);
  rte_pktmbuf_free(e);
}

TEST(IcmpErrors, FragNeededCarriesTheNextHopMtuAndShortPacketsAreQuotedWhole) {
  Ipv4Frame f;
  f.payload = 30;
  f.padding = 6;  // padding is not part of the packet and is not quoted
  rte_mbuf* o = test::to_mbuf(pool(), f.bytes());
  rte_mbuf* e = build_error(pool(), o, 14, IcmpError::frag_needed, ip(198, 19, 1, 1), 1400);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(rte_pktmbuf_pkt_len(e), 20u + 8 + 50);
  const auto* icmp = rte_pktmbuf_mtod_offset(e, const uint8_t*, 20);
  EXPECT_EQ(icmp[0], 3);
  EXPECT_EQ(icmp[1], 4);
  EXPECT_EQ(icmp[6] << 8 | icmp[7], 1400) << "RFC 1191 next-hop MTU";
  EXPECT_TRUE(sums_to_ffff(icmp, 8 + 50));
  rte_pktmbuf_free(o);
  rte_pktmbuf_free(e);
  for (auto [err, type, code] : {std::tuple{IcmpError::net_unreachable, 3, 0}, {IcmpError::host_unreachable, 3, 1},
                                 {IcmpError::protocol_unreachable, 3, 2}, {IcmpError::port_unreachable, 3, 3}}) {
    o = test::to_mbuf(pool(), Ipv4Frame{}.bytes());
    e = build_error(pool(), o, 14, err, ip(198, 18, 1, 1));
    EXPECT_EQ(rte_pktmbuf_mtod_offset(e, const uint8_t*, 20)[0], type);
    EXPECT_EQ(rte_pktmbuf_mtod_offset(e, const uint8_t*, 20)[1], code);
    rte_pktmbuf_free(o);
    rte_pktmbuf_free(e);
  }
  EXPECT_EQ(rte_mempool_avail_count(pool()), pool()->size);
}

TEST(IcmpEcho, ReplyInPlace) {
  auto req = icmp_frame(RTE_IP_ICMP_ECHO_REQUEST, 56);
  rte_mbuf* m = test::to_mbuf(pool(), req);
  ASSERT_TRUE(echo_reply_in_place(m, 14));
  const auto* h = rte_pktmbuf_mtod_offset(m, const rte_ipv4_hdr*, 14);
  EXPECT_EQ(rte_be_to_cpu_32(h->src_addr), Ipv4Frame{}.dst);
  EXPECT_EQ(rte_be_to_cpu_32(h->dst_addr), Ipv4Frame{}.src);
  EXPECT_TRUE(sums_to_ffff(h, 20));
  const auto* icmp = rte_pktmbuf_mtod_offset(m, const uint8_t*, 34);
  EXPECT_EQ(icmp[0], RTE_IP_ICMP_ECHO_REPLY);
  EXPECT_TRUE(sums_to_ffff(icmp, 8 + 56)) << "incrementally updated checksum verifies";
  EXPECT_EQ(std::memcmp(icmp + 4, &req[38], 4 + 56), 0) << "id, seq and data echoed";
  rte_pktmbuf_free(m);

  auto ts = icmp_frame(13);  // timestamp request: not an echo
  m = test::to_mbuf(pool(), ts);
  EXPECT_FALSE(echo_reply_in_place(m, 14));
  EXPECT_EQ(std::memcmp(rte_pktmbuf_mtod(m, const uint8_t*), ts.data(), ts.size()), 0) << "untouched";
  rte_pktmbuf_free(m);
}

TEST(IcmpRateLimit, TokenBucket) {
  TokenBucket b(10.0, 3.0, 1000);  // 10 per second, burst 3, a 1 kHz "TSC"
  EXPECT_TRUE(b.take(1));
  EXPECT_TRUE(b.take(1));
  EXPECT_TRUE(b.take(1));
  EXPECT_FALSE(b.take(1)) << "burst spent";
  EXPECT_FALSE(b.take(50)) << "half a token after 49 ms";
  EXPECT_TRUE(b.take(102)) << "a token (and a little) after 101 ms";
  EXPECT_FALSE(b.take(102));
  EXPECT_TRUE(b.take(10'000));
  EXPECT_TRUE(b.take(10'000));
  EXPECT_TRUE(b.take(10'000));
  EXPECT_FALSE(b.take(10'000)) << "never more than the burst, however long idle";
}
