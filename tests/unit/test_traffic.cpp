// Traffic mode's pieces that decide what a sink reports: the per-flow
// sequence tracker (loss, duplicates, reordering) and the latency histogram;
// and the line-rate arithmetic a generator paces by.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "stack/traffic/stamp.hpp"
#include "stack/traffic/traffic.hpp"

namespace ngstack::stack::traffic {
namespace {

SequenceTracker feed(const std::vector<uint32_t>& seqs) {
  SequenceTracker t;
  for (uint32_t s : seqs) t.record(s);
  return t;
}

TEST(SequenceTracker, InOrderHasNoLossDuplicatesOrReordering) {
  std::vector<uint32_t> seqs(5000);
  for (uint32_t i = 0; i < seqs.size(); ++i) seqs[i] = i;
  const auto t = feed(seqs);
  EXPECT_EQ(t.received(), 5000u);
  EXPECT_EQ(t.missing(), 0u);
  EXPECT_EQ(t.duplicates(), 0u);
  EXPECT_EQ(t.reordered(), 0u);
}

TEST(SequenceTracker, CountsEachKindExactly) {
  // 0..99 with 10 and 50..52 lost, 20 and 21 duplicated (21 twice), and two
  // adjacent swaps (30<->31, 70<->71).
  std::vector<uint32_t> seqs;
  for (uint32_t i = 0; i < 100; ++i) {
    if (i == 10 || (i >= 50 && i <= 52)) continue;
    if (i == 30 || i == 70) continue;
    seqs.push_back(i);
    if (i == 20 || i == 21) seqs.push_back(i);
    if (i == 21) seqs.push_back(i);
    if (i == 31 || i == 71) seqs.push_back(i - 1);
  }
  const auto t = feed(seqs);
  EXPECT_EQ(t.missing(), 4u);
  EXPECT_EQ(t.duplicates(), 3u);
  EXPECT_EQ(t.reordered(), 2u);
  EXPECT_EQ(t.received(), 96u);
}

TEST(SequenceTracker, LateArrivalBeyondTheWindowIsCountedApart) {
  // 0..2000 without 5 and 1990; then 1990 (inside the window: a late
  // arrival), 5 (2000 - 5 > kWindow: it cannot be checked, so it neither
  // fills the gap nor counts as received) and 1990 again (a duplicate).
  std::vector<uint32_t> seqs;
  for (uint32_t i = 0; i <= 2000; ++i)
    if (i != 5 && i != 1990) seqs.push_back(i);
  seqs.push_back(1990);
  seqs.push_back(5);
  seqs.push_back(1990);
  const auto t = feed(seqs);
  EXPECT_EQ(t.missing(), 1u);
  EXPECT_EQ(t.reordered(), 1u);
  EXPECT_EQ(t.duplicates(), 1u);
  EXPECT_EQ(t.beyond_window(), 1u);
  EXPECT_EQ(t.received(), 2000u);
}

TEST(SequenceTracker, OldDuplicatesDoNotHideLoss) {
  // 0..2999 with 2500..2509 lost, then a replay of 0..99 (duplicates far
  // behind the window). The 10 lost stay lost; the replay is counted apart.
  std::vector<uint32_t> seqs;
  for (uint32_t i = 0; i < 3000; ++i)
    if (i < 2500 || i >= 2510) seqs.push_back(i);
  for (uint32_t i = 0; i < 100; ++i) seqs.push_back(i);
  const auto t = feed(seqs);
  EXPECT_EQ(t.missing(), 10u);
  EXPECT_EQ(t.beyond_window(), 100u);
  EXPECT_EQ(t.received(), 2990u);
  EXPECT_EQ(t.reordered(), 0u);
}

TEST(SequenceTracker, StaleWindowSlotsDoNotMakeFalseDuplicates) {
  // A jump over more than the window's slots, then a late packet from just
  // before the jump's end: it reuses a slot marked two windows ago.
  std::vector<uint32_t> seqs;
  for (uint32_t i = 0; i < 3000; ++i) seqs.push_back(i);
  const uint32_t late = 3000 + 2 * SequenceTracker::kWindow + 10;
  seqs.push_back(late + 1);  // skips 3000..late
  seqs.push_back(late);
  const auto t = feed(seqs);
  EXPECT_EQ(t.duplicates(), 0u);
  EXPECT_EQ(t.reordered(), 1u);
  EXPECT_EQ(t.missing(), late - 3000u);
}

TEST(SequenceTracker, WrapsAround) {
  SequenceTracker t;
  // Jump near the end of the 32-bit space, then run past it.
  t.record(0xfffffff0u);
  for (uint32_t s = 0xfffffff1u; s != 0x10u; ++s) t.record(s);
  EXPECT_EQ(t.missing(), 0xfffffff0u);
  EXPECT_EQ(t.duplicates(), 0u);
  EXPECT_EQ(t.reordered(), 0u);
  EXPECT_EQ(t.next_expected(), 0x10u);
}

TEST(LatencyHistogram, QuantilesWithinBucketPrecision) {
  LatencyHistogram h;
  for (uint64_t v = 1; v <= 100000; ++v) h.record(v * 10);  // 10 ns .. 1 ms, uniform
  EXPECT_EQ(h.count(), 100000u);
  EXPECT_EQ(h.min(), 10u);
  EXPECT_EQ(h.max(), 1000000u);
  auto near = [](uint64_t got, double want) { return std::abs(static_cast<double>(got) - want) <= want * 0.035; };
  EXPECT_TRUE(near(h.quantile(0.5), 500000)) << h.quantile(0.5);
  EXPECT_TRUE(near(h.quantile(0.99), 990000)) << h.quantile(0.99);
  EXPECT_TRUE(near(h.quantile(0.999), 999000)) << h.quantile(0.999);
  EXPECT_EQ(h.quantile(1.0), 1000000u);
}

TEST(LatencyHistogram, BucketsCoverEveryValueInOrder) {
  uint64_t prev_upper = 0;
  for (unsigned i = 1; i < LatencyHistogram::kBuckets; ++i) {
    const uint64_t up = LatencyHistogram::upper(i);
    ASSERT_GT(up, prev_upper) << i;
    ASSERT_EQ(LatencyHistogram::index(up), i) << i;
    ASSERT_EQ(LatencyHistogram::index(prev_upper + 1), i) << i;
    prev_upper = up;
  }
  EXPECT_EQ(LatencyHistogram::index(UINT64_MAX), LatencyHistogram::kBuckets - 1);
}

TEST(LineRate, TenGigabitAtSixtyFourBytesIs14_88Mpps) {
  EXPECT_NEAR(line_rate_pps(10000, 100, {64}, {1}), 14880952.38, 0.01);
  EXPECT_NEAR(line_rate_pps(10000, 50, {1518}, {1}), 812743.82 / 2, 0.01);
  // IMIX 7:4:1 averages 4342 / 12 = 361.83 bytes.
  EXPECT_NEAR(line_rate_pps(10000, 100, {64, 594, 1518}, {7, 4, 1}), 1e10 / ((4342.0 / 12 + 20) * 8), 0.01);
}

}  // namespace
}  // namespace ngstack::stack::traffic
