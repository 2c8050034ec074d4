// rte_ip_frag_table_del_expired_entries is experimental in DPDK 22.11.
#define ALLOW_EXPERIMENTAL_API
#include "stack/router.hpp"

#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_ip.h>
#include <rte_malloc.h>

#include <spdlog/spdlog.h>

#include <array>
#include <chrono>
#include <cstring>

#include "stack/arp/arp.hpp"

namespace ngstack::stack {

namespace {

constexpr uint16_t kL2 = sizeof(rte_ether_hdr);
constexpr unsigned kMaxFragments = 64;
constexpr double kMaintenancePeriodS = 0.01;

rte_ipv4_hdr* ip_of(rte_mbuf* m) { return rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, kL2); }

// RFC 1624 (as in RFC 1812 §5.3.1): TTL is the high byte of its 16-bit word,
// so one less TTL is 0x0100 more in the one's complement checksum. The sum
// is byte-order independent (RFC 1071 §2(B)), so the stored checksum takes
// that 0x0100 in network order with no swaps.
void decrement_ttl(rte_ipv4_hdr* ip) {
  --ip->time_to_live;
  uint32_t sum = uint32_t{ip->hdr_checksum} + rte_cpu_to_be_16(0x0100);
  sum = (sum & 0xffff) + (sum >> 16);
  ip->hdr_checksum = static_cast<uint16_t>(sum);
}

}  // namespace

Result<std::unique_ptr<Router>> Router::create(const conf::Config& cfg, const std::vector<PortInfo>& ports,
                                               rte_mempool* pool, unsigned workers, uint64_t tsc_hz) {
  const conf::RouterConfig& rc = cfg.router;
  unsigned routes = static_cast<unsigned>(rc.routes.size()), long_prefixes = 0;
  for (const auto& ic : rc.interfaces) routes += static_cast<unsigned>(ic.addresses.size());
  for (const auto& r : rc.routes) long_prefixes += r.prefix.len > 24;
  for (const auto& ic : rc.interfaces)
    for (const auto& a : ic.addresses) long_prefixes += a.len > 24;
  const auto load_start = std::chrono::steady_clock::now();
  auto fib = route::Fib::create(routes, long_prefixes);
  if (!fib) return Error{"router: " + fib.error()};

  std::unique_ptr<Router> r(new Router(pool, tsc_hz, std::move(*fib)));
  r->ifaces_.resize(cfg.ports.size());
  std::vector<uint16_t> port_ids;
  for (const auto& p : ports) port_ids.push_back(p.port_id);
  r->port_index_ = PortIndex(port_ids);
  std::vector<ipv4::InterfaceAddress> local;
  for (const auto& ic : rc.interfaces) {
    Interface& itf = r->ifaces_[ic.port];
    itf.active = true;
    itf.port_id = ports[ic.port].port_id;
    itf.mac = ports[ic.port].mac;
    itf.mtu = ports[ic.port].mtu;
    itf.addresses = ic.addresses;
    itf.name = cfg.ports[ic.port].name;
    for (const auto& a : ic.addresses) {
      local.push_back({itf.port_id, a.addr, a.len});
      // The connected route: its destinations are their own next hops.
      if (a.len < 32)
        if (auto st = r->fib_->add(a.addr & a.mask(), a.len, {route::NextHopKind::forward, ic.port, 0}, true);
            !st)
          return Error{ic.pos.where() + ": " + st.error()};
    }
  }
  r->local_ = ipv4::LocalAddresses(std::move(local));
  for (const auto& rt : rc.routes) {
    route::NextHop nh;
    switch (rt.action) {
      case conf::RouteAction::blackhole: nh.kind = route::NextHopKind::blackhole; break;
      case conf::RouteAction::reject: nh.kind = route::NextHopKind::reject; break;
      case conf::RouteAction::forward: {
        const route::NextHop& via = r->fib_->nexthop(r->fib_->lookup(rt.via));
        if (via.kind != route::NextHopKind::forward || via.gateway != 0)
          return Error{rt.pos.where() + ": gateway " + conf::format_ipv4(rt.via) + " is on no connected subnet"};
        nh = {route::NextHopKind::forward, via.port, rt.via};
        break;
      }
    }
    if (auto st = r->fib_->add(rt.prefix.addr, rt.prefix.len, nh); !st) return Error{rt.pos.where() + ": " + st.error()};
  }

  spdlog::info("router: FIB of {} routes over {} next hops loaded in {:.1f} ms", r->fib_->routes(),
               r->fib_->nexthops(),
               std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - load_start).count());
  r->arp_cfg_ = rc.arp;
  auto arp = arp::ArpTable::create({rc.arp.max_entries, rc.arp.hold_packets, workers});
  if (!arp) return Error{"router.arp: " + arp.error()};
  r->arp_ = std::move(*arp);
  // Route changes wait out a grace period over the workers' quiescent
  // reports to the ARP table's RCU (Router::poll, once per loop iteration).
  r->fib_->attach_qsbr(r->arp_->index().qsbr());
  const auto cycles = [tsc_hz](unsigned ms) { return static_cast<uint64_t>(ms) * tsc_hz / 1000; };
  r->reachable_cycles_ = cycles(rc.arp.reachable_ms);
  r->stale_cycles_ = cycles(rc.arp.stale_ms);
  r->retry_cycles_ = cycles(rc.arp.retry_ms);
  for (const auto& sn : rc.arp.statics) {
    rte_ether_addr mac;
    std::copy(sn.mac.begin(), sn.mac.end(), mac.addr_bytes);
    bool created = false;
    if (r->arp_->find_or_create(sn.port, sn.addr, arp::Link::make(mac, arp::State::permanent), 0, &created) ==
        RcuTable::kNone)
      return Error{sn.pos.where() + ": the ARP table is full (router.arp.max_entries)"};
  }

  for (unsigned w = 0; w < workers; ++w) {
    auto pw = std::make_unique<PerWorker>(rc.icmp.rate, rc.icmp.burst, tsc_hz);
    const unsigned datagrams = rc.reassembly.max_datagrams;
    pw->frag_table = rte_ip_frag_table_create(datagrams, 4, datagrams, cycles(rc.reassembly.timeout_ms), SOCKET_ID_ANY);
    if (!pw->frag_table)
      return Error{"router.reassembly: cannot allocate a table of " + std::to_string(datagrams) +
                   " datagrams; lower max_datagrams or raise eal.memory_mb"};
    r->per_worker_.push_back(std::move(pw));
  }
  return r;
}

Router::~Router() {
  for (auto& pw : per_worker_)
    if (pw->frag_table) rte_ip_frag_table_destroy(pw->frag_table);
}

uint32_t Router::source_for(uint16_t port, uint32_t dst) const {
  const auto& addrs = ifaces_[port].addresses;
  for (const auto& a : addrs)
    if ((dst & a.mask()) == (a.addr & a.mask())) return a.addr;
  return addrs.empty() ? 0 : addrs.front().addr;
}

// --- ether ---------------------------------------------------------------------

void Router::ether_handler(void* ctx, unsigned w, uint16_t port, rte_mbuf** pkts, uint16_t n) {
  auto& r = *static_cast<Router*>(ctx);
  // With ip dispatched direct, its input checks run in this same pass over
  // the burst (no second walk over the packets); otherwise ip is dispatched.
  const bool ip_here = r.netisr_->is_direct(w, r.ip_proto_);
  ForwardBatch batch;
  uint64_t now = 0;
  if (ip_here) {
    now = rte_rdtsc();
    r.ip_begin(w);
  }
  rte_mbuf* ip[dispatch::kMaxDispatchBurst];
  rte_mbuf* arp[dispatch::kMaxDispatchBurst];
  uint16_t nip = 0, narp = 0;
  uint32_t last_port_id = UINT32_MAX;
  int in = -1;
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    if (rte_pktmbuf_data_len(m) < kL2) [[unlikely]] {
      r.drop(w, m, DropReason::runt);
      continue;
    }
    const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
    if (m->port != last_port_id) [[unlikely]] {
      last_port_id = m->port;
      in = r.cfg_port(m->port);
    }
    // A promiscuous port also hears unicast for other stations: not ours to route.
    if (in >= 0 && !rte_is_multicast_ether_addr(&eth->dst_addr) &&
        !rte_is_same_ether_addr(&eth->dst_addr, &r.ifaces_[in].mac)) [[unlikely]] {
      r.drop(w, m, DropReason::ether_not_for_us);
      continue;
    }
    const uint16_t type = eth->ether_type;
    if (type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4)) {
      if (!ip_here)
        ip[nip] = m;
      else if (in < 0 || !r.ifaces_[in].active) [[unlikely]]
        r.drop(w, m, DropReason::not_our_port);
      else
        r.ip_accept(w, m, static_cast<uint16_t>(in), now, batch);
      ++nip;
    } else if (type == rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP)) {
      arp[narp++] = m;
    } else {
      r.drop(w, m, DropReason::ether_unknown_type);
    }
  }
  if (narp) r.netisr_->dispatch(w, r.arp_proto_, port, 0, arp, narp);
  if (!nip) return;
  if (!ip_here) return r.netisr_->dispatch(w, r.ip_proto_, port, 0, ip, nip);
  r.ip_forward(w, batch, now);
  r.netisr_->counted_direct(w, r.ip_proto_, nip);
}

// --- ARP -----------------------------------------------------------------------

void Router::arp_handler(void* ctx, unsigned w, uint16_t, rte_mbuf** pkts, uint16_t n) {
  auto& r = *static_cast<Router*>(ctx);
  const uint64_t now = rte_rdtsc();
  for (uint16_t i = 0; i < n; ++i) r.arp_input(w, pkts[i], now);
}

void Router::arp_input(unsigned w, rte_mbuf* m, uint64_t now) {
  const int port = cfg_port(m->port);
  if (port < 0 || !ifaces_[port].active) return drop(w, m, DropReason::not_our_port);
  const uint16_t in = static_cast<uint16_t>(port);
  const Interface& itf = ifaces_[in];
  arp::Packet p;
  DropReason why;
  if (!arp::parse(m, &p, &why)) return drop(w, m, why);
  EventCounters& ev = *io_[w].events;
  ev.inc(p.op == RTE_ARP_OP_REQUEST ? Event::arp_requests_in : Event::arp_replies_in);

  bool on_subnet = false, for_us = false;
  for (const auto& a : itf.addresses) {
    on_subnet |= (p.spa & a.mask()) == (a.addr & a.mask());
    for_us |= p.tpa == a.addr;
  }
  if (rte_is_multicast_ether_addr(&p.sha) || rte_is_zero_ether_addr(&p.sha) || p.spa == 0 || !on_subnet ||
      local_.is_own(p.spa) || local_.is_subnet_broadcast(p.spa, m->port))
    return drop(w, m, DropReason::arp_bad_sender);

  auto release = [&](rte_mbuf** held, uint16_t count, const rte_ether_addr& mac) {
    for (uint16_t i = 0; i < count; ++i) {
      auto* eth = rte_pktmbuf_mtod(held[i], rte_ether_hdr*);
      eth->dst_addr = mac;
      eth->src_addr = itf.mac;
    }
    io_[w].tx->send_now(in, held, count);
    ev.add(Event::arp_released, count);
  };
  // RFC 826: update the sender's entry if there is one, whoever the target.
  int32_t slot = arp_->find(in, p.spa);
  if (slot != RcuTable::kNone) arp_->confirm(slot, p.sha, now, release);
  if (for_us) {
    if (slot == RcuTable::kNone) {
      bool created = false;
      slot = arp_->find_or_create(in, p.spa, arp::Link::make(p.sha, arp::State::reachable), now, &created);
      if (slot != RcuTable::kNone && !created) arp_->confirm(slot, p.sha, now, release);
    }
    if (p.op == RTE_ARP_OP_REQUEST) {
      arp::reply_in_place(m, itf.mac);
      io_[w].tx->push(in, m);
      ev.inc(Event::arp_replies_out);
      return;
    }
  } else if (slot == RcuTable::kNone) {
    return drop(w, m, DropReason::arp_not_for_us);
  }
  rte_pktmbuf_free(m);
  ev.inc(Event::consumed);
}

void Router::send_request(unsigned w, uint16_t out, uint32_t target, uint64_t) {
  const uint32_t source = source_for(out, target);
  rte_mbuf* m = arp::build_request(pool_, ifaces_[out].mac, source, target);
  if (!m) return;
  io_[w].tx->push(out, m);
  io_[w].events->inc(Event::originated);
  io_[w].events->inc(target == source ? Event::arp_gratuitous_out : Event::arp_requests_out);
}

// --- IPv4 ----------------------------------------------------------------------

void Router::ip_handler(void* ctx, unsigned w, uint16_t, rte_mbuf** pkts, uint16_t n) {
  static_cast<Router*>(ctx)->ip_input(w, pkts, n);
}

void Router::ip_input(unsigned w, rte_mbuf** pkts, uint16_t n) {
  const uint64_t now = rte_rdtsc();
  ip_begin(w);
  ForwardBatch batch;
  // A burst nearly always comes from one port: look it up once per change.
  uint32_t last_port_id = UINT32_MAX;
  int in = -1;
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    if (m->port != last_port_id) [[unlikely]] {
      last_port_id = m->port;
      in = cfg_port(m->port);
      if (in >= 0 && !ifaces_[in].active) in = -1;
    }
    if (in < 0) [[unlikely]] {
      drop(w, m, DropReason::not_our_port);
      continue;
    }
    ip_accept(w, m, static_cast<uint16_t>(in), now, batch);
  }
  ip_forward(w, batch, now);
}

inline void Router::ip_accept(unsigned w, rte_mbuf* m, uint16_t in, uint64_t now, ForwardBatch& batch) {
  const ipv4::InputVerdict v = ipv4::check_input(m, kL2, local_);
  switch (v.disposition) {
    case ipv4::Disposition::drop: return drop(w, m, v.reason);
    case ipv4::Disposition::multicast: return drop(w, m, DropReason::ipv4_multicast);
    case ipv4::Disposition::local:
    case ipv4::Disposition::broadcast: return local_input(w, m, v, in, now);
    case ipv4::Disposition::forward: break;
  }
  // RFC 1812 §5.3.4: a packet that arrived as a link-layer broadcast or
  // multicast is not forwarded (it would be forwarded by every router on the
  // link).
  if (rte_is_multicast_ether_addr(&rte_pktmbuf_mtod(m, const rte_ether_hdr*)->dst_addr)) [[unlikely]]
    return drop(w, m, DropReason::ipv4_link_broadcast);
  const rte_ipv4_hdr* ip = ip_of(m);
  // RFC 1812 §5.3.1: a packet that would leave with TTL 0 is not forwarded.
  if (ip->time_to_live <= 1) [[unlikely]] {
    icmp_error(w, m, ipv4::IcmpError::ttl_exceeded, in, now);
    return drop(w, m, DropReason::ipv4_ttl_exceeded);
  }
  batch.pkts[batch.n] = m;
  batch.dst[batch.n] = rte_be_to_cpu_32(ip->dst_addr);
  batch.in_port[batch.n] = in;
  ++batch.n;
}

void Router::ip_forward(unsigned w, ForwardBatch& batch, uint64_t now) {
  if (batch.n == 0) return;
  PerWorker& pw = *per_worker_[w];
  fib_->lookup_bulk(batch.dst, batch.ids, batch.n);
  // Fast path: a gateway route to a resolved neighbour (the one-entry memo),
  // within the egress MTU. Everything else takes forward(). Consecutive
  // packets mostly share a next hop, so its verdict is kept with a copy of
  // what transmitting needs.
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
      const route::NextHop& nh = fib_->nexthop(id);
      if (nh.kind != route::NextHopKind::forward || nh.gateway == 0 ||
          arp::ArpTable::key(nh.port, nh.gateway) != pw.memo_key) {
        forward(w, m, id, batch.in_port[j], now, false);
        continue;
      }
      fast_id = id;
      fast_port = nh.port;
      fast_mtu = ifaces_[nh.port].mtu;
      std::memcpy(fast_addrs, &pw.memo_mac, RTE_ETHER_ADDR_LEN);
      std::memcpy(fast_addrs + RTE_ETHER_ADDR_LEN, &ifaces_[nh.port].mac, RTE_ETHER_ADDR_LEN);
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

void Router::forward(unsigned w, rte_mbuf* m, uint64_t id, uint16_t in_port, uint64_t now, bool local_origin) {
  const route::NextHop& nh = fib_->nexthop(id);
  switch (nh.kind) {
    case route::NextHopKind::none:
      if (!local_origin) icmp_error(w, m, ipv4::IcmpError::net_unreachable, in_port, now);
      return drop(w, m, DropReason::ipv4_no_route);
    case route::NextHopKind::blackhole: return drop(w, m, DropReason::ipv4_blackhole);
    case route::NextHopKind::reject:
      if (!local_origin) icmp_error(w, m, ipv4::IcmpError::host_unreachable, in_port, now);
      return drop(w, m, DropReason::ipv4_reject);
    case route::NextHopKind::forward: break;
  }
  rte_ipv4_hdr* ip = ip_of(m);
  const uint32_t dst = rte_be_to_cpu_32(ip->dst_addr);
  const Interface& out = ifaces_[nh.port];
  // RFC 2644: directed broadcasts to another subnet are not forwarded.
  if (nh.gateway == 0 && local_.is_subnet_broadcast(dst, out.port_id))
    return drop(w, m, DropReason::ipv4_bad_destination);
  const uint32_t nh_addr = nh.gateway ? nh.gateway : dst;
  const uint16_t total = rte_be_to_cpu_16(ip->total_length);
  if (total > out.mtu) [[unlikely]] {
    if (ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG)) {
      if (!local_origin) icmp_error(w, m, ipv4::IcmpError::frag_needed, in_port, now, out.mtu);
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
  output(w, m, nh.port, nh_addr, now);
}

void Router::route_local(unsigned w, rte_mbuf* m, uint16_t in_port, uint64_t now) {
  forward(w, m, fib_->lookup(rte_be_to_cpu_32(ip_of(m)->dst_addr)), in_port, now, true);
}

void Router::send_fragments(unsigned w, rte_mbuf* m, uint16_t out, uint32_t nh_addr, uint64_t now) {
  // Frame length beyond the IP total length is Ethernet padding: not payload.
  const uint16_t total = rte_be_to_cpu_16(ip_of(m)->total_length);
  if (rte_pktmbuf_pkt_len(m) > kL2 + uint32_t{total}) rte_pktmbuf_trim(m, static_cast<uint16_t>(rte_pktmbuf_pkt_len(m) - kL2 - total));
  rte_pktmbuf_adj(m, kL2);
  rte_mbuf* frags[kMaxFragments];
  const int nf = rte_ipv4_fragment_packet(m, frags, kMaxFragments, ifaces_[out].mtu, pool_, pool_);
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
    output(w, f, out, nh_addr, now);
  }
}

void Router::output(unsigned w, rte_mbuf* m, uint16_t out, uint32_t nh_addr, uint64_t now) {
  PerWorker& pw = *per_worker_[w];
  const uint64_t key = arp::ArpTable::key(out, nh_addr);
  if (key == pw.memo_key) return transmit(w, m, out, pw.memo_mac);

  int32_t slot = arp_->find(out, nh_addr);
  if (slot != RcuTable::kNone) {
    arp::Neighbor& nb = arp_->at(slot);
    const arp::Link link{nb.link.load(std::memory_order_acquire)};
    if (link.state() == arp::State::reachable || link.state() == arp::State::permanent) {
      pw.memo_key = key;
      pw.memo_mac = link.mac();
      return transmit(w, m, out, pw.memo_mac);
    }
    if (link.state() == arp::State::stale) {
      // Still used; ask again, at most once per retry interval, whoever asks.
      uint64_t due = nb.next_probe_tsc.load(std::memory_order_relaxed);
      if (now >= due && nb.next_probe_tsc.compare_exchange_strong(due, now + retry_cycles_))
        send_request(w, out, nh_addr, now);
      return transmit(w, m, out, link.mac());
    }
  }
  // Unresolved: the packet waits in the neighbour's hold queue.
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool created = false;
    if (slot == RcuTable::kNone) {
      slot = arp_->find_or_create(out, nh_addr, arp::Link::make(rte_ether_addr{}, arp::State::incomplete), now, &created);
      if (slot == RcuTable::kNone) return drop(w, m, DropReason::arp_table_full);
    }
    if (created) {
      arp::Neighbor& nb = arp_->at(slot);
      nb.probes.store(1, std::memory_order_relaxed);
      nb.next_probe_tsc.store(now + retry_cycles_, std::memory_order_relaxed);
      send_request(w, out, nh_addr, now);
    }
    arp::Link link;
    bool full = false;
    if (arp_->hold(slot, m, &link, &full)) {
      io_[w].events->inc(Event::arp_held);
      return;
    }
    if (full) return drop(w, m, DropReason::arp_hold_full);
    if (link.usable()) return transmit(w, m, out, link.mac());
    slot = RcuTable::kNone;  // removed meanwhile: start over once
  }
  drop(w, m, DropReason::arp_unresolved);
}

void Router::local_input(unsigned w, rte_mbuf* m, const ipv4::InputVerdict& v, uint16_t in_port, uint64_t now) {
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
    m->l2_len = kL2;
    m->l3_len = v.header_len;
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
  if (v.disposition == ipv4::Disposition::broadcast) return drop(w, m, DropReason::local_no_service);
  switch (ip->next_proto_id) {
    case IPPROTO_ICMP:
      if (ipv4::echo_reply_in_place(m, kL2)) {
        ev.inc(Event::icmp_echo_replies);
        return route_local(w, m, in_port, now);
      }
      return drop(w, m, DropReason::local_no_service);
    case IPPROTO_UDP: icmp_error(w, m, ipv4::IcmpError::port_unreachable, in_port, now); break;
    default: icmp_error(w, m, ipv4::IcmpError::protocol_unreachable, in_port, now); break;
  }
  drop(w, m, DropReason::local_no_service);
}

void Router::icmp_error(unsigned w, const rte_mbuf* m, ipv4::IcmpError e, uint16_t in_port, uint64_t now,
                        uint16_t mtu) {
  const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
  if (!ipv4::may_send_error(m, kL2, rte_is_multicast_ether_addr(&eth->dst_addr))) return;
  EventCounters& ev = *io_[w].events;
  if (!per_worker_[w]->icmp_bucket.take(now)) return ev.inc(Event::icmp_rate_limited);
  const uint32_t to = rte_be_to_cpu_32(rte_pktmbuf_mtod_offset(m, const rte_ipv4_hdr*, kL2)->src_addr);
  rte_mbuf* err = ipv4::build_error(pool_, m, kL2, e, source_for(in_port, to), mtu);
  if (!err) return;
  auto* eeth = reinterpret_cast<rte_ether_hdr*>(rte_pktmbuf_prepend(err, kL2));
  eeth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
  ev.inc(Event::originated);
  ev.inc(Event::icmp_errors_out);
  route_local(w, err, in_port, now);
}

// --- per worker ------------------------------------------------------------------

void Router::worker_online(unsigned w) { arp_->index().reader_online(w); }

void Router::worker_offline(unsigned w) { arp_->index().reader_offline(w); }

void Router::poll(unsigned w, uint64_t now) {
  arp_->index().quiescent(w);
  PerWorker& pw = *per_worker_[w];
  if (now >= pw.next_frag_expiry) [[unlikely]] {
    // rte_ip_frag drops a timed-out datagram only when another fragment lands
    // in its bucket: without this sweep a lone fragment would wait for one.
    pw.next_frag_expiry = now + static_cast<uint64_t>(kMaintenancePeriodS * static_cast<double>(tsc_hz_));
    const uint32_t dead_before = pw.death_row.cnt;
    rte_ip_frag_table_del_expired_entries(pw.frag_table, &pw.death_row, now);
    const uint32_t dead = pw.death_row.cnt - dead_before;
    if (dead) {
      pw.frags_held -= dead;
      io_[w].drops->add(DropReason::ipv4_reassembly_failed, dead);
      rte_ip_frag_free_death_row(&pw.death_row, 0);
    }
  }
  if (w != 0) return;
  if (!pw.announced) {
    // RFC 5227 §2.3: announce our addresses when the interfaces come up.
    for (uint16_t p = 0; p < ifaces_.size(); ++p)
      for (const auto& a : ifaces_[p].addresses)
        if (ifaces_[p].active) send_request(w, p, a.addr, now);
    pw.announced = true;
  }
  if (now < pw.next_maintenance) return;
  pw.next_maintenance = now + static_cast<uint64_t>(kMaintenancePeriodS * static_cast<double>(tsc_hz_));
  maintenance(w, now);
}

void Router::maintenance(unsigned w, uint64_t now) {
  for (unsigned s = 0; s < arp_->slots(); ++s) {
    const auto slot = static_cast<int32_t>(s);
    if (!arp_->index().live(slot)) continue;
    arp::Neighbor& nb = arp_->at(slot);
    uint64_t word = nb.link.load(std::memory_order_acquire);
    const arp::Link link{word};
    // Handlers stamp with a fresher TSC than the loop's `now`: no wrap-around.
    const uint64_t confirmed = nb.confirmed_tsc.load(std::memory_order_relaxed);
    const uint64_t age = now > confirmed ? now - confirmed : 0;
    switch (link.state()) {
      case arp::State::incomplete:
        if (now < nb.next_probe_tsc.load(std::memory_order_relaxed)) break;
        if (nb.probes.load(std::memory_order_relaxed) >= arp_cfg_.retries) {
          arp_->remove(slot, [&](rte_mbuf** held, uint16_t n) {
            for (uint16_t i = 0; i < n; ++i) {
              const int in = cfg_port(held[i]->port);
              if (in >= 0) icmp_error(w, held[i], ipv4::IcmpError::host_unreachable, static_cast<uint16_t>(in), now);
              drop(w, held[i], DropReason::arp_unresolved);
            }
          });
          break;
        }
        nb.probes.fetch_add(1, std::memory_order_relaxed);
        nb.next_probe_tsc.store(now + retry_cycles_, std::memory_order_relaxed);
        send_request(w, nb.port, nb.addr, now);
        break;
      case arp::State::reachable:
        if (age > reachable_cycles_)
          nb.link.compare_exchange_strong(word, arp::Link::make(link.mac(), arp::State::stale).word);
        break;
      case arp::State::stale:
        if (age > reachable_cycles_ + stale_cycles_) arp_->remove(slot, [](rte_mbuf**, uint16_t) {}, word);
        break;
      case arp::State::permanent:
      case arp::State::dead: break;
    }
  }
}

void Router::shutdown() {
  for (unsigned s = 0; s < arp_->slots(); ++s)
    if (arp_->index().live(static_cast<int32_t>(s)))
      arp_->remove(static_cast<int32_t>(s), [&](rte_mbuf** held, uint16_t n) {
        rte_pktmbuf_free_bulk(held, n);
        io_[0].drops->add(DropReason::arp_unresolved, n);
      });
  for (unsigned w = 0; w < per_worker_.size(); ++w) {
    PerWorker& pw = *per_worker_[w];
    rte_ip_frag_free_death_row(&pw.death_row, 0);
    io_[w].drops->add(DropReason::ipv4_reassembly_failed, pw.frags_held);
    pw.frags_held = 0;
    rte_ip_frag_table_destroy(pw.frag_table);
    pw.frag_table = nullptr;
  }
}

std::vector<NeighborView> Router::neighbors() const {
  std::vector<NeighborView> out;
  const uint64_t now = rte_rdtsc();
  const RcuTable::Walk walk(arp_->index());  // no slot is reused under this walk
  for (unsigned s = 0; s < arp_->slots(); ++s) {
    const auto slot = static_cast<int32_t>(s);
    if (!arp_->index().live(slot)) continue;
    arp::Neighbor& nb = arp_->at(slot);
    const arp::Link link{nb.link.load(std::memory_order_acquire)};
    NeighborView v;
    v.port = ifaces_[nb.port].name;
    v.addr = nb.addr;
    v.mac = link.mac();
    v.state = link.state();
    const uint64_t confirmed = nb.confirmed_tsc.load(std::memory_order_relaxed);
    v.age_ms = v.state == arp::State::permanent || now < confirmed ? 0 : (now - confirmed) * 1000 / tsc_hz_;
    rte_spinlock_lock(&nb.hold_lock);
    v.held = nb.held;
    rte_spinlock_unlock(&nb.hold_lock);
    out.push_back(v);
  }
  return out;
}

// --- control ------------------------------------------------------------------

Status Router::route_add(const conf::Ipv4Prefix& p, conf::RouteAction action, uint32_t via) {
  if ((p.addr & ~p.mask()) != 0)
    return Error{conf::format_prefix(p) + " has host bits set; the network is " +
                 conf::format_prefix(conf::Ipv4Prefix{p.addr & p.mask(), p.len})};
  route::NextHop nh;
  std::string what;
  switch (action) {
    case conf::RouteAction::blackhole: nh.kind = route::NextHopKind::blackhole, what = "blackhole"; break;
    case conf::RouteAction::reject: nh.kind = route::NextHopKind::reject, what = "reject"; break;
    case conf::RouteAction::forward: {
      route::Route conn;
      if (!fib_->connected_route(via, &conn))
        return Error{"gateway " + conf::format_ipv4(via) + " is on no connected subnet"};
      if (local_.is_own(via)) return Error{"gateway " + conf::format_ipv4(via) + " is an address of ngstack itself"};
      nh = {route::NextHopKind::forward, conn.nh.port, via};
      what = "via " + conf::format_ipv4(via) + " (" + ifaces_[conn.nh.port].name + ")";
      break;
    }
  }
  if (auto st = fib_->add(p.addr, p.len, nh); !st) return st;
  spdlog::info("router: route {} {} added", conf::format_prefix(p), what);
  return Ok{};
}

Status Router::route_del(const conf::Ipv4Prefix& p) {
  if (auto st = fib_->remove(p.addr & p.mask(), p.len); !st) return st;
  spdlog::info("router: route {} deleted", conf::format_prefix(conf::Ipv4Prefix{p.addr & p.mask(), p.len}));
  return Ok{};
}

namespace {
// Lower case, as the config, the summary and `show arp` write it.
std::string mac_text(const rte_ether_addr& mac) { return conf::format_mac(std::to_array(mac.addr_bytes)); }
}  // namespace

Status Router::arp_add(const std::string& port, uint32_t addr, const rte_ether_addr& mac) {
  int p = -1;
  std::string names;
  for (std::size_t i = 0; i < ifaces_.size(); ++i)
    if (ifaces_[i].active) {
      names += (names.empty() ? "" : ", ") + ifaces_[i].name;
      if (ifaces_[i].name == port) p = static_cast<int>(i);
    }
  if (p < 0) return Error{"no router interface named \"" + port + "\" (interfaces: " + names + ")"};
  if (rte_is_multicast_ether_addr(&mac) || rte_is_zero_ether_addr(&mac))
    return Error{mac_text(mac) + " is not a unicast MAC address"};
  if (local_.is_own(addr)) return Error{conf::format_ipv4(addr) + " is an address of ngstack itself"};
  bool on_subnet = false;
  for (const auto& a : ifaces_[p].addresses) on_subnet |= (addr & a.mask()) == (a.addr & a.mask());
  if (!on_subnet) return Error{conf::format_ipv4(addr) + " is on no subnet of " + port};
  switch (arp_->set_permanent(static_cast<uint16_t>(p), addr, mac)) {
    case arp::ArpTable::Change::done: break;
    case arp::ArpTable::Change::busy:
      return Error{conf::format_ipv4(addr) + " on " + port + " is being resolved right now; try again in a moment"};
    case arp::ArpTable::Change::full: return Error{"the ARP table is full (router.arp.max_entries)"};
    case arp::ArpTable::Change::absent: break;
  }
  spdlog::info("router: static ARP entry {} {} on {} added", conf::format_ipv4(addr), mac_text(mac), port);
  return Ok{};
}

Status Router::arp_del(uint32_t addr, const std::string& port) {
  bool named = port.empty();
  for (std::size_t i = 0; i < ifaces_.size(); ++i) {
    if (!ifaces_[i].active || (!port.empty() && ifaces_[i].name != port)) continue;
    named = true;
    switch (arp_->remove_entry(static_cast<uint16_t>(i), addr)) {
      case arp::ArpTable::Change::done:
        spdlog::info("router: ARP entry {} on {} deleted", conf::format_ipv4(addr), ifaces_[i].name);
        return Ok{};
      case arp::ArpTable::Change::busy:
        return Error{conf::format_ipv4(addr) + " on " + ifaces_[i].name +
                     " is being resolved right now (packets are waiting); try again in a moment"};
      case arp::ArpTable::Change::absent:
      case arp::ArpTable::Change::full: break;
    }
  }
  if (!named) return Error{"no router interface named \"" + port + "\""};
  return Error{"no ARP entry for " + conf::format_ipv4(addr) + (port.empty() ? "" : " on " + port)};
}

}  // namespace ngstack::stack
