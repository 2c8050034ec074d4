// netisr: the packet dispatcher between poll-mode workers.
//
// Model (after FreeBSD's sys/net/netisr.c and Watson's netisr2 work, rebuilt
// for poll-mode user space). Protocols register a handler over a burst, a
// policy, a dispatch mode and a queue limit. A worker that received a burst
// calls dispatch(); the policy picks the *target* worker of each packet:
//
//   source  the receiving worker itself;
//   flow    flow id -> RSS bucket (flow & (buckets-1)) -> worker, through a
//           bucket map shaped like a NIC's RETA. The flow id is the NIC's RSS
//           hash when the mbuf has one, else the protocol's m2flow, else a
//           Toeplitz hash of (ingress port, rx queue);
//   cpu     the protocol's m2cpuid picks the worker.
//
// The mode decides where the handler runs:
//
//   direct    inline on the receiving worker, whatever the target (ordering
//             is then per source, as the NIC gave it);
//   hybrid    inline if the target is this worker and nothing of this
//             protocol from this worker is still queued for itself; else
//             queued to the target;
//   deferred  always queued to the target, itself included.
//
// Work queues: one bounded SPSC ring per (protocol, source, target), drained
// by the target in bounded batches every loop iteration (see drain()). A full
// ring drops the packet and counts it as a qdrop of (protocol, target).
//
// Ordering contract: packets of one flow from one source are handled in the
// order the source dispatched them, in every mode and policy, at every stage
// of a chain of protocols (a handler of ether dispatching to ip, which
// dispatches to tcp), also across a reconfiguration.
//
// Within one configuration this holds stage by stage: a flow has one target;
// every path from a source to a target is one FIFO ring; hybrid runs inline
// only when the worker's own ring of that protocol is empty. So the worker
// that handles stage k of a flow handles it in dispatch order, dispatches
// stage k+1 in that order, to one target again.
//
// Across a reconfiguration (policy, mode, qlimit or bucket map) a worker's own
// outgoing rings being empty is not enough: what it queued for ether may have
// been handled by a target that queued it on for ip, and once adopted the
// worker could dispatch ip for the same flow itself, overtaking that backlog.
// The rule is a global barrier that every online worker passes inside sync():
//
//   arrive   the worker sees the new generation and dispatches nothing new
//            (sync() runs before rx); it keeps draining its own rings;
//   quiesce  once every online worker has arrived and nothing is in flight
//            anywhere (every packet that entered a ring, at any stage, has been
//            handled, and a handler's own dispatches are done before its slot
//            is released), the first worker to see it marks the generation
//            quiescent. With no rx dispatch and nothing queued, it stays so;
//   adopt    each worker then copies the new configuration and waits, without
//            draining, until every online worker has adopted it; only then it
//            returns to rx. No worker is still on the old configuration when
//            traffic of the new one reaches it.
//
// So every worker uses one configuration from one quiescent point to the next,
// and no packet crosses a quiescent point: order within a configuration plus
// emptiness between two gives the contract end to end, for any depth of chain.
// The price is that a reconfiguration pauses rx on every worker until the
// rings have drained; reconfigurations are rare.
//
// In flight = packets offered to rings minus packets handled from them or
// refused (qdrops). Each worker counts its own, as producer and as consumer;
// the barrier reads every worker's handled count before every offered count,
// so equal sums mean that at one moment all rings were empty and no handler
// held a drained packet.
//
// Offline workers (set_online(w, false)) take no part, but packets queued to
// one are in flight: the barrier waits until it runs again (a worker coming
// online calls sync() before it dispatches) or the workers stop, the online
// workers draining meanwhile; reconfigure() reports the timeout. After a stop,
// drain_stopped() handles what is left with each worker's configuration as
// it stands, the only one that worker used since the last quiescent point.
//
// Threads: dispatch(), drain() and sync() are called by worker w for itself
// only, sync() at the top of each loop iteration, before rx, and never from a
// handler. A worker calls set_online(w, true) and then sync() before its first
// dispatch. reconfigure() and the stats readers run on a control thread.
// drain_stopped() runs after all workers have stopped.
#pragma once

#include <rte_mbuf.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "conf/result.hpp"
#include "dispatch/spsc_ring.hpp"
#include "dispatch/toeplitz.hpp"

namespace ngstack::dispatch {

enum class Policy : uint8_t { source, flow, cpu };
enum class Mode : uint8_t { direct, hybrid, deferred };
const char* policy_name(Policy p);
const char* mode_name(Mode m);
// The inverse of policy_name / mode_name; nullopt for an unknown name.
std::optional<Policy> policy_from_name(std::string_view name);
std::optional<Mode> mode_from_name(std::string_view name);

// `port` is the ingress port of every packet in the batch (a burst from one rx
// queue, handled inline), or kMixedPorts (a batch drained from work queues):
// handlers then read mbuf->port per packet.
inline constexpr uint16_t kMixedPorts = UINT16_MAX;
using HandlerFn = void (*)(void* ctx, unsigned worker, uint16_t port, rte_mbuf** pkts, uint16_t n);
// Computes a flow id for a packet that has none; false if it cannot.
using M2FlowFn = bool (*)(const void* ctx, const rte_mbuf* m, uint32_t* flow_id);
// Picks the target worker (policy cpu).
using M2CpuFn = unsigned (*)(const void* ctx, const rte_mbuf* m, unsigned source_worker);

struct ProtocolSpec {
  std::string name;
  HandlerFn handler = nullptr;
  void* ctx = nullptr;
  Policy policy = Policy::flow;
  Mode mode = Mode::direct;
  uint32_t qlimit = 1024;
  M2FlowFn m2flow = nullptr;
  M2CpuFn m2cpuid = nullptr;
  const void* flow_ctx = nullptr;  // passed to m2flow and m2cpuid
  uint32_t max_qlimit = 0;  // ring capacity for later qlimit raises; 0: qlimit
};

using ProtoId = uint8_t;
inline constexpr unsigned kMaxProtocols = 8;
inline constexpr unsigned kMaxWorkers = 64;
inline constexpr uint16_t kMaxDispatchBurst = 512;

// What may change while traffic flows.
struct ProtoSettings {
  Policy policy = Policy::flow;
  Mode mode = Mode::direct;
  uint32_t qlimit = 1024;
};

struct DispatchConfig {
  std::array<ProtoSettings, kMaxProtocols> protos{};
  std::vector<uint16_t> bucket_map;  // bucket -> worker index
};

// Per (worker, protocol), as netstat -Q shows a workstream.
struct WorkstreamStats {
  uint64_t dispatched = 0;   // handled inline in direct mode
  uint64_t hybrid = 0;       // handled inline in hybrid mode
  uint64_t queued = 0;       // queued to this worker (by any source)
  uint64_t handled = 0;      // handled by this worker (inline and from queues)
  uint64_t qdrops = 0;       // dropped because this worker's queue was full
  uint64_t length = 0;       // packets queued for this worker now
  uint64_t watermark = 0;    // the longest any of its queues has been
};

class Netisr {
 public:
  // `toeplitz_key` hashes (port, queue) for packets without a flow id.
  Netisr(unsigned workers, unsigned buckets, std::vector<uint8_t> toeplitz_key);
  ~Netisr();
  Netisr(const Netisr&) = delete;
  Netisr& operator=(const Netisr&) = delete;

  // Set-up (before workers run).
  Result<ProtoId> register_protocol(const ProtocolSpec& spec);
  Status set_bucket_map(std::vector<uint16_t> map);
  static std::vector<uint16_t> round_robin_map(unsigned buckets, unsigned workers);

  unsigned workers() const { return nworkers_; }
  unsigned buckets() const { return nbuckets_; }
  unsigned protocols() const { return nprotos_; }
  const ProtocolSpec& protocol(ProtoId p) const { return specs_[p]; }
  // The Toeplitz hash built from the key given at construction (the ports'
  // key): protocols' m2flow functions may share it as their flow_ctx.
  const ToeplitzHash& flow_hash() const { return toeplitz_; }
  int find_protocol(const std::string& name) const;
  DispatchConfig current_config() const;

  // --- data path, worker w only -------------------------------------------
  // Dispatch a burst received on (port, queue) by worker w.
  void dispatch(unsigned w, ProtoId p, uint16_t port, uint16_t queue, rte_mbuf** pkts, uint16_t n);
  // Handle up to `batch` packets from each ring queued for w. Returns packets handled.
  unsigned drain(unsigned w, uint16_t batch);
  // Adopt a pending configuration if there is one (see the ordering contract:
  // this is where the barrier waits). Returns false if `stop` was raised while
  // waiting; with `stop` already raised it takes one step of the barrier
  // (one drain) and returns false unless the barrier has passed.
  bool sync(unsigned w, const std::atomic<bool>& stop);
  // A worker announces it runs (reconfigure() waits only for online workers).
  void set_online(unsigned w, bool online);

  // --- control ----------------------------------------------------------------
  // Apply `edit` to a copy of the configuration and publish it; returns when
  // every online worker has adopted it, or an error after `timeout`.
  Status reconfigure(const std::function<void(DispatchConfig&)>& edit,
                     std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));
  // After every worker stopped: handle what is still queued, as its target.
  unsigned drain_stopped(uint16_t batch = 256);
  WorkstreamStats stats(unsigned w, ProtoId p) const;

 private:
  struct Counters;
  struct Local;
  bool adopt(unsigned w, const std::atomic<bool>& stop);
  bool nothing_in_flight() const;
  bool all_online_reached(unsigned self, std::atomic<uint64_t> Local::*stage, uint64_t g) const;
  void retire(Local& L, uint64_t n);
  void set_local_configs();
  SpscRing<rte_mbuf*>& ring(ProtoId p, unsigned src, unsigned dst) const {
    return *rings_[(static_cast<std::size_t>(p) * nworkers_ + src) * nworkers_ + dst];
  }
  uint32_t flow_of(const ProtocolSpec& spec, rte_mbuf* m, uint16_t port, uint16_t queue) const;
  void enqueue(unsigned w, ProtoId p, unsigned target, rte_mbuf** pkts, uint16_t n);
  Status validate(const DispatchConfig& c) const;

  const unsigned nworkers_;
  const unsigned nbuckets_;
  ToeplitzHash toeplitz_;
  unsigned nprotos_ = 0;
  std::array<ProtocolSpec, kMaxProtocols> specs_{};
  std::vector<std::unique_ptr<SpscRing<rte_mbuf*>>> rings_;
  std::vector<std::unique_ptr<Local>> local_;  // one per worker
  DispatchConfig configs_[2];                  // double buffer, indexed by generation & 1
  alignas(kCacheLine) std::atomic<uint64_t> generation_{0};
  std::atomic<uint64_t> quiesced_{0};  // the last generation whose barrier found nothing in flight
};

}  // namespace ngstack::dispatch
