#include "stack/arp/arp.hpp"

#include <rte_byteorder.h>

#include <cstring>

namespace ngstack::stack::arp {

bool parse(const rte_mbuf* m, Packet* out, DropReason* why) {
  if (rte_pktmbuf_data_len(m) < sizeof(rte_ether_hdr) + sizeof(rte_arp_hdr)) {
    *why = DropReason::arp_truncated;
    return false;
  }
  const auto* a = rte_pktmbuf_mtod_offset(m, const rte_arp_hdr*, sizeof(rte_ether_hdr));
  const uint16_t op = rte_be_to_cpu_16(a->arp_opcode);
  if (a->arp_hardware != rte_cpu_to_be_16(RTE_ARP_HRD_ETHER) || a->arp_protocol != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) ||
      a->arp_hlen != RTE_ETHER_ADDR_LEN || a->arp_plen != 4 || (op != RTE_ARP_OP_REQUEST && op != RTE_ARP_OP_REPLY)) {
    *why = DropReason::arp_bad_format;
    return false;
  }
  out->op = op;
  out->sha = a->arp_data.arp_sha;
  out->spa = rte_be_to_cpu_32(a->arp_data.arp_sip);
  out->tpa = rte_be_to_cpu_32(a->arp_data.arp_tip);
  return true;
}

rte_mbuf* build_request(rte_mempool* pool, const rte_ether_addr& our_mac, uint32_t our_addr, uint32_t target) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool);
  if (!m) return nullptr;
  auto* eth = reinterpret_cast<rte_ether_hdr*>(rte_pktmbuf_append(m, sizeof(rte_ether_hdr) + sizeof(rte_arp_hdr)));
  if (!eth) {
    rte_pktmbuf_free(m);
    return nullptr;
  }
  std::memset(&eth->dst_addr, 0xff, sizeof eth->dst_addr);
  eth->src_addr = our_mac;
  eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP);
  auto* a = reinterpret_cast<rte_arp_hdr*>(eth + 1);
  a->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
  a->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
  a->arp_hlen = RTE_ETHER_ADDR_LEN;
  a->arp_plen = 4;
  a->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REQUEST);
  a->arp_data.arp_sha = our_mac;
  a->arp_data.arp_sip = rte_cpu_to_be_32(our_addr);
  std::memset(&a->arp_data.arp_tha, 0, sizeof a->arp_data.arp_tha);
  a->arp_data.arp_tip = rte_cpu_to_be_32(target);
  return m;
}

void reply_in_place(rte_mbuf* m, const rte_ether_addr& our_mac) {
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  auto* a = reinterpret_cast<rte_arp_hdr*>(eth + 1);
  eth->dst_addr = a->arp_data.arp_sha;
  eth->src_addr = our_mac;
  a->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REPLY);
  a->arp_data.arp_tha = a->arp_data.arp_sha;
  const rte_be32_t asked = a->arp_data.arp_tip;
  a->arp_data.arp_tip = a->arp_data.arp_sip;
  a->arp_data.arp_sha = our_mac;
  a->arp_data.arp_sip = asked;
  // Ethernet pads short frames to 60 bytes; the reply keeps the request's length.
}

}  // namespace ngstack::stack::arp
