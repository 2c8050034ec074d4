// A poll-mode worker: one per EAL lcore, pinned by EAL to one core.
//
// A worker owns everything it touches on the data path: its rx queues (no other
// worker polls them), one tx queue on every port, its tx buffers, and its
// counters. Other threads only read its counters. It stops when `stop` is set,
// after finishing the burst in hand and flushing its tx buffers.
#pragma once

#include <rte_common.h>

#include <atomic>
#include <memory>
#include <vector>

#include "dispatch/netisr.hpp"
#include "stack/counters.hpp"
#include "stack/service.hpp"
#include "stack/timer/timer_wheel.hpp"
#include "stack/tx_buffer.hpp"

namespace ngstack::app {

struct RxQueueStats {
  stack::Counter packets;
  stack::Counter bytes;
  stack::Counter empty_polls;
};

struct WorkerRxQueue {
  uint16_t cfg_port;  // index into the config's ports
  uint16_t port_id;   // DPDK port id
  uint16_t queue;
  RxQueueStats stats;
};

struct WorkerStats {
  stack::Counter iterations;
  stack::Counter busy_cycles;   // TSC cycles spent in iterations that received something
  stack::Counter total_cycles;  // TSC cycles since the loop started
  stack::DropCounters drops;
  stack::EventCounters events;
};

struct alignas(RTE_CACHE_LINE_SIZE) Worker {
  Worker(unsigned lcore_id, uint16_t worker_index, uint16_t burst_size, const std::vector<uint16_t>& port_ids,
         const std::atomic<bool>& stop_flag)
      : lcore(lcore_id),
        index(worker_index),
        burst(burst_size),
        tx(port_ids, worker_index, burst_size, stats.drops),
        stop(stop_flag) {}

  unsigned lcore;
  uint16_t index;  // netisr worker index, and this worker's tx queue on every port
  uint16_t burst;
  std::vector<std::unique_ptr<WorkerRxQueue>> rxqs;
  WorkerStats stats;
  stack::TxBuffers tx;
  // The TSC at the end of the last loop iteration: handlers' `now`
  // (stack::WorkerIo::loop_tsc).
  uint64_t loop_tsc = 0;
  const std::atomic<bool>& stop;
  // Every received burst enters the stack through the dispatcher as `entry`.
  dispatch::Netisr* netisr = nullptr;
  dispatch::ProtoId entry = 0;
  uint16_t drain_batch = 32;
  // The mode's per-worker hooks (router, bridge); null for the forwarder.
  stack::Service* service = nullptr;
  // This worker's timers (stack/timer): run once per loop iteration.
  std::unique_ptr<stack::timer::TimerWheel> timers;
};

// The lcore entry point (rte_eal_remote_launch); `arg` is a Worker*.
int worker_main(void* arg);

}  // namespace ngstack::app
