// ARP packets (RFC 826) for Ethernet and IPv4: parsing with bounds checks,
// requests (and gratuitous announcements) and replies in place.
#pragma once

#include <rte_arp.h>
#include <rte_ether.h>
#include <rte_mbuf.h>

#include <cstdint>

#include "stack/counters.hpp"

namespace ngstack::stack::arp {

struct Packet {
  uint16_t op = 0;        // RTE_ARP_OP_REQUEST or RTE_ARP_OP_REPLY
  rte_ether_addr sha{};   // sender hardware address
  uint32_t spa = 0;       // sender protocol address, host byte order
  uint32_t tpa = 0;       // target protocol address
};

// Parses the ARP packet after the Ethernet header. On failure returns false
// and sets the drop reason (arp_truncated, arp_bad_format).
bool parse(const rte_mbuf* m, Packet* out, DropReason* why);

// A request for `target` from (our_mac, our_addr), broadcast. With
// target == our_addr it is a gratuitous ARP (RFC 5227 announcement).
// nullptr when the pool is empty.
rte_mbuf* build_request(rte_mempool* pool, const rte_ether_addr& our_mac, uint32_t our_addr, uint32_t target);

// Turns a parsed request for our address into the reply, in place.
void reply_in_place(rte_mbuf* m, const rte_ether_addr& our_mac);

}  // namespace ngstack::stack::arp
