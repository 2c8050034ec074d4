#include "app/runtime.hpp"

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "app/capture.hpp"
#include "app/metrics_server.hpp"
#include "app/control.hpp"
#include "app/preflight.hpp"
#include "app/stats.hpp"
#include "conf/host_check.hpp"
#include "dispatch/rss.hpp"
#include "stack/modes/l2.hpp"

namespace ngstack::app {

namespace {
std::atomic<bool> g_stop{false};

void on_signal(int) { g_stop.store(true); }

void fail(const std::string& msg) { std::fprintf(stderr, "ngstack: error: %s\n", msg.c_str()); }

constexpr double kTrafficLinkWaitS = 10.0;

// Waits until every port reports link up, or `seconds` passed (then says which are down).
void wait_for_links(const Runtime& rt, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  for (;;) {
    std::string down;
    for (const auto& p : rt.ports) {
      rte_eth_link link{};
      if (rte_eth_link_get_nowait(p.port_id, &link) != 0 || link.link_status != RTE_ETH_LINK_UP)
        down += (down.empty() ? "" : ", ") + p.name;
    }
    if (down.empty()) return;
    if (std::chrono::steady_clock::now() >= deadline) {
      spdlog::warn("traffic: link still down after {} s on {}; starting anyway", seconds, down);
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// traffic.stop_when_done: true once every generator is done and the sinks'
// frame count has not moved for settle_ms (what was in flight has arrived).
class TrafficDone {
 public:
  explicit TrafficDone(const Runtime& rt) : rt_(rt) {}
  bool check(double t) {
    if (!rt_.traffic || !rt_.cfg.traffic.stop_when_done) return false;
    for (const auto& g : rt_.traffic->generators())
      if (!g.done) return false;
    uint64_t sunk = 0;
    for (const auto& k : rt_.traffic->sinks(true)) sunk += k.packets;
    if (sunk != sunk_ || since_ < 0) {
      sunk_ = sunk;
      since_ = t;
      return false;
    }
    return (t - since_) * 1000.0 >= rt_.cfg.traffic.settle_ms;
  }

 private:
  const Runtime& rt_;
  uint64_t sunk_ = 0;
  double since_ = -1;
};

// clients.stop_when_done: true once every `clients:` generator opened all it
// was to open and every connection it opened has ended.
bool clients_done(const Runtime& rt) {
  if (!rt.router || !rt.cfg.clients.stop_when_done) return false;
  for (const auto& v : rt.router->services())
    if (v.type == conf::ServiceType::tcp_load && !v.done) return false;
  return true;
}

// Builds the workers, each with its rx queues, its tx queue index and buffers,
// and the mode's stack (forwarder, router or bridge) bound to them.
Status make_workers(Runtime& rt) {
  std::vector<uint16_t> port_ids;
  for (const auto& p : rt.ports) port_ids.push_back(p.port_id);
  std::vector<stack::WorkerIo> io;
  const stack::timer::WheelParams wheel{rt.tsc_hz, 1000, 1024, stack::modes::timer_nodes(rt.cfg)};
  for (std::size_t i = 0; i < rt.cfg.workers.list.size(); ++i) {
    const auto& wc = rt.cfg.workers.list[i];
    auto w = std::make_unique<Worker>(wc.lcore, static_cast<uint16_t>(i), rt.cfg.workers.burst, port_ids, g_stop);
    auto timers = stack::timer::TimerWheel::create(wheel);
    if (!timers) return Error{timers.error()};
    w->timers = std::move(*timers);
    io.push_back({&w->tx, &w->stats.drops, &w->stats.events, w->timers.get(), &w->loop_tsc});
    for (const auto& ref : wc.rx) {
      auto q = std::make_unique<WorkerRxQueue>();
      q->cfg_port = ref.port;
      q->port_id = rt.ports[ref.port].port_id;
      q->queue = ref.queue;
      w->rxqs.push_back(std::move(q));
    }
    if (w->rxqs.empty()) spdlog::warn("worker on lcore {} polls no rx queue; it will idle", wc.lcore);
    rt.workers.push_back(std::move(w));
  }
  std::vector<stack::PortInfo> info;  // what router and bridge need of the ports
  for (std::size_t i = 0; i < rt.ports.size(); ++i)
    info.push_back({rt.ports[i].port_id, rt.ports[i].mac, rt.cfg.ports[i].mtu, rt.ports[i].tx_offloads,
                    rt.ports[i].tx_max_segs, rt.ports[i].tso_piece_max});
  switch (rt.cfg.mode) {
    case conf::Mode::forwarder: {
      std::vector<rte_ether_addr> macs;
      for (const auto& p : rt.ports) macs.push_back(p.mac);
      rt.xconnect = std::make_unique<stack::Xconnect>(stack::modes::make_forwarder(rt.cfg, macs));
      rt.xconnect->bind(port_ids, std::move(io));
      break;
    }
    case conf::Mode::router:
    case conf::Mode::host: {
      auto router = stack::modes::Router::create(rt.cfg, info, rt.pool, static_cast<unsigned>(rt.workers.size()),
                                          rt.tsc_hz);
      if (!router) return Error{router.error()};
      rt.router = std::move(*router);
      rt.router->bind(std::move(io));
      rt.service = rt.router.get();
      break;
    }
    case conf::Mode::bridge: {
      auto bridge = stack::Bridge::create(rt.cfg, info, rt.pool, static_cast<unsigned>(rt.workers.size()),
                                          rt.tsc_hz);
      if (!bridge) return Error{bridge.error()};
      rt.bridge = std::move(*bridge);
      rt.bridge->bind(std::move(io));
      rt.service = rt.bridge.get();
      break;
    }
    case conf::Mode::traffic: {
      // A tester starts when its links are up: frames sent into a link that
      // is still coming up (a memif peer not yet connected) would be lost and
      // counted against the device under test.
      wait_for_links(rt, kTrafficLinkWaitS);
      std::vector<uint64_t> link_mbps;
      for (const auto& p : rt.ports) {
        rte_eth_link link{};
        link_mbps.push_back(rte_eth_link_get_nowait(p.port_id, &link) == 0 && link.link_speed != RTE_ETH_SPEED_NUM_UNKNOWN
                                ? link.link_speed
                                : 0);
      }
      auto traffic = stack::traffic::Traffic::create(rt.cfg, info, link_mbps, rt.pool,
                                                     static_cast<unsigned>(rt.workers.size()), rt.tsc_hz);
      if (!traffic) return Error{traffic.error()};
      rt.traffic = std::move(*traffic);
      rt.traffic->bind(std::move(io));
      rt.service = rt.traffic.get();
      break;
    }
  }
  for (auto& w : rt.workers) w->service = rt.service;
  return Ok{};
}

// Tears down what start-up built, in reverse. Returns the mempool check.
std::vector<MempoolCheck> teardown(Runtime& rt) {
  std::vector<MempoolCheck> checks;
  close_ports(rt.ports);
  // The mode's tables live in EAL memory: free them while EAL runs.
  rt.service = nullptr;
  rt.router.reset();
  rt.bridge.reset();
  rt.traffic.reset();
  if (rt.pool) {
    checks.push_back({rt.pool->name, rt.pool->size, rte_mempool_avail_count(rt.pool)});
    rte_mempool_free(rt.pool);
    rt.pool = nullptr;
  }
  return checks;
}

// DPDK leaves its runtime directory (/var/run/dpdk/<file_prefix>) behind; a
// primary process that is done removes its own so that runs do not pile up.
void eal_cleanup_and_remove_runtime_dir() {
  const std::string dir = rte_eal_get_runtime_dir();
  stop_capture();
  rte_eal_cleanup();
  std::error_code ec;
  if (!dir.empty()) std::filesystem::remove_all(dir, ec);
}

}  // namespace

Status setup_dispatch(Runtime& rt) {
  const conf::Config& cfg = rt.cfg;
  const auto& dc = cfg.dispatch;
  // Software flow hashes use the key the ports use, so they agree with RSS.
  rt.netisr = std::make_unique<dispatch::Netisr>(static_cast<unsigned>(rt.workers.size()), dc.buckets,
                                                 stack::modes::ports_rss_key(cfg));

  // Each mode registers its protocols; the first is the entry point that
  // every received burst goes through.
  auto settings = [&](dispatch::ProtocolSpec spec) {
    if (auto it = dc.protocols.find(spec.name); it != dc.protocols.end() && it->second.qlimit)
      spec.qlimit = *it->second.qlimit;
    spec.max_qlimit = std::max<uint32_t>(spec.qlimit, 4096);
    return spec;
  };
  Result<dispatch::ProtoId> entry = Error{"no mode"};
  switch (cfg.mode) {
    case conf::Mode::forwarder: entry = stack::modes::register_forwarder(*rt.xconnect, *rt.netisr, settings); break;
    case conf::Mode::router:
    case conf::Mode::host: entry = rt.router->register_protocols(*rt.netisr, settings); break;
    case conf::Mode::traffic: entry = stack::modes::register_traffic(*rt.traffic, *rt.netisr, settings); break;
    case conf::Mode::bridge: entry = stack::modes::register_bridge(*rt.bridge, *rt.netisr, settings); break;
  }
  if (!entry) return Error{entry.error()};

  std::string registered;
  for (unsigned p = 0; p < rt.netisr->protocols(); ++p)
    registered += (registered.empty() ? "" : ", ") + rt.netisr->protocol(static_cast<dispatch::ProtoId>(p)).name;
  for (const auto& [name, pc] : dc.protocols)
    if (rt.netisr->find_protocol(name) < 0)
      return Error{pc.pos.where() + ": no protocol \"" + name + "\" in " + conf::mode_name(cfg.mode) +
                   " mode (registered: " + registered + ")"};
  if (!dc.bucket_map.empty())
    if (auto st = rt.netisr->set_bucket_map(dc.bucket_map); !st) return Error{"dispatch.bucket_map: " + st.error()};
  // conf/ accepted only these names; an unknown one here is a bug, and keeps
  // the protocol's own setting rather than picking a default.
  auto st = rt.netisr->reconfigure([&](dispatch::DispatchConfig& c) {
    for (unsigned p = 0; p < rt.netisr->protocols(); ++p) {
      const std::string& name = rt.netisr->protocol(static_cast<dispatch::ProtoId>(p)).name;
      if (dc.mode) c.protos[p].mode = dispatch::mode_from_name(*dc.mode).value_or(c.protos[p].mode);
      auto it = dc.protocols.find(name);
      if (it == dc.protocols.end()) continue;
      const auto& pc = it->second;
      if (pc.mode) c.protos[p].mode = dispatch::mode_from_name(*pc.mode).value_or(c.protos[p].mode);
      if (pc.policy) c.protos[p].policy = dispatch::policy_from_name(*pc.policy).value_or(c.protos[p].policy);
      if (pc.qlimit) c.protos[p].qlimit = *pc.qlimit;
    }
  });
  if (!st) return Error{"dispatch: " + st.error()};
  const uint16_t batch = dc.drain_batch ? dc.drain_batch : cfg.workers.burst;
  for (auto& w : rt.workers) {
    w->netisr = rt.netisr.get();
    w->entry = *entry;
    w->drain_batch = batch;
  }
  return Ok{};
}

namespace {

std::string eal_failure_hint(int err) {
  switch (err) {
    case EACCES: return " (permission denied: run as root)";
    case ENOMEM: return " (not enough memory: raise eal.memory_mb, or reserve hugepages)";
    case EALREADY: return " (EAL already initialised)";
    default: return "";
  }
}
}  // namespace

int run(const conf::Config& cfg, const Options& opts) {
  if (auto st = check_root(geteuid()); !st) return fail(st.error()), kExitError;
  if (!cfg.eal.no_huge)
    if (auto st = check_hugepages(read_text_file("/proc/meminfo"), read_text_file("/proc/mounts")); !st)
      return fail(st.error()), kExitError;
  if (auto st = conf::check_lcores(cfg, conf::usable_cpus()); !st) return fail(st.error()), kExitError;

  std::vector<std::string> args = eal_args(cfg);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  spdlog::info("starting DPDK: {}", fmt::join(args, " "));
  if (rte_eal_init(static_cast<int>(argv.size()), argv.data()) < 0) {
    const int err = rte_errno;
    fail(std::string("DPDK EAL failed to start: ") + rte_strerror(err) + eal_failure_hint(err));
    return kExitError;
  }

  start_capture(cfg);
  Runtime rt(cfg);
  rt.tsc_hz = rte_get_tsc_hz();
  int rc = kExitOk;
  auto fail_and_cleanup = [&](const std::string& msg) {
    fail(msg);
    teardown(rt);
    eal_cleanup_and_remove_runtime_dir();
    return kExitError;
  };

  const unsigned nb_mbufs = cfg.mbufs_needed();
  rt.pool = rte_pktmbuf_pool_create("ngs_mbuf_pool", nb_mbufs, cfg.mempool.cache, 0,
                                    static_cast<uint16_t>(cfg.mempool.data_room + RTE_PKTMBUF_HEADROOM),
                                    static_cast<int>(rte_socket_id()));
  if (!rt.pool)
    return fail_and_cleanup("cannot allocate " + std::to_string(nb_mbufs) + " mbufs of " +
                            std::to_string(cfg.mempool.data_room) + " bytes (" + rte_strerror(rte_errno) +
                            "): raise eal.memory_mb (now " + std::to_string(cfg.eal.memory_mb) +
                            ") or lower mempool.mbufs, ring sizes or queue counts");

  auto probed = probe_ports(cfg);
  if (!probed) return fail_and_cleanup(probed.error());
  rt.ports = std::move(*probed);
  for (std::size_t i = 0; i < rt.ports.size(); ++i)
    if (auto st = start_port(cfg, i, rt.ports[i], rt.pool); !st) return fail_and_cleanup(st.error());

  if (auto st = make_workers(rt); !st) return fail_and_cleanup(st.error());
  if (auto st = setup_dispatch(rt); !st) return fail_and_cleanup(st.error());
  g_stop.store(false);
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  register_telemetry(&rt);
  MetricsServer metrics;
  if (auto st = metrics.start(cfg.metrics); !st) {
    unregister_telemetry();
    return fail_and_cleanup(st.error());
  }

  for (const auto& p : rt.ports)
    spdlog::info("port {}: {} ({}), mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}{}", p.name, p.device, p.driver,
                 p.mac.addr_bytes[0], p.mac.addr_bytes[1], p.mac.addr_bytes[2], p.mac.addr_bytes[3],
                 p.mac.addr_bytes[4], p.mac.addr_bytes[5], p.rss ? ", RSS on" : "");
  rt.start_tsc = rte_rdtsc();
  for (auto& w : rt.workers) rte_eal_remote_launch(worker_main, w.get(), w->lcore);
  // `ngstack show|set|route|arp` (app/control.hpp); stopped before teardown.
  if (auto st = start_control(&rt); !st) spdlog::warn("{}; ngstack show/set will not reach this instance", st.error());
  spdlog::info("{} worker(s) running in {} mode{}", rt.workers.size(), conf::mode_name(cfg.mode),
               opts.duration_s ? fmt::format(" for {} s", *opts.duration_s) : std::string(" until SIGINT/SIGTERM"));

  // The main lcore prints stats and watches the clock; it never touches packets.
  Summary summary;
  Snapshot prev = take_snapshot(rt);
  const double interval = opts.stats_interval_s > 0 ? opts.stats_interval_s : 1.0;
  double next_print = interval;
  TrafficDone traffic_done(rt);
  while (!g_stop.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    const double t = static_cast<double>(rte_rdtsc() - rt.start_tsc) / static_cast<double>(rt.tsc_hz);
    if (opts.duration_s && t >= *opts.duration_s) break;
    if (traffic_done.check(t)) {
      spdlog::info("traffic: every generator is done and the sinks were idle for {} ms: stopping",
                   rt.cfg.traffic.settle_ms);
      break;
    }
    if (clients_done(rt)) {
      spdlog::info("clients: every generator is done: stopping");
      break;
    }
    if (t >= next_print) {
      Snapshot cur = take_snapshot(rt);
      summary.intervals.push_back(interval_rate(prev, cur));
      if (!opts.quiet && opts.stats_interval_s > 0)
        std::fputs((format_interval(prev, cur) + format_clients_interval(prev, cur)).c_str(), stdout);
      std::fflush(stdout);
      prev = std::move(cur);
      next_print += interval;
    }
  }
  stop_control();
  g_stop.store(true);
  rte_eal_mp_wait_lcore();
  // Scrapes end with the traffic, before the stack frees what it holds.
  metrics.stop();
  // Work still queued between workers is handled now, on behalf of its target
  // (every worker has stopped), and what that sends is flushed.
  rt.netisr->drain_stopped();
  // The tables as they were when traffic stopped, for the summary; then the
  // stack frees (and counts) what it still holds: packets waiting for ARP,
  // fragments waiting for the rest of their datagram.
  const Snapshot at_stop = take_snapshot(rt);
  // No telemetry reader while the stack closes its sockets.
  unregister_telemetry();
  if (rt.service) rt.service->shutdown();
  for (auto& w : rt.workers) w->tx.flush_all();
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);

  summary.mode = conf::mode_name(cfg.mode);
  summary.source = cfg.source;
  summary.tsc_hz = rt.tsc_hz;
  summary.final = take_snapshot(rt, true);
  summary.final.neighbors = at_stop.neighbors;
  summary.final.fdb = at_stop.fdb;
  // The services as they served: shutdown closed their sockets.
  summary.final.services = at_stop.services;
  summary.final.locks = at_stop.locks;
  // TCP's connections and buffers as they were when traffic stopped
  // (shutdown freed them); its counters are the final ones.
  if (summary.final.tcp && at_stop.tcp) {
    summary.final.tcp->connections = at_stop.tcp->connections;
    summary.final.tcp->buffers_held = at_stop.tcp->buffers_held;
  }
  summary.mempools = teardown(rt);
  std::fputs(format_summary(summary).c_str(), stdout);
  std::fflush(stdout);
  if (!opts.json_path.empty()) {
    std::ofstream j(opts.json_path);
    j << summary_json(summary);
    if (!j) {
      fail("cannot write " + opts.json_path);
      rc = kExitError;
    }
  }
  if (!summary.ok()) {
    fail(summary.balanced() ? "an mbuf leaked: a mempool is not back to its full count"
                            : "packets unaccounted for: rx + originated != tx + drops + consumed");
    rc = kExitInvariant;
  }
  eal_cleanup_and_remove_runtime_dir();
  return rc;
}

}  // namespace ngstack::app
