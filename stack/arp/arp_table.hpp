// The ARP cache (RFC 826): IPv4 neighbour -> MAC, per interface.
//
// States: incomplete (a request is out, packets wait in the entry's hold
// queue), reachable (confirmed by the neighbour within reachable_ms), stale
// (older; still used, and a use sends a fresh request at most once per
// retry_ms), permanent (from the config; never aged). Entries that stay stale
// for stale_ms more, or stay incomplete after `retries` requests, are removed.
//
// Concurrency. The index is an RcuTable: workers look entries up without a
// lock. The MAC and the state share one 64-bit atomic (`link`), so a reader
// never sees a MAC from one update and a state from another. Timestamps are
// atomics too. Each entry's hold queue has its own spinlock, and every change
// out of `incomplete` happens under it; see confirm() for why that keeps
// flows in order. The table-wide writer lock is taken only to add or remove an
// entry: on a miss, on learning a new neighbour, and on ageing.
//
// Hold budget. Each queue holds at most hold_packets, and all of them together
// at most hold_total (router.arp.hold_total): max_entries x hold_packets
// (65 536 by default) is more than a pool holds, and a sender spraying a large
// connected subnet would park the whole pool in hold queues until rx stops.
// The total is one atomic counter, reserved with a compare-and-swap under the
// entry's hold lock and given back where held packets leave (confirm, remove):
// no table-wide lock on the hold path.
#pragma once

#include <rte_ether.h>
#include <rte_mbuf.h>
#include <rte_spinlock.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "stack/counters.hpp"
#include "stack/rcu_table.hpp"

namespace ngstack::stack::arp {

enum class State : uint8_t { dead = 0, incomplete = 1, reachable = 2, stale = 3, permanent = 4 };
const char* state_name(State s);

// MAC in the low 48 bits, state in the next 8.
struct Link {
  uint64_t word = 0;
  static Link make(const rte_ether_addr& mac, State s) {
    uint64_t w = 0;
    for (int i = 0; i < 6; ++i) w |= static_cast<uint64_t>(mac.addr_bytes[i]) << (8 * i);
    return Link{w | static_cast<uint64_t>(s) << 48};
  }
  State state() const { return static_cast<State>((word >> 48) & 0xff); }
  rte_ether_addr mac() const {
    rte_ether_addr m;
    for (int i = 0; i < 6; ++i) m.addr_bytes[i] = static_cast<uint8_t>(word >> (8 * i));
    return m;
  }
  bool usable() const { return state() == State::reachable || state() == State::stale || state() == State::permanent; }
};

struct Neighbor {
  std::atomic<uint64_t> link{0};
  std::atomic<uint64_t> confirmed_tsc{0};
  std::atomic<uint64_t> next_probe_tsc{0};  // no request before this
  std::atomic<uint32_t> probes{0};          // requests sent while incomplete
  rte_spinlock_t hold_lock = RTE_SPINLOCK_INITIALIZER;
  uint16_t held = 0;  // hold_lock
  uint16_t port = 0;  // DPDK port id
  uint32_t addr = 0;  // host byte order
};

struct TableParams {
  unsigned capacity = 4096;
  unsigned hold_packets = 16;
  unsigned readers = 1;  // workers
  // Packets all hold queues together may hold (Config::arp_hold_total());
  // 0: capacity x hold_packets, the per-entry bound alone.
  unsigned hold_total = 0;
};

// What hold() did with a packet.
enum class Hold : uint8_t {
  taken,        // it waits in the entry's hold queue
  resolved,     // the entry is no longer incomplete: send it (or start over when dead)
  queue_full,   // the entry's queue holds hold_packets: drop (arp_hold_full)
  budget_full,  // all queues together hold hold_total: drop (arp_hold_budget)
};
// The drop reason of a packet hold() refused for want of room.
constexpr DropReason hold_drop_reason(Hold h) {
  return h == Hold::budget_full ? DropReason::arp_hold_budget : DropReason::arp_hold_full;
}

class ArpTable {
 public:
  static constexpr unsigned kMaxHold = 1024;  // router.arp.hold_packets is at most this
  static Result<std::unique_ptr<ArpTable>> create(const TableParams& p);

  static uint64_t key(uint16_t port, uint32_t addr) { return static_cast<uint64_t>(port) << 32 | addr; }

  // --- readers (any worker) ----------------------------------------------------
  int32_t find(uint16_t port, uint32_t addr) const { return index_->lookup(key(port, addr)); }
  Neighbor& at(int32_t slot) { return entries_[slot]; }
  const Neighbor& at(int32_t slot) const { return entries_[slot]; }
  RcuTable& index() { return *index_; }
  const RcuTable& index() const { return *index_; }

  // --- writers ---------------------------------------------------------------
  // The entry for (port, addr), created with `link` if absent. kNone when full.
  // `created` tells whether this call made it.
  int32_t find_or_create(uint16_t port, uint32_t addr, Link link, uint64_t now, bool* created);

  // Hold a packet on an incomplete entry. `*link` is the entry's link as
  // hold() saw it; the packet is the table's only when the result is taken.
  Hold hold(int32_t slot, rte_mbuf* m, Link* link);
  // The same, for callers that count both limits alike: false unless taken,
  // *full for queue_full or budget_full.
  bool hold(int32_t slot, rte_mbuf* m, Link* link, bool* full) {
    const Hold h = hold(slot, m, link);
    *full = h == Hold::queue_full || h == Hold::budget_full;
    return h == Hold::taken;
  }
  // Packets held in all queues now, and the most they may hold.
  unsigned held_total() const { return held_total_.load(std::memory_order_relaxed); }
  unsigned hold_budget() const { return hold_total_; }

  // A confirmation (an ARP reply or request from the neighbour). Under the
  // entry's hold lock: `release(pkts, n, mac)` gets the held packets, then the
  // new link is published. A caller that sends them at once, before the
  // lock drops, gets them out before any packet another worker sends after
  // seeing the entry resolved. Permanent entries are left alone.
  template <typename Release>
  void confirm(int32_t slot, const rte_ether_addr& mac, uint64_t now, Release&& release) {
    Neighbor& n = entries_[slot];
    rte_spinlock_lock(&n.hold_lock);
    const Link cur{n.link.load(std::memory_order_acquire)};
    if (cur.state() != State::permanent && cur.state() != State::dead) {
      if (n.held) {
        release(held_of(slot), n.held, mac);
        held_total_.fetch_sub(n.held, std::memory_order_relaxed);
      }
      n.held = 0;
      n.confirmed_tsc.store(now, std::memory_order_relaxed);
      n.probes.store(0, std::memory_order_relaxed);
      n.link.store(Link::make(mac, State::reachable).word, std::memory_order_release);
    }
    rte_spinlock_unlock(&n.hold_lock);
  }

  // Remove an entry (ageing, or failed resolution). Held packets go to
  // `dispose(pkts, n)` after both locks are released: disposing may send an
  // ICMP error whose own next hop needs this table. The slot is reused after
  // a grace period. With `expect`, only if the link is still that word (ageing
  // leaves an entry alone that the control path made permanent meanwhile).
  static constexpr uint64_t kAnyLink = UINT64_MAX;
  template <typename Dispose>
  void remove(int32_t slot, Dispose&& dispose, uint64_t expect = kAnyLink) {
    Neighbor& n = entries_[slot];
    rte_mbuf* held[kMaxHold];
    uint16_t count = 0;
    index_->lock();
    rte_spinlock_lock(&n.hold_lock);
    if (expect != kAnyLink && n.link.load(std::memory_order_acquire) != expect) {
      rte_spinlock_unlock(&n.hold_lock);
      index_->unlock();
      return;
    }
    n.link.store(Link{}.word, std::memory_order_release);  // dead: holders retry as a miss
    count = n.held;
    std::copy(held_of(slot), held_of(slot) + count, held);
    n.held = 0;
    held_total_.fetch_sub(count, std::memory_order_relaxed);
    rte_spinlock_unlock(&n.hold_lock);
    if (index_->live(slot)) index_->remove_locked(slot);
    index_->unlock();
    if (count) dispose(held, count);
  }

  // --- control path (a thread that is no RCU reader: it looks slots up
  // under the writer lock, where no slot can be reclaimed) ---------------------
  enum class Change { done, absent, busy, full };
  // (port, addr) becomes permanent with `mac`: a new entry, or a learned one
  // replaced. busy: it is being resolved (incomplete); full: no room.
  Change set_permanent(uint16_t port, uint32_t addr, const rte_ether_addr& mac);
  // Removes the entry for (port, addr). busy: it holds packets waiting for resolution.
  Change remove_entry(uint16_t port, uint32_t addr);

  unsigned slots() const { return index_->slots(); }
  unsigned size() const { return index_->size(); }

 private:
  ArpTable() = default;
  rte_mbuf** held_of(int32_t slot) { return &held_[static_cast<std::size_t>(slot) * hold_packets_]; }

  std::unique_ptr<RcuTable> index_;
  std::unique_ptr<Neighbor[]> entries_;
  std::vector<rte_mbuf*> held_;
  unsigned hold_packets_ = 0;
  unsigned hold_total_ = 0;
  alignas(RTE_CACHE_LINE_SIZE) std::atomic<unsigned> held_total_{0};  // packets in all hold queues
};

}  // namespace ngstack::stack::arp
