// The per-worker timing wheel (stack/timer) on synthetic time: a 1 GHz "TSC"
// and `now` values the test chooses, so every expiry and every run is exact.
// Contract under test (timer_wheel.hpp): a timer fires once `now` >= its
// expiry, within one tick after it, however far ahead it was armed; a past
// expiry fires on the next run; callbacks may arm timers, which then fire in
// the same run or the next, never a revolution late; an empty node pool
// refuses and counts; a stall of many revolutions fires everything due in one
// run.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
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

}  // namespace
}  // namespace ngstack::stack::timer
