// Statistics: point-in-time snapshots of every counter, the live table printed
// each interval, the final summary (text and JSON), and the DPDK telemetry
// commands (/ngstack/...) that dpdk-telemetry.py reads.
#pragma once

#include <array>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "app/json.hpp"
#include "dispatch/netisr.hpp"
#include "stack/counters.hpp"
#include "stack/services/udp_services.hpp"
#include "stack/tcp/tcp.hpp"
#include "stack/traffic/traffic.hpp"

namespace ngstack::app {

struct Runtime;

struct QueueSnap {
  std::string port;
  uint16_t queue = 0;
  unsigned lcore = 0;
  uint64_t packets = 0, bytes = 0, empty_polls = 0;
};

// Tx queue q of every port belongs to worker q, so per-tx-queue counters are
// the worker's per-port tx counters.
struct TxQueueSnap {
  std::string port;
  uint16_t queue = 0;
  unsigned lcore = 0;
  uint64_t packets = 0, bytes = 0;
};

struct PortSnap {
  std::string name, device, driver;
  uint64_t rx_offloads = 0;  // RTE_ETH_RX_OFFLOAD_* requested at start (PortRuntime)
  uint64_t rx_packets = 0, rx_bytes = 0, tx_packets = 0, tx_bytes = 0;
  // From the device (rte_eth_stats): what never reached a worker.
  uint64_t imissed = 0, ierrors = 0, oerrors = 0, rx_nombuf = 0;
};

struct WorkerSnap {
  unsigned lcore = 0;
  uint64_t rx_packets = 0, rx_bytes = 0, tx_packets = 0, tx_bytes = 0;
  uint64_t empty_polls = 0, iterations = 0, busy_cycles = 0, total_cycles = 0;
  std::array<uint64_t, stack::kDropReasonCount> drops{};
  uint64_t drops_total = 0;
  std::array<uint64_t, stack::kEventCount> events{};
};

// Router: one ARP cache entry; bridge: one FDB entry.
struct NeighborSnap {
  std::string port, addr, mac, state;
  uint64_t age_ms = 0;
  unsigned held = 0;
};
// Router: one FIB route. action: forward, blackhole or reject; gateway empty
// for a connected route; type: connected or static.
struct RouteSnap {
  std::string prefix, action, gateway, port, type;
};
struct FdbSnap {
  uint16_t vlan = 0;
  std::string mac, port;
  uint64_t age_ms = 0;
};

// One netisr workstream (worker x protocol), as netstat -Q shows it.
struct WorkstreamSnap {
  unsigned lcore = 0;
  std::string proto;
  dispatch::WorkstreamStats s;
};

struct NetisrProtoSnap {
  std::string name;
  std::string policy, mode;
  uint32_t qlimit = 0;
};

// The lock profile of one lock class of a connection table (stack/pcb): the
// sum over the class's locks, in TSC cycles.
struct LockClassSnap {
  std::string name;  // pcb_listen, pcb_giant, pcb_group, pcb_conn
  uint64_t acquisitions = 0, contended = 0, wait_cycles = 0, wait_max = 0, hold_cycles = 0, hold_max = 0;
  double contended_share() const {
    return acquisitions ? static_cast<double>(contended) / static_cast<double>(acquisitions) : 0.0;
  }
  double wait_cycles_per_acquisition() const {
    return acquisitions ? static_cast<double>(wait_cycles) / static_cast<double>(acquisitions) : 0.0;
  }
};

// One connection group's lock. owner: the worker index that receives the
// group's packets, -1 when groups < buckets (a group spans several buckets).
struct LockGroupSnap {
  unsigned group = 0;
  int owner = -1;
  uint64_t acquisitions = 0, contended = 0, wait_cycles = 0;
};

// One connection table (udp, tcp).
struct LockTableSnap {
  std::string name;
  uint64_t lookups = 0;  // one per packet looked up
  unsigned live = 0;     // PCBs in use
  // The receive path's lock acquisitions (PcbTable::burst_acquisitions: one
  // per group per burst, or one per burst under giant locking) per lookup:
  // below 1 when a burst shares one acquisition among packets of a group.
  double acquisitions_per_packet = 0;
  std::vector<LockClassSnap> classes;
  std::vector<LockGroupSnap> busiest_groups;  // the most acquired groups, at most kBusiestGroups
};

struct LocksSnap {
  std::string locking, lock_type;  // stack.locking, stack.lock_type
  unsigned groups = 0;
  std::vector<LockTableSnap> tables;
};

inline constexpr std::size_t kBusiestGroups = 8;

// Router and host modes: TCP's counters (netstat -s) and connections (ss -ti).
struct TcpSnap {
  std::vector<std::pair<std::string, uint64_t>> stats;  // every stack::tcp::Stat, summed over the workers
  std::vector<stack::tcp::ConnView> connections;
  struct Listener {
    std::string local;
    unsigned backlog = 0, embryonic = 0;
    uint64_t accepted = 0, overflowed = 0;
  };
  std::vector<Listener> listeners;
  uint32_t worker_buffers = 0;          // each worker's budget of queued mbufs (stack.tcp.worker_buffers)
  std::vector<int64_t> buffers_held;    // per worker: mbufs its connections queue now
  uint64_t stat(const std::string& name) const {
    for (const auto& [n, v] : stats)
      if (n == name) return v;
    return 0;
  }
};

struct Snapshot {
  double t_s = 0;  // seconds since workers launched
  std::vector<PortSnap> ports;
  std::vector<QueueSnap> queues;
  std::vector<TxQueueSnap> tx_queues;
  std::vector<WorkerSnap> workers;
  unsigned buckets = 0;
  std::vector<uint16_t> bucket_map;  // bucket -> worker index
  std::vector<NetisrProtoSnap> protocols;
  std::vector<WorkstreamSnap> workstreams;
  uint64_t qdrops = 0;  // netisr queue overflows, all workers and protocols
  // drops: every freed packet, stack drops and qdrops alike.
  uint64_t rx_packets = 0, tx_packets = 0, drops = 0;
  // Made and absorbed by the stack (see stack/counters.hpp).
  uint64_t originated = 0, consumed = 0;
  std::vector<NeighborSnap> neighbors;
  std::vector<FdbSnap> fdb;
  std::vector<stack::traffic::GeneratorView> generators;
  std::vector<stack::traffic::SinkView> sinks;  // loss and latency only when workers_stopped
  unsigned fib_routes = 0, fib_nexthops = 0;
  std::vector<RouteSnap> routes;  // filled by snapshot_routes (and at the final snapshot)
  // Router and host modes: the built-in services and the connection tables' locks.
  std::vector<stack::services::ServiceView> services;
  std::optional<LocksSnap> locks;
  std::optional<TcpSnap> tcp;
};

// `workers_stopped`: no worker runs; state that workers own (a sink's flows
// and latency) may be read too.
Snapshot take_snapshot(const Runtime& rt, bool workers_stopped = false);
// Adds the router's route list (not part of every periodic snapshot: it may be long).
void snapshot_routes(const Runtime& rt, Snapshot& s);

struct IntervalRate {
  double t_s = 0;
  double rx_pps = 0, tx_pps = 0, rx_bps = 0, tx_bps = 0, drops_ps = 0;
};

IntervalRate interval_rate(const Snapshot& prev, const Snapshot& cur);

// The live table for one interval.
std::string format_interval(const Snapshot& prev, const Snapshot& cur);

struct MempoolCheck {
  std::string name;
  unsigned size = 0;
  unsigned available = 0;
  bool full() const { return available == size; }
};

struct Summary {
  std::string mode, source;
  Snapshot final;
  std::vector<IntervalRate> intervals;
  std::vector<MempoolCheck> mempools;
  uint64_t tsc_hz = 0;
  bool balanced() const {
    return final.rx_packets + final.originated == final.tx_packets + final.drops + final.consumed;
  }
  bool mempools_full() const;
  bool ok() const { return balanced() && mempools_full(); }
};

std::string format_summary(const Summary& s);
std::string summary_json(const Summary& s);

// The summary's sections, one function each; `ngstack show` prints the same.
std::string format_ports(const Snapshot& s);    // ports, rx queues, tx queues
std::string format_workers(const Snapshot& s);
std::string format_netisr(const Snapshot& s);
std::string format_fib(const Snapshot& s, bool table);  // the count; with `table`, every route
std::string format_arp(const Snapshot& s);
std::string format_fdb(const Snapshot& s);
std::string format_traffic(const Snapshot& s);
std::string format_services(const Snapshot& s);  // "" when there are none
std::string format_clients(const Snapshot& s);   // `clients:` generators; "" when there are none
// One line per `clients:` generator for the periodic stats: rates over the interval.
std::string format_clients_interval(const Snapshot& prev, const Snapshot& cur);
std::string format_locks(const Snapshot& s);     // "" without a connection table
std::string format_tcp(const Snapshot& s, bool all_connections);  // "" without TCP
// `ngstack show stats`: the summary's sections for a running instance.
std::string format_stats(const Snapshot& s, const std::string& mode, const std::string& source);
// The summary JSON's sections, each written as members of the enclosing object.
void json_ports(JsonWriter& j, const Snapshot& s);  // "ports", "queues", "tx_queues"
void json_workers(JsonWriter& j, const Snapshot& s);
void json_router(JsonWriter& j, const Snapshot& s);  // "router": routes and arp
void json_bridge(JsonWriter& j, const Snapshot& s);
void json_traffic(JsonWriter& j, const Snapshot& s);
void json_netisr(JsonWriter& j, const Snapshot& s);
void json_services(JsonWriter& j, const Snapshot& s);  // "services": [...]
void json_clients(JsonWriter& j, const Snapshot& s);   // "clients": [...]; nothing without generators
void json_locks(JsonWriter& j, const Snapshot& s);     // "locks": {...}; nothing without a connection table
void json_tcp(JsonWriter& j, const Snapshot& s);       // "tcp": {...}; nothing without TCP

// Telemetry commands read the live Runtime; unregister before tearing it down.
void register_telemetry(const Runtime* rt);
void unregister_telemetry();

// Runs `fn` on the registered Runtime under the lock the telemetry callbacks
// hold (teardown cannot start meanwhile); false, without running it, when
// none is registered. For control-plane readers: the metrics server.
bool with_registered_runtime(const std::function<void(const Runtime&)>& fn);

}  // namespace ngstack::app
