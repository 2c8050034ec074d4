// What a mode's stack needs from every worker besides packets: a call when the
// worker starts and stops, and one per loop iteration (between bursts, when
// the worker holds no reference into shared tables) for RCU quiescent-state
// reports and due timers. Worker 0 runs the mode's periodic maintenance (ARP
// and FDB ageing, ARP retries) there, with its own tx buffers.
#pragma once

#include <rte_ether.h>

#include <cstdint>

#include "stack/counters.hpp"
#include "stack/tx_buffer.hpp"

namespace ngstack::stack {

// What a worker's handlers need of that worker.
struct WorkerIo {
  TxBuffers* tx = nullptr;
  DropCounters* drops = nullptr;
  EventCounters* events = nullptr;
};

// What a mode's stack needs of each config port once it is up.
struct PortInfo {
  uint16_t port_id = 0;
  rte_ether_addr mac{};
  uint16_t mtu = 1500;
};

class Service {
 public:
  virtual ~Service() = default;
  virtual void worker_online(unsigned worker) = 0;
  virtual void poll(unsigned worker, uint64_t now_tsc) = 0;
  virtual void worker_offline(unsigned worker) = 0;
  // After every worker stopped: free (and count) whatever the stack still holds.
  virtual void shutdown() = 0;
};

}  // namespace ngstack::stack
