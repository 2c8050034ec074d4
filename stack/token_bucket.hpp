// Token bucket over TSC cycles: `rate` tokens per second, at most `burst`
// saved up, the first `burst` available at once. A limiter owned by one
// worker (no atomics, no sharing): the ICMP error limiter (RFC 1812
// §4.3.2.8, stack/ipv4/icmp.hpp) and the bridge's learning limiter
// (stack/bridge/bridge.hpp) each keep one per worker.
#pragma once

#include <cstdint>

namespace ngstack::stack {

class TokenBucket {
 public:
  TokenBucket(double rate_per_s, double burst, uint64_t tsc_hz)
      : rate_per_cycle_(rate_per_s / static_cast<double>(tsc_hz)), burst_(burst), tokens_(burst) {}
  bool take(uint64_t now_tsc) {
    if (last_ != 0) tokens_ += static_cast<double>(now_tsc - last_) * rate_per_cycle_;
    if (tokens_ > burst_) tokens_ = burst_;
    last_ = now_tsc;
    if (tokens_ < 1.0) return false;
    tokens_ -= 1.0;
    return true;
  }

 private:
  double rate_per_cycle_;
  double burst_;
  double tokens_;
  uint64_t last_ = 0;
};

}  // namespace ngstack::stack
