// The locks of the connection table: one wrapper over four lock types, with
// lock profiling (FreeBSD LOCK_PROFILING) and the lock-order checker.
//
// Types (`stack.lock_type`): TBB's spin_mutex (test-and-test-and-set),
// queuing_mutex (an MCS queue lock: FIFO, each waiter spins on its own node),
// speculative_spin_mutex (lock elision with Intel TSX/RTM where the CPU has
// it, a spin_mutex otherwise) and DPDK's rte_spinlock. No virtual calls: a
// PcbLock holds one of the four in a union and switches on its type; the queue
// node of a queuing_mutex (and the scoped state of the others) lives in the
// LockHold on the acquiring thread's stack.
//
// Profiling, per lock: acquisitions, contended acquisitions (the first
// try-lock failed), wait cycles (total and max, from the first try to the
// acquisition) and hold cycles (total and max, acquisition to release), all
// in TSC cycles (rdtsc). The counters are written only by the holder, under
// the lock, with relaxed atomic load+store (a plain add on x86), so that a
// stats reader on another thread reads them without a data race. A class's
// profile is the sum over its locks (LockProfile::operator+=).
#pragma once

#include <rte_cycles.h>
#include <rte_spinlock.h>

#include <oneapi/tbb/queuing_mutex.h>
#include <oneapi/tbb/spin_mutex.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <new>
#include <optional>
#include <string_view>

#include "stack/pcb/witness.hpp"
#include "stack/tsan.hpp"

namespace ngstack::stack::pcb {

enum class LockType : uint8_t { spin, queuing, speculative, rte_spinlock };
enum class Locking : uint8_t { giant, group };

const char* lock_type_name(LockType t);
std::optional<LockType> lock_type_from_name(std::string_view name);
const char* locking_name(Locking l);
std::optional<Locking> locking_from_name(std::string_view name);

// A reader's copy of a lock's (or a class's) profile.
struct LockProfile {
  uint64_t acquisitions = 0;
  uint64_t contended = 0;    // the first try-lock failed
  uint64_t wait_cycles = 0;  // total, contended or not
  uint64_t wait_max = 0;
  uint64_t hold_cycles = 0;
  uint64_t hold_max = 0;
  LockProfile& operator+=(const LockProfile& o) {
    acquisitions += o.acquisitions;
    contended += o.contended;
    wait_cycles += o.wait_cycles;
    wait_max = std::max(wait_max, o.wait_max);
    hold_cycles += o.hold_cycles;
    hold_max = std::max(hold_max, o.hold_max);
    return *this;
  }
};

class LockHold;

class PcbLock {
 public:
  PcbLock() {}
  ~PcbLock() { destroy(); }
  PcbLock(const PcbLock&) = delete;
  PcbLock& operator=(const PcbLock&) = delete;

  // Once, before any use (arrays of locks are built first, typed after).
  void init(LockType t, witness::ClassId cls) {
    destroy();
    type_ = t;
    cls_ = cls;
    switch (t) {
      case LockType::spin: new (&spin_) tbb::spin_mutex(); break;
      case LockType::queuing: new (&queuing_) tbb::queuing_mutex(); break;
      case LockType::speculative: new (&spec_) tbb::speculative_spin_mutex(); break;
      case LockType::rte_spinlock: rte_spinlock_init(&rte_); break;
    }
    initialised_ = true;
  }
  LockType type() const { return type_; }
  witness::ClassId lock_class() const { return cls_; }

  LockProfile profile() const {
    LockProfile p;
    p.acquisitions = acquisitions_.load(std::memory_order_relaxed);
    p.contended = contended_.load(std::memory_order_relaxed);
    p.wait_cycles = wait_cycles_.load(std::memory_order_relaxed);
    p.wait_max = wait_max_.load(std::memory_order_relaxed);
    p.hold_cycles = hold_cycles_.load(std::memory_order_relaxed);
    p.hold_max = hold_max_.load(std::memory_order_relaxed);
    return p;
  }

 private:
  friend class LockHold;
  static void bump(std::atomic<uint64_t>& c, uint64_t n) {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  static void raise(std::atomic<uint64_t>& c, uint64_t v) {
    if (v > c.load(std::memory_order_relaxed)) c.store(v, std::memory_order_relaxed);
  }
  void destroy() {
    if (!initialised_) return;
    switch (type_) {
      case LockType::spin: std::destroy_at(&spin_); break;
      case LockType::queuing: std::destroy_at(&queuing_); break;
      case LockType::speculative: std::destroy_at(&spec_); break;
      case LockType::rte_spinlock: break;
    }
    initialised_ = false;
  }

  union {
    tbb::spin_mutex spin_;
    tbb::queuing_mutex queuing_;
    tbb::speculative_spin_mutex spec_;
    rte_spinlock_t rte_;
  };
  LockType type_ = LockType::rte_spinlock;
  witness::ClassId cls_ = 0;
  bool initialised_ = false;
  // Holder only (under the lock):
  uint64_t held_since_ = 0;
  std::atomic<uint64_t> acquisitions_{0}, contended_{0}, wait_cycles_{0}, wait_max_{0}, hold_cycles_{0},
      hold_max_{0};
};

// One acquisition of a PcbLock, on the acquiring thread's stack. Neither
// copyable nor movable (a queuing_mutex waiter's node must not move);
// guards that own one are returned by value through guaranteed copy elision.
class LockHold {
 public:
  LockHold() {}
  explicit LockHold(PcbLock& l) { acquire(l); }
  ~LockHold() {
    if (lock_) release();
  }
  LockHold(const LockHold&) = delete;
  LockHold& operator=(const LockHold&) = delete;

  bool held() const { return lock_ != nullptr; }
  PcbLock* lock() const { return lock_; }

  void acquire(PcbLock& l) {
    witness::on_acquire(l.cls_);
    const uint64_t t0 = rte_rdtsc();
    bool got = false;
    switch (l.type_) {
      case LockType::spin:
        new (&spin_) tbb::spin_mutex::scoped_lock();
        got = spin_.try_acquire(l.spin_);
        if (!got) spin_.acquire(l.spin_);
        break;
      case LockType::queuing:
        new (&queuing_) tbb::queuing_mutex::scoped_lock();
        got = queuing_.try_acquire(l.queuing_);
        if (!got) queuing_.acquire(l.queuing_);
        break;
      case LockType::speculative:
        new (&spec_) tbb::speculative_spin_mutex::scoped_lock();
        got = spec_.try_acquire(l.spec_);
        if (!got) spec_.acquire(l.spec_);
        break;
      case LockType::rte_spinlock:
        got = rte_spinlock_trylock(&l.rte_) != 0;
        if (!got) rte_spinlock_lock(&l.rte_);
        break;
    }
    const uint64_t t1 = rte_rdtsc();
    // speculative_spin_mutex and rte_spinlock synchronise in code TSan does
    // not see; the edge release -> next acquire is what they guarantee.
    tsan_acquire(&l);
    lock_ = &l;
    PcbLock::bump(l.acquisitions_, 1);
    if (!got) PcbLock::bump(l.contended_, 1);
    PcbLock::bump(l.wait_cycles_, t1 - t0);
    PcbLock::raise(l.wait_max_, t1 - t0);
    l.held_since_ = t1;
  }

  void release() {
    PcbLock& l = *lock_;
    const uint64_t hold = rte_rdtsc() - l.held_since_;
    PcbLock::bump(l.hold_cycles_, hold);
    PcbLock::raise(l.hold_max_, hold);
    tsan_release(&l);
    switch (l.type_) {
      case LockType::spin:
        spin_.release();
        std::destroy_at(&spin_);
        break;
      case LockType::queuing:
        queuing_.release();
        std::destroy_at(&queuing_);
        break;
      case LockType::speculative:
        spec_.release();
        std::destroy_at(&spec_);
        break;
      case LockType::rte_spinlock: rte_spinlock_unlock(&l.rte_); break;
    }
    lock_ = nullptr;
    witness::on_release(l.cls_);
  }

 private:
  PcbLock* lock_ = nullptr;
  union {
    tbb::spin_mutex::scoped_lock spin_;
    tbb::queuing_mutex::scoped_lock queuing_;
    tbb::speculative_spin_mutex::scoped_lock spec_;
  };
};

}  // namespace ngstack::stack::pcb
