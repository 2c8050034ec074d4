#include "stack/traffic/traffic.hpp"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_memcpy.h>
#include <rte_prefetch.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include <spdlog/spdlog.h>

#include <atomic>
#include <cstring>
#include <numeric>

namespace ngstack::stack::traffic {

namespace {

constexpr uint16_t kEth = sizeof(rte_ether_hdr);
constexpr uint16_t kIp = sizeof(rte_ipv4_hdr);
constexpr uint16_t kFcs = 4;
constexpr uint16_t kWireOverhead = 20;  // preamble, start delimiter and inter-frame gap

double average_size(const std::vector<uint16_t>& sizes, const std::vector<uint16_t>& weights) {
  double sum = 0, total = 0;
  for (std::size_t i = 0; i < sizes.size(); ++i) sum += static_cast<double>(sizes[i]) * weights[i], total += weights[i];
  return sum / total;
}

// Smooth weighted round robin: weights {7, 4, 1} give a cycle of 12 in which
// each size is spread out, not clustered.
std::vector<uint16_t> size_cycle(const std::vector<uint16_t>& sizes, const std::vector<uint16_t>& weights) {
  const int total = std::accumulate(weights.begin(), weights.end(), 0);
  std::vector<int> current(sizes.size(), 0);
  std::vector<uint16_t> out;
  for (int n = 0; n < total; ++n) {
    std::size_t best = 0;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      current[i] += weights[i];
      if (current[i] > current[best]) best = i;
    }
    current[best] -= total;
    out.push_back(sizes[best]);
  }
  return out;
}

// One's complement sum of n bytes read as big-endian 16-bit words (n even).
uint32_t be_word_sum(const uint8_t* p, unsigned n) {
  uint32_t sum = 0;
  for (unsigned i = 0; i < n; i += 2) sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  return sum;
}

uint16_t fold(uint32_t sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

uint32_t split(uint32_t v) { return (v >> 16) + (v & 0xffff); }

}  // namespace

double line_rate_pps(uint64_t link_mbps, double percent, const std::vector<uint16_t>& sizes,
                     const std::vector<uint16_t>& weights) {
  const double bits_per_frame = (average_size(sizes, weights) + kWireOverhead) * 8;
  return static_cast<double>(link_mbps) * 1e6 * percent / 100.0 / bits_per_frame;
}

// A frame as it leaves, but for the fields that change per packet: built once
// per frame size, copied into each mbuf. Per packet the generator then writes
// only the flow's addresses and ports, the sequence number (IP id, TCP
// sequence), the stamp and the checksums, which it completes from sums of
// the template's constant words rather than summing the whole header again.
struct FrameTemplate {
  static constexpr uint16_t kBytes = 128;  // headers and the start of the payload; beyond is zeroed
  uint16_t frame = 0;                      // bytes without FCS
  uint16_t copy = 0;                       // min(frame, kBytes)
  uint16_t payload_len = 0;                // after the L4 header
  uint32_t ip_sum = 0;                     // IPv4 header words but addresses, id and checksum
  uint32_t tcp_sum = 0;                    // TCP: pseudo-header and segment words but addresses, ports, seq, stamp
  alignas(64) uint8_t bytes[kBytes] = {};
};

struct Traffic::Generator {
  conf::GeneratorConfig cfg;
  std::string port_name;
  uint16_t cfg_port = 0, port_id = 0;
  unsigned worker = 0;
  uint32_t flow_base = 0;  // stamps carry flow_base + flow index
  double pps = 0;          // 0: unlimited
  rte_ether_addr src_mac{}, dst_mac{};
  std::vector<FrameTemplate> templates;  // one per distinct size
  std::vector<uint8_t> cycle;            // template index per position of the size cycle, by weight
  std::vector<uint32_t> seq;             // per flow
  uint32_t next_flow = 0;
  // Flow f takes element f % count of each range; the cursors are those
  // remainders for next_flow, stepped with it (no division per packet).
  uint32_t src_at = 0, dst_at = 0, sport_at = 0, dport_at = 0;
  std::size_t next_size = 0;
  uint64_t built = 0;          // frames built (sent or pending)
  uint64_t start_tsc = 0, end_tsc = UINT64_MAX;
  rte_mbuf* pending[512];
  uint16_t npending = 0, pending_at = 0;
  Counter packets, bytes, first_tsc, last_tsc;
  std::atomic<bool> done{false};
};

struct Traffic::SinkState {
  explicit SinkState(uint32_t max_flows) : flows(max_flows) {}
  std::vector<SequenceTracker> flows;
  LatencyHistogram latency;
  uint64_t latency_future = 0;
  Counter packets, bytes, stamped, unstamped, unknown_flow;
};

namespace {

// The constant bytes of a frame of `frame` bytes (without FCS) and the sums
// of its constant words. Addresses, ports, IP id, TCP sequence, stamp and
// checksums are left zero: generate() writes them per packet.
FrameTemplate build_template(const conf::GeneratorConfig& gc, const rte_ether_addr& src_mac,
                             const rte_ether_addr& dst_mac, unsigned frame) {
  const bool tcp = gc.protocol == conf::TrafficProtocol::tcp_syn;
  const uint16_t l4 = tcp ? sizeof(rte_tcp_hdr) : sizeof(rte_udp_hdr);
  FrameTemplate t;
  t.frame = static_cast<uint16_t>(frame);
  t.copy = static_cast<uint16_t>(std::min<unsigned>(frame, FrameTemplate::kBytes));
  t.payload_len = static_cast<uint16_t>(frame - kEth - kIp - l4);
  auto* eth = reinterpret_cast<rte_ether_hdr*>(t.bytes);
  eth->dst_addr = dst_mac;
  eth->src_addr = src_mac;
  eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(t.bytes + kEth);
  ip->version_ihl = 0x45;
  ip->total_length = rte_cpu_to_be_16(static_cast<uint16_t>(frame - kEth));
  ip->time_to_live = gc.ttl;
  ip->next_proto_id = tcp ? IPPROTO_TCP : IPPROTO_UDP;
  t.ip_sum = be_word_sum(t.bytes + kEth, kIp);
  if (tcp) {
    auto* th = reinterpret_cast<rte_tcp_hdr*>(t.bytes + kEth + kIp);
    th->data_off = 0x50;
    th->tcp_flags = RTE_TCP_SYN_FLAG;
    th->rx_win = rte_cpu_to_be_16(65535);
    // The payload is zero but for the stamp, so the segment's constant words
    // are the header's; the pseudo-header adds protocol and length.
    t.tcp_sum = be_word_sum(t.bytes + kEth + kIp, l4) + IPPROTO_TCP + (frame - kEth - kIp);
  } else {
    auto* uh = reinterpret_cast<rte_udp_hdr*>(t.bytes + kEth + kIp);
    uh->dgram_len = rte_cpu_to_be_16(static_cast<uint16_t>(frame - kEth - kIp));
    // dgram_cksum stays 0: optional over IPv4 (RFC 768)
  }
  return t;
}

}  // namespace

Result<std::unique_ptr<Traffic>> Traffic::create(const conf::Config& cfg, const std::vector<PortInfo>& ports,
                                                 const std::vector<uint64_t>& link_mbps, rte_mempool* pool,
                                                 unsigned workers, uint64_t tsc_hz) {
  std::unique_ptr<Traffic> t(new Traffic());
  t->pool_ = pool;
  t->tsc_hz_ = tsc_hz;
  std::vector<uint16_t> port_ids;
  for (const auto& p : ports) port_ids.push_back(p.port_id);
  t->port_index_ = PortIndex(port_ids);
  for (const auto& p : cfg.ports) t->port_names_.push_back(p.name);
  t->gens_of_worker_.resize(workers);
  const uint32_t room = rte_pktmbuf_data_room_size(pool) - RTE_PKTMBUF_HEADROOM;
  uint32_t flow_base = 0;
  for (std::size_t i = 0; i < cfg.traffic.generators.size(); ++i) {
    const conf::GeneratorConfig& gc = cfg.traffic.generators[i];
    auto g = std::make_unique<Generator>();
    g->cfg = gc;
    g->port_name = cfg.ports[gc.port].name;
    g->cfg_port = gc.port;
    g->port_id = ports[gc.port].port_id;
    g->worker = static_cast<unsigned>(i % workers);
    g->flow_base = flow_base;
    flow_base += gc.flows;
    g->src_mac = ports[gc.port].mac;
    if (gc.src_mac) std::copy(gc.src_mac->begin(), gc.src_mac->end(), g->src_mac.addr_bytes);
    std::copy(gc.dst_mac.begin(), gc.dst_mac.end(), g->dst_mac.addr_bytes);
    for (uint16_t size : gc.sizes)
      if (static_cast<uint32_t>(size - kFcs) > room)
        return Error{gc.pos.where() + ": frame size " + std::to_string(size) + " needs " + std::to_string(size - kFcs) +
                     " bytes of mbuf data room; the pool has " + std::to_string(room) + " (raise mempool.data_room)"};
    for (uint16_t size : size_cycle(gc.sizes, gc.weights)) {
      std::size_t k = 0;
      while (k < g->templates.size() && g->templates[k].frame != size - kFcs) ++k;
      if (k == g->templates.size()) g->templates.push_back(build_template(gc, g->src_mac, g->dst_mac, size - kFcs));
      g->cycle.push_back(static_cast<uint8_t>(k));
    }
    g->seq.assign(gc.flows, 0);
    switch (gc.rate_unit) {
      case conf::RateUnit::unlimited: g->pps = 0; break;
      case conf::RateUnit::pps: g->pps = gc.rate; break;
      case conf::RateUnit::bps: g->pps = gc.rate / (average_size(gc.sizes, gc.weights) * 8); break;
      case conf::RateUnit::percent:
        if (link_mbps[gc.port] == 0)
          return Error{gc.rate_pos.where() + ": rate in percent needs port " + g->port_name +
                       "'s link speed, and the port reports none (use pps or bps)"};
        g->pps = line_rate_pps(link_mbps[gc.port], gc.rate, gc.sizes, gc.weights);
        break;
    }
    spdlog::info("traffic: generator on {} (worker {}): {} flow(s), {}", g->port_name, g->worker, gc.flows,
                 g->pps > 0 ? fmt::format("{:.0f} frames/s", g->pps) : std::string("unpaced"));
    t->gens_of_worker_[g->worker].push_back(g.get());
    t->gens_.push_back(std::move(g));
  }
  t->sink_of_port_.assign(cfg.ports.size(), -1);
  for (std::size_t k = 0; k < cfg.traffic.sinks.size(); ++k) {
    const conf::SinkConfig& sc = cfg.traffic.sinks[k];
    t->sink_of_port_[sc.port] = static_cast<int>(k);
    t->sink_cfg_.push_back(sc);
    std::vector<std::unique_ptr<SinkState>> per_worker;
    for (unsigned w = 0; w < workers; ++w) per_worker.push_back(std::make_unique<SinkState>(sc.max_flows));
    t->sink_state_.push_back(std::move(per_worker));
  }
  return t;
}

Traffic::~Traffic() = default;

// --- generator -------------------------------------------------------------------

void Traffic::poll(unsigned w, uint64_t) {
  for (Generator* g : gens_of_worker_[w]) generate(*g, w, rte_rdtsc());
}

void Traffic::generate(Generator& g, unsigned w, uint64_t now) {
  WorkerIo& io = io_[w];
  const uint16_t queue = io.tx->queue();
  auto send = [&](rte_mbuf** pkts, uint16_t n) {
    const uint16_t sent = rte_eth_tx_burst(g.port_id, queue, pkts, n);
    if (sent) {
      uint64_t bytes = 0;
      for (uint16_t i = 0; i < sent; ++i) bytes += pkts[i]->pkt_len;
      io.tx->count_sent(g.cfg_port, sent, bytes);
      io.events->add(Event::originated, sent);
      io.events->add(Event::traffic_generated, sent);
      g.packets.add(sent);
      g.bytes.add(bytes);
      if (g.first_tsc.get() == 0) g.first_tsc.set(now);
      g.last_tsc.set(now);
    }
    return sent;
  };
  // What the queue refused last time leaves first.
  if (g.npending) {
    const uint16_t sent = send(g.pending + g.pending_at, g.npending);
    g.pending_at = static_cast<uint16_t>(g.pending_at + sent);
    g.npending = static_cast<uint16_t>(g.npending - sent);
    if (g.npending) return;
    g.pending_at = 0;
  }
  if (g.done.load(std::memory_order_relaxed)) return;
  if (g.start_tsc == 0) {
    g.start_tsc = now;
    if (g.cfg.duration_ms) g.end_tsc = now + g.cfg.duration_ms * tsc_hz_ / 1000;
  }
  if (now >= g.end_tsc) {
    g.done.store(true, std::memory_order_relaxed);
    return;
  }
  uint64_t budget = g.cfg.burst;
  if (g.pps > 0) {
    // Frames due by now since the start, never ahead of the schedule.
    const auto due = static_cast<uint64_t>(static_cast<double>(now - g.start_tsc) * g.pps / static_cast<double>(tsc_hz_));
    if (due <= g.built) return;
    budget = std::min(budget, due - g.built);
  }
  if (g.cfg.packets) budget = std::min(budget, g.cfg.packets - g.built);
  const auto n = static_cast<uint16_t>(budget);
  rte_mbuf** pkts = g.pending;
  if (rte_pktmbuf_alloc_bulk(pool_, pkts, n) != 0) {
    io.events->inc(Event::traffic_no_mbuf);
    return;
  }
  const bool tcp = g.cfg.protocol == conf::TrafficProtocol::tcp_syn;
  const uint16_t l4 = tcp ? sizeof(rte_tcp_hdr) : sizeof(rte_udp_hdr);
  const conf::GeneratorConfig& c = g.cfg;
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    if (i + 4 < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 4], void*));
    const FrameTemplate& t = g.templates[g.cycle[g.next_size]];
    if (++g.next_size == g.cycle.size()) g.next_size = 0;
    const uint32_t f = g.next_flow;
    const uint32_t src = c.src.first + g.src_at, dst = c.dst.first + g.dst_at;
    const auto sport = static_cast<uint16_t>(c.sport.first + g.sport_at);
    const auto dport = static_cast<uint16_t>(c.dport.first + g.dport_at);
    if (++g.next_flow == c.flows) {
      g.next_flow = g.src_at = g.dst_at = g.sport_at = g.dport_at = 0;
    } else {
      if (++g.src_at == c.src.count) g.src_at = 0;
      if (++g.dst_at == c.dst.count) g.dst_at = 0;
      if (++g.sport_at == c.sport.count) g.sport_at = 0;
      if (++g.dport_at == c.dport.count) g.dport_at = 0;
    }
    m->data_len = t.frame;
    m->pkt_len = t.frame;
    auto* data = rte_pktmbuf_mtod(m, uint8_t*);
    rte_memcpy(data, t.bytes, t.copy);
    if (t.frame > t.copy) std::memset(data + t.copy, 0, t.frame - t.copy);
    const uint32_t seq = g.seq[f]++;
    const auto id = static_cast<uint16_t>(seq);
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(data + kEth);
    ip->packet_id = rte_cpu_to_be_16(id);
    ip->src_addr = rte_cpu_to_be_32(src);
    ip->dst_addr = rte_cpu_to_be_32(dst);
    const uint32_t addr_sum = split(src) + split(dst);
    ip->hdr_checksum = rte_cpu_to_be_16(static_cast<uint16_t>(~fold(t.ip_sum + addr_sum + id)));
    uint8_t* payload = data + kEth + kIp + l4;
    uint32_t stamp_sum = 0;
    if (t.payload_len >= sizeof(Stamp)) {
      const Stamp st{kStampMagic, g.flow_base + f, seq, now};
      std::memcpy(payload, &st, sizeof st);
      if (tcp) stamp_sum = be_word_sum(payload, sizeof st);
    }
    if (tcp) {
      auto* th = reinterpret_cast<rte_tcp_hdr*>(data + kEth + kIp);
      th->src_port = rte_cpu_to_be_16(sport);
      th->dst_port = rte_cpu_to_be_16(dport);
      th->sent_seq = rte_cpu_to_be_32(seq);
      const uint32_t sum = t.tcp_sum + addr_sum + sport + dport + split(seq) + stamp_sum;
      th->cksum = rte_cpu_to_be_16(static_cast<uint16_t>(~fold(sum)));
    } else {
      auto* uh = reinterpret_cast<rte_udp_hdr*>(data + kEth + kIp);
      uh->src_port = rte_cpu_to_be_16(sport);
      uh->dst_port = rte_cpu_to_be_16(dport);
    }
  }
  g.built += n;
  if (g.cfg.packets && g.built == g.cfg.packets) g.done.store(true, std::memory_order_relaxed);
  const uint16_t sent = send(pkts, n);
  g.pending_at = sent;
  g.npending = static_cast<uint16_t>(n - sent);
}

void Traffic::worker_offline(unsigned w) {
  // Frames the queue never took were never originated: free them uncounted.
  for (Generator* g : gens_of_worker_[w]) {
    if (g->npending) rte_pktmbuf_free_bulk(g->pending + g->pending_at, g->npending);
    g->npending = g->pending_at = 0;
  }
}

// --- sink --------------------------------------------------------------------------

void Traffic::netisr_handler(void* ctx, unsigned w, uint16_t, rte_mbuf** pkts, uint16_t n) {
  static_cast<Traffic*>(ctx)->sink_input(w, pkts, n);
}

void Traffic::sink_input(unsigned w, rte_mbuf** pkts, uint16_t n) {
  WorkerIo& io = io_[w];
  const uint64_t now = rte_rdtsc();
  uint64_t sunk = 0;
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    const int cfg_port = port_index_.of(m->port);
    const int k = cfg_port >= 0 ? sink_of_port_[cfg_port] : -1;
    if (k < 0) {
      rte_pktmbuf_free(m);
      io.drops->inc(DropReason::traffic_not_sink);
      continue;
    }
    SinkState& s = *sink_state_[k][w];
    s.packets.inc();
    s.bytes.add(m->pkt_len);
    ++sunk;
    // Where a generator's stamp would be: after the UDP or TCP header.
    const uint32_t len = rte_pktmbuf_data_len(m);
    const auto* data = rte_pktmbuf_mtod(m, const uint8_t*);
    bool stamped = false;
    Stamp st;
    if (len >= kEth + kIp && reinterpret_cast<const rte_ether_hdr*>(data)->ether_type ==
                                 rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4)) {
      const auto* ip = reinterpret_cast<const rte_ipv4_hdr*>(data + kEth);
      const uint32_t l4_at = kEth + (ip->version_ihl & 0x0f) * 4u;
      uint32_t at = 0;
      if (ip->next_proto_id == IPPROTO_UDP) at = l4_at + sizeof(rte_udp_hdr);
      if (ip->next_proto_id == IPPROTO_TCP && len >= l4_at + sizeof(rte_tcp_hdr))
        at = l4_at + (reinterpret_cast<const rte_tcp_hdr*>(data + l4_at)->data_off >> 4) * 4u;
      if (at && len >= at + sizeof(Stamp)) {
        std::memcpy(&st, data + at, sizeof st);
        stamped = st.magic == kStampMagic;
      }
    }
    rte_pktmbuf_free(m);
    if (!stamped) {
      s.unstamped.inc();
      continue;
    }
    if (st.flow >= s.flows.size()) {
      s.unknown_flow.inc();
      continue;
    }
    s.stamped.inc();
    s.flows[st.flow].record(st.seq);
    if (st.tsc > now) {
      ++s.latency_future;
    } else {
      s.latency.record(static_cast<uint64_t>(static_cast<double>(now - st.tsc) * 1e9 / static_cast<double>(tsc_hz_)));
    }
  }
  io.events->add(Event::consumed, sunk);
  io.events->add(Event::traffic_sunk, sunk);
}

// --- views -------------------------------------------------------------------------

std::vector<GeneratorView> Traffic::generators() const {
  std::vector<GeneratorView> out;
  for (const auto& g : gens_) {
    GeneratorView v;
    v.port = g->port_name;
    v.worker = g->worker;
    v.flows = g->cfg.flows;
    v.target_pps = g->pps;
    v.packets = g->packets.get();
    v.bytes = g->bytes.get();
    const uint64_t first = g->first_tsc.get(), last = g->last_tsc.get();
    v.seconds = last > first ? static_cast<double>(last - first) / static_cast<double>(tsc_hz_) : 0;
    // The first burst leaves at `first`; the rate is over what left after it.
    v.achieved_pps = v.seconds > 0 ? static_cast<double>(v.packets - std::min<uint64_t>(v.packets, g->cfg.burst)) / v.seconds : 0;
    v.done = g->done.load(std::memory_order_relaxed);
    out.push_back(v);
  }
  return out;
}

std::vector<SinkView> Traffic::sinks(bool live) const {
  std::vector<SinkView> out;
  for (std::size_t k = 0; k < sink_cfg_.size(); ++k) {
    SinkView v;
    v.port = port_names_[sink_cfg_[k].port];
    LatencyHistogram lat;
    for (const auto& sp : sink_state_[k]) {
      const SinkState& s = *sp;
      v.packets += s.packets.get();
      v.bytes += s.bytes.get();
      v.stamped += s.stamped.get();
      v.unstamped += s.unstamped.get();
      v.unknown_flow += s.unknown_flow.get();
      if (live) continue;
      v.latency_future += s.latency_future;
      for (const auto& f : s.flows) {
        if (f.received() == 0 && f.duplicates() == 0 && f.beyond_window() == 0) continue;
        ++v.flows;
        v.lost += f.missing();
        v.duplicates += f.duplicates();
        v.reordered += f.reordered();
        v.beyond_window += f.beyond_window();
      }
      lat.merge(s.latency);
    }
    v.latency_samples = lat.count();
    v.latency_min_ns = lat.min();
    v.latency_p50_ns = lat.quantile(0.5);
    v.latency_p99_ns = lat.quantile(0.99);
    v.latency_p999_ns = lat.quantile(0.999);
    v.latency_max_ns = lat.max();
    out.push_back(v);
  }
  return out;
}

}  // namespace ngstack::stack::traffic
