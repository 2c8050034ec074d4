// One run of the appliance: EAL start, mempool, ports, workers, the stats loop
// on the main lcore, and an orderly stop that checks every invariant the design
// promises (all mbufs back in their pool, every received packet sent or
// counted as a drop).
#pragma once

#include <rte_mempool.h>

#include <atomic>
#include <memory>
#include <vector>

#include "app/cli.hpp"
#include "app/ports.hpp"
#include "app/worker.hpp"
#include "conf/config.hpp"
#include "dispatch/netisr.hpp"
#include "stack/flow_hash.hpp"
#include "stack/bridge/bridge.hpp"
#include "stack/modes/router.hpp"
#include "stack/traffic/traffic.hpp"
#include "stack/xconnect.hpp"

namespace ngstack::app {

// The topology of a running process. Fixed once workers launch; the stats
// printer and the telemetry thread only read it.
struct Runtime {
  explicit Runtime(const conf::Config& c) : cfg(c) {}
  const conf::Config& cfg;
  std::vector<PortRuntime> ports;
  std::vector<std::unique_ptr<Worker>> workers;
  std::unique_ptr<stack::Xconnect> xconnect;  // forwarder mode
  std::unique_ptr<stack::modes::Router> router;      // router mode
  std::unique_ptr<stack::Bridge> bridge;      // bridge mode
  std::unique_ptr<stack::traffic::Traffic> traffic;  // traffic mode
  stack::Service* service = nullptr;          // router, bridge or traffic
  std::unique_ptr<dispatch::Netisr> netisr;
  rte_mempool* pool = nullptr;
  uint64_t tsc_hz = 0;
  uint64_t start_tsc = 0;
};

// Exit status as documented in `ngstack --help`.
enum ExitCode : int { kExitOk = 0, kExitError = 1, kExitUsage = 2, kExitInvariant = 3 };

// Runs `cfg` until `opts.duration_s` passes or SIGINT/SIGTERM arrives.
int run(const conf::Config& cfg, const Options& opts);

// The dispatcher for `rt` (workers built): registers the stack's protocols and
// applies the config's dispatch section. Errors name the config key.
Status setup_dispatch(Runtime& rt);

}  // namespace ngstack::app
