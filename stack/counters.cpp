#include "stack/counters.hpp"

namespace ngstack::stack {

std::string_view drop_reason_name(DropReason r) {
  switch (r) {
    case DropReason::tx_full: return "tx_full";
    case DropReason::no_path: return "no_path";
    case DropReason::runt: return "runt";
    case DropReason::ether_unknown_type: return "ether_unknown_type";
    case DropReason::ether_not_for_us: return "ether_not_for_us";
    case DropReason::no_mbuf: return "no_mbuf";
    case DropReason::not_our_port: return "not_our_port";
    case DropReason::arp_truncated: return "arp_truncated";
    case DropReason::arp_bad_format: return "arp_bad_format";
    case DropReason::arp_bad_sender: return "arp_bad_sender";
    case DropReason::arp_not_for_us: return "arp_not_for_us";
    case DropReason::arp_hold_full: return "arp_hold_full";
    case DropReason::arp_hold_budget: return "arp_hold_budget";
    case DropReason::arp_table_full: return "arp_table_full";
    case DropReason::arp_unresolved: return "arp_unresolved";
    case DropReason::arp_learn_limited: return "arp_learn_limited";
    case DropReason::ipv4_truncated: return "ipv4_truncated";
    case DropReason::ipv4_bad_version: return "ipv4_bad_version";
    case DropReason::ipv4_bad_ihl: return "ipv4_bad_ihl";
    case DropReason::ipv4_bad_length: return "ipv4_bad_length";
    case DropReason::ipv4_bad_checksum: return "ipv4_bad_checksum";
    case DropReason::ipv4_bad_source: return "ipv4_bad_source";
    case DropReason::ipv4_bad_destination: return "ipv4_bad_destination";
    case DropReason::ipv4_multicast: return "ipv4_multicast";
    case DropReason::ipv4_ttl_exceeded: return "ipv4_ttl_exceeded";
    case DropReason::ipv4_link_broadcast: return "ipv4_link_broadcast";
    case DropReason::ipv4_no_route: return "ipv4_no_route";
    case DropReason::ipv4_blackhole: return "ipv4_blackhole";
    case DropReason::ipv4_reject: return "ipv4_reject";
    case DropReason::ipv4_frag_needed: return "ipv4_frag_needed";
    case DropReason::ipv4_frag_too_big: return "ipv4_frag_too_big";
    case DropReason::ipv4_reassembly_failed: return "ipv4_reassembly_failed";
    case DropReason::ipv4_fragment_failed: return "ipv4_fragment_failed";
    case DropReason::local_no_service: return "local_no_service";
    case DropReason::ipv4_not_forwarding: return "ipv4_not_forwarding";
    case DropReason::udp_truncated: return "udp_truncated";
    case DropReason::udp_bad_length: return "udp_bad_length";
    case DropReason::udp_bad_checksum: return "udp_bad_checksum";
    case DropReason::udp_no_socket: return "udp_no_socket";
    case DropReason::tcp_truncated: return "tcp_truncated";
    case DropReason::tcp_bad_offset: return "tcp_bad_offset";
    case DropReason::tcp_bad_checksum: return "tcp_bad_checksum";
    case DropReason::tcp_no_socket: return "tcp_no_socket";
    case DropReason::tcp_listen_bad_segment: return "tcp_listen_bad_segment";
    case DropReason::tcp_listen_overflow: return "tcp_listen_overflow";
    case DropReason::tcp_no_pcb: return "tcp_no_pcb";
    case DropReason::tcp_no_route: return "tcp_no_route";
    case DropReason::tcp_bad_mss: return "tcp_bad_mss";
    case DropReason::tcp_bad_ack: return "tcp_bad_ack";
    case DropReason::tcp_ack_for_unsent: return "tcp_ack_for_unsent";
    case DropReason::tcp_paws: return "tcp_paws";
    case DropReason::tcp_out_of_window: return "tcp_out_of_window";
    case DropReason::tcp_rst_challenged: return "tcp_rst_challenged";
    case DropReason::tcp_syn_challenged: return "tcp_syn_challenged";
    case DropReason::tcp_no_ack: return "tcp_no_ack";
    case DropReason::tcp_after_close: return "tcp_after_close";
    case DropReason::tcp_no_room: return "tcp_no_room";
    case DropReason::tcp_receive_buffer_full: return "tcp_receive_buffer_full";
    case DropReason::tcp_ooo_full: return "tcp_ooo_full";
    case DropReason::tcp_worker_budget: return "tcp_worker_budget";
    case DropReason::tcp_duplicate: return "tcp_duplicate";
    case DropReason::bridge_vlan_mismatch: return "bridge_vlan_mismatch";
    case DropReason::bridge_bad_source: return "bridge_bad_source";
    case DropReason::bridge_same_port: return "bridge_same_port";
    case DropReason::bridge_no_port: return "bridge_no_port";
    case DropReason::bridge_reserved_group: return "bridge_reserved_group";
    case DropReason::traffic_not_sink: return "traffic_not_sink";
    case DropReason::kCount: break;
  }
  return "unknown";
}

std::string_view event_name(Event e) {
  switch (e) {
    case Event::originated: return "originated";
    case Event::consumed: return "consumed";
    case Event::arp_requests_in: return "arp_requests_in";
    case Event::arp_replies_in: return "arp_replies_in";
    case Event::arp_requests_out: return "arp_requests_out";
    case Event::arp_replies_out: return "arp_replies_out";
    case Event::arp_gratuitous_out: return "arp_gratuitous_out";
    case Event::arp_held: return "arp_held";
    case Event::arp_released: return "arp_released";
    case Event::arp_learn_limited: return "arp_learn_limited";
    case Event::ipv4_forwarded: return "ipv4_forwarded";
    case Event::ipv4_local: return "ipv4_local";
    case Event::icmp_echo_replies: return "icmp_echo_replies";
    case Event::icmp_errors_out: return "icmp_errors_out";
    case Event::icmp_rate_limited: return "icmp_rate_limited";
    case Event::ipv4_fragments_out: return "ipv4_fragments_out";
    case Event::ipv4_reassembled: return "ipv4_reassembled";
    case Event::bridge_learned: return "bridge_learned";
    case Event::bridge_moved: return "bridge_moved";
    case Event::bridge_flooded: return "bridge_flooded";
    case Event::bridge_fdb_full: return "bridge_fdb_full";
    case Event::bridge_learn_limited: return "bridge_learn_limited";
    case Event::traffic_generated: return "traffic_generated";
    case Event::traffic_sunk: return "traffic_sunk";
    case Event::traffic_no_mbuf: return "traffic_no_mbuf";
    case Event::udp_delivered: return "udp_delivered";
    case Event::udp_sent: return "udp_sent";
    case Event::udp_length_trimmed: return "udp_length_trimmed";
    case Event::udp_icmp_errors_in: return "udp_icmp_errors_in";
    case Event::udp_icmp_errors_unmatched: return "udp_icmp_errors_unmatched";
    case Event::kCount: break;
  }
  return "unknown";
}

}  // namespace ngstack::stack
