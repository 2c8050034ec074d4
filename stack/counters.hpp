// Statistics counters: named drop reasons and named stack events. Counters
// have one writer each; see dispatch/counter.hpp.
//
// Accounting: every mbuf a worker receives is sent, queued with a bound, or
// freed under exactly one drop reason. The stack may also turn one packet into
// several (a flood, fragments, an ICMP error) or absorb one (an ARP reply, a
// fragment that joins a datagram); `originated` and `consumed` count those, so
// that at every stop  rx + originated == tx + drops + consumed.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "dispatch/counter.hpp"

namespace ngstack::stack {

using dispatch::Counter;

// Why a packet was freed instead of sent.
enum class DropReason : uint8_t {
  tx_full,   // the egress tx queue had no room (rte_eth_tx_burst sent fewer)
  no_path,   // forwarder: the ingress port is the input of no path
  runt,      // shorter than an Ethernet header
  ether_unknown_type,  // router: neither IPv4 nor ARP (or 802.1Q-tagged)
  ether_not_for_us,    // router: unicast to another station's MAC
  no_mbuf,             // the pool had no mbuf for a copy (bridge flood to other VLAN encapsulation)
  not_our_port,        // router/bridge: arrived on a port that is no interface / bridge port
  // ARP (stack/arp)
  arp_truncated,       // shorter than an Ethernet/IPv4 ARP packet
  arp_bad_format,      // hardware/protocol type or lengths, or opcode, not Ethernet/IPv4
  arp_bad_sender,      // sender is a martian, our own address, or a broadcast MAC
  arp_not_for_us,      // a request or reply about an address that is not ours
  arp_hold_full,       // the neighbour's hold queue was full
  arp_hold_budget,     // all hold queues together held router.arp.hold_total packets
  arp_table_full,      // no room for a new neighbour
  arp_unresolved,      // held until the neighbour failed to answer (or until stop)
  arp_learn_limited,   // a new next hop to resolve, over this worker's router.arp.learn_rate
  // IPv4 input (stack/ipv4/input.hpp, RFC 1812 §5.2.2 order)
  ipv4_truncated,
  ipv4_bad_version,
  ipv4_bad_ihl,
  ipv4_bad_length,
  ipv4_bad_checksum,
  ipv4_bad_source,
  ipv4_bad_destination,
  ipv4_multicast,          // no multicast routing
  ipv4_ttl_exceeded,       // TTL <= 1 on a packet to forward
  ipv4_link_broadcast,     // unicast IP to forward that came in a link-layer broadcast/multicast frame (RFC 1812 §5.3.4)
  ipv4_no_route,
  ipv4_blackhole,          // a blackhole route (silent)
  ipv4_reject,             // a reject route (ICMP unreachable)
  ipv4_frag_needed,        // DF set and larger than the egress MTU
  ipv4_frag_too_big,       // a fragment reaching past 65 535 bytes (ping of death)
  ipv4_reassembly_failed,  // overlapping, timed out or no room: the datagram's fragments
  ipv4_fragment_failed,    // egress fragmentation had no mbufs
  local_no_service,        // to us, but no service: an ICMP message we do not handle, a protocol we do not serve, a broadcast
  ipv4_not_forwarding,     // host mode: not for us, and a host forwards nothing
  // UDP (stack/udp, RFC 768)
  udp_truncated,           // the IP payload is shorter than a UDP header
  udp_bad_length,          // UDP length below 8 or beyond the IP payload
  udp_bad_checksum,
  udp_no_socket,           // no socket bound to the port (ICMP port unreachable is sent, rate-limited)
  // TCP (stack/tcp, RFC 9293); more in the tcp stats
  tcp_truncated,           // the IP payload is shorter than a TCP header, or its options
  tcp_bad_offset,          // data offset below 5 words or beyond the IP payload
  tcp_bad_checksum,
  tcp_no_socket,           // no connection and no listener: answered with RST (RFC 9293 §3.10.7.1)
  tcp_listen_bad_segment,  // to a listener: RST, or no SYN, or an ACK that is no valid SYN cookie (RST sent)
  tcp_listen_overflow,     // SYN beyond the listener's backlog with SYN cookies off
  tcp_no_pcb,              // SYN (or cookie ACK) with the connection group's PCBs all in use
  tcp_no_route,            // SYN from an address we have no route back to
  tcp_bad_mss,             // SYN with an MSS option of 0
  tcp_bad_ack,             // an ACK outside what was sent (SYN-SENT, SYN-RECEIVED) or too old (RFC 5961 §5.2)
  tcp_ack_for_unsent,      // SEG.ACK beyond SND.MAX: ACKed and dropped (RFC 9293 §3.10.7.4)
  tcp_paws,                // an old timestamp (RFC 7323 §5): ACKed and dropped
  tcp_out_of_window,       // unacceptable sequence number: ACKed and dropped
  tcp_rst_challenged,      // RST in the window but not at RCV.NXT: challenge ACK (RFC 5961 §3.2)
  tcp_syn_challenged,      // SYN on a synchronized connection: challenge ACK (RFC 5961 §4.2)
  tcp_no_ack,              // no ACK flag on a synchronized connection
  tcp_after_close,         // data for a connection the service closed: RST
  tcp_no_room,             // a chained segment that could not be made one mbuf
  tcp_receive_buffer_full, // in-order data beyond the receive queue's mbuf bound
  tcp_ooo_full,            // out of order beyond stack.tcp.ooo_segments
  tcp_duplicate,           // out of order and already queued
  tcp_worker_budget,       // data while the worker's connections hold stack.tcp.worker_buffers mbufs
  // Bridge (stack/bridge)
  bridge_vlan_mismatch,    // untagged on a trunk, tagged on an access port, VLAN not carried
  bridge_bad_source,       // source MAC is multicast/broadcast
  bridge_same_port,        // destination lives on the ingress port (filtered)
  bridge_no_port,          // flooding found no other port in the VLAN
  bridge_reserved_group,   // to an IEEE 802.1D reserved group address (STP, LACP, PAUSE): never relayed
  // Traffic mode (stack/traffic)
  traffic_not_sink,        // received on a port that is no sink (a generator port)
  kCount
};

// What the stack did that is not a drop.
enum class Event : uint8_t {
  originated,         // packets made here (ARP requests, ICMP errors, fragments, flood copies)
  consumed,           // packets absorbed here (ARP replies and requests, fragments joined)
  arp_requests_in,
  arp_replies_in,
  arp_requests_out,
  arp_replies_out,
  arp_gratuitous_out,
  arp_held,           // packets that waited for a neighbour
  arp_released,       // held packets sent after the neighbour answered
  arp_learn_limited,  // a requester not learned: over this worker's router.arp.learn_rate (still answered)
  ipv4_forwarded,
  ipv4_local,         // delivered to ngstack itself
  icmp_echo_replies,
  icmp_errors_out,
  icmp_rate_limited,  // errors not sent: the token bucket was empty
  ipv4_fragments_out, // fragments made by egress fragmentation
  ipv4_reassembled,   // datagrams reassembled for local delivery
  bridge_learned,
  bridge_moved,       // a known MAC seen on another port (station move)
  bridge_flooded,     // frames sent to every port of their VLAN
  bridge_fdb_full,    // a MAC not learned: the table was full
  bridge_learn_limited,  // a MAC not learned (yet): the worker's bridge.learn_rate was spent
  traffic_generated,  // frames a generator sent (also counted as originated)
  traffic_sunk,       // frames a sink counted (also counted as consumed)
  traffic_no_mbuf,    // generator bursts cut short: the pool was empty
  udp_delivered,      // datagrams given to a socket (also counted as consumed)
  udp_sent,           // datagrams sockets sent (also counted as originated)
  udp_length_trimmed, // UDP length below the IP payload: the datagram was cut to its UDP length and taken
  udp_icmp_errors_in, // ICMP errors about a connected socket's datagram, given to the socket (consumed)
  udp_icmp_errors_unmatched,  // ICMP errors quoting a UDP datagram of no connected socket (consumed)
  kCount
};

inline constexpr std::size_t kDropReasonCount = static_cast<std::size_t>(DropReason::kCount);
inline constexpr std::size_t kEventCount = static_cast<std::size_t>(Event::kCount);

std::string_view drop_reason_name(DropReason r);
std::string_view event_name(Event e);

template <typename Enum, std::size_t N>
class NamedCounters {
 public:
  void add(Enum r, uint64_t n) { c_[static_cast<std::size_t>(r)].add(n); }
  void inc(Enum r) { c_[static_cast<std::size_t>(r)].inc(); }
  uint64_t get(Enum r) const { return c_[static_cast<std::size_t>(r)].get(); }
  uint64_t total() const {
    uint64_t t = 0;
    for (const auto& c : c_) t += c.get();
    return t;
  }

 private:
  std::array<Counter, N> c_{};
};

using DropCounters = NamedCounters<DropReason, kDropReasonCount>;
using EventCounters = NamedCounters<Event, kEventCount>;

}  // namespace ngstack::stack
