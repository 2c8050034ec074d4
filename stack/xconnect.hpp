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

 private:
  std::vector<XconnectPath> paths_;
};

}  // namespace ngstack::stack
