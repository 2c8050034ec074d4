// Metrics in the Prometheus text exposition format (version 0.0.4), rendered
// from the same Snapshot the live table and the summary print.
//
// Names are ngstack_<what>_total for counters and ngstack_<what> for gauges;
// every family has one # HELP and one # TYPE line and its samples follow them
// together. Labels: port and device (ports), port/queue/worker (queues, worker
// = the worker's lcore), worker (workers), worker/reason (drops),
// worker/event (stack events), worker/protocol (netisr workstreams), pool
// (mempools), table/class (connection table locks: ngstack_lock_*),
// service/address/port (UDP services; a client's address is its server's). Every named drop reason and event is exported, zeros included,
// so that a rate() over a reason that appears mid-run has a starting point.
//
// render_metrics is a pure function (unit-tested); metrics_server.hpp serves
// it over HTTP from a control-plane thread.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "app/stats.hpp"

namespace ngstack::app {

inline constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

// What /metrics shows beside the Snapshot.
struct MetricsContext {
  std::string mode;                    // forwarder | router | bridge | traffic | host
  uint64_t tsc_hz = 0;                 // to turn the cycle counters into seconds
  std::vector<MempoolCheck> mempools;  // available now, of size
};

std::string render_metrics(const Snapshot& s, const MetricsContext& ctx);

// Label values escape backslash, double quote and newline (\\, \", \n).
std::string escape_label_value(std::string_view v);

}  // namespace ngstack::app
