// Statistics counters and named drop reasons.
//
// Every counter has exactly one writer (the worker that owns it) and any number
// of readers (the stats printer, the telemetry thread). A relaxed load+store
// compiles to a plain add on x86, costs nothing on the data path, and keeps the
// readers free of data races (ThreadSanitizer agrees).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string_view>

namespace ngstack::stack {

class Counter {
 public:
  void add(uint64_t n) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  void inc() { add(1); }
  void set(uint64_t v) { v_.store(v, std::memory_order_relaxed); }
  uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// Why a packet was freed instead of sent. Every freed mbuf is counted under
// exactly one of these, so that rx == tx + drops holds at every stop.
enum class DropReason : uint8_t {
  tx_full,   // the egress tx queue had no room (rte_eth_tx_burst sent fewer)
  no_path,   // forwarder: the ingress port is the input of no path
  runt,      // shorter than an Ethernet header
  kCount
};

inline constexpr std::size_t kDropReasonCount = static_cast<std::size_t>(DropReason::kCount);

std::string_view drop_reason_name(DropReason r);

class DropCounters {
 public:
  void add(DropReason r, uint64_t n) { c_[static_cast<std::size_t>(r)].add(n); }
  uint64_t get(DropReason r) const { return c_[static_cast<std::size_t>(r)].get(); }
  uint64_t total() const {
    uint64_t t = 0;
    for (const auto& c : c_) t += c.get();
    return t;
  }

 private:
  std::array<Counter, kDropReasonCount> c_{};
};

}  // namespace ngstack::stack
