#include "stack/modes/l2.hpp"
#include "stack/ipv4/ip.hpp"

#include <algorithm>

#include "dispatch/rss.hpp"
#include "stack/flow_hash.hpp"

namespace ngstack::stack::modes {

dispatch::ProtocolSpec entry_protocol(const dispatch::Netisr& netisr, dispatch::HandlerFn handler, void* ctx) {
  dispatch::ProtocolSpec ether;
  ether.name = "ether";
  ether.handler = handler;
  ether.ctx = ctx;
  ether.policy = dispatch::Policy::flow;
  ether.mode = dispatch::Mode::direct;
  ether.m2flow = ipv4_flow_id;
  ether.flow_ctx = &netisr.flow_hash();
  ether.qlimit = 1024;
  return ether;
}

Xconnect make_forwarder(const conf::Config& cfg, const std::vector<rte_ether_addr>& macs) {
  std::vector<XconnectPath> paths(cfg.ports.size());
  for (const auto& fp : cfg.forwarder.paths) {
    auto& p = paths[fp.in_port];
    p.active = true;
    p.out_port = fp.out_port;
    if (fp.dst_mac) {
      p.rewrite = true;
      std::copy(fp.dst_mac->begin(), fp.dst_mac->end(), p.dst.addr_bytes);
      p.src = macs[fp.out_port];
    }
  }
  return Xconnect(std::move(paths));
}

Result<dispatch::ProtoId> register_forwarder(Xconnect& x, dispatch::Netisr& netisr, const ProtocolSettings& settings) {
  return netisr.register_protocol(settings(entry_protocol(netisr, Xconnect::netisr_handler, &x)));
}

Result<dispatch::ProtoId> register_bridge(Bridge& b, dispatch::Netisr& netisr, const ProtocolSettings& settings) {
  return netisr.register_protocol(settings(entry_protocol(netisr, Bridge::netisr_handler, &b)));
}

Result<dispatch::ProtoId> register_traffic(traffic::Traffic& t, dispatch::Netisr& netisr,
                                           const ProtocolSettings& settings) {
  dispatch::ProtocolSpec ether = entry_protocol(netisr, traffic::Traffic::netisr_handler, &t);
  ether.policy = dispatch::Policy::source;
  ether.m2flow = nullptr;
  return netisr.register_protocol(settings(ether));
}

std::vector<uint8_t> ports_rss_key(const conf::Config& cfg) {
  return cfg.ports.front().rss.key.empty() ? dispatch::symmetric_rss_key(40) : cfg.ports.front().rss.key;
}

pcb::PcbParams pcb_params(const conf::Config& cfg, unsigned workers, unsigned buckets,
                          std::vector<uint16_t> bucket_map, std::vector<uint8_t> rss_key) {
  pcb::PcbParams p;
  p.groups = cfg.stack.groups;
  p.buckets = buckets;
  p.bucket_map = std::move(bucket_map);
  p.workers = workers;
  p.locking = pcb::locking_from_name(cfg.stack.locking).value_or(pcb::Locking::group);
  p.lock_type = pcb::lock_type_from_name(cfg.stack.lock_type).value_or(pcb::LockType::spin);
  p.capacity = cfg.stack.connections;
  p.rss_key = std::move(rss_key);
  return p;
}

Result<dispatch::ProtoId> register_transport(dispatch::Netisr& netisr, const ProtocolSettings& settings,
                                             ipv4::Ip& ip, const char* name, uint8_t ip_proto,
                                             dispatch::HandlerFn handler, dispatch::M2CpuFn m2cpuid, void* ctx) {
  dispatch::ProtocolSpec spec;
  spec.name = name;
  spec.handler = handler;
  spec.ctx = ctx;
  spec.policy = dispatch::Policy::cpu;
  spec.m2cpuid = m2cpuid;
  spec.flow_ctx = ctx;
  auto id = netisr.register_protocol(settings(spec));
  if (!id) return id;
  ip.set_upper(&netisr, ip_proto, *id);
  return id;
}

unsigned timer_nodes(const conf::Config& cfg) {
  switch (cfg.mode) {
    // Two per ARP slot (an entry's timer, and the lingering one of an entry
    // the control path removed while its slot was reused), the reassembly
    // sweep, and room to spare.
    case conf::Mode::router:
    // TCP: a connection keeps at most 3 nodes armed, and under direct
    // dispatch any worker may arm one for it; a freed connection's nodes on
    // another worker's wheel stay until they fire (only the wheel's own
    // worker may cancel them).
    case conf::Mode::host: return 2 * cfg.router.arp.max_entries + 64 + 4 * cfg.stack.connections;
    // One per station (only ageing removes stations, and consumes the timer).
    case conf::Mode::bridge: return cfg.bridge.max_entries + 64;
    case conf::Mode::forwarder:
    case conf::Mode::traffic: break;
  }
  return 64;
}

}  // namespace ngstack::stack::modes
