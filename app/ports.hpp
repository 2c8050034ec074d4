// EAL start-up arguments and port bring-up/tear-down.
//
// Virtual devices are probed one by one with rte_dev_probe after EAL starts, so
// that a device that does not probe is reported by its config key rather than
// as a generic EAL failure. PCI devices are allow-listed (-a) so that EAL
// probes only the NICs the config names.
#pragma once

#include <rte_ether.h>
#include <rte_mempool.h>

#include <string>
#include <vector>

#include "conf/config.hpp"
#include "conf/result.hpp"

namespace ngstack::app {

std::vector<std::string> eal_args(const conf::Config& cfg);

struct PortRuntime {
  std::string name;
  std::string device;
  std::string driver;
  uint16_t port_id = 0;
  bool hotplugged = false;  // a vdev we probed, to be removed at tear-down
  bool started = false;
  bool rss = false;
  rte_ether_addr mac{};
};

// Probe (vdevs) or find (PCI) every configured port.
Result<std::vector<PortRuntime>> probe_ports(const conf::Config& cfg);

// Configure queues, RSS, MTU, MAC and promiscuity, then start the port.
Status start_port(const conf::Config& cfg, std::size_t index, PortRuntime& port, rte_mempool* pool);

// Stop and close every port, and remove the vdevs we probed. Idempotent.
void close_ports(std::vector<PortRuntime>& ports);

}  // namespace ngstack::app
