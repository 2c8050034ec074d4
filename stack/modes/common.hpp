// What every mode's wiring shares: how a mode registers its netisr protocols.
// A mode registers its entry protocol (`ether`: every received burst goes
// through it) first, then the protocols its layers dispatch to.
#pragma once

#include <functional>
#include <vector>

#include "conf/config.hpp"
#include "conf/result.hpp"
#include "dispatch/netisr.hpp"
#include "stack/pcb/pcb.hpp"

namespace ngstack::stack::ipv4 {
class Ip;
}

namespace ngstack::stack::modes {

// Applies the config's dispatch settings (qlimit) to a protocol's defaults.
using ProtocolSettings = std::function<dispatch::ProtocolSpec(dispatch::ProtocolSpec)>;

// The `ether` entry protocol with its defaults: direct dispatch, flow policy
// over the IPv4 2-tuple flow id when the NIC gave no RSS hash.
dispatch::ProtocolSpec entry_protocol(const dispatch::Netisr& netisr, dispatch::HandlerFn handler, void* ctx);

// The Toeplitz key the ports hash with (the first port's, or the symmetric
// default): software flow hashes (the netisr) and the connection table's
// groups use it, so that they agree with RSS.
std::vector<uint8_t> ports_rss_key(const conf::Config& cfg);

// Timer nodes each worker's wheel needs for a config: an entry's timer lives
// on the wheel of the worker that created it, and any one worker may create
// them all.
unsigned timer_nodes(const conf::Config& cfg);

// A transport's connection table as `stack:` sets it (groups, locking, lock
// type, connections), its groups following the netisr's buckets, bucket map
// and the ports' key.
pcb::PcbParams pcb_params(const conf::Config& cfg, unsigned workers, unsigned buckets,
                          std::vector<uint16_t> bucket_map, std::vector<uint8_t> rss_key);

// Registers a transport (udp, tcp) with the netisr under policy cpu (its
// m2cpuid names the owner of the packet's group) and has ip deliver
// `ip_proto`, and the ICMP errors quoting it, to that protocol.
Result<dispatch::ProtoId> register_transport(dispatch::Netisr& netisr, const ProtocolSettings& settings,
                                             ipv4::Ip& ip, const char* name, uint8_t ip_proto,
                                             dispatch::HandlerFn handler, dispatch::M2CpuFn m2cpuid, void* ctx);

}  // namespace ngstack::stack::modes
