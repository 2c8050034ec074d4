// rte_ip_frag_table_del_expired_entries is experimental in DPDK 22.11.
#define ALLOW_EXPERIMENTAL_API
#include "stack/ipv4/ip.hpp"

#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_ip.h>
#include <rte_prefetch.h>

#include <cstring>

namespace ngstack::stack::ipv4 {

namespace {

constexpr uint16_t kL2 = ether::kHeaderLen;
constexpr unsigned kMaxFragments = 64;
// rte_ip_frag drops a timed-out datagram only when another fragment lands in
// its bucket: a lone fragment would wait for one without this sweep.
constexpr double kFragSweepS = 0.01;

rte_ipv4_hdr* ip_of(rte_mbuf* m) { return rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, kL2); }

// l2_len and l3_len in one read-modify-write of tx_offload (two bit-field
// stores would be two).
void set_header_lens(rte_mbuf* m, uint16_t l3_len) {
  constexpr uint64_t kMask = (uint64_t{1} << RTE_MBUF_L3_LEN_OFS << RTE_MBUF_L3_LEN_BITS) - 1;
  m->tx_offload = (m->tx_offload & ~kMask) | kL2 | uint64_t{l3_len} << RTE_MBUF_L3_LEN_OFS;
}

// RFC 1624 (as in RFC 1812 §5.3.1): TTL is the high byte of its 16-bit word,
// so one less TTL is 0x0100 more in the one's complement checksum. The sum
// is byte-order independent (RFC 1071 §2(B)), so the stored checksum takes
// that 0x0100 in network order with no swaps. RFC 1624 §3: a result of
// 0xffff (-0) is stored as 0x0000, as a full recomputation would give it;
// the end-around carry and that case are one `+ (sum >= 0xffff)`.
void decrement_ttl(rte_ipv4_hdr* ip) {
  --ip->time_to_live;
  const uint32_t sum = uint32_t{ip->hdr_checksum} + rte_cpu_to_be_16(0x0100);
  ip->hdr_checksum = static_cast<uint16_t>(sum + (sum >= 0xffff));
}

}  // namespace

Result<std::unique_ptr<Ip>> Ip::create(const conf::RouterConfig& cfg, const ifnet::Interfaces& ifs, route::Fib& fib,
                                       ether::Ether& ether, arp::Resolver& arp, rte_mempool* pool, unsigned workers,
                                       uint64_t tsc_hz) {
  std::unique_ptr<Ip> ip(new Ip(ifs, fib, ether, arp, pool));
  ip->frag_sweep_cycles_ = static_cast<uint64_t>(kFragSweepS * static_cast<double>(tsc_hz));
  const uint64_t frag_timeout = static_cast<uint64_t>(cfg.reassembly.timeout_ms) * tsc_hz / 1000;
  for (unsigned w = 0; w < workers; ++w) {
    auto pw = std::make_unique<PerWorker>(ip.get(), w, cfg.icmp.rate, cfg.icmp.burst, tsc_hz);
    const unsigned datagrams = cfg.reassembly.max_datagrams;
    pw->frag_table = rte_ip_frag_table_create(datagrams, 4, datagrams, frag_timeout, SOCKET_ID_ANY);
    if (!pw->frag_table)
      return Error{"router.reassembly: cannot allocate a table of " + std::to_string(datagrams) +
                   " datagrams; lower max_datagrams or raise eal.memory_mb"};
    ip->per_worker_.push_back(std::move(pw));
  }
  return ip;
}

Ip::~Ip() {
  for (auto& pw : per_worker_)
    if (pw->frag_table) rte_ip_frag_table_destroy(pw->frag_table);
}

void Ip::set_upper(dispatch::Netisr* netisr, uint8_t ip_proto, dispatch::ProtoId proto) {
  upper_[ip_proto] = {netisr, proto};
}

// --- input -----------------------------------------------------------------------

void Ip::input_handler(void* ctx, unsigned w, uint16_t, rte_mbuf** pkts, uint16_t n) {
  static_cast<Ip*>(ctx)->input(w, pkts, n);
}

void Ip::input(unsigned w, rte_mbuf** pkts, uint16_t n) {
  const uint64_t now = io_[w].now();
  arp_.begin_burst(w);
  ForwardBatch batch;
  LocalBatch local;
  // A burst nearly always comes from one port: look it up once per change.
  uint32_t last_port_id = UINT32_MAX;
  int in = -1;
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    if (m->port != last_port_id) [[unlikely]] {
      last_port_id = m->port;
      in = ifs_.of_port_id(m->port);
    }
    if (in < 0) [[unlikely]] {
      drop(w, m, DropReason::not_our_port);
      continue;
    }
    accept(w, m, static_cast<uint16_t>(in), now, batch, local);
  }
  forward_batch(w, batch, now);
  flush_local(w, local);
}

void Ip::to_upper(unsigned w, const Upper& up, rte_mbuf* m, LocalBatch& local) {
  unsigned i = 0;
  while (i < local.used && local.upper[i] != &up) ++i;
  if (i == local.used) {
    if (i == LocalBatch::kMaxUpper) {  // more upper protocols than a burst holds: this one now
      return up.netisr->dispatch(w, up.proto, m->port, 0, &m, 1);
    }
    local.upper[local.used++] = &up;
  }
  local.pkts[i][local.n[i]++] = m;
}

void Ip::flush_local(unsigned w, LocalBatch& local) {
  for (unsigned i = 0; i < local.used; ++i)
    local.upper[i]->netisr->dispatch(w, local.upper[i]->proto, dispatch::kMixedPorts, 0, local.pkts[i], local.n[i]);
}

inline void Ip::accept(unsigned w, rte_mbuf* m, uint16_t in, uint64_t now, ForwardBatch& batch, LocalBatch& local) {
  const InputVerdict v = check_input(m, kL2, ifs_.local());
  switch (v.disposition) {
    case Disposition::drop: return drop(w, m, v.reason);
    case Disposition::multicast: return drop(w, m, DropReason::ipv4_multicast);
    case Disposition::local:
    case Disposition::broadcast:
      set_header_lens(m, v.header_len);
      return local_input(w, m, v, in, now, local);
    case Disposition::forward:
      if (!forwarding_) [[unlikely]]
        return drop(w, m, DropReason::ipv4_not_forwarding);
      break;
  }
  // RFC 1812 §5.3.4: a packet that arrived as a link-layer broadcast or
  // multicast is not forwarded (it would be forwarded by every router on the
  // link).
  if (rte_is_multicast_ether_addr(&rte_pktmbuf_mtod(m, const rte_ether_hdr*)->dst_addr)) [[unlikely]]
    return drop(w, m, DropReason::ipv4_link_broadcast);
  const rte_ipv4_hdr* ip = ip_of(m);
  // RFC 1812 §5.3.1: a packet that would leave with TTL 0 is not forwarded.
  if (ip->time_to_live <= 1) [[unlikely]] {
    icmp_error(w, m, IcmpError::ttl_exceeded, in, now);
    return drop(w, m, DropReason::ipv4_ttl_exceeded);
  }
  set_header_lens(m, v.header_len);
  batch.pkts[batch.n] = m;
  batch.dst[batch.n] = rte_be_to_cpu_32(ip->dst_addr);
  batch.in_port[batch.n] = in;
  ++batch.n;
}

// --- forward ----------------------------------------------------------------------

void Ip::forward_batch(unsigned w, ForwardBatch& batch, uint64_t now) {
  if (batch.n == 0) return;
  fib_.lookup_bulk(batch.dst, batch.ids, batch.n);
  // Fast path: a gateway route to a resolved neighbour (ARP's one-entry
  // memo), within the egress MTU. Everything else takes forward().
  // Consecutive packets mostly share a next hop, so its verdict is kept with
  // a copy of what transmitting needs.
  uint64_t fast_id = UINT64_MAX;
  uint16_t fast_port = 0, fast_mtu = 0;
  // Destination then source MAC, as they lie in the header: one 12-byte copy.
  uint8_t fast_addrs[2 * RTE_ETHER_ADDR_LEN];
  uint64_t fast = 0;
  TxBuffers& tx = *io_[w].tx;
  for (uint16_t j = 0; j < batch.n; ++j) {
    rte_mbuf* m = batch.pkts[j];
    const uint64_t id = batch.ids[j];
    if (id != fast_id) {
      const route::NextHop& nh = fib_.nexthop(id);
      if (nh.kind != route::NextHopKind::forward || nh.gateway == 0 ||
          arp::ArpTable::key(nh.port, nh.gateway) != arp_.memo_key(w)) {
        forward(w, m, id, batch.in_port[j], now, false);
        continue;
      }
      fast_id = id;
      fast_port = nh.port;
      fast_mtu = ifs_.at(nh.port).mtu;
      std::memcpy(fast_addrs, &arp_.memo_mac(w), RTE_ETHER_ADDR_LEN);
      std::memcpy(fast_addrs + RTE_ETHER_ADDR_LEN, &ifs_.at(nh.port).mac, RTE_ETHER_ADDR_LEN);
    }
    rte_ipv4_hdr* ip = ip_of(m);
    if (rte_be_to_cpu_16(ip->total_length) > fast_mtu) [[unlikely]] {
      forward(w, m, id, batch.in_port[j], now, false);
      continue;
    }
    decrement_ttl(ip);
    std::memcpy(rte_pktmbuf_mtod(m, void*), fast_addrs, sizeof fast_addrs);
    tx.push(fast_port, m);
    ++fast;
  }
  io_[w].events->add(Event::ipv4_forwarded, fast);
}

void Ip::forward(unsigned w, rte_mbuf* m, uint64_t id, uint16_t in_port, uint64_t now, bool local_origin) {
  const route::NextHop& nh = fib_.nexthop(id);
  switch (nh.kind) {
    case route::NextHopKind::none:
      if (!local_origin) icmp_error(w, m, IcmpError::net_unreachable, in_port, now);
      return drop(w, m, DropReason::ipv4_no_route);
    case route::NextHopKind::blackhole: return drop(w, m, DropReason::ipv4_blackhole);
    case route::NextHopKind::reject:
      if (!local_origin) icmp_error(w, m, IcmpError::host_unreachable, in_port, now);
      return drop(w, m, DropReason::ipv4_reject);
    case route::NextHopKind::forward: break;
  }
  rte_ipv4_hdr* ip = ip_of(m);
  const uint32_t dst = rte_be_to_cpu_32(ip->dst_addr);
  const ifnet::Interface& out = ifs_.at(nh.port);
  // RFC 2644: directed broadcasts to another subnet are not forwarded.
  if (nh.gateway == 0 && ifs_.local().is_subnet_broadcast(dst, out.port_id))
    return drop(w, m, DropReason::ipv4_bad_destination);
  const uint32_t nh_addr = nh.gateway ? nh.gateway : dst;
  const uint16_t total = rte_be_to_cpu_16(ip->total_length);
  // A TSO frame is cut to the MTU by the device.
  if (total > out.mtu && !(m->ol_flags & RTE_MBUF_F_TX_TCP_SEG)) [[unlikely]] {
    if (ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG)) {
      if (!local_origin) icmp_error(w, m, IcmpError::frag_needed, in_port, now, out.mtu);
      return drop(w, m, DropReason::ipv4_frag_needed);
    }
    if (!local_origin) decrement_ttl(ip);
    io_[w].events->inc(Event::ipv4_forwarded);
    return send_fragments(w, m, nh.port, nh_addr, now);
  }
  if (!local_origin) {
    decrement_ttl(ip);
    io_[w].events->inc(Event::ipv4_forwarded);
  }
  ether_.output(w, m, nh.port, nh_addr, now);
}

void Ip::output(unsigned w, rte_mbuf* m, uint16_t in_port, uint64_t now) {
  forward(w, m, fib_.lookup(rte_be_to_cpu_32(ip_of(m)->dst_addr)), in_port, now, true);
}

void Ip::send_fragments(unsigned w, rte_mbuf* m, uint16_t out, uint32_t nh_addr, uint64_t now) {
  // Frame length beyond the IP total length is Ethernet padding: not payload.
  const uint16_t total = rte_be_to_cpu_16(ip_of(m)->total_length);
  if (rte_pktmbuf_pkt_len(m) > kL2 + uint32_t{total})
    rte_pktmbuf_trim(m, static_cast<uint16_t>(rte_pktmbuf_pkt_len(m) - kL2 - total));
  rte_pktmbuf_adj(m, kL2);
  rte_mbuf* frags[kMaxFragments];
  const int nf = rte_ipv4_fragment_packet(m, frags, kMaxFragments, ifs_.at(out).mtu, pool_, pool_);
  if (nf < 0) return drop(w, m, DropReason::ipv4_fragment_failed);
  rte_pktmbuf_free(m);
  EventCounters& ev = *io_[w].events;
  ev.inc(Event::consumed);
  ev.add(Event::originated, static_cast<uint64_t>(nf));
  ev.add(Event::ipv4_fragments_out, static_cast<uint64_t>(nf));
  for (int i = 0; i < nf; ++i) {
    rte_mbuf* f = frags[i];
    auto* fip = rte_pktmbuf_mtod(f, rte_ipv4_hdr*);
    fip->hdr_checksum = 0;
    fip->hdr_checksum = rte_ipv4_cksum(fip);
    auto* eth = reinterpret_cast<rte_ether_hdr*>(rte_pktmbuf_prepend(f, kL2));
    eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
    ether_.output(w, f, out, nh_addr, now);
  }
}

// --- local delivery -----------------------------------------------------------------

void Ip::local_input(unsigned w, rte_mbuf* m, const InputVerdict& v, uint16_t in_port, uint64_t now,
                     LocalBatch& local) {
  PerWorker& pw = *per_worker_[w];
  EventCounters& ev = *io_[w].events;
  rte_ipv4_hdr* ip = ip_of(m);
  const uint16_t frag = rte_be_to_cpu_16(ip->fragment_offset);
  if (frag & (RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)) {
    const uint32_t end = (frag & RTE_IPV4_HDR_OFFSET_MASK) * 8u + v.total_len - v.header_len;
    // A datagram may not exceed 65 535 bytes (the ping of death does).
    if (end + v.header_len > 65535) return drop(w, m, DropReason::ipv4_frag_too_big);
    // Whole fragments only: reassembly counts a datagram's fragments by its segments.
    if (m->nb_segs != 1) return drop(w, m, DropReason::ipv4_reassembly_failed);
    if (rte_pktmbuf_pkt_len(m) > kL2 + uint32_t{v.total_len})
      rte_pktmbuf_trim(m, static_cast<uint16_t>(rte_pktmbuf_pkt_len(m) - kL2 - v.total_len));
    const uint32_t dead_before = pw.death_row.cnt;
    rte_mbuf* whole = rte_ipv4_frag_reassemble_packet(pw.frag_table, &pw.death_row, m, now, ip);
    const uint32_t dead = pw.death_row.cnt - dead_before;
    pw.frags_held = pw.frags_held + 1 - dead;
    if (dead) io_[w].drops->add(DropReason::ipv4_reassembly_failed, dead);
    rte_ip_frag_free_death_row(&pw.death_row, 0);
    if (!whole) return;
    pw.frags_held -= whole->nb_segs;
    ev.add(Event::consumed, whole->nb_segs - 1u);
    ev.inc(Event::ipv4_reassembled);
    m = whole;
    ip = ip_of(m);
  }
  ev.inc(Event::ipv4_local);
  if (v.disposition == Disposition::broadcast) return drop(w, m, DropReason::local_no_service);
  const Upper& up = upper_[ip->next_proto_id];
  if (up.netisr) {
    set_header_lens(m, v.header_len);
    return to_upper(w, up, m, local);
  }
  switch (ip->next_proto_id) {
    case IPPROTO_ICMP: {
      if (echo_reply_in_place(m, kL2)) {
        ev.inc(Event::icmp_echo_replies);
        return output(w, m, in_port, now);
      }
      // An error about a datagram of ours goes to its protocol (RFC 1122
      // §3.2.2: the transport layer is told).
      ReceivedError e;
      if (parse_received_error(m, kL2, v.header_len, &e))
        if (const Upper& inner = upper_[e.inner_proto]; inner.netisr) {
          set_header_lens(m, v.header_len);
          return to_upper(w, inner, m, local);
        }
      return drop(w, m, DropReason::local_no_service);
    }
    case IPPROTO_UDP: icmp_error(w, m, IcmpError::port_unreachable, in_port, now); break;
    default: icmp_error(w, m, IcmpError::protocol_unreachable, in_port, now); break;
  }
  drop(w, m, DropReason::local_no_service);
}

// --- ICMP errors ---------------------------------------------------------------------

void Ip::icmp_error(unsigned w, const rte_mbuf* m, IcmpError e, uint16_t in_port, uint64_t now, uint16_t mtu) {
  const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
  if (!may_send_error(m, kL2, rte_is_multicast_ether_addr(&eth->dst_addr))) return;
  EventCounters& ev = *io_[w].events;
  if (!per_worker_[w]->icmp_bucket.take(now)) return ev.inc(Event::icmp_rate_limited);
  const uint32_t to = rte_be_to_cpu_32(rte_pktmbuf_mtod_offset(m, const rte_ipv4_hdr*, kL2)->src_addr);
  rte_mbuf* err = build_error(pool_, m, kL2, e, ifs_.source_for(in_port, to), mtu);
  if (!err) return;
  auto* eeth = reinterpret_cast<rte_ether_hdr*>(rte_pktmbuf_prepend(err, kL2));
  eeth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
  ev.inc(Event::originated);
  ev.inc(Event::icmp_errors_out);
  output(w, err, in_port, now);
}

void Ip::on_unresolved(void* ctx, unsigned w, rte_mbuf** held, uint16_t n, uint64_t now) {
  auto& ip = *static_cast<Ip*>(ctx);
  // A timer, not a handler: whatever ARP memoised in the worker's last burst
  // may have changed since.
  ip.arp_.begin_burst(w);
  for (uint16_t i = 0; i < n; ++i) {
    const int in = ip.ifs_.of_port_id(held[i]->port);
    // No error about a packet made here (an echo reply, an ICMP error).
    const uint32_t src = rte_be_to_cpu_32(rte_pktmbuf_mtod_offset(held[i], const rte_ipv4_hdr*, kL2)->src_addr);
    if (in >= 0 && !ip.ifs_.local().is_own(src))
      ip.icmp_error(w, held[i], IcmpError::host_unreachable, static_cast<uint16_t>(in), now);
    ip.drop(w, held[i], DropReason::arp_unresolved);
  }
}

// --- per worker -------------------------------------------------------------------------

void Ip::worker_online(unsigned w) {
  PerWorker& pw = *per_worker_[w];
  io_[w].timers->arm(rte_rdtsc() + frag_sweep_cycles_, on_frag_expiry, &pw, 0);
}

void Ip::on_frag_expiry(void* ctx, uint64_t, uint64_t now) {
  auto& pw = *static_cast<PerWorker*>(ctx);
  Ip& ip = *pw.owner;
  const uint32_t dead_before = pw.death_row.cnt;
  rte_ip_frag_table_del_expired_entries(pw.frag_table, &pw.death_row, now);
  const uint32_t dead = pw.death_row.cnt - dead_before;
  if (dead) {
    pw.frags_held -= dead;
    ip.io_[pw.w].drops->add(DropReason::ipv4_reassembly_failed, dead);
    rte_ip_frag_free_death_row(&pw.death_row, 0);
  }
  ip.io_[pw.w].timers->arm(now + ip.frag_sweep_cycles_, on_frag_expiry, &pw, 0);
}

void Ip::shutdown() {
  for (auto& pwp : per_worker_) {
    PerWorker& pw = *pwp;
    rte_ip_frag_free_death_row(&pw.death_row, 0);
    io_[pw.w].drops->add(DropReason::ipv4_reassembly_failed, pw.frags_held);
    pw.frags_held = 0;
    rte_ip_frag_table_destroy(pw.frag_table);
    pw.frag_table = nullptr;
  }
}

}  // namespace ngstack::stack::ipv4
