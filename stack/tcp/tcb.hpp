// The TCP control block: one per connection, preallocated beside its PCB
// (the Tcb of PCB index i is tcbs[i]), so nothing is allocated per
// connection. Every field belongs to the holder of the connection's group
// lock (stack/pcb); a timer or a service finds a Tcb again by (index,
// generation) and re-checks it under that lock.
//
// Buffers are mbufs, linked through rte_mbuf::next, each one segment:
//   send queue    bytes from SND.UNA on, packed into mbufs as send() copies
//                 them; segments copy out of it, so a retransmission is a
//                 copy of what is still queued
//   receive queue in-order payload mbufs as they arrived (headers cut off),
//                 read() copies out of them
//   reassembly    out-of-order payload mbufs sorted by sequence (the
//                 sequence number rides in rte_mbuf::hash.usr), bounded by
//                 stack.tcp.ooo_segments
#pragma once

#include <rte_mbuf.h>

#include <cstdint>

#include "stack/pcb/pcb.hpp"
#include "stack/tcp/seq.hpp"
#include "stack/socket/tcp_socket.hpp"
#include "stack/timer/timer_wheel.hpp"

namespace ngstack::stack::tcp {

// RFC 9293 §3.3.2.
enum class State : uint8_t {
  closed,
  listen,  // listeners live in the listen table; kept for names
  syn_sent,
  syn_received,
  established,
  fin_wait_1,
  fin_wait_2,
  close_wait,
  closing,
  last_ack,
  time_wait,
};
const char* state_name(State s);
// A state in which the handshake completed (RFC 9293's synchronized states).
inline bool synchronized(State s) { return s >= State::established; }

// A singly linked queue of one-segment mbufs.
struct MbufQueue {
  rte_mbuf* head = nullptr;
  rte_mbuf* tail = nullptr;
  uint32_t bytes = 0;
  uint32_t count = 0;
  void push(rte_mbuf* m) {
    m->next = nullptr;
    if (tail)
      tail->next = m;
    else
      head = m;
    tail = m;
    bytes += m->data_len;
    ++count;
  }
  rte_mbuf* pop() {
    rte_mbuf* m = head;
    if (!m) return nullptr;
    head = m->next;
    if (!head) tail = nullptr;
    m->next = nullptr;
    m->nb_segs = 1;
    bytes -= m->data_len;
    --count;
    return m;
  }
  // Frees every mbuf; returns how many.
  uint32_t clear() {
    uint32_t n = 0;
    while (rte_mbuf* m = pop()) {
      rte_pktmbuf_free(m);
      ++n;
    }
    return n;
  }
};

// A range of sequence space [start, end).
struct SeqRange {
  uint32_t start = 0, end = 0;
};

inline constexpr unsigned kMaxSackBlocks = 4;   // on the wire (3 with timestamps)
inline constexpr unsigned kScoreboard = 8;      // SACKed ranges the sender remembers
inline constexpr unsigned kTimerNodes = 3;      // timer-wheel nodes a connection may hold at once

struct Tcb {
  // --- identity ----------------------------------------------------------------
  pcb::FourTuple tuple;
  uint32_t index = 0;
  uint32_t generation = 0;  // bumped when the Tcb is freed
  State state = State::closed;
  bool in_use = false;

  // --- the service -----------------------------------------------------------------
  const socket::TcpHandlers* handlers = nullptr;
  void* app = nullptr;                          // the service's context
  uint64_t user = 0;                            // the service's word (TcpConn::user)
  socket::TcpListener* listener = nullptr;      // while SYN-RECEIVED: whose backlog it counts in
  bool passive = false;                         // made by a listener (the service adopts it in `accepted`)
  bool detached = false;                        // the service closed or aborted it
  bool want_writable = false;                   // a send() came up short

  // --- send sequence (RFC 9293 §3.3.1) ---------------------------------------------
  uint32_t iss = 0, snd_una = 0, snd_nxt = 0, snd_max = 0;
  uint32_t snd_wnd = 0, max_snd_wnd = 0, snd_wl1 = 0, snd_wl2 = 0;
  uint16_t mss = 536;      // what we put in a segment (the peer's MSS, less our options)
  uint16_t peer_mss = 536;
  uint8_t snd_wscale = 0;  // the peer's shift, applied to windows it sends
  uint8_t rcv_wscale = 0;  // ours, applied to windows we send
  bool fin_queued = false; // shutdown(): a FIN follows the send queue
  bool syn_acked = false;  // SND.UNA has passed our SYN
  // --- receive sequence --------------------------------------------------------------
  uint32_t irs = 0, rcv_nxt = 0, rcv_adv = 0;  // rcv_adv: the right edge advertised
  uint32_t last_ack_sent = 0;
  bool fin_received = false;
  // D-SACK (RFC 2883): a duplicate segment received, reported first in the next ACK.
  SeqRange dsack{0, 0};
  bool dsack_pending = false;
  // --- options --------------------------------------------------------------------------
  bool ts_on = false, sack_on = false, wscale_on = false;
  uint32_t ts_recent = 0;
  uint64_t ts_recent_tsc = 0;  // when ts_recent was taken (PAWS: 24 days)
  // --- congestion control (RFC 5681, NewReno RFC 6582) ------------------------------------
  uint32_t cwnd = 0, ssthresh = UINT32_MAX;
  uint32_t recover = 0;      // NewReno: snd_max when recovery began
  uint32_t rexmit_next = 0;  // SACK recovery: the next sequence to consider retransmitting
  uint8_t dupacks = 0;
  uint8_t dupthresh = 3;     // raised when reordering made a retransmission spurious
  // Undo (Eifel, RFC 3522): the state before the last reduction, and the
  // TSval of the retransmission that made it; 0: nothing to undo.
  uint32_t undo_tsval = 0, undo_seq = 0, undo_cwnd = 0, undo_ssthresh = 0;
  uint32_t undo_reorder = 0;  // segments SACKed above the hole when it was retransmitted
  bool in_recovery = false;
  uint8_t cc = 0;            // 0 NewReno, 1 CUBIC
  // CUBIC (RFC 9438), in segments and TSC
  double cubic_wmax = 0, cubic_k = 0;
  uint64_t cubic_epoch = 0;
  // --- round trip (RFC 6298), microseconds ---------------------------------------------------
  uint32_t srtt_us = 0, rttvar_us = 0, rto_us = 0;
  uint32_t rtt_seq = 0;
  uint64_t rtt_start = 0;  // TSC when rtt_seq was sent; 0: not timing
  uint8_t backoff = 0;     // consecutive retransmission timeouts
  uint8_t persist_shift = 0;
  // --- timers: TSC deadlines, 0 when off; a few wheel nodes stand for them --------------------
  uint64_t t_rexmt = 0, t_persist = 0, t_delack = 0, t_linger = 0;  // linger: TIME_WAIT, FIN_WAIT_2
  uint64_t t_keep = 0;        // keepalive: when to look at the idle time again
  uint64_t t_reorder = 0;     // SACKed data above a hole: recover if nothing else does by then
  uint64_t t_budget = 0;      // send() was refused by the worker's buffer budget: offer `writable` again
  uint64_t keep_idle = 0;     // keepalive idle time in TSC cycles (the listener's); 0: off
  uint64_t last_rx = 0;       // TSC of the last segment received
  uint8_t keep_probes = 0;    // unanswered keepalive probes
  uint64_t armed[kTimerNodes] = {};  // expiries of this connection's nodes on a wheel (0: free)
  // Beside each expiry: its node's handle and the worker whose wheel holds
  // it. Only that worker may cancel the node (a wheel has no lock); on any
  // other worker it stays until it fires and finds the Tcb's generation moved on.
  timer::TimerHandle armed_node[kTimerNodes] = {};
  uint16_t armed_worker[kTimerNodes] = {};
  // --- output state --------------------------------------------------------------------------
  bool ack_now = false;
  uint8_t unacked_segments = 0;  // full-sized segments received since our last ACK
  bool sack_pending = false;     // the next ACK carries SACK blocks (a segment arrived out of order)
  uint32_t last_ooo_start = 0;   // the block of the latest out-of-order segment goes first (RFC 2018 §4)
  // --- buffers -------------------------------------------------------------------------------------
  MbufQueue sndq;   // from snd_una on
  MbufQueue rcvq;
  MbufQueue ooo;
  uint32_t rcv_read_off = 0;    // bytes of rcvq.head already read
  rte_mbuf* snd_cursor = nullptr;  // an mbuf of sndq and the sequence of its first byte (a seek hint)
  uint32_t snd_cursor_seq = 0;
  SeqRange sacked[kScoreboard];  // the sender's scoreboard, above snd_una
  uint16_t home = 0;             // the worker whose buffer budget its queued mbufs count in
  uint32_t charged = 0;          // mbufs of sndq, rcvq and ooo counted in that budget
  uint8_t nsacked = 0;
  // --- per connection counters (ss -ti) ---------------------------------------------------------------
  // bytes_out: payload sent for the first time; bytes_retrans: payload sent
  // again (so bytes_out + bytes_retrans went on the wire); bytes_acked: ours
  // the peer acknowledged; bytes_in: the peer's, received in order. SYN and
  // FIN are not bytes. retransmits counts segments, SYNs included.
  uint64_t bytes_in = 0, bytes_out = 0, bytes_acked = 0, bytes_retrans = 0;
  uint32_t retransmits = 0;
  uint64_t established_tsc = 0;
  uint16_t ifport = 0;  // the interface its segments leave by

  // The sequence number of the send queue's first byte: SND.UNA, or the byte
  // after our SYN while the SYN is unacknowledged.
  // (A flag, not a comparison with ISS: after 2^31 bytes SND.UNA is
  // "before" ISS in sequence arithmetic.)
  uint32_t sndq_seq() const { return syn_acked ? snd_una : iss + 1; }
  // Just past the queued data: where a queued FIN sits.
  uint32_t snd_end() const { return sndq_seq() + sndq.bytes; }
};

}  // namespace ngstack::stack::tcp
