#include "stack/pcb/pcb.hpp"

#include <rte_common.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace ngstack::stack::pcb {

const char* lock_type_name(LockType t) {
  switch (t) {
    case LockType::spin: return "spin";
    case LockType::queuing: return "queuing";
    case LockType::speculative: return "speculative";
    case LockType::rte_spinlock: return "rte_spinlock";
  }
  return "?";
}

std::optional<LockType> lock_type_from_name(std::string_view n) {
  for (LockType t : {LockType::spin, LockType::queuing, LockType::speculative, LockType::rte_spinlock})
    if (n == lock_type_name(t)) return t;
  return std::nullopt;
}

const char* locking_name(Locking l) { return l == Locking::giant ? "giant" : "group"; }

std::optional<Locking> locking_from_name(std::string_view n) {
  if (n == "giant") return Locking::giant;
  if (n == "group") return Locking::group;
  return std::nullopt;
}

// --- ListenTable -------------------------------------------------------------

namespace {
bool entry_less(const ListenEntry& a, const ListenEntry& b) {
  return a.lport != b.lport ? a.lport < b.lport : a.laddr < b.laddr;
}
}  // namespace

ListenTable::ListenTable(unsigned readers, LockType type) : current_(new Snapshot), readers_(std::max(1u, readers)) {
  const std::size_t size = rte_rcu_qsbr_get_memsize(readers_);
  qsbr_ = static_cast<rte_rcu_qsbr*>(std::aligned_alloc(RTE_CACHE_LINE_SIZE, RTE_ALIGN_CEIL(size, RTE_CACHE_LINE_SIZE)));
  rte_rcu_qsbr_init(qsbr_, readers_);
  for (unsigned r = 0; r < readers_; ++r) rte_rcu_qsbr_thread_register(qsbr_, r);
  lock_.init(type, witness::pcb_classes().listen);
}

ListenTable::~ListenTable() {
  delete current_.load(std::memory_order_relaxed);
  std::free(qsbr_);
}

std::optional<ListenEntry> ListenTable::lookup(uint32_t laddr, uint16_t lport) const {
  const Snapshot* s = current_.load(std::memory_order_acquire);
  const auto& v = s->entries;
  auto it = std::lower_bound(v.begin(), v.end(), ListenEntry{0, lport, 0}, entry_less);
  // The first entry of this port has the lowest address: INADDR_ANY if bound.
  std::optional<ListenEntry> any;
  for (; it != v.end() && it->lport == lport; ++it) {
    if (it->laddr == laddr) return *it;
    if (it->laddr == 0) any = *it;
  }
  return any;
}

void ListenTable::reader_online(unsigned reader) { rte_rcu_qsbr_thread_online(qsbr_, reader); }

void ListenTable::reader_offline(unsigned reader) {
  tsan_release(qsbr_);  // pairs with the acquire after the grace period
  rte_rcu_qsbr_thread_offline(qsbr_, reader);
}

void ListenTable::quiescent(unsigned reader) {
  tsan_release(qsbr_);
  rte_rcu_qsbr_quiescent(qsbr_, reader);
}

bool ListenTable::add(const ListenEntry& e, unsigned self) {
  Snapshot* next = nullptr;
  {
    LockHold h(lock_);
    const Snapshot* cur = current_.load(std::memory_order_relaxed);
    for (const auto& x : cur->entries)
      if (x.laddr == e.laddr && x.lport == e.lport) return false;
    next = new Snapshot(*cur);
    next->entries.insert(std::upper_bound(next->entries.begin(), next->entries.end(), e, entry_less), e);
    cur = current_.exchange(next, std::memory_order_acq_rel);
    next = const_cast<Snapshot*>(cur);  // now the old one, to reclaim
  }
  publish_and_reclaim(next, self);
  return true;
}

bool ListenTable::remove(uint32_t laddr, uint16_t lport, unsigned self) {
  Snapshot* old = nullptr;
  {
    LockHold h(lock_);
    const Snapshot* cur = current_.load(std::memory_order_relaxed);
    auto next = std::make_unique<Snapshot>(*cur);
    auto it = std::find_if(next->entries.begin(), next->entries.end(),
                           [&](const ListenEntry& x) { return x.laddr == laddr && x.lport == lport; });
    if (it == next->entries.end()) return false;
    next->entries.erase(it);
    old = const_cast<Snapshot*>(current_.exchange(next.release(), std::memory_order_acq_rel));
  }
  publish_and_reclaim(old, self);
  return true;
}

// Outside the writer lock: the old snapshot goes once no reader can hold it.
void ListenTable::publish_and_reclaim(Snapshot* old, unsigned self) {
  rte_rcu_qsbr_synchronize(qsbr_, self);
  tsan_acquire(qsbr_);
  delete old;
}

unsigned ListenTable::size() const {
  return static_cast<unsigned>(current_.load(std::memory_order_acquire)->entries.size());
}

// --- PcbTable ----------------------------------------------------------------

Result<std::unique_ptr<PcbTable>> PcbTable::create(const std::string& name, const PcbParams& p) {
  auto pow2 = [](unsigned v) { return v != 0 && (v & (v - 1)) == 0; };
  if (!pow2(p.groups)) return Error{"pcb " + name + ": groups must be a power of two, got " + std::to_string(p.groups)};
  if (!pow2(p.buckets))
    return Error{"pcb " + name + ": buckets must be a power of two, got " + std::to_string(p.buckets)};
  if (p.groups > 65536) return Error{"pcb " + name + ": at most 65536 groups"};
  if (p.workers == 0 || p.workers > 65535) return Error{"pcb " + name + ": workers must be 1..65535"};
  if (p.rss_key.size() < 16) return Error{"pcb " + name + ": the RSS key needs at least 16 bytes for a 4-tuple"};
  if (p.capacity == 0) return Error{"pcb " + name + ": capacity must be at least 1"};
  if (!p.bucket_map.empty()) {
    if (p.bucket_map.size() != p.buckets)
      return Error{"pcb " + name + ": the bucket map has " + std::to_string(p.bucket_map.size()) +
                   " entries, one per bucket (" + std::to_string(p.buckets) + ") is needed"};
    for (uint16_t w : p.bucket_map)
      if (w >= p.workers) return Error{"pcb " + name + ": the bucket map names worker " + std::to_string(w)};
  }
  std::unique_ptr<PcbTable> t(new PcbTable);
  t->name_ = name;
  t->ngroups_ = p.groups;
  t->nbuckets_ = p.buckets;
  t->workers_ = p.workers;
  t->per_group_ = (p.capacity + p.groups - 1) / p.groups;
  t->locking_ = p.locking;
  t->lock_type_ = p.lock_type;
  t->seed_ = p.seed;
  t->bucket_map_ = p.bucket_map;
  if (t->bucket_map_.empty())
    for (unsigned b = 0; b < p.buckets; ++b) t->bucket_map_.push_back(static_cast<uint16_t>(b % p.workers));
  t->toeplitz_ = std::make_unique<dispatch::ToeplitzHash>(p.rss_key);
  const auto& cls = witness::pcb_classes();
  t->giant_.init(p.lock_type, cls.giant);

  uint32_t heads = 1;
  while (heads < t->per_group_) heads <<= 1;
  t->heads_.assign(static_cast<std::size_t>(heads) * p.groups, kNil);
  t->groups_ = std::make_unique<Group[]>(p.groups);
  const std::size_t npcbs = static_cast<std::size_t>(t->per_group_) * p.groups;
  t->pcbs_ = std::make_unique<Pcb[]>(npcbs);
  for (uint32_t g = 0; g < p.groups; ++g) {
    Group& G = t->groups_[g];
    G.lock.init(p.lock_type, cls.group);
    G.mask = heads - 1;
    G.heads = t->heads_.data() + static_cast<std::size_t>(g) * heads;
    const uint32_t first = g * t->per_group_;
    for (uint32_t i = 0; i < t->per_group_; ++i) {
      Pcb& pcb = t->pcbs_[first + i];
      pcb.group = g;
      pcb.lock.init(p.lock_type, cls.conn);
      pcb.next = i + 1 < t->per_group_ ? first + i + 1 : kNil;
    }
    G.free_head = first;
  }
  t->cursors_ = std::make_unique<PortCursor[]>(p.workers);
  t->listen_ = std::make_unique<ListenTable>(p.workers, p.lock_type);
  return t;
}

PcbTable::~PcbTable() = default;

uint32_t PcbTable::rss_hash(const FourTuple& t) const {
  // Foreign as source, network byte order: src addr, dst addr, src port, dst port.
  const uint8_t in[12] = {
      static_cast<uint8_t>(t.faddr >> 24), static_cast<uint8_t>(t.faddr >> 16), static_cast<uint8_t>(t.faddr >> 8),
      static_cast<uint8_t>(t.faddr),       static_cast<uint8_t>(t.laddr >> 24), static_cast<uint8_t>(t.laddr >> 16),
      static_cast<uint8_t>(t.laddr >> 8),  static_cast<uint8_t>(t.laddr),       static_cast<uint8_t>(t.fport >> 8),
      static_cast<uint8_t>(t.fport),       static_cast<uint8_t>(t.lport >> 8),  static_cast<uint8_t>(t.lport),
  };
  return toeplitz_->hash(in, sizeof in);
}

namespace {
// MurmurHash3's 64-bit finaliser: every input bit affects every output bit.
inline uint64_t fmix64(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb93fe53ec1a9ULL;
  h ^= h >> 33;
  return h;
}
}  // namespace

uint64_t PcbTable::tuple_hash(const FourTuple& t) const {
  const uint64_t addrs = (static_cast<uint64_t>(t.laddr) << 32) | t.faddr;
  const uint64_t ports = (static_cast<uint64_t>(t.lport) << 16) | t.fport;
  return fmix64(fmix64(addrs ^ seed_) ^ ports);
}

Pcb* PcbTable::lookup(GroupGuard& g, const FourTuple& t) {
  check_guard(g, t);
  Group& G = groups_[g.group()];
  G.counters.lookups.inc();
  for (uint32_t i = G.heads[tuple_hash(t) & G.mask]; i != kNil; i = pcbs_[i].next) {
    if (pcbs_[i].tuple == t) {
      G.counters.hits.inc();
      return &pcbs_[i];
    }
  }
  return nullptr;
}

PcbTable::Match PcbTable::lookup_or_listen(GroupGuard& g, const FourTuple& t) {
  Match m;
  m.pcb = lookup(g, t);
  if (m.pcb) return m;
  Group& G = groups_[g.group()];
  m.listener = listen_->lookup(t.laddr, t.lport);
  if (m.listener)
    G.counters.listen_hits.inc();
  else
    G.counters.misses.inc();
  return m;
}

Pcb* PcbTable::insert(GroupGuard& g, const FourTuple& t, uint64_t cookie, InsertError* err) {
  check_guard(g, t);
  Group& G = groups_[g.group()];
  uint32_t& head = G.heads[tuple_hash(t) & G.mask];
  for (uint32_t i = head; i != kNil; i = pcbs_[i].next) {
    if (pcbs_[i].tuple == t) {
      G.counters.exists.inc();
      if (err) *err = InsertError::exists;
      return nullptr;
    }
  }
  if (G.free_head == kNil) {
    G.counters.full.inc();
    if (err) *err = InsertError::full;
    return nullptr;
  }
  const uint32_t i = G.free_head;
  Pcb& p = pcbs_[i];
  G.free_head = p.next;
  p.tuple = t;
  p.in_use = true;
  p.state = 0;
  p.cookie = cookie;
  p.so = nullptr;
  p.next = head;
  head = i;
  G.live.store(G.live.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  G.counters.inserts.inc();
  if (err) *err = InsertError::none;
  return &p;
}

void PcbTable::remove(GroupGuard& g, Pcb* p) {
  check_guard(g, p->tuple);
  Group& G = groups_[g.group()];
  const auto idx = static_cast<uint32_t>(p - pcbs_.get());
  for (uint32_t* link = &G.heads[tuple_hash(p->tuple) & G.mask]; *link != kNil; link = &pcbs_[*link].next) {
    if (*link == idx) {
      *link = p->next;
      p->in_use = false;
      p->next = G.free_head;
      G.free_head = idx;
      G.live.store(G.live.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
      G.counters.removes.inc();
      return;
    }
  }
  assert(!"PcbTable::remove: the PCB is not in its group");
}

std::optional<FourTuple> PcbTable::connect(unsigned worker, uint32_t laddr, uint32_t faddr, uint16_t fport,
                                           uint64_t cookie) {
  PortCursor& c = cursors_[worker];
  constexpr unsigned kSpan = kEphemeralLast - kEphemeralFirst + 1;
  for (unsigned i = 0; i < kSpan; ++i) {
    const uint16_t port = c.next;
    c.next = port == kEphemeralLast ? kEphemeralFirst : static_cast<uint16_t>(port + 1);
    const FourTuple t{laddr, faddr, port, fport};
    if (owner_of(t) != worker) continue;
    if (listen_->lookup(laddr, port)) continue;  // bound by a socket
    GroupGuard g = lock_group(group_of(t));
    if (insert(g, t, cookie)) return t;
  }
  return std::nullopt;
}

LockProfile PcbTable::conn_profile() const {
  LockProfile p;
  const std::size_t n = static_cast<std::size_t>(per_group_) * ngroups_;
  for (std::size_t i = 0; i < n; ++i) p += pcbs_[i].lock.profile();
  return p;
}

LockProfile PcbTable::class_profile(witness::ClassId c) const {
  const auto& cls = witness::pcb_classes();
  if (c == cls.listen) return listen_profile();
  if (c == cls.giant) return giant_profile();
  if (c == cls.conn) return conn_profile();
  LockProfile p;
  if (c == cls.group)
    for (uint32_t g = 0; g < ngroups_; ++g) p += group_profile(g);
  return p;
}

uint64_t PcbTable::lookups() const {
  uint64_t n = 0;
  for (uint32_t g = 0; g < ngroups_; ++g) n += groups_[g].counters.lookups.get();
  return n;
}

uint64_t PcbTable::burst_acquisitions() const {
  if (locking_ == Locking::giant) return giant_bursts_.get();
  uint64_t n = 0;
  for (uint32_t g = 0; g < ngroups_; ++g) n += groups_[g].counters.bursts.get();
  return n;
}

unsigned PcbTable::live() const {
  unsigned n = 0;
  for (uint32_t g = 0; g < ngroups_; ++g) n += live(g);
  return n;
}

}  // namespace ngstack::stack::pcb
