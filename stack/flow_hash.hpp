// Software flow ids for packets whose NIC gave no RSS hash: the Toeplitz hash
// a NIC would have computed, with the same key, so that software and hardware
// put a flow in the same bucket. TCP/UDP over unfragmented IPv4 hashes the
// 4-tuple (RSS types ipv4-tcp/ipv4-udp); other IPv4 (fragments included, as
// a NIC does) the 2-tuple; anything else has no flow id (the dispatcher then
// hashes the ingress port and queue). One 802.1Q tag is looked through.
#pragma once

#include <rte_mbuf.h>

#include <cstdint>

#include "dispatch/toeplitz.hpp"

namespace ngstack::stack {

// netisr m2flow: `ctx` is a dispatch::ToeplitzHash built from the ports' key.
bool ipv4_flow_id(const void* ctx, const rte_mbuf* m, uint32_t* flow_id);

}  // namespace ngstack::stack
