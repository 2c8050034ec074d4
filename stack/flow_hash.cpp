#include "stack/flow_hash.hpp"

#include <rte_ether.h>
#include <rte_ip.h>

#include <cstring>

namespace ngstack::stack {

bool ipv4_flow_id(const void* ctx, const rte_mbuf* m, uint32_t* flow_id) {
  const auto& toeplitz = *static_cast<const dispatch::ToeplitzHash*>(ctx);
  const uint32_t len = rte_pktmbuf_data_len(m);
  const auto* data = rte_pktmbuf_mtod(m, const uint8_t*);
  uint32_t off = sizeof(rte_ether_hdr);
  if (len < off) return false;
  uint16_t type = reinterpret_cast<const rte_ether_hdr*>(data)->ether_type;
  if (type == rte_cpu_to_be_16(RTE_ETHER_TYPE_VLAN)) {
    if (len < off + sizeof(rte_vlan_hdr)) return false;
    type = reinterpret_cast<const rte_vlan_hdr*>(data + off)->eth_proto;
    off += sizeof(rte_vlan_hdr);
  }
  if (type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) || len < off + sizeof(rte_ipv4_hdr)) return false;
  const auto* ip = reinterpret_cast<const rte_ipv4_hdr*>(data + off);
  const uint32_t ihl = (ip->version_ihl & 0x0f) * 4u;
  if ((ip->version_ihl >> 4) != 4 || ihl < sizeof(rte_ipv4_hdr)) return false;
  // The hash input is the wire bytes: src addr, dst addr, then the ports.
  uint8_t tuple[12];
  std::memcpy(tuple, &ip->src_addr, 4);
  std::memcpy(tuple + 4, &ip->dst_addr, 4);
  const bool fragment = (ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)) != 0;
  const bool l4 = (ip->next_proto_id == IPPROTO_TCP || ip->next_proto_id == IPPROTO_UDP) && !fragment &&
                  len >= off + ihl + 4;
  if (l4) std::memcpy(tuple + 8, data + off + ihl, 4);
  *flow_id = toeplitz.hash(tuple, l4 ? 12 : 8);
  return true;
}

}  // namespace ngstack::stack
