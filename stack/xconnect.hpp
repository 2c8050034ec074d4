// The port-to-port forwarder (L2 cross-connect): every frame that arrives on a
// path's input port leaves on its output port, in arrival order, untouched, or
// with its Ethernet addresses rewritten (dst to the configured MAC, src to the
// output port's MAC), as testpmd's `mac` forwarding mode does.
#pragma once

#include <rte_ether.h>
#include <rte_mbuf.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "stack/counters.hpp"
#include "stack/service.hpp"
#include "stack/tx_buffer.hpp"

namespace ngstack::stack {

struct XconnectPath {
  bool active = false;  // false: the port is the input of no path
  uint16_t out_port = 0;
  bool rewrite = false;
  rte_ether_addr dst{};
  rte_ether_addr src{};
};

class Xconnect {
 public:
  // One entry per config port, indexed by the ingress port.
  explicit Xconnect(std::vector<XconnectPath> paths) : paths_(std::move(paths)) {}

  // Handle a burst received on config port `in_port`.
  void input(uint16_t in_port, rte_mbuf** pkts, uint16_t n, TxBuffers& tx, DropCounters& drops) const;

  // The netisr handler of the raw `ether` protocol: `ctx` is an Xconnect.
  // Packets may come from several ports (queued by other workers); each run of
  // one ingress port (mbuf->port) goes through input() on the handling worker.
  static void netisr_handler(void* ctx, unsigned worker, uint16_t port, rte_mbuf** pkts, uint16_t n);

  // Set-up: DPDK port id -> config port index, and each worker's I/O.
  void bind(const std::vector<uint16_t>& port_ids, std::vector<WorkerIo> workers);

 private:
  std::vector<XconnectPath> paths_;
  PortIndex port_index_;
  std::vector<WorkerIo> workers_;
};

}  // namespace ngstack::stack
