// libFuzzer harness over router mode's input path: every input is one
// Ethernet frame received by one of two workers on an interface, run through
// the dispatcher's ether -> arp | ip (deferred, flow policy) demux into ARP input, IPv4 input validation, local
// delivery (reassembly, echo, ICMP errors), forwarding (FIB, TTL, MTU,
// fragmentation) and output (ARP resolution, hold queues). Built with
// AddressSanitizer; run by the `fuzz` meson suite for a bounded time.
//
// The router is real: net_null ports, a mempool, a FIB with a gateway route,
// a static and a learnable neighbour. Packets it sends are flushed to the
// null ports and freed; what it holds (ARP hold queues, fragments) stays held,
// bounded by the tables' limits. After every input the harness checks the
// accounting identity and that every mbuf out of the pool is one the stack holds.
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
#include "stack/modes/router.hpp"

using namespace ngstack;

namespace {

constexpr unsigned kWorkers = 2;

struct Harness {
  rte_mempool* pool = nullptr;
  std::vector<uint16_t> port_ids;
  std::unique_ptr<stack::modes::Router> router;
  std::unique_ptr<dispatch::Netisr> netisr;
  std::unique_ptr<stack::TxBuffers> tx[kWorkers];
  std::unique_ptr<stack::timer::TimerWheel> timers[kWorkers];
  stack::DropCounters drops[kWorkers];
  stack::EventCounters events[kWorkers];
  dispatch::ProtoId ether = 0;
  uint64_t rx = 0;
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
workers: {lcores: [1, 2]}
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
services:             # datagrams to 7 are answered, to 9 counted, to others refused
  - {type: udp-echo, port: 7}
  - {type: udp-discard, port: 9}
stack: {groups: 16}
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
  auto r = stack::modes::Router::create(*cfg, info, g->pool, kWorkers, rte_get_tsc_hz());
  if (!r) die(r.error().c_str());
  g->router = std::move(*r);
  std::vector<stack::WorkerIo> io;
  for (unsigned w = 0; w < kWorkers; ++w) {
    g->tx[w] = std::make_unique<stack::TxBuffers>(g->port_ids, static_cast<uint16_t>(w), 32, g->drops[w]);
    auto wheel = stack::timer::TimerWheel::create({rte_get_tsc_hz(), 1000, 1024, stack::modes::timer_nodes(*cfg)});
    if (!wheel) die(wheel.error().c_str());
    g->timers[w] = std::move(*wheel);
    io.push_back({g->tx[w].get(), &g->drops[w], &g->events[w], g->timers[w].get()});
  }
  g->router->bind(std::move(io));
  g->netisr = std::make_unique<dispatch::Netisr>(kWorkers, 64, dispatch::symmetric_rss_key(40));
  auto e = g->router->register_protocols(*g->netisr, [](dispatch::ProtocolSpec s) { return s; });
  if (!e) die(e.error().c_str());
  g->ether = *e;
  // ip deferred under the flow policy: what ether accepts on one worker is
  // handled by the worker that owns the flow, through the work queues.
  const int ip = g->netisr->find_protocol("ip");
  auto st = g->netisr->reconfigure([&](dispatch::DispatchConfig& c) {
    c.protos[ip].mode = dispatch::Mode::deferred;
    c.protos[ip].policy = dispatch::Policy::flow;
  });
  if (!st) die(st.error().c_str());
  // No worker is online for netisr: each adopts the configuration at its
  // first sync(), as a running worker does at the top of its loop.
  const std::atomic<bool> stop{false};
  for (unsigned w = 0; w < kWorkers; ++w)
    if (!g->netisr->sync(w, stop)) die("netisr sync");
  for (unsigned w = 0; w < kWorkers; ++w) g->router->worker_online(w);
  return 0;
}

namespace {

uint64_t total(const auto& counters) {
  uint64_t t = 0;
  for (const auto& c : counters) t += c.total();
  return t;
}

uint64_t event(stack::Event e) {
  uint64_t t = 0;
  for (const auto& c : g->events) t += c.get(e);
  return t;
}

uint64_t sent() {
  uint64_t t = 0;
  for (const auto& tx : g->tx)
    for (uint16_t p = 0; p < g->port_ids.size(); ++p) t += tx->stats(p).packets.get();
  return t;
}

// rx + originated == tx + drops + consumed + what the stack holds (ARP hold
// queues, fragments awaiting reassembly), and every mbuf out of the pool is
// one the stack holds: checked after every input.
void check_accounting() {
  const uint64_t held = g->router->arp().held() + g->router->ip().fragments_held();
  const uint64_t in = g->rx + event(stack::Event::originated);
  const uint64_t out = sent() + total(g->drops) + event(stack::Event::consumed) + held;
  if (in != out) {
    std::fprintf(stderr, "accounting: rx %llu + originated %llu != tx %llu + drops %llu + consumed %llu + held %llu\n",
                 static_cast<unsigned long long>(g->rx),
                 static_cast<unsigned long long>(event(stack::Event::originated)),
                 static_cast<unsigned long long>(sent()), static_cast<unsigned long long>(total(g->drops)),
                 static_cast<unsigned long long>(event(stack::Event::consumed)),
                 static_cast<unsigned long long>(held));
    die("packets lost or double counted");
  }
  if (g->router->arp().table().held_total() != g->router->arp().held()) die("ARP hold budget count drifted");
  const unsigned in_use = g->pool->size - rte_mempool_avail_count(g->pool);
  if (in_use != held) {
    std::fprintf(stderr, "mempool: %u mbufs in use, the stack holds %llu\n", in_use,
                 static_cast<unsigned long long>(held));
    die("mbuf leak");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 2048) return 0;
  rte_mbuf* m = rte_pktmbuf_alloc(g->pool);
  if (!m) die("pool exhausted: the router leaks mbufs");
  char* d = rte_pktmbuf_append(m, static_cast<uint16_t>(size));
  if (size && !d) die("append");
  if (size) std::memcpy(d, data, size);
  // The last byte picks the ingress port, whether the NIC flagged the IP
  // checksum good, and the worker that received it, so that all get fuzzed.
  const uint8_t knobs = size ? data[size - 1] : 0;
  m->port = g->port_ids[knobs & 1];
  if (knobs & 2) m->ol_flags |= RTE_MBUF_F_RX_IP_CKSUM_GOOD;
  const unsigned rx_worker = (knobs >> 2) & 1;
  ++g->rx;
  g->netisr->dispatch(rx_worker, g->ether, m->port, 0, &m, 1);
  // Both workers run their loop until nothing is queued.
  for (unsigned pass = 0; pass < 8; ++pass) {
    unsigned drained = 0;
    for (unsigned w = 0; w < kWorkers; ++w) {
      drained += g->netisr->drain(w, 64);
      g->router->poll(w, rte_rdtsc());
      g->timers[w]->run(rte_rdtsc());
      g->tx[w]->flush_all();
    }
    if (drained == 0) break;
  }
  check_accounting();
  return 0;
}
