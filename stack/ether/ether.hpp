// Ethernet for an IPv4 host or router: input filter and demux, and output.
//
// Input (the `ether` netisr protocol, the entry point of every received
// burst): drops runts and unicast frames for other stations (a promiscuous
// port hears them), then hands each frame to the netisr protocol registered
// for its EtherType (`ip`, `arp`), one dispatch per protocol per burst, in
// arrival order. Unknown EtherTypes (and 802.1Q tags: the router has no
// VLAN interfaces) are counted drops.
//
// Output: ether_output(w, m, out, next_hop) asks ARP for the next hop's MAC
// and, when it is known, writes both addresses and buffers the frame on the
// worker's tx queue of `out`; otherwise ARP holds or drops the packet.
#pragma once

#include <rte_ether.h>
#include <rte_mbuf.h>

#include <array>
#include <vector>

#include "dispatch/netisr.hpp"
#include "stack/arp/resolver.hpp"
#include "stack/ifnet/ifnet.hpp"
#include "stack/service.hpp"

namespace ngstack::stack::ether {

inline constexpr uint16_t kHeaderLen = sizeof(rte_ether_hdr);

class Ether {
 public:
  Ether(const ifnet::Interfaces& ifs, arp::Resolver& arp) : ifs_(ifs), arp_(arp) {}
  void bind(std::vector<WorkerIo> io) { io_ = std::move(io); }
  // Frames of `ether_type` (host order) go to netisr protocol `proto`.
  void set_protocol(dispatch::Netisr* netisr, uint16_t ether_type, dispatch::ProtoId proto);

  // netisr handler of `ether`; ctx is the Ether.
  static void input_handler(void* ctx, unsigned worker, uint16_t port, rte_mbuf** pkts, uint16_t n);

  // Sends m (its Ethernet header in place, EtherType set) to `nh_addr` on config port `out`.
  void output(unsigned w, rte_mbuf* m, uint16_t out, uint32_t nh_addr, uint64_t now) {
    rte_ether_addr mac;
    if (arp_.resolve(w, m, out, nh_addr, now, &mac)) transmit(w, m, out, mac);
  }
  // Writes the addresses (to `dst`, from `out`'s MAC) and buffers m for `out`.
  void transmit(unsigned w, rte_mbuf* m, uint16_t out, const rte_ether_addr& dst) {
    auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
    eth->dst_addr = dst;
    eth->src_addr = ifs_.at(out).mac;
    io_[w].tx->push(out, m);
  }

 private:
  static constexpr unsigned kMaxUpper = 2;  // IPv4, ARP
  struct Upper {
    uint16_t ether_type_be = 0;
    dispatch::ProtoId proto = 0;
  };
  void input(unsigned w, uint16_t port, rte_mbuf** pkts, uint16_t n);

  const ifnet::Interfaces& ifs_;
  arp::Resolver& arp_;
  std::vector<WorkerIo> io_;
  dispatch::Netisr* netisr_ = nullptr;
  std::array<Upper, kMaxUpper> upper_{};
  unsigned nupper_ = 0;
};

}  // namespace ngstack::stack::ether
