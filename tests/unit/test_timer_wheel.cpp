// The per-worker timing wheel (stack/timer) on synthetic time: a 1 GHz "TSC"
// and `now` values the test chooses, so every expiry and every run is exact.
// Contract under test (timer_wheel.hpp): a timer fires once `now` >= its
// expiry, within one tick after it, however far ahead it was armed; a past
// expiry fires on the next run; callbacks may arm timers, which then fire in
// the same run or the next, never a revolution late; an empty node pool
// refuses and counts; a stall of many revolutions fires everything due in one
// run; cancel() frees a node at once and refuses a stale handle, also from
// inside a callback; and a random mix of all of these agrees with a simple
// reference (a std::multimap of expiries).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "stack/timer/timer_wheel.hpp"

namespace ngstack::stack::timer {
namespace {

constexpr uint64_t kHz = 1'000'000'000;  // 1 cycle = 1 ns
constexpr uint64_t kTick = 1'000'000;    // tick_us 1000 at 1 GHz

std::unique_ptr<TimerWheel> wheel(unsigned slots = 1024, unsigned nodes = 4096) {
  auto w = TimerWheel::create({kHz, 1000, slots, nodes});
  EXPECT_TRUE(w.ok()) << (w.ok() ? "" : w.error());
  return std::move(*w);
}

// What the callbacks saw: (arg, now) per firing.
struct Log {
  struct Fire {
    uint64_t arg;
    uint64_t now;
  };
  std::vector<Fire> fires;
  static void record(void* ctx, uint64_t arg, uint64_t now) { static_cast<Log*>(ctx)->fires.push_back({arg, now}); }
  bool fired(uint64_t arg) const {
    for (const auto& f : fires)
      if (f.arg == arg) return true;
    return false;
  }
  uint64_t when(uint64_t arg) const {
    for (const auto& f : fires)
      if (f.arg == arg) return f.now;
    return UINT64_MAX;
  }
};

TEST(TimerWheel, CreateRejectsBadParameters) {
  EXPECT_FALSE(TimerWheel::create({0, 1000, 1024, 16}).ok()) << "unknown TSC frequency";
  EXPECT_FALSE(TimerWheel::create({kHz, 1000, 1000, 16}).ok()) << "slots not a power of two";
  EXPECT_FALSE(TimerWheel::create({kHz, 1000, 0, 16}).ok());
  EXPECT_FALSE(TimerWheel::create({kHz, 1000, 1024, 0}).ok());
  auto w = wheel(64, 8);
  EXPECT_EQ(w->tick_cycles(), kTick);
  EXPECT_EQ(w->capacity(), 8u);
}

// A worker runs its wheel once per loop iteration, many times per tick. A
// timer must fire at the first run with now >= expiry... at the latest within
// one tick after it, wherever in its tick the expiry falls.
TEST(TimerWheel, FiresNotBeforeExpiryAndWithinOneTickAfter) {
  for (uint64_t phase : {uint64_t{0}, uint64_t{1}, kTick / 4, kTick / 2, kTick - 1}) {
    SCOPED_TRACE("expiry " + std::to_string(phase) + " cycles into its tick");
    auto w = wheel();
    Log log;
    w->run(0);
    const uint64_t expiry = 5 * kTick + phase;
    ASSERT_TRUE(w->arm(expiry, Log::record, &log, 1));
    // The loop's cadence: a run every tenth of a tick, for two revolutions.
    for (uint64_t now = kTick / 10; now < 2 * 1024 * kTick && !log.fired(1); now += kTick / 10) {
      w->run(now);
      if (log.fired(1)) {
        EXPECT_GE(log.when(1), expiry) << "fired early";
        EXPECT_LE(log.when(1), expiry + kTick) << "fired more than one tick after its expiry";
      }
    }
    EXPECT_TRUE(log.fired(1));
    EXPECT_EQ(w->armed(), 0u);
  }
}

// The smallest case of the above: a run inside the expiry's tick but before
// the expiry, then runs in the following ticks.
TEST(TimerWheel, RunEarlyInTheExpiryTickDoesNotDelayTheTimer) {
  auto w = wheel();
  Log log;
  w->run(0);
  ASSERT_TRUE(w->arm(kTick + kTick / 2, Log::record, &log, 7));  // 1.5 ticks
  EXPECT_EQ(w->run(kTick), 0u) << "tick 1, before the expiry: not due yet";
  // Later runs in tick 2 return at once (no new tick), and tick 3 begins
  // 1.5 ticks after the expiry: the first run of tick 2 is the one.
  EXPECT_EQ(w->run(2 * kTick), 1u) << "due since half a tick: fires in the first run of tick 2";
  if (!log.fired(7)) {
    uint64_t t = 3;
    while (!log.fired(7) && t < 4096) w->run(t++ * kTick);
    ADD_FAILURE() << "the timer due at tick 1.5 fired only at tick " << log.when(7) / kTick
                  << " (one revolution of 1024 ticks late)";
  }
}

TEST(TimerWheel, BeyondOneRevolutionFiresAtItsTimeNotEarly) {
  auto w = wheel(16);  // one revolution is 16 ticks
  Log log;
  w->run(0);
  // Slot 8 is visited at ticks 8, 24, 40 before the timer's tick 72; slot 3 at 3, 19, 35.
  ASSERT_TRUE(w->arm(72 * kTick, Log::record, &log, 1));
  ASSERT_TRUE(w->arm(51 * kTick, Log::record, &log, 2));
  ASSERT_TRUE(w->arm(16 * kTick, Log::record, &log, 3));  // exactly one revolution
  for (uint64_t t = 1; t <= 80; ++t) {
    w->run(t * kTick);
    EXPECT_EQ(log.fired(3), t >= 16) << "tick " << t;
    EXPECT_EQ(log.fired(2), t >= 51) << "tick " << t;
    EXPECT_EQ(log.fired(1), t >= 72) << "tick " << t;
  }
  EXPECT_EQ(log.when(1), 72 * kTick);
  EXPECT_EQ(log.when(2), 51 * kTick);
  EXPECT_EQ(log.when(3), 16 * kTick);
  // Also when the wheel is run in steps longer than a tick.
  auto w2 = wheel(16);
  Log log2;
  w2->run(0);
  ASSERT_TRUE(w2->arm(100 * kTick + 3, Log::record, &log2, 9));
  for (uint64_t now = 7 * kTick; now < 100 * kTick; now += 7 * kTick) {
    w2->run(now);
    ASSERT_FALSE(log2.fired(9)) << "fired at " << now << ", before its expiry";
  }
  w2->run(101 * kTick);
  EXPECT_EQ(log2.when(9), 101 * kTick);
}

TEST(TimerWheel, PastExpiryFiresOnNextRun) {
  // Armed before the wheel ever ran, long in the past (many revolutions).
  auto w = wheel(16);
  Log log;
  ASSERT_TRUE(w->arm(3 * kTick, Log::record, &log, 1));
  ASSERT_TRUE(w->arm(0, Log::record, &log, 2));
  EXPECT_EQ(w->run(1000 * kTick + 5), 2u);
  EXPECT_TRUE(log.fired(1) && log.fired(2));
  // Armed between runs, in the past, and at the very time of the last run.
  ASSERT_TRUE(w->arm(10 * kTick, Log::record, &log, 3));
  ASSERT_TRUE(w->arm(1000 * kTick + 5, Log::record, &log, 4));
  ASSERT_TRUE(w->arm(1000 * kTick + 4, Log::record, &log, 5));
  EXPECT_EQ(w->run(1001 * kTick), 3u);
  EXPECT_TRUE(log.fired(3) && log.fired(4) && log.fired(5));
  EXPECT_EQ(w->armed(), 0u);
  EXPECT_EQ(w->fired(), 5u);
}

// A callback that arms new timers while run() walks the wheel.
struct Rearm {
  TimerWheel* w = nullptr;
  Log log;
  uint64_t delta_back = 0;  // the new timer's expiry is now - delta_back
  unsigned chain = 0;       // re-arms left
  static void fire(void* ctx, uint64_t arg, uint64_t now) {
    auto& r = *static_cast<Rearm*>(ctx);
    r.log.fires.push_back({arg, now});
    if (r.chain == 0) return;
    --r.chain;
    EXPECT_TRUE(r.w->arm(now - r.delta_back, fire, &r, arg + 1));
  }
};

TEST(TimerWheel, CallbacksArmingDueTimersFireThisRunOrNext) {
  for (uint64_t back : {uint64_t{0}, kTick / 2, 3 * kTick}) {
    SCOPED_TRACE("new timers due " + std::to_string(back) + " cycles before now");
    // A run over several ticks (a short stall): the callback fires in an
    // early tick of it; each timer it arms, due already, fires in this run or
    // the next.
    {
      auto w = wheel(16);
      Rearm r;
      r.w = w.get();
      r.delta_back = back;
      r.chain = 3;
      w->run(0);
      ASSERT_TRUE(w->arm(2 * kTick, Rearm::fire, &r, 100));
      const unsigned first = w->run(10 * kTick);
      EXPECT_GE(first, 2u) << "the timer, and at least the first one it armed";
      EXPECT_EQ(first + w->run(11 * kTick) + w->run(12 * kTick), 4u)
          << "the timer and the 3 it armed in turn, within the run that armed each or the next";
      EXPECT_EQ(w->armed(), 0u);
    }
    // A run of one tick: what the callback arms fires in the same run or the
    // next, not one revolution (16 ticks) later.
    {
      auto w = wheel(16);
      Rearm r;
      r.w = w.get();
      r.delta_back = back;
      r.chain = 1;
      w->run(0);
      ASSERT_TRUE(w->arm(5 * kTick, Rearm::fire, &r, 100));
      const unsigned a = w->run(5 * kTick);
      const unsigned b = w->run(6 * kTick);
      EXPECT_EQ(a + b, 2u);
      EXPECT_TRUE(r.log.fired(101)) << "armed in a callback, due: fires by the next run";
      EXPECT_LE(r.log.when(101), 6 * kTick);
    }
  }
  // A callback arming a timer due later in the current tick, and one a whole
  // revolution ahead (in the very slot being walked).
  auto w = wheel(16);
  Log log;
  struct Ctx {
    TimerWheel* w;
    Log* log;
  } ctx{w.get(), &log};
  w->run(0);
  ASSERT_TRUE(w->arm(
      4 * kTick,
      [](void* c, uint64_t, uint64_t now) {
        auto& x = *static_cast<Ctx*>(c);
        EXPECT_TRUE(x.w->arm(now + kTick / 2, Log::record, x.log, 1));
        EXPECT_TRUE(x.w->arm(now + 16 * kTick, Log::record, x.log, 2));
      },
      &ctx, 0));
  w->run(4 * kTick);
  w->run(5 * kTick);
  EXPECT_EQ(log.when(1), 5 * kTick) << "due in half a tick: fires in the next tick";
  for (uint64_t t = 6; t < 20; ++t) w->run(t * kTick);
  EXPECT_FALSE(log.fired(2)) << "one revolution ahead: not before its time";
  w->run(20 * kTick);
  EXPECT_EQ(log.when(2), 20 * kTick);
}

TEST(TimerWheel, PoolExhaustionRefusesAndCounts) {
  auto w = wheel(16, 4);
  Log log;
  w->run(0);
  for (uint64_t i = 0; i < 4; ++i) ASSERT_TRUE(w->arm((i + 1) * kTick, Log::record, &log, i));
  EXPECT_EQ(w->armed(), 4u);
  EXPECT_FALSE(w->arm(kTick, Log::record, &log, 99));
  EXPECT_FALSE(w->arm(0, Log::record, &log, 98));
  EXPECT_EQ(w->exhausted(), 2u);
  EXPECT_EQ(w->armed(), 4u);
  EXPECT_EQ(w->run(2 * kTick), 2u) << "the refused timers were not armed";
  EXPECT_FALSE(log.fired(99) || log.fired(98));
  EXPECT_TRUE(w->arm(3 * kTick, Log::record, &log, 5)) << "fired nodes are free again";
  EXPECT_TRUE(w->arm(3 * kTick, Log::record, &log, 6));
  EXPECT_FALSE(w->arm(3 * kTick, Log::record, &log, 7));
  EXPECT_EQ(w->exhausted(), 3u);
  EXPECT_EQ(w->run(10 * kTick), 4u);
  EXPECT_EQ(w->armed(), 0u);
}

TEST(TimerWheel, LongStallFiresEverythingDueInOneRun) {
  auto w = wheel(16);
  Log log;
  w->run(0);
  // 200 timers spread over 74 ticks (4.6 revolutions), at odd phases, and 10
  // after the stall.
  for (uint64_t k = 1; k <= 200; ++k) ASSERT_TRUE(w->arm(k * (kTick * 37 / 100), Log::record, &log, k));
  for (uint64_t k = 0; k < 10; ++k) ASSERT_TRUE(w->arm(90 * kTick + k * kTick, Log::record, &log, 1000 + k));
  EXPECT_EQ(w->run(80 * kTick), 200u) << "a stall of 5 revolutions: one run fires everything due";
  for (uint64_t k = 1; k <= 200; ++k) ASSERT_TRUE(log.fired(k)) << k;
  for (uint64_t k = 0; k < 10; ++k) EXPECT_FALSE(log.fired(1000 + k)) << "not due yet";
  EXPECT_EQ(w->armed(), 10u);
  // A second stall, of exactly one revolution, then one far longer.
  EXPECT_EQ(w->run(96 * kTick), 7u);  // 90..96
  EXPECT_EQ(w->run(1'000'000 * kTick), 3u);
  EXPECT_EQ(w->armed(), 0u);
  EXPECT_EQ(w->fired(), 210u);
}

// --- cancellation -------------------------------------------------------------------------

TEST(TimerWheel, CancelBeforeExpiryNeverFiresAndFreesTheNode) {
  auto w = wheel(16, 4);
  Log log;
  w->run(0);
  TimerHandle h[4];
  for (uint64_t i = 0; i < 4; ++i) {
    h[i] = w->arm((i + 1) * kTick, Log::record, &log, i);
    ASSERT_TRUE(h[i]);
  }
  EXPECT_FALSE(w->arm(kTick, Log::record, &log, 99)) << "the pool is full";
  EXPECT_TRUE(w->cancel(h[1]));
  EXPECT_EQ(w->armed(), 3u);
  EXPECT_EQ(w->cancelled(), 1u);
  EXPECT_FALSE(w->cancel(h[1])) << "cancelled already";
  EXPECT_EQ(w->cancelled(), 1u);
  const TimerHandle again = w->arm(2 * kTick, Log::record, &log, 5);
  ASSERT_TRUE(again) << "the cancelled timer's node is free at once, not at its expiry";
  EXPECT_EQ(again.node, h[1].node);
  EXPECT_FALSE(w->arm(kTick, Log::record, &log, 98));
  EXPECT_EQ(w->exhausted(), 2u);
  EXPECT_EQ(w->run(100 * kTick), 4u);
  EXPECT_FALSE(log.fired(1)) << "a cancelled timer never fires";
  EXPECT_TRUE(log.fired(0) && log.fired(2) && log.fired(3) && log.fired(5));
  EXPECT_EQ(w->armed(), 0u);
  EXPECT_EQ(w->fired(), 4u);
  // Also the only node of a slot, the first, the middle and the last of a
  // slot's list, and a timer more than one revolution ahead.
  auto w2 = wheel(16, 8);
  Log log2;
  w2->run(0);
  TimerHandle same[4];
  for (uint64_t i = 0; i < 4; ++i) same[i] = w2->arm(3 * kTick, Log::record, &log2, i);  // one slot
  const TimerHandle alone = w2->arm(5 * kTick, Log::record, &log2, 10);
  const TimerHandle far = w2->arm(40 * kTick, Log::record, &log2, 11);
  const TimerHandle stays = w2->arm(40 * kTick, Log::record, &log2, 12);
  for (const TimerHandle& c : {same[0], same[3], same[2], alone, far}) EXPECT_TRUE(w2->cancel(c));
  EXPECT_EQ(w2->armed(), 2u);
  for (uint64_t t = 1; t <= 45; ++t) w2->run(t * kTick);
  EXPECT_EQ(log2.fires.size(), 2u);
  EXPECT_EQ(log2.when(1), 3 * kTick);
  EXPECT_EQ(log2.when(12), 40 * kTick);
  EXPECT_FALSE(w2->cancel(stays)) << "fired";
  EXPECT_EQ(w2->armed(), 0u);
  EXPECT_EQ(w2->cancelled(), 5u);
}

TEST(TimerWheel, StaleHandlesAreRefusedAndCancelNothing) {
  auto w = wheel(16, 4);
  Log log;
  w->run(0);
  EXPECT_FALSE(w->cancel(TimerHandle{})) << "an empty handle";
  EXPECT_FALSE(w->cancel(TimerHandle{7, 0})) << "no such node";
  // After it fired: its node is free, then serves a new timer.
  const TimerHandle fired = w->arm(kTick, Log::record, &log, 1);
  ASSERT_TRUE(fired);
  EXPECT_EQ(w->run(kTick), 1u);
  EXPECT_FALSE(w->cancel(fired)) << "fired";
  const TimerHandle reused = w->arm(3 * kTick, Log::record, &log, 2);
  ASSERT_EQ(reused.node, fired.node) << "the free list gives the same node back";
  EXPECT_NE(reused.generation, fired.generation);
  EXPECT_FALSE(w->cancel(fired)) << "the node now serves another timer";
  // After a cancel and a re-arm of the same node.
  const TimerHandle first = w->arm(5 * kTick, Log::record, &log, 3);
  ASSERT_TRUE(w->cancel(first));
  const TimerHandle second = w->arm(5 * kTick, Log::record, &log, 4);
  ASSERT_EQ(second.node, first.node);
  EXPECT_FALSE(w->cancel(first)) << "cancelled, and its node re-armed";
  EXPECT_EQ(w->armed(), 2u);
  EXPECT_EQ(w->cancelled(), 1u);
  for (uint64_t t = 2; t <= 6; ++t) w->run(t * kTick);
  EXPECT_EQ(log.when(2), 3 * kTick) << "the stale handle did not cancel the new timer";
  EXPECT_EQ(log.when(4), 5 * kTick) << "the stale handle did not cancel the new timer";
  EXPECT_FALSE(log.fired(3));
  EXPECT_EQ(w->armed(), 0u);
}

// Callbacks that cancel: the one a callback runs for is already off the
// wheel; the next node of the slot being walked, one further on, one in a
// slot this run has still to visit and one in a slot it passed.
struct Canceller {
  TimerWheel* w = nullptr;
  Log log;
  std::vector<TimerHandle> to_cancel;  // by the timer with arg 0
  std::vector<bool> results;
  TimerHandle self;                    // the handle of the timer with arg 0
  bool self_result = true;
  uint64_t rearm_expiry = 0;           // arg 0 arms one more (arg 50) when not 0
  static void fire(void* ctx, uint64_t arg, uint64_t now) {
    auto& c = *static_cast<Canceller*>(ctx);
    c.log.fires.push_back({arg, now});
    if (arg != 0) return;
    c.self_result = c.w->cancel(c.self);
    for (const TimerHandle& h : c.to_cancel) c.results.push_back(c.w->cancel(h));
    if (c.rearm_expiry) {
      EXPECT_TRUE(c.w->arm(c.rearm_expiry, fire, &c, 50));
    }
  }
};

TEST(TimerWheel, CancelFromACallbackOfTheSameSlotAndOfItself) {
  // One slot, walked from the latest armed: 0 (the canceller), then 1, 2, 3.
  auto w = wheel(16, 8);
  Canceller c;
  c.w = w.get();
  w->run(0);
  const TimerHandle h3 = w->arm(3 * kTick, Canceller::fire, &c, 3);
  const TimerHandle h2 = w->arm(3 * kTick, Canceller::fire, &c, 2);
  const TimerHandle h1 = w->arm(3 * kTick, Canceller::fire, &c, 1);
  c.self = w->arm(3 * kTick, Canceller::fire, &c, 0);
  c.to_cancel = {h1, h3};  // the walk's next node, and its last
  // The canceller re-arms into its own slot one revolution on: the node it
  // gets back is 3's (freed last), now at the head of the list being walked.
  c.rearm_expiry = 19 * kTick;
  EXPECT_EQ(w->run(3 * kTick), 2u) << "0 and 2";
  EXPECT_FALSE(c.self_result) << "a timer's own handle is stale once its callback runs";
  ASSERT_EQ(c.results.size(), 2u);
  EXPECT_TRUE(c.results[0] && c.results[1]);
  EXPECT_TRUE(c.log.fired(0) && c.log.fired(2));
  EXPECT_FALSE(c.log.fired(1) || c.log.fired(3));
  EXPECT_EQ(w->armed(), 1u) << "the re-armed one";
  EXPECT_EQ(w->cancelled(), 2u);
  EXPECT_FALSE(w->cancel(h2)) << "fired";
  for (uint64_t t = 4; t <= 18; ++t) EXPECT_EQ(w->run(t * kTick), 0u) << "tick " << t;
  EXPECT_EQ(w->run(19 * kTick), 1u);
  EXPECT_EQ(c.log.when(50), 19 * kTick);
  // Every node is back on the free list once: the pool fills to exactly its size.
  EXPECT_EQ(w->armed(), 0u);
  Log log;
  for (unsigned i = 0; i < 8; ++i) ASSERT_TRUE(w->arm(30 * kTick, Log::record, &log, i)) << i;
  EXPECT_FALSE(w->arm(30 * kTick, Log::record, &log, 8));
  EXPECT_EQ(w->run(30 * kTick), 8u);
}

TEST(TimerWheel, CancelFromACallbackAcrossSlotsInOneRun) {
  // One run over ticks 1..15 of a 16-slot wheel. The canceller (tick 2)
  // cancels a timer due at tick 9 (a slot this run has still to visit), one
  // due at tick 17 (slot 1, which this run passed already) and one due at
  // tick 30 (slot 14, which this run visits, not due). The others due in
  // the run fire in it; nothing cancelled ever does.
  auto w = wheel(16, 8);
  Canceller c;
  c.w = w.get();
  w->run(0);
  c.self = w->arm(2 * kTick, Canceller::fire, &c, 0);
  c.to_cancel = {w->arm(9 * kTick, Canceller::fire, &c, 9), w->arm(17 * kTick, Canceller::fire, &c, 17),
                 w->arm(30 * kTick, Canceller::fire, &c, 30)};
  ASSERT_TRUE(w->arm(10 * kTick, Canceller::fire, &c, 10));
  ASSERT_TRUE(w->arm(14 * kTick, Canceller::fire, &c, 14));
  EXPECT_EQ(w->run(15 * kTick), 3u) << "0, 10, 14";
  ASSERT_EQ(c.results.size(), 3u);
  EXPECT_TRUE(c.results[0] && c.results[1] && c.results[2]);
  EXPECT_EQ(w->armed(), 0u);
  for (uint64_t t = 16; t <= 40; ++t) w->run(t * kTick);
  EXPECT_EQ(c.log.fires.size(), 3u);
  EXPECT_FALSE(c.log.fired(9) || c.log.fired(17) || c.log.fired(30));
}

// A random mix of arm (in the past, this tick, up to three revolutions
// ahead), cancel (live and stale handles), runs in steps from none to
// several revolutions, and callbacks that cancel and arm, against a
// reference: a std::multimap of the live timers by expiry. A timer is due at
// the first tick that starts at or after its expiry and not before the tick
// after the last run when it was armed; every run fires what is live and
// due by its tick, and nothing whose expiry is after `now`.
class WheelModel {
 public:
  WheelModel(unsigned slots, unsigned nodes, uint32_t seed) : w_(wheel(slots, nodes)), rng_(seed), slots_(slots) {
    w_->run(0);
  }

  void step() {
    const unsigned op = pick(100);
    if (op < 3) {
      for (unsigned n = 1 + pick(40); n > 0; --n) arm_one(now_ + expiry_offset(), Action::none);  // a burst
    } else if (op < 45) {
      arm_one(now_ + expiry_offset(), pick(4) == 0 ? Action::cancel_some : Action::none);
    } else if (op < 65) {
      cancel_live();
    } else if (op < 72) {
      cancel_stale();
    } else {
      run(advance());
    }
    ASSERT_EQ(w_->armed(), live_.size());
    ASSERT_EQ(w_->cancelled(), cancelled_);
    ASSERT_EQ(w_->fired(), fired_);
  }
  // Runs until nothing is left.
  void finish() {
    for (int i = 0; i < 100 && !live_.empty(); ++i) run(now_ + uint64_t{slots_} * kTick);
    EXPECT_TRUE(live_.empty());
    EXPECT_EQ(w_->armed(), 0u);
  }
  uint64_t fired() const { return fired_; }
  uint64_t cancelled() const { return cancelled_; }
  uint64_t exhausted() const { return w_->exhausted(); }

 private:
  enum class Action : uint8_t { none, cancel_some };
  struct Timer {
    TimerHandle h;
    uint64_t expiry = 0;
    uint64_t due_by = 0;  // a tick by which it must have fired (its due tick, or later for one armed in a run)
    Action action = Action::none;
    std::multimap<uint64_t, uint64_t>::iterator at;
  };

  unsigned pick(unsigned n) { return static_cast<unsigned>(rng_() % n); }
  uint64_t expiry_offset() {
    const uint64_t span = 3ull * slots_ * kTick;
    switch (pick(6)) {
      case 0: return 0;
      case 1: return static_cast<uint64_t>(pick(static_cast<unsigned>(kTick)));  // this tick or the next
      default: return static_cast<uint64_t>(rng_() % span);
    }
  }
  uint64_t advance() {
    switch (pick(10)) {
      case 0: return now_;  // no time passed
      case 1:  // now and then a stall
        return now_ + static_cast<uint64_t>(rng_() % (pick(4) ? 3 * kTick : 4ull * slots_ * kTick));
      default: return now_ + static_cast<uint64_t>(rng_() % (3 * kTick));
    }
  }
  static uint64_t ceil_tick(uint64_t tsc) { return tsc / kTick + (tsc % kTick != 0); }

  void arm_one(uint64_t expiry, Action action) {
    const uint64_t id = next_id_++;
    const TimerHandle h = w_->arm(expiry, fire, this, id);
    EXPECT_EQ(static_cast<bool>(h), live_.size() < w_->capacity()) << "refused only when every node is armed";
    if (!h) return;
    Timer t;
    t.h = h;
    t.expiry = expiry;
    // In a run the wheel may be at any tick up to now's: the due tick is at
    // most the one after now's.
    t.due_by = std::max(ceil_tick(expiry), (in_run_ ? now_ / kTick : last_tick_) + 1);
    t.action = action;
    t.at = by_expiry_.emplace(expiry, id);
    live_.emplace(id, t);
  }
  void forget(std::unordered_map<uint64_t, Timer>::iterator it) {
    by_expiry_.erase(it->second.at);
    stale_.push_back(it->second.h);
    live_.erase(it);
  }
  void cancel_live() {
    if (by_expiry_.empty()) return;
    auto e = std::next(by_expiry_.begin(), pick(static_cast<unsigned>(by_expiry_.size())));
    auto it = live_.find(e->second);
    EXPECT_TRUE(w_->cancel(it->second.h)) << "a live timer";
    ++cancelled_;
    forget(it);
  }
  void cancel_stale() {
    if (stale_.empty()) return;
    const unsigned armed = w_->armed();
    EXPECT_FALSE(w_->cancel(stale_[pick(static_cast<unsigned>(stale_.size()))])) << "a stale handle";
    EXPECT_EQ(w_->armed(), armed);
  }
  void run(uint64_t now) {
    now_ = now;
    in_run_ = true;
    w_->run(now);
    in_run_ = false;
    // A run in a tick already run returns at once; any other ends at now's tick.
    last_tick_ = std::max(last_tick_, now / kTick);
    for (const auto& [id, t] : live_)
      EXPECT_GT(t.due_by, now / kTick) << "timer " << id << " (expiry " << t.expiry << ") due by tick " << t.due_by
                                       << " did not fire in the run at " << now;
  }
  static void fire(void* ctx, uint64_t id, uint64_t now) {
    auto& m = *static_cast<WheelModel*>(ctx);
    auto it = m.live_.find(id);
    if (it == m.live_.end()) {
      ADD_FAILURE() << "timer " << id << " fired, but it was cancelled or fired already";
      return;
    }
    EXPECT_LE(it->second.expiry, now) << "timer " << id << " fired early";
    EXPECT_FALSE(m.w_->cancel(it->second.h)) << "its own handle, from its callback";
    const Action action = it->second.action;
    ++m.fired_;
    m.forget(it);
    if (action == Action::cancel_some) {
      // Whatever is live, wherever it sits (this slot's list included); then
      // a new timer, often due already.
      if (m.pick(2)) m.cancel_live();
      if (m.pick(2)) m.cancel_stale();
      m.arm_one(m.pick(2) ? now - std::min<uint64_t>(now, m.pick(3) * kTick) : now + m.expiry_offset(),
                m.pick(3) == 0 ? Action::cancel_some : Action::none);
    }
  }

  std::unique_ptr<TimerWheel> w_;
  std::mt19937_64 rng_;
  unsigned slots_;
  uint64_t now_ = 0;
  uint64_t last_tick_ = 0;
  bool in_run_ = false;
  uint64_t next_id_ = 0;
  uint64_t fired_ = 0, cancelled_ = 0;
  std::multimap<uint64_t, uint64_t> by_expiry_;  // expiry -> id: the reference
  std::unordered_map<uint64_t, Timer> live_;
  std::vector<TimerHandle> stale_;
};

TEST(TimerWheel, RandomArmCancelRunAgreesWithAReference) {
  for (uint32_t seed : {1u, 2u, 3u, 4u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    WheelModel m(16 << (seed % 3), 64, seed);  // 16, 32 and 64 slots; the pool fills at times
    for (int i = 0; i < 20000; ++i) {
      ASSERT_NO_FATAL_FAILURE(m.step()) << "step " << i;
      if (::testing::Test::HasFailure()) return;
    }
    m.finish();
    EXPECT_GT(m.fired(), 1000u);
    EXPECT_GT(m.cancelled(), 1000u);
    EXPECT_GT(m.exhausted(), 0u) << "the mix filled the pool at times";
  }
}

}  // namespace
}  // namespace ngstack::stack::timer
