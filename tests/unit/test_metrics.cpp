// The Prometheus rendering (app/metrics.cpp): the text exposition format 0.0.4
// as a scraper parses it (every sample line `name{labels} value`, one HELP and
// one TYPE per family with its samples together, label values escaped), and
// known numbers of a hand-made Snapshot under the right labels. Also the
// summary's services and locks sections (text and JSON) of that Snapshot.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cctype>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "app/metrics.hpp"

using namespace ngstack;
using namespace ngstack::app;

namespace {

struct Sample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;  // unescaped values
  double value = 0;
  std::string key() const {
    std::string k = name + "{";
    for (std::size_t i = 0; i < labels.size(); ++i) k += (i ? "," : "") + labels[i].first + "=" + labels[i].second;
    return k + "}";
  }
};

bool name_char(char c, bool first) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':' ||
         (!first && std::isdigit(static_cast<unsigned char>(c)));
}

// Parses one sample line strictly; the error says what is wrong.
std::optional<Sample> parse_sample(const std::string& line, std::string& why) {
  Sample s;
  std::size_t i = 0;
  while (i < line.size() && name_char(line[i], i == 0)) ++i;
  s.name = line.substr(0, i);
  if (s.name.empty()) return why = "no metric name", std::nullopt;
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (i < line.size() && line[i] != '}') {
      std::size_t b = i;
      while (i < line.size() && name_char(line[i], i == b) && line[i] != ':') ++i;
      std::string lname = line.substr(b, i - b);
      if (lname.empty() || i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"')
        return why = "bad label at " + std::to_string(b), std::nullopt;
      i += 2;
      std::string v;
      for (;; ++i) {
        if (i >= line.size()) return why = "unterminated label value", std::nullopt;
        if (line[i] == '"') break;
        if (line[i] == '\n') return why = "raw newline", std::nullopt;
        if (line[i] == '\\') {
          if (++i >= line.size()) return why = "dangling backslash", std::nullopt;
          if (line[i] == 'n') v += '\n';
          else if (line[i] == '\\' || line[i] == '"') v += line[i];
          else return why = "bad escape \\" + std::string(1, line[i]), std::nullopt;
        } else {
          v += line[i];
        }
      }
      ++i;  // closing quote
      s.labels.emplace_back(lname, v);
      if (i < line.size() && line[i] == ',') ++i;
      else if (i >= line.size() || line[i] != '}') return why = "expected , or }", std::nullopt;
    }
    if (i >= line.size()) return why = "unterminated labels", std::nullopt;
    ++i;
  }
  if (i >= line.size() || line[i] != ' ') return why = "no space before the value", std::nullopt;
  const std::string value = line.substr(i + 1);
  if (value == "+Inf") s.value = INFINITY;
  else if (value == "-Inf") s.value = -INFINITY;
  else if (value == "NaN") s.value = NAN;
  else {
    char* end = nullptr;
    s.value = std::strtod(value.c_str(), &end);
    if (value.empty() || std::isspace(static_cast<unsigned char>(value[0])) || *end != '\0')
      return why = "bad value \"" + value + "\"", std::nullopt;
  }
  return s;
}

struct Parsed {
  std::map<std::string, std::string> types;  // family -> counter | gauge
  std::map<std::string, double> samples;     // Sample::key() -> value
  std::vector<Sample> all;
};

// Parses a whole exposition, failing the test on anything a scraper rejects.
Parsed parse(const std::string& text) {
  Parsed p;
  std::set<std::string> helped, finished;
  std::string family;  // the family whose samples may follow
  std::istringstream in(text);
  std::string line;
  int n = 0;
  EXPECT_TRUE(!text.empty() && text.back() == '\n') << "the exposition must end with a newline";
  while (std::getline(in, line)) {
    ++n;
    const std::string at = "line " + std::to_string(n) + ": " + line;
    if (line.rfind("# HELP ", 0) == 0) {
      const std::string name = line.substr(7, line.find(' ', 7) - 7);
      EXPECT_TRUE(helped.insert(name).second) << at << ": second HELP";
      EXPECT_GT(line.size(), 8 + name.size()) << at << ": empty HELP";
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream t(line.substr(7));
      std::string name, type;
      t >> name >> type;
      EXPECT_TRUE(helped.count(name)) << at << ": TYPE before HELP";
      EXPECT_FALSE(p.types.count(name)) << at << ": second TYPE";
      EXPECT_TRUE(type == "counter" || type == "gauge") << at;
      if (type == "counter") {
        EXPECT_TRUE(name.ends_with("_total")) << at << ": a counter's name ends in _total";
      } else {
        EXPECT_FALSE(name.ends_with("_total")) << at << ": a gauge's name does not end in _total";
      }
      if (!family.empty()) finished.insert(family);
      family = name;
      p.types[name] = type;
      continue;
    }
    if (line.empty() || line[0] == '#') {
      ADD_FAILURE() << at << ": stray line";
      continue;
    }
    std::string why;
    auto sample = parse_sample(line, why);
    if (!sample) {
      ADD_FAILURE() << at << ": " << why;
      continue;
    }
    EXPECT_EQ(sample->name, family) << at << ": sample outside its family's block";
    EXPECT_FALSE(finished.count(sample->name)) << at << ": family split in two blocks";
    EXPECT_TRUE(p.samples.emplace(sample->key(), sample->value).second) << at << ": duplicate series";
    p.all.push_back(*sample);
  }
  return p;
}

}  // namespace

namespace {

Snapshot sample_snapshot() {
  Snapshot s;
  s.t_s = 2.5;
  PortSnap a;
  a.name = "p0";
  a.device = "net_pcap0,rx_pcap=/tmp/a \"b\"\\c\nd.pcap,infinite_rx=1";  // quote, backslash, newline
  a.driver = "net_pcap";
  a.rx_packets = 1000, a.rx_bytes = 64000, a.tx_packets = 1, a.tx_bytes = 42;
  a.imissed = 7, a.ierrors = 8, a.oerrors = 9, a.rx_nombuf = 10;
  PortSnap b;
  b.name = "p1";
  b.device = "net_null0,no-rx=1";
  b.tx_packets = 990, b.tx_bytes = 63360;
  s.ports = {a, b};
  s.queues = {{"p0", 0, 1, 600, 38400, 11}, {"p0", 1, 2, 400, 25600, 12}};
  s.tx_queues = {{"p1", 0, 1, 590, 37760}, {"p1", 1, 2, 400, 25600}, {"p0", 0, 1, 1, 42}};
  WorkerSnap w1;
  w1.lcore = 1;
  w1.rx_packets = 600, w1.rx_bytes = 38400, w1.tx_packets = 591, w1.tx_bytes = 37802;
  w1.empty_polls = 11, w1.iterations = 50, w1.busy_cycles = 3000, w1.total_cycles = 5000;
  w1.drops[static_cast<std::size_t>(stack::DropReason::tx_full)] = 4;
  w1.drops_total = 4;
  w1.events[static_cast<std::size_t>(stack::Event::originated)] = 1;
  WorkerSnap w2;
  w2.lcore = 2;
  w2.rx_packets = 400, w2.rx_bytes = 25600, w2.tx_packets = 400, w2.tx_bytes = 25600;
  w2.drops[static_cast<std::size_t>(stack::DropReason::ipv4_bad_checksum)] = 3;
  w2.drops_total = 3;
  s.workers = {w1, w2};
  s.buckets = 128;
  s.protocols = {{"ether", "flow", "hybrid", 1024}, {"ip", "cpu", "deferred", 2048}};
  dispatch::WorkstreamStats st;
  st.dispatched = 5, st.hybrid = 6, st.queued = 7, st.handled = 8, st.qdrops = 2, st.length = 3, st.watermark = 40;
  s.workstreams = {{1, "ether", st}, {1, "ip", {}}, {2, "ether", {}}, {2, "ip", {}}};
  s.qdrops = 2;
  s.rx_packets = 1000, s.tx_packets = 991, s.drops = 9, s.originated = 1, s.consumed = 1;
  s.fib_routes = 3, s.fib_nexthops = 2;
  s.neighbors = {{"p1", "198.19.0.2", "02:00:00:00:00:03", "permanent", 0, 0}};
  stack::traffic::GeneratorView g;
  g.port = "p0", g.worker = 1, g.flows = 4, g.target_pps = 1e6, g.packets = 2500000, g.bytes = 160000000;
  g.seconds = 2.5, g.achieved_pps = 999999.5, g.done = true;
  s.generators = {g};
  stack::traffic::SinkView k;
  k.port = "p1", k.packets = 2400000, k.bytes = 153600000, k.stamped = 2399990, k.unstamped = 10, k.unknown_flow = 1;
  s.sinks = {k};
  // Host/router mode: two services and the udp table's locks.
  stack::services::ServiceView echo;
  echo.type = conf::ServiceType::udp_echo, echo.port = 7, echo.sockets = 1;
  echo.io.rx_datagrams = 10, echo.io.rx_bytes = 640, echo.io.tx_datagrams = 9, echo.io.tx_bytes = 576;
  echo.io.tx_no_mbuf = 1;
  stack::services::ServiceView client;
  client.type = conf::ServiceType::udp_client, client.server = 0xc6120102, client.port = 7, client.sockets = 64;
  client.io.tx_datagrams = 1000, client.io.tx_bytes = 64000, client.io.rx_datagrams = 990, client.io.rx_bytes = 63360;
  client.io.icmp_errors = 2;
  client.requests = 1000, client.responses = 990, client.lost = 10, client.late = 3;
  client.seconds = 2.5, client.transactions_per_s = 396;
  client.latency = {990, 8.5, 12.25, 11.5, 20.5, 40.5, 60.5, 75.5};
  s.services = {echo, client};
  LocksSnap l;
  l.locking = "group", l.lock_type = "spin", l.groups = 128;
  LockTableSnap t;
  t.name = "udp", t.lookups = 2000, t.live = 65, t.acquisitions_per_packet = 0.25;
  t.classes = {{"pcb_listen", 2, 0, 100, 60, 400, 300},
               {"pcb_giant", 0, 0, 0, 0, 0, 0},
               {"pcb_group", 500, 50, 20000, 900, 80000, 1200},
               {"pcb_conn", 0, 0, 0, 0, 0, 0}};
  t.busiest_groups = {{5, 1, 300, 40, 15000}, {9, 0, 200, 10, 5000}};
  l.tables = {t};
  s.locks = l;
  return s;
}

MetricsContext sample_context() { return {"router", 2600000000ull, {{"ngs_mbuf_pool", 8191, 8000}}}; }

}  // namespace

TEST(Metrics, FormatIsValidExposition) {
  const std::string text = render_metrics(sample_snapshot(), sample_context());
  const Parsed p = parse(text);
  EXPECT_GT(p.types.size(), 40u);
  // Every family has at least one sample.
  for (const auto& [name, type] : p.types) {
    bool any = false;
    for (const auto& s : p.all) any = any || s.name == name;
    EXPECT_TRUE(any) << name << " has no samples";
  }
  // The raw text carries the escapes, never a raw quote or newline inside a value.
  EXPECT_NE(text.find(R"(device="net_pcap0,rx_pcap=/tmp/a \"b\"\\c\nd.pcap,infinite_rx=1")"), std::string::npos)
      << text.substr(0, 2000);
}

TEST(Metrics, EscapesLabelValues) {
  EXPECT_EQ(escape_label_value("plain"), "plain");
  EXPECT_EQ(escape_label_value("a\"b"), "a\\\"b");
  EXPECT_EQ(escape_label_value("a\\b"), "a\\\\b");
  EXPECT_EQ(escape_label_value("a\nb"), "a\\nb");
}

TEST(Metrics, KnownNumbersUnderTheirLabels) {
  const Snapshot snap = sample_snapshot();
  const Parsed p = parse(render_metrics(snap, sample_context()));
  auto v = [&](const std::string& key) {
    auto it = p.samples.find(key);
    EXPECT_NE(it, p.samples.end()) << key;
    return it == p.samples.end() ? -1.0 : it->second;
  };
  const std::string dev0 = "device=" + snap.ports[0].device;
  EXPECT_EQ(p.types.at("ngstack_rx_packets_total"), "counter");
  EXPECT_EQ(p.types.at("ngstack_mempool_available"), "gauge");
  EXPECT_EQ(v("ngstack_info{mode=router}"), 1);
  EXPECT_EQ(v("ngstack_uptime_seconds{}"), 2.5);
  EXPECT_EQ(v("ngstack_tsc_hertz{}"), 2.6e9);
  EXPECT_EQ(v("ngstack_rx_packets_total{}"), 1000);
  EXPECT_EQ(v("ngstack_tx_packets_total{}"), 991);
  EXPECT_EQ(v("ngstack_dropped_packets_total{}"), 9);
  EXPECT_EQ(v("ngstack_originated_packets_total{}"), 1);
  EXPECT_EQ(v("ngstack_consumed_packets_total{}"), 1);
  EXPECT_EQ(v("ngstack_port_rx_packets_total{port=p0," + dev0 + "}"), 1000);
  EXPECT_EQ(v("ngstack_port_rx_bytes_total{port=p0," + dev0 + "}"), 64000);
  EXPECT_EQ(v("ngstack_port_imissed_total{port=p0," + dev0 + "}"), 7);
  EXPECT_EQ(v("ngstack_port_ierrors_total{port=p0," + dev0 + "}"), 8);
  EXPECT_EQ(v("ngstack_port_oerrors_total{port=p0," + dev0 + "}"), 9);
  EXPECT_EQ(v("ngstack_port_rx_nombuf_total{port=p0," + dev0 + "}"), 10);
  EXPECT_EQ(v("ngstack_port_tx_packets_total{port=p1,device=net_null0,no-rx=1}"), 990);
  EXPECT_EQ(v("ngstack_port_tx_bytes_total{port=p1,device=net_null0,no-rx=1}"), 63360);
  EXPECT_EQ(v("ngstack_rxq_packets_total{port=p0,queue=1,worker=2}"), 400);
  EXPECT_EQ(v("ngstack_rxq_bytes_total{port=p0,queue=0,worker=1}"), 38400);
  EXPECT_EQ(v("ngstack_rxq_empty_polls_total{port=p0,queue=1,worker=2}"), 12);
  EXPECT_EQ(v("ngstack_txq_packets_total{port=p1,queue=0,worker=1}"), 590);
  EXPECT_EQ(v("ngstack_txq_bytes_total{port=p0,queue=0,worker=1}"), 42);
  EXPECT_EQ(v("ngstack_worker_rx_packets_total{worker=1}"), 600);
  EXPECT_EQ(v("ngstack_worker_tx_bytes_total{worker=1}"), 37802);
  EXPECT_EQ(v("ngstack_worker_busy_cycles_total{worker=1}"), 3000);
  EXPECT_EQ(v("ngstack_worker_cycles_total{worker=1}"), 5000);
  EXPECT_EQ(v("ngstack_worker_empty_polls_total{worker=1}"), 11);
  EXPECT_EQ(v("ngstack_worker_iterations_total{worker=1}"), 50);
  EXPECT_EQ(v("ngstack_drops_total{worker=1,reason=tx_full}"), 4);
  EXPECT_EQ(v("ngstack_drops_total{worker=2,reason=ipv4_bad_checksum}"), 3);
  EXPECT_EQ(v("ngstack_drops_total{worker=2,reason=tx_full}"), 0);
  EXPECT_EQ(v("ngstack_events_total{worker=1,event=originated}"), 1);
  EXPECT_EQ(v("ngstack_netisr_buckets{}"), 128);
  EXPECT_EQ(v("ngstack_netisr_protocol_info{protocol=ip,policy=cpu,mode=deferred}"), 1);
  EXPECT_EQ(v("ngstack_netisr_protocol_qlimit{protocol=ip}"), 2048);
  EXPECT_EQ(v("ngstack_netisr_dispatched_total{worker=1,protocol=ether}"), 5);
  EXPECT_EQ(v("ngstack_netisr_hybrid_total{worker=1,protocol=ether}"), 6);
  EXPECT_EQ(v("ngstack_netisr_queued_total{worker=1,protocol=ether}"), 7);
  EXPECT_EQ(v("ngstack_netisr_handled_total{worker=1,protocol=ether}"), 8);
  EXPECT_EQ(v("ngstack_netisr_qdrops_total{worker=1,protocol=ether}"), 2);
  EXPECT_EQ(v("ngstack_netisr_queue_length{worker=1,protocol=ether}"), 3);
  EXPECT_EQ(v("ngstack_netisr_queue_watermark{worker=1,protocol=ether}"), 40);
  EXPECT_EQ(v("ngstack_netisr_handled_total{worker=2,protocol=ip}"), 0);
  EXPECT_EQ(v("ngstack_fib_routes{}"), 3);
  EXPECT_EQ(v("ngstack_fib_nexthops{}"), 2);
  EXPECT_EQ(v("ngstack_arp_entries{}"), 1);
  EXPECT_EQ(v("ngstack_generator_packets_total{port=p0,worker=1}"), 2500000);
  EXPECT_EQ(v("ngstack_generator_bytes_total{port=p0,worker=1}"), 160000000);
  EXPECT_EQ(v("ngstack_generator_target_pps{port=p0,worker=1}"), 1e6);
  EXPECT_EQ(v("ngstack_generator_achieved_pps{port=p0,worker=1}"), 999999.5);
  EXPECT_EQ(v("ngstack_generator_done{port=p0,worker=1}"), 1);
  EXPECT_EQ(v("ngstack_sink_packets_total{port=p1}"), 2400000);
  EXPECT_EQ(v("ngstack_sink_bytes_total{port=p1}"), 153600000);
  EXPECT_EQ(v("ngstack_sink_stamped_total{port=p1}"), 2399990);
  EXPECT_EQ(v("ngstack_sink_unstamped_total{port=p1}"), 10);
  EXPECT_EQ(v("ngstack_sink_unknown_flow_total{port=p1}"), 1);
  EXPECT_EQ(v("ngstack_mempool_available{pool=ngs_mbuf_pool}"), 8000);
  EXPECT_EQ(v("ngstack_mempool_size{pool=ngs_mbuf_pool}"), 8191);
  EXPECT_FALSE(p.types.count("ngstack_fdb_entries"));  // bridge mode only
}

TEST(Metrics, LocksAndServicesUnderTheirLabels) {
  const Parsed p = parse(render_metrics(sample_snapshot(), sample_context()));
  auto v = [&](const std::string& key) {
    auto it = p.samples.find(key);
    EXPECT_NE(it, p.samples.end()) << key;
    return it == p.samples.end() ? -1.0 : it->second;
  };
  EXPECT_EQ(v("ngstack_lock_info{locking=group,lock_type=spin}"), 1);
  EXPECT_EQ(v("ngstack_lock_groups{}"), 128);
  EXPECT_EQ(v("ngstack_pcb_lookups_total{table=udp}"), 2000);
  EXPECT_EQ(v("ngstack_pcb_live{table=udp}"), 65);
  EXPECT_EQ(p.types.at("ngstack_lock_acquisitions_total"), "counter");
  EXPECT_EQ(v("ngstack_lock_acquisitions_total{table=udp,class=pcb_group}"), 500);
  EXPECT_EQ(v("ngstack_lock_acquisitions_total{table=udp,class=pcb_giant}"), 0);  // every class, zeros too
  EXPECT_EQ(v("ngstack_lock_contended_total{table=udp,class=pcb_group}"), 50);
  EXPECT_EQ(v("ngstack_lock_wait_cycles_total{table=udp,class=pcb_group}"), 20000);
  EXPECT_EQ(v("ngstack_lock_wait_max_cycles{table=udp,class=pcb_group}"), 900);
  EXPECT_EQ(v("ngstack_lock_hold_cycles_total{table=udp,class=pcb_listen}"), 400);
  EXPECT_EQ(v("ngstack_lock_hold_max_cycles{table=udp,class=pcb_group}"), 1200);
  EXPECT_EQ(v("ngstack_lock_acquisitions_total{table=udp,class=pcb_conn}"), 0);
  const std::string echo = "{service=udp-echo,address=0.0.0.0,port=7}";
  const std::string client = "{service=udp-client,address=198.18.1.2,port=7}";
  EXPECT_EQ(v("ngstack_service_rx_datagrams_total" + echo), 10);
  EXPECT_EQ(v("ngstack_service_rx_bytes_total" + echo), 640);
  EXPECT_EQ(v("ngstack_service_tx_datagrams_total" + echo), 9);
  EXPECT_EQ(v("ngstack_service_tx_bytes_total" + echo), 576);
  EXPECT_EQ(v("ngstack_service_tx_no_mbuf_total" + echo), 1);
  EXPECT_EQ(v("ngstack_service_tx_datagrams_total" + client), 1000);
  EXPECT_EQ(v("ngstack_service_icmp_errors_total" + client), 2);
  EXPECT_EQ(v("ngstack_udp_client_requests_total" + client), 1000);
  EXPECT_EQ(v("ngstack_udp_client_responses_total" + client), 990);
  EXPECT_EQ(v("ngstack_udp_client_lost_total" + client), 10);
  EXPECT_EQ(v("ngstack_udp_client_late_total" + client), 3);
  EXPECT_EQ(v("ngstack_udp_client_transactions_per_second" + client), 396);
  EXPECT_EQ(v("ngstack_udp_client_latency_microseconds{service=udp-client,address=198.18.1.2,port=7,quantile=0.99}"),
            40.5);
  EXPECT_EQ(v("ngstack_udp_client_latency_microseconds{service=udp-client,address=198.18.1.2,port=7,quantile=1}"),
            75.5);
  EXPECT_FALSE(p.samples.count("ngstack_udp_client_requests_total" + echo));  // clients only
}

TEST(Metrics, EveryDropReasonAndEventOfEveryWorker) {
  const Parsed p = parse(render_metrics(sample_snapshot(), sample_context()));
  for (unsigned w : {1u, 2u}) {
    for (std::size_t r = 0; r < stack::kDropReasonCount; ++r)
      EXPECT_TRUE(p.samples.count("ngstack_drops_total{worker=" + std::to_string(w) + ",reason=" +
                                  std::string(stack::drop_reason_name(static_cast<stack::DropReason>(r))) + "}"))
          << r;
    for (std::size_t e = 0; e < stack::kEventCount; ++e)
      EXPECT_TRUE(p.samples.count("ngstack_events_total{worker=" + std::to_string(w) + ",event=" +
                                  std::string(stack::event_name(static_cast<stack::Event>(e))) + "}"))
          << e;
  }
}

TEST(Metrics, EmptyRuntimeSectionsAreLeftOut) {
  Snapshot s;
  const std::string text = render_metrics(s, {"forwarder", 0, {}});
  const Parsed p = parse(text);
  EXPECT_EQ(p.samples.at("ngstack_info{mode=forwarder}"), 1);
  for (const char* absent : {"ngstack_tsc_hertz", "ngstack_netisr_buckets", "ngstack_netisr_handled_total",
                             "ngstack_fib_routes", "ngstack_generator_packets_total", "ngstack_sink_packets_total",
                             "ngstack_mempool_size", "ngstack_lock_info", "ngstack_lock_acquisitions_total",
                             "ngstack_pcb_lookups_total", "ngstack_service_rx_datagrams_total",
                             "ngstack_udp_client_responses_total"})
    EXPECT_FALSE(p.types.count(absent)) << absent;
}

TEST(Metrics, CheckerRejectsWhatScrapersReject) {
  std::string why;
  EXPECT_FALSE(parse_sample("a{b=\"c} 1", why));
  EXPECT_FALSE(parse_sample("a{b=\"c\\q\"} 1", why));
  EXPECT_FALSE(parse_sample("a{b=c} 1", why));
  EXPECT_FALSE(parse_sample("a 1x", why));
  EXPECT_FALSE(parse_sample("a  1", why));
  EXPECT_FALSE(parse_sample("1a 1", why));
  auto ok = parse_sample("a_b:c{b=\"c\\\"d\\\\e\\nf\",g=\"\"} -1.5e3", why);
  ASSERT_TRUE(ok) << why;
  EXPECT_EQ(ok->key(), "a_b:c{b=c\"d\\e\nf,g=}");
  EXPECT_EQ(ok->value, -1500);
}

// The summary's services and locks sections (app/stats.cpp), text and JSON,
// from the same hand-made Snapshot.
namespace {
Summary host_summary() {
  Summary s;
  s.mode = "host";
  s.source = "test";
  s.final = sample_snapshot();
  return s;
}
}  // namespace

TEST(StatsSummary, ServicesAndLocksText) {
  const std::string text = format_summary(host_summary());
  for (const char* want :
       {"services: 2\n", "  udp-echo    0.0.0.0:7", "1 socket: rx 10 datagrams 640 bytes, tx 9 datagrams 576 bytes; "
        "tx_no_mbuf 1, tx_queue_full 0, tx_unroutable 0; icmp_errors 0\n",
        "  udp-client  to 198.18.1.2:7", "64 sockets: rx 990 datagrams",
        "    requests 1000, responses 990, lost 10, late 3; 396.0 transactions/s over 2.500 s\n",
        "    latency (us): p50 11.5, p99 40.5, max 75.5 (min 8.5, mean 12.2) over 990 responses\n",
        "locks: group locking, spin locks, 128 connection groups\n",
        "  udp: 2000 lookups, 65 live PCBs, 0.250 lock acquisitions per packet\n",
        "busiest groups (group/owner: acquisitions, contended, wait cycles): 5/1: 300, 40, 15000; 9/0: 200, 10, 5000\n",
        "fib: 3 routes"})  // host mode has the router's FIB and ARP sections
    EXPECT_NE(text.find(want), std::string::npos) << want << "\n" << text;
  // One line per class: acquisitions, contended, share, wait cycles, wait per acquisition.
  bool group_line = false;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    std::istringstream w(line);
    std::string cls, acq, cont, share, wait, per;
    w >> cls >> acq >> cont >> share >> wait >> per;
    if (cls != "pcb_group") continue;
    group_line = acq == "500" && cont == "50" && share == "10.00%" && wait == "20000" && per == "40.0";
  }
  EXPECT_TRUE(group_line) << text;

  Summary bare;
  bare.mode = "forwarder";
  const std::string none = format_summary(bare);
  EXPECT_EQ(none.find("services:"), std::string::npos) << none;
  EXPECT_EQ(none.find("locks:"), std::string::npos) << none;
}

TEST(StatsSummary, ServicesAndLocksJson) {
  const std::string j = summary_json(host_summary());
  for (const char* want : {
           R"("services":[{"type":"udp-echo","address":"0.0.0.0","port":7,"sockets":1,"rx_datagrams":10,)"
           R"("rx_bytes":640,"tx_datagrams":9,"tx_bytes":576,"tx_no_mbuf":1,"tx_queue_full":0,)"
           R"("tx_unroutable":0,"icmp_errors":0},)",
           R"({"type":"udp-client","server":"198.18.1.2","port":7,"sockets":64,"rx_datagrams":990,)",
           R"("icmp_errors":2,"requests":1000,"responses":990,"lost":10,"late":3,"seconds":2.5,)"
           R"("transactions_per_s":396,"latency_us":{"min":8.5,"mean":12.25,"p50":11.5,"p90":20.5,)"
           R"("p99":40.5,"p999":60.5,"max":75.5}}],)",
           R"("locks":{"locking":"group","lock_type":"spin","groups":128,"tables":[{"name":"udp",)"
           R"("lookups":2000,"acquisitions_per_packet":0.25,"live":65,"classes":[)",
           R"({"class":"pcb_group","acquisitions":500,"contended":50,"contended_share":0.1,"wait_cycles":20000,)"
           R"("wait_max":900,"wait_cycles_per_acquisition":40,"hold_cycles":80000,"hold_max":1200})",
           R"({"class":"pcb_giant","acquisitions":0,"contended":0,"contended_share":0,)",
           R"("busiest_groups":[{"group":5,"owner":1,"acquisitions":300,"contended":40,"wait_cycles":15000},)"
           R"({"group":9,"owner":0,"acquisitions":200,"contended":10,"wait_cycles":5000}]}]})",
           R"("router":{"fib_routes":3,)"})
    EXPECT_NE(j.find(want), std::string::npos) << want << "\n" << j;

  Summary bare;
  bare.mode = "forwarder";
  const std::string none = summary_json(bare);
  EXPECT_EQ(none.find("\"services\""), std::string::npos) << none;
  EXPECT_EQ(none.find("\"locks\""), std::string::npos) << none;
}

// A `clients:` generator (tcp-load): its counters, errors, gauges and
// latency quantiles under its name, in the exposition, the summary and the JSON.
namespace {
Snapshot generator_snapshot() {
  Snapshot s;
  stack::services::ServiceView v;
  v.type = conf::ServiceType::tcp_load, v.server = 0xc6120202, v.port = 80, v.done = true;
  auto& l = v.load;
  l.name = "web", l.rate = 100;
  l.attempted = 300, l.established = 299, l.completed = 298, l.open = 1, l.peak_open = 17;
  l.requests = 700, l.responses = 698, l.tx_bytes = 52500, l.rx_bytes = 150000;
  l.tx_acked_bytes = 52500, l.rx_acked_bytes = 150000, l.goodput_bytes = 202500;
  l.tx_wire_bytes = 54000, l.retransmitted_bytes = 1500, l.retransmits = 22;
  l.refused = 1, l.timeout = 1, l.http_status[2] = 698;
  l.seconds = 2.0, l.response_seconds = 2.5;
  l.connect = {299, 900, 1500, 1400, 2600, 9000, 9000, 9000};
  l.ttfb = {698, 1000, 2500, 2400, 4000, 8000, 9500, 9800};
  l.transaction = {698, 1100, 2700, 2600, 4200, 8100, 9600, 9900};
  s.services = {v};
  s.locks = LocksSnap{};  // host mode: a connection table
  return s;
}
}  // namespace

TEST(Metrics, GeneratorsUnderTheirNames) {
  const Parsed p = parse(render_metrics(generator_snapshot(), sample_context()));
  auto v = [&](const std::string& key) {
    auto it = p.samples.find(key);
    EXPECT_NE(it, p.samples.end()) << key;
    return it == p.samples.end() ? -1.0 : it->second;
  };
  EXPECT_EQ(p.types.at("ngstack_client_total"), "counter");
  EXPECT_EQ(v("ngstack_client_total{generator=web,counter=attempted}"), 300);
  EXPECT_EQ(v("ngstack_client_total{generator=web,counter=established}"), 299);
  EXPECT_EQ(v("ngstack_client_total{generator=web,counter=completed}"), 298);
  EXPECT_EQ(v("ngstack_client_total{generator=web,counter=responses}"), 698);
  EXPECT_EQ(v("ngstack_client_total{generator=web,counter=tx_acked_bytes}"), 52500);
  EXPECT_EQ(v("ngstack_client_total{generator=web,counter=rx_acked_bytes}"), 150000);
  EXPECT_EQ(v("ngstack_client_total{generator=web,counter=goodput_bytes}"), 202500);
  EXPECT_EQ(v("ngstack_client_total{generator=web,counter=tx_wire_bytes}"), 54000);
  EXPECT_EQ(v("ngstack_client_total{generator=web,counter=retransmitted_bytes}"), 1500);
  EXPECT_EQ(v("ngstack_client_total{generator=web,counter=retransmits}"), 22);
  EXPECT_EQ(v("ngstack_client_errors_total{generator=web,kind=refused}"), 1);
  EXPECT_EQ(v("ngstack_client_errors_total{generator=web,kind=timeout}"), 1);
  EXPECT_EQ(v("ngstack_client_errors_total{generator=web,kind=no_session}"), 0);  // every kind, zeros too
  EXPECT_EQ(v("ngstack_client_http_responses_total{generator=web,class=2xx}"), 698);
  EXPECT_EQ(p.types.at("ngstack_client_open"), "gauge");
  EXPECT_EQ(v("ngstack_client_open{generator=web}"), 1);
  EXPECT_EQ(v("ngstack_client_peak_open{generator=web}"), 17);
  EXPECT_DOUBLE_EQ(v("ngstack_client_retransmission_ratio{generator=web}"), 1500.0 / 54000.0);
  EXPECT_EQ(v("ngstack_client_goodput_bytes_per_second{generator=web}"), 81000);
  EXPECT_EQ(v("ngstack_client_latency_microseconds{generator=web,histogram=connect,quantile=0.5}"), 1400);
  EXPECT_EQ(v("ngstack_client_latency_microseconds{generator=web,histogram=first_byte,quantile=0.9}"), 4000);
  EXPECT_EQ(v("ngstack_client_latency_microseconds{generator=web,histogram=transaction,quantile=0.99}"), 8100);
  EXPECT_EQ(v("ngstack_client_latency_microseconds{generator=web,histogram=transaction,quantile=1}"), 9900);
  // Not a service: none of the service families carry it.
  for (const auto& s : p.all) EXPECT_NE(s.name.rfind("ngstack_service_", 0), 0u) << s.key();
}

TEST(StatsSummary, GeneratorTextAndJson) {
  Summary s;
  s.mode = "host";
  s.source = "test";
  s.final = generator_snapshot();
  const std::string text = format_summary(s);
  for (const char* want :
       {"  web         to 198.18.2.2:80, rate 100/s: 300 connections attempted (150.0/s), 299 established, "
        "298 completed, 1 open (peak 17), done\n",
        "    tcp: acked 52500 bytes sent, 150000 received, goodput 202500 bytes (0.648 Mbit/s); on the wire 54000 "
        "bytes, 1500 retransmitted (2.778%, 22 segments)\n"})
    EXPECT_NE(text.find(want), std::string::npos) << want << "\n" << text;
  const std::string j = summary_json(s);
  for (const char* want : {R"("open":1,"peak_open":17,)",
                           R"("tx_acked_bytes":52500,"rx_acked_bytes":150000,"goodput_bytes":202500,)"
                           R"("goodput_bytes_per_s":81000,"tx_wire_bytes":54000,"retransmitted_bytes":1500,)"
                           R"("retransmits":22,"retransmission_ratio":0.0277)"})
    EXPECT_NE(j.find(want), std::string::npos) << want << "\n" << j;
}
