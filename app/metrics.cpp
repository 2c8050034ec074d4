#include "app/metrics.hpp"

#include <charconv>
#include <cmath>
#include <type_traits>
#include <utility>

namespace ngstack::app {

std::string escape_label_value(std::string_view v) {
  std::string o;
  o.reserve(v.size());
  for (char c : v) {
    if (c == '\\') o += "\\\\";
    else if (c == '"') o += "\\\"";
    else if (c == '\n') o += "\\n";
    else o += c;
  }
  return o;
}

namespace {

using Labels = std::vector<std::pair<const char*, std::string>>;

// HELP text escapes backslash and newline only.
std::string escape_help(std::string_view v) {
  std::string o;
  for (char c : v) {
    if (c == '\\') o += "\\\\";
    else if (c == '\n') o += "\\n";
    else o += c;
  }
  return o;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, end) : "NaN";
}

// Writes one family at a time: HELP and TYPE, then its samples.
class Exposition {
 public:
  Exposition& family(std::string_view name, std::string_view type, std::string_view help) {
    name_ = name;
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += escape_help(help);
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
    return *this;
  }
  Exposition& counter(std::string_view name, std::string_view help) { return family(name, "counter", help); }
  Exposition& gauge(std::string_view name, std::string_view help) { return family(name, "gauge", help); }

  Exposition& sample(const Labels& labels, uint64_t v) { return sample_text(labels, std::to_string(v)); }
  Exposition& sample_double(const Labels& labels, double v) { return sample_text(labels, format_value(v)); }

  std::string take() { return std::move(out_); }

 private:
  Exposition& sample_text(const Labels& labels, const std::string& value) {
    out_ += name_;
    if (!labels.empty()) {
      out_ += '{';
      for (std::size_t i = 0; i < labels.size(); ++i) {
        if (i) out_ += ',';
        out_ += labels[i].first;
        out_ += "=\"";
        out_ += escape_label_value(labels[i].second);
        out_ += '"';
      }
      out_ += '}';
    }
    out_ += ' ';
    out_ += value;
    out_ += '\n';
    return *this;
  }

  std::string out_;
  std::string name_;
};

std::string num(uint64_t v) { return std::to_string(v); }

// The `clients:` generators (tcp-load), labelled with their names: counters
// as one family with the counter's name as a label (as ngstack_tcp_total),
// errors by kind, the gauges, and each latency histogram's quantiles.
void render_generators(Exposition& e, const std::vector<stack::services::ServiceView>& services) {
  using L = stack::services::LoadView;
  std::vector<const L*> gens;
  for (const auto& v : services)
    if (v.type == conf::ServiceType::tcp_load) gens.push_back(&v.load);
  const std::pair<const char*, uint64_t L::*> counters[] = {
      {"attempted", &L::attempted},           {"established", &L::established},
      {"completed", &L::completed},           {"requests", &L::requests},
      {"responses", &L::responses},           {"tx_bytes", &L::tx_bytes},
      {"rx_bytes", &L::rx_bytes},             {"tx_acked_bytes", &L::tx_acked_bytes},
      {"rx_acked_bytes", &L::rx_acked_bytes}, {"goodput_bytes", &L::goodput_bytes},
      {"tx_wire_bytes", &L::tx_wire_bytes},   {"retransmitted_bytes", &L::retransmitted_bytes},
      {"retransmits", &L::retransmits}};
  e.counter("ngstack_client_total",
            "A clients: generator's counters: connections, transactions, bytes (the tx_/rx_acked_bytes and "
            "retransmitted_bytes as TCP counted them)");
  for (const L* l : gens)
    for (const auto& [name, field] : counters) e.sample({{"generator", l->name}, {"counter", name}}, l->*field);
  const std::pair<const char*, uint64_t L::*> errors[] = {
      {"refused", &L::refused}, {"reset", &L::reset}, {"timeout", &L::timeout},
      {"bad_response", &L::bad_response}, {"local", &L::local}, {"no_session", &L::no_session}};
  e.counter("ngstack_client_errors_total", "Connections of a clients: generator that did not complete, by kind");
  for (const L* l : gens)
    for (const auto& [kind, field] : errors) e.sample({{"generator", l->name}, {"kind", kind}}, l->*field);
  e.counter("ngstack_client_http_responses_total", "HTTP responses of a clients: generator by status class");
  for (const L* l : gens)
    for (int k = 1; k <= 5; ++k)
      e.sample({{"generator", l->name}, {"class", std::to_string(k) + "xx"}}, l->http_status[k]);
  e.gauge("ngstack_client_open", "Connections of a clients: generator established and not ended now");
  for (const L* l : gens) e.sample({{"generator", l->name}}, l->open);
  e.gauge("ngstack_client_peak_open", "The most connections of a clients: generator established at once");
  for (const L* l : gens) e.sample({{"generator", l->name}}, l->peak_open);
  e.gauge("ngstack_client_retransmission_ratio",
          "Payload bytes a clients: generator sent again, of all it put on the wire (0 on a clean path)");
  for (const L* l : gens) e.sample_double({{"generator", l->name}}, l->retransmission_ratio());
  e.gauge("ngstack_client_goodput_bytes_per_second",
          "Bytes acknowledged both ways, from the first connection opened to the last response");
  for (const L* l : gens) e.sample_double({{"generator", l->name}}, l->goodput_bytes_per_s());
  e.gauge("ngstack_client_latency_microseconds",
          "A clients: generator's latency at the quantile (1: the longest): connect (connect() to the handshake's "
          "end), first_byte (request to its first response byte), transaction (request to the response's end)");
  for (const L* l : gens)
    for (const auto& [hist, h] : {std::pair{"connect", &l->connect}, std::pair{"first_byte", &l->ttfb},
                                  std::pair{"transaction", &l->transaction}}) {
      if (!h->samples) continue;
      const std::pair<const char*, double> q[] = {
          {"0.5", h->p50_us}, {"0.9", h->p90_us}, {"0.99", h->p99_us}, {"0.999", h->p999_us}, {"1", h->max_us}};
      for (const auto& [quantile, us] : q)
        e.sample_double({{"generator", l->name}, {"histogram", hist}, {"quantile", quantile}}, us);
    }
}

}  // namespace

std::string render_metrics(const Snapshot& s, const MetricsContext& ctx) {
  Exposition e;
  e.gauge("ngstack_info", "The running ngstack: its mode as a label; always 1").sample({{"mode", ctx.mode}}, 1);
  e.gauge("ngstack_uptime_seconds", "Seconds since the workers started").sample_double({}, s.t_s);
  if (ctx.tsc_hz) e.gauge("ngstack_tsc_hertz", "TSC frequency: the unit of the cycle counters").sample({}, ctx.tsc_hz);

  // Totals: rx + originated = tx + dropped + consumed once the run ends.
  e.counter("ngstack_rx_packets_total", "Packets received by all workers").sample({}, s.rx_packets);
  e.counter("ngstack_tx_packets_total", "Packets sent by all workers").sample({}, s.tx_packets);
  e.counter("ngstack_dropped_packets_total",
            "Packets freed under a named drop reason, netisr queue drops included")
      .sample({}, s.drops);
  e.counter("ngstack_originated_packets_total", "Packets the stack made (ARP, ICMP, fragments, flood copies)")
      .sample({}, s.originated);
  e.counter("ngstack_consumed_packets_total", "Packets the stack absorbed (ARP, fragments joined into a datagram)")
      .sample({}, s.consumed);

  // Ports.
  auto port_family = [&](const char* name, const char* help, uint64_t PortSnap::*field) {
    e.counter(name, help);
    for (const auto& p : s.ports) e.sample({{"port", p.name}, {"device", p.device}}, p.*field);
  };
  port_family("ngstack_port_rx_packets_total", "Packets received on the port by the workers", &PortSnap::rx_packets);
  port_family("ngstack_port_rx_bytes_total", "Bytes received on the port by the workers", &PortSnap::rx_bytes);
  port_family("ngstack_port_tx_packets_total", "Packets sent on the port by the workers", &PortSnap::tx_packets);
  port_family("ngstack_port_tx_bytes_total", "Bytes sent on the port by the workers", &PortSnap::tx_bytes);
  port_family("ngstack_port_imissed_total", "Packets the device dropped because no rx descriptor was free",
              &PortSnap::imissed);
  port_family("ngstack_port_ierrors_total", "Erroneous packets the device received", &PortSnap::ierrors);
  port_family("ngstack_port_oerrors_total", "Packets the device failed to send", &PortSnap::oerrors);
  port_family("ngstack_port_rx_nombuf_total", "Receive failures for want of an mbuf", &PortSnap::rx_nombuf);

  // Queues.
  auto rxq_family = [&](const char* name, const char* help, uint64_t QueueSnap::*field) {
    e.counter(name, help);
    for (const auto& q : s.queues)
      e.sample({{"port", q.port}, {"queue", num(q.queue)}, {"worker", num(q.lcore)}}, q.*field);
  };
  rxq_family("ngstack_rxq_packets_total", "Packets received from the rx queue", &QueueSnap::packets);
  rxq_family("ngstack_rxq_bytes_total", "Bytes received from the rx queue", &QueueSnap::bytes);
  rxq_family("ngstack_rxq_empty_polls_total", "Polls of the rx queue that returned nothing", &QueueSnap::empty_polls);
  auto txq_family = [&](const char* name, const char* help, uint64_t TxQueueSnap::*field) {
    e.counter(name, help);
    for (const auto& q : s.tx_queues)
      e.sample({{"port", q.port}, {"queue", num(q.queue)}, {"worker", num(q.lcore)}}, q.*field);
  };
  txq_family("ngstack_txq_packets_total", "Packets sent on the tx queue (each worker owns one per port)",
             &TxQueueSnap::packets);
  txq_family("ngstack_txq_bytes_total", "Bytes sent on the tx queue", &TxQueueSnap::bytes);

  // Workers.
  auto worker_family = [&](const char* name, const char* help, uint64_t WorkerSnap::*field) {
    e.counter(name, help);
    for (const auto& w : s.workers) e.sample({{"worker", num(w.lcore)}}, w.*field);
  };
  worker_family("ngstack_worker_rx_packets_total", "Packets the worker received", &WorkerSnap::rx_packets);
  worker_family("ngstack_worker_rx_bytes_total", "Bytes the worker received", &WorkerSnap::rx_bytes);
  worker_family("ngstack_worker_tx_packets_total", "Packets the worker sent", &WorkerSnap::tx_packets);
  worker_family("ngstack_worker_tx_bytes_total", "Bytes the worker sent", &WorkerSnap::tx_bytes);
  worker_family("ngstack_worker_busy_cycles_total", "TSC cycles in loop iterations that received something",
                &WorkerSnap::busy_cycles);
  worker_family("ngstack_worker_cycles_total", "TSC cycles of all loop iterations", &WorkerSnap::total_cycles);
  worker_family("ngstack_worker_empty_polls_total", "Rx polls that returned nothing", &WorkerSnap::empty_polls);
  worker_family("ngstack_worker_iterations_total", "Iterations of the worker's poll loop", &WorkerSnap::iterations);

  e.counter("ngstack_drops_total", "Packets freed by the worker, by drop reason (stack/counters.hpp)");
  for (const auto& w : s.workers)
    for (std::size_t r = 0; r < w.drops.size(); ++r)
      e.sample({{"worker", num(w.lcore)},
                {"reason", std::string(stack::drop_reason_name(static_cast<stack::DropReason>(r)))}},
               w.drops[r]);
  e.counter("ngstack_events_total", "Stack events on the worker (forwarded, originated, consumed, ...)");
  for (const auto& w : s.workers)
    for (std::size_t ev = 0; ev < w.events.size(); ++ev)
      e.sample({{"worker", num(w.lcore)}, {"event", std::string(stack::event_name(static_cast<stack::Event>(ev)))}},
               w.events[ev]);

  // netisr: settings per protocol, counters per workstream (worker x protocol).
  if (!s.protocols.empty()) {
    e.gauge("ngstack_netisr_buckets", "RSS buckets the dispatcher maps to workers").sample({}, s.buckets);
    e.gauge("ngstack_netisr_protocol_info", "A netisr protocol's policy and dispatch mode as labels; always 1");
    for (const auto& p : s.protocols)
      e.sample({{"protocol", p.name}, {"policy", p.policy}, {"mode", p.mode}}, 1);
    e.gauge("ngstack_netisr_protocol_qlimit", "Work queue limit of the protocol, per worker");
    for (const auto& p : s.protocols) e.sample({{"protocol", p.name}}, p.qlimit);
  }
  auto ws_family = [&](const char* name, const char* type, const char* help, uint64_t dispatch::WorkstreamStats::*f) {
    if (s.workstreams.empty()) return;
    e.family(name, type, help);
    for (const auto& w : s.workstreams) e.sample({{"worker", num(w.lcore)}, {"protocol", w.proto}}, w.s.*f);
  };
  ws_family("ngstack_netisr_dispatched_total", "counter", "Packets handled inline in direct mode",
            &dispatch::WorkstreamStats::dispatched);
  ws_family("ngstack_netisr_hybrid_total", "counter", "Packets handled inline in hybrid mode",
            &dispatch::WorkstreamStats::hybrid);
  ws_family("ngstack_netisr_queued_total", "counter", "Packets queued to this worker (by any worker)",
            &dispatch::WorkstreamStats::queued);
  ws_family("ngstack_netisr_handled_total", "counter", "Packets this worker handled, inline and from its queues",
            &dispatch::WorkstreamStats::handled);
  ws_family("ngstack_netisr_qdrops_total", "counter", "Packets dropped because this worker's queue was full",
            &dispatch::WorkstreamStats::qdrops);
  ws_family("ngstack_netisr_queue_length", "gauge", "Packets queued for this worker now",
            &dispatch::WorkstreamStats::length);
  ws_family("ngstack_netisr_queue_watermark", "gauge", "The longest this worker's queue has been",
            &dispatch::WorkstreamStats::watermark);

  if (ctx.mode == "router" || ctx.mode == "host") {
    e.gauge("ngstack_fib_routes", "Routes in the FIB").sample({}, s.fib_routes);
    e.gauge("ngstack_fib_nexthops", "Next hops in the FIB").sample({}, s.fib_nexthops);
    e.gauge("ngstack_arp_entries", "Entries in the ARP cache").sample({}, s.neighbors.size());
  }
  if (ctx.mode == "bridge") e.gauge("ngstack_fdb_entries", "Entries in the bridge FDB").sample({}, s.fdb.size());

  // Traffic mode.
  if (!s.generators.empty()) {
    using G = stack::traffic::GeneratorView;
    auto gen = [&](const char* name, const char* type, const char* help, auto value) {
      e.family(name, type, help);
      for (const G& g : s.generators) {
        const Labels labels{{"port", g.port}, {"worker", num(g.worker)}};
        if constexpr (std::is_integral_v<decltype(value(g))>) e.sample(labels, value(g));
        else e.sample_double(labels, value(g));
      }
    };
    gen("ngstack_generator_packets_total", "counter", "Frames the generator sent",
        [](const G& g) { return g.packets; });
    gen("ngstack_generator_bytes_total", "counter", "Bytes the generator sent",
        [](const G& g) { return g.bytes; });
    gen("ngstack_generator_target_pps", "gauge", "Frames per second asked for; 0: as fast as the port takes them",
        [](const G& g) { return g.target_pps; });
    gen("ngstack_generator_achieved_pps", "gauge", "Frames per second sent since the first burst",
        [](const G& g) { return g.achieved_pps; });
    gen("ngstack_generator_done", "gauge", "1 once the generator reached its packet count or duration",
        [](const G& g) { return uint64_t{g.done}; });
  }
  if (!s.sinks.empty()) {
    using K = stack::traffic::SinkView;
    auto sink = [&](const char* name, const char* help, uint64_t K::*field) {
      e.counter(name, help);
      for (const K& k : s.sinks) e.sample({{"port", k.port}}, k.*field);
    };
    sink("ngstack_sink_packets_total", "Frames the sink received", &K::packets);
    sink("ngstack_sink_bytes_total", "Bytes the sink received", &K::bytes);
    sink("ngstack_sink_stamped_total", "Frames carrying a generator stamp", &K::stamped);
    sink("ngstack_sink_unstamped_total", "Frames without a generator stamp", &K::unstamped);
    sink("ngstack_sink_unknown_flow_total", "Stamped frames of a flow beyond the sink's max_flows", &K::unknown_flow);
  }

  // Router and host modes: the connection tables' locks, per lock class.
  if (s.locks) {
    const LocksSnap& l = *s.locks;
    e.gauge("ngstack_lock_info", "The connection tables' locking (giant or group) and lock type as labels; always 1")
        .sample({{"locking", l.locking}, {"lock_type", l.lock_type}}, 1);
    e.gauge("ngstack_lock_groups", "Connection groups per connection table").sample({}, l.groups);
    e.counter("ngstack_pcb_lookups_total", "Connection table lookups: one per packet");
    for (const auto& t : l.tables) e.sample({{"table", t.name}}, t.lookups);
    e.gauge("ngstack_pcb_live", "PCBs (sockets and connections) in the connection table now");
    for (const auto& t : l.tables) e.sample({{"table", t.name}}, t.live);
    auto lock_family = [&](const char* name, const char* type, const char* help, uint64_t LockClassSnap::*field) {
      e.family(name, type, help);
      for (const auto& t : l.tables)
        for (const auto& c : t.classes) e.sample({{"table", t.name}, {"class", c.name}}, c.*field);
    };
    lock_family("ngstack_lock_acquisitions_total", "counter", "Acquisitions of the class's locks",
                &LockClassSnap::acquisitions);
    lock_family("ngstack_lock_contended_total", "counter",
                "Acquisitions of the class's locks that found the lock taken", &LockClassSnap::contended);
    lock_family("ngstack_lock_wait_cycles_total", "counter",
                "TSC cycles from the first try to the acquisition, contended or not", &LockClassSnap::wait_cycles);
    lock_family("ngstack_lock_wait_max_cycles", "gauge", "The longest wait for one of the class's locks, TSC cycles",
                &LockClassSnap::wait_max);
    lock_family("ngstack_lock_hold_cycles_total", "counter", "TSC cycles the class's locks were held",
                &LockClassSnap::hold_cycles);
    lock_family("ngstack_lock_hold_max_cycles", "gauge", "The longest hold of one of the class's locks, TSC cycles",
                &LockClassSnap::hold_max);
  }

  // Router and host modes: TCP's counters, one family with the counter's name as a label.
  if (s.tcp) {
    e.counter("ngstack_tcp_total", "TCP's counters as netstat -s -p tcp has them (stack/tcp/README.md)");
    for (const auto& [name, v] : s.tcp->stats) e.sample({{"counter", name}}, v);
    e.gauge("ngstack_tcp_connections", "TCP connections in the table now, TIME-WAIT included")
        .sample({}, s.tcp->connections.size());
  }

  // Router and host modes: the UDP services (a client: its server's address).
  if (!s.services.empty()) {
    using V = stack::services::ServiceView;
    auto labels = [](const V& v) -> Labels {
      const bool client = v.type == conf::ServiceType::udp_client || v.type == conf::ServiceType::tcp_client;
      return {{"service", conf::service_type_name(v.type)},
              {"address", conf::format_ipv4(client ? v.server : v.address)},
              {"port", num(v.port)}};
    };
    auto service = [&](const char* name, const char* help, uint64_t stack::socket::SocketStats::*field) {
      e.counter(name, help);
      for (const V& v : s.services)
        if (v.type != conf::ServiceType::tcp_load) e.sample(labels(v), v.io.*field);  // `clients:`: not exported yet
    };
    service("ngstack_service_rx_datagrams_total", "Datagrams the service's sockets received",
            &stack::socket::SocketStats::rx_datagrams);
    service("ngstack_service_rx_bytes_total", "Payload bytes the service's sockets received",
            &stack::socket::SocketStats::rx_bytes);
    service("ngstack_service_tx_datagrams_total", "Datagrams the service's sockets sent",
            &stack::socket::SocketStats::tx_datagrams);
    service("ngstack_service_tx_bytes_total", "Payload bytes the service's sockets sent",
            &stack::socket::SocketStats::tx_bytes);
    service("ngstack_service_tx_no_mbuf_total", "Sends that failed for want of an mbuf",
            &stack::socket::SocketStats::tx_no_mbuf);
    service("ngstack_service_tx_queue_full_total", "Sends dropped because the tx queue was full",
            &stack::socket::SocketStats::tx_queue_full);
    service("ngstack_service_tx_unroutable_total", "Sends with no route to the destination",
            &stack::socket::SocketStats::tx_unroutable);
    service("ngstack_service_icmp_errors_total", "ICMP errors about the service's datagrams given to its sockets",
            &stack::socket::SocketStats::icmp_errors);
    bool any_client = false;
    for (const V& v : s.services) any_client = any_client || v.type == conf::ServiceType::udp_client;
    if (any_client) {
      auto client = [&](const char* name, const char* type, const char* help, auto value) {
        e.family(name, type, help);
        for (const V& v : s.services) {
          if (v.type != conf::ServiceType::udp_client) continue;
          if constexpr (std::is_integral_v<decltype(value(v))>) e.sample(labels(v), value(v));
          else e.sample_double(labels(v), value(v));
        }
      };
      client("ngstack_udp_client_requests_total", "counter", "Requests the client sent",
             [](const V& v) { return v.requests; });
      client("ngstack_udp_client_responses_total", "counter", "Responses the client received in time",
             [](const V& v) { return v.responses; });
      client("ngstack_udp_client_lost_total", "counter", "Requests unanswered within the timeout",
             [](const V& v) { return v.lost; });
      client("ngstack_udp_client_late_total", "counter", "Responses to requests already counted lost",
             [](const V& v) { return v.late; });
      client("ngstack_udp_client_transactions_per_second", "gauge",
             "Responses per second, from the first request to the last response",
             [](const V& v) { return v.transactions_per_s; });
      e.gauge("ngstack_udp_client_latency_microseconds",
              "Round-trip time of the responses so far at the quantile (1: the longest)");
      for (const V& v : s.services) {
        if (v.type != conf::ServiceType::udp_client) continue;
        const std::pair<const char*, double> q[] = {{"0.5", v.latency.p50_us},
                                                    {"0.9", v.latency.p90_us},
                                                    {"0.99", v.latency.p99_us},
                                                    {"0.999", v.latency.p999_us},
                                                    {"1", v.latency.max_us}};
        for (const auto& [quantile, us] : q) {
          Labels with = labels(v);
          with.emplace_back("quantile", quantile);
          e.sample_double(with, us);
        }
      }
    }
    bool any_load = false;
    for (const V& v : s.services) any_load = any_load || v.type == conf::ServiceType::tcp_load;
    if (any_load) render_generators(e, s.services);
  }

  if (!ctx.mempools.empty()) {
    e.gauge("ngstack_mempool_available", "Mbufs in the pool now (the rest are in rings, queues or flight)");
    for (const auto& m : ctx.mempools) e.sample({{"pool", m.name}}, m.available);
    e.gauge("ngstack_mempool_size", "Mbufs the pool was created with");
    for (const auto& m : ctx.mempools) e.sample({{"pool", m.name}}, m.size);
  }
  return e.take();
}

}  // namespace ngstack::app
