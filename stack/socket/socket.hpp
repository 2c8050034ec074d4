// The socket API of ngstack's host stack: what every built-in service is
// written on (stack/services), and what a user's service would be.
//
// A UdpSocket is opened on the stack's Udp layer with a receive callback and
// an optional ICMP error callback, then bound (a local port, for a server) or
// connected (a foreign address and port, for a client; the local port is
// chosen so that replies land on the connecting worker). Threads:
//
//   open, bind, connect, close   the control path, or a worker outside any
//                                callback (they take the listen table's
//                                writer lock or a group lock, and bind/close
//                                of a bound socket wait out an RCU grace
//                                period of the other workers)
//   send, sendto, reply          a worker, with its own id, e.g. inside a
//                                callback or in its Service::poll
//   callbacks                    on the worker that handles the datagram's
//                                connection group (its owner under deferred
//                                dispatch, the receiving worker under direct),
//                                with the group's lock held: they must not
//                                block, and must not open, bind, connect or
//                                close a socket (that would take a lock out
//                                of order; the lock-order checker says so)
//
// Sends never block and never drop silently: SendResult says why a datagram
// was not sent (no mbuf, the tx queue refused the port's last burst, no
// route), and the socket's counters count it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "conf/result.hpp"
#include "dispatch/counter.hpp"
#include "stack/pcb/pcb.hpp"

namespace ngstack::stack::udp {
class Udp;
}

namespace ngstack::stack::socket {

using dispatch::Counter;

struct Endpoint {
  uint32_t addr = 0;  // IPv4, host byte order; 0: any
  uint16_t port = 0;
  bool operator==(const Endpoint&) const = default;
};

enum class SendResult : uint8_t {
  ok,
  no_mbuf,        // the pool is empty: try again later
  queue_full,     // the port's tx queue refused part of this worker's last burst: try again later
  unroutable,     // no route to the destination (or a blackhole/reject route)
  too_big,        // larger than one mbuf's data room
  not_connected,  // send() on a socket that is not connected
};
const char* send_result_name(SendResult r);

// A received datagram, valid during the callback only.
struct Datagram {
  unsigned worker = 0;  // the worker running the callback (pass it to reply/sendto)
  Endpoint from;        // the sender
  Endpoint to;          // the local address and port it was sent to
  const uint8_t* data = nullptr;
  uint16_t len = 0;
  uint64_t now = 0;     // TSC at the burst
};

// An ICMP error about a datagram this (connected) socket sent.
struct IcmpNotice {
  unsigned worker = 0;
  uint8_t type = 0;  // 3 destination unreachable, 11 time exceeded, ...
  uint8_t code = 0;  // with type 3: 3 port unreachable, 1 host unreachable, ...
  uint32_t reporter = 0;  // who sent the error
  uint64_t now = 0;
};

// What a socket counted, summed over the workers.
struct SocketStats {
  uint64_t rx_datagrams = 0, rx_bytes = 0;
  uint64_t tx_datagrams = 0, tx_bytes = 0;
  uint64_t tx_no_mbuf = 0, tx_queue_full = 0, tx_unroutable = 0;
  uint64_t icmp_errors = 0;
  SocketStats& operator+=(const SocketStats& o);
};

class UdpSocket {
 public:
  using ReceiveFn = void (*)(void* ctx, UdpSocket& so, const Datagram& d);
  using ErrorFn = void (*)(void* ctx, UdpSocket& so, const IcmpNotice& n);

  // --- control ---------------------------------------------------------------------
  // Receives datagrams to (addr or any of ours, port); addr 0: any.
  Status bind(uint32_t addr, uint16_t port);
  // Fixes the foreign end and picks an ephemeral local port whose replies
  // land in a connection group owned by `worker` (call it on that worker, or
  // before workers run). `laddr` 0: the source address of the route.
  Status connect(unsigned worker, uint32_t faddr, uint16_t fport, uint32_t laddr = 0);
  // Unbinds or disconnects and frees the socket: no callback runs after it returns.
  void close();

  // --- data (worker w) -----------------------------------------------------------------
  SendResult send(unsigned w, const void* data, uint16_t len, uint64_t now);
  SendResult sendto(unsigned w, Endpoint to, const void* data, uint16_t len, uint64_t now);
  // Answers `d` from the address it was sent to.
  SendResult reply(const Datagram& d, const void* data, uint16_t len);

  // The lock of a connected socket's connection group, for a worker that
  // works on the socket's state outside a callback (where it is held
  // already); in giant mode the giant lock. Take one at a time.
  pcb::GroupGuard lock();
  uint32_t group() const;  // of a connected socket

  Endpoint local() const { return local_; }
  Endpoint foreign() const { return foreign_; }
  bool connected() const { return connected_; }
  SocketStats stats() const;  // any thread

 private:
  friend class udp::Udp;
  struct alignas(64) WorkerCounters {
    Counter rx_datagrams, rx_bytes, tx_datagrams, tx_bytes, tx_no_mbuf, tx_queue_full, tx_unroutable, icmp_errors;
  };
  UdpSocket(udp::Udp& udp, unsigned workers, ReceiveFn rx, ErrorFn err, void* ctx)
      : udp_(udp), counters_(new WorkerCounters[workers]), rx_(rx), err_(err), ctx_(ctx), workers_(workers) {}
  SendResult output(unsigned w, uint32_t src, Endpoint to, const void* data, uint16_t len, uint64_t now);

  udp::Udp& udp_;
  std::unique_ptr<WorkerCounters[]> counters_;
  ReceiveFn rx_;
  ErrorFn err_;
  void* ctx_;
  unsigned workers_;
  Endpoint local_, foreign_;
  bool bound_ = false;
  bool connected_ = false;
};

}  // namespace ngstack::stack::socket
