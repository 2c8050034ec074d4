#include "stack/arp/arp_table.hpp"

namespace ngstack::stack::arp {

const char* state_name(State s) {
  switch (s) {
    case State::dead: return "dead";
    case State::incomplete: return "incomplete";
    case State::reachable: return "reachable";
    case State::stale: return "stale";
    case State::permanent: return "permanent";
  }
  return "?";
}

Result<std::unique_ptr<ArpTable>> ArpTable::create(const TableParams& p) {
  std::unique_ptr<ArpTable> t(new ArpTable());
  auto index = RcuTable::create("ngs_arp", p.capacity, p.readers);
  if (!index) return Error{index.error()};
  t->index_ = std::move(*index);
  t->entries_ = std::make_unique<Neighbor[]>(t->index_->slots());
  t->hold_packets_ = p.hold_packets;
  const unsigned all = p.capacity * p.hold_packets;
  t->hold_total_ = p.hold_total == 0 ? all : std::min(p.hold_total, all);
  t->held_.assign(static_cast<std::size_t>(t->index_->slots()) * p.hold_packets, nullptr);
  return t;
}

int32_t ArpTable::find_or_create(uint16_t port, uint32_t addr, Link link, uint64_t now, bool* created) {
  *created = false;
  if (int32_t s = find(port, addr); s != RcuTable::kNone) return s;
  return index_->insert(key(port, addr), [&](int32_t slot) {
    Neighbor& n = entries_[slot];
    n.port = port;
    n.addr = addr;
    n.held = 0;
    n.probes.store(0, std::memory_order_relaxed);
    n.confirmed_tsc.store(now, std::memory_order_relaxed);
    n.next_probe_tsc.store(0, std::memory_order_relaxed);
    n.link.store(link.word, std::memory_order_relaxed);
    *created = true;
  });
}

ArpTable::Change ArpTable::set_permanent(uint16_t port, uint32_t addr, const rte_ether_addr& mac) {
  const Link link = Link::make(mac, State::permanent);
  index_->lock();
  int32_t s = index_->lookup(key(port, addr));
  Change result = Change::done;
  if (s == RcuTable::kNone) {
    s = index_->insert_locked(key(port, addr), [&](int32_t slot) {
      Neighbor& n = entries_[slot];
      n.port = port;
      n.addr = addr;
      n.held = 0;
      n.probes.store(0, std::memory_order_relaxed);
      n.confirmed_tsc.store(0, std::memory_order_relaxed);
      n.next_probe_tsc.store(0, std::memory_order_relaxed);
      n.link.store(link.word, std::memory_order_relaxed);
    });
    if (s == RcuTable::kNone) result = Change::full;
  } else {
    Neighbor& n = entries_[s];
    rte_spinlock_lock(&n.hold_lock);
    // An incomplete entry's held packets must leave through a worker (the
    // ARP reply path); the control thread cannot send them.
    if (Link{n.link.load(std::memory_order_acquire)}.state() == State::incomplete) {
      result = Change::busy;
    } else {
      n.probes.store(0, std::memory_order_relaxed);
      n.link.store(link.word, std::memory_order_release);
    }
    rte_spinlock_unlock(&n.hold_lock);
  }
  index_->unlock();
  return result;
}

ArpTable::Change ArpTable::remove_entry(uint16_t port, uint32_t addr) {
  index_->lock();
  const int32_t s = index_->lookup(key(port, addr));
  Change result = Change::done;
  if (s == RcuTable::kNone) {
    result = Change::absent;
  } else {
    Neighbor& n = entries_[s];
    rte_spinlock_lock(&n.hold_lock);
    if (n.held) {
      result = Change::busy;
    } else {
      n.link.store(Link{}.word, std::memory_order_release);  // dead: holders retry as a miss
    }
    rte_spinlock_unlock(&n.hold_lock);
    if (result == Change::done) index_->remove_locked(s);
  }
  index_->unlock();
  return result;
}

Hold ArpTable::hold(int32_t slot, rte_mbuf* m, Link* link) {
  Neighbor& n = entries_[slot];
  rte_spinlock_lock(&n.hold_lock);
  *link = Link{n.link.load(std::memory_order_acquire)};
  Hold result = Hold::resolved;
  if (link->state() == State::incomplete) {
    if (n.held >= hold_packets_) {
      result = Hold::queue_full;
    } else {
      // Reserve one packet of the table-wide budget; a CAS, so that racing
      // workers never take more than hold_total between them.
      unsigned total = held_total_.load(std::memory_order_relaxed);
      result = Hold::budget_full;
      while (total < hold_total_)
        if (held_total_.compare_exchange_weak(total, total + 1, std::memory_order_relaxed)) {
          held_of(slot)[n.held++] = m;
          result = Hold::taken;
          break;
        }
    }
  }
  rte_spinlock_unlock(&n.hold_lock);
  return result;
}

}  // namespace ngstack::stack::arp
