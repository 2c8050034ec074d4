// A table that workers read without locks and that any worker may write:
// the shape both the ARP cache and the bridge FDB need.
//
// Model. Keys are 64-bit; each maps to a slot index of a fixed array that the
// owner of the table (ArpTable, Fdb) keeps beside it. The index lives in an
// rte_hash created with RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF, so lookups
// take no lock and never block, whatever writers do.
//
// Writers (insert, remove) are serialised by one spinlock. They run on a miss
// or on ageing, never for a packet whose key is already known, so the lock is
// off the steady-state data path. Updating what a slot holds (a MAC, a port, a
// timestamp) needs no lock: the owner keeps those fields in atomics.
//
// Reclamation. A reader may still hold a slot index it looked up just before
// the key was removed. Removed slots therefore return to the free list only
// after an RCU QSBR grace period: every reader reports a quiescent state once
// per loop iteration, between bursts, when it holds no slot index. A removed
// slot (with the rte_hash key index that named it: the hash runs without
// internal RCU, so a deleted key's index stays reserved until
// rte_hash_free_key_with_position) waits in a FIFO with the QSBR token taken
// when it was removed; whatever is due leaves the FIFO at every removal and
// whenever an insert finds the free list empty. A removed slot is never reused
// for another key while a reader could still read it, and a slot comes back
// once its grace period is over, whether or not anything is removed after it.
//
// Slots are allocated twice the capacity so that slots waiting out a grace
// period never make the table look full; at most `capacity` keys are live.
#pragma once

#include <rte_hash.h>
#include <rte_rcu_qsbr.h>
#include <rte_spinlock.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "conf/result.hpp"
#include "stack/tsan.hpp"

namespace ngstack::stack {

class RcuTable {
 public:
  static constexpr int32_t kNone = -1;

  // `readers`: the number of reader threads (workers), ids 0..readers-1.
  static Result<std::unique_ptr<RcuTable>> create(const std::string& name, unsigned capacity, unsigned readers);
  ~RcuTable();
  RcuTable(const RcuTable&) = delete;
  RcuTable& operator=(const RcuTable&) = delete;

  unsigned capacity() const { return capacity_; }
  unsigned slots() const { return static_cast<unsigned>(live_.size()); }
  unsigned size() const { return count_.load(std::memory_order_relaxed); }

  // --- readers ---------------------------------------------------------------
  int32_t lookup(uint64_t key) const {
    void* data = nullptr;
    if (rte_hash_lookup_data(hash_, &key, &data) < 0) return kNone;
    const auto slot = static_cast<int32_t>(reinterpret_cast<uintptr_t>(data));
    tsan_acquire(&keys_[slot]);  // pairs with the release in insert_locked
    return slot;
  }
  void reader_online(unsigned reader) { rte_rcu_qsbr_thread_online(qsbr_, reader); }
  void reader_offline(unsigned reader) {
    tsan_release(qsbr_);  // pairs with the acquire in reclaim
    rte_rcu_qsbr_thread_offline(qsbr_, reader);
  }
  // The reader holds no slot index from here back to its next lookup.
  void quiescent(unsigned reader) {
    tsan_release(qsbr_);
    rte_rcu_qsbr_quiescent(qsbr_, reader);
  }
  // The readers' QSBR state: other structures the same readers use may wait
  // for a grace period on it (rte_rcu_qsbr_synchronize) rather than keep their own.
  rte_rcu_qsbr* qsbr() const { return qsbr_; }
  // A control-plane walk over the table (telemetry, `ngstack show`, metrics,
  // the stats loop): for its duration the walker is one more RCU reader, so
  // no slot it looks at is reclaimed and reused under it. Walkers take turns
  // on that one reader id; workers never wait for it beyond one walk.
  class Walk {
   public:
    explicit Walk(const RcuTable& t) : t_(t) {
      t_.walk_mutex_.lock();
      rte_rcu_qsbr_thread_online(t_.qsbr_, t_.walker_id_);
    }
    ~Walk() {
      tsan_release(t_.qsbr_);  // pairs with the acquire in reclaim
      rte_rcu_qsbr_thread_offline(t_.qsbr_, t_.walker_id_);
      t_.walk_mutex_.unlock();
    }
    Walk(const Walk&) = delete;
    Walk& operator=(const Walk&) = delete;

   private:
    const RcuTable& t_;
  };

  // Whether the slot holds a live key (for walkers: maintenance, telemetry).
  bool live(int32_t slot) const { return live_[slot].load(std::memory_order_acquire); }
  uint64_t key_of(int32_t slot) const { return keys_[slot].load(std::memory_order_relaxed); }

  // --- writers -----------------------------------------------------------------
  void lock() {
    rte_spinlock_lock(&writer_lock_);
    tsan_acquire(&writer_lock_);
    lock_acquisitions_.fetch_add(1, std::memory_order_relaxed);
  }
  void unlock() {
    tsan_release(&writer_lock_);
    rte_spinlock_unlock(&writer_lock_);
  }

  // With the writer lock held: the key's slot, a new one (after `init(slot)`
  // prepared it, before readers can find it), or kNone when full.
  template <typename Init>
  int32_t insert_locked(uint64_t key, Init&& init) {
    if (int32_t s = lookup(key); s != kNone) return s;
    if (size() >= capacity_) return kNone;
    if (free_.empty()) reclaim_due();
    if (free_.empty()) return kNone;  // every spare slot still waits for its grace period
    const int32_t slot = free_.back();
    free_.pop_back();
    init(slot);
    keys_[slot].store(key, std::memory_order_relaxed);
    tsan_release(&keys_[slot]);  // what init wrote is visible to whoever finds the key
    if (rte_hash_add_key_data(hash_, &key, reinterpret_cast<void*>(static_cast<uintptr_t>(slot))) < 0) {
      free_.push_back(slot);
      return kNone;
    }
    live_[slot].store(true, std::memory_order_release);
    count_.fetch_add(1, std::memory_order_relaxed);
    return slot;
  }
  // Takes the writer lock to insert, unless the table is full: a flood of
  // new keys into a full table (macof, an address scan) must not serialise
  // every worker on the lock only to learn that nothing fits.
  template <typename Init>
  int32_t insert(uint64_t key, Init&& init) {
    if (size() >= capacity_) return kNone;
    lock();
    const int32_t slot = insert_locked(key, std::forward<Init>(init));
    unlock();
    return slot;
  }
  // How often the writer lock was taken (tests and stats).
  uint64_t lock_acquisitions() const { return lock_acquisitions_.load(std::memory_order_relaxed); }

  // With the writer lock held. The slot is reused only after a grace period.
  void remove_locked(int32_t slot);

  // Slots removed and not yet back on the free list (writer lock; tests).
  unsigned retired() const { return static_cast<unsigned>(retired_count_); }

 private:
  // A removed slot waiting out its grace period.
  struct Retired {
    uint64_t token = 0;  // rte_rcu_qsbr_start when it was removed
    int32_t slot = kNone;
    int32_t position = -1;  // its key's rte_hash index, still reserved
  };

  RcuTable() = default;
  // With the writer lock held: every retired slot whose grace period is over
  // goes back to the free list, oldest first.
  void reclaim_due();

  unsigned capacity_ = 0;
  rte_hash* hash_ = nullptr;
  rte_rcu_qsbr* qsbr_ = nullptr;
  unsigned walker_id_ = 0;          // the reader id after the workers' (Walk)
  mutable std::mutex walk_mutex_;   // one Walk at a time on that id
  rte_spinlock_t writer_lock_ = RTE_SPINLOCK_INITIALIZER;
  std::vector<int32_t> free_;  // writer lock
  std::vector<Retired> retired_;  // writer lock; a ring of slots() entries
  std::size_t retired_head_ = 0, retired_count_ = 0;
  std::vector<std::atomic<bool>> live_;
  std::vector<std::atomic<uint64_t>> keys_;
  std::atomic<unsigned> count_{0};
  std::atomic<uint64_t> lock_acquisitions_{0};
};

}  // namespace ngstack::stack
