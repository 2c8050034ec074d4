// The TCP side of the socket API (stack/socket): listeners, connections and
// the callbacks a service is written with. See socket.hpp for the threads
// model; the same rules hold:
//
//   listen, connect, unlisten     control path, or a worker outside any callback
//   callbacks                     on the worker handling the connection's group,
//                                 with the group's lock held; they must not
//                                 block, listen, connect or unlisten
//   TcpConn methods               inside a callback, or inside Tcp::with()
//                                 (which takes the group's lock)
//
// A connection is event driven, as a poll-mode stack wants: `readable` when
// data (or the peer's FIN: eof()) arrived, `writable` when send space came
// back after a send() that did not take everything. send() copies into the
// connection's send buffer and returns how much it took (never blocks);
// read() copies out of the receive buffer, and reading opens the advertised
// window. Output (segments, ACKs, window updates) happens when the callback
// returns. After close() or abort() the service hears nothing more of the
// connection; `closed` runs only when the stack ends a connection the
// service still holds (reset by the peer, timed out, or both sides closed).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "stack/socket/socket.hpp"

namespace ngstack::stack::tcp {
class Tcp;
struct Tcb;
}  // namespace ngstack::stack::tcp

namespace ngstack::stack::socket {

enum class CloseReason : uint8_t {
  closed,    // both sides sent FIN and it was acknowledged
  reset,     // the peer sent RST
  refused,   // active open answered with RST
  timeout,   // retransmissions (or the handshake) gave up
  no_memory, // the stack could not keep the connection (no PCB, no timer)
};
const char* close_reason_name(CloseReason r);

class TcpConn;

struct TcpHandlers {
  // Listener: a connection completed its handshake. Returns the connection's
  // context for the callbacks below; nullptr refuses it (RST).
  void* (*accepted)(void* listen_ctx, TcpConn& c) = nullptr;
  void (*connected)(void* ctx, TcpConn& c) = nullptr;  // active open established
  void (*readable)(void* ctx, TcpConn& c) = nullptr;
  void (*writable)(void* ctx, TcpConn& c) = nullptr;
  void (*closed)(void* ctx, TcpConn& c, CloseReason r) = nullptr;
};

// Names a connection outside a callback: Tcp::with(ref, ...) finds it again
// (or learns that it is gone: the generation changed).
struct ConnRef {
  uint32_t index = UINT32_MAX;
  uint32_t generation = 0;
  bool valid() const { return index != UINT32_MAX; }
};

// A connection's own byte counters, as `ss -ti` shows them (stack/tcp/tcb.hpp):
// payload sent for the first time (bytes_out) and again (bytes_retrans),
// ours the peer acknowledged (bytes_acked), the peer's received in order
// (bytes_in); SYN and FIN are not bytes. retransmits: segments, SYNs included.
struct TcpConnCounters {
  uint64_t bytes_out = 0, bytes_retrans = 0, bytes_acked = 0, bytes_in = 0;
  uint32_t retransmits = 0;
};

// A connection as a callback (or Tcp::with) sees it; valid for that call only.
class TcpConn {
 public:
  unsigned worker() const { return worker_; }
  uint64_t now() const { return now_; }
  Endpoint local() const;
  Endpoint foreign() const;
  ConnRef ref() const;
  void* context() const;
  void set_context(void* ctx);
  // A word of per-connection state the service owns (e.g. bytes left to send).
  uint64_t user() const;
  void set_user(uint64_t v);

  // Bytes waiting in the receive buffer, and whether the peer's FIN is behind them.
  size_t readable() const;
  bool eof() const;  // FIN received and every byte before it read
  size_t read(void* out, size_t len);  // out nullptr: drop len bytes
  // Copies without taking: the bytes stay until read().
  size_t peek(void* out, size_t len) const;
  // Room in the send buffer; send() takes at most that much and returns it.
  // Finding no room (here or in a short send()) asks for a `writable` call.
  size_t send_space();
  size_t send(const void* data, size_t len);
  size_t unsent() const;  // bytes in the send buffer not yet acknowledged
  TcpConnCounters counters() const;
  // FIN after the queued data; reading goes on.
  void shutdown();
  // shutdown() and detach: the stack delivers what was queued, then closes.
  // Data that arrives afterwards is answered with RST (RFC 9293 §3.10.4).
  void close();
  // RST now; queued data is dropped.
  void abort();

 private:
  friend class tcp::Tcp;
  TcpConn(tcp::Tcp& tcp, tcp::Tcb& t, unsigned w, uint64_t now, pcb::GroupGuard& g)
      : tcp_(tcp), tcb_(t), guard_(g), worker_(w), now_(now) {}
  tcp::Tcp& tcp_;
  tcp::Tcb& tcb_;
  pcb::GroupGuard& guard_;  // the lock the call runs under
  unsigned worker_;
  uint64_t now_;
};

// A listening socket: (addr or any of ours, port). Made by Tcp::listen.
class TcpListener {
 public:
  Endpoint local() const { return local_; }
  unsigned backlog() const { return backlog_; }
  // Connections in SYN-RECEIVED (the group-local syncache) right now.
  unsigned embryonic() const { return embryonic_.load(std::memory_order_relaxed); }
  uint64_t accepted() const { return accepted_.load(std::memory_order_relaxed); }
  uint64_t overflowed() const { return overflowed_.load(std::memory_order_relaxed); }
  // Keepalive for its connections (RFC 9293 §3.8.4, off by default): after
  // `idle_ms` without a segment from the peer, probes every
  // stack.tcp.keepalive_interval_ms; stack.tcp.keepalive_probes unanswered
  // ones end the connection. 0: off. Set before connections arrive.
  void set_keepalive_ms(uint32_t idle_ms) { keepalive_ms_ = idle_ms; }

 private:
  friend class tcp::Tcp;
  TcpListener(const TcpHandlers& h, void* ctx, Endpoint local, unsigned backlog)
      : handlers_(h), ctx_(ctx), local_(local), backlog_(backlog) {}
  TcpHandlers handlers_;
  void* ctx_;
  Endpoint local_;
  unsigned backlog_;
  uint8_t cc_ = 0;  // congestion control of its connections: 0 NewReno, 1 CUBIC
  uint32_t keepalive_ms_ = 0;
  // Written by whichever worker handles a SYN: atomics (one add per handshake).
  std::atomic<unsigned> embryonic_{0};
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> overflowed_{0};
};

}  // namespace ngstack::stack::socket
