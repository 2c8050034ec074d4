#include "stack/timer/timer_wheel.hpp"

#include <algorithm>
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

bool TimerWheel::arm(uint64_t expiry_tsc, TimerFn fn, void* ctx, uint64_t arg) {
  if (free_ == kNil) [[unlikely]] {
    ++exhausted_;
    return false;
  }
  const uint32_t n = free_;
  free_ = nodes_[n].next;
  nodes_[n].expiry = expiry_tsc;
  nodes_[n].fn = fn;
  nodes_[n].ctx = ctx;
  nodes_[n].arg = arg;
  // The first tick that starts at or after the expiry: when run() visits it
  // the timer is due, so it never goes round again. A timer already due goes
  // to the next slot run() visits, not one revolution late.
  const uint64_t due_tick = expiry_tsc / tick_cycles_ + (expiry_tsc % tick_cycles_ != 0);
  const uint64_t tick = std::max(due_tick, started_ ? last_tick_ + 1 : 0);
  push(static_cast<uint32_t>(tick & slot_mask_), n);
  ++armed_;
  return true;
}

unsigned TimerWheel::run(uint64_t now_tsc) {
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
  unsigned fired = 0;
  for (uint64_t tick = now_tick + 1 >= steps ? now_tick - steps + 1 : 0; tick <= now_tick; ++tick) {
    // From here arm() places new timers after this tick, never in the list
    // being walked nor in a slot this run already passed.
    last_tick_ = tick;
    const uint32_t slot = static_cast<uint32_t>(tick & slot_mask_);
    uint32_t n = heads_[slot];
    heads_[slot] = kNil;
    while (n != kNil) {
      Node& node = nodes_[n];
      const uint32_t next = node.next;
      if (node.expiry <= now_tsc) {
        const TimerFn fn = node.fn;
        void* ctx = node.ctx;
        const uint64_t arg = node.arg;
        node.next = free_;
        free_ = n;
        --armed_;
        ++fired;
        fn(ctx, arg, now_tsc);
      } else {
        push(slot, n);  // a later revolution
      }
      n = next;
    }
  }
  fired_ += fired;
  return fired;
}

}  // namespace ngstack::stack::timer
