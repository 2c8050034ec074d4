#include "stack/ipv4/input.hpp"

#include <rte_byteorder.h>
#include <rte_ip.h>

namespace ngstack::stack::ipv4 {

namespace {
InputVerdict drop(DropReason r) { return InputVerdict{Disposition::drop, r, 0, 0}; }

bool martian_source(uint32_t s) {
  return s == 0 || s == 0xffffffffu || (s >> 28) == 0xe /* 224/4 */ || (s >> 28) == 0xf /* 240/4 */ ||
         (s >> 24) == 127;
}
}  // namespace

InputVerdict check_input(const rte_mbuf* m, uint16_t l3_offset, const LocalAddresses& local) {
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
  if (ck != RTE_MBUF_F_RX_IP_CKSUM_GOOD && rte_raw_cksum(ip, hlen) != 0xffff)
    return drop(DropReason::ipv4_bad_checksum);

  const uint32_t src = rte_be_to_cpu_32(ip->src_addr);
  const uint32_t dst = rte_be_to_cpu_32(ip->dst_addr);
  // RFC 1812 §5.3.7: never accept (or forward) from a martian or from ourselves.
  if (martian_source(src) || local.is_own(src) || local.is_subnet_broadcast(src, m->port))
    return drop(DropReason::ipv4_bad_source);
  if (dst == 0 || (dst >> 24) == 127) return drop(DropReason::ipv4_bad_destination);

  InputVerdict v{Disposition::forward, DropReason::kCount, hlen, total};
  if (local.is_own(dst))
    v.disposition = Disposition::local;
  else if (dst == 0xffffffffu || local.is_subnet_broadcast(dst, m->port))
    v.disposition = Disposition::broadcast;
  else if ((dst >> 28) == 0xe)
    v.disposition = Disposition::multicast;
  return v;
}

}  // namespace ngstack::stack::ipv4
