// IPv4 input validation: every drop reason, in RFC 1812 order, and the
// destination classes, on real mbufs built by the packet builder.
#include <gtest/gtest.h>

#include "stack/ipv4/input.hpp"
#include "tests/lib/eal_env.hpp"
#include "tests/lib/packet_builder.hpp"

using namespace ngstack;
using namespace ngstack::stack;
using namespace ngstack::stack::ipv4;
using ngstack::test::ip;
using ngstack::test::Ipv4Frame;

namespace {

// Port 0: 198.18.1.1/24, port 1: 198.19.1.1/24.
const LocalAddresses kLocal({{0, ip(198, 18, 1, 1), 24}, {1, ip(198, 19, 1, 1), 24}});

InputVerdict check(const Ipv4Frame& f, uint64_t ol_flags = 0, uint16_t port = 0) {
  rte_mempool* pool = test::pool("ipv4_input", 255, 2048);
  rte_mbuf* m = test::to_mbuf(pool, f.bytes(), port);
  EXPECT_NE(m, nullptr);
  m->ol_flags |= ol_flags;
  const InputVerdict v = check_input(m, 14, kLocal);
  rte_pktmbuf_free(m);
  EXPECT_EQ(rte_mempool_avail_count(pool), pool->size);
  return v;
}

DropReason reason(const Ipv4Frame& f, uint64_t ol_flags = 0) {
  const InputVerdict v = check(f, ol_flags);
  EXPECT_EQ(v.disposition, Disposition::drop);
  return v.reason;
}

}  // namespace

TEST(Ipv4Input, ValidPacketIsForwarded) {
  const InputVerdict v = check(Ipv4Frame{});
  EXPECT_EQ(v.disposition, Disposition::forward);
  EXPECT_EQ(v.header_len, 20);
  EXPECT_EQ(v.total_len, 38);
}

TEST(Ipv4Input, DropReasonsInRfc1812Order) {
  Ipv4Frame f;
  f.ihl = 5;
  f.payload = 0;
  auto short_frame = f.bytes();
  short_frame.resize(14 + 19);
  rte_mempool* pool = test::pool("ipv4_input", 255, 2048);
  rte_mbuf* m = test::to_mbuf(pool, short_frame);
  EXPECT_EQ(check_input(m, 14, kLocal).reason, DropReason::ipv4_truncated);
  rte_pktmbuf_free(m);

  f = Ipv4Frame{};
  f.version = 6;
  EXPECT_EQ(reason(f), DropReason::ipv4_bad_version);

  f = Ipv4Frame{};
  f.ihl = 4;  // RFC 791: at least 5
  EXPECT_EQ(reason(f), DropReason::ipv4_bad_ihl);
  f = Ipv4Frame{};
  f.ihl = 15;  // 60-byte header, but the frame ends before it
  f.payload = 0;
  f.total_length = 60;
  auto cut = f.bytes();
  cut.resize(14 + 40);
  m = test::to_mbuf(pool, cut);
  EXPECT_EQ(check_input(m, 14, kLocal).reason, DropReason::ipv4_bad_ihl);
  rte_pktmbuf_free(m);

  f = Ipv4Frame{};
  f.total_length = 1500;  // longer than the frame: truncated in transit, or a lie
  EXPECT_EQ(reason(f), DropReason::ipv4_bad_length);
  f.total_length = 19;  // shorter than its own header
  EXPECT_EQ(reason(f), DropReason::ipv4_bad_length);

  f = Ipv4Frame{};
  f.corrupt_checksum = true;
  EXPECT_EQ(reason(f), DropReason::ipv4_bad_checksum);
}

TEST(Ipv4Input, ChecksumOffloadFlagsAreTrusted) {
  Ipv4Frame bad;
  bad.corrupt_checksum = true;
  EXPECT_EQ(check(bad, RTE_MBUF_F_RX_IP_CKSUM_GOOD).disposition, Disposition::forward)
      << "the NIC verified it; software does not repeat the work";
  EXPECT_EQ(reason(Ipv4Frame{}, RTE_MBUF_F_RX_IP_CKSUM_BAD), DropReason::ipv4_bad_checksum);
}

TEST(Ipv4Input, MartianAndOwnSources) {
  for (uint32_t src : {ip(255, 255, 255, 255), ip(224, 0, 0, 5), ip(240, 0, 0, 1), ip(127, 0, 0, 1), 0u,
                       ip(198, 18, 1, 1) /* ours */, ip(198, 18, 1, 255) /* our subnet's broadcast */}) {
    Ipv4Frame f;
    f.src = src;
    EXPECT_EQ(reason(f), DropReason::ipv4_bad_source) << std::hex << src;
  }
}

TEST(Ipv4Input, MartianDestinations) {
  for (uint32_t dst : {0u, ip(127, 0, 0, 1)}) {
    Ipv4Frame f;
    f.dst = dst;
    EXPECT_EQ(reason(f), DropReason::ipv4_bad_destination) << std::hex << dst;
  }
}

TEST(Ipv4Input, DestinationClasses) {
  Ipv4Frame f;
  f.dst = ip(198, 19, 1, 1);  // our address on the other port: still ours
  EXPECT_EQ(check(f).disposition, Disposition::local);
  f.dst = ip(255, 255, 255, 255);
  EXPECT_EQ(check(f).disposition, Disposition::broadcast);
  f.dst = ip(198, 18, 1, 255);  // directed broadcast of the ingress subnet
  EXPECT_EQ(check(f, 0, 0).disposition, Disposition::broadcast);
  EXPECT_EQ(check(f, 0, 1).disposition, Disposition::forward) << "another subnet's broadcast arriving on port 1";
  f.dst = ip(224, 0, 0, 251);
  EXPECT_EQ(check(f).disposition, Disposition::multicast);
}

TEST(Ipv4Input, TtlAndOptionsAreNotInputsBusiness) {
  Ipv4Frame f;
  f.ttl = 0;
  f.dst = ip(198, 18, 1, 1);
  EXPECT_EQ(check(f).disposition, Disposition::local) << "delivered to us whatever its TTL";
  f.dst = ip(198, 19, 1, 2);
  EXPECT_EQ(check(f).disposition, Disposition::forward) << "the forwarding path sends time exceeded";
  Ipv4Frame opts;
  opts.ihl = 8;  // 12 bytes of options (zeros: end of option list)
  const InputVerdict v = check(opts);
  EXPECT_EQ(v.disposition, Disposition::forward);
  EXPECT_EQ(v.header_len, 32);
}

TEST(Ipv4Input, EthernetPaddingIsNotAnError) {
  Ipv4Frame f;
  f.payload = 8;
  f.padding = 10;  // a short packet padded to the Ethernet minimum
  const InputVerdict v = check(f);
  EXPECT_EQ(v.disposition, Disposition::forward);
  EXPECT_EQ(v.total_len, 28);
}
