#include "stack/bridge/bridge.hpp"

#include <cstring>

#include <rte_byteorder.h>
#include <rte_cycles.h>

namespace ngstack::stack {


Result<std::unique_ptr<Bridge>> Bridge::create(const conf::Config& cfg, const std::vector<PortInfo>& ports,
                                               rte_mempool* pool, unsigned workers, uint64_t tsc_hz) {
  std::unique_ptr<Bridge> b(new Bridge(pool, tsc_hz));
  const conf::BridgeConfig& bc = cfg.bridge;
  b->members_.resize(cfg.ports.size());
  std::vector<uint16_t> port_ids;
  for (const auto& p : ports) port_ids.push_back(p.port_id);
  b->port_index_ = PortIndex(port_ids);
  for (const auto& bp : bc.ports) {
    Member& mb = b->members_[bp.port];
    mb.member = true;
    mb.name = cfg.ports[bp.port].name;
    mb.access_vlan = bp.access_vlan;
    mb.trunk = !bp.trunk_vlans.empty();
    if (bp.access_vlan) mb.vlans.set(bp.access_vlan);
    for (uint16_t v : bp.trunk_vlans) mb.vlans.set(v);
    b->vlan_aware_ |= bp.vlan_aware();
  }
  auto fdb = RcuTable::create("ngs_fdb", bc.max_entries, workers);
  if (!fdb) return Error{"bridge: " + fdb.error()};
  b->fdb_ = std::move(*fdb);
  b->stations_ = std::make_unique<Station[]>(b->fdb_->slots());
  b->aging_cycles_ = static_cast<uint64_t>(bc.aging_ms) * tsc_hz / 1000;
  b->refresh_cycles_ = b->aging_cycles_ / 16;
  for (unsigned w = 0; w < workers; ++w)
    b->per_worker_.push_back(std::make_unique<PerWorker>(b.get(), w, bc.learn_rate, bc.learn_burst, tsc_hz));
  return b;
}

void Bridge::netisr_handler(void* ctx, unsigned w, uint16_t, rte_mbuf** pkts, uint16_t n) {
  auto& b = *static_cast<Bridge*>(ctx);
  const uint64_t now = b.io_[w].now();
  constexpr uint16_t kPrefetchAhead = 4;
  DstMemo dst;
  for (uint16_t i = 0; i < n && i < kPrefetchAhead; ++i) rte_prefetch0(rte_pktmbuf_mtod(pkts[i], void*));
  for (uint16_t i = 0; i < n; ++i) {
    if (i + kPrefetchAhead < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + kPrefetchAhead], void*));
    b.input(w, pkts[i], now, dst);
  }
}

void Bridge::input(unsigned w, rte_mbuf* m, uint64_t now, DstMemo& dst) {
  const int port = port_index_.of(m->port);
  if (port < 0 || !members_[port].member) [[unlikely]]
    return drop(w, m, DropReason::not_our_port);
  const auto in = static_cast<uint16_t>(port);
  if (rte_pktmbuf_data_len(m) < sizeof(rte_ether_hdr)) [[unlikely]]
    return drop(w, m, DropReason::runt);
  const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
  const bool tagged = eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_VLAN);
  uint16_t vlan = 0;
  if (vlan_aware_) {
    const Member& mb = members_[in];
    if (!mb.trunk) {
      if (tagged) return drop(w, m, DropReason::bridge_vlan_mismatch);
      vlan = mb.access_vlan;
    } else {
      if (!tagged) return drop(w, m, DropReason::bridge_vlan_mismatch);
      if (rte_pktmbuf_data_len(m) < sizeof(rte_ether_hdr) + sizeof(rte_vlan_hdr)) return drop(w, m, DropReason::runt);
      vlan = rte_be_to_cpu_16(reinterpret_cast<const rte_vlan_hdr*>(eth + 1)->vlan_tci) & 0x0fff;
      if (!mb.vlans.test(vlan)) return drop(w, m, DropReason::bridge_vlan_mismatch);
    }
  }
  if (rte_is_multicast_ether_addr(&eth->src_addr) || rte_is_zero_ether_addr(&eth->src_addr))
    return drop(w, m, DropReason::bridge_bad_source);
  // IEEE 802.1D-2004 §7.12.6: frames to 01:80:C2:00:00:00-0F (STP, PAUSE,
  // LACP, 802.1X, LLDP) are link-local and a bridge never relays them.
  static constexpr uint8_t kReservedGroup[5] = {0x01, 0x80, 0xc2, 0x00, 0x00};
  if (rte_is_multicast_ether_addr(&eth->dst_addr) && std::memcmp(eth->dst_addr.addr_bytes, kReservedGroup, 5) == 0 &&
      eth->dst_addr.addr_bytes[5] <= 0x0f) [[unlikely]]
    return drop(w, m, DropReason::bridge_reserved_group);
  if (learn(w, vlan, eth->src_addr, in, now)) [[unlikely]]
    dst.key = UINT64_MAX;

  if (!rte_is_multicast_ether_addr(&eth->dst_addr)) {
    const uint64_t k = key(vlan, eth->dst_addr);
    if (k != dst.key) dst = {k, fdb_->lookup(k)};
    const int32_t slot = dst.slot;
    if (slot != RcuTable::kNone) {
      const uint16_t out = stations_[slot].port.load(std::memory_order_relaxed);
      if (out == in) return drop(w, m, DropReason::bridge_same_port);
      if (!encapsulate(m, out, vlan)) return drop(w, m, DropReason::no_mbuf);
      io_[w].tx->push(out, m);
      return;
    }
  }
  flood(w, m, in, vlan, tagged);
}

bool Bridge::learn(unsigned w, uint16_t vlan, const rte_ether_addr& src, uint16_t in, uint64_t now) {
  const uint64_t k = key(vlan, src);
  // A burst mostly comes from few stations: skip the lookup for a repeat.
  PerWorker& pw = *per_worker_[w];
  Memo& memo = pw.memo;
  if (k == memo.key && in == memo.port && now - memo.tsc < refresh_cycles_) return false;
  int32_t slot = fdb_->lookup(k);
  if (slot != RcuTable::kNone) [[likely]] {
    Station& st = stations_[slot];
    if (st.port.load(std::memory_order_relaxed) != in) {
      st.port.store(in, std::memory_order_relaxed);
      io_[w].events->inc(Event::bridge_moved);
    }
    // Refresh rarely: a store per frame would bounce the line between workers.
    if (now - st.seen_tsc.load(std::memory_order_relaxed) > refresh_cycles_)
      st.seen_tsc.store(now, std::memory_order_relaxed);
    memo = {k, in, st.seen_tsc.load(std::memory_order_relaxed)};
    return false;
  }
  // A full table is counted as such without spending a token; then the
  // worker's learning budget, before the writer lock.
  if (fdb_->size() >= fdb_->capacity()) {
    io_[w].events->inc(Event::bridge_fdb_full);
    return false;
  }
  if (!pw.learn_bucket.take(now)) {
    io_[w].events->inc(Event::bridge_learn_limited);
    return false;
  }
  bool learned = false;
  uint32_t gen = 0;
  slot = fdb_->insert(k, [&](int32_t s) {
    stations_[s].port.store(in, std::memory_order_relaxed);
    stations_[s].seen_tsc.store(now, std::memory_order_relaxed);
    gen = stations_[s].generation.fetch_add(1, std::memory_order_relaxed) + 1;
    learned = true;
  });
  if (slot == RcuTable::kNone) {
    io_[w].events->inc(Event::bridge_fdb_full);
    return false;
  }
  if (!learned) return true;  // another worker's insert won: the station is there now
  io_[w].events->inc(Event::bridge_learned);
  // The learner times the station on its own wheel.
  arm_ageing(pw, slot, gen, now + aging_cycles_ + 1);
  return true;
}

void Bridge::arm_ageing(PerWorker& pw, int32_t slot, uint32_t gen, uint64_t expiry) {
  if (!io_[pw.w].timers->arm(expiry, on_ageing_timer, &pw, timer::SlotTimer{slot, gen}.arg())) [[unlikely]]
    ++pw.timers_refused;  // sized so that it cannot happen: see modes::timer_nodes()
}

void Bridge::on_ageing_timer(void* ctx, uint64_t arg, uint64_t now) {
  auto& pw = *static_cast<PerWorker*>(ctx);
  Bridge& b = *pw.owner;
  const auto [slot, gen] = timer::SlotTimer::of(arg);
  Station& st = b.stations_[slot];
  // Only ageing removes stations, and it consumes the timer: a station is
  // live with its generation for as long as its timer is armed.
  if (!b.fdb_->live(slot) || st.generation.load(std::memory_order_relaxed) != gen) return;
  // Another worker's loop time (its stamp) may be ahead of this wheel's
  // `now`: no wrap-around.
  const uint64_t seen = st.seen_tsc.load(std::memory_order_relaxed);
  if (now <= seen || now - seen <= b.aging_cycles_) return b.arm_ageing(pw, slot, gen, seen + b.aging_cycles_ + 1);
  b.fdb_->lock();
  if (b.fdb_->live(slot)) b.fdb_->remove_locked(slot);
  b.fdb_->unlock();
}

bool Bridge::encapsulate(rte_mbuf*& m, uint16_t out, uint16_t vlan) const {
  if (!vlan_aware_) return true;
  const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
  const bool tagged = eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_VLAN);
  const bool want_tag = members_[out].trunk;
  if (tagged == want_tag) return true;
  if (want_tag) {
    m->vlan_tci = vlan;
    return rte_vlan_insert(&m) == 0;
  }
  return rte_vlan_strip(m) == 0;
}

void Bridge::flood(unsigned w, rte_mbuf* m, uint16_t in, uint16_t vlan, bool tagged_in) {
  uint16_t same[RTE_MAX_ETHPORTS], other[RTE_MAX_ETHPORTS];
  uint16_t nsame = 0, nother = 0;
  for (uint16_t p = 0; p < members_.size(); ++p) {
    const Member& mb = members_[p];
    if (p == in || !mb.member || (vlan_aware_ && !mb.vlans.test(vlan))) continue;
    // Ports that want the frame as it came share it; the others share one copy.
    if (!vlan_aware_ || mb.trunk == tagged_in) same[nsame++] = p;
    else other[nother++] = p;
  }
  if (nsame + nother == 0) return drop(w, m, DropReason::bridge_no_port);
  EventCounters& ev = *io_[w].events;
  ev.inc(Event::bridge_flooded);
  if (nother) {
    rte_mbuf* c = rte_pktmbuf_copy(m, pool_, 0, UINT32_MAX);
    if (!c || !encapsulate(c, other[0], vlan)) {
      if (c) rte_pktmbuf_free(c);
      io_[w].drops->add(DropReason::no_mbuf, 1);
      // The frame still reaches the ports that take it as it is; the drop is
      // counted once, as the frame that did not make it to the others.
      if (nsame == 0) {
        rte_pktmbuf_free(m);
        return;
      }
      ev.inc(Event::originated);  // balance: 1 in -> nsame out + 1 drop
      nother = 0;
    } else {
      if (nother > 1) rte_mbuf_refcnt_update(c, static_cast<int16_t>(nother - 1));
      for (uint16_t i = 0; i < nother; ++i) io_[w].tx->push(other[i], c);
      ev.add(Event::originated, nother);
    }
  }
  if (nsame == 0) {
    rte_pktmbuf_free(m);
    ev.inc(Event::consumed);
    return;
  }
  if (nsame > 1) rte_mbuf_refcnt_update(m, static_cast<int16_t>(nsame - 1));
  for (uint16_t i = 0; i < nsame; ++i) io_[w].tx->push(same[i], m);
  ev.add(Event::originated, nsame - 1u);
}

void Bridge::poll(unsigned w, uint64_t) { fdb_->quiescent(w); }

std::vector<FdbView> Bridge::fdb() const {
  std::vector<FdbView> out;
  const uint64_t now = rte_rdtsc();
  const RcuTable::Walk walk(*fdb_);  // no slot is reused under this walk
  for (unsigned s = 0; s < fdb_->slots(); ++s) {
    const auto slot = static_cast<int32_t>(s);
    if (!fdb_->live(slot)) continue;
    const uint64_t k = fdb_->key_of(slot);
    FdbView v;
    v.vlan = static_cast<uint16_t>(k >> 48);
    for (int i = 0; i < 6; ++i) v.mac.addr_bytes[i] = static_cast<uint8_t>(k >> (8 * (5 - i)));
    v.port = members_[stations_[slot].port.load(std::memory_order_relaxed)].name;
    const uint64_t seen = stations_[slot].seen_tsc.load(std::memory_order_relaxed);
    v.age_ms = now > seen ? (now - seen) * 1000 / tsc_hz_ : 0;
    out.push_back(v);
  }
  return out;
}

}  // namespace ngstack::stack
