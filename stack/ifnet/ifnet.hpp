// Interfaces of an IPv4 host or router: which config port is an interface,
// its DPDK port id, MAC, MTU and addresses, and the questions every layer
// asks about them (is this address ours, which source address to use, which
// interface a DPDK port id is). Built once at start; read by every worker
// without locks (nothing in it changes while workers run).
#pragma once

#include <rte_ether.h>

#include <string>
#include <vector>

#include "conf/config.hpp"
#include "conf/result.hpp"
#include "stack/ipv4/input.hpp"
#include "stack/service.hpp"

namespace ngstack::stack::ifnet {

struct Interface {
  bool active = false;  // the config port is an IPv4 interface
  uint16_t index = 0;   // config port index
  uint16_t port_id = 0;
  rte_ether_addr mac{};
  uint16_t mtu = 1500;
  uint64_t tx_offloads = 0;  // RTE_ETH_TX_OFFLOAD_* the port enabled
  uint16_t tx_max_segs = 0;  // mbufs one frame may chain; 0: no limit given
  uint16_t tso_piece_max = 0;  // bytes a TSO piece may have, Ethernet header included; 0: the MTU's frame
  std::vector<conf::Ipv4Prefix> addresses;  // the first is the default source
  std::string name;
  bool on_subnet(uint32_t addr) const {
    for (const auto& a : addresses)
      if ((addr & a.mask()) == (a.addr & a.mask())) return true;
    return false;
  }
};

class Interfaces {
 public:
  Interfaces() = default;
  // One interface per router.interfaces entry; `ports` are the config ports once up.
  static Result<Interfaces> create(const conf::Config& cfg, const std::vector<PortInfo>& ports);

  std::size_t size() const { return ifaces_.size(); }
  const Interface& at(uint16_t cfg_port) const { return ifaces_[cfg_port]; }
  const std::vector<Interface>& all() const { return ifaces_; }
  // The config port of a DPDK port id when it is an active interface, else -1.
  int of_port_id(uint16_t port_id) const {
    const int i = port_index_.of(port_id);
    return i >= 0 && ifaces_[static_cast<std::size_t>(i)].active ? i : -1;
  }
  // The config port of any port id (interface or not), or -1.
  int cfg_port(uint16_t port_id) const { return port_index_.of(port_id); }
  // The active interface called `name`, or -1; `names` lists them for messages.
  int find(const std::string& name) const;
  std::string names() const;

  // Source address selection: the address of interface `cfg_port` on the
  // subnet of `dst`, else its first address.
  uint32_t source_for(uint16_t cfg_port, uint32_t dst) const;
  const ipv4::LocalAddresses& local() const { return local_; }

 private:
  std::vector<Interface> ifaces_;  // by config port
  PortIndex port_index_;
  ipv4::LocalAddresses local_;
};

}  // namespace ngstack::stack::ifnet
