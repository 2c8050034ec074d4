// The UDP and TCP checksum check on receive (RFC 768, RFC 9293 §3.1): the
// one's complement sum of the pseudo header (source, destination, protocol,
// length) and the transport bytes, checksum included, is 0xffff when the
// checksum is right. Works on chained mbufs (reassembled datagrams).
#pragma once

#include <rte_byteorder.h>
#include <rte_ip.h>
#include <rte_mbuf.h>

namespace ngstack::stack::ipv4 {

inline bool l4_checksum_ok(const rte_mbuf* m, const rte_ipv4_hdr* ip, uint32_t l4_off, uint32_t l4_len,
                           uint8_t proto) {
  uint32_t sum = 0;
  const rte_be32_t src = ip->src_addr, dst = ip->dst_addr;  // packed fields: copies
  sum += (src & 0xffff) + (src >> 16) + (dst & 0xffff) + (dst >> 16);  // network order, as the data
  sum += rte_cpu_to_be_16(proto) + rte_cpu_to_be_16(static_cast<uint16_t>(l4_len));
  uint16_t raw = 0;
  if (m->data_len >= l4_off + l4_len) {
    raw = rte_raw_cksum(rte_pktmbuf_mtod_offset(m, const uint8_t*, l4_off), l4_len);
  } else if (rte_raw_cksum_mbuf(m, l4_off, l4_len, &raw) != 0) {
    return false;  // shorter than its length
  }
  sum += raw;
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return sum == 0xffff;
}

}  // namespace ngstack::stack::ipv4
