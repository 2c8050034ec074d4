// TCP (RFC 9293) as a protocol layer: the `tcp` netisr protocol of host and
// router modes, over the connection table in groups (stack/pcb).
//
// Model. A connection is a PCB in its 4-tuple's group and a Tcb in the slot
// beside it (tcb.hpp). Everything about a connection happens under its
// group's lock (giant mode: the table's lock): input, output, its timers,
// the service's callbacks. No list, queue or timer spans groups; there is
// no global syncache: a SYN for a listener makes its SYN-RECEIVED Tcb in the
// tuple's group at once, counted against the listener's backlog, and the
// handshake's ACK finds it there (SYN cookies, RFC 4987, answer a SYN when
// the backlog is full).
//
//   input    per segment: header inside the IP payload (tcp_truncated), data
//            offset (tcp_bad_offset), checksum (tcp_bad_checksum; the NIC's
//            verdict when it gave one). Then the burst's tuples go to
//            PcbTable::for_each_group: one lock acquisition per group per
//            burst; under it RFC 9293 §3.10.7 segment processing, with RFC
//            5961's challenge ACKs, RFC 7323's PAWS, SACK (RFC 2018).
//   output   after each segment, timer or service call that may have made
//            something to send: as much of the send queue as the peer's
//            window and cwnd allow, in MSS-sized segments built in one mbuf
//            each (headers + a copy of the payload), checksums offloaded
//            where the port offers it; ACKs delayed (at least every second
//            full-sized segment), window updates when reading opened the
//            window by two segments.
//   timers   retransmission (RFC 6298), persist (zero-window probes with
//            backoff), delayed ACK, TIME-WAIT / FIN-WAIT-2, as TSC deadlines
//            in the Tcb; one node on the worker's timer wheel stands for the
//            earliest, and its callback takes the group's lock, checks the
//            Tcb's generation and handles what is due. Timers are armed on
//            the worker that handles the connection: its owner under
//            deferred/hybrid dispatch and with NIC RSS. A connection freed,
//            or left with no deadline, cancels its nodes on the wheel of the
//            worker doing it; a node on another worker's wheel (direct
//            dispatch) stays lazy, as stack/timer describes.
//   recovery NewReno (RFC 5681, RFC 6582) or CUBIC (RFC 9438) per service;
//            with SACK, RFC 6675's scoreboard chooses what to retransmit.
//
// Dispatch: policy cpu, m2cpuid = the owner of the segment's group (the
// NIC's Toeplitz hash of the tuple, foreign as source). Deferred and hybrid
// send a segment to its owner (ConnP-T), direct takes the group lock on the
// receiving worker (ConnP-L); either way one connection's segments are
// handled in order.
#pragma once

#include <rte_mbuf.h>

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include "conf/config.hpp"
#include "conf/result.hpp"
#include "dispatch/netisr.hpp"
#include "stack/ipv4/ip.hpp"
#include "stack/modes/common.hpp"
#include "stack/pcb/pcb.hpp"
#include "stack/service.hpp"
#include "stack/socket/tcp_socket.hpp"
#include "stack/tcp/tcb.hpp"
#include "stack/token_bucket.hpp"

namespace ngstack::stack::tcp {

// What TCP counted, as FreeBSD's `netstat -s -p tcp` (per worker); the
// meaning of each is in stack/tcp/README.md.
#define NGSTACK_TCP_STATS(X)                                                                              \
  X(segments_in) X(segments_out) X(data_segments_in) X(data_segments_out) X(bytes_in) X(bytes_out)        \
  X(retransmits) X(retransmitted_bytes) X(rto_expired) X(fast_retransmits) X(sack_recoveries)            \
  X(partial_acks) X(dupacks_in) X(sack_blocks_in) X(dsack_in) X(sack_blocks_out) X(acks_out)             \
  X(delayed_acks) X(window_updates) X(challenge_acks) X(challenge_acks_limited) X(rst_in) X(rst_out)     \
  X(syn_in) X(accepts) X(connects) X(established) X(closed) X(resets) X(timeouts) X(refused)             \
  X(paws_dropped) X(out_of_window) X(ack_for_unsent) X(persist_probes) X(ooo_queued) X(ooo_dropped)      \
  X(rcv_buffer_full) X(syncache_added) X(syncache_overflow) X(cookies_sent) X(cookies_accepted)          \
  X(cookies_rejected) X(time_wait_reused) X(fin_wait2_timeouts) X(icmp_errors_in) X(mss_lowered)         \
  X(urgent_in) X(no_mbuf) X(no_timer) X(unroutable) X(spurious_retransmits) X(keepalive_probes) X(keepalive_drops) X(reorder_timeouts) X(timers_late) \
  X(worker_budget_full) X(tso_frames_out)
enum class Stat : uint8_t {
#define NGSTACK_TCP_STAT_ENUM(name) name,
  NGSTACK_TCP_STATS(NGSTACK_TCP_STAT_ENUM)
#undef NGSTACK_TCP_STAT_ENUM
  kCount
};
inline constexpr std::size_t kStatCount = static_cast<std::size_t>(Stat::kCount);
std::string_view stat_name(Stat s);
using Stats = NamedCounters<Stat, kStatCount>;

// One connection as `ngstack show tcp` lists it (as `ss -ti` does).
struct ConnView {
  pcb::FourTuple tuple;
  State state = State::closed;
  uint32_t rtt_us = 0, rttvar_us = 0, rto_us = 0;
  uint32_t cwnd = 0, ssthresh = 0, mss = 0, snd_wnd = 0, rcv_wnd = 0;
  uint32_t retransmits = 0, unacked = 0, send_queue = 0, recv_queue = 0;
  uint64_t bytes_in = 0, bytes_out = 0, bytes_acked = 0, bytes_retrans = 0;
  uint32_t group = 0;
};

// stack.tcp (conf::TcpConfig) in the units the stack works in.
struct Params {
  uint64_t msl_us = 30'000'000;
  uint32_t min_rto_us = 200'000, initial_rto_us = 1'000'000, max_rto_us = 60'000'000;
  uint32_t delayed_ack_us = 40'000;
  uint64_t fin_wait2_us = 60'000'000;
  uint32_t sndbuf = 262144, rcvbuf = 262144;
  bool nagle = true;
  unsigned ooo_segments = 256;
  unsigned syn_backlog = 1024;
  bool syn_cookies = true;
  double challenge_ack_rate = 1000;  // per second per worker
  unsigned syn_retries = 5, data_retries = 12;
  uint64_t keepalive_interval_us = 75'000'000;
  unsigned keepalive_probes = 9;
  uint8_t cc = 0;  // default for listeners and connects: 0 NewReno, 1 CUBIC
  uint32_t worker_buffers = 16384;  // mbufs one worker's connections may queue (Config::tcp_worker_buffers)
  bool tso = true;                  // segmentation offload where the port has it enabled
};

class Tcp {
 public:
  static Result<std::unique_ptr<Tcp>> create(const conf::Config& cfg, ipv4::Ip& ip, unsigned workers,
                                             unsigned buckets, std::vector<uint16_t> bucket_map,
                                             std::vector<uint8_t> rss_key, uint64_t tsc_hz);
  ~Tcp();
  void bind(std::vector<WorkerIo> io);
  Result<dispatch::ProtoId> register_protocol(dispatch::Netisr& netisr, const modes::ProtocolSettings& settings);

  static void input_handler(void* ctx, unsigned worker, uint16_t port, rte_mbuf** pkts, uint16_t n);
  static unsigned m2cpuid(const void* ctx, const rte_mbuf* m, unsigned source_worker);

  // --- the socket API (control path; see socket/tcp_socket.hpp) -----------------------
  // backlog 0: stack.tcp.syn_backlog. cc: 0 NewReno, 1 CUBIC, -1 the default.
  Result<socket::TcpListener*> listen(uint32_t addr, uint16_t port, const socket::TcpHandlers& h, void* ctx,
                                      unsigned backlog = 0, int cc = -1);
  void unlisten(socket::TcpListener* l);
  // Active open from `worker` (its replies land there); `connected` or
  // `closed` (refused, timeout) follows. laddr 0: the route's source.
  Result<socket::ConnRef> connect(unsigned worker, uint32_t faddr, uint16_t fport, const socket::TcpHandlers& h,
                                  void* ctx, uint64_t now, uint32_t laddr = 0);
  // Runs fn(TcpConn&) under the connection's group lock if it still exists
  // (then sends what fn queued) and returns true; false when it is gone.
  template <typename Fn>
  bool with(socket::ConnRef ref, unsigned w, uint64_t now, Fn&& fn);

  void worker_online(unsigned w) { table_->listeners().reader_online(w); }
  void poll(unsigned w) { table_->listeners().quiescent(w); }
  void worker_offline(unsigned w) { table_->listeners().reader_offline(w); }
  // After the workers stopped: frees every connection and its buffers.
  void shutdown();

  // --- stats (any thread) --------------------------------------------------------------
  uint64_t stat(Stat s) const;
  uint64_t stat(unsigned w, Stat s) const { return stats_[w].get(s); }
  // mbufs the connections homed on worker w hold in their queues (its buffer budget's use).
  int64_t buffers_held(unsigned w) const { return budgets_[w].held.load(std::memory_order_relaxed); }
  // Takes each group's lock in turn: control path only.
  std::vector<ConnView> connections();
  std::vector<socket::TcpListener*> listeners() const;
  const pcb::PcbTable& table() const { return *table_; }
  const Params& params() const { return params_; }
  unsigned workers() const { return workers_; }
  uint64_t tsc_hz() const { return tsc_hz_; }

 private:
  friend class socket::TcpConn;
  struct Segment;
  struct alignas(64) PerWorker {
    Tcp* tcp = nullptr;
    unsigned w = 0;
    TokenBucket challenge;  // RFC 5961 §7: challenge ACKs per second
    PerWorker(Tcp* t, unsigned worker, double rate, uint64_t hz) : tcp(t), w(worker), challenge(rate, rate, hz) {}
  };

  // The buffer budget of one worker: mbufs its connections hold in their
  // queues. Charged under the connection's group lock, from whichever worker
  // handles it (direct dispatch), so atomic; alone on its line.
  struct alignas(64) BufferBudget {
    std::atomic<int64_t> held{0};
  };

  Tcp(ipv4::Ip& ip, unsigned workers, uint64_t hz) : ip_(ip), workers_(workers), tsc_hz_(hz) {}
  void input(unsigned w, rte_mbuf** pkts, uint16_t n);
  bool parse(unsigned w, rte_mbuf* m, Segment* s);
  // Frees the segment under a drop reason.
  void discard(unsigned w, Segment& s, DropReason r);
  void segment(unsigned w, Segment& s, pcb::GroupGuard& g, uint64_t now);
  void listen_input(unsigned w, Segment& s, const pcb::ListenEntry& l, pcb::GroupGuard& g, uint64_t now);
  void syn_sent_input(unsigned w, Tcb& t, Segment& s, pcb::GroupGuard& g, uint64_t now);
  void sync_input(unsigned w, Tcb& t, Segment& s, pcb::GroupGuard& g, uint64_t now);
  bool ack_input(unsigned w, Tcb& t, Segment& s, pcb::GroupGuard& g, uint64_t now);
  void data_input(unsigned w, Tcb& t, Segment& s, uint64_t now);
  void ctlinput(unsigned w, rte_mbuf* m, const pcb::FourTuple& tuple, pcb::GroupGuard& g, uint64_t now);
  void process_sack(unsigned w, Tcb& t, const Segment& s);
  void enter_recovery(unsigned w, Tcb& t, uint64_t now);
  void cc_on_ack(Tcb& t, uint32_t acked, uint64_t now);
  void rtt_sample(Tcb& t, uint32_t rtt_us);
  // Before a congestion response: what to restore if it proves spurious.
  void remember_for_undo(Tcb& t, uint64_t now, uint32_t sacked_segments);

  // Output.
  void output(unsigned w, Tcb& t, uint64_t now);
  // One segment of t: [seq, seq+len) from the send queue, with flags; false: no mbuf.
  bool send_segment(unsigned w, Tcb& t, uint32_t seq, uint32_t len, uint8_t flags, uint64_t now);
  void send_ack(unsigned w, Tcb& t, uint64_t now) { send_segment(w, t, t.snd_nxt, 0, kAck, now); }
  void challenge_ack(unsigned w, Tcb& t, uint64_t now);
  // RST (or any header-only segment) for a tuple with no Tcb.
  void respond(unsigned w, const pcb::FourTuple& tuple, uint32_t seq, uint32_t ack, uint8_t flags, uint64_t now,
               const uint8_t* opts = nullptr, uint8_t optlen = 0, uint16_t win = 0);
  void reset_for(unsigned w, const Segment& s, uint64_t now);  // RFC 9293 §3.10.7.1
  uint16_t window_to_advertise(Tcb& t) const;
  uint32_t rcv_space(const Tcb& t) const;
  uint32_t pipe(const Tcb& t) const;
  // TSO for t's port: the payload of each piece the device cuts from a
  // frame, and the most payload one frame may carry; both 0 without TSO.
  struct TsoShape {
    uint32_t piece = 0, max_payload = 0;
  };
  TsoShape tso_shape(const Tcb& t) const;
  uint32_t ts_now(uint64_t now) const { return static_cast<uint32_t>(now / ms_cycles_); }
  uint32_t isn(const pcb::FourTuple& t, uint64_t now) const;
  uint32_t cookie(const pcb::FourTuple& t, uint32_t peer_seq, uint8_t mss_index, uint64_t now, unsigned epoch_back) const;

  // Timers.
  void set_timer(unsigned w, Tcb& t, uint64_t Tcb::*field, uint64_t when);
  void reschedule(unsigned w, Tcb& t);
  // Cancels t's nodes on worker w's wheel (w: the worker running this).
  void cancel_timers(unsigned w, Tcb& t);
  static void on_timer(void* ctx, uint64_t arg, uint64_t now);
  void timers_due(unsigned w, Tcb& t, pcb::GroupGuard& g, uint64_t now);
  void rexmt_timeout(unsigned w, Tcb& t, pcb::GroupGuard& g, uint64_t now);
  void persist_timeout(unsigned w, Tcb& t, uint64_t now);

  // Life cycle.
  Tcb* create_tcb(pcb::GroupGuard& g, const pcb::FourTuple& tuple, pcb::PcbTable::InsertError* err);
  void init_tcb(unsigned w, Tcb& t, uint64_t now);
  void established(unsigned w, Tcb& t, pcb::GroupGuard& g, uint64_t now);
  // The connection ends; the service (if still attached) hears `why`.
  void drop_connection(unsigned w, Tcb& t, pcb::GroupGuard& g, socket::CloseReason why, bool send_rst, uint64_t now);
  void free_tcb(unsigned w, Tcb& t, pcb::GroupGuard& g);
  void notify(unsigned w, Tcb& t, pcb::GroupGuard& g, uint64_t now, bool readable, bool writable);
  void enter_time_wait(unsigned w, Tcb& t, uint64_t now);

  // Buffers.
  // Counts the change in t's queued mbufs in its home worker's budget.
  void settle(Tcb& t) {
    const uint32_t now_held = t.sndq.count + t.rcvq.count + t.ooo.count;
    if (now_held != t.charged) {
      budgets_[t.home].held.fetch_add(int64_t{now_held} - int64_t{t.charged}, std::memory_order_relaxed);
      t.charged = now_held;
    }
  }
  // mbufs t's home worker may still queue (0: the budget is spent).
  uint32_t budget_room(const Tcb& t) const {
    const int64_t used = budgets_[t.home].held.load(std::memory_order_relaxed);
    return used >= int64_t{params_.worker_buffers} ? 0 : static_cast<uint32_t>(params_.worker_buffers - used);
  }
  size_t append_send(Tcb& t, const uint8_t* data, size_t len);
  void copy_from_sndq(Tcb& t, uint32_t seq, uint8_t* out, uint32_t len);
  void drop_acked(Tcb& t, uint32_t bytes);
  size_t read(unsigned w, Tcb& t, uint8_t* out, size_t len);

  uint64_t us_to_tsc(uint64_t us) const { return us * tsc_hz_ / 1'000'000; }
  uint32_t tsc_to_us(uint64_t cycles) const { return static_cast<uint32_t>(cycles * 1'000'000 / tsc_hz_); }
  Tcb& tcb_of(const pcb::Pcb* p) { return tcbs_[table_->slot_of(p)]; }

  enum : uint8_t { kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10, kUrg = 0x20 };

  ipv4::Ip& ip_;
  unsigned workers_;
  uint64_t tsc_hz_;
  uint64_t ms_cycles_ = 1;
  Params params_;
  std::unique_ptr<pcb::PcbTable> table_;
  std::unique_ptr<Tcb[]> tcbs_;
  std::vector<WorkerIo> io_;
  std::unique_ptr<Stats[]> stats_;
  std::unique_ptr<BufferBudget[]> budgets_;
  uint32_t mbuf_payload_ = 2048;  // data room of the pool's mbufs, less headroom
  std::vector<std::unique_ptr<PerWorker>> per_worker_;
  std::vector<std::unique_ptr<uint8_t[]>> scratch_;
  uint64_t secret_[2] = {};  // ISN and cookie key (RFC 6528, RFC 4987)
  mutable std::mutex listeners_mu_;  // control path only
  std::vector<std::unique_ptr<socket::TcpListener>> listeners_;
};

template <typename Fn>
bool Tcp::with(socket::ConnRef ref, unsigned w, uint64_t now, Fn&& fn) {
  if (!ref.valid() || ref.index >= table_->slots()) return false;
  pcb::GroupGuard g = table_->lock_group(table_->group_of_slot(ref.index));
  Tcb& t = tcbs_[ref.index];
  if (!t.in_use || t.generation != ref.generation || t.detached) return false;
  socket::TcpConn c(*this, t, w, now, g);
  fn(c);
  if (t.in_use && t.generation == ref.generation) output(w, t, now);
  return true;
}

}  // namespace ngstack::stack::tcp
