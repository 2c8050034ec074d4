#include "stack/ether/ether.hpp"

#include <rte_byteorder.h>
#include <rte_prefetch.h>

namespace ngstack::stack::ether {

void Ether::set_protocol(dispatch::Netisr* netisr, uint16_t ether_type, dispatch::ProtoId proto) {
  RTE_VERIFY(nupper_ < kMaxUpper);
  netisr_ = netisr;
  upper_[nupper_++] = {rte_cpu_to_be_16(ether_type), proto};
}

void Ether::input_handler(void* ctx, unsigned w, uint16_t port, rte_mbuf** pkts, uint16_t n) {
  static_cast<Ether*>(ctx)->input(w, port, pkts, n);
}

void Ether::input(unsigned w, uint16_t port, rte_mbuf** pkts, uint16_t n) {
  // One output vector per upper protocol; packets keep their arrival order.
  rte_mbuf* out[kMaxUpper][dispatch::kMaxDispatchBurst];
  uint16_t count[kMaxUpper] = {};
  uint32_t last_port_id = UINT32_MAX;
  const rte_ether_addr* our_mac = nullptr;
  // This is the burst's first look at its frames: start every header's
  // cache line on its way before the first is needed (the mbufs' first
  // lines, which hold the data pointers, are hot from rx).
  for (uint16_t i = 0; i < n; ++i) rte_prefetch0(rte_pktmbuf_mtod(pkts[i], const void*));
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    if (rte_pktmbuf_data_len(m) < kHeaderLen) [[unlikely]] {
      rte_pktmbuf_free(m);
      io_[w].drops->inc(DropReason::runt);
      continue;
    }
    const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
    if (m->port != last_port_id) [[unlikely]] {
      last_port_id = m->port;
      const int in = ifs_.cfg_port(m->port);
      our_mac = in >= 0 ? &ifs_.at(static_cast<uint16_t>(in)).mac : nullptr;
    }
    // A promiscuous port also hears unicast for other stations: not ours to take.
    if (our_mac && !rte_is_multicast_ether_addr(&eth->dst_addr) && !rte_is_same_ether_addr(&eth->dst_addr, our_mac))
        [[unlikely]] {
      rte_pktmbuf_free(m);
      io_[w].drops->inc(DropReason::ether_not_for_us);
      continue;
    }
    unsigned u = 0;
    while (u < nupper_ && upper_[u].ether_type_be != eth->ether_type) ++u;
    if (u == nupper_) [[unlikely]] {
      rte_pktmbuf_free(m);
      io_[w].drops->inc(DropReason::ether_unknown_type);
      continue;
    }
    out[u][count[u]++] = m;
  }
  for (unsigned u = 0; u < nupper_; ++u)
    if (count[u]) netisr_->dispatch(w, upper_[u].proto, port, 0, out[u], count[u]);
}

}  // namespace ngstack::stack::ether
