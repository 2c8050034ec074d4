#include "stack/udp/udp.hpp"

#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include <algorithm>

#include "stack/ipv4/l4_checksum.hpp"
#include "stack/pcb/mbuf_tuple.hpp"

namespace ngstack::stack::udp {

namespace {

uint32_t l4_offset(const rte_mbuf* m) { return static_cast<uint32_t>(m->l2_len + m->l3_len); }

const rte_ipv4_hdr* ip_of(const rte_mbuf* m) { return rte_pktmbuf_mtod_offset(m, const rte_ipv4_hdr*, m->l2_len); }

}  // namespace

Result<std::unique_ptr<Udp>> Udp::create(const conf::Config& cfg, ipv4::Ip& ip, unsigned workers, unsigned buckets,
                                         std::vector<uint16_t> bucket_map, std::vector<uint8_t> rss_key) {
  std::unique_ptr<Udp> u(new Udp(ip, workers));
  auto t = pcb::PcbTable::create(
      "udp", modes::pcb_params(cfg, workers, buckets, std::move(bucket_map), std::move(rss_key)));
  if (!t) return Error{"stack: " + t.error()};
  u->table_ = std::move(*t);
  u->ip_ids_ = std::make_unique<IpId[]>(workers);
  // Different starting points keep two workers' identifications apart for a while.
  for (unsigned w = 0; w < workers; ++w) {
    u->ip_ids_[w].next = static_cast<uint16_t>(w * (65536 / workers));
    u->scratch_.push_back(std::make_unique<uint8_t[]>(65536));
  }
  return u;
}

Udp::~Udp() = default;

Result<dispatch::ProtoId> Udp::register_protocol(dispatch::Netisr& netisr, const modes::ProtocolSettings& settings) {
  return modes::register_transport(netisr, settings, ip_, "udp", IPPROTO_UDP, input_handler, m2cpuid, this);
}

unsigned Udp::m2cpuid(const void* ctx, const rte_mbuf* m, unsigned source) {
  return pcb::owner_of_packet(*static_cast<const Udp*>(ctx)->table_, m, IPPROTO_UDP, source);
}

void Udp::input_handler(void* ctx, unsigned w, uint16_t, rte_mbuf** pkts, uint16_t n) {
  static_cast<Udp*>(ctx)->input(w, pkts, n);
}

bool Udp::check(unsigned w, rte_mbuf* m, pcb::FourTuple* t, uint16_t* payload_len) {
  const rte_ipv4_hdr* ip = ip_of(m);
  const uint32_t l4 = l4_offset(m);
  const uint32_t ip_payload = rte_be_to_cpu_16(ip->total_length) - static_cast<uint32_t>(m->l3_len);
  DropCounters& drops = *io_[w].drops;
  if (ip_payload < kHeaderLen || m->data_len < l4 + kHeaderLen) {
    drops.inc(DropReason::udp_truncated);
    return false;
  }
  const auto* uh = rte_pktmbuf_mtod_offset(m, const rte_udp_hdr*, l4);
  const uint16_t ulen = rte_be_to_cpu_16(uh->dgram_len);
  if (ulen < kHeaderLen || ulen > ip_payload) {
    drops.inc(DropReason::udp_bad_length);
    return false;
  }
  // RFC 768 leaves a length below the IP payload open; as BSD and Linux do,
  // the datagram is its UDP length and the rest is ignored.
  if (ulen < ip_payload) io_[w].events->inc(Event::udp_length_trimmed);
  // Zero: the sender computed none (RFC 768).
  if (uh->dgram_cksum != 0) {
    const uint64_t verdict = m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;
    const bool good = verdict == RTE_MBUF_F_RX_L4_CKSUM_GOOD && ulen == ip_payload ? true
                      : verdict == RTE_MBUF_F_RX_L4_CKSUM_BAD && ulen == ip_payload
                          ? false
                          : ipv4::l4_checksum_ok(m, ip, l4, ulen, IPPROTO_UDP);
    if (!good) {
      drops.inc(DropReason::udp_bad_checksum);
      return false;
    }
  }
  *t = {rte_be_to_cpu_32(ip->dst_addr), rte_be_to_cpu_32(ip->src_addr), rte_be_to_cpu_16(uh->dst_port),
        rte_be_to_cpu_16(uh->src_port)};
  *payload_len = static_cast<uint16_t>(ulen - kHeaderLen);
  return true;
}

void Udp::input(unsigned w, rte_mbuf** pkts, uint16_t n) {
  const uint64_t now = rte_rdtsc();
  pcb::FourTuple tuples[dispatch::kMaxDispatchBurst];
  rte_mbuf* ok[dispatch::kMaxDispatchBurst];
  uint16_t payload[dispatch::kMaxDispatchBurst];
  unsigned count = 0;
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    if (ip_of(m)->next_proto_id == IPPROTO_ICMP) {
      // ip checked the quote is there (parse_received_error).
      pcb::quoted_tuple(m, &tuples[count]);
      payload[count] = UINT16_MAX;  // marks an ICMP error
      ok[count++] = m;
      continue;
    }
    if (!check(w, m, &tuples[count], &payload[count])) {
      rte_pktmbuf_free(m);
      continue;
    }
    ok[count++] = m;
  }
  if (count == 0) return;
  // In each group, the burst's order: one flow's datagrams stay in order.
  table_->for_each_group(tuples, count, [&](pcb::GroupGuard& g, const uint16_t* idx, unsigned k) {
    for (unsigned j = 0; j < k; ++j) {
      const unsigned i = idx[j];
      if (payload[i] == UINT16_MAX)
        ctlinput(w, ok[i], tuples[i], g, now);
      else
        deliver(w, ok[i], tuples[i], payload[i], g, now);
    }
  });
}

void Udp::deliver(unsigned w, rte_mbuf* m, const pcb::FourTuple& t, uint16_t payload_len, pcb::GroupGuard& g,
                  uint64_t now) {
  const pcb::PcbTable::Match match = table_->lookup_or_listen(g, t);
  // A socket's cookie is the socket: in its PCB (connected) or its listen entry (bound).
  const uint64_t cookie = match.pcb ? match.pcb->cookie : match.listener ? match.listener->cookie : 0;
  auto* so = reinterpret_cast<socket::UdpSocket*>(cookie);
  if (!so) {
    const int in = ip_.interfaces().of_port_id(m->port);
    if (in >= 0) ip_.icmp_error(w, m, ipv4::IcmpError::port_unreachable, static_cast<uint16_t>(in), now);
    return drop(w, m, DropReason::udp_no_socket);
  }
  const uint32_t data_off = l4_offset(m) + kHeaderLen;
  // A reassembled datagram is a chain: the callback gets it in one piece,
  // copied into the worker's scratch buffer.
  const uint8_t* data = static_cast<const uint8_t*>(rte_pktmbuf_read(m, data_off, payload_len, scratch_[w].get()));
  socket::Datagram d;
  d.worker = w;
  d.from = {t.faddr, t.fport};
  d.to = {t.laddr, t.lport};
  d.data = data;
  d.len = payload_len;
  d.now = now;
  auto& c = so->counters_[w];
  c.rx_datagrams.inc();
  c.rx_bytes.add(payload_len);
  if (so->rx_) so->rx_(so->ctx_, *so, d);
  rte_pktmbuf_free(m);
  EventCounters& ev = *io_[w].events;
  ev.inc(Event::udp_delivered);
  ev.inc(Event::consumed);
}

void Udp::ctlinput(unsigned w, rte_mbuf* m, const pcb::FourTuple& t, pcb::GroupGuard& g, uint64_t now) {
  EventCounters& ev = *io_[w].events;
  ev.inc(Event::consumed);
  pcb::Pcb* p = table_->lookup(g, t);
  auto* so = p ? reinterpret_cast<socket::UdpSocket*>(p->cookie) : nullptr;
  if (!so) {
    ev.inc(Event::udp_icmp_errors_unmatched);
    rte_pktmbuf_free(m);
    return;
  }
  const rte_ipv4_hdr* ip = ip_of(m);
  const auto* icmp = rte_pktmbuf_mtod_offset(m, const rte_icmp_hdr*, l4_offset(m));
  socket::IcmpNotice n;
  n.worker = w;
  n.type = icmp->icmp_type;
  n.code = icmp->icmp_code;
  n.reporter = rte_be_to_cpu_32(ip->src_addr);
  n.now = now;
  so->counters_[w].icmp_errors.inc();
  ev.inc(Event::udp_icmp_errors_in);
  if (so->err_) so->err_(so->ctx_, *so, n);
  rte_pktmbuf_free(m);
}

socket::UdpSocket* Udp::open(socket::UdpSocket::ReceiveFn rx, socket::UdpSocket::ErrorFn err, void* ctx) {
  std::lock_guard<std::mutex> lk(sockets_mu_);
  sockets_.push_back(std::unique_ptr<socket::UdpSocket>(new socket::UdpSocket(*this, workers_, rx, err, ctx)));
  return sockets_.back().get();
}

void Udp::forget(socket::UdpSocket* so) {
  std::lock_guard<std::mutex> lk(sockets_mu_);
  auto it = std::find_if(sockets_.begin(), sockets_.end(), [&](const auto& p) { return p.get() == so; });
  if (it != sockets_.end()) sockets_.erase(it);
}

void Udp::shutdown() {
  std::vector<socket::UdpSocket*> open;
  {
    std::lock_guard<std::mutex> lk(sockets_mu_);
    for (auto& s : sockets_) open.push_back(s.get());
  }
  for (auto* s : open) s->close();
}

}  // namespace ngstack::stack::udp
