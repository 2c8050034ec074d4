#include "stack/ipv4/icmp.hpp"

#include <rte_byteorder.h>
#include <rte_icmp.h>
#include <rte_ip.h>

// A fresh mbuf's headroom (RTE_PKTMBUF_HEADROOM, 128 bytes) leaves room for the
// Ethernet (and VLAN) header that output prepends.
static_assert(RTE_PKTMBUF_HEADROOM >= 64);

#include <algorithm>
#include <cstring>

namespace ngstack::stack::ipv4 {

namespace {
constexpr uint16_t kMaxErrorLen = 576;  // RFC 1812 §4.3.2.3

bool unique_host(uint32_t a) {
  return a != 0 && a != 0xffffffffu && (a >> 24) != 127 && (a >> 28) != 0xe && (a >> 28) != 0xf;
}

uint16_t checksum(const void* p, std::size_t len) { return static_cast<uint16_t>(~rte_raw_cksum(p, len)); }
}  // namespace

bool may_send_error(const rte_mbuf* m, uint16_t l3_offset, bool link_broadcast) {
  if (link_broadcast) return false;
  if (rte_pktmbuf_data_len(m) < l3_offset + sizeof(rte_ipv4_hdr)) return false;
  const auto* ip = rte_pktmbuf_mtod_offset(m, const rte_ipv4_hdr*, l3_offset);
  const uint32_t src = rte_be_to_cpu_32(ip->src_addr), dst = rte_be_to_cpu_32(ip->dst_addr);
  if (!unique_host(src) || dst == 0xffffffffu || (dst >> 28) == 0xe) return false;
  if (rte_be_to_cpu_16(ip->fragment_offset) & RTE_IPV4_HDR_OFFSET_MASK) return false;  // not the first fragment
  if (ip->next_proto_id == IPPROTO_ICMP) {
    const uint16_t hlen = static_cast<uint16_t>((ip->version_ihl & 0x0f) * 4);
    if (rte_pktmbuf_data_len(m) < l3_offset + hlen + 1) return false;
    const uint8_t type = *rte_pktmbuf_mtod_offset(m, const uint8_t*, l3_offset + hlen);
    // Only queries (echo, timestamp, ...) may draw an error; not errors.
    const bool is_error = type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
    if (is_error) return false;
  }
  return true;
}

rte_mbuf* build_error(rte_mempool* pool, const rte_mbuf* orig, uint16_t l3_offset, IcmpError error,
                      uint32_t our_addr, uint16_t mtu) {
  const auto* oip = rte_pktmbuf_mtod_offset(orig, const rte_ipv4_hdr*, l3_offset);
  const uint16_t avail = static_cast<uint16_t>(rte_pktmbuf_data_len(orig) - l3_offset);
  const uint16_t orig_len = std::min<uint16_t>(avail, rte_be_to_cpu_16(oip->total_length));
  const uint16_t quote = std::min<uint16_t>(orig_len, kMaxErrorLen - sizeof(rte_ipv4_hdr) - sizeof(rte_icmp_hdr));

  rte_mbuf* m = rte_pktmbuf_alloc(pool);
  if (!m) return nullptr;
  const uint16_t len = static_cast<uint16_t>(sizeof(rte_ipv4_hdr) + sizeof(rte_icmp_hdr) + quote);
  auto* data = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, len));
  if (!data) {
    rte_pktmbuf_free(m);
    return nullptr;
  }
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(data);
  std::memset(ip, 0, sizeof *ip);
  ip->version_ihl = RTE_IPV4_VHL_DEF;
  ip->total_length = rte_cpu_to_be_16(len);
  ip->time_to_live = 64;
  ip->next_proto_id = IPPROTO_ICMP;
  ip->src_addr = rte_cpu_to_be_32(our_addr);
  ip->dst_addr = oip->src_addr;
  ip->hdr_checksum = rte_ipv4_cksum(ip);

  auto* icmp = reinterpret_cast<rte_icmp_hdr*>(data + sizeof(rte_ipv4_hdr));
  std::memset(icmp, 0, sizeof *icmp);
  switch (error) {
    case IcmpError::net_unreachable: icmp->icmp_type = 3, icmp->icmp_code = 0; break;
    case IcmpError::host_unreachable: icmp->icmp_type = 3, icmp->icmp_code = 1; break;
    case IcmpError::protocol_unreachable: icmp->icmp_type = 3, icmp->icmp_code = 2; break;
    case IcmpError::port_unreachable: icmp->icmp_type = 3, icmp->icmp_code = 3; break;
    case IcmpError::frag_needed:
      icmp->icmp_type = 3, icmp->icmp_code = 4;
      icmp->icmp_seq_nb = rte_cpu_to_be_16(mtu);  // RFC 1191: next-hop MTU in the low 16 bits
      break;
    case IcmpError::ttl_exceeded: icmp->icmp_type = 11, icmp->icmp_code = 0; break;
  }
  std::memcpy(data + sizeof(rte_ipv4_hdr) + sizeof(rte_icmp_hdr), oip, quote);
  icmp->icmp_cksum = checksum(icmp, sizeof(rte_icmp_hdr) + quote);
  m->l3_len = sizeof(rte_ipv4_hdr);
  return m;
}

bool echo_reply_in_place(rte_mbuf* m, uint16_t l3_offset) {
  // A reassembled datagram is a chain: the headers must sit in the first
  // segment; the payload may run on (the checksum update is incremental).
  const uint32_t seg = rte_pktmbuf_data_len(m);
  if (seg < l3_offset + sizeof(rte_ipv4_hdr)) return false;
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, l3_offset);
  const uint16_t hlen = static_cast<uint16_t>((ip->version_ihl & 0x0f) * 4);
  const uint16_t total = rte_be_to_cpu_16(ip->total_length);
  if (ip->next_proto_id != IPPROTO_ICMP || hlen < sizeof(rte_ipv4_hdr) || total < hlen + sizeof(rte_icmp_hdr) ||
      l3_offset + hlen + sizeof(rte_icmp_hdr) > seg || l3_offset + total > rte_pktmbuf_pkt_len(m))
    return false;
  auto* icmp = reinterpret_cast<rte_icmp_hdr*>(reinterpret_cast<uint8_t*>(ip) + hlen);
  if (icmp->icmp_type != RTE_IP_ICMP_ECHO_REQUEST || icmp->icmp_code != 0) return false;
  const rte_be32_t src = ip->src_addr;  // packed fields: no std::swap
  ip->src_addr = ip->dst_addr;
  ip->dst_addr = src;
  ip->time_to_live = 64;
  ip->hdr_checksum = 0;
  ip->hdr_checksum = checksum(ip, hlen);
  icmp->icmp_type = RTE_IP_ICMP_ECHO_REPLY;
  // RFC 1624: type 8 -> 0 lowers the first 16-bit word by 0x0800, so the
  // one's complement checksum rises by 0x0800 (with end-around carry).
  uint32_t sum = static_cast<uint32_t>(rte_be_to_cpu_16(icmp->icmp_cksum)) + 0x0800;
  sum = (sum & 0xffff) + (sum >> 16);
  icmp->icmp_cksum = rte_cpu_to_be_16(static_cast<uint16_t>(sum));
  return true;
}

bool parse_received_error(const rte_mbuf* m, uint16_t l3_offset, uint16_t l3_len, ReceivedError* out) {
  const auto* ip = rte_pktmbuf_mtod_offset(m, const rte_ipv4_hdr*, l3_offset);
  const uint32_t total = rte_be_to_cpu_16(ip->total_length);
  const uint32_t seg = rte_pktmbuf_data_len(m);
  constexpr uint32_t kQuoted = sizeof(rte_ipv4_hdr) + 8;
  if (total < l3_len + sizeof(rte_icmp_hdr) + kQuoted || l3_offset + total > seg) return false;
  const auto* icmp = reinterpret_cast<const rte_icmp_hdr*>(reinterpret_cast<const uint8_t*>(ip) + l3_len);
  switch (icmp->icmp_type) {
    case 3:   // destination unreachable
    case 4:   // source quench
    case 11:  // time exceeded
    case 12:  // parameter problem
      break;
    default: return false;
  }
  // The one's complement sum of a valid message, its checksum included, is 0xffff.
  if (checksum(icmp, total - l3_len) != 0) return false;
  const auto* inner = reinterpret_cast<const rte_ipv4_hdr*>(reinterpret_cast<const uint8_t*>(icmp) + sizeof(rte_icmp_hdr));
  const uint32_t inner_hlen = (inner->version_ihl & 0x0f) * 4u;
  if ((inner->version_ihl >> 4) != 4 || inner_hlen < sizeof(rte_ipv4_hdr) ||
      total < l3_len + sizeof(rte_icmp_hdr) + inner_hlen + 8)
    return false;
  out->type = icmp->icmp_type;
  out->code = icmp->icmp_code;
  out->inner_offset = static_cast<uint16_t>(l3_offset + l3_len + sizeof(rte_icmp_hdr));
  out->inner_proto = inner->next_proto_id;
  return true;
}

}  // namespace ngstack::stack::ipv4
