#include "app/stats.hpp"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_telemetry.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "app/runtime.hpp"

namespace ngstack::app {

namespace {
// One connection table's lock profile. The counters keep moving while
// workers run: the figures of one table are read close together, not at one
// instant.
LockTableSnap snapshot_lock_table(const stack::pcb::PcbTable& t) {
  namespace pcb = stack::pcb;
  const pcb::witness::PcbClasses& cls = pcb::witness::pcb_classes();
  LockTableSnap v;
  v.name = t.name();
  v.lookups = t.lookups();
  v.live = t.live();
  for (const pcb::witness::ClassId c : {cls.listen, cls.giant, cls.group, cls.conn}) {
    const pcb::LockProfile p = t.class_profile(c);
    v.classes.push_back({pcb::witness::class_name(c), p.acquisitions, p.contended, p.wait_cycles, p.wait_max,
                         p.hold_cycles, p.hold_max});
  }
  // The receive path's acquisitions (one per group per burst, or one per
  // burst in giant mode) per lookup; sockets sending from poll or opening
  // take the lock too, and those count in the class totals only.
  if (v.lookups)
    v.acquisitions_per_packet = static_cast<double>(t.burst_acquisitions()) / static_cast<double>(v.lookups);
  const bool owned = t.groups() >= t.buckets();  // else a group spans buckets of several workers
  for (uint32_t g = 0; g < t.groups(); ++g) {
    const pcb::LockProfile p = t.group_profile(g);
    if (p.acquisitions == 0) continue;
    v.busiest_groups.push_back(
        {g, owned ? static_cast<int>(t.group_owner(g)) : -1, p.acquisitions, p.contended, p.wait_cycles});
  }
  const auto busier = [](const LockGroupSnap& a, const LockGroupSnap& b) {
    return a.acquisitions != b.acquisitions ? a.acquisitions > b.acquisitions : a.group < b.group;
  };
  const std::size_t keep = std::min(v.busiest_groups.size(), kBusiestGroups);
  std::partial_sort(v.busiest_groups.begin(), v.busiest_groups.begin() + static_cast<std::ptrdiff_t>(keep),
                    v.busiest_groups.end(), busier);
  v.busiest_groups.resize(keep);
  return v;
}
}  // namespace

Snapshot take_snapshot(const Runtime& rt, bool workers_stopped) {
  Snapshot s;
  s.t_s = static_cast<double>(rte_rdtsc() - rt.start_tsc) / static_cast<double>(rt.tsc_hz);
  s.ports.resize(rt.ports.size());
  for (std::size_t i = 0; i < rt.ports.size(); ++i) {
    PortSnap& p = s.ports[i];
    p.name = rt.ports[i].name;
    p.device = rt.ports[i].device;
    p.driver = rt.ports[i].driver;
    p.rx_offloads = rt.ports[i].rx_offloads;
    rte_eth_stats es{};
    if (rte_eth_stats_get(rt.ports[i].port_id, &es) == 0) {
      p.imissed = es.imissed;
      p.ierrors = es.ierrors;
      p.oerrors = es.oerrors;
      p.rx_nombuf = es.rx_nombuf;
    }
  }
  for (const auto& wp : rt.workers) {
    const Worker& w = *wp;
    WorkerSnap ws;
    ws.lcore = w.lcore;
    for (const auto& q : w.rxqs) {
      QueueSnap qs{rt.ports[q->cfg_port].name, q->queue, w.lcore, q->stats.packets.get(), q->stats.bytes.get(),
                   q->stats.empty_polls.get()};
      ws.rx_packets += qs.packets;
      ws.rx_bytes += qs.bytes;
      ws.empty_polls += qs.empty_polls;
      s.ports[q->cfg_port].rx_packets += qs.packets;
      s.ports[q->cfg_port].rx_bytes += qs.bytes;
      s.queues.push_back(std::move(qs));
    }
    for (uint16_t p = 0; p < rt.ports.size(); ++p) {
      // Read each counter once: the worker keeps counting, and the queue,
      // port and worker figures of one snapshot must agree exactly.
      const auto& tx = w.tx.stats(p);
      const uint64_t packets = tx.packets.get();
      const uint64_t bytes = tx.bytes.get();
      ws.tx_packets += packets;
      ws.tx_bytes += bytes;
      s.ports[p].tx_packets += packets;
      s.ports[p].tx_bytes += bytes;
      s.tx_queues.push_back({rt.ports[p].name, w.index, w.lcore, packets, bytes});
    }
    for (std::size_t r = 0; r < stack::kDropReasonCount; ++r) {
      ws.drops[r] = w.stats.drops.get(static_cast<stack::DropReason>(r));
      ws.drops_total += ws.drops[r];
    }
    for (std::size_t e = 0; e < stack::kEventCount; ++e)
      ws.events[e] = w.stats.events.get(static_cast<stack::Event>(e));
    s.originated += ws.events[static_cast<std::size_t>(stack::Event::originated)];
    s.consumed += ws.events[static_cast<std::size_t>(stack::Event::consumed)];
    ws.iterations = w.stats.iterations.get();
    ws.busy_cycles = w.stats.busy_cycles.get();
    ws.total_cycles = w.stats.total_cycles.get();
    s.rx_packets += ws.rx_packets;
    s.tx_packets += ws.tx_packets;
    s.drops += ws.drops_total;
    s.workers.push_back(ws);
  }
  if (rt.netisr) {
    const dispatch::Netisr& n = *rt.netisr;
    const dispatch::DispatchConfig dc = n.current_config();
    s.buckets = n.buckets();
    s.bucket_map = dc.bucket_map;
    for (unsigned p = 0; p < n.protocols(); ++p)
      s.protocols.push_back({n.protocol(static_cast<dispatch::ProtoId>(p)).name, dispatch::policy_name(dc.protos[p].policy),
                             dispatch::mode_name(dc.protos[p].mode), dc.protos[p].qlimit});
    for (const auto& wp : rt.workers)
      for (unsigned p = 0; p < n.protocols(); ++p) {
        WorkstreamSnap ws{wp->lcore, s.protocols[p].name, n.stats(wp->index, static_cast<dispatch::ProtoId>(p))};
        s.qdrops += ws.s.qdrops;
        s.workstreams.push_back(std::move(ws));
      }
    s.drops += s.qdrops;
  }
  if (rt.router) {
    for (const auto& n : rt.router->neighbors())
      s.neighbors.push_back({n.port, conf::format_ipv4(n.addr),
                             conf::format_mac(std::to_array(n.mac.addr_bytes)),
                             stack::arp::state_name(n.state), n.age_ms, n.held});
    s.fib_routes = rt.router->fib().routes();
    s.fib_nexthops = rt.router->fib().nexthops();
    if (workers_stopped) snapshot_routes(rt, s);
    s.services = rt.router->services();
    const stack::pcb::PcbTable& udp = rt.router->udp().table();
    LocksSnap l;
    l.locking = stack::pcb::locking_name(udp.locking());
    l.lock_type = stack::pcb::lock_type_name(udp.lock_type());
    l.groups = udp.groups();
    l.tables.push_back(snapshot_lock_table(udp));
    stack::tcp::Tcp& tcp = rt.router->tcp();
    l.tables.push_back(snapshot_lock_table(tcp.table()));
    s.locks = std::move(l);
    TcpSnap t;
    for (std::size_t i = 0; i < stack::tcp::kStatCount; ++i) {
      const auto st = static_cast<stack::tcp::Stat>(i);
      t.stats.emplace_back(std::string(stack::tcp::stat_name(st)), tcp.stat(st));
    }
    t.connections = tcp.connections();
    t.worker_buffers = tcp.params().worker_buffers;
    for (unsigned w = 0; w < tcp.workers(); ++w) t.buffers_held.push_back(tcp.buffers_held(w));
    for (const auto* l : tcp.listeners())
      t.listeners.push_back({conf::format_ipv4(l->local().addr) + ":" + std::to_string(l->local().port), l->backlog(),
                             l->embryonic(), l->accepted(), l->overflowed()});
    s.tcp = std::move(t);
  }
  if (rt.traffic) {
    s.generators = rt.traffic->generators();
    s.sinks = rt.traffic->sinks(!workers_stopped);
  }
  if (rt.bridge)
    for (const auto& e : rt.bridge->fdb())
      s.fdb.push_back({e.vlan,
                       conf::format_mac(std::to_array(e.mac.addr_bytes)),
                       e.port, e.age_ms});
  return s;
}

void snapshot_routes(const Runtime& rt, Snapshot& s) {
  if (!rt.router) return;
  s.routes.clear();
  for (const auto& r : rt.router->fib().list()) {
    RouteSnap v;
    v.prefix = conf::format_prefix(conf::Ipv4Prefix{r.prefix, r.len});
    switch (r.nh.kind) {
      case stack::route::NextHopKind::forward: v.action = "forward"; break;
      case stack::route::NextHopKind::blackhole: v.action = "blackhole"; break;
      case stack::route::NextHopKind::reject: v.action = "reject"; break;
      case stack::route::NextHopKind::none: v.action = "none"; break;
    }
    if (r.nh.kind == stack::route::NextHopKind::forward) {
      if (r.nh.gateway) v.gateway = conf::format_ipv4(r.nh.gateway);
      v.port = rt.cfg.ports[r.nh.port].name;
    }
    v.type = r.connected ? "connected" : "static";
    s.routes.push_back(std::move(v));
  }
}

IntervalRate interval_rate(const Snapshot& prev, const Snapshot& cur) {
  IntervalRate r;
  r.t_s = cur.t_s;
  const double dt = cur.t_s - prev.t_s;
  if (dt <= 0) return r;
  uint64_t rxb = 0, txb = 0, prxb = 0, ptxb = 0;
  for (const auto& p : cur.ports) rxb += p.rx_bytes, txb += p.tx_bytes;
  for (const auto& p : prev.ports) prxb += p.rx_bytes, ptxb += p.tx_bytes;
  r.rx_pps = static_cast<double>(cur.rx_packets - prev.rx_packets) / dt;
  r.tx_pps = static_cast<double>(cur.tx_packets - prev.tx_packets) / dt;
  r.rx_bps = static_cast<double>(rxb - prxb) * 8 / dt;
  r.tx_bps = static_cast<double>(txb - ptxb) * 8 / dt;
  r.drops_ps = static_cast<double>(cur.drops - prev.drops) / dt;
  return r;
}

namespace {
std::string fmt(const char* f, auto... args) {
  char buf[512];
  std::snprintf(buf, sizeof buf, f, args...);
  return buf;
}

double per_s(uint64_t now, uint64_t before, double dt) {
  return dt > 0 ? static_cast<double>(now - before) / dt : 0.0;
}

double busy_fraction(uint64_t busy, uint64_t total) {
  return total ? static_cast<double>(busy) / static_cast<double>(total) : 0.0;
}

std::string drop_list(const std::array<uint64_t, stack::kDropReasonCount>& d) {
  std::string out;
  for (std::size_t r = 0; r < d.size(); ++r)
    if (d[r]) out += fmt(" %s=%llu", std::string(stack::drop_reason_name(static_cast<stack::DropReason>(r))).c_str(),
                         static_cast<unsigned long long>(d[r]));
  return out.empty() ? " none" : out;
}

std::string event_list(const std::array<uint64_t, stack::kEventCount>& d) {
  std::string out;
  for (std::size_t e = 0; e < d.size(); ++e)
    if (d[e]) out += fmt(" %s=%llu", std::string(stack::event_name(static_cast<stack::Event>(e))).c_str(),
                         static_cast<unsigned long long>(d[e]));
  return out;
}
}  // namespace

std::string format_interval(const Snapshot& prev, const Snapshot& cur) {
  const double dt = cur.t_s - prev.t_s;
  const IntervalRate r = interval_rate(prev, cur);
  std::string o = fmt("[%7.1fs] rx %8.3f Mpps %7.3f Gbit/s | tx %8.3f Mpps %7.3f Gbit/s | drops %.0f/s\n", cur.t_s,
                      r.rx_pps / 1e6, r.rx_bps / 1e9, r.tx_pps / 1e6, r.tx_bps / 1e9, r.drops_ps);
  o += fmt("  %-10s %10s %10s %10s %10s %9s %9s %9s\n", "port", "rx Mpps", "tx Mpps", "rx Gb/s", "tx Gb/s", "missed/s",
           "nombuf/s", "errors/s");
  for (std::size_t i = 0; i < cur.ports.size(); ++i) {
    const PortSnap &c = cur.ports[i], &p = prev.ports[i];
    o += fmt("  %-10s %10.3f %10.3f %10.3f %10.3f %9.0f %9.0f %9.0f\n", c.name.c_str(),
             per_s(c.rx_packets, p.rx_packets, dt) / 1e6, per_s(c.tx_packets, p.tx_packets, dt) / 1e6,
             per_s(c.rx_bytes, p.rx_bytes, dt) * 8 / 1e9, per_s(c.tx_bytes, p.tx_bytes, dt) * 8 / 1e9,
             per_s(c.imissed, p.imissed, dt), per_s(c.rx_nombuf, p.rx_nombuf, dt),
             per_s(c.ierrors + c.oerrors, p.ierrors + p.oerrors, dt));
  }
  o += fmt("  %-10s %10s %10s %10s %10s %9s %10s %9s\n", "worker", "rx Mpps", "tx Mpps", "busy %", "empty/s",
           "drops/s", "queued/s", "qdrops/s");
  for (std::size_t i = 0; i < cur.workers.size(); ++i) {
    const WorkerSnap &c = cur.workers[i], &p = prev.workers[i];
    // netisr: packets queued *to* this worker and dropped at its queues.
    uint64_t cq = 0, pq = 0, cd = 0, pd = 0;
    for (std::size_t k = 0; k < cur.workstreams.size(); ++k)
      if (cur.workstreams[k].lcore == c.lcore) {
        cq += cur.workstreams[k].s.queued, pq += prev.workstreams[k].s.queued;
        cd += cur.workstreams[k].s.qdrops, pd += prev.workstreams[k].s.qdrops;
      }
    o += fmt("  lcore %-4u %10.3f %10.3f %10.1f %10.0f %9.0f %10.0f %9.0f\n", c.lcore,
             per_s(c.rx_packets, p.rx_packets, dt) / 1e6, per_s(c.tx_packets, p.tx_packets, dt) / 1e6,
             100 * busy_fraction(c.busy_cycles - p.busy_cycles, c.total_cycles - p.total_cycles),
             per_s(c.empty_polls, p.empty_polls, dt), per_s(c.drops_total, p.drops_total, dt), per_s(cq, pq, dt),
             per_s(cd, pd, dt));
  }
  return o;
}

std::string format_netisr(const Snapshot& f) {
  if (f.protocols.empty()) return "";
  auto ull = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  std::string o = fmt("netisr: %u RSS buckets\n  %-8s %-8s %-9s %7s\n", f.buckets, "protocol", "policy", "dispatch",
                      "qlimit");
  for (const auto& p : f.protocols)
    o += fmt("  %-8s %-8s %-9s %7u\n", p.name.c_str(), p.policy.c_str(), p.mode.c_str(), p.qlimit);
  // 32 buckets a line, the form `ngstack set netisr buckets` takes.
  if (!f.bucket_map.empty()) o += "  bucket map (bucket -> worker index):";
  for (std::size_t b = 0; b < f.bucket_map.size(); ++b) {
    if (b % 32 == 0) o += fmt("\n    %3zu: ", b);
    o += std::to_string(f.bucket_map[b]);
    if (b + 1 < f.bucket_map.size()) o += ',';
  }
  if (!f.bucket_map.empty()) o += "\n";
  o += fmt("  %-6s %-8s %6s %6s %12s %12s %12s %12s %10s\n", "lcore", "protocol", "qlen", "wmark", "dispatched",
           "hybrid", "queued", "handled", "qdrops");
  for (const auto& w : f.workstreams)
    o += fmt("  %-6u %-8s %6llu %6llu %12llu %12llu %12llu %12llu %10llu\n", w.lcore, w.proto.c_str(), ull(w.s.length),
             ull(w.s.watermark), ull(w.s.dispatched), ull(w.s.hybrid), ull(w.s.queued), ull(w.s.handled),
             ull(w.s.qdrops));
  return o;
}

bool Summary::mempools_full() const {
  for (const auto& m : mempools)
    if (!m.full()) return false;
  return true;
}

std::string format_ports(const Snapshot& f) {
  auto ull = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  std::string o = fmt("%-10s %14s %14s %14s %14s %10s %10s %10s %10s\n", "port", "rx packets", "tx packets",
                      "rx bytes", "tx bytes", "missed", "nombuf", "ierrors", "oerrors");
  for (const auto& p : f.ports)
    o += fmt("%-10s %14llu %14llu %14llu %14llu %10llu %10llu %10llu %10llu\n", p.name.c_str(), ull(p.rx_packets),
             ull(p.tx_packets), ull(p.rx_bytes), ull(p.tx_bytes), ull(p.imissed), ull(p.rx_nombuf), ull(p.ierrors),
             ull(p.oerrors));
  o += fmt("%-10s %8s %8s %14s %14s %14s\n", "rx queue", "", "lcore", "rx packets", "rx bytes", "empty polls");
  for (const auto& q : f.queues)
    o += fmt("%-10s     /%-3u %8u %14llu %14llu %14llu\n", q.port.c_str(), unsigned{q.queue}, q.lcore,
             ull(q.packets), ull(q.bytes), ull(q.empty_polls));
  o += fmt("%-10s %8s %8s %14s %14s\n", "tx queue", "", "lcore", "tx packets", "tx bytes");
  for (const auto& q : f.tx_queues)
    o += fmt("%-10s     /%-3u %8u %14llu %14llu\n", q.port.c_str(), unsigned{q.queue}, q.lcore, ull(q.packets),
             ull(q.bytes));
  return o;
}

std::string format_workers(const Snapshot& f) {
  auto ull = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  const double t = f.t_s > 0 ? f.t_s : 1;
  std::string o;
  for (const auto& w : f.workers) {
    const double cpp = w.rx_packets ? static_cast<double>(w.busy_cycles) / static_cast<double>(w.rx_packets) : 0;
    o += fmt("worker lcore %u: rx %llu (%.3f Mpps), tx %llu, busy %.1f%%, %.1f cycles/packet, empty polls %llu, "
             "drops:%s\n",
             w.lcore, ull(w.rx_packets), static_cast<double>(w.rx_packets) / t / 1e6, ull(w.tx_packets),
             100 * busy_fraction(w.busy_cycles, w.total_cycles), cpp, ull(w.empty_polls), drop_list(w.drops).c_str());
    if (const std::string ev = event_list(w.events); !ev.empty()) o += "  stack:" + ev + "\n";
  }
  return o;
}

std::string format_fib(const Snapshot& f, bool table) {
  std::string o = fmt("fib: %u routes over %u next hops\n", f.fib_routes, f.fib_nexthops);
  if (!table || f.routes.empty()) return o;
  o += fmt("  %-18s %-22s %-8s %s\n", "prefix", "next hop", "port", "type");
  for (const auto& r : f.routes)
    o += fmt("  %-18s %-22s %-8s %s\n", r.prefix.c_str(),
             r.action == "forward" ? (r.gateway.empty() ? "connected" : ("via " + r.gateway).c_str()) : r.action.c_str(),
             r.port.empty() ? "-" : r.port.c_str(), r.type.c_str());
  return o;
}

std::string format_arp(const Snapshot& f) {
  auto ull = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  std::string o = fmt("arp: %zu entries\n", f.neighbors.size());
  for (const auto& n : f.neighbors)
    o += fmt("  %-8s %-15s %s %-10s age %llu ms%s\n", n.port.c_str(), n.addr.c_str(), n.mac.c_str(), n.state.c_str(),
             ull(n.age_ms), n.held ? fmt(", %u held", n.held).c_str() : "");
  return o;
}

std::string format_fdb(const Snapshot& f) {
  auto ull = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  std::string o = fmt("fdb: %zu entries\n", f.fdb.size());
  for (const auto& e : f.fdb)
    o += fmt("  vlan %-4u %s on %-8s age %llu ms\n", unsigned{e.vlan}, e.mac.c_str(), e.port.c_str(), ull(e.age_ms));
  return o;
}

std::string format_traffic(const Snapshot& f) {
  auto ull = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  std::string o;
  for (const auto& g : f.generators)
    o += fmt("generator %s (worker %u, %u flows): %llu frames, %llu bytes in %.3f s, %.0f frames/s (target %s)%s\n",
             g.port.c_str(), g.worker, g.flows, ull(g.packets), ull(g.bytes), g.seconds, g.achieved_pps,
             g.target_pps > 0 ? fmt("%.0f", g.target_pps).c_str() : "unpaced", g.done ? ", done" : "");
  for (const auto& k : f.sinks) {
    o += fmt("sink %s: %llu frames, %llu bytes; stamped %llu over %llu flows, unstamped %llu, unknown flow %llu; "
             "lost %llu, duplicates %llu, reordered %llu, beyond the window %llu\n",
             k.port.c_str(), ull(k.packets), ull(k.bytes), ull(k.stamped), ull(k.flows), ull(k.unstamped),
             ull(k.unknown_flow), ull(k.lost), ull(k.duplicates), ull(k.reordered), ull(k.beyond_window));
    if (k.latency_samples)
      o += fmt("  latency (ns): min %llu, p50 %llu, p99 %llu, p99.9 %llu, max %llu over %llu frames\n",
               ull(k.latency_min_ns), ull(k.latency_p50_ns), ull(k.latency_p99_ns), ull(k.latency_p999_ns),
               ull(k.latency_max_ns), ull(k.latency_samples));
    if (k.latency_future)
      o += fmt("  %llu stamps carry a TSC ahead of this host's: no latency from another host's clock\n",
               ull(k.latency_future));
  }
  return o;
}

namespace {
bool is_client(const stack::services::ServiceView& v) {
  return v.type == conf::ServiceType::udp_client || v.type == conf::ServiceType::tcp_client;
}

// The service's end: its bound address:port, or the server:port a client talks to.
std::string service_endpoint(const stack::services::ServiceView& v) {
  return conf::format_ipv4(is_client(v) ? v.server : v.address) + ":" + std::to_string(v.port);
}
}  // namespace

std::string format_services(const Snapshot& f) {
  const auto n = static_cast<size_t>(std::count_if(f.services.begin(), f.services.end(), [](const auto& v) {
    return v.type != conf::ServiceType::tcp_load;
  }));
  if (n == 0) return "";
  auto ull = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  std::string o = fmt("services: %zu\n", n);
  for (const auto& v : f.services) {
    if (v.type == conf::ServiceType::tcp_load) continue;
    const auto& io = v.io;
    if (conf::is_tcp_service(v.type)) {
      o += fmt("  %-11s %-24s %llu connection%s (%llu reset or timed out): rx %llu bytes, tx %llu bytes\n",
               conf::service_type_name(v.type), ((is_client(v) ? "to " : "") + service_endpoint(v)).c_str(), ull(v.connections),
               v.connections == 1 ? "" : "s", ull(v.resets), ull(io.rx_bytes), ull(io.tx_bytes));
      if (v.type == conf::ServiceType::http)
        o += fmt("    requests %llu, responses %llu (2xx %llu, 3xx %llu, 4xx %llu, 5xx %llu), refused for want of a "
                 "session %llu\n",
                 ull(v.requests), ull(v.responses), ull(v.http_status[2]), ull(v.http_status[3]),
                 ull(v.http_status[4]), ull(v.http_status[5]), ull(v.lost));
      continue;
    }
    o += fmt("  %-11s %-24s %u socket%s: rx %llu datagrams %llu bytes, tx %llu datagrams %llu bytes; "
             "tx_no_mbuf %llu, tx_queue_full %llu, tx_unroutable %llu; icmp_errors %llu\n",
             conf::service_type_name(v.type), ((is_client(v) ? "to " : "") + service_endpoint(v)).c_str(), v.sockets,
             v.sockets == 1 ? "" : "s", ull(io.rx_datagrams), ull(io.rx_bytes), ull(io.tx_datagrams), ull(io.tx_bytes),
             ull(io.tx_no_mbuf), ull(io.tx_queue_full), ull(io.tx_unroutable), ull(io.icmp_errors));
    if (!is_client(v)) continue;
    o += fmt("    requests %llu, responses %llu, lost %llu, late %llu; %.1f transactions/s over %.3f s%s\n",
             ull(v.requests), ull(v.responses), ull(v.lost), ull(v.late), v.transactions_per_s, v.seconds,
             v.done ? ", done" : "");
    if (v.latency.samples)
      o += fmt("    latency (us): p50 %.1f, p99 %.1f, max %.1f (min %.1f, mean %.1f) over %llu responses\n",
               v.latency.p50_us, v.latency.p99_us, v.latency.max_us, v.latency.min_us, v.latency.mean_us,
               ull(v.latency.samples));
  }
  return o;
}

namespace {
std::string latency_line(const char* what, const stack::services::LatencySummary& l) {
  if (!l.samples) return "";
  return fmt("    %-12s (us): min %.1f, p50 %.1f, p99 %.1f, p99.9 %.1f, max %.1f (mean %.1f) over %llu\n", what,
             l.min_us, l.p50_us, l.p99_us, l.p999_us, l.max_us, l.mean_us, static_cast<unsigned long long>(l.samples));
}
std::string load_target(const stack::services::ServiceView& v) {
  const auto& l = v.load;
  std::string t = conf::format_ipv4(v.server);
  if (l.addresses > 1) t += "-" + conf::format_ipv4(v.server + l.addresses - 1);
  t += ":" + std::to_string(v.port);
  if (l.ports > 1) t += "-" + std::to_string(v.port + l.ports - 1);
  return t;
}
}  // namespace

std::string format_clients(const Snapshot& f) {
  std::string o;
  auto ull = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  for (const auto& v : f.services) {
    if (v.type != conf::ServiceType::tcp_load) continue;
    const auto& l = v.load;
    if (o.empty()) o = "clients:\n";
    const double s = l.seconds;
    o += fmt("  %-11s to %s, %s: %llu connections attempted (%.1f/s), %llu established, %llu completed, %llu open "
             "(peak %llu)%s\n",
             l.name.c_str(), load_target(v).c_str(),
             l.rate > 0 ? fmt("rate %.0f/s", l.rate).c_str() : fmt("concurrency %u", l.concurrency).c_str(),
             ull(l.attempted), s > 0 ? static_cast<double>(l.attempted) / s : 0.0, ull(l.established),
             ull(l.completed), ull(l.open), ull(l.peak_open), v.done ? ", done" : "");
    o += fmt("    requests %llu, responses %llu (%.1f/s); tx %llu bytes, rx %llu bytes\n", ull(l.requests),
             ull(l.responses), l.response_seconds > 0 ? static_cast<double>(l.responses) / l.response_seconds : 0.0,
             ull(l.tx_bytes), ull(l.rx_bytes));
    o += fmt("    tcp: acked %llu bytes sent, %llu received, goodput %llu bytes (%.3f Mbit/s); on the wire %llu bytes, "
             "%llu retransmitted (%.3f%%, %llu segments)\n",
             ull(l.tx_acked_bytes), ull(l.rx_acked_bytes), ull(l.goodput_bytes), l.goodput_bytes_per_s() * 8 / 1e6,
             ull(l.tx_wire_bytes), ull(l.retransmitted_bytes), 100.0 * l.retransmission_ratio(),
             ull(l.retransmits));
    if (l.http_status[1] + l.http_status[2] + l.http_status[3] + l.http_status[4] + l.http_status[5])
      o += fmt("    http responses: 1xx %llu, 2xx %llu, 3xx %llu, 4xx %llu, 5xx %llu\n", ull(l.http_status[1]),
               ull(l.http_status[2]), ull(l.http_status[3]), ull(l.http_status[4]), ull(l.http_status[5]));
    o += fmt("    errors %llu: refused %llu, reset %llu, timeout %llu, bad_response %llu, local %llu, no_session %llu\n",
             ull(l.errors()), ull(l.refused), ull(l.reset), ull(l.timeout), ull(l.bad_response), ull(l.local),
             ull(l.no_session));
    o += latency_line("connect", l.connect) + latency_line("first byte", l.ttfb) +
         latency_line("transaction", l.transaction);
  }
  return o;
}

std::string format_clients_interval(const Snapshot& prev, const Snapshot& cur) {
  std::string o;
  const double dt = cur.t_s - prev.t_s;
  for (std::size_t i = 0; i < cur.services.size(); ++i) {
    const auto& v = cur.services[i];
    if (v.type != conf::ServiceType::tcp_load || i >= prev.services.size()) continue;
    const auto &c = v.load, &p = prev.services[i].load;
    const uint64_t wire = c.tx_wire_bytes - p.tx_wire_bytes, rexmit = c.retransmitted_bytes - p.retransmitted_bytes;
    o += fmt("  client %-10s conn/s %8.0f attempted %8.0f established | req/s %8.0f | open %6llu (peak %llu) | "
             "goodput %8.3f Mbit/s, tx %8.3f Mbit/s, rexmit %.2f%% | errors/s %.0f\n",
             c.name.c_str(), per_s(c.attempted, p.attempted, dt), per_s(c.established, p.established, dt),
             per_s(c.responses, p.responses, dt), static_cast<unsigned long long>(c.open),
             static_cast<unsigned long long>(c.peak_open), per_s(c.goodput_bytes, p.goodput_bytes, dt) * 8 / 1e6,
             per_s(c.tx_wire_bytes, p.tx_wire_bytes, dt) * 8 / 1e6,
             wire ? 100.0 * static_cast<double>(rexmit) / static_cast<double>(wire) : 0.0,
             per_s(c.errors(), p.errors(), dt));
  }
  return o;
}

namespace {
std::string endpoint(uint32_t addr, uint16_t port) { return conf::format_ipv4(addr) + ":" + std::to_string(port); }
}  // namespace

std::string format_tcp(const Snapshot& f, bool all_connections) {
  if (!f.tcp) return "";
  auto ull = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  const TcpSnap& t = *f.tcp;
  std::string o = fmt("tcp: %zu connection%s, %zu listener%s\n", t.connections.size(),
                      t.connections.size() == 1 ? "" : "s", t.listeners.size(), t.listeners.size() == 1 ? "" : "s");
  // The counters that moved, as netstat -s prints them: name and value.
  std::string line = "  ";
  for (const auto& [name, v] : t.stats) {
    if (v == 0) continue;
    std::string item = name + " " + std::to_string(v) + ", ";
    if (line.size() + item.size() > 110) {
      o += line.substr(0, line.size() - 2) + "\n";
      line = "  ";
    }
    line += item;
  }
  if (line.size() > 2) o += line.substr(0, line.size() - 2) + "\n";
  o += fmt("  buffers held (mbufs, budget %u per worker):", t.worker_buffers);
  for (std::size_t w = 0; w < t.buffers_held.size(); ++w) o += fmt(" w%zu %lld", w, static_cast<long long>(t.buffers_held[w]));
  o += "\n";
  for (const auto& l : t.listeners)
    o += fmt("  listen %-21s backlog %u, syn-received %u, accepted %llu, overflowed %llu\n", l.local.c_str(),
             l.backlog, l.embryonic, ull(l.accepted), ull(l.overflowed));
  const std::size_t shown = all_connections ? t.connections.size() : std::min<std::size_t>(t.connections.size(), 20);
  if (shown)
    o += fmt("  %-21s %-21s %-12s %9s %9s %8s %10s %10s %6s %12s %12s\n", "local", "foreign", "state", "rtt_us",
             "rttvar_us", "rto_ms", "cwnd", "ssthresh", "rexmt", "bytes_in", "bytes_out");
  for (std::size_t i = 0; i < shown; ++i) {
    const auto& c = t.connections[i];
    o += fmt("  %-21s %-21s %-12s %9u %9u %8u %10u %10u %6u %12llu %12llu\n",
             endpoint(c.tuple.laddr, c.tuple.lport).c_str(), endpoint(c.tuple.faddr, c.tuple.fport).c_str(),
             stack::tcp::state_name(c.state), c.rtt_us, c.rttvar_us, c.rto_us / 1000, c.cwnd,
             c.ssthresh == UINT32_MAX ? 0 : c.ssthresh, c.retransmits, ull(c.bytes_in), ull(c.bytes_out));
  }
  if (shown < t.connections.size()) o += fmt("  ... %zu more (ngstack show tcp lists all)\n", t.connections.size() - shown);
  return o;
}

std::string format_locks(const Snapshot& f) {
  if (!f.locks) return "";
  auto ull = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  const LocksSnap& l = *f.locks;
  std::string o = fmt("locks: %s locking, %s locks, %u connection groups\n", l.locking.c_str(), l.lock_type.c_str(),
                      l.groups);
  for (const auto& t : l.tables) {
    o += fmt("  %s: %llu lookups, %u live PCBs, %.3f lock acquisitions per packet\n", t.name.c_str(),
             ull(t.lookups), t.live, t.acquisitions_per_packet);
    o += fmt("    %-10s %14s %12s %9s %16s %10s %12s %16s %12s\n", "class", "acquisitions", "contended", "share",
             "wait cycles", "wait/acq", "wait max", "hold cycles", "hold max");
    for (const auto& c : t.classes)
      o += fmt("    %-10s %14llu %12llu %8.2f%% %16llu %10.1f %12llu %16llu %12llu\n", c.name.c_str(),
               ull(c.acquisitions), ull(c.contended), 100 * c.contended_share(), ull(c.wait_cycles),
               c.wait_cycles_per_acquisition(), ull(c.wait_max), ull(c.hold_cycles), ull(c.hold_max));
    if (t.busiest_groups.empty()) continue;
    o += "    busiest groups (group/owner: acquisitions, contended, wait cycles):";
    for (const auto& g : t.busiest_groups)
      o += fmt(" %u/%s: %llu, %llu, %llu;", g.group, g.owner < 0 ? "-" : std::to_string(g.owner).c_str(),
               ull(g.acquisitions), ull(g.contended), ull(g.wait_cycles));
    o.back() = '\n';
  }
  return o;
}

namespace {
// Everything between the title and the totals, as the summary and `show stats` print it.
std::string format_sections(const Snapshot& f, const std::string& mode) {
  std::string o = format_ports(f) + format_workers(f) + format_netisr(f);
  if (mode == "router" || mode == "host") o += format_fib(f, false) + format_arp(f);
  if (mode == "bridge") o += format_fdb(f);
  return o + format_traffic(f) + format_services(f) + format_clients(f) + format_tcp(f, false) + format_locks(f);
}
}  // namespace

std::string format_summary(const Summary& s) {
  const Snapshot& f = s.final;
  auto ull = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  std::string o = fmt("\n=== ngstack summary: %s mode, %s, %.2f s ===\n", s.mode.c_str(), s.source.c_str(), f.t_s);
  o += format_sections(f, s.mode);
  o += fmt("total: rx %llu + originated %llu = tx %llu + dropped %llu (%llu at netisr queues) + consumed %llu: %s\n",
           ull(f.rx_packets), ull(f.originated), ull(f.tx_packets), ull(f.drops), ull(f.qdrops), ull(f.consumed),
           s.balanced() ? "every packet is accounted for"
                        : "MISMATCH: packets unaccounted for");
  for (const auto& m : s.mempools)
    o += fmt("mempool %s: %u of %u mbufs back%s\n", m.name.c_str(), m.available, m.size,
             m.full() ? " (full)" : ": LEAK");
  return o;
}

std::string format_stats(const Snapshot& f, const std::string& mode, const std::string& source) {
  auto ull = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  std::string o = fmt("=== ngstack stats: %s mode, %s, running for %.2f s ===\n", mode.c_str(), source.c_str(), f.t_s);
  o += format_sections(f, mode);
  // Packets in flight (in rings, tx buffers, hold queues) are in neither side yet.
  o += fmt("total: rx %llu + originated %llu; tx %llu + dropped %llu (%llu at netisr queues) + consumed %llu\n",
           ull(f.rx_packets), ull(f.originated), ull(f.tx_packets), ull(f.drops), ull(f.qdrops), ull(f.consumed));
  return o;
}

void json_ports(JsonWriter& j, const Snapshot& f) {
  j.begin_array("ports");
  for (const auto& p : f.ports) {
    j.begin_object().value("name", p.name).value("device", p.device).value("driver", p.driver);
    j.begin_array("rx_offloads");
    for (const auto& n : rx_offload_names(p.rx_offloads)) j.value("", n);
    j.end_array()
        .value("rx_packets", p.rx_packets)
        .value("rx_bytes", p.rx_bytes)
        .value("tx_packets", p.tx_packets)
        .value("tx_bytes", p.tx_bytes)
        .value("imissed", p.imissed)
        .value("ierrors", p.ierrors)
        .value("oerrors", p.oerrors)
        .value("rx_nombuf", p.rx_nombuf)
        .end_object();
  }
  j.end_array();
  j.begin_array("queues");
  for (const auto& q : f.queues)
    j.begin_object()
        .value("port", q.port)
        .value("queue", static_cast<unsigned>(q.queue))
        .value("lcore", q.lcore)
        .value("rx_packets", q.packets)
        .value("rx_bytes", q.bytes)
        .value("empty_polls", q.empty_polls)
        .end_object();
  j.end_array();
  j.begin_array("tx_queues");
  for (const auto& q : f.tx_queues)
    j.begin_object()
        .value("port", q.port)
        .value("queue", static_cast<unsigned>(q.queue))
        .value("lcore", q.lcore)
        .value("tx_packets", q.packets)
        .value("tx_bytes", q.bytes)
        .end_object();
  j.end_array();
}

void json_workers(JsonWriter& j, const Snapshot& f) {
  j.begin_array("workers");
  for (const auto& w : f.workers) {
    j.begin_object()
        .value("lcore", w.lcore)
        .value("rx_packets", w.rx_packets)
        .value("rx_bytes", w.rx_bytes)
        .value("tx_packets", w.tx_packets)
        .value("tx_bytes", w.tx_bytes)
        .value("empty_polls", w.empty_polls)
        .value("iterations", w.iterations)
        .value("busy_cycles", w.busy_cycles)
        .value("total_cycles", w.total_cycles)
        .value("busy_fraction", busy_fraction(w.busy_cycles, w.total_cycles))
        .value("cycles_per_packet",
               w.rx_packets ? static_cast<double>(w.busy_cycles) / static_cast<double>(w.rx_packets) : 0.0);
    j.begin_object("drops");
    for (std::size_t r = 0; r < w.drops.size(); ++r)
      j.value(stack::drop_reason_name(static_cast<stack::DropReason>(r)), w.drops[r]);
    j.end_object();
    j.begin_object("events");
    for (std::size_t e = 0; e < w.events.size(); ++e)
      j.value(stack::event_name(static_cast<stack::Event>(e)), w.events[e]);
    j.end_object().end_object();
  }
  j.end_array();
}

void json_router(JsonWriter& j, const Snapshot& f) {
  j.begin_object("router").value("fib_routes", f.fib_routes).value("fib_nexthops", f.fib_nexthops);
  j.begin_array("routes");
  for (const auto& r : f.routes)
    j.begin_object()
        .value("prefix", r.prefix)
        .value("action", r.action)
        .value("gateway", r.gateway)
        .value("port", r.port)
        .value("type", r.type)
        .end_object();
  j.end_array();
  j.begin_array("arp");
  for (const auto& n : f.neighbors)
    j.begin_object()
        .value("port", n.port)
        .value("address", n.addr)
        .value("mac", n.mac)
        .value("state", n.state)
        .value("age_ms", n.age_ms)
        .value("held", n.held)
        .end_object();
  j.end_array().end_object();
}

void json_bridge(JsonWriter& j, const Snapshot& f) {
  j.begin_object("bridge").begin_array("fdb");
  for (const auto& e : f.fdb)
    j.begin_object()
        .value("vlan", static_cast<unsigned>(e.vlan))
        .value("mac", e.mac)
        .value("port", e.port)
        .value("age_ms", e.age_ms)
        .end_object();
  j.end_array().end_object();
}

void json_traffic(JsonWriter& j, const Snapshot& f) {
  j.begin_object("traffic").begin_array("generators");
  for (const auto& g : f.generators)
    j.begin_object()
        .value("port", g.port)
        .value("worker", g.worker)
        .value("flows", g.flows)
        .value("target_pps", g.target_pps)
        .value("packets", g.packets)
        .value("bytes", g.bytes)
        .value("seconds", g.seconds)
        .value("achieved_pps", g.achieved_pps)
        .value("done", g.done)
        .end_object();
  j.end_array().begin_array("sinks");
  for (const auto& k : f.sinks)
    j.begin_object()
        .value("port", k.port)
        .value("packets", k.packets)
        .value("bytes", k.bytes)
        .value("stamped", k.stamped)
        .value("unstamped", k.unstamped)
        .value("unknown_flow", k.unknown_flow)
        .value("flows", k.flows)
        .value("lost", k.lost)
        .value("duplicates", k.duplicates)
        .value("reordered", k.reordered)
        .value("beyond_window", k.beyond_window)
        .value("latency_samples", k.latency_samples)
        .value("latency_future", k.latency_future)
        .value("latency_min_ns", k.latency_min_ns)
        .value("latency_p50_ns", k.latency_p50_ns)
        .value("latency_p99_ns", k.latency_p99_ns)
        .value("latency_p999_ns", k.latency_p999_ns)
        .value("latency_max_ns", k.latency_max_ns)
        .end_object();
  j.end_array().end_object();
}

namespace {
void json_latency(JsonWriter& j, const char* name, const stack::services::LatencySummary& l) {
  j.begin_object(name)
      .value("samples", l.samples)
      .value("min", l.min_us)
      .value("mean", l.mean_us)
      .value("p50", l.p50_us)
      .value("p90", l.p90_us)
      .value("p99", l.p99_us)
      .value("p999", l.p999_us)
      .value("max", l.max_us)
      .end_object();
}
}  // namespace

void json_clients(JsonWriter& j, const Snapshot& f) {
  bool any = false;
  for (const auto& v : f.services) any = any || v.type == conf::ServiceType::tcp_load;
  if (!any) return;
  j.begin_array("clients");
  for (const auto& v : f.services) {
    if (v.type != conf::ServiceType::tcp_load) continue;
    const auto& l = v.load;
    const double s = l.seconds;
    j.begin_object()
        .value("name", l.name)
        .value("target", load_target(v))
        .value("rate", l.rate)
        .value("concurrency", l.concurrency)
        .value("attempted", l.attempted)
        .value("established", l.established)
        .value("completed", l.completed)
        .value("open", l.open)
        .value("peak_open", l.peak_open)
        .value("requests", l.requests)
        .value("responses", l.responses)
        .value("tx_bytes", l.tx_bytes)
        .value("rx_bytes", l.rx_bytes)
        .value("tx_acked_bytes", l.tx_acked_bytes)
        .value("rx_acked_bytes", l.rx_acked_bytes)
        .value("goodput_bytes", l.goodput_bytes)
        .value("goodput_bytes_per_s", l.goodput_bytes_per_s())
        .value("tx_wire_bytes", l.tx_wire_bytes)
        .value("retransmitted_bytes", l.retransmitted_bytes)
        .value("retransmits", l.retransmits)
        .value("retransmission_ratio", l.retransmission_ratio())
        .value("seconds", s)
        .value("connections_per_s", s > 0 ? static_cast<double>(l.attempted) / s : 0.0)
        .value("established_per_s", s > 0 ? static_cast<double>(l.established) / s : 0.0)
        .value("response_seconds", l.response_seconds)
        .value("responses_per_s", l.response_seconds > 0 ? static_cast<double>(l.responses) / l.response_seconds : 0.0)
        .value("done", v.done)
        .begin_object("errors")
        .value("total", l.errors())
        .value("refused", l.refused)
        .value("reset", l.reset)
        .value("timeout", l.timeout)
        .value("bad_response", l.bad_response)
        .value("local", l.local)
        .value("no_session", l.no_session)
        .end_object()
        .begin_object("http_status")
        .value("1xx", l.http_status[1])
        .value("2xx", l.http_status[2])
        .value("3xx", l.http_status[3])
        .value("4xx", l.http_status[4])
        .value("5xx", l.http_status[5])
        .end_object();
    json_latency(j, "connect_us", l.connect);
    json_latency(j, "first_byte_us", l.ttfb);
    json_latency(j, "transaction_us", l.transaction);
    j.end_object();
  }
  j.end_array();
}

void json_services(JsonWriter& j, const Snapshot& f) {
  j.begin_array("services");
  for (const auto& v : f.services) {
    if (v.type == conf::ServiceType::tcp_load) continue;
    j.begin_object().value("type", conf::service_type_name(v.type));
    if (is_client(v))
      j.value("server", conf::format_ipv4(v.server));
    else
      j.value("address", conf::format_ipv4(v.address));
    j.value("port", unsigned{v.port})
        .value("sockets", v.sockets)
        .value("rx_datagrams", v.io.rx_datagrams)
        .value("rx_bytes", v.io.rx_bytes)
        .value("tx_datagrams", v.io.tx_datagrams)
        .value("tx_bytes", v.io.tx_bytes)
        .value("tx_no_mbuf", v.io.tx_no_mbuf)
        .value("tx_queue_full", v.io.tx_queue_full)
        .value("tx_unroutable", v.io.tx_unroutable)
        .value("icmp_errors", v.io.icmp_errors);
    if (conf::is_tcp_service(v.type)) j.value("connections", v.connections).value("resets", v.resets);
    if (v.type == conf::ServiceType::http)
      j.value("requests", v.requests)
          .value("responses", v.responses)
          .value("responses_2xx", v.http_status[2])
          .value("responses_3xx", v.http_status[3])
          .value("responses_4xx", v.http_status[4])
          .value("responses_5xx", v.http_status[5])
          .value("refused_no_session", v.lost);
    if (is_client(v) && conf::is_tcp_service(v.type)) {
      j.value("seconds", v.seconds).value("rx_bits_per_s", v.seconds > 0 ? 8.0 * v.io.rx_bytes / v.seconds : 0.0);
    } else if (is_client(v)) {
      const auto& l = v.latency;
      j.value("requests", v.requests)
          .value("responses", v.responses)
          .value("lost", v.lost)
          .value("late", v.late)
          .value("seconds", v.seconds)
          .value("transactions_per_s", v.transactions_per_s)
          .begin_object("latency_us")
          .value("min", l.min_us)
          .value("mean", l.mean_us)
          .value("p50", l.p50_us)
          .value("p90", l.p90_us)
          .value("p99", l.p99_us)
          .value("p999", l.p999_us)
          .value("max", l.max_us)
          .end_object();
    }
    j.end_object();
  }
  j.end_array();
}

void json_tcp(JsonWriter& j, const Snapshot& f) {
  if (!f.tcp) return;
  const TcpSnap& t = *f.tcp;
  j.begin_object("tcp").begin_object("stats");
  for (const auto& [name, v] : t.stats) j.value(name.c_str(), v);
  j.end_object().begin_object("buffers").value("budget_per_worker", t.worker_buffers).begin_array("held");
  for (int64_t h : t.buffers_held) j.value({}, static_cast<uint64_t>(std::max<int64_t>(h, 0)));
  j.end_array().end_object().begin_array("listeners");
  for (const auto& l : t.listeners)
    j.begin_object()
        .value("local", l.local)
        .value("backlog", l.backlog)
        .value("syn_received", l.embryonic)
        .value("accepted", l.accepted)
        .value("overflowed", l.overflowed)
        .end_object();
  j.end_array().begin_array("connections");
  for (const auto& c : t.connections)
    j.begin_object()
        .value("local", endpoint(c.tuple.laddr, c.tuple.lport))
        .value("foreign", endpoint(c.tuple.faddr, c.tuple.fport))
        .value("state", stack::tcp::state_name(c.state))
        .value("group", c.group)
        .value("rtt_us", c.rtt_us)
        .value("rttvar_us", c.rttvar_us)
        .value("rto_us", c.rto_us)
        .value("mss", c.mss)
        .value("cwnd", c.cwnd)
        .value("ssthresh", c.ssthresh == UINT32_MAX ? 0u : c.ssthresh)
        .value("snd_wnd", c.snd_wnd)
        .value("rcv_wnd", c.rcv_wnd)
        .value("unacked", c.unacked)
        .value("send_queue", c.send_queue)
        .value("recv_queue", c.recv_queue)
        .value("retransmits", c.retransmits)
        .value("bytes_in", c.bytes_in)
        .value("bytes_out", c.bytes_out)
        .value("bytes_acked", c.bytes_acked)
        .value("bytes_retrans", c.bytes_retrans)
        .end_object();
  j.end_array().end_object();
}

void json_locks(JsonWriter& j, const Snapshot& f) {
  if (!f.locks) return;
  const LocksSnap& l = *f.locks;
  j.begin_object("locks").value("locking", l.locking).value("lock_type", l.lock_type).value("groups", l.groups);
  j.begin_array("tables");
  for (const auto& t : l.tables) {
    j.begin_object()
        .value("name", t.name)
        .value("lookups", t.lookups)
        .value("acquisitions_per_packet", t.acquisitions_per_packet)
        .value("live", t.live);
    j.begin_array("classes");
    for (const auto& c : t.classes)
      j.begin_object()
          .value("class", c.name)
          .value("acquisitions", c.acquisitions)
          .value("contended", c.contended)
          .value("contended_share", c.contended_share())
          .value("wait_cycles", c.wait_cycles)
          .value("wait_max", c.wait_max)
          .value("wait_cycles_per_acquisition", c.wait_cycles_per_acquisition())
          .value("hold_cycles", c.hold_cycles)
          .value("hold_max", c.hold_max)
          .end_object();
    j.end_array().begin_array("busiest_groups");
    for (const auto& g : t.busiest_groups)
      j.begin_object()
          .value("group", g.group)
          .value("owner", g.owner)
          .value("acquisitions", g.acquisitions)
          .value("contended", g.contended)
          .value("wait_cycles", g.wait_cycles)
          .end_object();
    j.end_array().end_object();
  }
  j.end_array().end_object();
}

void json_netisr(JsonWriter& j, const Snapshot& f) {
  j.begin_object("netisr").value("buckets", f.buckets);
  j.begin_array("bucket_map");
  for (auto w : f.bucket_map) j.value("", static_cast<unsigned>(w));
  j.end_array().begin_array("protocols");
  for (const auto& p : f.protocols)
    j.begin_object().value("name", p.name).value("policy", p.policy).value("mode", p.mode).value("qlimit", p.qlimit).end_object();
  j.end_array().begin_array("workstreams");
  for (const auto& w : f.workstreams)
    j.begin_object()
        .value("lcore", w.lcore)
        .value("protocol", w.proto)
        .value("dispatched", w.s.dispatched)
        .value("hybrid", w.s.hybrid)
        .value("queued", w.s.queued)
        .value("handled", w.s.handled)
        .value("qdrops", w.s.qdrops)
        .value("length", w.s.length)
        .value("watermark", w.s.watermark)
        .end_object();
  j.end_array().end_object();
}

std::string summary_json(const Summary& s) {
  const Snapshot& f = s.final;
  JsonWriter j;
  j.begin_object();
  j.value("mode", s.mode).value("source", s.source).value("duration_s", f.t_s).value("tsc_hz", s.tsc_hz);
  j.value("ok", s.ok());
  j.begin_object("totals")
      .value("rx_packets", f.rx_packets)
      .value("tx_packets", f.tx_packets)
      .value("dropped", f.drops)
      .value("qdrops", f.qdrops)
      .value("originated", f.originated)
      .value("consumed", f.consumed)
      .value("balanced", s.balanced())
      .value("rx_pps", f.t_s > 0 ? static_cast<double>(f.rx_packets) / f.t_s : 0.0)
      .value("tx_pps", f.t_s > 0 ? static_cast<double>(f.tx_packets) / f.t_s : 0.0)
      .end_object();
  json_ports(j, f);
  json_workers(j, f);
  if (s.mode == "router" || s.mode == "host") json_router(j, f);
  if (s.mode == "bridge") json_bridge(j, f);
  if (s.mode == "traffic") json_traffic(j, f);
  // Modes with the IPv4 stack (a connection table): its services and locks.
  if (f.locks) {
    json_services(j, f);
    json_clients(j, f);
    json_locks(j, f);
    json_tcp(j, f);
  }
  json_netisr(j, f);
  j.begin_array("intervals");
  for (const auto& r : s.intervals)
    j.begin_object()
        .value("t_s", r.t_s)
        .value("rx_pps", r.rx_pps)
        .value("tx_pps", r.tx_pps)
        .value("rx_bps", r.rx_bps)
        .value("tx_bps", r.tx_bps)
        .value("drops_ps", r.drops_ps)
        .end_object();
  j.end_array();
  j.begin_array("mempools");
  for (const auto& m : s.mempools)
    j.begin_object().value("name", m.name).value("size", m.size).value("available", m.available).value("full", m.full()).end_object();
  j.end_array();
  j.end_object();
  return j.str() + "\n";
}

// --- DPDK telemetry -------------------------------------------------------
//
// Callbacks run on the telemetry thread. They take `g_telemetry_mutex` so that
// the Runtime cannot be torn down under them (control path only).
namespace {
std::mutex g_telemetry_mutex;
const Runtime* g_runtime = nullptr;
bool g_registered = false;

int tel_port_list(const char*, const char*, rte_tel_data* d) {
  std::lock_guard lock(g_telemetry_mutex);
  rte_tel_data_start_array(d, RTE_TEL_STRING_VAL);
  if (g_runtime)
    for (const auto& p : g_runtime->ports) rte_tel_data_add_array_string(d, p.name.c_str());
  return 0;
}

int tel_port(const char*, const char* params, rte_tel_data* d) {
  std::lock_guard lock(g_telemetry_mutex);
  if (!g_runtime || !params) return -EINVAL;
  const Snapshot s = take_snapshot(*g_runtime);
  for (const auto& p : s.ports) {
    if (p.name != params) continue;
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_string(d, "device", p.device.c_str());
    rte_tel_data_add_dict_u64(d, "rx_packets", p.rx_packets);
    rte_tel_data_add_dict_u64(d, "rx_bytes", p.rx_bytes);
    rte_tel_data_add_dict_u64(d, "tx_packets", p.tx_packets);
    rte_tel_data_add_dict_u64(d, "tx_bytes", p.tx_bytes);
    rte_tel_data_add_dict_u64(d, "imissed", p.imissed);
    rte_tel_data_add_dict_u64(d, "ierrors", p.ierrors);
    rte_tel_data_add_dict_u64(d, "oerrors", p.oerrors);
    rte_tel_data_add_dict_u64(d, "rx_nombuf", p.rx_nombuf);
    return 0;
  }
  return -EINVAL;
}

int tel_worker_list(const char*, const char*, rte_tel_data* d) {
  std::lock_guard lock(g_telemetry_mutex);
  rte_tel_data_start_array(d, RTE_TEL_INT_VAL);
  if (g_runtime)
    for (const auto& w : g_runtime->workers) rte_tel_data_add_array_int(d, static_cast<int>(w->lcore));
  return 0;
}

int tel_worker(const char*, const char* params, rte_tel_data* d) {
  std::lock_guard lock(g_telemetry_mutex);
  if (!g_runtime || !params) return -EINVAL;
  const unsigned lcore = static_cast<unsigned>(std::strtoul(params, nullptr, 10));
  const Snapshot s = take_snapshot(*g_runtime);
  for (const auto& w : s.workers) {
    if (w.lcore != lcore) continue;
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_u64(d, "rx_packets", w.rx_packets);
    rte_tel_data_add_dict_u64(d, "rx_bytes", w.rx_bytes);
    rte_tel_data_add_dict_u64(d, "tx_packets", w.tx_packets);
    rte_tel_data_add_dict_u64(d, "tx_bytes", w.tx_bytes);
    rte_tel_data_add_dict_u64(d, "empty_polls", w.empty_polls);
    rte_tel_data_add_dict_u64(d, "iterations", w.iterations);
    rte_tel_data_add_dict_u64(d, "busy_cycles", w.busy_cycles);
    rte_tel_data_add_dict_u64(d, "total_cycles", w.total_cycles);
    for (std::size_t r = 0; r < w.drops.size(); ++r) {
      const std::string key = "drop_" + std::string(stack::drop_reason_name(static_cast<stack::DropReason>(r)));
      rte_tel_data_add_dict_u64(d, key.c_str(), w.drops[r]);
    }
    for (std::size_t e = 0; e < w.events.size(); ++e) {
      const std::string key = "event_" + std::string(stack::event_name(static_cast<stack::Event>(e)));
      rte_tel_data_add_dict_u64(d, key.c_str(), w.events[e]);
    }
    return 0;
  }
  return -EINVAL;
}

// /ngstack/netisr: the protocols' settings; /ngstack/workstream,<lcore>: that
// worker's counters per protocol, keys <protocol>_<counter>.
int tel_netisr(const char*, const char*, rte_tel_data* d) {
  std::lock_guard lock(g_telemetry_mutex);
  if (!g_runtime) return -EINVAL;
  const Snapshot s = take_snapshot(*g_runtime);
  rte_tel_data_start_dict(d);
  rte_tel_data_add_dict_u64(d, "buckets", s.buckets);
  for (const auto& p : s.protocols) {
    rte_tel_data_add_dict_string(d, (p.name + "_policy").c_str(), p.policy.c_str());
    rte_tel_data_add_dict_string(d, (p.name + "_mode").c_str(), p.mode.c_str());
    rte_tel_data_add_dict_u64(d, (p.name + "_qlimit").c_str(), p.qlimit);
  }
  return 0;
}

int tel_workstream(const char*, const char* params, rte_tel_data* d) {
  std::lock_guard lock(g_telemetry_mutex);
  if (!g_runtime || !params) return -EINVAL;
  const unsigned lcore = static_cast<unsigned>(std::strtoul(params, nullptr, 10));
  const Snapshot s = take_snapshot(*g_runtime);
  bool found = false;
  rte_tel_data_start_dict(d);
  for (const auto& w : s.workstreams) {
    if (w.lcore != lcore) continue;
    found = true;
    const std::pair<const char*, uint64_t> fields[] = {
        {"dispatched", w.s.dispatched}, {"hybrid", w.s.hybrid}, {"queued", w.s.queued}, {"handled", w.s.handled},
        {"qdrops", w.s.qdrops},         {"length", w.s.length}, {"watermark", w.s.watermark}};
    for (const auto& [k, v] : fields) rte_tel_data_add_dict_u64(d, (w.proto + "_" + k).c_str(), v);
  }
  return found ? 0 : -EINVAL;
}

// Telemetry dict keys may not hold '.' or ':', so tables are arrays of
// space-separated rows.
// /ngstack/arp: "port address mac state age_ms held" per entry (router mode).
int tel_arp(const char*, const char*, rte_tel_data* d) {
  std::lock_guard lock(g_telemetry_mutex);
  if (!g_runtime || !g_runtime->router) return -EINVAL;
  const Snapshot s = take_snapshot(*g_runtime);
  rte_tel_data_start_array(d, RTE_TEL_STRING_VAL);
  for (const auto& n : s.neighbors) {
    const std::string row = n.port + " " + n.addr + " " + n.mac + " " + n.state + " " + std::to_string(n.age_ms) +
                            " " + std::to_string(n.held);
    rte_tel_data_add_array_string(d, row.c_str());
  }
  return 0;
}

// /ngstack/fdb: "vlan mac port age_ms" per entry (bridge mode).
int tel_fdb(const char*, const char*, rte_tel_data* d) {
  std::lock_guard lock(g_telemetry_mutex);
  if (!g_runtime || !g_runtime->bridge) return -EINVAL;
  const Snapshot s = take_snapshot(*g_runtime);
  rte_tel_data_start_array(d, RTE_TEL_STRING_VAL);
  for (const auto& e : s.fdb) {
    const std::string row = std::to_string(e.vlan) + " " + e.mac + " " + e.port + " " + std::to_string(e.age_ms);
    rte_tel_data_add_array_string(d, row.c_str());
  }
  return 0;
}

// /ngstack/traffic: "generator port packets achieved_pps target_pps done" and
// "sink port packets stamped unstamped" rows (traffic mode; loss and latency
// come in the summary, once workers have stopped).
int tel_traffic(const char*, const char*, rte_tel_data* d) {
  std::lock_guard lock(g_telemetry_mutex);
  if (!g_runtime || !g_runtime->traffic) return -EINVAL;
  const Snapshot s = take_snapshot(*g_runtime);
  rte_tel_data_start_array(d, RTE_TEL_STRING_VAL);
  for (const auto& g : s.generators) {
    const std::string row = "generator " + g.port + " " + std::to_string(g.packets) + " " +
                            std::to_string(static_cast<uint64_t>(g.achieved_pps)) + " " +
                            std::to_string(static_cast<uint64_t>(g.target_pps)) + " " + (g.done ? "done" : "running");
    rte_tel_data_add_array_string(d, row.c_str());
  }
  for (const auto& k : s.sinks) {
    const std::string row = "sink " + k.port + " " + std::to_string(k.packets) + " " + std::to_string(k.stamped) + " " +
                            std::to_string(k.unstamped);
    rte_tel_data_add_array_string(d, row.c_str());
  }
  return 0;
}

// This DPDK's telemetry has no floating-point values: ratios and
// microseconds go as strings ("%.6g", as the summary JSON writes them).
void tel_dict_double(rte_tel_data* d, const std::string& key, double v) {
  rte_tel_data_add_dict_string(d, key.c_str(), fmt("%.6g", v).c_str());
}

// /ngstack/locks: the connection tables' lock profiles (router and host
// modes), flattened as <table>_<counter> and <table>_<class>_<counter>, with
// the busiest groups as rows "group owner acquisitions contended wait_cycles"
// in <table>_busiest_groups (owner -1: the group spans several workers).
int tel_locks(const char*, const char*, rte_tel_data* d) {
  std::lock_guard lock(g_telemetry_mutex);
  if (!g_runtime || !g_runtime->router) return -EINVAL;
  const Snapshot s = take_snapshot(*g_runtime);
  if (!s.locks) return -EINVAL;
  rte_tel_data_start_dict(d);
  rte_tel_data_add_dict_string(d, "locking", s.locks->locking.c_str());
  rte_tel_data_add_dict_string(d, "lock_type", s.locks->lock_type.c_str());
  rte_tel_data_add_dict_u64(d, "groups", s.locks->groups);
  for (const auto& t : s.locks->tables) {
    const std::string p = t.name + "_";
    rte_tel_data_add_dict_u64(d, (p + "lookups").c_str(), t.lookups);
    rte_tel_data_add_dict_u64(d, (p + "live").c_str(), t.live);
    tel_dict_double(d, p + "acquisitions_per_packet", t.acquisitions_per_packet);
    for (const auto& c : t.classes) {
      const std::string q = p + c.name + "_";
      rte_tel_data_add_dict_u64(d, (q + "acquisitions").c_str(), c.acquisitions);
      rte_tel_data_add_dict_u64(d, (q + "contended").c_str(), c.contended);
      tel_dict_double(d, q + "contended_share", c.contended_share());
      rte_tel_data_add_dict_u64(d, (q + "wait_cycles").c_str(), c.wait_cycles);
      rte_tel_data_add_dict_u64(d, (q + "wait_max").c_str(), c.wait_max);
      tel_dict_double(d, q + "wait_cycles_per_acquisition", c.wait_cycles_per_acquisition());
      rte_tel_data_add_dict_u64(d, (q + "hold_cycles").c_str(), c.hold_cycles);
      rte_tel_data_add_dict_u64(d, (q + "hold_max").c_str(), c.hold_max);
    }
    rte_tel_data* rows = rte_tel_data_alloc();
    if (!rows) continue;
    rte_tel_data_start_array(rows, RTE_TEL_STRING_VAL);
    for (const auto& g : t.busiest_groups) {
      const std::string row = std::to_string(g.group) + " " + std::to_string(g.owner) + " " +
                              std::to_string(g.acquisitions) + " " + std::to_string(g.contended) + " " +
                              std::to_string(g.wait_cycles);
      rte_tel_data_add_array_string(rows, row.c_str());
    }
    if (rte_tel_data_add_dict_container(d, (p + "busiest_groups").c_str(), rows, 0) != 0) rte_tel_data_free(rows);
  }
  return 0;
}

// /ngstack/services: one row per service, "type address:port sockets
// rx_datagrams tx_datagrams" (a client: its server's address:port); its
// position is the parameter of /ngstack/service, which gives every counter.
// /ngstack/tcp: TCP's counters (netstat -s -p tcp) as a dict, plus
// `connections` and `listeners` counts; the connection list is in
// `ngstack show tcp`.
int tel_tcp(const char*, const char*, rte_tel_data* d) {
  std::lock_guard lock(g_telemetry_mutex);
  if (!g_runtime || !g_runtime->router) return -EINVAL;
  const Snapshot s = take_snapshot(*g_runtime);
  if (!s.tcp) return -EINVAL;
  rte_tel_data_start_dict(d);
  for (const auto& [name, v] : s.tcp->stats) rte_tel_data_add_dict_u64(d, name.c_str(), v);
  rte_tel_data_add_dict_u64(d, "connections", s.tcp->connections.size());
  rte_tel_data_add_dict_u64(d, "listeners", s.tcp->listeners.size());
  return 0;
}

int tel_services(const char*, const char*, rte_tel_data* d) {
  std::lock_guard lock(g_telemetry_mutex);
  if (!g_runtime || !g_runtime->router) return -EINVAL;
  const Snapshot s = take_snapshot(*g_runtime);
  rte_tel_data_start_array(d, RTE_TEL_STRING_VAL);
  for (const auto& v : s.services) {
    const std::string row = std::string(conf::service_type_name(v.type)) + " " + service_endpoint(v) + " " +
                            std::to_string(v.sockets) + " " + std::to_string(v.io.rx_datagrams) + " " +
                            std::to_string(v.io.tx_datagrams);
    rte_tel_data_add_array_string(d, row.c_str());
  }
  return 0;
}

// /ngstack/service,<index>: the keys of the summary JSON's entry (the
// client's latency_us as latency_us_<p50...>).
int tel_service(const char*, const char* params, rte_tel_data* d) {
  std::lock_guard lock(g_telemetry_mutex);
  if (!g_runtime || !g_runtime->router || !params || !*params) return -EINVAL;
  char* end = nullptr;
  const unsigned long i = std::strtoul(params, &end, 10);
  const Snapshot s = take_snapshot(*g_runtime);
  if (*end != '\0' || i >= s.services.size()) return -EINVAL;
  const auto& v = s.services[i];
  rte_tel_data_start_dict(d);
  rte_tel_data_add_dict_string(d, "type", conf::service_type_name(v.type));
  rte_tel_data_add_dict_string(d, is_client(v) ? "server" : "address",
                               conf::format_ipv4(is_client(v) ? v.server : v.address).c_str());
  const std::pair<const char*, uint64_t> fields[] = {
      {"port", v.port},
      {"sockets", v.sockets},
      {"rx_datagrams", v.io.rx_datagrams},
      {"rx_bytes", v.io.rx_bytes},
      {"tx_datagrams", v.io.tx_datagrams},
      {"tx_bytes", v.io.tx_bytes},
      {"tx_no_mbuf", v.io.tx_no_mbuf},
      {"tx_queue_full", v.io.tx_queue_full},
      {"tx_unroutable", v.io.tx_unroutable},
      {"icmp_errors", v.io.icmp_errors}};
  for (const auto& [k, x] : fields) rte_tel_data_add_dict_u64(d, k, x);
  if (!is_client(v)) return 0;
  const std::pair<const char*, uint64_t> client[] = {
      {"requests", v.requests}, {"responses", v.responses}, {"lost", v.lost}, {"late", v.late}};
  for (const auto& [k, x] : client) rte_tel_data_add_dict_u64(d, k, x);
  const auto& l = v.latency;
  const std::pair<const char*, double> reals[] = {
      {"seconds", v.seconds},        {"transactions_per_s", v.transactions_per_s},
      {"latency_us_min", l.min_us},  {"latency_us_mean", l.mean_us},
      {"latency_us_p50", l.p50_us},  {"latency_us_p90", l.p90_us},
      {"latency_us_p99", l.p99_us},  {"latency_us_p999", l.p999_us},
      {"latency_us_max", l.max_us}};
  for (const auto& [k, x] : reals) tel_dict_double(d, k, x);
  return 0;
}

// /ngstack/client,<index>: the `clients:` generator's counters and latencies
// (index: its position in clients.generators), as the summary JSON's entry.
int tel_client(const char*, const char* params, rte_tel_data* d) {
  std::lock_guard lock(g_telemetry_mutex);
  if (!g_runtime || !g_runtime->router || !params || !*params) return -EINVAL;
  char* end = nullptr;
  const unsigned long i = std::strtoul(params, &end, 10);
  const Snapshot s = take_snapshot(*g_runtime);
  std::vector<const stack::services::ServiceView*> loads;
  for (const auto& v : s.services)
    if (v.type == conf::ServiceType::tcp_load) loads.push_back(&v);
  if (*end != '\0' || i >= loads.size()) return -EINVAL;
  const auto& v = *loads[i];
  const auto& l = v.load;
  rte_tel_data_start_dict(d);
  rte_tel_data_add_dict_string(d, "name", l.name.c_str());
  rte_tel_data_add_dict_string(d, "target", load_target(v).c_str());
  const std::pair<const char*, uint64_t> fields[] = {
      {"attempted", l.attempted},   {"established", l.established},   {"completed", l.completed},
      {"open", l.open},             {"requests", l.requests},         {"responses", l.responses},
      {"tx_bytes", l.tx_bytes},     {"rx_bytes", l.rx_bytes},         {"goodput_bytes", l.goodput_bytes},
      {"peak_open", l.peak_open},   {"tx_acked_bytes", l.tx_acked_bytes}, {"rx_acked_bytes", l.rx_acked_bytes},
      {"tx_wire_bytes", l.tx_wire_bytes}, {"retransmitted_bytes", l.retransmitted_bytes},
      {"retransmits", l.retransmits},
      {"errors", l.errors()},       {"refused", l.refused},           {"reset", l.reset},
      {"timeout", l.timeout},       {"bad_response", l.bad_response}, {"local", l.local},
      {"no_session", l.no_session}, {"done", v.done ? 1u : 0u}};
  for (const auto& [k, x] : fields) rte_tel_data_add_dict_u64(d, k, x);
  tel_dict_double(d, "seconds", l.seconds);
  tel_dict_double(d, "response_seconds", l.response_seconds);
  tel_dict_double(d, "goodput_bytes_per_s", l.goodput_bytes_per_s());
  tel_dict_double(d, "retransmission_ratio", l.retransmission_ratio());
  for (const auto& [name, h] : {std::pair{"connect_us", &l.connect}, std::pair{"first_byte_us", &l.ttfb},
                                std::pair{"transaction_us", &l.transaction}}) {
    const std::string n = name;
    tel_dict_double(d, (n + "_p50").c_str(), h->p50_us);
    tel_dict_double(d, (n + "_p90").c_str(), h->p90_us);
    tel_dict_double(d, (n + "_p99").c_str(), h->p99_us);
    tel_dict_double(d, (n + "_p999").c_str(), h->p999_us);
    tel_dict_double(d, (n + "_max").c_str(), h->max_us);
  }
  return 0;
}

int tel_summary(const char*, const char*, rte_tel_data* d) {
  std::lock_guard lock(g_telemetry_mutex);
  if (!g_runtime) return -EINVAL;
  const Snapshot s = take_snapshot(*g_runtime);
  rte_tel_data_start_dict(d);
  rte_tel_data_add_dict_string(d, "mode", conf::mode_name(g_runtime->cfg.mode));
  rte_tel_data_add_dict_u64(d, "rx_packets", s.rx_packets);
  rte_tel_data_add_dict_u64(d, "tx_packets", s.tx_packets);
  rte_tel_data_add_dict_u64(d, "dropped", s.drops);
  rte_tel_data_add_dict_u64(d, "qdrops", s.qdrops);
  rte_tel_data_add_dict_u64(d, "originated", s.originated);
  rte_tel_data_add_dict_u64(d, "consumed", s.consumed);
  rte_tel_data_add_dict_u64(d, "uptime_ms", static_cast<uint64_t>(s.t_s * 1000));
  return 0;
}
}  // namespace

void register_telemetry(const Runtime* rt) {
  std::lock_guard lock(g_telemetry_mutex);
  g_runtime = rt;
  if (g_registered) return;
  g_registered = true;
  rte_telemetry_register_cmd("/ngstack/summary", tel_summary, "Totals of this ngstack process. No parameters");
  rte_telemetry_register_cmd("/ngstack/ports", tel_port_list, "Names of the ports. No parameters");
  rte_telemetry_register_cmd("/ngstack/port", tel_port, "Counters of one port. Parameter: port name");
  rte_telemetry_register_cmd("/ngstack/workers", tel_worker_list, "Lcores of the workers. No parameters");
  rte_telemetry_register_cmd("/ngstack/worker", tel_worker, "Counters of one worker. Parameter: lcore id");
  rte_telemetry_register_cmd("/ngstack/netisr", tel_netisr, "netisr protocols: policy, mode, qlimit. No parameters");
  rte_telemetry_register_cmd("/ngstack/workstream", tel_workstream,
                             "netisr counters of one worker per protocol. Parameter: lcore id");
  rte_telemetry_register_cmd("/ngstack/arp", tel_arp, "Router ARP cache, one row per entry: port address mac state age_ms held");
  rte_telemetry_register_cmd("/ngstack/fdb", tel_fdb, "Bridge FDB, one row per entry: vlan mac port age_ms");
  rte_telemetry_register_cmd("/ngstack/traffic", tel_traffic,
                             "Traffic mode, one row per generator (port packets achieved_pps target_pps state) and "
                             "sink (port packets stamped unstamped)");
  rte_telemetry_register_cmd("/ngstack/locks", tel_locks,
                             "Router and host modes: lock profiles of the connection tables, per lock class, and "
                             "the busiest groups. No parameters");
  rte_telemetry_register_cmd("/ngstack/tcp", tel_tcp,
                             "Router and host modes: TCP's counters (as netstat -s -p tcp), connections and listeners");
  rte_telemetry_register_cmd("/ngstack/client", tel_client,
                             "Router and host modes: counters and latencies of one clients: generator. Parameter: its "
                             "index in clients.generators");
  rte_telemetry_register_cmd("/ngstack/services", tel_services,
                             "Router and host modes, one row per service: type address:port sockets rx_datagrams "
                             "tx_datagrams");
  rte_telemetry_register_cmd("/ngstack/service", tel_service,
                             "Router and host modes: counters of one service. Parameter: its index in /ngstack/services");
}

void unregister_telemetry() {
  std::lock_guard lock(g_telemetry_mutex);
  g_runtime = nullptr;
}

bool with_registered_runtime(const std::function<void(const Runtime&)>& fn) {
  std::lock_guard lock(g_telemetry_mutex);
  if (!g_runtime) return false;
  fn(*g_runtime);
  return true;
}

}  // namespace ngstack::app
