// EAL start-up arguments and port bring-up/tear-down.
//
// Virtual devices are probed one by one with rte_dev_probe after EAL starts, so
// that a device that does not probe is reported by its config key rather than
// as a generic EAL failure. PCI devices are allow-listed (-a) so that EAL
// probes only the NICs the config names.
//
// Rx offloads: every port asks for IPv4, UDP and TCP checksum verification
// and, when it hashes with RSS, for the hash in the mbuf, each only where the
// device offers it (choose_rx_offloads). What is asked for and what the
// device lacks is logged at start; the stack trusts a NIC verdict
// (RTE_MBUF_F_RX_IP_CKSUM_GOOD/BAD) and checks in software otherwise, and
// netisr uses the NIC's hash (RTE_MBUF_F_RX_RSS_HASH) before its own.
#pragma once

#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_mempool.h>

#include <cstdint>
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
  uint64_t rx_offloads = 0;  // RTE_ETH_RX_OFFLOAD_* asked of the device at configure
  uint64_t tx_offloads = 0;  // RTE_ETH_TX_OFFLOAD_* enabled: kTxChecksumOffloads it offers, TSO (kTxSegmentationOffloads)
  uint16_t tx_max_segs = 0;  // the device's limit of mbufs per frame (tx_desc_lim.nb_seg_max)
  uint16_t tso_piece_max = 0;  // a device that cuts TSO pieces smaller than the MTU's frame (see start_port)
  rte_ether_addr mac{};
};

// What a port wants from its device on receive: IPv4/UDP/TCP checksum
// verification always, the RSS hash when the port hashes.
inline constexpr uint64_t kRxChecksumOffloads =
    RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM | RTE_ETH_RX_OFFLOAD_TCP_CKSUM;

// What the stack asks on transmit where the device offers it: the IPv4
// header and UDP/TCP checksums of packets made here (forwarded packets never
// ask: their checksums are updated in software, RFC 1624).
inline constexpr uint64_t kTxChecksumOffloads =
    RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_UDP_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM;

// TCP segmentation offload (stack.tcp.tso): the stack hands the port one
// frame of up to 64 KB as a chain of mbufs and the device cuts it into
// MSS-sized segments; asked for only where the device offers both.
inline constexpr uint64_t kTxSegmentationOffloads = RTE_ETH_TX_OFFLOAD_TCP_TSO | RTE_ETH_TX_OFFLOAD_MULTI_SEGS;

struct RxOffloadChoice {
  uint64_t requested = 0;  // for rte_eth_conf.rxmode.offloads: wanted and offered
  uint64_t lacking = 0;    // wanted, not offered: the stack does that work itself
};

// Pure: the rx offloads to request from a device offering `rx_offload_capa`
// (rte_eth_dev_info) on a port configured with RSS hash types `rss_hf` (the
// config's types the device supports; 0 when the port does not hash). The
// RSS hash is wanted only with rss_hf != 0: ethdev refuses RSS_HASH without
// RSS (rte_eth_dev_configure, -EINVAL).
RxOffloadChoice choose_rx_offloads(uint64_t rx_offload_capa, uint64_t rss_hf);

// Lower-case offload names, in bit order ("ipv4_cksum", "rss_hash", ...).
std::vector<std::string> rx_offload_names(uint64_t offloads);
// The same names joined with ", ", or "none".
std::string rx_offload_list(uint64_t offloads);

// Probe (vdevs) or find (PCI) every configured port.
Result<std::vector<PortRuntime>> probe_ports(const conf::Config& cfg);

// Configure queues, RSS, MTU, MAC and promiscuity, then start the port.
Status start_port(const conf::Config& cfg, std::size_t index, PortRuntime& port, rte_mempool* pool);

// Stop and close every port, and remove the vdevs we probed. Idempotent.
void close_ports(std::vector<PortRuntime>& ports);

}  // namespace ngstack::app
