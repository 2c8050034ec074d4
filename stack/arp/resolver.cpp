#include "stack/arp/resolver.hpp"

#include <rte_cycles.h>

#include <spdlog/spdlog.h>

#include "stack/arp/arp.hpp"

namespace ngstack::stack::arp {

Result<std::unique_ptr<Resolver>> Resolver::create(const conf::ArpConfig& cfg, unsigned hold_total,
                                                   const ifnet::Interfaces& ifs, rte_mempool* pool, unsigned workers,
                                                   uint64_t tsc_hz) {
  std::unique_ptr<Resolver> r(new Resolver(ifs, pool, tsc_hz));
  r->cfg_ = cfg;
  auto table = ArpTable::create({cfg.max_entries, cfg.hold_packets, workers, hold_total});
  if (!table) return Error{"router.arp: " + table.error()};
  r->table_ = std::move(*table);
  r->generation_ = std::make_unique<std::atomic<uint32_t>[]>(r->table_->slots());
  const auto cycles = [tsc_hz](unsigned ms) { return static_cast<uint64_t>(ms) * tsc_hz / 1000; };
  r->reachable_cycles_ = cycles(cfg.reachable_ms);
  r->stale_cycles_ = cycles(cfg.stale_ms);
  r->retry_cycles_ = cycles(cfg.retry_ms);
  for (const auto& sn : cfg.statics) {
    rte_ether_addr mac;
    std::copy(sn.mac.begin(), sn.mac.end(), mac.addr_bytes);
    bool created = false;
    if (r->table_->find_or_create(sn.port, sn.addr, Link::make(mac, State::permanent), 0, &created) ==
        RcuTable::kNone)
      return Error{sn.pos.where() + ": the ARP table is full (router.arp.max_entries)"};
  }
  for (unsigned w = 0; w < workers; ++w)
    r->per_worker_.push_back(std::make_unique<PerWorker>(r.get(), w, cfg.learn_rate, cfg.learn_burst, tsc_hz));
  return r;
}

// --- input ---------------------------------------------------------------------

void Resolver::input_handler(void* ctx, unsigned w, uint16_t, rte_mbuf** pkts, uint16_t n) {
  auto& r = *static_cast<Resolver*>(ctx);
  const uint64_t now = r.io_[w].now();
  for (uint16_t i = 0; i < n; ++i) r.input(w, pkts[i], now);
}

void Resolver::input(unsigned w, rte_mbuf* m, uint64_t now) {
  const int port = ifs_.of_port_id(m->port);
  if (port < 0) return drop(w, m, DropReason::not_our_port);
  const uint16_t in = static_cast<uint16_t>(port);
  const ifnet::Interface& itf = ifs_.at(in);
  Packet p;
  DropReason why;
  if (!parse(m, &p, &why)) return drop(w, m, why);
  EventCounters& ev = *io_[w].events;
  ev.inc(p.op == RTE_ARP_OP_REQUEST ? Event::arp_requests_in : Event::arp_replies_in);

  bool for_us = false;
  for (const auto& a : itf.addresses) for_us |= p.tpa == a.addr;
  const ipv4::LocalAddresses& local = ifs_.local();
  if (rte_is_multicast_ether_addr(&p.sha) || rte_is_zero_ether_addr(&p.sha) || p.spa == 0 || !itf.on_subnet(p.spa) ||
      local.is_own(p.spa) || local.is_subnet_broadcast(p.spa, m->port))
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
  int32_t slot = table_->find(in, p.spa);
  if (slot != RcuTable::kNone) table_->confirm(slot, p.sha, now, release);
  if (for_us) {
    // Learn the sender (RFC 826: the requester will talk to us), within this
    // worker's learning budget; the request is answered either way.
    if (slot == RcuTable::kNone) {
      if (per_worker_[w]->learn_bucket.take(now)) {
        bool created = false;
        slot = table_->find_or_create(in, p.spa, Link::make(p.sha, State::reachable), now, &created);
        if (created)
          adopt_entry(w, slot, now + reachable_cycles_);
        else if (slot != RcuTable::kNone)
          table_->confirm(slot, p.sha, now, release);
      } else {
        ev.inc(Event::arp_learn_limited);
      }
    }
    if (p.op == RTE_ARP_OP_REQUEST) {
      reply_in_place(m, itf.mac);
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

void Resolver::send_request(unsigned w, uint16_t out, uint32_t target) {
  const uint32_t source = ifs_.source_for(out, target);
  rte_mbuf* m = build_request(pool_, ifs_.at(out).mac, source, target);
  if (!m) return;
  io_[w].tx->push(out, m);
  io_[w].events->inc(Event::originated);
  io_[w].events->inc(target == source ? Event::arp_gratuitous_out : Event::arp_requests_out);
}

// --- output --------------------------------------------------------------------

bool Resolver::resolve_slow(unsigned w, rte_mbuf* m, uint16_t out, uint32_t nh_addr, uint64_t now,
                            rte_ether_addr* mac) {
  PerWorker& pw = *per_worker_[w];
  int32_t slot = table_->find(out, nh_addr);
  if (slot != RcuTable::kNone) {
    Neighbor& nb = table_->at(slot);
    const Link link{nb.link.load(std::memory_order_acquire)};
    if (link.state() == State::reachable || link.state() == State::permanent) {
      pw.memo_key = ArpTable::key(out, nh_addr);
      pw.memo_mac = link.mac();
      pw.memo_slot = slot;
      pw.memo_link = link.word;
      *mac = pw.memo_mac;
      return true;
    }
    if (link.state() == State::stale) {
      // Still used; ask again, at most once per retry interval, whoever asks.
      uint64_t due = nb.next_probe_tsc.load(std::memory_order_relaxed);
      if (now >= due && nb.next_probe_tsc.compare_exchange_strong(due, now + retry_cycles_))
        send_request(w, out, nh_addr);
      *mac = link.mac();
      return true;
    }
  }
  // Unresolved: the packet waits in the neighbour's hold queue.
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (slot == RcuTable::kNone) {
      if (!pw.learn_bucket.take(now)) {
        drop(w, m, DropReason::arp_learn_limited);
        return false;
      }
      bool created = false;
      slot = table_->find_or_create(out, nh_addr, Link::make(rte_ether_addr{}, State::incomplete), now, &created);
      if (slot == RcuTable::kNone) {
        drop(w, m, DropReason::arp_table_full);
        return false;
      }
      if (created) {
        Neighbor& nb = table_->at(slot);
        nb.probes.store(1, std::memory_order_relaxed);
        nb.next_probe_tsc.store(now + retry_cycles_, std::memory_order_relaxed);
        send_request(w, out, nh_addr);
        adopt_entry(w, slot, now + retry_cycles_);
      }
    }
    Link link;
    const Hold h = table_->hold(slot, m, &link);
    if (h == Hold::taken) {
      io_[w].events->inc(Event::arp_held);
      return false;
    }
    if (h != Hold::resolved) {
      drop(w, m, hold_drop_reason(h));
      return false;
    }
    if (link.usable()) {
      *mac = link.mac();
      return true;
    }
    slot = RcuTable::kNone;  // removed meanwhile: start over once
  }
  drop(w, m, DropReason::arp_unresolved);
  return false;
}

// --- timers ------------------------------------------------------------------------

void Resolver::adopt_entry(unsigned w, int32_t slot, uint64_t expiry) {
  const uint32_t gen = generation_[slot].fetch_add(1, std::memory_order_relaxed) + 1;
  arm(*per_worker_[w], slot, gen, expiry);
}

void Resolver::arm(PerWorker& pw, int32_t slot, uint32_t gen, uint64_t expiry) {
  if (!io_[pw.w].timers->arm(expiry, on_timer, &pw, timer::SlotTimer{slot, gen}.arg())) [[unlikely]]
    ++pw.timers_refused;  // sized so that it cannot happen: see modes::timer_nodes()
}

void Resolver::on_timer(void* ctx, uint64_t arg, uint64_t now) {
  auto& pw = *static_cast<PerWorker*>(ctx);
  const auto t = timer::SlotTimer::of(arg);
  pw.owner->entry_timer(pw, t.slot, t.generation, now);
}

void Resolver::entry_timer(PerWorker& pw, int32_t slot, uint32_t gen, uint64_t now) {
  // Gone, or another entry in the slot now: that entry has its own timer.
  if (!table_->index().live(slot) || generation_[slot].load(std::memory_order_relaxed) != gen) return;
  const unsigned w = pw.w;
  Neighbor& nb = table_->at(slot);
  uint64_t word = nb.link.load(std::memory_order_acquire);
  const Link link{word};
  // Handlers stamp with a fresher TSC than the loop's `now`: no wrap-around.
  const uint64_t confirmed = nb.confirmed_tsc.load(std::memory_order_relaxed);
  switch (link.state()) {
    case State::incomplete: {
      uint64_t due = nb.next_probe_tsc.load(std::memory_order_relaxed);
      if (now < due) return arm(pw, slot, gen, due);
      if (nb.probes.load(std::memory_order_relaxed) >= cfg_.retries) {
        table_->remove(
            slot,
            [&](rte_mbuf** held, uint16_t n) {
              if (unresolved_) return unresolved_(unresolved_ctx_, w, held, n, now);
              rte_pktmbuf_free_bulk(held, n);
              io_[w].drops->add(DropReason::arp_unresolved, n);
            },
            word);
        // A confirmation between the read of `word` and the removal leaves
        // the entry in place: it keeps its timer. (No slot is reclaimed
        // before this worker's next quiescent report, so `live` means ours.)
        if (table_->index().live(slot)) arm(pw, slot, gen, now + retry_cycles_);
        return;
      }
      if (nb.next_probe_tsc.compare_exchange_strong(due, now + retry_cycles_)) {
        nb.probes.fetch_add(1, std::memory_order_relaxed);
        send_request(w, nb.port, nb.addr);
      }
      return arm(pw, slot, gen, now + retry_cycles_);
    }
    case State::reachable:
      if (now > confirmed + reachable_cycles_) {
        nb.link.compare_exchange_strong(word, Link::make(link.mac(), State::stale).word);
        return arm(pw, slot, gen, confirmed + reachable_cycles_ + stale_cycles_ + 1);
      }
      return arm(pw, slot, gen, confirmed + reachable_cycles_ + 1);
    case State::stale:
      if (now > confirmed + reachable_cycles_ + stale_cycles_) {
        table_->remove(slot, [](rte_mbuf**, uint16_t) {}, word);
        if (table_->index().live(slot)) arm(pw, slot, gen, now + retry_cycles_);  // confirmed meanwhile
        return;
      }
      return arm(pw, slot, gen, confirmed + reachable_cycles_ + stale_cycles_ + 1);
    case State::permanent:
    case State::dead: return;
  }
}

// --- per worker ------------------------------------------------------------------

void Resolver::worker_online(unsigned w) { table_->index().reader_online(w); }

void Resolver::worker_offline(unsigned w) { table_->index().reader_offline(w); }

void Resolver::poll(unsigned w, uint64_t) {
  table_->index().quiescent(w);
  PerWorker& pw = *per_worker_[w];
  if (w != 0 || pw.announced) [[likely]]
    return;
  // RFC 5227 §2.3: announce our addresses when the interfaces come up.
  for (const auto& itf : ifs_.all())
    if (itf.active)
      for (const auto& a : itf.addresses) send_request(w, itf.index, a.addr);
  pw.announced = true;
}

void Resolver::shutdown() {
  for (unsigned s = 0; s < table_->slots(); ++s)
    if (table_->index().live(static_cast<int32_t>(s)))
      table_->remove(static_cast<int32_t>(s), [&](rte_mbuf** held, uint16_t n) {
        rte_pktmbuf_free_bulk(held, n);
        io_[0].drops->add(DropReason::arp_unresolved, n);
      });
}

uint64_t Resolver::timers_refused() const {
  uint64_t n = 0;
  for (const auto& pw : per_worker_) n += pw->timers_refused;
  return n;
}

uint64_t Resolver::held() const {
  uint64_t n = 0;
  for (const auto& v : neighbors()) n += v.held;
  return n;
}

// --- control ---------------------------------------------------------------------

std::vector<NeighborView> Resolver::neighbors() const {
  std::vector<NeighborView> out;
  const uint64_t now = rte_rdtsc();
  const RcuTable::Walk walk(table_->index());  // no slot is reused under this walk
  for (unsigned s = 0; s < table_->slots(); ++s) {
    const auto slot = static_cast<int32_t>(s);
    if (!table_->index().live(slot)) continue;
    Neighbor& nb = const_cast<ArpTable&>(*table_).at(slot);
    const Link link{nb.link.load(std::memory_order_acquire)};
    NeighborView v;
    v.port = ifs_.at(nb.port).name;
    v.addr = nb.addr;
    v.mac = link.mac();
    v.state = link.state();
    const uint64_t confirmed = nb.confirmed_tsc.load(std::memory_order_relaxed);
    v.age_ms = v.state == State::permanent || now < confirmed ? 0 : (now - confirmed) * 1000 / tsc_hz_;
    rte_spinlock_lock(&nb.hold_lock);
    v.held = nb.held;
    rte_spinlock_unlock(&nb.hold_lock);
    out.push_back(v);
  }
  return out;
}

namespace {
// Lower case, as the config, the summary and `show arp` write it.
std::string mac_text(const rte_ether_addr& mac) { return conf::format_mac(std::to_array(mac.addr_bytes)); }
}  // namespace

Status Resolver::add_permanent(const std::string& port, uint32_t addr, const rte_ether_addr& mac) {
  const int p = ifs_.find(port);
  if (p < 0) return Error{"no router interface named \"" + port + "\" (interfaces: " + ifs_.names() + ")"};
  if (rte_is_multicast_ether_addr(&mac) || rte_is_zero_ether_addr(&mac))
    return Error{mac_text(mac) + " is not a unicast MAC address"};
  if (ifs_.local().is_own(addr)) return Error{conf::format_ipv4(addr) + " is an address of ngstack itself"};
  if (!ifs_.at(static_cast<uint16_t>(p)).on_subnet(addr))
    return Error{conf::format_ipv4(addr) + " is on no subnet of " + port};
  switch (table_->set_permanent(static_cast<uint16_t>(p), addr, mac)) {
    case ArpTable::Change::done: break;
    case ArpTable::Change::busy:
      return Error{conf::format_ipv4(addr) + " on " + port + " is being resolved right now; try again in a moment"};
    case ArpTable::Change::full: return Error{"the ARP table is full (router.arp.max_entries)"};
    case ArpTable::Change::absent: break;
  }
  spdlog::info("router: static ARP entry {} {} on {} added", conf::format_ipv4(addr), mac_text(mac), port);
  return Ok{};
}

Status Resolver::remove(uint32_t addr, const std::string& port) {
  bool named = port.empty();
  for (const auto& itf : ifs_.all()) {
    if (!itf.active || (!port.empty() && itf.name != port)) continue;
    named = true;
    switch (table_->remove_entry(itf.index, addr)) {
      case ArpTable::Change::done:
        spdlog::info("router: ARP entry {} on {} deleted", conf::format_ipv4(addr), itf.name);
        return Ok{};
      case ArpTable::Change::busy:
        return Error{conf::format_ipv4(addr) + " on " + itf.name +
                     " is being resolved right now (packets are waiting); try again in a moment"};
      case ArpTable::Change::absent:
      case ArpTable::Change::full: break;
    }
  }
  if (!named) return Error{"no router interface named \"" + port + "\""};
  return Error{"no ARP entry for " + conf::format_ipv4(addr) + (port.empty() ? "" : " on " + port)};
}

}  // namespace ngstack::stack::arp
