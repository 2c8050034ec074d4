// UDP (RFC 768) as a protocol layer: the `udp` netisr protocol of host and
// router modes, over the connection table in groups (stack/pcb).
//
//   input    per datagram: the header inside the IP payload (udp_truncated),
//            the length (udp_bad_length when below 8 or beyond the IP payload;
//            a shorter UDP length trims the datagram, udp_length_trimmed), the
//            checksum (the NIC's verdict when it gave one, else computed; zero
//            means none was sent and is accepted). Then the burst's 4-tuples
//            go to PcbTable::for_each_group: one lock acquisition per group
//            per burst; under it each datagram finds its connected socket, or
//            the bound socket of its port, whose receive callback runs there
//            and then. No socket: ICMP port unreachable (rate-limited) and
//            udp_no_socket.
//   errors   ICMP errors quoting a datagram we sent come through the same
//            protocol (ip dispatches them here) and reach the connected
//            socket of the quoted 4-tuple (RFC 1122 §4.1.3.3).
//   output   UdpSocket::send builds Ethernet/IPv4/UDP in one mbuf, with the
//            checksums offloaded where the egress port offers it, and hands it
//            to ip output (routing, ARP, fragmentation).
//
// Dispatch: policy cpu, m2cpuid = the owner of the datagram's connection
// group (the bucket the NIC's Toeplitz hash of the 4-tuple, foreign as
// source, falls in). Under direct dispatch the receiving worker handles it
// and takes the group's lock (FreeBSD's ConnP-L); deferred and hybrid send it
// to the owner, whose lock is then uncontended (ConnP-T). Either way one
// flow's datagrams are handled in order.
#pragma once

#include <rte_mbuf.h>

#include <memory>
#include <mutex>
#include <vector>

#include "conf/config.hpp"
#include "conf/result.hpp"
#include "dispatch/netisr.hpp"
#include "stack/ipv4/ip.hpp"
#include "stack/modes/common.hpp"
#include "stack/pcb/pcb.hpp"
#include "stack/service.hpp"
#include "stack/socket/socket.hpp"

namespace ngstack::stack::udp {

inline constexpr uint16_t kHeaderLen = 8;

class Udp {
 public:
  // `buckets`, `bucket_map` (empty: round robin) and `rss_key` as the netisr
  // and the ports use them, so that a group's owner is the receiving worker.
  static Result<std::unique_ptr<Udp>> create(const conf::Config& cfg, ipv4::Ip& ip, unsigned workers,
                                             unsigned buckets, std::vector<uint16_t> bucket_map,
                                             std::vector<uint8_t> rss_key);
  ~Udp();
  void bind(std::vector<WorkerIo> io) { io_ = std::move(io); }
  // Registers `udp` (policy cpu) and tells ip to deliver UDP to it.
  Result<dispatch::ProtoId> register_protocol(dispatch::Netisr& netisr, const modes::ProtocolSettings& settings);

  static void input_handler(void* ctx, unsigned worker, uint16_t port, rte_mbuf** pkts, uint16_t n);
  // The owner of the group of the datagram's (or the quoted datagram's) 4-tuple.
  static unsigned m2cpuid(const void* ctx, const rte_mbuf* m, unsigned source_worker);

  // A new socket (control path: allocates); see socket.hpp.
  socket::UdpSocket* open(socket::UdpSocket::ReceiveFn rx, socket::UdpSocket::ErrorFn err, void* ctx);

  void worker_online(unsigned w) { table_->listeners().reader_online(w); }
  // Between bursts: the worker holds nothing read from the listen table.
  void poll(unsigned w) { table_->listeners().quiescent(w); }
  void worker_offline(unsigned w) { table_->listeners().reader_offline(w); }
  // After the workers stopped: closes every socket still open.
  void shutdown();

  const pcb::PcbTable& table() const { return *table_; }
  unsigned workers() const { return workers_; }

 private:
  friend class socket::UdpSocket;
  Udp(ipv4::Ip& ip, unsigned workers) : ip_(ip), workers_(workers) {}
  void input(unsigned w, rte_mbuf** pkts, uint16_t n);
  // The datagram's 4-tuple (ours as local) if it passes the checks; else
  // counts the drop and returns false (the caller frees it).
  bool check(unsigned w, rte_mbuf* m, pcb::FourTuple* t, uint16_t* payload_len);
  void deliver(unsigned w, rte_mbuf* m, const pcb::FourTuple& t, uint16_t payload_len, pcb::GroupGuard& g,
               uint64_t now);
  void ctlinput(unsigned w, rte_mbuf* m, const pcb::FourTuple& t, pcb::GroupGuard& g, uint64_t now);
  void drop(unsigned w, rte_mbuf* m, DropReason r) {
    rte_pktmbuf_free(m);
    io_[w].drops->inc(r);
  }
  // The socket side (socket.cpp).
  socket::SendResult output(unsigned w, socket::UdpSocket& so, uint32_t src, socket::Endpoint to, const void* data,
                            uint16_t len, uint64_t now);
  void forget(socket::UdpSocket* so);

  ipv4::Ip& ip_;
  unsigned workers_;
  std::unique_ptr<pcb::PcbTable> table_;
  std::vector<WorkerIo> io_;
  struct alignas(64) IpId {
    uint16_t next = 0;
  };
  std::unique_ptr<IpId[]> ip_ids_;  // per worker: the IPv4 identification of datagrams sent
  std::vector<std::unique_ptr<uint8_t[]>> scratch_;  // per worker: a reassembled datagram, flattened
  std::mutex sockets_mu_;           // control path only
  std::vector<std::unique_ptr<socket::UdpSocket>> sockets_;
};

}  // namespace ngstack::stack::udp
