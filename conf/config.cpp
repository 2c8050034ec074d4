#include "conf/config.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace ngstack::conf {

std::string SourcePos::where() const {
  if (line == 0) return file + ": " + key;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + key;
}

std::string format_mac(const MacAddr& m) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  return buf;
}

const char* mode_name(Mode m) {
  switch (m) {
    case Mode::forwarder: return "forwarder";
    case Mode::router: return "router";
    case Mode::bridge: return "bridge";
    case Mode::traffic: return "traffic";
    case Mode::host: return "host";
  }
  return "?";
}

const char* client_transaction_name(ClientTransaction t) { return t == ClientTransaction::http ? "http" : "raw"; }

uint32_t ClientConfig::sessions() const {
  if (max_open) return max_open;
  if (concurrency) return concurrency;
  const double r = rate * timeout_ms / 1000.0;
  return static_cast<uint32_t>(std::clamp(r, 64.0, 65536.0));
}

const char* service_type_name(ServiceType t) {
  switch (t) {
    case ServiceType::udp_echo: return "udp-echo";
    case ServiceType::udp_discard: return "udp-discard";
    case ServiceType::udp_client: return "udp-client";
    case ServiceType::tcp_echo: return "tcp-echo";
    case ServiceType::tcp_discard: return "tcp-discard";
    case ServiceType::tcp_source: return "tcp-source";
    case ServiceType::http: return "http";
    case ServiceType::tcp_client: return "tcp-client";
    case ServiceType::tcp_load: return "tcp-load";
  }
  return "?";
}

const char* route_action_name(RouteAction a) {
  switch (a) {
    case RouteAction::forward: return "forward";
    case RouteAction::blackhole: return "blackhole";
    case RouteAction::reject: return "reject";
  }
  return "?";
}

std::string format_ipv4(uint32_t a) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff, a & 0xff);
  return buf;
}

std::string format_prefix(const Ipv4Prefix& p) { return format_ipv4(p.addr) + "/" + std::to_string(p.len); }

bool PortConfig::is_vdev() const { return device.rfind("net_", 0) == 0 || device.rfind("eth_", 0) == 0; }

std::string PortConfig::device_name() const { return device.substr(0, device.find(',')); }

int Config::port_index(const std::string& name) const {
  for (std::size_t i = 0; i < ports.size(); ++i)
    if (ports[i].name == name) return static_cast<int>(i);
  return -1;
}

uint16_t Config::tx_queues_of(const PortConfig& p) const {
  return p.tx_queues != 0 ? p.tx_queues : static_cast<uint16_t>(workers.list.size());
}

bool Config::is_output(std::size_t port_index) const {
  switch (mode) {
    case Mode::forwarder:
      for (const auto& fp : forwarder.paths)
        if (fp.out_port == port_index) return true;
      return false;
    case Mode::router:
    case Mode::host:
      for (const auto& ic : router.interfaces)
        if (ic.port == port_index) return true;
      return false;
    case Mode::bridge:
      for (const auto& bp : bridge.ports)
        if (bp.port == port_index) return true;
      return false;
    case Mode::traffic:
      for (const auto& g : traffic.generators)
        if (g.port == port_index) return true;
      return false;
  }
  return false;
}

uint64_t Config::ring_mbufs() const {
  uint64_t n = 0;
  for (const auto& p : ports) n += uint64_t{p.rx_queues} * p.rx_ring + uint64_t{tx_queues_of(p)} * p.tx_ring;
  return n;
}

uint64_t Config::reassembly_mbufs() const {
  if (!is_inet()) return 0;
  return uint64_t{workers.list.size()} * router.reassembly.max_datagrams * kMaxFragmentsPerDatagram;
}

namespace {

// What `mempool.mbufs: auto` needs for everything but the ARP hold budget.
uint64_t auto_mbufs_besides_hold(const Config& c) {
  uint64_t n = c.ring_mbufs();
  // Per worker: one rx burst in hand plus one tx buffer per port.
  n += uint64_t{c.workers.list.size()} * c.workers.burst * (1 + c.ports.size());
  // Per-lcore mempool caches may hold up to 1.5x their size.
  n += 3ull * c.mempool.cache * c.eal.cores.size() / 2;
  // Headroom for PMDs that keep their own mbufs (net_pcap infinite_rx copies the
  // whole capture into mbufs).
  n += 8192;
  // Router: fragments being reassembled (each datagram up to its fragment
  // limit) and packets made here in flight (ARP requests, ICMP errors,
  // fragments out). Bridge: flood copies in flight.
  if (c.is_inet()) n += 4096 + c.reassembly_mbufs();
  // Services: datagrams being built or answered in one burst, per worker.
  if (!c.services.empty()) n += uint64_t{c.workers.list.size()} * 1024;
  // TCP: send, receive and reassembly queues hold mbufs for as long as the
  // peer takes to acknowledge or the service to read; room for 32 full
  // connections' worth of buffers (stack.tcp.sndbuf + rcvbuf, ~2 KB of data
  // per mbuf). Beyond that, segments wait (no_mbuf) and TCP retransmits.
  bool tcp = false;
  for (const auto& sv : c.services) tcp = tcp || is_tcp_service(sv.type);
  tcp = tcp || !c.clients.generators.empty();
  if (tcp) n += 32ull * (c.stack.tcp.sndbuf + c.stack.tcp.rcvbuf) / 2048;
  if (c.mode == Mode::bridge) n += 4096;
  // Generators: one burst being built and one waiting for tx room, each.
  for (const auto& g : c.traffic.generators) n += 2ull * g.burst;
  return n;
}

}  // namespace

unsigned Config::arp_hold_total() const {
  const uint64_t all = uint64_t{router.arp.max_entries} * router.arp.hold_packets;
  if (router.arp.hold_total != 0) return static_cast<unsigned>(std::min<uint64_t>(router.arp.hold_total, all));
  const uint64_t pool = mempool.mbufs != 0 ? mempool.mbufs : auto_mbufs_besides_hold(*this);
  return static_cast<unsigned>(std::min(all, pool / 4));
}

uint64_t Config::mbufs_pinned() const {
  uint64_t n = ring_mbufs();
  if (is_inet()) n += arp_hold_total() + reassembly_mbufs();
  return n;
}

unsigned Config::mbufs_needed() const {
  if (mempool.mbufs != 0) return mempool.mbufs;
  uint64_t n = auto_mbufs_besides_hold(*this);
  // Router: packets waiting for ARP, all hold queues together.
  if (is_inet()) n += arp_hold_total();
  // A power of two minus one is the mempool's optimal size.
  uint64_t pow2 = 1;
  while (pow2 - 1 < n) pow2 <<= 1;
  return static_cast<unsigned>(std::min<uint64_t>(pow2 - 1, UINT32_MAX));
}

unsigned Config::tcp_worker_buffers() const {
  if (stack.tcp.worker_buffers != 0) return stack.tcp.worker_buffers;
  const uint64_t pool = mbufs_needed(), pinned = mbufs_pinned();
  const uint64_t spare = pool > pinned ? (pool - pinned) / 2 : 0;
  const uint64_t per_worker = spare / std::max<std::size_t>(1, workers.list.size());
  return static_cast<unsigned>(std::clamp<uint64_t>(per_worker, 64, UINT32_MAX));
}

void assign_rx_queues(Config& cfg) {
  auto& workers = cfg.workers.list;
  const std::size_t nw = workers.size();
  if (nw == 0) return;
  for (auto& w : workers) w.rx.clear();
  uint16_t min_queues = UINT16_MAX;
  for (const auto& p : cfg.ports) min_queues = std::min(min_queues, p.rx_queues);
  if (min_queues >= nw) {
    for (std::size_t p = 0; p < cfg.ports.size(); ++p)
      for (uint16_t q = 0; q < cfg.ports[p].rx_queues; ++q)
        workers[q % nw].rx.push_back({static_cast<uint16_t>(p), q});
    return;
  }
  std::size_t next = 0;
  for (std::size_t p = 0; p < cfg.ports.size(); ++p)
    for (uint16_t q = 0; q < cfg.ports[p].rx_queues; ++q)
      workers[next++ % nw].rx.push_back({static_cast<uint16_t>(p), q});
}

std::string dump_yaml(const Config& cfg) {
  std::ostringstream o;
  o << "# resolved from " << cfg.source << "\n";
  o << "mode: " << mode_name(cfg.mode) << "\n";
  o << "eal:\n  main_lcore: " << cfg.eal.cores.front() << "\n  memory_mb: " << cfg.eal.memory_mb
    << "\n  no_huge: " << (cfg.eal.no_huge ? "true" : "false") << "\n  file_prefix: " << cfg.eal.file_prefix
    << "\n  log_level: " << cfg.eal.log_level << "\n  extra_args: [";
  for (std::size_t i = 0; i < cfg.eal.extra_args.size(); ++i)
    o << (i ? ", " : "") << "\"" << cfg.eal.extra_args[i] << "\"";
  o << "]\n";
  if (!cfg.eal.lcore_cpus.empty()) {
    o << "  lcore_cpus: {";
    bool first = true;
    for (const auto& [l, c] : cfg.eal.lcore_cpus) {
      o << (first ? "" : ", ") << l << ": " << c;
      first = false;
    }
    o << "}\n";
  }
  o << "mempool:\n  mbufs: " << cfg.mbufs_needed() << (cfg.mempool.mbufs ? "" : "  # auto")
    << "\n  cache: " << cfg.mempool.cache << "\n  data_room: " << cfg.mempool.data_room << "\n";
  o << "ports:\n";
  for (const auto& p : cfg.ports) {
    o << "  - name: " << p.name << "\n    device: \"" << p.device << "\"\n    rx_queues: " << p.rx_queues
      << "\n    tx_queues: " << cfg.tx_queues_of(p) << (p.tx_queues ? "" : "  # auto: one per worker")
      << "\n    rx_ring: " << p.rx_ring << "\n    tx_ring: " << p.tx_ring << "\n    mtu: " << p.mtu
      << "\n    promiscuous: " << (p.promiscuous ? "true" : "false") << "\n";
    if (p.mac) o << "    mac: " << format_mac(*p.mac) << "\n";
    o << "    rss:\n      hash: [";
    for (std::size_t i = 0; i < p.rss.hash_names.size(); ++i) o << (i ? ", " : "") << p.rss.hash_names[i];
    o << "]\n      key: ";
    if (p.rss.key.empty()) {
      o << "symmetric\n";
    } else {
      o << "\"";
      for (auto b : p.rss.key) {
        char h[3];
        std::snprintf(h, sizeof h, "%02x", b);
        o << h;
      }
      o << "\"\n";
    }
  }
  o << "workers:\n  burst: " << cfg.workers.burst << "\n  lcores: [";
  for (std::size_t i = 0; i < cfg.workers.list.size(); ++i) o << (i ? ", " : "") << cfg.workers.list[i].lcore;
  o << "]\n  rx:" << (cfg.workers.auto_assign ? "  # auto" : "") << "\n";
  for (const auto& w : cfg.workers.list) {
    o << "    - lcore: " << w.lcore << "\n      queues: [";
    for (std::size_t i = 0; i < w.rx.size(); ++i)
      o << (i ? ", " : "") << cfg.ports[w.rx[i].port].name << "/" << w.rx[i].queue;
    o << "]\n";
  }
  if (cfg.mode == Mode::forwarder) {
    o << "forwarder:\n  paths:\n";
    for (const auto& fp : cfg.forwarder.paths) {
      o << "    - in: " << cfg.ports[fp.in_port].name << "\n      out: " << cfg.ports[fp.out_port].name << "\n";
      if (fp.dst_mac) o << "      dst_mac: " << format_mac(*fp.dst_mac) << "\n";
    }
  }
  if (cfg.is_inet()) {
    const auto& r = cfg.router;
    o << mode_name(cfg.mode) << ":\n  interfaces:\n";
    for (const auto& ic : r.interfaces) {
      o << "    - port: " << cfg.ports[ic.port].name << "\n      addresses: [";
      for (std::size_t i = 0; i < ic.addresses.size(); ++i) o << (i ? ", " : "") << format_prefix(ic.addresses[i]);
      o << "]\n";
    }
    o << "  routes:" << (r.routes.empty() ? " []" : "") << "\n";
    for (const auto& rt : r.routes) {
      o << "    - {prefix: " << format_prefix(rt.prefix) << ", action: " << route_action_name(rt.action);
      if (rt.action == RouteAction::forward) o << ", via: " << format_ipv4(rt.via);
      o << "}\n";
    }
    const auto& a = r.arp;
    o << "  arp:\n    reachable_ms: " << a.reachable_ms << "\n    stale_ms: " << a.stale_ms << "\n    retries: "
      << a.retries << "\n    retry_ms: " << a.retry_ms << "\n    hold_packets: " << a.hold_packets
      << "\n    max_entries: " << a.max_entries << "\n    hold_total: " << cfg.arp_hold_total()
      << (a.hold_total ? "" : "  # auto") << "\n    learn_rate: " << a.learn_rate << "\n    learn_burst: "
      << a.learn_burst << "\n    static:" << (a.statics.empty() ? " []" : "") << "\n";
    for (const auto& sn : a.statics)
      o << "      - {port: " << cfg.ports[sn.port].name << ", address: " << format_ipv4(sn.addr)
        << ", mac: \"" << format_mac(sn.mac) << "\"}\n";
    o << "  icmp:\n    rate: " << r.icmp.rate << "\n    burst: " << r.icmp.burst << "\n";
    o << "  reassembly:\n    max_datagrams: " << r.reassembly.max_datagrams
      << "\n    timeout_ms: " << r.reassembly.timeout_ms << "\n";
  }
  if (cfg.mode == Mode::bridge) {
    const auto& b = cfg.bridge;
    o << "bridge:\n  aging_ms: " << b.aging_ms << "\n  max_entries: " << b.max_entries
      << "\n  learn_rate: " << b.learn_rate << "\n  learn_burst: " << b.learn_burst << "\n  ports:\n";
    for (const auto& bp : b.ports) {
      o << "    - port: " << cfg.ports[bp.port].name << "\n";
      if (bp.access_vlan) o << "      vlan: " << bp.access_vlan << "\n";
      if (!bp.trunk_vlans.empty()) {
        o << "      trunk: [";
        for (std::size_t i = 0; i < bp.trunk_vlans.size(); ++i) o << (i ? ", " : "") << bp.trunk_vlans[i];
        o << "]\n";
      }
    }
  }
  if (cfg.mode == Mode::traffic) {
    const auto& t = cfg.traffic;
    auto range = [&](uint32_t first, uint32_t count, bool addr) {
      auto one = [&](uint32_t v) { return addr ? format_ipv4(v) : std::to_string(v); };
      return count == 1 ? one(first) : one(first) + "-" + one(first + count - 1);
    };
    auto number = [](double v) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.15g", v);
      return std::string(buf);
    };
    o << "traffic:\n";
    if (t.stop_when_done) o << "  stop_when_done: true\n  settle_ms: " << t.settle_ms << "\n";
    if (!t.generators.empty()) o << "  generators:\n";
    for (const auto& g : t.generators) {
      o << "    - port: " << cfg.ports[g.port].name << "\n";
      o << "      protocol: " << (g.protocol == TrafficProtocol::udp ? "udp" : "tcp_syn") << "\n";
      o << "      size: [";
      for (std::size_t i = 0; i < g.sizes.size(); ++i) o << (i ? ", " : "") << g.sizes[i];
      o << "]\n      weights: [";
      for (std::size_t i = 0; i < g.weights.size(); ++i) o << (i ? ", " : "") << g.weights[i];
      o << "]\n";
      if (g.src_mac) o << "      src_mac: \"" << format_mac(*g.src_mac) << "\"\n";
      o << "      dst_mac: \"" << format_mac(g.dst_mac) << "\"\n";
      o << "      src: " << range(g.src.first, g.src.count, true) << "\n";
      o << "      dst: " << range(g.dst.first, g.dst.count, true) << "\n";
      o << "      sport: " << range(g.sport.first, g.sport.count, false) << "\n";
      o << "      dport: " << range(g.dport.first, g.dport.count, false) << "\n";
      o << "      flows: " << g.flows << "\n      ttl: " << unsigned{g.ttl} << "\n";
      switch (g.rate_unit) {
        case RateUnit::unlimited: break;
        case RateUnit::pps: o << "      rate: {pps: " << number(g.rate) << "}\n"; break;
        case RateUnit::bps: o << "      rate: {bps: " << number(g.rate) << "}\n"; break;
        case RateUnit::percent: o << "      rate: {percent: " << number(g.rate) << "}\n"; break;
      }
      o << "      burst: " << g.burst << "\n";
      if (g.packets) o << "      packets: " << g.packets << "\n";
      if (g.duration_ms) o << "      duration_ms: " << g.duration_ms << "\n";
    }
    if (!t.sinks.empty()) o << "  sinks:\n";
    for (const auto& k : t.sinks)
      o << "    - {port: " << cfg.ports[k.port].name << ", max_flows: " << k.max_flows << "}\n";
  }
  const auto& d = cfg.dispatch;
  o << "dispatch:\n";
  if (d.mode) o << "  mode: " << *d.mode << "\n";
  o << "  buckets: " << d.buckets << "\n";
  if (d.drain_batch) o << "  drain_batch: " << d.drain_batch << "\n";
  if (d.bucket_map.empty()) {
    o << "  bucket_map: auto\n";
  } else {
    o << "  bucket_map: [";
    for (std::size_t i = 0; i < d.bucket_map.size(); ++i)
      o << (i ? ", " : "") << cfg.workers.list[d.bucket_map[i]].lcore;
    o << "]\n";
  }
  if (!d.protocols.empty()) {
    o << "  protocols:\n";
    for (const auto& [name, p] : d.protocols) {
      o << "    " << name << ": {";
      std::string sep;
      if (p.policy) o << sep << "policy: " << *p.policy, sep = ", ";
      if (p.mode) o << sep << "mode: " << *p.mode, sep = ", ";
      if (p.qlimit) o << sep << "qlimit: " << *p.qlimit;
      o << "}\n";
    }
  }
  o << "stack:\n  groups: " << cfg.stack.groups << "\n  locking: " << cfg.stack.locking
    << "\n  lock_type: " << cfg.stack.lock_type << "\n  connections: " << cfg.stack.connections << "\n";
  {
    const TcpConfig& t = cfg.stack.tcp;
    o << "  tcp: {msl_ms: " << t.msl_ms << ", min_rto_ms: " << t.min_rto_ms << ", initial_rto_ms: " << t.initial_rto_ms
      << ", max_rto_ms: " << t.max_rto_ms << ", delayed_ack_ms: " << t.delayed_ack_ms
      << ", fin_wait2_timeout_ms: " << t.fin_wait2_timeout_ms << ", sndbuf: " << t.sndbuf << ", rcvbuf: " << t.rcvbuf
      << ", nagle: " << (t.nagle ? "true" : "false") << ", ooo_segments: " << t.ooo_segments
      << ", syn_backlog: " << t.syn_backlog << ", syn_cookies: " << (t.syn_cookies ? "true" : "false")
      << ", challenge_ack_limit: " << t.challenge_ack_limit << ", syn_retries: " << t.syn_retries
      << ", data_retries: " << t.data_retries << ", congestion_control: " << t.congestion_control
      << ", keepalive_interval_ms: " << t.keepalive_interval_ms << ", keepalive_probes: " << t.keepalive_probes
      << ", worker_buffers: " << (t.worker_buffers ? std::to_string(t.worker_buffers) : std::string("auto"))
      << ", tso: " << (t.tso ? "true" : "false") << "}";
    if (!t.worker_buffers) o << "  # worker_buffers auto: " << cfg.tcp_worker_buffers() << " mbufs per worker";
    o << "\n";
  }
  if (!cfg.services.empty()) o << "services:\n";
  for (const auto& sv : cfg.services) {
    o << "  - {type: " << service_type_name(sv.type);
    if (sv.type == ServiceType::tcp_client) {
      o << ", server: " << format_ipv4(sv.server) << ", port: " << sv.port << ", flows: " << sv.flows
        << ", bytes: " << sv.bytes << ", duration_ms: " << sv.duration_ms;
    } else if (sv.type == ServiceType::udp_client) {
      o << ", server: " << format_ipv4(sv.server) << ", port: " << sv.port << ", flows: " << sv.flows
        << ", payload: " << sv.payload << ", window: " << sv.window << ", rate: " << sv.rate
        << ", requests: " << sv.requests << ", duration_ms: " << sv.duration_ms << ", timeout_ms: " << sv.timeout_ms;
      if (sv.address) o << ", address: " << format_ipv4(sv.address);
    } else {
      o << ", address: " << format_ipv4(sv.address) << ", port: " << sv.port;
      if (sv.type == ServiceType::tcp_source) o << ", bytes: " << sv.bytes;
      if (sv.type == ServiceType::http) {
        o << ", body_bytes: " << sv.body_bytes << ", sessions: " << sv.sessions;
        if (!sv.root.empty()) o << ", root: \"" << sv.root << "\"";
      }
      if (sv.backlog) o << ", backlog: " << sv.backlog;
      if (sv.keepalive_ms) o << ", keepalive_ms: " << sv.keepalive_ms;
      if (!sv.congestion_control.empty()) o << ", congestion_control: " << sv.congestion_control;
    }
    o << "}\n";
  }
  if (!cfg.clients.generators.empty()) {
    o << "clients:\n  stop_when_done: " << (cfg.clients.stop_when_done ? "true" : "false") << "\n  generators:\n";
    for (const auto& g : cfg.clients.generators) {
      auto range = [](uint32_t first, uint32_t count, auto fmt1) {
        return count == 1 ? fmt1(first) : fmt1(first) + "-" + fmt1(first + count - 1);
      };
      o << "    - {name: \"" << g.name << "\", addresses: "
        << range(g.addresses.first, g.addresses.count, [](uint32_t a) { return format_ipv4(a); })
        << ", ports: \"" << range(g.ports.first, g.ports.count, [](uint32_t p) { return std::to_string(p); }) << "\"";
      if (g.source) o << ", source: " << format_ipv4(g.source);
      if (g.rate > 0) o << ", rate: " << g.rate;
      else o << ", concurrency: " << g.concurrency;
      o << ", connections: " << g.connections << ", duration_ms: " << g.duration_ms
        << ", transaction: " << client_transaction_name(g.transaction);
      if (g.transaction == ClientTransaction::raw)
        o << ", request_bytes: " << g.request_bytes << ", response_bytes: " << g.response_bytes;
      else
        o << ", path: \"" << g.path << "\"" << (g.host.empty() ? "" : ", host: \"" + g.host + "\"");
      o << ", requests: " << g.requests << ", close: " << (g.close == ClientClose::rst ? "rst" : "fin")
        << ", timeout_ms: " << g.timeout_ms << ", max_open: " << (g.max_open ? std::to_string(g.max_open) : "auto")
        << "}";
      if (!g.max_open) o << "  # max_open auto: " << g.sessions();
      o << "\n";
    }
  }
  if (cfg.metrics.listen) o << "metrics:\n  listen: \"" << cfg.metrics.listen->str() << "\"\n";
  return o.str();
}

std::string ListenAddr::str() const {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Result<ListenAddr> parse_listen(const std::string& s) {
  const Error bad{"expected ADDRESS:PORT with an IPv4 address or a bracketed IPv6 one (127.0.0.1:9464, "
                  "[::1]:9464), got \"" + s + "\""};
  ListenAddr a;
  std::string port;
  if (!s.empty() && s.front() == '[') {
    const auto close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':') return bad;
    a.host = s.substr(1, close - 1);
    port = s.substr(close + 2);
    in6_addr v6;
    if (inet_pton(AF_INET6, a.host.c_str(), &v6) != 1) return bad;
  } else {
    const auto colon = s.rfind(':');
    if (colon == std::string::npos) return bad;
    a.host = s.substr(0, colon);
    port = s.substr(colon + 1);
    in_addr v4;
    if (inet_pton(AF_INET, a.host.c_str(), &v4) != 1) return bad;
  }
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) return bad;
  const unsigned long p = std::strtoul(port.c_str(), nullptr, 10);
  if (p < 1 || p > 65535) return Error{"port must be in [1, 65535], got " + port};
  a.port = static_cast<uint16_t>(p);
  return a;
}

}  // namespace ngstack::conf
