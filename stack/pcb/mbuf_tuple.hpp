// The 4-tuple of a received UDP or TCP packet, and of the datagram an ICMP
// error quotes: both transports carry their ports in the first four bytes
// of their header, so one reading serves the two connection tables.
// `m` has l2_len and l3_len set (ip input did that); only the first
// segment is read.
#pragma once

#include <rte_byteorder.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_mbuf.h>

#include "stack/pcb/pcb.hpp"

namespace ngstack::stack::pcb {

// A received packet's tuple, ours (the destination) as local; false when
// its ports do not lie in the first segment.
inline bool received_tuple(const rte_mbuf* m, FourTuple* t) {
  const uint32_t l4 = static_cast<uint32_t>(m->l2_len + m->l3_len);
  if (m->data_len < l4 + 4) return false;
  const auto* ip = rte_pktmbuf_mtod_offset(m, const rte_ipv4_hdr*, m->l2_len);
  const auto* ports = rte_pktmbuf_mtod_offset(m, const rte_be16_t*, l4);
  *t = {rte_be_to_cpu_32(ip->dst_addr), rte_be_to_cpu_32(ip->src_addr), rte_be_to_cpu_16(ports[1]),
        rte_be_to_cpu_16(ports[0])};
  return true;
}

// The tuple of the packet an ICMP error quotes, ours as local (we sent it:
// its source is ours); `quoted_l4` (optional) gets its transport header,
// of which at least 8 bytes are present. False when the quote does not lie
// in the first segment.
inline bool quoted_tuple(const rte_mbuf* m, FourTuple* t, const uint8_t** quoted_l4 = nullptr) {
  const uint32_t inner = static_cast<uint32_t>(m->l2_len + m->l3_len) + sizeof(rte_icmp_hdr);
  if (m->data_len < inner + sizeof(rte_ipv4_hdr)) return false;
  const auto* qip = rte_pktmbuf_mtod_offset(m, const rte_ipv4_hdr*, inner);
  const uint32_t ql4 = inner + (qip->version_ihl & 0x0f) * 4u;
  if (m->data_len < ql4 + 8) return false;
  const auto* ports = rte_pktmbuf_mtod_offset(m, const rte_be16_t*, ql4);
  *t = {rte_be_to_cpu_32(qip->src_addr), rte_be_to_cpu_32(qip->dst_addr), rte_be_to_cpu_16(ports[0]),
        rte_be_to_cpu_16(ports[1])};
  if (quoted_l4) *quoted_l4 = rte_pktmbuf_mtod_offset(m, const uint8_t*, ql4);
  return true;
}

// netisr's m2cpuid for a transport of `ip_proto` (or an ICMP error quoting
// one): the owner of the tuple's connection group; anything malformed stays
// on `source`, whose handler drops it.
inline unsigned owner_of_packet(const PcbTable& table, const rte_mbuf* m, uint8_t ip_proto, unsigned source) {
  const auto* ip = rte_pktmbuf_mtod_offset(m, const rte_ipv4_hdr*, m->l2_len);
  FourTuple t;
  const bool ok = ip->next_proto_id == ip_proto ? received_tuple(m, &t) : quoted_tuple(m, &t);
  return ok ? table.owner_of(t) : source;
}

}  // namespace ngstack::stack::pcb
