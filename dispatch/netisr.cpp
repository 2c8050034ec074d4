#include "dispatch/netisr.hpp"

#include <rte_pause.h>

#include <algorithm>
#include <cassert>
#include <mutex>
#include <thread>

#include "dispatch/counter.hpp"

namespace ngstack::dispatch {

const char* policy_name(Policy p) {
  switch (p) {
    case Policy::source: return "source";
    case Policy::flow: return "flow";
    case Policy::cpu: return "cpu";
  }
  return "?";
}

const char* mode_name(Mode m) {
  switch (m) {
    case Mode::direct: return "direct";
    case Mode::hybrid: return "hybrid";
    case Mode::deferred: return "deferred";
  }
  return "?";
}

std::optional<Policy> policy_from_name(std::string_view name) {
  for (Policy p : {Policy::source, Policy::flow, Policy::cpu})
    if (name == policy_name(p)) return p;
  return std::nullopt;
}

std::optional<Mode> mode_from_name(std::string_view name) {
  for (Mode m : {Mode::direct, Mode::hybrid, Mode::deferred})
    if (name == mode_name(m)) return m;
  return std::nullopt;
}

// Counters a worker keeps for one protocol; the *_to arrays are indexed by
// target worker so that every counter keeps a single writer (the source).
struct Netisr::Counters {
  Counter dispatched, hybrid, handled;
  std::array<Counter, kMaxWorkers> queued_to{}, qdrops_to{}, watermark_to{};
};

// Everything one worker owns. Handlers may dispatch again from inside a
// handler (ether -> ip), so inline batches use one buffer per nesting level.
struct alignas(kCacheLine) Netisr::Local {
  // Every handler run inline is a nesting level, direct ones included: an
  // acyclic chain of protocols nests at most kMaxProtocols deep, so reaching
  // the limit means a cycle. Only hybrid copies its batch into inline_buf
  // [depth]; direct hands the caller's array on, which no deeper level
  // writes (each level writes only its own inline_buf slot).
  static constexpr unsigned kMaxDepth = kMaxProtocols;
  // This worker's copy of its configuration: it changes only inside the
  // barrier (adopt()), and reconfigure() may then rewrite the shared slot.
  DispatchConfig cfg;
  uint64_t generation = 0;  // the generation whose barrier this worker has passed
  unsigned depth = 0;
  // Barrier state, read by the other workers and by reconfigure().
  std::atomic<uint64_t> arrived{0};  // this worker dispatches nothing new until it passes
  std::atomic<uint64_t> adopted{0};  // this worker's cfg is that generation's
  std::atomic<bool> online{false};
  // In-flight accounting (see nothing_in_flight()). `offered`: packets this
  // worker offered to a ring, counted before the ring publishes them.
  // `retired`: packets this worker handled from its rings, counted after the
  // handler, plus those a ring refused it; a release store, so that a reader
  // who sees it also sees everything the handlers offered downstream.
  Counter offered;
  std::atomic<uint64_t> retired{0};
  std::array<Counters, kMaxProtocols> c{};
  std::vector<std::array<rte_mbuf*, kMaxDispatchBurst>> scratch;  // per target
  std::vector<uint16_t> counts;                                   // per target
  std::array<std::array<rte_mbuf*, kMaxDispatchBurst>, kMaxDepth> inline_buf{};
  std::array<rte_mbuf*, kMaxDispatchBurst> drain_buf{};
};

namespace {
std::mutex g_control_mutex;  // serialises reconfigure()
// Readers of current_config() (stats, telemetry, control) copy a slot that a
// second reconfigure() could otherwise be overwriting; held only for the
// copy and the write, never while waiting for workers.
std::mutex g_slot_mutex;
}

Netisr::Netisr(unsigned workers, unsigned buckets, std::vector<uint8_t> toeplitz_key)
    : nworkers_(std::clamp(workers, 1u, kMaxWorkers)), nbuckets_(buckets), toeplitz_(toeplitz_key) {
  configs_[0].bucket_map = round_robin_map(nbuckets_, nworkers_);
  for (unsigned w = 0; w < nworkers_; ++w) {
    auto l = std::make_unique<Local>();
    l->cfg = configs_[0];
    l->scratch.resize(nworkers_);
    l->counts.assign(nworkers_, 0);
    local_.push_back(std::move(l));
  }
}

Netisr::~Netisr() = default;

std::vector<uint16_t> Netisr::round_robin_map(unsigned buckets, unsigned workers) {
  std::vector<uint16_t> m(buckets);
  for (unsigned b = 0; b < buckets; ++b) m[b] = static_cast<uint16_t>(b % std::max(1u, workers));
  return m;
}

Result<ProtoId> Netisr::register_protocol(const ProtocolSpec& spec) {
  if (nprotos_ == kMaxProtocols) return Error{"netisr: at most " + std::to_string(kMaxProtocols) + " protocols"};
  if (!spec.handler) return Error{"netisr: protocol " + spec.name + " has no handler"};
  if (find_protocol(spec.name) >= 0) return Error{"netisr: protocol " + spec.name + " is registered twice"};
  if (spec.policy == Policy::cpu && !spec.m2cpuid)
    return Error{"netisr: protocol " + spec.name + " has policy cpu but no m2cpuid"};
  if (spec.qlimit == 0) return Error{"netisr: protocol " + spec.name + ": qlimit must be at least 1"};
  const ProtoId p = static_cast<ProtoId>(nprotos_++);
  specs_[p] = spec;
  specs_[p].max_qlimit = std::max(spec.qlimit, spec.max_qlimit);
  configs_[0].protos[p] = ProtoSettings{spec.policy, spec.mode, spec.qlimit};
  configs_[1].protos[p] = configs_[0].protos[p];
  // Capacity for later raises of the limit; the limit itself is qlimit.
  for (unsigned i = 0; i < nworkers_ * nworkers_; ++i) {
    rings_.push_back(std::make_unique<SpscRing<rte_mbuf*>>(specs_[p].max_qlimit));
    rings_.back()->set_limit(spec.qlimit);
  }
  set_local_configs();
  return p;
}

// Set-up only (no worker runs, nothing is queued): the workers' copies
// follow the slot in use.
void Netisr::set_local_configs() {
  for (auto& l : local_) l->cfg = configs_[generation_.load(std::memory_order_relaxed) & 1];
}

int Netisr::find_protocol(const std::string& name) const {
  for (unsigned p = 0; p < nprotos_; ++p)
    if (specs_[p].name == name) return static_cast<int>(p);
  return -1;
}

Status Netisr::validate(const DispatchConfig& c) const {
  if (c.bucket_map.size() != nbuckets_)
    return Error{"bucket map has " + std::to_string(c.bucket_map.size()) + " entries, expected " +
                 std::to_string(nbuckets_)};
  for (auto w : c.bucket_map)
    if (w >= nworkers_) return Error{"bucket map names worker " + std::to_string(w) + " of " + std::to_string(nworkers_)};
  for (unsigned p = 0; p < nprotos_; ++p) {
    const auto& s = c.protos[p];
    if (s.qlimit == 0 || s.qlimit > specs_[p].max_qlimit)
      return Error{"protocol " + specs_[p].name + ": qlimit must be in [1, " + std::to_string(specs_[p].max_qlimit) +
                   "]"};
    if (s.policy == Policy::cpu && !specs_[p].m2cpuid)
      return Error{"protocol " + specs_[p].name + " has no m2cpuid for policy cpu"};
  }
  return Ok{};
}

Status Netisr::set_bucket_map(std::vector<uint16_t> map) {
  DispatchConfig c = configs_[0];
  c.bucket_map = std::move(map);
  if (auto st = validate(c); !st) return st;
  configs_[0].bucket_map = configs_[1].bucket_map = c.bucket_map;
  set_local_configs();
  return Ok{};
}

DispatchConfig Netisr::current_config() const {
  std::lock_guard lock(g_slot_mutex);
  return configs_[generation_.load(std::memory_order_acquire) & 1];
}

uint32_t Netisr::flow_of(const ProtocolSpec& spec, rte_mbuf* m, uint16_t port, uint16_t queue) const {
  if (m->ol_flags & RTE_MBUF_F_RX_RSS_HASH) return m->hash.rss;
  uint32_t flow;
  if (spec.m2flow && spec.m2flow(spec.flow_ctx, m, &flow)) {
    // Cache it, as a NIC would have, for later dispatch stages.
    m->hash.rss = flow;
    m->ol_flags |= RTE_MBUF_F_RX_RSS_HASH;
    return flow;
  }
  const uint8_t tuple[4] = {static_cast<uint8_t>(port >> 8), static_cast<uint8_t>(port),
                            static_cast<uint8_t>(queue >> 8), static_cast<uint8_t>(queue)};
  return toeplitz_.hash(tuple, 4);
}

void Netisr::retire(Local& L, uint64_t n) {
  L.retired.store(L.retired.load(std::memory_order_relaxed) + n, std::memory_order_release);
}

void Netisr::enqueue(unsigned w, ProtoId p, unsigned target, rte_mbuf** pkts, uint16_t n) {
  Local& L = *local_[w];
  Counters& c = L.c[p];
  // Offered before the ring publishes them: whoever sees them handled (retired)
  // also sees them offered.
  L.offered.add(n);
  uint32_t len = 0;
  const uint32_t taken = ring(p, w, target).enqueue(pkts, n, len);
  c.queued_to[target].add(taken);
  c.watermark_to[target].raise_to(len);
  if (taken < n) [[unlikely]] {
    rte_pktmbuf_free_bulk(pkts + taken, n - taken);
    c.qdrops_to[target].add(n - taken);
    retire(L, n - taken);
  }
}

void Netisr::dispatch(unsigned w, ProtoId p, uint16_t port, uint16_t queue, rte_mbuf** pkts, uint16_t n) {
  assert(w < nworkers_ && p < nprotos_);
  assert(n <= kMaxDispatchBurst && "scratch and inline buffers hold kMaxDispatchBurst packets");
  Local& L = *local_[w];
  const ProtoSettings& s = L.cfg.protos[p];
  const ProtocolSpec& spec = specs_[p];
  Counters& c = L.c[p];
  if (s.mode == Mode::direct) {
    assert(L.depth < Local::kMaxDepth && "handlers dispatch to each other in a cycle");
    ++L.depth;
    spec.handler(spec.ctx, w, port, pkts, n);
    --L.depth;
    c.dispatched.add(n);
    c.handled.add(n);
    return;
  }
  // Hybrid runs inline only while nothing of this protocol from this worker
  // waits in its own queue: otherwise the new packets would overtake it.
  // Past kMaxDepth (only a cycle of protocols gets there) it queues, which
  // keeps the order just as well.
  const bool inline_self = s.mode == Mode::hybrid && L.depth < Local::kMaxDepth && ring(p, w, w).empty();
  auto run_inline = [&](rte_mbuf** batch, uint16_t cnt) {
    assert(L.depth < Local::kMaxDepth);
    auto& buf = L.inline_buf[L.depth];
    std::copy(batch, batch + cnt, buf.begin());
    ++L.depth;
    spec.handler(spec.ctx, w, port, buf.data(), cnt);
    --L.depth;
    c.hybrid.add(cnt);
    c.handled.add(cnt);
  };
  if (s.policy == Policy::source) {
    if (inline_self)
      run_inline(pkts, n);
    else
      enqueue(w, p, w, pkts, n);
    return;
  }
  // Sort the burst by target, keeping arrival order within each target.
  const uint32_t bucket_mask = nbuckets_ - 1;
  const uint16_t* map = L.cfg.bucket_map.data();
  for (uint16_t i = 0; i < n; ++i) {
    unsigned t;
    if (s.policy == Policy::flow)
      t = map[flow_of(spec, pkts[i], port, queue) & bucket_mask];
    else
      t = spec.m2cpuid(spec.flow_ctx, pkts[i], w) % nworkers_;
    L.scratch[t][L.counts[t]++] = pkts[i];
  }
  // Queue to the others first: an inline handler may dispatch again and reuse
  // the scratch arrays.
  for (unsigned t = 0; t < nworkers_; ++t) {
    if (L.counts[t] == 0 || (t == w && inline_self)) continue;
    enqueue(w, p, t, L.scratch[t].data(), L.counts[t]);
    L.counts[t] = 0;
  }
  if (L.counts[w] != 0) {
    const uint16_t cnt = L.counts[w];
    L.counts[w] = 0;
    run_inline(L.scratch[w].data(), cnt);
  }
}

unsigned Netisr::drain(unsigned w, uint16_t batch) {
  Local& L = *local_[w];
  assert(L.depth == 0 && "drain() from inside a handler would overwrite drain_buf");
  const uint16_t max = std::min<uint16_t>(batch, kMaxDispatchBurst);
  unsigned total = 0;
  for (ProtoId p = 0; p < nprotos_; ++p) {
    const ProtocolSpec& spec = specs_[p];
    for (unsigned s = 0; s < nworkers_; ++s) {
      auto& r = ring(p, s, w);
      const uint32_t n = r.peek(L.drain_buf.data(), max);
      if (n == 0) continue;
      spec.handler(spec.ctx, w, kMixedPorts, L.drain_buf.data(), static_cast<uint16_t>(n));
      assert(L.depth == 0);
      r.release(n);  // only now may the source count these as handled
      L.c[p].handled.add(n);
      retire(L, n);  // after the handler's own dispatches: see nothing_in_flight()
      total += n;
    }
  }
  return total;
}

// True when, at one moment during the call, no ring held a packet and no
// handler was running on one it had drained. Every retired count is read
// (acquire) before any offered count. A packet is counted offered before its
// ring publishes it and retired after its handler, whose own dispatches are
// counted offered before that release store: so every packet whose retire we
// read, and all its handler queued, is among the offered packets we read, and
// equal sums mean every packet we saw offered was retired. One we did not see
// offered must come from rx, or from the handler of a packet we saw offered
// but not retired; the barrier asks only once no online worker dispatches rx.
bool Netisr::nothing_in_flight() const {
  uint64_t retired = 0, offered = 0;
  for (const auto& l : local_) retired += l->retired.load(std::memory_order_acquire);
  for (const auto& l : local_) offered += l->offered.get();
  assert(offered >= retired && "a packet retired before it was offered");
  return offered == retired;
}

// Every online worker other than `self` has reached `g` at `stage` (arrived
// or adopted); `self` is taking part whether or not it is marked online.
bool Netisr::all_online_reached(unsigned self, std::atomic<uint64_t> Local::*stage, uint64_t g) const {
  for (unsigned v = 0; v < nworkers_; ++v) {
    if (v == self) continue;
    const Local& l = *local_[v];
    // seq_cst with set_online() and quiesced_: a worker that comes online
    // while we decide either is seen here, or sees the barrier passed.
    if (l.online.load(std::memory_order_seq_cst) && (l.*stage).load(std::memory_order_seq_cst) < g) return false;
  }
  return true;
}

bool Netisr::sync(unsigned w, const std::atomic<bool>& stop) {
  assert(local_[w]->depth == 0 && "sync() from inside a handler");
  if (generation_.load(std::memory_order_acquire) == local_[w]->generation) [[likely]]
    return true;
  return adopt(w, stop);
}

// The barrier of the ordering contract: arrive, quiesce, adopt.
bool Netisr::adopt(unsigned w, const std::atomic<bool>& stop) {
  Local& L = *local_[w];
  const uint64_t g = generation_.load(std::memory_order_seq_cst);
  // Arrive: from here this worker dispatches nothing from rx until it passes.
  if (L.arrived.load(std::memory_order_relaxed) < g) L.arrived.store(g, std::memory_order_seq_cst);
  // Quiesce: keep handling what was queued to us (two workers waiting on each
  // other's rings both make progress) until every online worker has arrived
  // and nothing is in flight. Checked in that order: once all have arrived no
  // one adds rx traffic, so an empty moment after that stays empty.
  while (quiesced_.load(std::memory_order_seq_cst) < g) {
    if (all_online_reached(w, &Local::arrived, g) && nothing_in_flight()) {
      uint64_t q = quiesced_.load(std::memory_order_seq_cst);
      while (q < g && !quiesced_.compare_exchange_weak(q, g, std::memory_order_seq_cst)) {
      }
      break;
    }
    const unsigned handled = drain(w, 64);
    if (stop.load(std::memory_order_relaxed)) return false;
    if (handled == 0) rte_pause();
  }
  // Adopt. A worker that sees the barrier passed drains no more under its old
  // configuration: nothing is left for it, and what others send it from now
  // on belongs to the new one.
  if (L.adopted.load(std::memory_order_relaxed) < g) {
    // Safe to read the slot: reconfigure() rewrites it only after every
    // online worker (we are, or we dispatch nothing) has adopted g + 1.
    L.cfg = configs_[g & 1];
    for (ProtoId p = 0; p < nprotos_; ++p)
      for (unsigned d = 0; d < nworkers_; ++d) ring(p, w, d).set_limit(L.cfg.protos[p].qlimit);
    L.adopted.store(g, std::memory_order_seq_cst);
  }
  // Depart only when every online worker has adopted: a worker still on the
  // old configuration must not handle traffic dispatched under the new one.
  // Nothing to drain meanwhile: nothing is in flight until someone departs.
  while (!all_online_reached(w, &Local::adopted, g)) {
    if (stop.load(std::memory_order_relaxed)) return false;
    rte_pause();
  }
  L.generation = g;
  return true;
}

void Netisr::set_online(unsigned w, bool online) {
  // No lock: reconfigure() holds the control mutex while it waits for online
  // workers, and a worker going offline must not wait for it. A worker that
  // comes online adopts what changed while it was away through sync(),
  // behind the same barrier as any other change (it has dispatched nothing
  // since it went offline). seq_cst: see all_online_reached().
  local_[w]->online.store(online, std::memory_order_seq_cst);
}

Status Netisr::reconfigure(const std::function<void(DispatchConfig&)>& edit, std::chrono::milliseconds timeout) {
  std::lock_guard lock(g_control_mutex);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto wait_adopted = [&](uint64_t g) -> Status {
    for (unsigned w = 0; w < nworkers_; ++w) {
      while (local_[w]->online.load(std::memory_order_seq_cst) &&
             local_[w]->adopted.load(std::memory_order_acquire) < g) {
        if (std::chrono::steady_clock::now() > deadline)
          return Error{"netisr: worker " + std::to_string(w) + " did not adopt configuration " + std::to_string(g) +
                       " in time"};
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      }
    }
    return Ok{};
  };
  const uint64_t g = generation_.load(std::memory_order_relaxed);
  // The slot we are about to write may still be in use by a worker that has
  // not adopted the current generation yet.
  if (auto st = wait_adopted(g); !st) return st;
  DispatchConfig next = configs_[g & 1];
  edit(next);
  if (auto st = validate(next); !st) return st;
  {
    std::lock_guard slot(g_slot_mutex);
    configs_[(g + 1) & 1] = std::move(next);
    generation_.store(g + 1, std::memory_order_seq_cst);
  }
  return wait_adopted(g + 1);
}

// Each worker's rings are handled with that worker's configuration as it
// stands: it has used no other since the last quiescent point, so a chain
// continues exactly as it would have on the worker (see the contract).
unsigned Netisr::drain_stopped(uint16_t batch) {
  unsigned total = 0;
  for (;;) {
    unsigned pass = 0;
    for (unsigned w = 0; w < nworkers_; ++w) pass += drain(w, batch);
    if (pass == 0) return total;
    total += pass;
  }
}

WorkstreamStats Netisr::stats(unsigned w, ProtoId p) const {
  WorkstreamStats s;
  const Counters& c = local_[w]->c[p];
  s.dispatched = c.dispatched.get();
  s.hybrid = c.hybrid.get();
  s.handled = c.handled.get();
  for (unsigned src = 0; src < nworkers_; ++src) {
    const Counters& sc = local_[src]->c[p];
    s.queued += sc.queued_to[w].get();
    s.qdrops += sc.qdrops_to[w].get();
    s.watermark = std::max(s.watermark, sc.watermark_to[w].get());
    s.length += ring(p, src, w).size();
  }
  return s;
}

}  // namespace ngstack::dispatch
