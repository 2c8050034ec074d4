#include "app/worker.hpp"

#include <rte_cycles.h>
#include <rte_ethdev.h>

namespace ngstack::app {

int worker_main(void* arg) {
  Worker& w = *static_cast<Worker*>(arg);
  rte_mbuf* pkts[stack::kMaxBurst];
  const uint64_t start = rte_rdtsc();
  uint64_t prev = start;
  w.loop_tsc = start;
  uint64_t busy = 0;
  dispatch::Netisr& netisr = *w.netisr;
  netisr.set_online(w.index, true);
  if (w.service) w.service->worker_online(w.index);
  while (!w.stop.load(std::memory_order_relaxed)) {
    netisr.sync(w.index, w.stop);
    if (w.service) w.service->poll(w.index, prev);
    if (w.timers) w.timers->run(prev);
    uint32_t received = 0;
    for (auto& rxq_ptr : w.rxqs) {
      WorkerRxQueue& rxq = *rxq_ptr;
      const uint16_t n = rte_eth_rx_burst(rxq.port_id, rxq.queue, pkts, w.burst);
      if (n == 0) {
        rxq.stats.empty_polls.inc();
        continue;
      }
      const uint64_t bytes = stack::burst_bytes(pkts, n);
      rxq.stats.packets.add(n);
      rxq.stats.bytes.add(bytes);
      received += n;
      netisr.dispatch(w.index, w.entry, rxq.port_id, rxq.queue, pkts, n);
    }
    // Queued work gets a bounded batch per source every iteration, as rx
    // gets one burst per queue: neither starves the other.
    const unsigned drained = netisr.drain(w.index, w.drain_batch);
    w.tx.flush_all();
    const uint64_t now = rte_rdtsc();
    if (received != 0 || drained != 0) busy += now - prev;
    prev = now;
    w.loop_tsc = now;
    w.stats.iterations.inc();
    w.stats.busy_cycles.set(busy);
    w.stats.total_cycles.set(now - start);
  }
  w.tx.flush_all();
  if (w.service) w.service->worker_offline(w.index);
  netisr.set_online(w.index, false);
  return 0;
}

}  // namespace ngstack::app
