#include "stack/socket/socket.hpp"

#include <rte_byteorder.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include <cstring>

#include "conf/config.hpp"
#include "stack/udp/udp.hpp"

namespace ngstack::stack::socket {

const char* send_result_name(SendResult r) {
  switch (r) {
    case SendResult::ok: return "ok";
    case SendResult::no_mbuf: return "no_mbuf";
    case SendResult::queue_full: return "queue_full";
    case SendResult::unroutable: return "unroutable";
    case SendResult::too_big: return "too_big";
    case SendResult::not_connected: return "not_connected";
  }
  return "?";
}

SocketStats& SocketStats::operator+=(const SocketStats& o) {
  rx_datagrams += o.rx_datagrams;
  rx_bytes += o.rx_bytes;
  tx_datagrams += o.tx_datagrams;
  tx_bytes += o.tx_bytes;
  tx_no_mbuf += o.tx_no_mbuf;
  tx_queue_full += o.tx_queue_full;
  tx_unroutable += o.tx_unroutable;
  icmp_errors += o.icmp_errors;
  return *this;
}

SocketStats UdpSocket::stats() const {
  SocketStats s;
  for (unsigned w = 0; w < workers_; ++w) {
    const WorkerCounters& c = counters_[w];
    s.rx_datagrams += c.rx_datagrams.get();
    s.rx_bytes += c.rx_bytes.get();
    s.tx_datagrams += c.tx_datagrams.get();
    s.tx_bytes += c.tx_bytes.get();
    s.tx_no_mbuf += c.tx_no_mbuf.get();
    s.tx_queue_full += c.tx_queue_full.get();
    s.tx_unroutable += c.tx_unroutable.get();
    s.icmp_errors += c.icmp_errors.get();
  }
  return s;
}

Status UdpSocket::bind(uint32_t addr, uint16_t port) {
  if (bound_ || connected_) return Error{"the socket is already bound or connected"};
  if (port == 0) return Error{"bind: port 0 (pick a port)"};
  if (addr != 0 && !udp_.ip_.interfaces().local().is_own(addr))
    return Error{"bind: " + conf::format_ipv4(addr) + " is not an address of ours"};
  auto& listeners = udp_.table_->listeners();
  if (!listeners.add({addr, port, reinterpret_cast<uint64_t>(this)}))
    return Error{"bind: UDP port " + std::to_string(port) + " is already bound"};
  local_ = {addr, port};
  bound_ = true;
  return Ok{};
}

Status UdpSocket::connect(unsigned worker, uint32_t faddr, uint16_t fport, uint32_t laddr) {
  if (bound_ || connected_) return Error{"connect: the socket is already bound or connected"};
  if (worker >= workers_) return Error{"connect: no worker " + std::to_string(worker)};
  if (fport == 0) return Error{"connect: foreign port 0"};
  const int port = udp_.ip_.route_port(faddr);
  if (port < 0) return Error{"connect: no route to " + conf::format_ipv4(faddr)};
  if (laddr == 0) laddr = udp_.ip_.interfaces().source_for(static_cast<uint16_t>(port), faddr);
  auto t = udp_.table_->connect(worker, laddr, faddr, fport, reinterpret_cast<uint64_t>(this));
  if (!t) return Error{"connect: no free local port whose replies reach worker " + std::to_string(worker) +
                       " (or the connection table's group is full: raise stack.connections)"};
  local_ = {t->laddr, t->lport};
  foreign_ = {faddr, fport};
  connected_ = true;
  return Ok{};
}

void UdpSocket::close() {
  if (connected_) {
    const pcb::FourTuple t{local_.addr, foreign_.addr, local_.port, foreign_.port};
    pcb::GroupGuard g = udp_.table_->lock_group(udp_.table_->group_of(t));
    if (pcb::Pcb* p = udp_.table_->lookup(g, t)) udp_.table_->remove(g, p);
  } else if (bound_) {
    // Returns after a grace period: no worker still holds the entry.
    udp_.table_->listeners().remove(local_.addr, local_.port);
  }
  udp_.forget(this);  // deletes this
}

uint32_t UdpSocket::group() const {
  return udp_.table_->group_of({local_.addr, foreign_.addr, local_.port, foreign_.port});
}

pcb::GroupGuard UdpSocket::lock() { return udp_.table_->lock_group(group()); }

SendResult UdpSocket::send(unsigned w, const void* data, uint16_t len, uint64_t now) {
  if (!connected_) return SendResult::not_connected;
  return output(w, local_.addr, foreign_, data, len, now);
}

SendResult UdpSocket::sendto(unsigned w, Endpoint to, const void* data, uint16_t len, uint64_t now) {
  if (!bound_ && !connected_) return SendResult::not_connected;
  return output(w, local_.addr, to, data, len, now);
}

SendResult UdpSocket::reply(const Datagram& d, const void* data, uint16_t len) {
  return output(d.worker, d.to.addr, d.from, data, len, d.now);
}

SendResult UdpSocket::output(unsigned w, uint32_t src, Endpoint to, const void* data, uint16_t len, uint64_t now) {
  return udp_.output(w, *this, src, to, data, len, now);
}

}  // namespace ngstack::stack::socket

namespace ngstack::stack::udp {

socket::SendResult Udp::output(unsigned w, socket::UdpSocket& so, uint32_t src, socket::Endpoint to,
                               const void* data, uint16_t len, uint64_t now) {
  using socket::SendResult;
  auto& c = so.counters_[w];
  const int port = ip_.route_port(to.addr);
  if (port < 0) {
    c.tx_unroutable.inc();
    return SendResult::unroutable;
  }
  if (io_[w].tx->refused(static_cast<uint16_t>(port))) {
    c.tx_queue_full.inc();
    return SendResult::queue_full;
  }
  constexpr uint32_t kHeaders = sizeof(rte_ether_hdr) + sizeof(rte_ipv4_hdr) + kHeaderLen;
  rte_mempool* pool = ip_.pool();
  if (kHeaders + len > uint32_t{rte_pktmbuf_data_room_size(pool)} - RTE_PKTMBUF_HEADROOM) return SendResult::too_big;
  rte_mbuf* m = rte_pktmbuf_alloc(pool);
  if (!m) [[unlikely]] {
    c.tx_no_mbuf.inc();
    return SendResult::no_mbuf;
  }
  const ifnet::Interface& out = ip_.interfaces().at(static_cast<uint16_t>(port));
  if (src == 0) src = out.addresses.empty() ? 0 : ip_.interfaces().source_for(static_cast<uint16_t>(port), to.addr);
  auto* p = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, static_cast<uint16_t>(kHeaders + len)));
  auto* eth = reinterpret_cast<rte_ether_hdr*>(p);
  eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
  const uint16_t total = static_cast<uint16_t>(sizeof(rte_ipv4_hdr) + kHeaderLen + len);
  ip->version_ihl = RTE_IPV4_VHL_DEF;
  ip->type_of_service = 0;
  ip->total_length = rte_cpu_to_be_16(total);
  ip->packet_id = rte_cpu_to_be_16(ip_ids_[w].next++);
  ip->fragment_offset = 0;
  ip->time_to_live = 64;
  ip->next_proto_id = IPPROTO_UDP;
  ip->hdr_checksum = 0;
  ip->src_addr = rte_cpu_to_be_32(src);
  ip->dst_addr = rte_cpu_to_be_32(to.addr);
  auto* uh = reinterpret_cast<rte_udp_hdr*>(ip + 1);
  uh->src_port = rte_cpu_to_be_16(so.local_.port);
  uh->dst_port = rte_cpu_to_be_16(to.port);
  uh->dgram_len = rte_cpu_to_be_16(static_cast<uint16_t>(kHeaderLen + len));
  uh->dgram_cksum = 0;
  std::memcpy(uh + 1, data, len);
  constexpr uint64_t kOffload = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
  // A datagram ip will fragment gets its checksums in software: the device
  // would checksum each fragment on its own.
  if ((out.tx_offloads & kOffload) == kOffload && total <= out.mtu) {
    m->l2_len = sizeof(rte_ether_hdr);
    m->l3_len = sizeof(rte_ipv4_hdr);
    m->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_UDP_CKSUM;
    uh->dgram_cksum = rte_ipv4_phdr_cksum(ip, m->ol_flags);
  } else {
    ip->hdr_checksum = rte_ipv4_cksum(ip);
    uh->dgram_cksum = rte_ipv4_udptcp_cksum(ip, uh);  // never 0: 0xffff stands for a computed 0 (RFC 768)
  }
  c.tx_datagrams.inc();
  c.tx_bytes.add(len);
  EventCounters& ev = *io_[w].events;
  ev.inc(Event::originated);
  ev.inc(Event::udp_sent);
  ip_.output(w, m, static_cast<uint16_t>(port), now);
  return SendResult::ok;
}

}  // namespace ngstack::stack::udp
