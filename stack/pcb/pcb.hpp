// The connection table of the host stack (inpcbs), split into connection
// groups aligned with RSS buckets. One PcbTable per protocol (udp, tcp), as
// FreeBSD keeps udbinfo and tcbinfo apart.
//
// Model. A PCB is keyed by its 4-tuple (local addr, local port, foreign addr,
// foreign port; IPv4, host byte order). The table is G connection groups
// (`stack.groups`, a power of two, default 128). The group of a tuple comes
// from its RSS hash: the Toeplitz hash with the ports' key of the tuple taken
// "foreign as source", as the NIC hashes a segment it receives for that
// connection (src = foreign addr/port, dst = local addr/port):
//
//   bucket = rss_hash & (B - 1)     the netisr/RETA bucket, B = dispatch.buckets
//   group  = rss_hash & (G - 1)     so group = bucket % G when G <= B,
//                                   and bucket = group % B when G >= B
//   owner  = bucket_map[bucket]     the worker that receives the tuple's packets
//
// With G >= B every group lies inside one bucket, so it has one owner
// (group_owner()); with G < B a group spans B/G buckets, which may belong to
// different workers. G == B (the default, 128 each) gives group == bucket.
//
// Why the Toeplitz hash chooses the group and nothing else: with the
// symmetric key (0x6d5a repeated) the hash is a linear function of the XOR
// of the tuple's 16-bit words, i.e. it carries at most 16 bits of entropy,
// and tuples differing by swapped or XOR-compensating words collide by
// construction. Within a group the PCBs are therefore hashed again with a
// strong 64-bit mix of the whole tuple (and a per-table seed).
//
// Group. Each group has its own chained hash table (index links, heads sized
// to a power of two >= its PCB count), its own free list of PCBs preallocated
// at create (capacity / G per group: nothing is allocated per packet or per
// connection), its own lock and counters, each group on its own cache lines.
//
// Locking (`stack.locking`):
//   giant  every lookup, insert and removal, and the caller's work under the
//          guard, takes one table-wide lock (FreeBSD 5's tcbinfo baseline);
//   group  only the group's lock.
// The caller holds a GroupGuard from lock_group(g) (or gets one from
// for_each_group); lookup/insert/remove take the guard as proof and assert
// (debug) that it covers the tuple's group. A Pcb pointer is valid only while
// its group's guard is held: removal returns the PCB to the group's free list
// at once.
//
// Lock order: listen table (writer lock) -> group (or giant) -> connection
// (Pcb::lock). Debug builds check it at run time (witness.hpp). The listen
// table's readers take no lock at all, so a lookup under a group lock may
// read it; only its writers take the listen lock, and never while holding a
// group lock.
//
// Listen (wildcard) table: bound and listening sockets, (laddr or INADDR_ANY,
// lport). Read by every worker without a lock: an immutable snapshot behind
// an atomic pointer; a change (bind, listen, close: rare, control path)
// copies the snapshot under the writer lock, publishes the copy, and frees
// the old one after an RCU QSBR grace period (rte_rcu_qsbr; every worker
// reports a quiescent state between bursts). A tuple that misses in its group
// falls back to the listen table (exact local address first, then
// INADDR_ANY); accept() then creates the connection in the tuple's group,
// never in a global list.
//
// Burst amortisation: for_each_group() sorts a burst's tuples by group and
// takes each group's lock once for all its packets (in giant mode, the giant
// lock once for the whole burst). Each group counts its lookups, so lock
// acquisitions per packet = profile().acquisitions / lookups.
//
// Active open: connect() picks an ephemeral local port (49152..65535) whose
// tuple, taken foreign as source, lands in a bucket owned by the opening
// worker and is free, and inserts the PCB under the group lock, so replies
// arrive on the worker that opened the connection.
#pragma once

#include <rte_rcu_qsbr.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "conf/result.hpp"
#include "dispatch/counter.hpp"
#include "dispatch/toeplitz.hpp"
#include "stack/pcb/pcb_lock.hpp"

namespace ngstack::stack::pcb {

using dispatch::Counter;

// IPv4 4-tuple, host byte order.
struct FourTuple {
  uint32_t laddr = 0;
  uint32_t faddr = 0;
  uint16_t lport = 0;
  uint16_t fport = 0;
  bool operator==(const FourTuple&) const = default;
};

inline constexpr uint32_t kNil = UINT32_MAX;
inline constexpr uint16_t kEphemeralFirst = 49152;
inline constexpr uint16_t kEphemeralLast = 65535;
inline constexpr unsigned kMaxBurst = 512;  // for_each_group

// A connection's protocol control block. Fields other than `lock` belong to
// the holder of the group's guard; the upper layer keeps its state behind
// `so` and `cookie`.
struct alignas(64) Pcb {
  FourTuple tuple;
  uint32_t group = 0;
  uint32_t next = kNil;  // chain within the group's hash table / free list
  bool in_use = false;
  uint8_t state = 0;      // the protocol's (a TCP state, a UDP "connected")
  uint64_t cookie = 0;    // the listener's cookie for an accepted connection, else the caller's
  void* so = nullptr;     // the socket above
  PcbLock lock;           // the connection lock (class pcb_conn): after the group's
};

// A bound or listening socket: laddr 0 is INADDR_ANY.
struct ListenEntry {
  uint32_t laddr = 0;
  uint16_t lport = 0;
  uint64_t cookie = 0;  // the socket's
};

// Per-group counters, written under the group's (or the giant) lock.
struct GroupCounters {
  Counter lookups;      // lookup() and lookup_or_listen() calls: one per packet
  Counter hits;
  Counter listen_hits;  // missed in the group, found a listener
  Counter misses;       // neither
  Counter inserts;
  Counter removes;
  Counter exists;       // insert of a tuple already present
  Counter full;         // insert with the group's free list empty
  Counter bursts;       // for_each_group runs of this group
};

// The copy-on-write listen table.
class ListenTable {
 public:
  // `readers`: reader (worker) ids 0..readers-1 for QSBR.
  ListenTable(unsigned readers, LockType type);
  ~ListenTable();
  ListenTable(const ListenTable&) = delete;
  ListenTable& operator=(const ListenTable&) = delete;

  // --- readers (no lock; the reader must be online) -------------------------
  // Exact (laddr, lport) first, then (INADDR_ANY, lport).
  std::optional<ListenEntry> lookup(uint32_t laddr, uint16_t lport) const;
  void reader_online(unsigned reader);
  void reader_offline(unsigned reader);
  void quiescent(unsigned reader);  // between bursts: the reader holds nothing it read

  // --- writers (control path; take the listen lock) -------------------------
  // False when (laddr, lport) is already bound. `self`: the caller's reader
  // id when a reader (worker) itself changes the table, so that the grace
  // period does not wait for it; otherwise RTE_QSBR_THRID_INVALID.
  bool add(const ListenEntry& e, unsigned self = RTE_QSBR_THRID_INVALID);
  bool remove(uint32_t laddr, uint16_t lport, unsigned self = RTE_QSBR_THRID_INVALID);
  unsigned size() const;
  LockProfile lock_profile() const { return lock_.profile(); }
  const PcbLock& writer_lock() const { return lock_; }
  PcbLock& writer_lock() { return lock_; }

 private:
  struct Snapshot {
    std::vector<ListenEntry> entries;  // sorted by (lport, laddr)
  };
  void publish_and_reclaim(Snapshot* next, unsigned self);

  std::atomic<const Snapshot*> current_;
  rte_rcu_qsbr* qsbr_ = nullptr;
  unsigned readers_ = 0;
  PcbLock lock_;
};

struct PcbParams {
  unsigned groups = 128;           // power of two
  unsigned buckets = 128;          // netisr buckets, power of two
  std::vector<uint16_t> bucket_map;  // bucket -> worker; empty: round robin over `workers`
  unsigned workers = 1;
  Locking locking = Locking::group;
  LockType lock_type = LockType::spin;
  unsigned capacity = 4096;        // PCBs in all; each group gets capacity / groups (at least 1)
  std::vector<uint8_t> rss_key;    // the ports' Toeplitz key (>= 16 bytes for a 4-tuple)
  uint64_t seed = 0x9e3779b97f4a7c15ULL;  // of the in-group hash
};

class PcbTable;

// Proof that the caller holds the lock covering a group: the group's lock in
// group mode, the giant lock in giant mode. Returned by value (guaranteed
// copy elision; neither copyable nor movable).
class GroupGuard {
 public:
  uint32_t group() const { return group_; }
  GroupGuard(const GroupGuard&) = delete;
  GroupGuard& operator=(const GroupGuard&) = delete;

 private:
  friend class PcbTable;
  GroupGuard(PcbTable& t, uint32_t g);
  PcbTable* table_;
  uint32_t group_;
  LockHold hold_;
};

// The connection lock of a PCB; take it only while holding its group's guard
// (or before dropping it), never before.
class ConnGuard {
 public:
  explicit ConnGuard(Pcb& p) : hold_(p.lock) {}

 private:
  LockHold hold_;
};

class PcbTable {
 public:
  static Result<std::unique_ptr<PcbTable>> create(const std::string& name, const PcbParams& p);
  ~PcbTable();
  PcbTable(const PcbTable&) = delete;
  PcbTable& operator=(const PcbTable&) = delete;

  const std::string& name() const { return name_; }
  unsigned groups() const { return ngroups_; }
  unsigned buckets() const { return nbuckets_; }
  unsigned per_group() const { return per_group_; }
  Locking locking() const { return locking_; }
  LockType lock_type() const { return lock_type_; }

  // --- group choice --------------------------------------------------------
  // Toeplitz of (faddr, laddr, fport, lport) in network order: what the NIC
  // computes for a packet this connection receives.
  uint32_t rss_hash(const FourTuple& t) const;
  uint32_t bucket_of(const FourTuple& t) const { return rss_hash(t) & (nbuckets_ - 1); }
  uint32_t group_of(const FourTuple& t) const { return rss_hash(t) & (ngroups_ - 1); }
  unsigned owner_of(const FourTuple& t) const { return bucket_map_[bucket_of(t)]; }
  // The owner of a group; only meaningful when groups() >= buckets().
  unsigned group_owner(uint32_t g) const { return bucket_map_[g & (nbuckets_ - 1)]; }
  // The strong hash used inside a group.
  uint64_t tuple_hash(const FourTuple& t) const;

  // --- locking ---------------------------------------------------------------
  GroupGuard lock_group(uint32_t g) { return GroupGuard(*this, g); }

  // --- under a guard ------------------------------------------------------------
  Pcb* lookup(GroupGuard& g, const FourTuple& t);
  enum class InsertError : uint8_t { none, exists, full };
  Pcb* insert(GroupGuard& g, const FourTuple& t, uint64_t cookie = 0, InsertError* err = nullptr);
  void remove(GroupGuard& g, Pcb* p);

  struct Match {
    Pcb* pcb = nullptr;                   // an established/connected PCB
    std::optional<ListenEntry> listener;  // else a bound/listening socket
  };
  // The group first, then the listen table (the caller is an online reader).
  Match lookup_or_listen(GroupGuard& g, const FourTuple& t);
  // A new connection for a listener, in the tuple's group (the guard's).
  Pcb* accept(GroupGuard& g, const FourTuple& t, const ListenEntry& l, InsertError* err = nullptr) {
    return insert(g, t, l.cookie, err);
  }

  ListenTable& listeners() { return *listen_; }

  // --- PCB slots -------------------------------------------------------------------
  // PCBs are preallocated in one array, per_group() per group, group g owning
  // slots [g * per_group(), (g + 1) * per_group()): an upper layer keeps its
  // per-connection state in a parallel array, and a slot names its group
  // without any lock (a timer uses that to lock the right group).
  uint32_t slots() const { return per_group_ * ngroups_; }
  uint32_t slot_of(const Pcb* p) const { return static_cast<uint32_t>(p - pcbs_.get()); }
  uint32_t group_of_slot(uint32_t slot) const { return slot / per_group_; }
  Pcb& at(uint32_t slot) { return pcbs_[slot]; }

  // --- bursts --------------------------------------------------------------------
  // Calls fn(GroupGuard&, const uint16_t* idx, unsigned count) once per group
  // present in tuples[0..n), idx listing that group's tuples in burst order;
  // one lock acquisition per group (giant: one for the burst). n <= kMaxBurst.
  template <typename Fn>
  void for_each_group(const FourTuple* tuples, unsigned n, Fn&& fn);

  // --- active open ------------------------------------------------------------------
  // An ephemeral port for (laddr -> faddr:fport) whose reply lands in a
  // bucket `worker` owns, inserted (with `cookie`) under its group's lock;
  // nullopt when none is free. Call from `worker` only (its port cursor).
  std::optional<FourTuple> connect(unsigned worker, uint32_t laddr, uint32_t faddr, uint16_t fport,
                                   uint64_t cookie = 0);

  // --- stats (any thread) -----------------------------------------------------------
  LockProfile group_profile(uint32_t g) const { return groups_[g].lock.profile(); }
  LockProfile giant_profile() const { return giant_.profile(); }
  LockProfile listen_profile() const { return listen_->lock_profile(); }
  LockProfile conn_profile() const;  // every PCB's connection lock
  // The sum over the class's locks: pcb_listen, pcb_giant, pcb_group, pcb_conn.
  LockProfile class_profile(witness::ClassId c) const;
  const GroupCounters& counters(uint32_t g) const { return groups_[g].counters; }
  uint64_t lookups() const;  // all groups
  // Lock acquisitions by for_each_group (the receive path): one per group
  // run (group locking) or one per burst (giant). Divided by lookups(), the
  // acquisitions per packet that burst amortisation achieves.
  uint64_t burst_acquisitions() const;
  unsigned live(uint32_t g) const { return groups_[g].live.load(std::memory_order_relaxed); }
  unsigned live() const;

 private:
  struct alignas(64) Group {
    PcbLock lock;
    // Under the group's (giant's) lock:
    uint32_t free_head = kNil;
    uint32_t mask = 0;        // heads - 1
    uint32_t* heads = nullptr;
    std::atomic<unsigned> live{0};
    alignas(64) GroupCounters counters;
  };
  friend class GroupGuard;
  PcbTable() = default;
  PcbLock& lock_for(uint32_t g) { return locking_ == Locking::giant ? giant_ : groups_[g].lock; }
  void check_guard(const GroupGuard& g, const FourTuple& t) const {
    (void)g;
    (void)t;
    assert(g.table_ == this && g.group_ == group_of(t));
  }

  std::string name_;
  unsigned ngroups_ = 0, nbuckets_ = 0, per_group_ = 0, workers_ = 0;
  Locking locking_ = Locking::group;
  LockType lock_type_ = LockType::spin;
  uint64_t seed_ = 0;
  std::vector<uint16_t> bucket_map_;
  std::unique_ptr<dispatch::ToeplitzHash> toeplitz_;
  alignas(64) PcbLock giant_;
  Counter giant_bursts_;  // under the giant lock
  std::unique_ptr<Group[]> groups_;
  std::unique_ptr<Pcb[]> pcbs_;
  std::vector<uint32_t> heads_;
  struct alignas(64) PortCursor {
    uint16_t next = kEphemeralFirst;
  };
  std::unique_ptr<PortCursor[]> cursors_;  // one per worker
  std::unique_ptr<ListenTable> listen_;
};

inline GroupGuard::GroupGuard(PcbTable& t, uint32_t g) : table_(&t), group_(g), hold_(t.lock_for(g)) {}

template <typename Fn>
void PcbTable::for_each_group(const FourTuple* tuples, unsigned n, Fn&& fn) {
  assert(n <= kMaxBurst);
  if (n == 0) return;
  // (group << 16 | index): one sort orders by group, and within a group by
  // arrival, so that the callback sees each flow's packets in order.
  uint64_t keys[kMaxBurst];
  uint16_t idx[kMaxBurst];
  for (unsigned i = 0; i < n; ++i) keys[i] = (static_cast<uint64_t>(group_of(tuples[i])) << 16) | i;
  std::sort(keys, keys + n);
  for (unsigned i = 0; i < n; ++i) idx[i] = static_cast<uint16_t>(keys[i] & 0xffff);
  auto group_at = [&](unsigned i) { return static_cast<uint32_t>(keys[i] >> 16); };
  if (locking_ == Locking::giant) {
    GroupGuard guard(*this, group_at(0));
    giant_bursts_.inc();
    for (unsigned start = 0; start < n;) {
      const uint32_t g = group_at(start);
      unsigned end = start + 1;
      while (end < n && group_at(end) == g) ++end;
      guard.group_ = g;
      groups_[g].counters.bursts.inc();
      fn(guard, idx + start, end - start);
      start = end;
    }
    return;
  }
  for (unsigned start = 0; start < n;) {
    const uint32_t g = group_at(start);
    unsigned end = start + 1;
    while (end < n && group_at(end) == g) ++end;
    GroupGuard guard(*this, g);
    groups_[g].counters.bursts.inc();
    fn(guard, idx + start, end - start);
    start = end;
  }
}

}  // namespace ngstack::stack::pcb
