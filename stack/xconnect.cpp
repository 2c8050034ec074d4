#include "stack/xconnect.hpp"

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

}  // namespace ngstack::stack
