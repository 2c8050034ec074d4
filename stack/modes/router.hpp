// Router mode: every configured port is an IPv4 interface; packets between
// them are routed (RFC 1812), ARP resolves next hops (RFC 826), and ngstack
// answers pings to its own addresses and sends ICMP errors (RFC 792).
// Host mode is the same stack with forwarding off (an end host, RFC 1122).
// Both serve UDP sockets (stack/udp, stack/socket) on their own addresses,
// and the built-in services of `services:` (stack/services).
//
// This is wiring: the layers are stack/ifnet (interfaces), stack/ether,
// stack/arp (Resolver), stack/ipv4 (Ip) and stack/route (Fib). The netisr
// protocols, each a layer's input handler:
//   ether  (entry) L2 filter, demux by EtherType -> `arp` | `ip`
//   arp    policy source: handled where it arrived
//   ip     policy flow: reassembly and ordering want one worker per flow
//   udp    policy cpu: the owner of the datagram's connection group
//   tcp    policy cpu: the owner of the segment's connection group
// The FIB and the ARP table are read without locks; static routes and ARP
// entries change at run time through the control methods below (one control
// thread; see route/fib.hpp for the FIB's live-update rule).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "conf/config.hpp"
#include "conf/result.hpp"
#include "dispatch/netisr.hpp"
#include "stack/arp/resolver.hpp"
#include "stack/ether/ether.hpp"
#include "stack/ifnet/ifnet.hpp"
#include "stack/ipv4/ip.hpp"
#include "stack/modes/common.hpp"
#include "stack/route/fib.hpp"
#include "stack/service.hpp"
#include "stack/services/udp_services.hpp"
#include "stack/tcp/tcp.hpp"
#include "stack/udp/udp.hpp"

namespace ngstack::stack::modes {

class Router final : public Service {
 public:
  static Result<std::unique_ptr<Router>> create(const conf::Config& cfg, const std::vector<PortInfo>& ports,
                                                rte_mempool* pool, unsigned workers, uint64_t tsc_hz);
  void bind(std::vector<WorkerIo> io);
  // Registers ether (returned: the entry protocol), ip, arp, udp and tcp.
  Result<dispatch::ProtoId> register_protocols(dispatch::Netisr& netisr, const ProtocolSettings& settings);

  void worker_online(unsigned worker) override;
  void poll(unsigned worker, uint64_t now) override;
  void worker_offline(unsigned worker) override;
  void shutdown() override;

  std::vector<arp::NeighborView> neighbors() const { return arp_->neighbors(); }
  const route::Fib& fib() const { return *fib_; }
  const ifnet::Interfaces& interfaces() const { return ifs_; }
  arp::Resolver& arp() { return *arp_; }
  ipv4::Ip& ip() { return *ip_; }
  udp::Udp& udp() { return *udp_; }
  const udp::Udp& udp() const { return *udp_; }
  tcp::Tcp& tcp() { return *tcp_; }
  const tcp::Tcp& tcp() const { return *tcp_; }
  std::vector<services::ServiceView> services() const { return services_->views(); }

  // --- control (one caller at a time, while workers run) ---------------------
  // A static route: forward via `via` (on a connected subnet), blackhole or reject.
  Status route_add(const conf::Ipv4Prefix& p, conf::RouteAction action, uint32_t via);
  Status route_del(const conf::Ipv4Prefix& p);
  // A static (permanent) ARP entry on the interface named `port`, as
  // router.arp.static installs one; replaces a learned entry.
  Status arp_add(const std::string& port, uint32_t addr, const rte_ether_addr& mac) {
    return arp_->add_permanent(port, addr, mac);
  }
  // Removes the entry for `addr` on `port` (empty: on whichever interface has
  // one). Learned entries may be removed too (they are learned again).
  Status arp_del(uint32_t addr, const std::string& port) { return arp_->remove(addr, port); }

 private:
  Router() = default;
  ifnet::Interfaces ifs_;
  std::unique_ptr<route::Fib> fib_;
  std::unique_ptr<arp::Resolver> arp_;
  std::unique_ptr<ether::Ether> ether_;
  std::unique_ptr<ipv4::Ip> ip_;
  std::unique_ptr<udp::Udp> udp_;
  std::unique_ptr<tcp::Tcp> tcp_;
  std::unique_ptr<services::Services> services_;
  uint64_t tsc_hz_ = 0;
};

}  // namespace ngstack::stack::modes
