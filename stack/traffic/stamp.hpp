// The stamp a generated packet carries right after its UDP or TCP header, and
// what a sink makes of the stamps it reads: per-flow loss, duplicates and
// reordering (from sequence numbers), and latency (from TSC timestamps, which
// mean something only when generator and sink share the host's TSC).
//
// The stamp is 18 bytes so that it fits the smallest Ethernet frame: 64 bytes
// with FCS = 14 (Ethernet) + 20 (IPv4) + 8 (UDP) + 18. Fields are in host
// byte order: generator and sink are both ngstack.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>

namespace ngstack::stack::traffic {

inline constexpr uint16_t kStampMagic = 0x4e47;  // "NG"

struct __attribute__((packed)) Stamp {
  uint16_t magic = kStampMagic;
  uint32_t flow = 0;  // flow index, unique over the generators of one config
  uint32_t seq = 0;   // per flow, from 0
  uint64_t tsc = 0;   // the generator's TSC when the burst left
};
static_assert(sizeof(Stamp) == 18);

// Sequence accounting for one flow (RFC 4737 terms): a packet whose number is
// below the next expected one arrives late ("reordered") when it fills a gap,
// or is a duplicate when it was already seen. A window of the last kWindow
// numbers below the highest seen remembers which arrived. A packet older than
// the window cannot be checked: it might fill a gap or duplicate an old one,
// so it is counted apart ("beyond the window") and neither fills a gap nor
// counts as received (counting it as a late arrival let old duplicates hide
// loss).
class SequenceTracker {
 public:
  static constexpr uint32_t kWindow = 1024;

  // Sequence numbers start at 0: a sink started after its generator counts
  // what it missed as lost.
  void record(uint32_t seq) {
    if (seq == next_) {
      mark(seq);
      ++next_;
      ++received_;
      return;
    }
    // Forward distance in modulo-2^32 arithmetic: less than half the space is
    // ahead. Nothing lies behind a flow's first packet.
    const uint32_t ahead = seq - next_;
    if (ahead < 0x80000000u || received_ == 0) {
      // Numbers next_..seq-1 are missing for now; forget the window slots
      // they reuse, so a late one of them is not taken for a duplicate.
      const uint32_t from = ahead > kWindow ? seq - kWindow : next_;
      for (uint32_t s = from; s != seq; ++s) unmark(s);
      missing_ += ahead;
      mark(seq);
      next_ = seq + 1;
      ++received_;
      return;
    }
    const uint32_t behind = next_ - seq;  // >= 1
    if (behind > kWindow) {
      ++beyond_window_;
      return;
    }
    if (seen(seq)) {
      ++duplicates_;
      return;
    }
    mark(seq);
    ++received_;
    ++reordered_;
    if (missing_) --missing_;
  }

  uint64_t received() const { return received_; }     // distinct packets
  uint64_t missing() const { return missing_; }       // gaps not filled (yet)
  uint64_t duplicates() const { return duplicates_; }
  uint64_t reordered() const { return reordered_; }
  uint64_t beyond_window() const { return beyond_window_; }  // too late to check: not counted as received
  uint32_t next_expected() const { return next_; }

 private:
  void mark(uint32_t s) { window_[(s / 64) % kWords] |= uint64_t{1} << (s % 64); }
  void unmark(uint32_t s) { window_[(s / 64) % kWords] &= ~(uint64_t{1} << (s % 64)); }
  bool seen(uint32_t s) const { return window_[(s / 64) % kWords] & (uint64_t{1} << (s % 64)); }

  // Twice the window, so marks for numbers ahead of next_ never land on a
  // slot still inside the window behind it.
  static constexpr uint32_t kWords = 2 * kWindow / 64;
  std::array<uint64_t, kWords> window_{};
  uint32_t next_ = 0;
  uint64_t received_ = 0, missing_ = 0, duplicates_ = 0, reordered_ = 0, beyond_window_ = 0;
};

// Latency in nanoseconds as a log-linear histogram (as HdrHistogram does):
// 32 sub-buckets per power of two, so a percentile is within ~3% of the
// true value. Fixed size, no allocation.
class LatencyHistogram {
 public:
  static constexpr unsigned kSubBits = 5;
  static constexpr unsigned kSub = 1u << kSubBits;
  static constexpr unsigned kBuckets = kSub + (64 - kSubBits) * kSub;

  void record(uint64_t ns) {
    ++counts_[index(ns)];
    ++count_;
    if (ns < min_) min_ = ns;
    if (ns > max_) max_ = ns;
  }
  void merge(const LatencyHistogram& o) {
    for (unsigned i = 0; i < kBuckets; ++i) counts_[i] += o.counts_[i];
    count_ += o.count_;
    if (o.min_ < min_) min_ = o.min_;
    if (o.max_ > max_) max_ = o.max_;
  }
  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ ? min_ : 0; }
  uint64_t max() const { return max_; }
  // The upper bound of the bucket holding the q-quantile (0 < q <= 1),
  // clamped to the largest value seen.
  uint64_t quantile(double q) const {
    if (count_ == 0) return 0;
    auto rank = static_cast<uint64_t>(q * static_cast<double>(count_) + 0.5);
    if (rank == 0) rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) return upper(i) < max_ ? upper(i) : max_;
    }
    return max_;
  }

  // Values below kSub have a bucket each; above, each power of two 2^m
  // (m >= kSubBits) splits into kSub buckets of width 2^(m - kSubBits).
  static unsigned index(uint64_t v) {
    if (v < kSub) return static_cast<unsigned>(v);
    const unsigned msb = 63 - static_cast<unsigned>(__builtin_clzll(v));
    const unsigned shift = msb - kSubBits;
    return kSub + shift * kSub + static_cast<unsigned>((v >> shift) - kSub);
  }
  static uint64_t upper(unsigned i) {
    if (i < kSub) return i;
    const unsigned shift = (i - kSub) / kSub;
    const uint64_t top = kSub + (i - kSub) % kSub;
    return ((top + 1) << shift) - 1;
  }

 private:
  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0, min_ = UINT64_MAX, max_ = 0;
};

}  // namespace ngstack::stack::traffic
