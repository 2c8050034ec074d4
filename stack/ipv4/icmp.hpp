// ICMP (RFC 792) as a router sends it (RFC 1812 §4.3): echo replies for our
// addresses, and error messages about packets we cannot deliver or forward.
//
// Errors are never sent (RFC 1812 §4.3.2.7) about: an ICMP error message; a
// packet to a broadcast or multicast address, or that came as a link-layer
// broadcast; a packet whose source is not a unique host (0.0.0.0, loopback,
// broadcast, multicast, class E); a fragment other than the first. They are
// rate-limited per worker by a token bucket (§4.3.2.8), whose empty bucket is
// a counted drop, not an error.
#pragma once

#include <rte_mbuf.h>

#include <cstdint>

#include "stack/token_bucket.hpp"

namespace ngstack::stack::ipv4 {

enum class IcmpError : uint8_t {
  net_unreachable,    // type 3 code 0: no route
  host_unreachable,   // type 3 code 1: no ARP answer for the next hop
  protocol_unreachable,  // type 3 code 2: a protocol we do not serve, sent to us
  port_unreachable,   // type 3 code 3: a UDP datagram for us, nobody listening
  frag_needed,        // type 3 code 4: DF set, larger than the next hop's MTU
  ttl_exceeded,       // type 11 code 0: TTL expired in transit
};

// Whether an error may be sent about the IPv4 packet at `l3_offset` of `m`.
// `link_broadcast`: it arrived as an Ethernet broadcast or multicast.
bool may_send_error(const rte_mbuf* m, uint16_t l3_offset, bool link_broadcast);

// A new mbuf (from `pool`) holding the IPv4 + ICMP error about `orig`, from
// `our_addr` to the offending packet's source, TTL 64, quoting the original IP
// header and as much of its payload as keeps the error within 576 bytes
// (RFC 1812 §4.3.2.3). `mtu` is the next-hop MTU for frag_needed (RFC 1191).
// The returned packet starts at the IP header and keeps headroom for the
// link header. nullptr when the pool is empty.
rte_mbuf* build_error(rte_mempool* pool, const rte_mbuf* orig, uint16_t l3_offset, IcmpError error,
                      uint32_t our_addr, uint16_t mtu = 0);

// Turns an ICMP echo request for us into the echo reply, in place: swap the
// addresses, type 8 -> 0, fix both checksums. False (packet untouched) if it
// is not a well-formed echo request.
bool echo_reply_in_place(rte_mbuf* m, uint16_t l3_offset);

// An ICMP error message received (RFC 792: destination unreachable, source
// quench, time exceeded, parameter problem) and the header it quotes.
struct ReceivedError {
  uint8_t type = 0;
  uint8_t code = 0;
  uint16_t inner_offset = 0;  // of the quoted IPv4 header, from the start of m
  uint8_t inner_proto = 0;    // its protocol
};
// Parses the ICMP message of the IPv4 packet at `l3_offset` (header length
// `l3_len`): true if it is an error message with a valid checksum quoting an
// IPv4 header and at least 8 bytes of what followed it (RFC 792), all in the
// first segment. The upper layer finds the quoted ports there.
bool parse_received_error(const rte_mbuf* m, uint16_t l3_offset, uint16_t l3_len, ReceivedError* out);

// The per-worker error rate limiter (§4.3.2.8).
using TokenBucket = stack::TokenBucket;

}  // namespace ngstack::stack::ipv4
