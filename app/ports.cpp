#include "app/ports.hpp"

#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <spdlog/spdlog.h>

#include <cctype>

#include "dispatch/rss.hpp"

namespace ngstack::app {

RxOffloadChoice choose_rx_offloads(uint64_t rx_offload_capa, uint64_t rss_hf) {
  uint64_t wanted = kRxChecksumOffloads;
  if (rss_hf != 0) wanted |= RTE_ETH_RX_OFFLOAD_RSS_HASH;
  return {wanted & rx_offload_capa, wanted & ~rx_offload_capa};
}

std::vector<std::string> rx_offload_names(uint64_t offloads) {
  std::vector<std::string> out;
  for (unsigned b = 0; b < 64; ++b) {
    const uint64_t bit = uint64_t{1} << b;
    if (!(offloads & bit)) continue;
    // DPDK's names are upper case ("IPV4_CKSUM"); ours follow the counters'.
    std::string n = rte_eth_dev_rx_offload_name(bit);
    for (char& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out.push_back(std::move(n));
  }
  return out;
}

std::string rx_offload_list(uint64_t offloads) {
  std::string s;
  for (const auto& n : rx_offload_names(offloads)) s += (s.empty() ? "" : ", ") + n;
  return s.empty() ? "none" : s;
}

std::vector<std::string> eal_args(const conf::Config& cfg) {
  std::vector<std::string> a{"ngstack"};
  // --lcores lcore@cpu: lcores may share a CPU (a worker beside the mostly
  // sleeping main lcore on a small machine).
  std::string lcores;
  for (unsigned c : cfg.eal.cores) {
    if (!lcores.empty()) lcores += ',';
    lcores += std::to_string(c);
    lcores += '@';
    lcores += std::to_string(cfg.eal.cpu_of(c));
  }
  a.insert(a.end(), {"--lcores", lcores, "--main-lcore", std::to_string(cfg.eal.cores.front()), "--file-prefix",
                     cfg.eal.file_prefix, "--log-level", cfg.eal.log_level, "-m",
                     std::to_string(cfg.eal.memory_mb)});
  if (cfg.eal.no_huge) a.push_back("--no-huge");
  bool any_pci = false;
  for (const auto& p : cfg.ports)
    if (!p.is_vdev()) {
      any_pci = true;
      a.insert(a.end(), {"-a", p.device});
    }
  if (!any_pci) a.push_back("--no-pci");
  a.insert(a.end(), cfg.eal.extra_args.begin(), cfg.eal.extra_args.end());
  return a;
}

Result<std::vector<PortRuntime>> probe_ports(const conf::Config& cfg) {
  std::vector<PortRuntime> out;
  for (const auto& p : cfg.ports) {
    PortRuntime rt;
    rt.name = p.name;
    rt.device = p.device;
    if (p.is_vdev()) {
      int rc = rte_dev_probe(p.device.c_str());
      if (rc != 0) {
        std::string hint;
        if (p.device.rfind("net_af_packet", 0) == 0) hint = " (does the interface named by iface= exist and is it up?)";
        if (p.device.rfind("net_pcap", 0) == 0) hint = " (is the capture file readable, or the interface present?)";
        close_ports(out);
        // Many drivers return -1 for any failure, which strerror would call EPERM.
        const std::string why = rc == -1 ? "the driver rejected it (its reason is logged above)" : rte_strerror(-rc);
        return Error{p.device_pos.where() + ": device \"" + p.device + "\" did not probe: " + why + hint};
      }
      rt.hotplugged = true;
    }
    uint16_t id = 0;
    if (rte_eth_dev_get_port_by_name(p.device_name().c_str(), &id) != 0) {
      close_ports(out);
      if (p.is_vdev())
        return Error{p.device_pos.where() + ": device \"" + p.device_name() + "\" probed but is not an ethdev"};
      return Error{p.device_pos.where() + ": PCI device " + p.device_name() +
                   " did not probe: is it present and bound to vfio-pci or uio_pci_generic? "
                   "(see deploy/README.md, NIC binding)"};
    }
    rt.port_id = id;
    rte_eth_dev_info info;
    if (rte_eth_dev_info_get(id, &info) == 0 && info.driver_name) rt.driver = info.driver_name;
    out.push_back(std::move(rt));
  }
  return out;
}

namespace {
Status port_error(const conf::SourcePos& pos, const std::string& what, int rc) {
  return Error{pos.where() + ": " + what + ": " + rte_strerror(rc < 0 ? -rc : rc)};
}
}  // namespace

Status start_port(const conf::Config& cfg, std::size_t index, PortRuntime& port, rte_mempool* pool) {
  const conf::PortConfig& pc = cfg.ports[index];
  const uint16_t id = port.port_id;
  uint16_t txq = cfg.tx_queues_of(pc);
  rte_eth_dev_info info;
  if (int rc = rte_eth_dev_info_get(id, &info); rc != 0) return port_error(pc.pos, "cannot read device info", rc);
  // Nothing is ever sent out of a port that is no path's output (a capture
  // source, say): it needs no tx queue per worker, only what it offers.
  if (!cfg.is_output(index) && pc.tx_queues == 0)
    txq = std::max<uint16_t>(1, std::min<uint16_t>(txq, info.max_tx_queues));
  if (pc.rx_queues > info.max_rx_queues)
    return Error{pc.rx_queues_pos.where() + ": port " + pc.name + " (" + port.driver + ") offers at most " +
                 std::to_string(info.max_rx_queues) + " rx queue(s), " + std::to_string(pc.rx_queues) + " requested"};
  if (txq > info.max_tx_queues)
    return Error{(pc.tx_queues ? pc.tx_queues_pos : cfg.workers.lcores_pos).where() + ": port " + pc.name + " (" +
                 port.driver + ") offers at most " + std::to_string(info.max_tx_queues) + " tx queue(s), " +
                 std::to_string(txq) + " needed (one per worker)"};
  if (pc.mtu < info.min_mtu || pc.mtu > info.max_mtu)
    return Error{pc.mtu_pos.where() + ": port " + pc.name + " (" + port.driver + ") supports MTU " +
                 std::to_string(info.min_mtu) + ".." + std::to_string(info.max_mtu) + ", " +
                 std::to_string(pc.mtu) + " requested"};

  rte_eth_conf conf{};
  std::vector<uint8_t> key;
  const uint64_t rss_hf = pc.rss.hash_types & info.flow_type_rss_offloads;
  if (info.flow_type_rss_offloads == 0) {
    spdlog::info("port {} ({}): the device has no RSS; each rx queue gets what the driver gives it", pc.name,
                 port.driver);
  } else {
    if (rss_hf != pc.rss.hash_types)
      spdlog::warn("port {} ({}): some requested RSS hash types are not supported and are left out "
                   "(requested {:#x}, supported {:#x})",
                   pc.name, port.driver, pc.rss.hash_types, info.flow_type_rss_offloads);
    key = pc.rss.key.empty() ? dispatch::symmetric_rss_key(info.hash_key_size ? info.hash_key_size : 40) : pc.rss.key;
    if (info.hash_key_size && key.size() != info.hash_key_size)
      return Error{pc.pos.where() + ".rss.key: port " + pc.name + " takes a " + std::to_string(info.hash_key_size) +
                   "-byte key, " + std::to_string(key.size()) + " bytes given"};
    conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
    conf.rx_adv_conf.rss_conf.rss_key = key.data();
    conf.rx_adv_conf.rss_conf.rss_key_len = static_cast<uint8_t>(key.size());
    conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
    port.rss = rss_hf != 0;
  }
  // Checksum verification and the RSS hash where the device has them; the
  // stack does without the rest (software checksum, software Toeplitz).
  const RxOffloadChoice rx = choose_rx_offloads(info.rx_offload_capa, port.rss ? rss_hf : 0);
  conf.rxmode.offloads = rx.requested;
  if (rx.lacking == 0)
    spdlog::info("port {} ({}): rx offloads requested: {}", pc.name, port.driver, rx_offload_list(rx.requested));
  else
    spdlog::info("port {} ({}): rx offloads requested: {}; not offered by the device: {}", pc.name, port.driver,
                 rx_offload_list(rx.requested), rx_offload_list(rx.lacking));
  conf.txmode.offloads = kTxChecksumOffloads & info.tx_offload_capa;
  // TSO needs the checksums offloaded too (the device fills each segment's).
  if (cfg.stack.tcp.tso && cfg.is_inet() && (info.tx_offload_capa & kTxSegmentationOffloads) == kTxSegmentationOffloads &&
      (conf.txmode.offloads & kTxChecksumOffloads) == kTxChecksumOffloads) {
    conf.txmode.offloads |= kTxSegmentationOffloads;
    // net_tap refuses a piece whose frame, Ethernet header included, is
    // longer than the MTU (it counts oerrors): its pieces stay that short.
    if (port.driver == "net_tap") port.tso_piece_max = pc.mtu;
    spdlog::info("port {} ({}): TCP segmentation offload enabled", pc.name, port.driver);
  }
  if (int rc = rte_eth_dev_configure(id, pc.rx_queues, txq, &conf); rc != 0)
    return port_error(pc.pos, "port " + pc.name + ": rte_eth_dev_configure failed", rc);
  port.rx_offloads = rx.requested;
  port.tx_offloads = conf.txmode.offloads;
  port.tx_max_segs = info.tx_desc_lim.nb_seg_max;
  uint16_t nb_rxd = pc.rx_ring, nb_txd = pc.tx_ring;
  if (int rc = rte_eth_dev_adjust_nb_rx_tx_desc(id, &nb_rxd, &nb_txd); rc != 0)
    return port_error(pc.pos, "port " + pc.name + ": cannot size the rings", rc);
  if (nb_rxd != pc.rx_ring || nb_txd != pc.tx_ring)
    spdlog::info("port {}: rings adjusted to the device's limits: rx {} -> {}, tx {} -> {}", pc.name, pc.rx_ring,
                 nb_rxd, pc.tx_ring, nb_txd);
  uint16_t cur_mtu = 0;
  if (rte_eth_dev_get_mtu(id, &cur_mtu) != 0 || cur_mtu != pc.mtu)
    if (int rc = rte_eth_dev_set_mtu(id, pc.mtu); rc != 0)
      return port_error(pc.mtu_pos, "port " + pc.name + ": cannot set MTU " + std::to_string(pc.mtu), rc);
  const int socket = rte_eth_dev_socket_id(id) < 0 ? 0 : rte_eth_dev_socket_id(id);
  for (uint16_t q = 0; q < pc.rx_queues; ++q)
    if (int rc = rte_eth_rx_queue_setup(id, q, nb_rxd, socket, nullptr, pool); rc != 0)
      return port_error(pc.rx_ring_pos, "port " + pc.name + ": rx queue " + std::to_string(q) + " setup failed", rc);
  for (uint16_t q = 0; q < txq; ++q)
    if (int rc = rte_eth_tx_queue_setup(id, q, nb_txd, socket, nullptr); rc != 0)
      return port_error(pc.tx_ring_pos, "port " + pc.name + ": tx queue " + std::to_string(q) + " setup failed", rc);
  if (pc.mac) {
    rte_ether_addr m;
    std::copy(pc.mac->begin(), pc.mac->end(), m.addr_bytes);
    if (int rc = rte_eth_dev_default_mac_addr_set(id, &m); rc != 0)
      return port_error(pc.pos, "port " + pc.name + ": cannot set MAC " + conf::format_mac(*pc.mac), rc);
  }
  if (int rc = rte_eth_dev_start(id); rc != 0) return port_error(pc.pos, "port " + pc.name + ": start failed", rc);
  port.started = true;
  if (port.rss && info.reta_size > 0) {
    std::vector<uint16_t> reta(info.reta_size);
    dispatch::fill_reta_round_robin(reta, pc.rx_queues);
    std::vector<rte_eth_rss_reta_entry64> entries((info.reta_size + RTE_ETH_RETA_GROUP_SIZE - 1) /
                                                  RTE_ETH_RETA_GROUP_SIZE);
    for (std::size_t i = 0; i < reta.size(); ++i) {
      auto& e = entries[i / RTE_ETH_RETA_GROUP_SIZE];
      e.mask |= 1ull << (i % RTE_ETH_RETA_GROUP_SIZE);
      e.reta[i % RTE_ETH_RETA_GROUP_SIZE] = reta[i];
    }
    if (int rc = rte_eth_dev_rss_reta_update(id, entries.data(), info.reta_size); rc != 0)
      spdlog::warn("port {}: cannot program the RSS redirection table ({}); the driver's default stays", pc.name,
                   rte_strerror(-rc));
  }
  if (pc.promiscuous) {
    if (int rc = rte_eth_promiscuous_enable(id); rc != 0)
      spdlog::warn("port {} ({}): cannot enable promiscuous mode: {}", pc.name, port.driver, rte_strerror(-rc));
  }
  rte_eth_macaddr_get(id, &port.mac);
  rte_eth_stats_reset(id);
  return Ok{};
}

void close_ports(std::vector<PortRuntime>& ports) {
  for (auto& p : ports) {
    if (p.started) {
      if (int rc = rte_eth_dev_stop(p.port_id); rc != 0)
        spdlog::warn("port {}: stop failed: {}", p.name, rte_strerror(-rc));
      p.started = false;
    }
    if (rte_eth_dev_is_valid_port(p.port_id)) rte_eth_dev_close(p.port_id);
    if (p.hotplugged) {
      // Closing an ethdev frees its queues; removing the vdev releases the
      // device itself so the EAL can shut down cleanly.
      rte_eal_hotplug_remove("vdev", p.device.substr(0, p.device.find(',')).c_str());
      p.hotplugged = false;
    }
  }
  ports.clear();
}

}  // namespace ngstack::app
