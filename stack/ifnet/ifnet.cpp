#include "stack/ifnet/ifnet.hpp"

namespace ngstack::stack::ifnet {

Result<Interfaces> Interfaces::create(const conf::Config& cfg, const std::vector<PortInfo>& ports) {
  Interfaces r;
  r.ifaces_.resize(cfg.ports.size());
  std::vector<uint16_t> port_ids;
  for (std::size_t i = 0; i < ports.size(); ++i) {
    port_ids.push_back(ports[i].port_id);
    Interface& itf = r.ifaces_[i];
    itf.index = static_cast<uint16_t>(i);
    itf.port_id = ports[i].port_id;
    itf.mac = ports[i].mac;
    itf.mtu = ports[i].mtu;
    itf.tx_offloads = ports[i].tx_offloads;
    itf.tx_max_segs = ports[i].tx_max_segs;
    itf.tso_piece_max = ports[i].tso_piece_max;
    itf.name = cfg.ports[i].name;
  }
  r.port_index_ = PortIndex(port_ids);
  std::vector<ipv4::InterfaceAddress> local;
  for (const auto& ic : cfg.router.interfaces) {
    if (ic.port >= ports.size()) return Error{ic.pos.where() + ": no port " + std::to_string(ic.port)};
    Interface& itf = r.ifaces_[ic.port];
    itf.active = true;
    itf.addresses = ic.addresses;
    for (const auto& a : ic.addresses) local.push_back({itf.port_id, a.addr, a.len});
  }
  r.local_ = ipv4::LocalAddresses(std::move(local));
  return r;
}

int Interfaces::find(const std::string& name) const {
  for (std::size_t i = 0; i < ifaces_.size(); ++i)
    if (ifaces_[i].active && ifaces_[i].name == name) return static_cast<int>(i);
  return -1;
}

std::string Interfaces::names() const {
  std::string out;
  for (const auto& i : ifaces_)
    if (i.active) out += (out.empty() ? "" : ", ") + i.name;
  return out;
}

uint32_t Interfaces::source_for(uint16_t cfg_port, uint32_t dst) const {
  const auto& addrs = ifaces_[cfg_port].addresses;
  for (const auto& a : addrs)
    if ((dst & a.mask()) == (a.addr & a.mask())) return a.addr;
  return addrs.empty() ? 0 : addrs.front().addr;
}

}  // namespace ngstack::stack::ifnet
