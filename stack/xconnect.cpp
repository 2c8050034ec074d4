#include "stack/xconnect.hpp"

#include "dispatch/netisr.hpp"

namespace ngstack::stack {

void Xconnect::input(uint16_t in_port, rte_mbuf** pkts, uint16_t n, TxBuffers& tx, DropCounters& drops) const {
  const XconnectPath& path = paths_[in_port];
  if (!path.active) [[unlikely]] {
    rte_pktmbuf_free_bulk(pkts, n);
    drops.add(DropReason::no_path, n);
    return;
  }
  if (path.rewrite) {
    // Prefetch a few frames ahead: the header write is the only touch of packet
    // data, so it is the only cache miss worth hiding.
    constexpr uint16_t kPrefetchAhead = 4;
    for (uint16_t i = 0; i < n && i < kPrefetchAhead; ++i) rte_prefetch0(rte_pktmbuf_mtod(pkts[i], void*));
    uint16_t kept = 0;
    for (uint16_t i = 0; i < n; ++i) {
      if (i + kPrefetchAhead < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + kPrefetchAhead], void*));
      // A frame shorter than an Ethernet header (a runt from a misbehaving
      // device) has no addresses to rewrite: drop it rather than write past it.
      if (rte_pktmbuf_data_len(pkts[i]) < sizeof(rte_ether_hdr)) [[unlikely]] {
        rte_pktmbuf_free(pkts[i]);
        drops.add(DropReason::runt, 1);
        continue;
      }
      auto* eth = rte_pktmbuf_mtod(pkts[i], rte_ether_hdr*);
      eth->dst_addr = path.dst;
      eth->src_addr = path.src;
      pkts[kept++] = pkts[i];
    }
    n = kept;
  }
  tx.enqueue(path.out_port, pkts, n);
}

void Xconnect::bind(const std::vector<uint16_t>& port_ids, std::vector<WorkerIo> workers) {
  port_index_ = PortIndex(port_ids);
  workers_ = std::move(workers);
}

void Xconnect::netisr_handler(void* ctx, unsigned worker, uint16_t port_hint, rte_mbuf** pkts, uint16_t n) {
  const auto& x = *static_cast<const Xconnect*>(ctx);
  const WorkerIo& io = x.workers_[worker];
  uint16_t start = 0;
  while (start < n) {
    const bool one_port = port_hint != dispatch::kMixedPorts;
    const uint16_t port = one_port ? port_hint : pkts[start]->port;
    uint16_t end = one_port ? n : start + 1;
    while (end < n && pkts[end]->port == port) ++end;
    const int index = x.port_index_.of(port);
    if (index < 0) [[unlikely]] {
      rte_pktmbuf_free_bulk(pkts + start, end - start);
      io.drops->add(DropReason::no_path, end - start);
    } else {
      x.input(static_cast<uint16_t>(index), pkts + start, end - start, *io.tx, *io.drops);
    }
    start = end;
  }
}

}  // namespace ngstack::stack
