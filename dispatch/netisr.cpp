#include "dispatch/netisr.hpp"

#include <rte_pause.h>

#include <algorithm>
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
  static constexpr unsigned kMaxDepth = 4;
  uint64_t generation = 0;
  const DispatchConfig* cfg = nullptr;
  unsigned depth = 0;
  std::atomic<uint64_t> adopted{0};
  std::atomic<bool> online{false};
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
  for (unsigned w = 0; w < nworkers_; ++w) {
    auto l = std::make_unique<Local>();
    l->cfg = &configs_[0];
    l->scratch.resize(nworkers_);
    l->counts.assign(nworkers_, 0);
    local_.push_back(std::move(l));
  }
  configs_[0].bucket_map = round_robin_map(nbuckets_, nworkers_);
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
  return p;
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

void Netisr::enqueue(unsigned w, ProtoId p, unsigned target, rte_mbuf** pkts, uint16_t n) {
  Counters& c = local_[w]->c[p];
  uint32_t len = 0;
  const uint32_t taken = ring(p, w, target).enqueue(pkts, n, len);
  c.queued_to[target].add(taken);
  c.watermark_to[target].raise_to(len);
  if (taken < n) [[unlikely]] {
    rte_pktmbuf_free_bulk(pkts + taken, n - taken);
    c.qdrops_to[target].add(n - taken);
  }
}

bool Netisr::is_direct(unsigned w, ProtoId p) const { return local_[w]->cfg->protos[p].mode == Mode::direct; }

void Netisr::counted_direct(unsigned w, ProtoId p, uint16_t n) {
  Counters& c = local_[w]->c[p];
  c.dispatched.add(n);
  c.handled.add(n);
}

void Netisr::dispatch(unsigned w, ProtoId p, uint16_t port, uint16_t queue, rte_mbuf** pkts, uint16_t n) {
  Local& L = *local_[w];
  const ProtoSettings& s = L.cfg->protos[p];
  const ProtocolSpec& spec = specs_[p];
  Counters& c = L.c[p];
  if (s.mode == Mode::direct) {
    spec.handler(spec.ctx, w, port, pkts, n);
    counted_direct(w, p, n);
    return;
  }
  // Hybrid runs inline only while nothing of this protocol from this worker
  // waits in its own queue: otherwise the new packets would overtake it.
  const bool inline_self = s.mode == Mode::hybrid && ring(p, w, w).empty();
  auto run_inline = [&](rte_mbuf** batch, uint16_t cnt) {
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
  const uint16_t* map = L.cfg->bucket_map.data();
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
  const uint16_t max = std::min<uint16_t>(batch, kMaxDispatchBurst);
  unsigned total = 0;
  for (ProtoId p = 0; p < nprotos_; ++p) {
    const ProtocolSpec& spec = specs_[p];
    for (unsigned s = 0; s < nworkers_; ++s) {
      auto& r = ring(p, s, w);
      const uint32_t n = r.peek(L.drain_buf.data(), max);
      if (n == 0) continue;
      spec.handler(spec.ctx, w, kMixedPorts, L.drain_buf.data(), static_cast<uint16_t>(n));
      r.release(n);  // only now may the source count these as handled
      L.c[p].handled.add(n);
      total += n;
    }
  }
  return total;
}

bool Netisr::outgoing_empty(unsigned w) const {
  for (ProtoId p = 0; p < nprotos_; ++p)
    for (unsigned d = 0; d < nworkers_; ++d)
      if (!ring(p, w, d).empty()) return false;
  return true;
}

bool Netisr::sync(unsigned w, const std::atomic<bool>& stop) {
  if (generation_.load(std::memory_order_acquire) == local_[w]->generation) [[likely]]
    return true;
  return adopt(w, stop);
}

bool Netisr::adopt(unsigned w, const std::atomic<bool>& stop) {
  Local& L = *local_[w];
  const uint64_t g = generation_.load(std::memory_order_acquire);
  // Everything queued under the old configuration must be handled first; keep
  // handling what others queued for us so that two workers waiting on each
  // other both make progress.
  while (!outgoing_empty(w)) {
    if (stop.load(std::memory_order_relaxed)) return false;
    if (drain(w, 64) == 0) rte_pause();
  }
  L.generation = g;
  L.cfg = &configs_[g & 1];
  for (ProtoId p = 0; p < nprotos_; ++p)
    for (unsigned d = 0; d < nworkers_; ++d) ring(p, w, d).set_limit(L.cfg->protos[p].qlimit);
  L.adopted.store(g, std::memory_order_release);
  return true;
}

void Netisr::set_online(unsigned w, bool online) {
  // No lock: reconfigure() holds the control mutex while it waits for online
  // workers, and a worker going offline must not wait for it. A worker that
  // comes online adopts what changed while it was away through sync(),
  // behind the same barrier as any other change; it reads a configuration
  // slot only while online, and reconfigure() never writes the slot an online
  // worker may still read.
  local_[w]->online.store(online, std::memory_order_release);
}

Status Netisr::reconfigure(const std::function<void(DispatchConfig&)>& edit, std::chrono::milliseconds timeout) {
  std::lock_guard lock(g_control_mutex);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto wait_adopted = [&](uint64_t g) -> Status {
    for (unsigned w = 0; w < nworkers_; ++w) {
      while (local_[w]->online.load(std::memory_order_acquire) &&
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
    generation_.store(g + 1, std::memory_order_release);
  }
  return wait_adopted(g + 1);
}

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
