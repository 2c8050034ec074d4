#include "stack/timer/timer_wheel.hpp"

#include <algorithm>
#include <cassert>
#include <string>

namespace ngstack::stack::timer {

Result<std::unique_ptr<TimerWheel>> TimerWheel::create(const WheelParams& p) {
  if (p.tsc_hz == 0) return Error{"timer wheel: unknown TSC frequency"};
  if (p.slots == 0 || (p.slots & (p.slots - 1)) != 0)
    return Error{"timer wheel: slots must be a power of two, not " + std::to_string(p.slots)};
  if (p.nodes == 0 || p.nodes >= kNil) return Error{"timer wheel: bad node count " + std::to_string(p.nodes)};
  std::unique_ptr<TimerWheel> w(new TimerWheel());
  w->tick_cycles_ = std::max<uint64_t>(1, p.tsc_hz / 1000000 * p.tick_us);
  w->slot_mask_ = p.slots - 1;
  w->heads_.assign(p.slots, kNil);
  w->nodes_.resize(p.nodes);
  for (uint32_t i = 0; i < p.nodes; ++i) w->nodes_[i].next = i + 1 < p.nodes ? i + 1 : kNil;
  w->free_ = 0;
  return w;
}

void TimerWheel::push(uint32_t slot, uint32_t n) {
  Node& node = nodes_[n];
  node.slot = slot;
  node.prev = kNil;
  node.next = heads_[slot];
  if (node.next != kNil) nodes_[node.next].prev = n;
  heads_[slot] = n;
}

void TimerWheel::unlink(uint32_t n) {
  Node& node = nodes_[n];
  // run() is walking this list and was to visit n next: it visits what follows.
  if (cursor_ == n) cursor_ = node.next;
  if (node.prev != kNil)
    nodes_[node.prev].next = node.next;
  else
    heads_[node.slot] = node.next;
  if (node.next != kNil) nodes_[node.next].prev = node.prev;
}

void TimerWheel::release(uint32_t n) {
  Node& node = nodes_[n];
  ++node.generation;
  node.slot = kNil;
  node.prev = kNil;
  node.fn = nullptr;
  node.ctx = nullptr;
  node.next = free_;
  free_ = n;
  --armed_;
}

TimerHandle TimerWheel::arm(uint64_t expiry_tsc, TimerFn fn, void* ctx, uint64_t arg) {
  if (free_ == kNil) [[unlikely]] {
    ++exhausted_;
    return {};
  }
  const uint32_t n = free_;
  Node& node = nodes_[n];
  free_ = node.next;
  node.expiry = expiry_tsc;
  node.fn = fn;
  node.ctx = ctx;
  node.arg = arg;
  // The first tick that starts at or after the expiry: when run() visits it
  // the timer is due, so it never goes round again. A timer already due goes
  // to the next slot run() visits, not one revolution late.
  const uint64_t due_tick = expiry_tsc / tick_cycles_ + (expiry_tsc % tick_cycles_ != 0);
  const uint64_t tick = std::max(due_tick, started_ ? last_tick_ + 1 : 0);
  push(static_cast<uint32_t>(tick & slot_mask_), n);
  ++armed_;
  return {n, node.generation};
}

bool TimerWheel::cancel(TimerHandle h) {
  if (h.node >= nodes_.size()) return false;
  const Node& node = nodes_[h.node];
  if (node.slot == kNil || node.generation != h.generation) return false;
  unlink(h.node);
  release(h.node);
  ++cancelled_;
  return true;
}

unsigned TimerWheel::run(uint64_t now_tsc) {
  assert(!running_ && "TimerWheel::run() from one of its callbacks");
  const uint64_t now_tick = tick_of(now_tsc);
  uint64_t steps;
  if (!started_) {
    // Timers armed before the first run may sit in any slot: visit them all.
    started_ = true;
    steps = slot_mask_ + 1ull;
  } else {
    if (now_tick <= last_tick_) return 0;
    // After a stall longer than one revolution, one revolution is still
    // enough: each slot's nodes are checked against `now`, not their tick.
    steps = std::min<uint64_t>(now_tick - last_tick_, slot_mask_ + 1ull);
  }
  running_ = true;
  unsigned fired = 0;
  for (uint64_t tick = now_tick + 1 >= steps ? now_tick - steps + 1 : 0; tick <= now_tick; ++tick) {
    // From here arm() places new timers after this tick: in a slot this run
    // has still to visit, or at the head of this slot's list, behind the
    // cursor, never in the part of the list still to be walked.
    last_tick_ = tick;
    const uint32_t slot = static_cast<uint32_t>(tick & slot_mask_);
    // Nodes not yet due (a later revolution) stay where they are. The cursor
    // is read before each callback and kept right by cancel() (unlink()).
    cursor_ = heads_[slot];
    while (cursor_ != kNil) {
      const uint32_t n = cursor_;
      Node& node = nodes_[n];
      cursor_ = node.next;
      if (node.expiry > now_tsc) continue;
      const TimerFn fn = node.fn;
      void* ctx = node.ctx;
      const uint64_t arg = node.arg;
      unlink(n);
      release(n);
      ++fired;
      fn(ctx, arg, now_tsc);
    }
  }
  running_ = false;
  fired_ += fired;
  return fired;
}

}  // namespace ngstack::stack::timer
