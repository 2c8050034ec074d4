#include "stack/modes/router.hpp"

#include <rte_cycles.h>
#include <rte_ether.h>

#include <spdlog/spdlog.h>

#include <chrono>

namespace ngstack::stack::modes {

Result<std::unique_ptr<Router>> Router::create(const conf::Config& cfg, const std::vector<PortInfo>& ports,
                                               rte_mempool* pool, unsigned workers, uint64_t tsc_hz) {
  const conf::RouterConfig& rc = cfg.router;
  std::unique_ptr<Router> r(new Router());
  auto ifs = ifnet::Interfaces::create(cfg, ports);
  if (!ifs) return Error{"router: " + ifs.error()};
  r->ifs_ = std::move(*ifs);

  unsigned routes = static_cast<unsigned>(rc.routes.size()), long_prefixes = 0;
  for (const auto& ic : rc.interfaces) routes += static_cast<unsigned>(ic.addresses.size());
  for (const auto& rt : rc.routes) long_prefixes += rt.prefix.len > 24;
  for (const auto& ic : rc.interfaces)
    for (const auto& a : ic.addresses) long_prefixes += a.len > 24;
  const auto load_start = std::chrono::steady_clock::now();
  auto fib = route::Fib::create(routes, long_prefixes);
  if (!fib) return Error{"router: " + fib.error()};
  r->fib_ = std::move(*fib);
  for (const auto& ic : rc.interfaces)
    for (const auto& a : ic.addresses)
      // The connected route: its destinations are their own next hops.
      if (a.len < 32)
        if (auto st = r->fib_->add(a.addr & a.mask(), a.len, {route::NextHopKind::forward, ic.port, 0}, true); !st)
          return Error{ic.pos.where() + ": " + st.error()};
  for (const auto& rt : rc.routes) {
    route::NextHop nh;
    switch (rt.action) {
      case conf::RouteAction::blackhole: nh.kind = route::NextHopKind::blackhole; break;
      case conf::RouteAction::reject: nh.kind = route::NextHopKind::reject; break;
      case conf::RouteAction::forward: {
        const route::NextHop& via = r->fib_->nexthop(r->fib_->lookup(rt.via));
        if (via.kind != route::NextHopKind::forward || via.gateway != 0)
          return Error{rt.pos.where() + ": gateway " + conf::format_ipv4(rt.via) + " is on no connected subnet"};
        nh = {route::NextHopKind::forward, via.port, rt.via};
        break;
      }
    }
    if (auto st = r->fib_->add(rt.prefix.addr, rt.prefix.len, nh); !st) return Error{rt.pos.where() + ": " + st.error()};
  }
  spdlog::info("router: FIB of {} routes over {} next hops loaded in {:.1f} ms", r->fib_->routes(),
               r->fib_->nexthops(),
               std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - load_start).count());

  auto arp = arp::Resolver::create(rc.arp, cfg.arp_hold_total(), r->ifs_, pool, workers, tsc_hz);
  if (!arp) return Error{arp.error()};
  r->arp_ = std::move(*arp);
  // Route changes wait out a grace period over the workers' quiescent
  // reports to the ARP table's RCU (Resolver::poll, once per loop iteration).
  r->fib_->attach_qsbr(r->arp_->table().index().qsbr());
  r->ether_ = std::make_unique<ether::Ether>(r->ifs_, *r->arp_);
  auto ip = ipv4::Ip::create(rc, r->ifs_, *r->fib_, *r->ether_, *r->arp_, pool, workers, tsc_hz);
  if (!ip) return Error{ip.error()};
  r->ip_ = std::move(*ip);
  r->arp_->set_unresolved(ipv4::Ip::on_unresolved, r->ip_.get());
  if (cfg.mode == conf::Mode::host) r->ip_->set_forwarding(false);
  // The connection table's groups follow the netisr's buckets and the ports'
  // key, so that a group's owner is the worker that receives its packets.
  const auto& dc = cfg.dispatch;
  std::vector<uint16_t> bucket_map =
      dc.bucket_map.empty() ? dispatch::Netisr::round_robin_map(dc.buckets, workers) : dc.bucket_map;
  auto udp = udp::Udp::create(cfg, *r->ip_, workers, dc.buckets, bucket_map, ports_rss_key(cfg));
  if (!udp) return Error{udp.error()};
  r->udp_ = std::move(*udp);
  auto tcp = tcp::Tcp::create(cfg, *r->ip_, workers, dc.buckets, std::move(bucket_map), ports_rss_key(cfg), tsc_hz);
  if (!tcp) return Error{tcp.error()};
  r->tcp_ = std::move(*tcp);
  auto services = services::Services::create(cfg, *r->udp_, *r->tcp_, workers, tsc_hz);
  if (!services) return Error{services.error()};
  r->services_ = std::move(*services);
  r->tsc_hz_ = tsc_hz;
  return r;
}

void Router::bind(std::vector<WorkerIo> io) {
  arp_->bind(io);
  ether_->bind(io);
  udp_->bind(io);
  tcp_->bind(io);
  ip_->bind(std::move(io));
}

Result<dispatch::ProtoId> Router::register_protocols(dispatch::Netisr& netisr, const ProtocolSettings& settings) {
  const dispatch::ProtocolSpec ether = entry_protocol(netisr, ether::Ether::input_handler, ether_.get());
  dispatch::ProtocolSpec ip = ether;
  ip.name = "ip";
  ip.handler = ipv4::Ip::input_handler;
  ip.ctx = ip_.get();
  dispatch::ProtocolSpec arp = ether;
  arp.name = "arp";
  arp.handler = arp::Resolver::input_handler;
  arp.ctx = arp_.get();
  arp.policy = dispatch::Policy::source;
  arp.m2flow = nullptr;
  auto e = netisr.register_protocol(settings(ether));
  if (!e) return e;
  auto i = netisr.register_protocol(settings(ip));
  if (!i) return i;
  auto a = netisr.register_protocol(settings(arp));
  if (!a) return a;
  if (auto u = udp_->register_protocol(netisr, settings); !u) return u;
  if (auto t = tcp_->register_protocol(netisr, settings); !t) return t;
  // ARP first: a reply in a burst resolves the next hop for the IPv4
  // packets behind it.
  ether_->set_protocol(&netisr, RTE_ETHER_TYPE_ARP, *a);
  ether_->set_protocol(&netisr, RTE_ETHER_TYPE_IPV4, *i);
  return e;
}

void Router::worker_online(unsigned w) {
  arp_->worker_online(w);
  ip_->worker_online(w);
  udp_->worker_online(w);
  tcp_->worker_online(w);
  services_->worker_online(w, rte_rdtsc());
}

void Router::poll(unsigned w, uint64_t now) {
  arp_->poll(w, now);
  udp_->poll(w);
  tcp_->poll(w);
  if (!services_->empty()) services_->poll(w, now);
}

void Router::worker_offline(unsigned w) {
  udp_->worker_offline(w);
  tcp_->worker_offline(w);
  arp_->worker_offline(w);
}

void Router::shutdown() {
  // Sockets first: nothing they send is held anywhere after this.
  services_->shutdown();
  udp_->shutdown();
  tcp_->shutdown();
  arp_->shutdown();
  ip_->shutdown();
}

Status Router::route_add(const conf::Ipv4Prefix& p, conf::RouteAction action, uint32_t via) {
  if ((p.addr & ~p.mask()) != 0)
    return Error{conf::format_prefix(p) + " has host bits set; the network is " +
                 conf::format_prefix(conf::Ipv4Prefix{p.addr & p.mask(), p.len})};
  route::NextHop nh;
  std::string what;
  switch (action) {
    case conf::RouteAction::blackhole: nh.kind = route::NextHopKind::blackhole, what = "blackhole"; break;
    case conf::RouteAction::reject: nh.kind = route::NextHopKind::reject, what = "reject"; break;
    case conf::RouteAction::forward: {
      route::Route conn;
      if (!fib_->connected_route(via, &conn))
        return Error{"gateway " + conf::format_ipv4(via) + " is on no connected subnet"};
      if (ifs_.local().is_own(via)) return Error{"gateway " + conf::format_ipv4(via) + " is an address of ngstack itself"};
      nh = {route::NextHopKind::forward, conn.nh.port, via};
      what = "via " + conf::format_ipv4(via) + " (" + ifs_.at(conn.nh.port).name + ")";
      break;
    }
  }
  if (auto st = fib_->add(p.addr, p.len, nh); !st) return st;
  spdlog::info("router: route {} {} added", conf::format_prefix(p), what);
  return Ok{};
}

Status Router::route_del(const conf::Ipv4Prefix& p) {
  if (auto st = fib_->remove(p.addr & p.mask(), p.len); !st) return st;
  spdlog::info("router: route {} deleted", conf::format_prefix(conf::Ipv4Prefix{p.addr & p.mask(), p.len}));
  return Ok{};
}

}  // namespace ngstack::stack::modes
