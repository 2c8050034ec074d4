// The wiring of the modes whose stack is one netisr protocol: the forwarder
// (port-to-port cross-connect), the bridge and the traffic generator. Each
// registers its handler as the `ether` entry protocol.
#pragma once

#include <rte_ether.h>

#include <vector>

#include "conf/config.hpp"
#include "stack/bridge/bridge.hpp"
#include "stack/modes/common.hpp"
#include "stack/traffic/traffic.hpp"
#include "stack/xconnect.hpp"

namespace ngstack::stack::modes {

// The forwarder's paths from forwarder.paths; `macs[i]` is config port i's MAC.
Xconnect make_forwarder(const conf::Config& cfg, const std::vector<rte_ether_addr>& macs);
Result<dispatch::ProtoId> register_forwarder(Xconnect& x, dispatch::Netisr& netisr, const ProtocolSettings& settings);
Result<dispatch::ProtoId> register_bridge(Bridge& b, dispatch::Netisr& netisr, const ProtocolSettings& settings);
// Sinks count what arrives where the worker polled it: policy source.
Result<dispatch::ProtoId> register_traffic(traffic::Traffic& t, dispatch::Netisr& netisr,
                                           const ProtocolSettings& settings);

}  // namespace ngstack::stack::modes
