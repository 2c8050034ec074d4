// A statistics counter with exactly one writer (the worker that owns it) and
// any number of readers (stats printer, telemetry thread). A relaxed load+store
// compiles to a plain add on x86, costs nothing on the data path, and keeps the
// readers free of data races (ThreadSanitizer agrees).
#pragma once

#include <atomic>
#include <cstdint>

namespace ngstack::dispatch {

class Counter {
 public:
  void add(uint64_t n) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  void inc() { add(1); }
  void set(uint64_t v) { v_.store(v, std::memory_order_relaxed); }
  void raise_to(uint64_t v) {
    if (v > v_.load(std::memory_order_relaxed)) v_.store(v, std::memory_order_relaxed);
  }
  uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

}  // namespace ngstack::dispatch
