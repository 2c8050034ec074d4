// libFuzzer harness over router mode's input path: every input is one
// Ethernet frame received on an interface, run through the dispatcher's
// ether -> arp | ip demux into ARP input, IPv4 input validation, local
// delivery (reassembly, echo, ICMP errors), forwarding (FIB, TTL, MTU,
// fragmentation) and output (ARP resolution, hold queues). Built with
// AddressSanitizer; run by the `fuzz` meson suite for a bounded time.
//
// The router is real: net_null ports, a mempool, a FIB with a gateway route,
// a static and a learnable neighbour. Packets it sends are flushed to the
// null ports and freed; what it holds (ARP hold queues, fragments) stays held,
// bounded by the tables' limits.
#include <rte_dev.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "conf/loader.hpp"
#include "dispatch/netisr.hpp"
#include "dispatch/rss.hpp"
#include "stack/flow_hash.hpp"
#include "stack/router.hpp"

using namespace ngstack;

namespace {

struct Harness {
  rte_mempool* pool = nullptr;
  std::vector<uint16_t> port_ids;
  std::unique_ptr<stack::Router> router;
  std::unique_ptr<dispatch::Netisr> netisr;
  std::unique_ptr<stack::TxBuffers> tx;
  stack::DropCounters drops;
  stack::EventCounters events;
  dispatch::ProtoId ether = 0;
};

Harness* g = nullptr;

void die(const char* what) {
  std::fprintf(stderr, "fuzz_router_input: %s\n", what);
  std::abort();
}

const char* kConfig = R"(mode: router
eal: {no_huge: true}
ports:
  - {name: p0, device: net_null0}
  - {name: p1, device: net_null1, mtu: 1280}
workers: {lcores: [1]}
router:
  interfaces:
    - {port: p0, addresses: [198.18.1.1/24, 198.18.2.1/32]}
    - {port: p1, addresses: [198.19.1.1/24]}
  routes:
    - {prefix: 10.0.0.0/8, via: 198.19.1.2}
    - {prefix: 192.0.2.0/24, action: blackhole}
    - {prefix: 198.51.100.0/24, action: reject}
  arp:                # short timers: retries, failures and ageing happen within a run
    reachable_ms: 100
    stale_ms: 100
    retries: 1
    retry_ms: 10
    hold_packets: 4
    max_entries: 64
    static:
      - {port: p1, address: 198.19.1.2, mac: "02:00:00:00:00:02"}
  icmp: {rate: 1000000, burst: 1000000}
  reassembly: {max_datagrams: 64, timeout_ms: 100}
)";

}  // namespace

// libFuzzer ends with exit(): remove the EAL runtime directory then.
static void remove_runtime_dir() {
  std::error_code ec;
  std::filesystem::remove_all(rte_eal_get_runtime_dir(), ec);
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const std::string prefix = "ngstack-fuzz-" + std::to_string(getpid());
  const char* argv[] = {"fuzz", "--no-huge", "-m", "512", "--no-pci", "--file-prefix", prefix.c_str(),
                        "--log-level", "error", "--no-telemetry", "-l", "0"};
  if (rte_eal_init(static_cast<int>(std::size(argv)), const_cast<char**>(argv)) < 0) die("EAL did not start");
  std::atexit(remove_runtime_dir);
  g = new Harness();
  auto cfg = conf::load_string(kConfig, "<fuzz>");
  if (!cfg) die(cfg.error().c_str());
  g->pool = rte_pktmbuf_pool_create("fuzz_pool", 8191, 0, 0, 2048 + RTE_PKTMBUF_HEADROOM, 0);
  if (!g->pool) die("no mempool");
  std::vector<stack::PortInfo> info;
  for (int p = 0; p < 2; ++p) {
    const std::string name = std::string("net_null").append(std::to_string(p));
    if (rte_dev_probe((name + ",no-rx=1").c_str()) != 0) die("net_null did not probe");
    uint16_t id;
    if (rte_eth_dev_get_port_by_name(name.c_str(), &id) != 0) die("no port id");
    rte_eth_conf conf{};
    if (rte_eth_dev_configure(id, 1, 1, &conf) != 0 || rte_eth_rx_queue_setup(id, 0, 64, 0, nullptr, g->pool) != 0 ||
        rte_eth_tx_queue_setup(id, 0, 512, 0, nullptr) != 0 || rte_eth_dev_start(id) != 0)
      die("port start");
    g->port_ids.push_back(id);
    rte_ether_addr mac{{0x02, 0, 0, 0, 1, static_cast<uint8_t>(p)}};
    info.push_back({id, mac, cfg->ports[p].mtu});
  }
  auto r = stack::Router::create(*cfg, info, g->pool, 1, rte_get_tsc_hz());
  if (!r) die(r.error().c_str());
  g->router = std::move(*r);
  g->tx = std::make_unique<stack::TxBuffers>(g->port_ids, 0, 32, g->drops);
  g->router->bind({stack::WorkerIo{g->tx.get(), &g->drops, &g->events}});
  g->netisr = std::make_unique<dispatch::Netisr>(1, 64, dispatch::symmetric_rss_key(40));
  dispatch::ProtocolSpec ether;
  ether.name = "ether";
  ether.handler = stack::Router::ether_handler;
  ether.ctx = g->router.get();
  ether.m2flow = stack::ipv4_flow_id;
  ether.flow_ctx = &g->netisr->flow_hash();
  dispatch::ProtocolSpec ip = ether, arp = ether;
  ip.name = "ip";
  ip.handler = stack::Router::ip_handler;
  arp.name = "arp";
  arp.handler = stack::Router::arp_handler;
  arp.policy = dispatch::Policy::source;
  auto e = g->netisr->register_protocol(ether);
  auto i = g->netisr->register_protocol(ip);
  auto a = g->netisr->register_protocol(arp);
  if (!e || !i || !a) die("netisr registration");
  g->ether = *e;
  g->router->set_dispatch(g->netisr.get(), *i, *a);
  g->router->worker_online(0);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 2048) return 0;
  rte_mbuf* m = rte_pktmbuf_alloc(g->pool);
  if (!m) die("pool exhausted: the router leaks mbufs");
  char* d = rte_pktmbuf_append(m, static_cast<uint16_t>(size));
  if (size && !d) die("append");
  if (size) std::memcpy(d, data, size);
  // The first byte picks the ingress port and whether the NIC flagged the
  // IP checksum good, so that both paths get fuzzed.
  const uint8_t knobs = size ? data[size - 1] : 0;
  m->port = g->port_ids[knobs & 1];
  if (knobs & 2) m->ol_flags |= RTE_MBUF_F_RX_IP_CKSUM_GOOD;
  g->netisr->dispatch(0, g->ether, m->port, 0, &m, 1);
  g->netisr->drain(0, 64);
  g->router->poll(0, rte_rdtsc());
  g->tx->flush_all();
  return 0;
}
