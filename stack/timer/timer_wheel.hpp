// A per-worker timer facility: a hashed timing wheel (Varghese and Lauck,
// SOSP 1987, scheme 6) over TSC ticks, with a fixed pool of timer nodes.
//
// Model. Each worker owns one wheel and runs it once per loop iteration
// (run()); callbacks run on that worker, between bursts, with the worker's tx
// buffers and counters, and may arm and cancel timers. No other thread
// touches a wheel, so there is no lock. A timer is a value (callback,
// context, argument, expiry): the wheel keeps no pointer into the objects it
// times.
//
// Cancellation: at once where the owner can, lazy where it cannot. arm()
// returns a handle (the node's index and its generation, bumped each time the
// node is freed); cancel(handle) unlinks the node from its slot's list and
// puts it back on the free list at once. A stale handle (the timer fired, was
// cancelled, or its node now serves another timer) is refused. Like
// everything else here, cancel() is for the wheel's own worker only, so an
// owner cancels a timer only when it knows the timer sits on the wheel of the
// worker it runs on (TCP: a connection freed, or left with no deadline, on
// the worker that armed its nodes). Everything else is still lazy: objects
// shared between workers (an ARP entry, an FDB entry, a TCP connection whose
// node sits on another worker's wheel) are re-examined by the callback, which
// decides from their current state whether to act, re-arm or let go; such an
// object that goes away early leaves its timer to fire once and find nothing,
// so removing an object never has to reach into another worker's wheel.
//
// Cost: arming and cancelling are O(1) (a node from or to the free list,
// pushed on or unlinked from its slot's doubly linked list); run() visits the
// slots whose ticks passed, and within a slot touches every node once per
// revolution (nodes more than one revolution away stay where they are; a
// cancelled node is gone at once and never walked). Nothing is allocated
// after create(): when the node pool is exhausted arm() returns an empty
// handle and counts it, and the caller decides.
//
// Callbacks during run(): the node that fires is freed before its callback
// runs (its own handle is already stale), and run() walks a slot with a
// cursor that cancel() steps past the node it unlinks, so a callback may
// cancel any timer, the next one in the slot being walked included. A timer
// armed from a callback lands after the tick being run: in a slot this run
// has still to visit, or (a revolution on) at the head of the slot being
// walked, behind the cursor.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "conf/result.hpp"

namespace ngstack::stack::timer {

// `now` is the TSC time the wheel runs at (the loop's time, not the expiry).
using TimerFn = void (*)(void* ctx, uint64_t arg, uint64_t now);

// The argument of a timer that times a slot of a shared table: the slot and
// the generation of the entry the timer was armed for (see the header comment).
struct SlotTimer {
  int32_t slot = 0;
  uint32_t generation = 0;
  uint64_t arg() const { return uint64_t{generation} << 32 | static_cast<uint32_t>(slot); }
  static SlotTimer of(uint64_t arg) {
    return {static_cast<int32_t>(arg & 0xffffffffu), static_cast<uint32_t>(arg >> 32)};
  }
};

struct WheelParams {
  uint64_t tsc_hz = 0;
  unsigned tick_us = 1000;  // resolution: a timer fires within one tick after its expiry
  unsigned slots = 1024;    // power of two; one revolution is slots * tick_us
  unsigned nodes = 4096;    // timers that may be armed at once
};

// An armed timer, as arm() returned it: empty (false) when no node was free.
// It stays valid until the timer fires or is cancelled; after that the
// node's generation has moved on and the handle cancels nothing. (A handle
// kept while its node is reused 2^32 times could match again: owners drop
// theirs when the timer fires.)
struct TimerHandle {
  static constexpr uint32_t kNone = UINT32_MAX;
  uint32_t node = kNone;
  uint32_t generation = 0;
  explicit operator bool() const { return node != kNone; }
};

class TimerWheel {
 public:
  static Result<std::unique_ptr<TimerWheel>> create(const WheelParams& p);

  // Arms a timer that calls fn(ctx, arg, now) at the first run() in a tick
  // that starts at or after expiry_tsc (an expiry in the past: at the first
  // run() in a later tick than the last one run). An empty handle when no
  // node is free.
  TimerHandle arm(uint64_t expiry_tsc, TimerFn fn, void* ctx, uint64_t arg);
  // Disarms the timer and frees its node; false (and nothing changes) when
  // the handle is stale: the timer fired (its callback may be running now),
  // was cancelled already, or the handle is empty.
  bool cancel(TimerHandle h);
  // Runs every timer due at `now_tsc`; returns how many fired. Not from a callback.
  unsigned run(uint64_t now_tsc);

  unsigned armed() const { return armed_; }
  unsigned capacity() const { return static_cast<unsigned>(nodes_.size()); }
  uint64_t fired() const { return fired_; }
  uint64_t cancelled() const { return cancelled_; }  // cancel() calls that disarmed a timer
  uint64_t exhausted() const { return exhausted_; }  // arm() calls refused for want of a node
  uint64_t tick_cycles() const { return tick_cycles_; }

 private:
  static constexpr uint32_t kNil = UINT32_MAX;
  struct Node {
    uint64_t expiry = 0;
    TimerFn fn = nullptr;
    void* ctx = nullptr;
    uint64_t arg = 0;
    uint32_t next = kNil;      // slot list, or free list
    uint32_t prev = kNil;      // slot list; kNil: the slot's first node
    uint32_t slot = kNil;      // kNil: free
    uint32_t generation = 0;   // bumped each time the node is freed
  };
  TimerWheel() = default;
  uint64_t tick_of(uint64_t tsc) const { return tsc / tick_cycles_; }
  void push(uint32_t slot, uint32_t n);
  void unlink(uint32_t n);
  void release(uint32_t n);

  std::vector<Node> nodes_;
  std::vector<uint32_t> heads_;  // per slot: first node, linked through Node::next/prev
  uint32_t free_ = kNil;
  uint32_t cursor_ = kNil;  // run(): the next node of the slot being walked
  bool running_ = false;
  uint32_t slot_mask_ = 0;
  uint64_t tick_cycles_ = 1;
  uint64_t last_tick_ = 0;  // every slot up to this tick has been run
  bool started_ = false;
  unsigned armed_ = 0;
  uint64_t fired_ = 0;
  uint64_t cancelled_ = 0;
  uint64_t exhausted_ = 0;
};

}  // namespace ngstack::stack::timer
