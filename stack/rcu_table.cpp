#include "stack/rcu_table.hpp"

#include <rte_errno.h>
#include <rte_hash_crc.h>
#include <rte_malloc.h>

namespace ngstack::stack {

Result<std::unique_ptr<RcuTable>> RcuTable::create(const std::string& name, unsigned capacity, unsigned readers) {
  static std::atomic<unsigned> serial{0};
  const std::string unique = name + std::to_string(serial.fetch_add(1));
  std::unique_ptr<RcuTable> t(new RcuTable());
  t->capacity_ = capacity;
  const unsigned nslots = 2 * capacity;
  t->live_ = std::vector<std::atomic<bool>>(nslots);
  t->keys_ = std::vector<std::atomic<uint64_t>>(nslots);
  for (unsigned i = nslots; i-- > 0;) t->free_.push_back(static_cast<int32_t>(i));
  t->retired_.resize(nslots);

  rte_hash_parameters hp{};
  hp.name = unique.c_str();
  hp.entries = std::max(nslots, 64u);
  hp.key_len = sizeof(uint64_t);
  hp.hash_func = rte_hash_crc;
  hp.socket_id = SOCKET_ID_ANY;
  // Lock-free reads; with no internal RCU a deleted key's index stays
  // reserved until we free it after the grace period (remove_locked).
  hp.extra_flag = RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF | RTE_HASH_EXTRA_FLAGS_EXT_TABLE;
  t->hash_ = rte_hash_create(&hp);
  if (!t->hash_) return Error{"cannot create the " + name + " hash table: " + rte_strerror(rte_errno)};

  // Reader ids 0..readers-1 are the workers; `readers` is the control-plane walker (Walk).
  const std::size_t qsz = rte_rcu_qsbr_get_memsize(readers + 1);
  t->qsbr_ = static_cast<rte_rcu_qsbr*>(rte_zmalloc(nullptr, qsz, RTE_CACHE_LINE_SIZE));
  if (!t->qsbr_ || rte_rcu_qsbr_init(t->qsbr_, readers + 1) != 0)
    return Error{"cannot allocate the " + name + " RCU state for " + std::to_string(readers) + " workers"};
  for (unsigned r = 0; r <= readers; ++r) rte_rcu_qsbr_thread_register(t->qsbr_, r);
  t->walker_id_ = readers;
  return t;
}

RcuTable::~RcuTable() {
  if (hash_) rte_hash_free(hash_);
  rte_free(qsbr_);
}

void RcuTable::remove_locked(int32_t slot) {
  const uint64_t key = keys_[slot].load(std::memory_order_relaxed);
  live_[slot].store(false, std::memory_order_release);
  const int32_t position = rte_hash_del_key(hash_, &key);
  if (position >= 0) {
    count_.fetch_sub(1, std::memory_order_relaxed);
    // Readers that found the key before the delete may still read the slot:
    // it is free again once each of them has reported a quiescent state.
    Retired& r = retired_[(retired_head_ + retired_count_++) % retired_.size()];
    r = Retired{rte_rcu_qsbr_start(qsbr_), slot, position};
  }
  reclaim_due();
}

void RcuTable::reclaim_due() {
  while (retired_count_ != 0) {
    const Retired& r = retired_[retired_head_];
    if (rte_rcu_qsbr_check(qsbr_, r.token, false) != 1) return;  // later ones are younger
    tsan_acquire(qsbr_);  // every reader's reads of the slot came before its quiescent report
    rte_hash_free_key_with_position(hash_, r.position);
    free_.push_back(r.slot);
    retired_head_ = (retired_head_ + 1) % retired_.size();
    --retired_count_;
  }
}

}  // namespace ngstack::stack
