// IPv4 input validation and destination classification (RFC 791, RFC 1812
// §5.2.2 and §5.3.7), the first stage of ipv4_input for a burst.
//
// A packet passes the checks in the order RFC 1812 §5.2.2 lists them, and the
// first failure names its drop reason:
//   truncated        fewer bytes than an IPv4 header after the link header
//   bad_version      version != 4
//   bad_ihl          IHL < 5, or the header runs past the frame
//   bad_length       total length < header, or more than the frame holds
//                    (a frame *longer* than total length is Ethernet padding)
//   bad_checksum     the NIC said bad, or the software sum does not verify
//   bad_source       source is limited broadcast, multicast, class E,
//                    loopback, 0.0.0.0, or one of our own addresses (§5.3.7)
//   bad_destination  destination is 0.0.0.0 or loopback (martians)
// Passing packets are classified: local (one of our addresses), broadcast
// (255.255.255.255 or the directed broadcast of the ingress interface's
// subnet), multicast (224/4), or forward. TTL is the forwarding path's
// business (time exceeded), not input's: a packet for us is delivered
// whatever its TTL. IP options are not validated here: forwarding passes them
// through untouched and local delivery ignores them.
#pragma once

#include <rte_byteorder.h>
#include <rte_ip.h>
#include <rte_mbuf.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "stack/counters.hpp"

namespace ngstack::stack::ipv4 {

// An address of one of our interfaces (host byte order).
struct InterfaceAddress {
  uint16_t port = 0;  // DPDK port id
  uint32_t addr = 0;
  uint8_t prefix_len = 24;
  uint32_t mask() const { return prefix_len == 0 ? 0 : ~uint32_t{0} << (32 - prefix_len); }
  uint32_t broadcast() const { return (addr & mask()) | ~mask(); }
};

// Our addresses and our subnets' broadcasts. Every packet asks about its
// source and destination, and nearly every answer is no: a 64-bit filter
// (one bit per hashed address) answers most of them without the list walk.
class LocalAddresses {
 public:
  explicit LocalAddresses(std::vector<InterfaceAddress> addrs = {}) : addrs_(std::move(addrs)) {
    for (const auto& i : addrs_) {
      filter_ |= bit(i.addr);
      if (i.prefix_len < 31) filter_ |= bit(i.broadcast());
    }
  }
  // False: `a` is certainly neither ours nor one of our subnets' broadcasts.
  bool maybe_local(uint32_t a) const { return filter_ & bit(a); }
  bool is_own(uint32_t a) const {
    if (!maybe_local(a)) [[likely]] return false;
    for (const auto& i : addrs_)
      if (i.addr == a) return true;
    return false;
  }
  // The directed broadcast of a subnet attached to `port` (prefixes < /31).
  bool is_subnet_broadcast(uint32_t a, uint16_t port) const {
    if (!maybe_local(a)) [[likely]] return false;
    for (const auto& i : addrs_)
      if (i.port == port && i.prefix_len < 31 && i.broadcast() == a) return true;
    return false;
  }
  const std::vector<InterfaceAddress>& all() const { return addrs_; }

 private:
  static uint64_t bit(uint32_t a) { return uint64_t{1} << ((a * 0x9e3779b1u) >> 26); }
  std::vector<InterfaceAddress> addrs_;
  uint64_t filter_ = 0;
};

enum class Disposition : uint8_t { drop, local, broadcast, multicast, forward };

struct InputVerdict {
  Disposition disposition = Disposition::drop;
  DropReason reason = DropReason::kCount;  // set when disposition is drop
  uint16_t header_len = 0;                 // IHL in bytes
  uint16_t total_len = 0;                  // the IP total length (frame may carry padding after it)
};

// `l3_offset` is where the IPv4 header starts in the first segment.
namespace detail {
inline InputVerdict drop(DropReason r) { return InputVerdict{Disposition::drop, r, 0, 0}; }

// RFC 1071 over an IPv4 header (a multiple of 4 bytes), 32 bits at a time
// in registers: the one's complement sum folds the same in either byte
// order, and a correct header sums to 0xffff.
inline bool header_checksum_ok(const void* hdr, uint16_t hlen) {
  const auto* p = static_cast<const uint8_t*>(hdr);
  uint64_t sum = 0;
  auto word = [p](unsigned i) {
    uint32_t w;
    std::memcpy(&w, p + i, 4);
    return uint64_t{w};
  };
  // Nearly every header has no options: five words, no loop.
  if (hlen == sizeof(rte_ipv4_hdr)) [[likely]] {
    sum = word(0) + word(4) + word(8) + word(12) + word(16);
  } else {
    for (uint16_t i = 0; i < hlen; i += 4) sum += word(i);
  }
  sum = (sum & 0xffffffffu) + (sum >> 32);
  sum = (sum & 0xffffffffu) + (sum >> 32);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return sum == 0xffff;
}

inline bool martian_source(uint32_t s) {
  return s == 0 || s == 0xffffffffu || (s >> 28) == 0xe /* 224/4 */ || (s >> 28) == 0xf /* 240/4 */ ||
         (s >> 24) == 127;
}
}  // namespace detail

// Inline: it runs once per packet, and a returned InputVerdict built through
// memory costs a store-forwarding stall.
inline InputVerdict check_input(const rte_mbuf* m, uint16_t l3_offset, const LocalAddresses& local) {
  using detail::drop;
  using detail::martian_source;
  const uint32_t seg_len = rte_pktmbuf_data_len(m);
  if (seg_len < l3_offset + sizeof(rte_ipv4_hdr)) return drop(DropReason::ipv4_truncated);
  const auto* ip = rte_pktmbuf_mtod_offset(m, const rte_ipv4_hdr*, l3_offset);
  if ((ip->version_ihl >> 4) != 4) return drop(DropReason::ipv4_bad_version);
  const uint16_t hlen = static_cast<uint16_t>((ip->version_ihl & 0x0f) * 4);
  if (hlen < sizeof(rte_ipv4_hdr) || l3_offset + hlen > seg_len) return drop(DropReason::ipv4_bad_ihl);
  const uint16_t total = rte_be_to_cpu_16(ip->total_length);
  if (total < hlen || total > m->pkt_len - l3_offset) return drop(DropReason::ipv4_bad_length);

  const uint64_t ck = m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;
  if (ck == RTE_MBUF_F_RX_IP_CKSUM_BAD) return drop(DropReason::ipv4_bad_checksum);
  // The one's complement sum over a correct header, checksum included, is
  // 0xffff (RFC 1071).
  if (ck != RTE_MBUF_F_RX_IP_CKSUM_GOOD && !detail::header_checksum_ok(ip, hlen))
    return drop(DropReason::ipv4_bad_checksum);

  const uint32_t src = rte_be_to_cpu_32(ip->src_addr);
  const uint32_t dst = rte_be_to_cpu_32(ip->dst_addr);
  // RFC 1812 §5.3.7: never accept (or forward) from a martian or from ourselves.
  // One filter test per address answers the common case for both lists.
  if (martian_source(src) ||
      (local.maybe_local(src) && (local.is_own(src) || local.is_subnet_broadcast(src, m->port))))
    return drop(DropReason::ipv4_bad_source);
  if (dst == 0 || (dst >> 24) == 127) return drop(DropReason::ipv4_bad_destination);

  InputVerdict v{Disposition::forward, DropReason::kCount, hlen, total};
  if (local.maybe_local(dst) && local.is_own(dst))
    v.disposition = Disposition::local;
  else if (dst == 0xffffffffu || (local.maybe_local(dst) && local.is_subnet_broadcast(dst, m->port)))
    v.disposition = Disposition::broadcast;
  else if ((dst >> 28) == 0xe)
    v.disposition = Disposition::multicast;
  return v;
}


}  // namespace ngstack::stack::ipv4
