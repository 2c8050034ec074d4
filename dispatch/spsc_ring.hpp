// A bounded single-producer/single-consumer ring of pointers: the netisr work
// queue between one source worker and one destination worker.
//
// The consumer *peeks* a batch, runs the handler over it, and only then
// *releases* the slots. So "the ring is empty" means "everything this producer
// queued has been handled", which is what the dispatcher's reconfiguration
// barrier waits for to keep flows in order.
//
// Each index has one writer; the other side reads it with acquire and keeps a
// private cached copy so that the shared cache line is touched only when the
// cached view says the ring is full (producer) or empty (consumer).
#pragma once

#include <atomic>
#include <bit>
#include <cstdint>
#include <memory>

namespace ngstack::dispatch {

inline constexpr std::size_t kCacheLine = 64;

template <class T>
class SpscRing {
 public:
  explicit SpscRing(uint32_t limit)
      : capacity_(std::bit_ceil(limit < 2 ? 2u : limit)),
        mask_(capacity_ - 1),
        slots_(std::make_unique<T[]>(capacity_)) {
    limit_.store(limit, std::memory_order_relaxed);
  }

  uint32_t capacity() const { return capacity_; }

  // Producer: enqueue up to n items, in order, as far as the limit allows.
  // Returns how many were taken; `len_after` receives the queue length.
  uint32_t enqueue(T const* items, uint32_t n, uint32_t& len_after) {
    const uint32_t tail = tail_.load(std::memory_order_relaxed);
    const uint32_t limit = limit_.load(std::memory_order_relaxed);
    uint32_t used = tail - prod_head_cache_;
    if (used + n > limit) {
      prod_head_cache_ = head_.load(std::memory_order_acquire);
      used = tail - prod_head_cache_;
    }
    const uint32_t room = used >= limit ? 0 : limit - used;
    const uint32_t take = n < room ? n : room;
    for (uint32_t i = 0; i < take; ++i) slots_[(tail + i) & mask_] = items[i];
    tail_.store(tail + take, std::memory_order_release);
    len_after = used + take;
    return take;
  }

  // Consumer: copy up to max items from the head without releasing them.
  uint32_t peek(T* out, uint32_t max) {
    const uint32_t head = head_.load(std::memory_order_relaxed);
    uint32_t avail = cons_tail_cache_ - head;
    if (avail == 0) {
      cons_tail_cache_ = tail_.load(std::memory_order_acquire);
      avail = cons_tail_cache_ - head;
    }
    const uint32_t n = avail < max ? avail : max;
    for (uint32_t i = 0; i < n; ++i) out[i] = slots_[(head + i) & mask_];
    return n;
  }

  // Consumer: the n items peeked last have been handled.
  void release(uint32_t n) { head_.store(head_.load(std::memory_order_relaxed) + n, std::memory_order_release); }

  // Any thread: current length (a snapshot).
  uint32_t size() const {
    const uint32_t head = head_.load(std::memory_order_acquire);
    return tail_.load(std::memory_order_acquire) - head;
  }
  bool empty() const { return size() == 0; }

  // Control path: the limit may be lowered or raised up to capacity().
  void set_limit(uint32_t limit) { limit_.store(limit, std::memory_order_relaxed); }

 private:
  const uint32_t capacity_;
  const uint32_t mask_;
  std::unique_ptr<T[]> slots_;
  std::atomic<uint32_t> limit_{0};
  alignas(kCacheLine) std::atomic<uint32_t> tail_{0};  // written by the producer
  uint32_t prod_head_cache_ = 0;
  alignas(kCacheLine) std::atomic<uint32_t> head_{0};  // written by the consumer
  uint32_t cons_tail_cache_ = 0;
};

}  // namespace ngstack::dispatch
