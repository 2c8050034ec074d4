// What a mode's stack needs from every worker besides packets: a call when the
// worker starts and stops, and one per loop iteration (between bursts, when
// the worker holds no reference into shared tables) for RCU quiescent-state
// reports. Timers (ARP retries and ageing, reassembly expiry) run on each
// worker's own timer wheel, which the worker runs once per loop iteration.
#pragma once

#include <rte_cycles.h>
#include <rte_ether.h>

#include <cstdint>
#include <vector>

#include "stack/counters.hpp"
#include "stack/timer/timer_wheel.hpp"
#include "stack/tx_buffer.hpp"

namespace ngstack::stack {

// What a worker's handlers need of that worker.
struct WorkerIo {
  TxBuffers* tx = nullptr;
  DropCounters* drops = nullptr;
  EventCounters* events = nullptr;
  timer::TimerWheel* timers = nullptr;  // the worker's own (stack/timer)
  // The worker's loop time: the TSC it read at the end of its last loop
  // iteration, i.e. just before the rx bursts being handled. Handlers take
  // their `now` from it instead of reading the TSC once more per burst
  // (rdtsc costs ~60 cycles on a VM). Null (a test's io): read the TSC.
  const uint64_t* loop_tsc = nullptr;
  uint64_t now() const { return loop_tsc ? *loop_tsc : rte_rdtsc(); }
};

// What a mode's stack needs of each config port once it is up.
struct PortInfo {
  uint16_t port_id = 0;
  rte_ether_addr mac{};
  uint16_t mtu = 1500;
  uint64_t tx_offloads = 0;  // RTE_ETH_TX_OFFLOAD_* enabled (checksums of packets made here, TSO)
  uint16_t tx_max_segs = 0;  // mbufs one frame may chain (the device's nb_seg_max); 0: no limit given
  uint16_t tso_piece_max = 0;  // bytes a TSO piece may have, Ethernet header included; 0: the MTU's frame
};

// DPDK port id -> config port index, for handlers that read mbuf->port.
class PortIndex {
 public:
  PortIndex() = default;
  // port_ids[i] is the DPDK port id of config port i.
  explicit PortIndex(const std::vector<uint16_t>& port_ids) : index_(RTE_MAX_ETHPORTS, -1) {
    for (std::size_t i = 0; i < port_ids.size(); ++i) index_[port_ids[i]] = static_cast<int16_t>(i);
  }
  // The config index, or -1 when the port is not ours.
  int of(uint16_t port_id) const { return port_id < index_.size() ? index_[port_id] : -1; }

 private:
  std::vector<int16_t> index_;
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
