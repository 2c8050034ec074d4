#include "stack/tcp/tcp.hpp"

#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_ether.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_random.h>
#include <rte_tcp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "stack/ipv4/l4_checksum.hpp"
#include "stack/pcb/mbuf_tuple.hpp"

namespace ngstack::stack::tcp {

namespace {

constexpr uint32_t kHeaderLen = 20;
// A timer node's argument: the node's slot in Tcb::armed (2 bits), the
// Tcb's generation (30 bits), its index (32 bits).
constexpr uint32_t kTimerGenerationMask = (1u << 30) - 1;
constexpr uint8_t kOurWscale = 7;          // as Linux: windows up to 8 MB
constexpr uint16_t kMinPeerMss = 216;      // below it the peer's MSS is raised (Linux: 88, FreeBSD: 216)
constexpr uint16_t kDefaultMss = 536;      // RFC 9293 §3.7.1: no MSS option
constexpr uint64_t kPawsIdleUs = 24ull * 86400 * 1'000'000;  // RFC 7323 §5.5
constexpr unsigned kMaxSegmentsPerOutput = 64;
constexpr uint64_t kBudgetRetryUs = 1000;  // send() refused by the worker's budget: offer `writable` again after
constexpr uint32_t kMaxWindow = 1u << 30;  // RFC 7323 §2.3

// SipHash-2-4 (Aumasson and Bernstein) over 64-bit words: the keyed hash of
// RFC 6528's ISN and of the SYN cookies.
inline uint64_t rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }
uint64_t siphash(const uint64_t key[2], const uint64_t* words, unsigned n) {
  uint64_t v0 = key[0] ^ 0x736f6d6570736575ULL, v1 = key[1] ^ 0x646f72616e646f6dULL;
  uint64_t v2 = key[0] ^ 0x6c7967656e657261ULL, v3 = key[1] ^ 0x7465646279746573ULL;
  auto round = [&] {
    v0 += v1, v1 = rotl(v1, 13), v1 ^= v0, v0 = rotl(v0, 32);
    v2 += v3, v3 = rotl(v3, 16), v3 ^= v2;
    v0 += v3, v3 = rotl(v3, 21), v3 ^= v0;
    v2 += v1, v1 = rotl(v1, 17), v1 ^= v2, v2 = rotl(v2, 32);
  };
  for (unsigned i = 0; i < n; ++i) {
    v3 ^= words[i];
    round(), round();
    v0 ^= words[i];
  }
  const uint64_t b = uint64_t{n * 8} << 56;
  v3 ^= b;
  round(), round();
  v0 ^= b;
  v2 ^= 0xff;
  round(), round(), round(), round();
  return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t tuple_word(const pcb::FourTuple& t) { return uint64_t{t.laddr} << 32 | t.faddr; }
uint64_t ports_word(const pcb::FourTuple& t) { return uint64_t{t.lport} << 16 | t.fport; }

// The MSS values a SYN cookie can name (3 bits), as Linux's table.
constexpr uint16_t kCookieMss[8] = {216, 536, 1200, 1360, 1400, 1440, 1460, 8960};
uint8_t cookie_mss_index(uint16_t mss) {
  uint8_t i = 7;
  while (i > 0 && kCookieMss[i] > mss) --i;
  return i;
}

const rte_ipv4_hdr* ip_of(const rte_mbuf* m) { return rte_pktmbuf_mtod_offset(m, const rte_ipv4_hdr*, m->l2_len); }

}  // namespace

const char* state_name(State s) {
  switch (s) {
    case State::closed: return "CLOSED";
    case State::listen: return "LISTEN";
    case State::syn_sent: return "SYN-SENT";
    case State::syn_received: return "SYN-RECEIVED";
    case State::established: return "ESTABLISHED";
    case State::fin_wait_1: return "FIN-WAIT-1";
    case State::fin_wait_2: return "FIN-WAIT-2";
    case State::close_wait: return "CLOSE-WAIT";
    case State::closing: return "CLOSING";
    case State::last_ack: return "LAST-ACK";
    case State::time_wait: return "TIME-WAIT";
  }
  return "?";
}

std::string_view stat_name(Stat s) {
  static constexpr std::string_view kNames[] = {
#define NGSTACK_TCP_STAT_NAME(name) #name,
      NGSTACK_TCP_STATS(NGSTACK_TCP_STAT_NAME)
#undef NGSTACK_TCP_STAT_NAME
  };
  return kNames[static_cast<std::size_t>(s)];
}

// A received segment, parsed.
struct Tcp::Segment {
  rte_mbuf* m = nullptr;  // null once queued (the Tcb owns it) or freed
  bool dropped = false;   // freed under a drop reason
  pcb::FourTuple tuple;
  uint32_t seq = 0, ack = 0;
  uint32_t len = 0;        // payload bytes
  uint16_t data_off = 0;   // of the payload in m
  uint16_t win = 0;
  uint8_t flags = 0;
  bool icmp = false;       // an ICMP error quoting one of our segments
  bool mss_opt = false, ws_opt = false, ts_opt = false, sack_ok = false;
  uint16_t mss = 0;
  uint8_t ws = 0;
  uint32_t tsval = 0, tsecr = 0;
  uint8_t nsack = 0;
  SeqRange sack[kMaxSackBlocks];
  uint32_t seg_len() const { return len + ((flags & kSyn) ? 1 : 0) + ((flags & kFin) ? 1 : 0); }
};

// --- create ------------------------------------------------------------------------------

Result<std::unique_ptr<Tcp>> Tcp::create(const conf::Config& cfg, ipv4::Ip& ip, unsigned workers, unsigned buckets,
                                         std::vector<uint16_t> bucket_map, std::vector<uint8_t> rss_key,
                                         uint64_t tsc_hz) {
  std::unique_ptr<Tcp> t(new Tcp(ip, workers, tsc_hz));
  const conf::TcpConfig& tc = cfg.stack.tcp;
  Params& p = t->params_;
  p.msl_us = uint64_t{tc.msl_ms} * 1000;
  p.min_rto_us = tc.min_rto_ms * 1000;
  p.initial_rto_us = tc.initial_rto_ms * 1000;
  p.max_rto_us = std::max(tc.max_rto_ms * 1000, p.min_rto_us);
  p.delayed_ack_us = tc.delayed_ack_ms * 1000;
  p.fin_wait2_us = uint64_t{tc.fin_wait2_timeout_ms} * 1000;
  p.sndbuf = tc.sndbuf;
  p.rcvbuf = tc.rcvbuf;
  p.nagle = tc.nagle;
  p.ooo_segments = tc.ooo_segments;
  p.syn_backlog = tc.syn_backlog;
  p.syn_cookies = tc.syn_cookies;
  p.challenge_ack_rate = tc.challenge_ack_limit;
  p.syn_retries = tc.syn_retries;
  p.data_retries = tc.data_retries;
  p.cc = tc.congestion_control == "cubic" ? 1 : 0;
  p.keepalive_interval_us = uint64_t{tc.keepalive_interval_ms} * 1000;
  p.keepalive_probes = tc.keepalive_probes;
  p.worker_buffers = cfg.tcp_worker_buffers();
  p.tso = tc.tso;
  pcb::PcbParams pp = modes::pcb_params(cfg, workers, buckets, std::move(bucket_map), std::move(rss_key));
  pp.seed ^= 0x7463700000000000ULL;  // "tcp": its own in-group hash
  auto table = pcb::PcbTable::create("tcp", pp);
  if (!table) return Error{"stack: " + table.error()};
  t->table_ = std::move(*table);
  t->tcbs_ = std::make_unique<Tcb[]>(t->table_->slots());
  for (uint32_t i = 0; i < t->table_->slots(); ++i) t->tcbs_[i].index = i;
  t->stats_ = std::make_unique<Stats[]>(workers);
  t->budgets_ = std::make_unique<BufferBudget[]>(workers);
  if (ip.pool()) t->mbuf_payload_ = rte_pktmbuf_data_room_size(ip.pool()) - RTE_PKTMBUF_HEADROOM;
  for (unsigned w = 0; w < workers; ++w) {
    t->per_worker_.push_back(std::make_unique<PerWorker>(t.get(), w, p.challenge_ack_rate, tsc_hz));
    t->scratch_.push_back(std::make_unique<uint8_t[]>(4096));
  }
  t->ms_cycles_ = std::max<uint64_t>(1, tsc_hz / 1000);
  t->secret_[0] = rte_rand();
  t->secret_[1] = rte_rand();
  return t;
}

Tcp::~Tcp() = default;

void Tcp::bind(std::vector<WorkerIo> io) { io_ = std::move(io); }

Result<dispatch::ProtoId> Tcp::register_protocol(dispatch::Netisr& netisr, const modes::ProtocolSettings& settings) {
  return modes::register_transport(netisr, settings, ip_, "tcp", IPPROTO_TCP, input_handler, m2cpuid, this);
}

unsigned Tcp::m2cpuid(const void* ctx, const rte_mbuf* m, unsigned source) {
  return pcb::owner_of_packet(*static_cast<const Tcp*>(ctx)->table_, m, IPPROTO_TCP, source);
}

void Tcp::input_handler(void* ctx, unsigned w, uint16_t, rte_mbuf** pkts, uint16_t n) {
  static_cast<Tcp*>(ctx)->input(w, pkts, n);
}

// --- input ---------------------------------------------------------------------------------

bool Tcp::parse(unsigned w, rte_mbuf* m, Segment* s) {
  DropCounters& drops = *io_[w].drops;
  const rte_ipv4_hdr* ip = ip_of(m);
  const uint32_t l4 = static_cast<uint32_t>(m->l2_len + m->l3_len);
  const uint32_t ip_payload = rte_be_to_cpu_16(ip->total_length) - static_cast<uint32_t>(m->l3_len);
  if (ip_payload < kHeaderLen || m->data_len < l4 + kHeaderLen) {
    drops.inc(DropReason::tcp_truncated);
    return false;
  }
  const auto* th = rte_pktmbuf_mtod_offset(m, const rte_tcp_hdr*, l4);
  const uint32_t doff = (th->data_off >> 4) * 4u;
  if (doff < kHeaderLen || doff > ip_payload) {
    drops.inc(DropReason::tcp_bad_offset);
    return false;
  }
  if (m->data_len < l4 + doff) {
    drops.inc(DropReason::tcp_truncated);
    return false;
  }
  // Ethernet pads short frames: the segment ends where IP says.
  const uint32_t end = l4 + ip_payload;
  if (m->pkt_len > end && m->nb_segs == 1) rte_pktmbuf_trim(m, static_cast<uint16_t>(m->pkt_len - end));
  const uint64_t verdict = m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;
  bool good;
  if (verdict == RTE_MBUF_F_RX_L4_CKSUM_GOOD)
    good = true;
  else if (verdict == RTE_MBUF_F_RX_L4_CKSUM_BAD)
    good = false;
  else
    good = ipv4::l4_checksum_ok(m, ip, l4, ip_payload, IPPROTO_TCP);
  if (!good) {
    drops.inc(DropReason::tcp_bad_checksum);
    return false;
  }
  s->m = m;
  s->tuple = {rte_be_to_cpu_32(ip->dst_addr), rte_be_to_cpu_32(ip->src_addr), rte_be_to_cpu_16(th->dst_port),
              rte_be_to_cpu_16(th->src_port)};
  s->seq = rte_be_to_cpu_32(th->sent_seq);
  s->ack = rte_be_to_cpu_32(th->recv_ack);
  s->win = rte_be_to_cpu_16(th->rx_win);
  s->flags = th->tcp_flags & 0x3f;
  s->len = ip_payload - doff;
  s->data_off = static_cast<uint16_t>(l4 + doff);
  // Options (RFC 9293 §3.2): a malformed list ends the parse, the segment stays.
  const uint8_t* o = reinterpret_cast<const uint8_t*>(th + 1);
  const uint8_t* oend = reinterpret_cast<const uint8_t*>(th) + doff;
  while (o < oend) {
    const uint8_t kind = o[0];
    if (kind == 0) break;
    if (kind == 1) {
      ++o;
      continue;
    }
    if (o + 1 >= oend || o[1] < 2 || o + o[1] > oend) break;
    const uint8_t len = o[1];
    switch (kind) {
      case 2:
        if (len == 4 && (s->flags & kSyn)) s->mss_opt = true, s->mss = static_cast<uint16_t>(o[2] << 8 | o[3]);
        break;
      case 3:
        if (len == 3 && (s->flags & kSyn)) s->ws_opt = true, s->ws = std::min<uint8_t>(o[2], 14);  // RFC 7323 §2.3
        break;
      case 4:
        if (len == 2 && (s->flags & kSyn)) s->sack_ok = true;
        break;
      case 5:
        if (len >= 10 && (len - 2) % 8 == 0) {
          for (unsigned i = 0; i < (len - 2u) / 8 && s->nsack < kMaxSackBlocks; ++i) {
            const uint8_t* b = o + 2 + 8 * i;
            s->sack[s->nsack++] = {static_cast<uint32_t>(b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3]),
                                   static_cast<uint32_t>(b[4] << 24 | b[5] << 16 | b[6] << 8 | b[7])};
          }
        }
        break;
      case 8:
        if (len == 10) {
          s->ts_opt = true;
          s->tsval = static_cast<uint32_t>(o[2] << 24 | o[3] << 16 | o[4] << 8 | o[5]);
          s->tsecr = static_cast<uint32_t>(o[6] << 24 | o[7] << 16 | o[8] << 8 | o[9]);
        }
        break;
      default: break;
    }
    o += len;
  }
  return true;
}

void Tcp::input(unsigned w, rte_mbuf** pkts, uint16_t n) {
  const uint64_t now = rte_rdtsc();
  Segment segs[dispatch::kMaxDispatchBurst];
  pcb::FourTuple tuples[dispatch::kMaxDispatchBurst];
  unsigned count = 0;
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    Segment& s = segs[count];
    s = Segment{};
    if (ip_of(m)->next_proto_id == IPPROTO_ICMP) {
      // ip checked that the quote is complete (parse_received_error).
      pcb::quoted_tuple(m, &s.tuple);
      s.m = m;
      s.icmp = true;
    } else if (!parse(w, m, &s)) {
      rte_pktmbuf_free(m);
      continue;
    }
    tuples[count++] = s.tuple;
  }
  if (count == 0) return;
  table_->for_each_group(tuples, count, [&](pcb::GroupGuard& g, const uint16_t* idx, unsigned k) {
    for (unsigned j = 0; j < k; ++j) {
      Segment& s = segs[idx[j]];
      if (s.icmp)
        ctlinput(w, s.m, s.tuple, g, now);
      else
        segment(w, s, g, now);
    }
  });
}

void Tcp::segment(unsigned w, Segment& s, pcb::GroupGuard& g, uint64_t now) {
  Stats& st = stats_[w];
  st.inc(Stat::segments_in);
  if (s.len > 0) st.inc(Stat::data_segments_in);
  if (s.flags & kRst) st.inc(Stat::rst_in);
  const pcb::PcbTable::Match match = table_->lookup_or_listen(g, s.tuple);
  if (match.pcb) {
    Tcb& t = tcb_of(match.pcb);
    if (t.state == State::syn_sent)
      syn_sent_input(w, t, s, g, now);
    else
      sync_input(w, t, s, g, now);
  } else if (match.listener) {
    listen_input(w, s, *match.listener, g, now);
  } else {
    // RFC 9293 §3.10.7.1: CLOSED. A RST is dropped, anything else answered with one.
    reset_for(w, s, now);
    rte_pktmbuf_free(s.m);
    s.m = nullptr;
    s.dropped = true;
    io_[w].drops->inc(DropReason::tcp_no_socket);
  }
  if (s.m) rte_pktmbuf_free(s.m);
  if (!s.dropped) io_[w].events->inc(Event::consumed);
}

void Tcp::discard(unsigned w, Segment& s, DropReason r) {
  rte_pktmbuf_free(s.m);
  s.m = nullptr;
  s.dropped = true;
  io_[w].drops->inc(r);
}

void Tcp::listen_input(unsigned w, Segment& s, const pcb::ListenEntry& l, pcb::GroupGuard& g, uint64_t now) {
  Stats& st = stats_[w];
  auto* listener = reinterpret_cast<socket::TcpListener*>(l.cookie);
  if (s.flags & kRst) return discard(w, s, DropReason::tcp_listen_bad_segment);  // RFC 9293 §3.10.7.2
  if (s.flags & kAck) {
    if (!(s.flags & kSyn) && params_.syn_cookies && listener) {
      // A SYN cookie's ACK (RFC 4987): the connection is made from it now.
      const uint32_t c = s.ack - 1;
      const uint64_t epoch = now / (tsc_hz_ * 64);
      for (unsigned back = 0; back < 2; ++back) {
        if (((c >> 27) & 0x1f) != ((epoch - back) & 0x1f)) continue;
        const uint8_t mi = (c >> 24) & 7;
        if (cookie(s.tuple, s.seq - 1, mi, now, back) != c) continue;
        pcb::PcbTable::InsertError err{};
        Tcb* tp = create_tcb(g, s.tuple, &err);
        if (!tp) return discard(w, s, DropReason::tcp_no_pcb);
        Tcb& t = *tp;
        init_tcb(w, t, now);
        t.handlers = &listener->handlers_;
        t.app = listener->ctx_;
        t.cc = listener->cc_;
        t.passive = true;
        t.keep_idle = us_to_tsc(uint64_t{listener->keepalive_ms_} * 1000);
        t.irs = s.seq - 1;
        t.rcv_nxt = t.last_ack_sent = s.seq;
        // The window our cookie SYN-ACK offered (unscaled, as in every SYN).
        t.rcv_adv = s.seq + std::min<uint32_t>(params_.rcvbuf, 65535);
        t.iss = c;
        t.snd_una = t.snd_nxt = t.snd_max = s.ack;
        t.syn_acked = true;
        t.peer_mss = kCookieMss[mi];
        if (s.ts_opt) {
          // The options our cookie SYN-ACK echoed in its TSval (see listen_input's SYN path).
          const uint32_t bits = s.tsecr & 0x3f;
          t.ts_on = true;
          t.ts_recent = s.tsval;
          t.ts_recent_tsc = now;
          t.sack_on = bits & 0x20;
          t.wscale_on = bits & 0x10;
          t.snd_wscale = t.wscale_on ? (bits & 0x0f) : 0;
          t.rcv_wscale = t.wscale_on ? kOurWscale : 0;
        }
        const uint16_t ours = static_cast<uint16_t>(ip_.interfaces().at(t.ifport).mtu - 40);
        t.mss = static_cast<uint16_t>(std::min(t.peer_mss, ours) - (t.ts_on ? 12 : 0));
        t.cwnd = 10u * t.mss;
        t.snd_wnd = t.max_snd_wnd = uint32_t{s.win} << t.snd_wscale;
        t.snd_wl1 = s.seq;
        t.snd_wl2 = s.ack;
        st.inc(Stat::cookies_accepted);
        listener->accepted_.fetch_add(1, std::memory_order_relaxed);
        established(w, t, g, now);
        if (!t.in_use) return;
        sync_input(w, t, s, g, now);
        return;
      }
      st.inc(Stat::cookies_rejected);
    }
    reset_for(w, s, now);
    return discard(w, s, DropReason::tcp_listen_bad_segment);
  }
  if (!(s.flags & kSyn) || (s.flags & kFin)) return discard(w, s, DropReason::tcp_listen_bad_segment);
  st.inc(Stat::syn_in);
  // RFC 9293 §3.7.1 gives no meaning to an MSS of 0: such a SYN is refused.
  if (s.mss_opt && s.mss == 0) return discard(w, s, DropReason::tcp_bad_mss);
  if (!listener) return discard(w, s, DropReason::tcp_no_socket);
  const int route = ip_.route_port(s.tuple.faddr);
  if (route < 0) return discard(w, s, DropReason::tcp_no_route);
  const uint16_t ours = static_cast<uint16_t>(ip_.interfaces().at(static_cast<uint16_t>(route)).mtu - 40);
  const uint16_t peer_mss = s.mss_opt ? std::clamp<uint16_t>(s.mss, kMinPeerMss, 65535) : kDefaultMss;
  if (listener->embryonic_.load(std::memory_order_relaxed) >= listener->backlog_) {
    st.inc(Stat::syncache_overflow);
    listener->overflowed_.fetch_add(1, std::memory_order_relaxed);
    if (!params_.syn_cookies) return discard(w, s, DropReason::tcp_listen_overflow);
    // RFC 4987 §3.6: answer from a cookie, keeping nothing. The cookie
    // carries the MSS (3 bits); with timestamps, our TSval's low 6 bits carry
    // SACK-permitted and the window scale, as Linux does.
    const uint8_t mi = cookie_mss_index(std::min(peer_mss, ours));
    const uint32_t c = cookie(s.tuple, s.seq, mi, now, 0);
    uint8_t opts[24];
    uint8_t n = 0;
    const uint16_t mss = kCookieMss[mi];
    opts[n++] = 2, opts[n++] = 4, opts[n++] = static_cast<uint8_t>(mss >> 8), opts[n++] = static_cast<uint8_t>(mss);
    if (s.ts_opt) {
      const uint32_t bits = (s.sack_ok ? 0x20u : 0) | (s.ws_opt ? 0x10u | s.ws : 0u);
      // Below our clock, never above: the connection's later TSvals must not
      // look older than this one to the peer's PAWS (RFC 7323 §5).
      const uint32_t tsval = ((ts_now(now) - 0x40u) & ~0x3fu) | bits;
      opts[n++] = 1, opts[n++] = 1, opts[n++] = 8, opts[n++] = 10;
      for (int i = 3; i >= 0; --i) opts[n++] = static_cast<uint8_t>(tsval >> (8 * i));
      for (int i = 3; i >= 0; --i) opts[n++] = static_cast<uint8_t>(s.tsval >> (8 * i));
      if (s.ws_opt) opts[n++] = 1, opts[n++] = 3, opts[n++] = 3, opts[n++] = kOurWscale;
      if (s.sack_ok) opts[n++] = 1, opts[n++] = 1, opts[n++] = 4, opts[n++] = 2;
    }
    respond(w, s.tuple, c, s.seq + 1, kSyn | kAck, now, opts, n,
            static_cast<uint16_t>(std::min<uint32_t>(params_.rcvbuf, 65535)));
    st.inc(Stat::cookies_sent);
    return;  // consumed
  }
  pcb::PcbTable::InsertError err{};
  Tcb* tp = create_tcb(g, s.tuple, &err);
  if (!tp) return discard(w, s, DropReason::tcp_no_pcb);
  Tcb& t = *tp;
  init_tcb(w, t, now);
  t.ifport = static_cast<uint16_t>(route);
  t.state = State::syn_received;
  t.handlers = &listener->handlers_;
  t.app = listener->ctx_;
  t.listener = listener;
  t.passive = true;
  t.keep_idle = us_to_tsc(uint64_t{listener->keepalive_ms_} * 1000);
  t.cc = listener->cc_;
  listener->embryonic_.fetch_add(1, std::memory_order_relaxed);
  st.inc(Stat::syncache_added);
  t.irs = s.seq;
  t.rcv_nxt = t.rcv_adv = t.last_ack_sent = s.seq + 1;
  t.iss = isn(s.tuple, now);
  t.snd_una = t.snd_nxt = t.snd_max = t.iss;
  t.peer_mss = peer_mss;
  t.wscale_on = s.ws_opt;
  t.snd_wscale = s.ws_opt ? s.ws : 0;
  t.rcv_wscale = s.ws_opt ? kOurWscale : 0;
  t.ts_on = s.ts_opt;
  if (s.ts_opt) t.ts_recent = s.tsval, t.ts_recent_tsc = now;
  t.sack_on = s.sack_ok;
  t.mss = static_cast<uint16_t>(std::min(peer_mss, ours) - (t.ts_on ? 12 : 0));
  t.cwnd = 10u * t.mss;  // RFC 6928
  t.snd_wnd = t.max_snd_wnd = s.win;  // a SYN's window is never scaled (RFC 7323 §2.2)
  t.snd_wl1 = s.seq;
  t.snd_wl2 = t.iss;
  output(w, t, now);  // the SYN-ACK
}

void Tcp::syn_sent_input(unsigned w, Tcb& t, Segment& s, pcb::GroupGuard& g, uint64_t now) {
  // RFC 9293 §3.10.7.3.
  const bool ack_ok = (s.flags & kAck) && seq_gt(s.ack, t.iss) && seq_leq(s.ack, t.snd_max);
  if ((s.flags & kAck) && !ack_ok) {
    if (!(s.flags & kRst)) reset_for(w, s, now);
    return discard(w, s, DropReason::tcp_bad_ack);
  }
  if (s.flags & kRst) {
    if (!ack_ok) return discard(w, s, DropReason::tcp_bad_ack);
    stats_[w].inc(Stat::refused);
    drop_connection(w, t, g, socket::CloseReason::refused, false, now);
    return;
  }
  if (!(s.flags & kSyn)) return discard(w, s, DropReason::tcp_bad_ack);
  if (s.mss_opt && s.mss == 0) return discard(w, s, DropReason::tcp_bad_mss);
  t.irs = s.seq;
  t.rcv_nxt = t.rcv_adv = s.seq + 1;
  t.peer_mss = s.mss_opt ? std::clamp<uint16_t>(s.mss, kMinPeerMss, 65535) : kDefaultMss;
  // Our SYN offered every option; what the peer echoed is on.
  t.wscale_on = s.ws_opt;
  t.snd_wscale = s.ws_opt ? s.ws : 0;
  t.rcv_wscale = s.ws_opt ? kOurWscale : 0;
  t.ts_on = s.ts_opt;
  if (s.ts_opt) t.ts_recent = s.tsval, t.ts_recent_tsc = now;
  t.sack_on = s.sack_ok;
  const uint16_t ours = static_cast<uint16_t>(ip_.interfaces().at(t.ifport).mtu - 40);
  t.mss = static_cast<uint16_t>(std::min(t.peer_mss, ours) - (t.ts_on ? 12 : 0));
  t.cwnd = 10u * t.mss;
  t.snd_wnd = t.max_snd_wnd = s.win;
  t.snd_wl1 = s.seq;
  t.snd_wl2 = s.ack;
  if (ack_ok) {
    t.snd_una = s.ack;
    t.syn_acked = true;
    if (t.rtt_start && t.backoff == 0) rtt_sample(t, tsc_to_us(now - t.rtt_start));
    t.rtt_start = 0;
    t.backoff = 0;
    t.t_rexmt = 0;
    t.ack_now = true;
    established(w, t, g, now);
    if (!t.in_use) return;
    // Data with the SYN-ACK is rare; what there is goes the usual way.
    s.seq += 1;
    s.flags &= static_cast<uint8_t>(~kSyn);
    data_input(w, t, s, now);
    notify(w, t, g, now, t.rcvq.bytes > 0 || t.fin_received, false);
    if (t.in_use) output(w, t, now);
    return;
  }
  // Simultaneous open (§3.10.7.3 fifth): SYN-RECEIVED, our SYN again with an ACK.
  t.state = State::syn_received;
  t.snd_nxt = t.iss;
  output(w, t, now);
}

void Tcp::sync_input(unsigned w, Tcb& t, Segment& s, pcb::GroupGuard& g, uint64_t now) {
  Stats& st = stats_[w];
  // RFC 6191: a SYN may take over a TIME-WAIT tuple when it is newer than
  // what the old connection saw (by timestamp, else by sequence number).
  if (t.state == State::time_wait && (s.flags & (kSyn | kAck | kRst)) == kSyn) {
    const bool newer = t.ts_on && s.ts_opt ? seq_gt(s.tsval, t.ts_recent) : seq_gt(s.seq, t.rcv_nxt);
    if (newer) {
      st.inc(Stat::time_wait_reused);
      free_tcb(w, t, g);
      const auto l = table_->listeners().lookup(s.tuple.laddr, s.tuple.lport);
      if (l) return listen_input(w, s, *l, g, now);
      reset_for(w, s, now);
      return discard(w, s, DropReason::tcp_no_socket);
    }
  }
  // Simultaneous open (RFC 9293 figure 8, line 7): the peer's SYN-ACK
  // repeats its SYN, which we have; its ACK is what is new. The SYN is
  // trimmed as a duplicate (as FreeBSD does) and the rest processed.
  if (t.state == State::syn_received && (s.flags & (kSyn | kAck)) == (kSyn | kAck) && s.seq == t.irs) {
    s.seq += 1;
    s.flags &= static_cast<uint8_t>(~kSyn);
  }
  // SYN-RECEIVED: the peer's SYN again (our SYN-ACK was lost): SYN-ACK again.
  if (t.state == State::syn_received && (s.flags & (kSyn | kAck)) == kSyn && s.seq == t.irs) {
    t.snd_nxt = t.iss;
    output(w, t, now);
    return;
  }
  // PAWS (RFC 7323 §5.3): an old timestamp; RSTs are exempt.
  // One tick of slack, as Linux: a segment reordered within a millisecond is not old.
  if (t.ts_on && s.ts_opt && !(s.flags & kRst) && seq_lt(s.tsval + 1, t.ts_recent) &&
      now - t.ts_recent_tsc < us_to_tsc(kPawsIdleUs)) {
    st.inc(Stat::paws_dropped);
    send_ack(w, t, now);
    return discard(w, s, DropReason::tcp_paws);
  }
  // Acceptability (RFC 9293 §3.10.7.4, first check).
  const uint32_t wnd = seq_gt(t.rcv_adv, t.rcv_nxt) ? t.rcv_adv - t.rcv_nxt : 0;
  const uint32_t seg_len = s.seg_len();
  bool acceptable;
  if (seg_len == 0)
    acceptable = wnd == 0 ? s.seq == t.rcv_nxt : seq_in(s.seq, t.rcv_nxt, t.rcv_nxt + wnd);
  else
    acceptable = wnd != 0 && (seq_in(s.seq, t.rcv_nxt, t.rcv_nxt + wnd) ||
                              seq_in(s.seq + seg_len - 1, t.rcv_nxt, t.rcv_nxt + wnd));
  if (!acceptable) {
    if (!(s.flags & kRst)) {
      st.inc(Stat::out_of_window);
      // All of it arrived before: D-SACK it (RFC 2883 §4).
      if (t.sack_on && s.len > 0 && seq_lt(s.seq, t.rcv_nxt)) {
        t.dsack = {s.seq, seq_min(s.seq + s.len, t.rcv_nxt)};
        t.dsack_pending = true;
      }
      // TIME-WAIT: a retransmitted FIN is ACKed and restarts 2 MSL (RFC 9293 §3.10.7.4).
      if (t.state == State::time_wait && (s.flags & kFin)) set_timer(w, t, &Tcb::t_linger, now + us_to_tsc(2 * params_.msl_us));
      send_ack(w, t, now);
    }
    return discard(w, s, DropReason::tcp_out_of_window);
  }
  // RST (RFC 5961 §3.2): exactly at RCV.NXT resets, elsewhere in the window draws a challenge ACK.
  if (s.flags & kRst) {
    if (s.seq != t.rcv_nxt) {
      challenge_ack(w, t, now);
      return discard(w, s, DropReason::tcp_rst_challenged);
    }
    if (t.state == State::syn_received && t.listener) {
      // From a listener: back to LISTEN, which for us is forgetting the Tcb.
      drop_connection(w, t, g, socket::CloseReason::reset, false, now);
      return;
    }
    st.inc(Stat::resets);
    drop_connection(w, t, g, socket::CloseReason::reset, false, now);
    return;
  }
  // SYN on a synchronized connection (RFC 5961 §4.2): challenge ACK.
  if (s.flags & kSyn) {
    challenge_ack(w, t, now);
    return discard(w, s, DropReason::tcp_syn_challenged);
  }
  if (!(s.flags & kAck)) return discard(w, s, DropReason::tcp_no_ack);
  // Timestamps (RFC 7323 §4.3): TS.Recent follows the segment that covers Last.ACK.sent.
  if (t.ts_on && s.ts_opt && seq_geq(s.tsval, t.ts_recent) && seq_leq(s.seq, t.last_ack_sent)) {
    t.ts_recent = s.tsval;
    t.ts_recent_tsc = now;
  }
  // Trim to the window: what lies before RCV.NXT (a retransmission we have)
  // and what lies past the right edge.
  if (seq_lt(s.seq, t.rcv_nxt)) {
    const uint32_t dup = t.rcv_nxt - s.seq;
    // D-SACK (RFC 2883 §4): tell the sender what arrived twice, so that it
    // can undo a spurious retransmission.
    if (t.sack_on && s.len > 0) {
      t.dsack = {s.seq, s.seq + std::min(dup, s.len)};
      t.dsack_pending = true;
    }
    if (dup >= s.len) {
      if ((s.flags & kFin) && dup > s.len) s.flags &= static_cast<uint8_t>(~kFin);
      s.data_off = static_cast<uint16_t>(s.data_off + s.len);
      s.len = 0;
    } else {
      s.data_off = static_cast<uint16_t>(s.data_off + dup);
      s.len -= dup;
    }
    s.seq = t.rcv_nxt;
    t.ack_now = true;  // RFC 5681 §4.2: a duplicate segment is ACKed at once
  }
  if (seq_gt(s.seq + s.len, t.rcv_nxt + wnd)) {
    s.len = t.rcv_nxt + wnd - s.seq;
    s.flags &= static_cast<uint8_t>(~kFin);
    t.ack_now = true;
  }
  const uint32_t una_before = t.snd_una;
  if (!ack_input(w, t, s, g, now)) return;
  const bool space_back = seq_gt(t.snd_una, una_before);
  t.last_rx = now;
  if (s.flags & kUrg) st.inc(Stat::urgent_in);  // RFC 9293 §3.8.5: the data is taken as ordinary data
  if (s.len > 0 && t.detached &&
      (t.state == State::established || t.state == State::fin_wait_1 || t.state == State::fin_wait_2)) {
    // RFC 9293 §3.10.4 / RFC 1122 §4.2.2.13: data for a socket that was closed: reset.
    discard(w, s, DropReason::tcp_after_close);
    drop_connection(w, t, g, socket::CloseReason::reset, true, now);
    return;
  }
  const uint32_t queued_before = t.rcvq.bytes;
  const bool fin_before = t.fin_received;
  data_input(w, t, s, now);
  if (!t.in_use) return;
  const uint32_t gen = t.generation;
  notify(w, t, g, now, t.rcvq.bytes > queued_before || (t.fin_received && !fin_before), space_back);
  if (t.in_use && t.generation == gen) output(w, t, now);
}

// RFC 9293 §3.10.7.4, fifth check, with RFC 5961 §5.2's ACK validation.
// False when the segment ended here (dropped, or the connection closed).
bool Tcp::ack_input(unsigned w, Tcb& t, Segment& s, pcb::GroupGuard& g, uint64_t now) {
  Stats& st = stats_[w];
  if (t.state == State::syn_received) {
    if (!(seq_gt(s.ack, t.snd_una) && seq_leq(s.ack, t.snd_max))) {
      reset_for(w, s, now);
      discard(w, s, DropReason::tcp_bad_ack);
      return false;
    }
    established(w, t, g, now);
    if (!t.in_use) return false;
  }
  if (seq_gt(s.ack, t.snd_max)) {
    st.inc(Stat::ack_for_unsent);
    send_ack(w, t, now);
    discard(w, s, DropReason::tcp_ack_for_unsent);
    return false;
  }
  if (seq_lt(s.ack, t.snd_una - t.max_snd_wnd)) {
    challenge_ack(w, t, now);
    discard(w, s, DropReason::tcp_bad_ack);
    return false;
  }
  // The send window (RFC 9293 §3.10.7.4: SND.WL1/WL2 keep old segments from updating it).
  bool window_changed = false;
  if (seq_lt(t.snd_wl1, s.seq) || (t.snd_wl1 == s.seq && seq_leq(t.snd_wl2, s.ack))) {
    const uint32_t wnd = std::min(uint32_t{s.win} << t.snd_wscale, kMaxWindow);
    window_changed = wnd != t.snd_wnd;
    t.snd_wnd = wnd;
    t.max_snd_wnd = std::max(t.max_snd_wnd, wnd);
    t.snd_wl1 = s.seq;
    t.snd_wl2 = s.ack;
    if (wnd > 0) t.t_persist = 0, t.persist_shift = 0;
  }
  uint32_t sacked_before = 0;
  for (unsigned i = 0; i < t.nsacked; ++i) sacked_before += t.sacked[i].end - t.sacked[i].start;
  if (t.sack_on && s.nsack > 0) process_sack(w, t, s);
  uint32_t sacked_now = 0;
  for (unsigned i = 0; i < t.nsacked; ++i) sacked_now += t.sacked[i].end - t.sacked[i].start;
  // RACK-like (RFC 8985, reduced): SACKed data above a hole that no
  // duplicate ACK count resolves is retransmitted after about an RTT; the
  // peer may have stopped sending (a closed window) and so stopped ACKing.
  if (t.sack_on && t.nsacked > 0 && !t.in_recovery && !t.t_reorder && seq_lt(t.snd_una, t.snd_max)) {
    const uint64_t wait = std::max<uint64_t>(t.srtt_us + t.srtt_us / 4, 2000);
    set_timer(w, t, &Tcb::t_reorder, now + us_to_tsc(wait));
  }
  if (seq_leq(s.ack, t.snd_una)) {
    // RFC 5681 §2: a duplicate ACK carries no data, no SYN/FIN, the same
    // ACK and window, while data is outstanding; RFC 6675 §2 counts one
    // that SACKs new data too, data or not.
    const bool newly_sacked = sacked_now > sacked_before;
    if (s.ack == t.snd_una && t.snd_max != t.snd_una &&
        (newly_sacked || (s.len == 0 && !(s.flags & kFin) && !window_changed))) {
      st.inc(Stat::dupacks_in);
      if (t.dupacks < 255) ++t.dupacks;
      const uint32_t sacked = sacked_now;
      // RFC 6675 §5: three duplicate ACKs, or more than 3 segments SACKed
      // above SND.UNA; RFC 5827 (early retransmit): fewer when fewer than 4
      // segments are outstanding and nothing new can go. RFC 6582 §3.2: not
      // again for losses of the window being recovered, unless SACK says
      // which segments are lost (after a timeout, a lost retransmission
      // would otherwise wait for another one).
      const uint32_t outstanding = (t.snd_max - t.snd_una + t.mss - 1) / t.mss;
      unsigned thresh = t.dupthresh;
      if (outstanding < 4 && t.snd_end() == t.snd_max - (t.fin_queued && seq_gt(t.snd_max, t.snd_end()) ? 1 : 0))
        thresh = std::max<uint32_t>(1, outstanding - 1);
      if (!t.in_recovery && (t.dupacks >= thresh || (t.sack_on && sacked > uint32_t{t.dupthresh} * t.mss)) &&
          (seq_gt(t.snd_una, t.recover) || t.sack_on)) {
        enter_recovery(w, t, now);
      } else if (t.in_recovery && !t.sack_on) {
        t.cwnd += t.mss;  // RFC 6582 §3.2 step 4: inflate
      }
    } else if (s.ack != t.snd_una) {
      t.dupacks = 0;
    }
    return true;
  }
  // New data acknowledged.
  const uint32_t acked = s.ack - t.snd_una;
  const uint32_t data_seq = t.sndq_seq();
  const uint32_t data_acked = seq_gt(s.ack, data_seq) ? std::min(t.sndq.bytes, s.ack - data_seq) : 0;
  const bool fin_acked = t.fin_queued && seq_gt(s.ack, t.snd_end());
  // RTT (Karn: only segments sent once, which rtt_start guarantees).
  if (t.rtt_start && seq_gt(s.ack, t.rtt_seq)) {
    rtt_sample(t, tsc_to_us(now - t.rtt_start));
    t.rtt_start = 0;
  }
  t.backoff = 0;
  if (t.undo_tsval && seq_gt(s.ack, t.undo_seq)) {
    // Eifel (RFC 3522): the ACK of the retransmitted data echoes the
    // original's timestamp, so the original arrived: reordering, not loss.
    // Undo the reduction and tolerate that much reordering from now on.
    if (s.ts_opt && seq_lt(s.tsecr, t.undo_tsval)) {
      st.inc(Stat::spurious_retransmits);
      t.cwnd = std::max(t.cwnd, t.undo_cwnd);
      t.ssthresh = std::max(t.ssthresh, t.undo_ssthresh);
      t.in_recovery = false;
      // Bounded: a high threshold leaves real losses to the timeout.
      t.dupthresh = static_cast<uint8_t>(std::clamp<uint32_t>(t.undo_reorder + 1, t.dupthresh, 6));
    }
    t.undo_tsval = 0;
  }
  drop_acked(t, data_acked);
  t.bytes_acked += data_acked;
  if (t.in_recovery) {
    if (seq_geq(s.ack, t.recover)) {
      // RFC 6582 §3.2 step 6: full acknowledgment ends recovery.
      t.in_recovery = false;
      const uint32_t flight = t.snd_max - s.ack;
      t.cwnd = std::min(t.ssthresh, std::max(flight, uint32_t{t.mss}) + t.mss);
    } else {
      // A partial ACK: the next hole is lost too; retransmit it, deflate.
      st.inc(Stat::partial_acks);
      t.snd_una = s.ack;
      if (!t.sack_on) {
        const uint32_t len = std::min<uint32_t>(t.mss, t.snd_end() - t.snd_una);
        if (len > 0 && send_segment(w, t, t.snd_una, len, kAck, now)) {
          st.inc(Stat::retransmits);
          st.add(Stat::retransmitted_bytes, len);
          t.bytes_retrans += len;
          ++t.retransmits;
        }
        t.cwnd = t.cwnd > acked ? t.cwnd - acked + t.mss : t.mss;
      }
      t.rexmit_next = seq_max(t.rexmit_next, t.snd_una);
    }
  } else if (t.syn_acked) {
    cc_on_ack(t, acked, now);  // not for the ACK of our SYN: the window starts at IW
  }
  t.dupacks = 0;
  t.snd_una = s.ack;
  t.syn_acked = true;
  if (seq_lt(t.snd_nxt, t.snd_una)) t.snd_nxt = t.snd_una;
  // RECOVER follows just behind SND.UNA once passed, so that it stays
  // comparable with it however many bytes the connection carries.
  if (!t.in_recovery && seq_gt(t.snd_una, t.recover)) t.recover = t.snd_una - 1;
  // The scoreboard keeps only what lies above SND.UNA.
  unsigned keep = 0;
  for (unsigned i = 0; i < t.nsacked; ++i) {
    if (seq_leq(t.sacked[i].end, t.snd_una)) continue;
    t.sacked[keep] = t.sacked[i];
    if (seq_lt(t.sacked[keep].start, t.snd_una)) t.sacked[keep].start = t.snd_una;
    ++keep;
  }
  t.nsacked = static_cast<uint8_t>(keep);
  if (keep == 0) t.t_reorder = 0;
  // RFC 6298 §5.2/5.3: stop the timer when all is acknowledged, else restart it.
  if (t.snd_una == t.snd_max)
    t.t_rexmt = 0;
  else
    set_timer(w, t, &Tcb::t_rexmt, now + us_to_tsc(t.rto_us));
  if (fin_acked) {
    switch (t.state) {
      case State::fin_wait_1:
        t.state = State::fin_wait_2;
        // RFC 9293 leaves FIN-WAIT-2 unbounded; a closed socket's gets a timeout (as BSD and Linux).
        if (t.detached) set_timer(w, t, &Tcb::t_linger, now + us_to_tsc(params_.fin_wait2_us));
        break;
      case State::closing: enter_time_wait(w, t, now); break;
      case State::last_ack:
        drop_connection(w, t, g, socket::CloseReason::closed, false, now);
        return false;
      default: break;
    }
  }
  return true;
}

void Tcp::data_input(unsigned w, Tcb& t, Segment& s, uint64_t now) {
  Stats& st = stats_[w];
  const bool can_receive =
      t.state == State::established || t.state == State::fin_wait_1 || t.state == State::fin_wait_2;
  if (s.len > 0 && can_receive) {
    rte_mbuf* m = s.m;
    if (m->nb_segs > 1 && rte_pktmbuf_linearize(m) != 0) return discard(w, s, DropReason::tcp_no_room);
    rte_pktmbuf_adj(m, s.data_off);
    if (m->data_len > s.len) rte_pktmbuf_trim(m, static_cast<uint16_t>(m->data_len - s.len));
    const uint32_t mbuf_limit = params_.rcvbuf / 512 + 16;
    if (s.seq == t.rcv_nxt) {
      if (t.rcvq.count >= mbuf_limit) {
        st.inc(Stat::rcv_buffer_full);
        t.ack_now = true;
        s.flags &= static_cast<uint8_t>(~kFin);
        return discard(w, s, DropReason::tcp_receive_buffer_full);
      }
      const bool had_ooo = t.ooo.count > 0;
      // Beyond the worker's budget only a segment that fills a hole is kept:
      // it lets queued data go to the reader (dropping it could leave every
      // budgeted mbuf waiting for it).
      if (!had_ooo && budget_room(t) == 0) {
        st.inc(Stat::worker_budget_full);
        t.ack_now = true;
        s.flags &= static_cast<uint8_t>(~kFin);
        return discard(w, s, DropReason::tcp_worker_budget);
      }
      t.rcvq.push(m);
      s.m = nullptr;
      t.rcv_nxt += s.len;
      t.bytes_in += s.len;
      st.add(Stat::bytes_in, s.len);
      // Whatever the reassembly queue now continues.
      while (t.ooo.head && seq_leq(t.ooo.head->hash.usr, t.rcv_nxt)) {
        rte_mbuf* q = t.ooo.pop();
        const uint32_t qseq = q->hash.usr, qend = qseq + q->data_len;
        if (seq_leq(qend, t.rcv_nxt)) {
          rte_pktmbuf_free(q);
          continue;
        }
        rte_pktmbuf_adj(q, static_cast<uint16_t>(t.rcv_nxt - qseq));
        t.rcv_nxt = qend;
        t.bytes_in += q->data_len;
        st.add(Stat::bytes_in, q->data_len);
        t.rcvq.push(q);
      }
      settle(t);
      if (had_ooo) {
        t.ack_now = true;  // RFC 5681 §4.2: a segment that fills a hole is ACKed at once
        t.sack_pending = t.ooo.count > 0;
      } else if (s.len >= t.mss && ++t.unacked_segments >= 2) {
        t.ack_now = true;  // RFC 9293 §3.8.6.3 / RFC 5681: every second full-sized segment
      } else if (!t.ack_now && !t.t_delack) {
        set_timer(w, t, &Tcb::t_delack, now + us_to_tsc(params_.delayed_ack_us));
      }
    } else {
      // Out of order: keep it (bounded), and tell the sender at once with a
      // duplicate ACK carrying SACK blocks.
      t.ack_now = true;
      t.sack_pending = true;
      if (t.ooo.count >= params_.ooo_segments) {
        st.inc(Stat::ooo_dropped);
        s.flags &= static_cast<uint8_t>(~kFin);
        return discard(w, s, DropReason::tcp_ooo_full);
      }
      if (budget_room(t) == 0) {
        st.inc(Stat::worker_budget_full);
        s.flags &= static_cast<uint8_t>(~kFin);
        return discard(w, s, DropReason::tcp_worker_budget);
      }
      m->hash.usr = s.seq;
      // Sorted by sequence; a segment wholly inside a queued one is a duplicate.
      rte_mbuf** link = &t.ooo.head;
      rte_mbuf* prev = nullptr;
      while (*link && seq_lt((*link)->hash.usr, s.seq)) prev = *link, link = &(*link)->next;
      if (prev && seq_geq(prev->hash.usr + prev->data_len, s.seq + s.len)) {
        t.last_ooo_start = s.seq;
        s.flags &= static_cast<uint8_t>(~kFin);
        return discard(w, s, DropReason::tcp_duplicate);
      }
      m->next = *link;
      *link = m;
      if (!m->next) t.ooo.tail = m;
      t.ooo.bytes += m->data_len;
      ++t.ooo.count;
      settle(t);
      s.m = nullptr;
      t.last_ooo_start = s.seq;
      st.inc(Stat::ooo_queued);
      s.flags &= static_cast<uint8_t>(~kFin);  // a FIN beyond a hole comes again
    }
  }
  // FIN (RFC 9293 §3.10.7.4, eighth check): only in order.
  if ((s.flags & kFin) && s.seq + s.len == t.rcv_nxt && !t.fin_received &&
      (can_receive || t.state == State::close_wait)) {
    t.fin_received = true;
    t.rcv_nxt += 1;
    t.ack_now = true;
    switch (t.state) {
      case State::established: t.state = State::close_wait; break;
      case State::fin_wait_1: t.state = State::closing; break;  // our FIN not yet acknowledged
      case State::fin_wait_2: enter_time_wait(w, t, now); break;
      default: break;
    }
  }
}

void Tcp::process_sack(unsigned w, Tcb& t, const Segment& s) {
  Stats& st = stats_[w];
  st.add(Stat::sack_blocks_in, s.nsack);
  for (unsigned i = 0; i < s.nsack; ++i) {
    SeqRange b = s.sack[i];
    // D-SACK (RFC 2883): a block at or below SND.UNA reports a duplicate; tolerated.
    if (seq_leq(b.end, t.snd_una)) {
      st.inc(Stat::dsack_in);
      continue;
    }
    if (!seq_lt(b.start, b.end) || seq_gt(b.end, t.snd_max)) continue;
    if (seq_lt(b.start, t.snd_una)) b.start = t.snd_una;
    // Merge into the sorted scoreboard.
    SeqRange merged[kScoreboard + 1];
    unsigned n = 0;
    bool placed = false;
    for (unsigned j = 0; j < t.nsacked; ++j) {
      const SeqRange r = t.sacked[j];
      if (seq_lt(r.end, b.start)) {
        merged[n++] = r;
      } else if (seq_lt(b.end, r.start)) {
        if (!placed) merged[n++] = b, placed = true;
        merged[n++] = r;
      } else {
        b.start = seq_min(b.start, r.start);
        b.end = seq_max(b.end, r.end);
      }
    }
    if (!placed) merged[n++] = b;
    // Full: the highest ranges matter least for choosing retransmissions.
    t.nsacked = static_cast<uint8_t>(std::min<unsigned>(n, kScoreboard));
    std::copy(merged, merged + t.nsacked, t.sacked);
  }
}

void Tcp::enter_recovery(unsigned w, Tcb& t, uint64_t now) {
  Stats& st = stats_[w];
  st.inc(Stat::fast_retransmits);
  if (t.sack_on) st.inc(Stat::sack_recoveries);
  const uint32_t flight = t.snd_max - t.snd_una;
  uint32_t sacked = 0;
  for (unsigned i = 0; i < t.nsacked; ++i) sacked += t.sacked[i].end - t.sacked[i].start;
  remember_for_undo(t, now, sacked / t.mss);
  if (t.cc == 1) {
    // RFC 9438 §4.6: beta 0.7, fast convergence.
    const double cwnd_seg = static_cast<double>(t.cwnd) / t.mss;
    t.cubic_wmax = cwnd_seg < t.cubic_wmax ? cwnd_seg * (1.0 + 0.7) / 2.0 : cwnd_seg;
    t.cubic_epoch = 0;
    t.ssthresh = std::max<uint32_t>(static_cast<uint32_t>(t.cwnd * 0.7), 2u * t.mss);
  } else {
    t.ssthresh = std::max(flight / 2, 2u * t.mss);  // RFC 5681 eq. (4)
  }
  t.recover = t.snd_max;
  t.in_recovery = true;
  t.rtt_start = 0;  // Karn
  const uint32_t len = std::min<uint32_t>(t.mss, t.snd_end() - t.snd_una);
  if (len > 0 && send_segment(w, t, t.snd_una, len, kAck, now)) {
    st.inc(Stat::retransmits);
    st.add(Stat::retransmitted_bytes, len);
    t.bytes_retrans += len;
    ++t.retransmits;
  }
  t.rexmit_next = t.snd_una + len;
  // NewReno inflates by the three segments that left; with SACK the pipe
  // estimate (output) accounts for them instead (RFC 6675 §5).
  t.cwnd = t.sack_on ? t.ssthresh : t.ssthresh + 3u * t.mss;
}

void Tcp::cc_on_ack(Tcb& t, uint32_t acked, uint64_t now) {
  if (t.cwnd < t.ssthresh) {
    t.cwnd += std::min<uint32_t>(acked, 2u * t.mss);  // RFC 3465 with L = 2
    return;
  }
  if (t.cc == 1) {
    // CUBIC (RFC 9438 §4.2): W(t) = C (t - K)^3 + W_max, in segments.
    constexpr double kC = 0.4, kBeta = 0.7;
    const double cwnd_seg = static_cast<double>(t.cwnd) / t.mss;
    if (t.cubic_epoch == 0) {
      t.cubic_epoch = now;
      if (t.cubic_wmax < cwnd_seg) t.cubic_wmax = cwnd_seg;
      t.cubic_k = std::cbrt(t.cubic_wmax * (1 - kBeta) / kC);
    }
    const double since = static_cast<double>(now - t.cubic_epoch) / static_cast<double>(tsc_hz_) +
                         static_cast<double>(t.srtt_us) / 1e6;
    const double target = kC * std::pow(since - t.cubic_k, 3) + t.cubic_wmax;
    // Per ACK, in segments: (target - cwnd) / cwnd toward the cubic curve
    // (§4.4), and at least what the Reno-friendly estimate grows by
    // (§4.3: alpha = 3 (1 - beta) / (1 + beta) per window).
    const double acked_seg = static_cast<double>(acked) / t.mss;
    double inc = target > cwnd_seg ? std::min(target - cwnd_seg, cwnd_seg / 2) / cwnd_seg * acked_seg : 0;
    constexpr double kAlpha = 3 * (1 - kBeta) / (1 + kBeta);
    inc = std::max(inc, kAlpha * acked_seg / cwnd_seg);
    t.cwnd += std::max<uint32_t>(1, static_cast<uint32_t>(inc * t.mss));
    return;
  }
  // RFC 5681 eq. (3): about one segment per round trip.
  t.cwnd += std::max<uint32_t>(1, static_cast<uint32_t>(uint64_t{t.mss} * t.mss / t.cwnd));
}

void Tcp::remember_for_undo(Tcb& t, uint64_t now, uint32_t sacked_segments) {
  if (!t.ts_on) return;
  t.undo_cwnd = t.cwnd;
  t.undo_ssthresh = t.ssthresh;
  t.undo_seq = t.snd_una;
  t.undo_reorder = sacked_segments;
  t.undo_tsval = std::max<uint32_t>(ts_now(now), 1);  // 0 means nothing to undo
}

void Tcp::rtt_sample(Tcb& t, uint32_t r) {
  // RFC 6298 §2.
  r = std::max<uint32_t>(r, 1);
  if (t.srtt_us == 0) {
    t.srtt_us = r;
    t.rttvar_us = r / 2;
  } else {
    const uint32_t delta = t.srtt_us > r ? t.srtt_us - r : r - t.srtt_us;
    t.rttvar_us = (3 * t.rttvar_us + delta) / 4;
    t.srtt_us = (7 * t.srtt_us + r) / 8;
  }
  const uint32_t rto = t.srtt_us + std::max<uint32_t>(1000, 4 * t.rttvar_us);  // G: the 1 ms timer wheel
  t.rto_us = std::clamp(rto, params_.min_rto_us, params_.max_rto_us);
}

void Tcp::ctlinput(unsigned w, rte_mbuf* m, const pcb::FourTuple& tuple, pcb::GroupGuard& g, uint64_t now) {
  Stats& st = stats_[w];
  io_[w].events->inc(Event::consumed);
  st.inc(Stat::icmp_errors_in);
  pcb::Pcb* p = table_->lookup(g, tuple);
  pcb::FourTuple ignored;
  const uint8_t* quoted = nullptr;
  pcb::quoted_tuple(m, &ignored, &quoted);
  const auto* icmp = rte_pktmbuf_mtod_offset(m, const rte_icmp_hdr*, m->l2_len + m->l3_len);
  if (p && quoted) {
    Tcb& t = tcb_of(p);
    const uint32_t qseq = static_cast<uint32_t>(quoted[4] << 24 | quoted[5] << 16 | quoted[6] << 8 | quoted[7]);
    // RFC 5927 §4.1: only a quote of data in flight is believed.
    if (seq_in(qseq, t.snd_una, t.snd_max) && icmp->icmp_type == 3 && icmp->icmp_code == 4) {
      // Fragmentation needed (RFC 1191): the next hop's MTU is in the second 16 bits.
      const uint16_t mtu = rte_be_to_cpu_16(icmp->icmp_seq_nb);
      const uint32_t mss = mtu > 40 + 12 ? mtu - 40u - (t.ts_on ? 12u : 0u) : kMinPeerMss;
      if (mss >= kMinPeerMss && mss < t.mss) {
        t.mss = static_cast<uint16_t>(mss);
        st.inc(Stat::mss_lowered);
        t.snd_nxt = t.snd_una;  // resend what was too big
        output(w, t, now);
      }
    }
    // Every other error is soft for a synchronized connection (RFC 5927 §4.1, RFC 1122 §4.2.3.9).
  }
  (void)g;
  rte_pktmbuf_free(m);
}

// --- output ------------------------------------------------------------------------------------

Tcp::TsoShape Tcp::tso_shape(const Tcb& t) const {
  if (!params_.tso) return {};
  const ifnet::Interface& itf = ip_.interfaces().at(t.ifport);
  if (!(itf.tx_offloads & RTE_ETH_TX_OFFLOAD_TCP_TSO)) return {};
  TsoShape shape;
  // A TSO frame's headers: Ethernet, IPv4, TCP and timestamps (it never carries SACK blocks).
  const uint32_t headers = sizeof(rte_ether_hdr) + sizeof(rte_ipv4_hdr) + kHeaderLen + (t.ts_on ? 12u : 0u);
  shape.piece = t.mss;
  if (itf.tso_piece_max > headers) shape.piece = std::min<uint32_t>(shape.piece, itf.tso_piece_max - headers);
  // The IPv4 total length bounds a frame (headers with the most options),
  // and so does the device's limit of mbufs per frame.
  shape.max_payload = 65535 - sizeof(rte_ipv4_hdr) - 60;
  if (itf.tx_max_segs > 1)
    shape.max_payload = std::min<uint32_t>(shape.max_payload, (itf.tx_max_segs - 1u) * mbuf_payload_);
  return shape;
}

uint32_t Tcp::pipe(const Tcb& t) const {
  // RFC 6675 §4: what is in flight, less what was SACKed, less the holes
  // below the highest SACKed byte taken as lost and not yet retransmitted.
  uint32_t sacked = 0, lost = 0;
  uint32_t prev = t.snd_una;
  const uint32_t rexmit = t.in_recovery ? seq_max(t.rexmit_next, t.snd_una) : t.snd_una;
  for (unsigned i = 0; i < t.nsacked; ++i) {
    const SeqRange& r = t.sacked[i];
    sacked += r.end - r.start;
    const uint32_t from = seq_max(prev, rexmit);
    if (seq_gt(r.start, from)) lost += r.start - from;
    prev = r.end;
  }
  const uint32_t flight = t.snd_max - t.snd_una;
  return flight > sacked + lost ? flight - sacked - lost : 0;
}

uint32_t Tcp::rcv_space(const Tcb& t) const {
  const uint32_t used = t.rcvq.bytes + t.ooo.bytes;
  const uint32_t space = used >= params_.rcvbuf ? 0 : params_.rcvbuf - used;
  // No more than the window field can say: without scaling, 65535.
  return std::min(space, uint32_t{65535} << t.rcv_wscale);
}

uint16_t Tcp::window_to_advertise(Tcb& t) const {
  uint32_t space = rcv_space(t);
  // Receiver-side silly window avoidance (RFC 9293 §3.8.6.2.2): open by a segment or a quarter buffer at least.
  const uint32_t offered = seq_gt(t.rcv_adv, t.rcv_nxt) ? t.rcv_adv - t.rcv_nxt : 0;
  if (space < offered + std::min<uint32_t>(params_.rcvbuf / 4, t.mss) && space > offered) space = offered;
  // Never shrink the window already offered (RFC 9293 §3.8.6).
  space = std::max(space, offered);
  space = std::min(space >> t.rcv_wscale, 65535u);
  return static_cast<uint16_t>(space);
}

bool Tcp::send_segment(unsigned w, Tcb& t, uint32_t seq, uint32_t len, uint8_t flags, uint64_t now) {
  Stats& st = stats_[w];
  const int route = ip_.route_port(t.tuple.faddr);
  if (route < 0) {
    st.inc(Stat::unroutable);
    return false;
  }
  const uint16_t port = static_cast<uint16_t>(route);
  if (io_[w].tx->refused(port)) return false;
  rte_mbuf* m = rte_pktmbuf_alloc(ip_.pool());
  if (!m) [[unlikely]] {
    st.inc(Stat::no_mbuf);
    return false;
  }
  uint8_t opts[40];
  uint8_t n = 0;
  auto put32 = [&](uint32_t v) {
    for (int i = 3; i >= 0; --i) opts[n++] = static_cast<uint8_t>(v >> (8 * i));
  };
  const bool syn = flags & kSyn;
  if (syn) {
    // In our SYN every option is offered; in a SYN-ACK those the peer offered.
    const bool active = t.state == State::syn_sent;
    const uint16_t mss = static_cast<uint16_t>(ip_.interfaces().at(port).mtu - 40);
    opts[n++] = 2, opts[n++] = 4, opts[n++] = static_cast<uint8_t>(mss >> 8), opts[n++] = static_cast<uint8_t>(mss);
    if (active || t.sack_on) {
      opts[n++] = 1, opts[n++] = 1, opts[n++] = 4, opts[n++] = 2;
    }
    if (active || t.ts_on) {
      opts[n++] = 1, opts[n++] = 1, opts[n++] = 8, opts[n++] = 10;
      put32(ts_now(now));
      put32(t.ts_recent);
    }
    if (active || t.wscale_on) {
      opts[n++] = 1, opts[n++] = 3, opts[n++] = 3, opts[n++] = active ? kOurWscale : t.rcv_wscale;
    }
  } else {
    if (t.ts_on) {
      opts[n++] = 1, opts[n++] = 1, opts[n++] = 8, opts[n++] = 10;
      put32(ts_now(now));
      put32(t.ts_recent);
    }
    if (t.sack_on && (t.ooo.count > 0 || t.dsack_pending) && (flags & kAck)) {
      // RFC 2018 §4: the block of the latest segment first, then the others.
      SeqRange blocks[kMaxSackBlocks];
      unsigned nb = 0;
      // At most 4 blocks (3 with timestamps), and only as many as fit beside
      // the payload in one MTU: a full-sized segment carries none (its ACKs
      // without data do).
      const uint32_t mtu = ip_.interfaces().at(port).mtu;
      const uint32_t used = 40u + n + len;
      const unsigned fit = used + 4 + 8 <= mtu ? (mtu - used - 4) / 8 : 0;
      const unsigned room = std::min<unsigned>(t.ts_on ? 3 : 4, fit);
      SeqRange cur{0, 0};
      bool open = false;
      SeqRange all[64];
      unsigned na = 0;
      for (rte_mbuf* q = t.ooo.head; q; q = q->next) {
        const uint32_t qs = q->hash.usr, qe = qs + q->data_len;
        if (open && seq_leq(qs, cur.end)) {
          cur.end = seq_max(cur.end, qe);
        } else {
          if (open && na < 64) all[na++] = cur;
          cur = {qs, qe};
          open = true;
        }
      }
      if (open && na < 64) all[na++] = cur;
      // RFC 2883 §4: a D-SACK block goes first.
      if (t.dsack_pending && len == 0) blocks[nb++] = t.dsack;
      for (unsigned i = 0; i < na && nb < kMaxSackBlocks; ++i)
        if (seq_in(t.last_ooo_start, all[i].start, all[i].end)) blocks[nb++] = all[i];
      for (unsigned i = 0; i < na && nb < room; ++i)
        if (!seq_in(t.last_ooo_start, all[i].start, all[i].end)) blocks[nb++] = all[i];
      nb = std::min(nb, room);
      if (nb > 0) {
        opts[n++] = 1, opts[n++] = 1, opts[n++] = 5, opts[n++] = static_cast<uint8_t>(2 + 8 * nb);
        for (unsigned i = 0; i < nb; ++i) put32(blocks[i].start), put32(blocks[i].end);
        st.add(Stat::sack_blocks_out, nb);
      }
    }
  }
  const uint32_t hdr = kHeaderLen + n;
  const uint32_t headers = sizeof(rte_ether_hdr) + sizeof(rte_ipv4_hdr) + hdr;
  // More than one MSS is a TSO frame (output() makes one only for a port
  // with TSO enabled): its payload continues in chained mbufs.
  const bool tso = len > t.mss;
  const uint32_t room = rte_pktmbuf_tailroom(m);
  const uint32_t first = tso ? std::min<uint32_t>(len, room > headers ? room - headers : 0) : len;
  auto* p = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, static_cast<uint16_t>(headers + first)));
  if (!p) {
    rte_pktmbuf_free(m);
    st.inc(Stat::no_mbuf);
    return false;
  }
  for (uint32_t off = first; off < len;) {
    rte_mbuf* seg = rte_pktmbuf_alloc(ip_.pool());
    if (!seg) [[unlikely]] {
      rte_pktmbuf_free(m);
      st.inc(Stat::no_mbuf);
      return false;
    }
    const uint32_t k = std::min<uint32_t>(len - off, rte_pktmbuf_tailroom(seg));
    copy_from_sndq(t, seq + off, reinterpret_cast<uint8_t*>(rte_pktmbuf_append(seg, static_cast<uint16_t>(k))), k);
    if (rte_pktmbuf_chain(m, seg) != 0) [[unlikely]] {
      rte_pktmbuf_free(seg);
      rte_pktmbuf_free(m);
      st.inc(Stat::no_mbuf);
      return false;
    }
    off += k;
  }
  auto* eth = reinterpret_cast<rte_ether_hdr*>(p);
  eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
  const uint16_t total = static_cast<uint16_t>(sizeof(rte_ipv4_hdr) + hdr + len);
  ip->version_ihl = RTE_IPV4_VHL_DEF;
  ip->type_of_service = 0;
  ip->total_length = rte_cpu_to_be_16(total);
  ip->packet_id = 0;  // RFC 6864 §4.1: an atomic datagram (DF) needs no identification
  ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
  ip->time_to_live = 64;
  ip->next_proto_id = IPPROTO_TCP;
  ip->hdr_checksum = 0;
  ip->src_addr = rte_cpu_to_be_32(t.tuple.laddr);
  ip->dst_addr = rte_cpu_to_be_32(t.tuple.faddr);
  auto* th = reinterpret_cast<rte_tcp_hdr*>(ip + 1);
  th->src_port = rte_cpu_to_be_16(t.tuple.lport);
  th->dst_port = rte_cpu_to_be_16(t.tuple.fport);
  th->sent_seq = rte_cpu_to_be_32(seq);
  th->recv_ack = rte_cpu_to_be_32((flags & kAck) ? t.rcv_nxt : 0);
  th->data_off = static_cast<uint8_t>((hdr / 4) << 4);
  th->tcp_flags = flags;
  // A SYN's window is never scaled (RFC 7323 §2.2).
  const uint16_t win = syn ? static_cast<uint16_t>(std::min<uint32_t>(rcv_space(t), 65535)) : window_to_advertise(t);
  th->rx_win = rte_cpu_to_be_16(win);
  th->cksum = 0;
  th->tcp_urp = 0;
  std::memcpy(th + 1, opts, n);
  if (first > 0) copy_from_sndq(t, seq, reinterpret_cast<uint8_t*>(th) + hdr, first);
  const ifnet::Interface& out = ip_.interfaces().at(port);
  constexpr uint64_t kOffload = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
  uint32_t wire_segments = 1;
  if (tso) {
    // The device cuts the payload into tso_segsz pieces, each behind a copy
    // of these headers; the pseudo-header sum leaves the length out.
    m->l2_len = sizeof(rte_ether_hdr);
    m->l3_len = sizeof(rte_ipv4_hdr);
    m->l4_len = hdr;
    const uint32_t piece = tso_shape(t).piece;
    m->tso_segsz = static_cast<uint16_t>(piece);
    m->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_TCP_SEG;
    th->cksum = rte_ipv4_phdr_cksum(ip, m->ol_flags);
    wire_segments = (len + piece - 1) / piece;
    st.inc(Stat::tso_frames_out);
  } else if ((out.tx_offloads & kOffload) == kOffload && total <= out.mtu) {
    m->l2_len = sizeof(rte_ether_hdr);
    m->l3_len = sizeof(rte_ipv4_hdr);
    m->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_TCP_CKSUM;
    th->cksum = rte_ipv4_phdr_cksum(ip, m->ol_flags);
  } else {
    ip->hdr_checksum = rte_ipv4_cksum(ip);
    th->cksum = rte_ipv4_udptcp_cksum(ip, th);
  }
  st.add(Stat::segments_out, wire_segments);
  if (len > 0)
    st.add(Stat::data_segments_out, wire_segments);
  else if (!(flags & (kSyn | kFin | kRst)))
    st.inc(Stat::acks_out);
  if (flags & kRst) st.inc(Stat::rst_out);
  if (flags & kAck) {
    t.last_ack_sent = t.rcv_nxt;
    t.ack_now = false;
    t.unacked_segments = 0;
    t.t_delack = 0;
    t.sack_pending = false;
    if (len == 0) t.dsack_pending = false;
    const uint32_t edge = t.rcv_nxt + (uint32_t{win} << (syn ? 0 : t.rcv_wscale));
    if (seq_gt(edge, t.rcv_adv)) t.rcv_adv = edge;
  }
  EventCounters& ev = *io_[w].events;
  ev.inc(Event::originated);
  ip_.output(w, m, port, now);
  return true;
}

void Tcp::output(unsigned w, Tcb& t, uint64_t now) {
  Stats& st = stats_[w];
  switch (t.state) {
    case State::closed:
    case State::listen:
    case State::time_wait:
      if (t.ack_now && t.state == State::time_wait) send_ack(w, t, now);
      return;
    case State::syn_sent:
    case State::syn_received:
      if (t.snd_nxt == t.iss) {
        const uint8_t flags = t.state == State::syn_sent ? kSyn : kSyn | kAck;
        if (!send_segment(w, t, t.iss, 0, flags, now)) return;
        if (t.snd_max == t.iss) {
          t.rtt_start = now;
          t.rtt_seq = t.iss;
        }
        t.snd_nxt = t.snd_max = t.iss + 1;
        if (!t.t_rexmt) set_timer(w, t, &Tcb::t_rexmt, now + us_to_tsc(uint64_t{t.rto_us} << t.backoff));
      } else if (t.ack_now) {
        send_ack(w, t, now);
      }
      return;
    default: break;
  }
  const uint32_t end = t.snd_end();
  const bool fin_allowed = t.fin_queued && t.state != State::fin_wait_2;
  uint32_t sacked_top = t.snd_una;
  for (unsigned i = 0; i < t.nsacked; ++i) sacked_top = seq_max(sacked_top, t.sacked[i].end);
  for (unsigned sent = 0; sent < kMaxSegmentsPerOutput; ++sent) {
    // RFC 6675 §5: in SACK recovery, holes below the highest SACKed byte go first.
    if (t.in_recovery && t.sack_on) {
      if (pipe(t) >= t.cwnd) break;
      uint32_t h = seq_max(t.rexmit_next, t.snd_una);
      for (unsigned i = 0; i < t.nsacked; ++i)
        if (seq_in(h, t.sacked[i].start, t.sacked[i].end)) h = t.sacked[i].end;
      if (seq_lt(h, sacked_top)) {
        uint32_t hole_end = sacked_top;
        for (unsigned i = 0; i < t.nsacked; ++i)
          if (seq_gt(t.sacked[i].start, h)) hole_end = seq_min(hole_end, t.sacked[i].start);
        const uint32_t len = std::min<uint32_t>({t.mss, hole_end - h, seq_gt(end, h) ? end - h : 0});
        if (len == 0) break;
        if (!send_segment(w, t, h, len, kAck, now)) break;
        st.inc(Stat::retransmits);
        st.add(Stat::retransmitted_bytes, len);
        t.bytes_retrans += len;
        ++t.retransmits;
        t.rexmit_next = h + len;
        if (!t.t_rexmt) set_timer(w, t, &Tcb::t_rexmt, now + us_to_tsc(t.rto_us));
        continue;
      }
    }
    // After a timeout, go-back-N skips what the peer SACKed.
    if (seq_lt(t.snd_nxt, t.snd_max))
      for (unsigned i = 0; i < t.nsacked; ++i)
        if (seq_in(t.snd_nxt, t.sacked[i].start, t.sacked[i].end)) t.snd_nxt = t.sacked[i].end;
    const uint32_t seq = t.snd_nxt;
    const uint32_t avail = seq_lt(seq, end) ? end - seq : 0;
    // In flight: what was sent and not acknowledged, less what the peer SACKed.
    uint32_t flight = t.snd_nxt - t.snd_una;
    if (t.in_recovery && t.sack_on) {
      flight = pipe(t);
    } else {
      for (unsigned i = 0; i < t.nsacked; ++i) {
        const uint32_t a = seq_max(t.sacked[i].start, t.snd_una), b = seq_min(t.sacked[i].end, t.snd_nxt);
        if (seq_lt(a, b)) flight -= b - a;
      }
    }
    // RFC 3042 (limited transmit): the first two duplicate ACKs each let one new segment go.
    const uint32_t cwnd = t.cwnd + (!t.in_recovery && t.dupacks > 0 && t.dupacks < 3 ? t.dupacks * t.mss : 0u);
    const uint32_t wnd = std::min(t.snd_wnd, cwnd);
    const uint32_t usable = wnd > flight ? wnd - flight : 0;
    // The peer's window can be smaller than what is already in flight after it shrank.
    const uint32_t in_window = seq_gt(t.snd_una + t.snd_wnd, seq) ? t.snd_una + t.snd_wnd - seq : 0;
    uint32_t len = std::min({avail, usable, in_window, uint32_t{t.mss}});
    if (seq_lt(seq, t.snd_max))
      for (unsigned i = 0; i < t.nsacked; ++i)
        if (seq_gt(t.sacked[i].start, seq) && seq_lt(t.sacked[i].start, seq + len)) len = t.sacked[i].start - seq;
    // The FIN sits at `end`: it goes with the segment that reaches it (again after a timeout).
    const bool fin = fin_allowed && seq + len == end;
    bool send = false;
    if (len > 0) {
      const bool rexmit = seq_lt(seq, t.snd_max);
      if (len == t.mss || rexmit || fin)
        send = true;
      else if (len == avail && (!params_.nagle || t.snd_nxt == t.snd_una))
        send = true;  // Nagle (RFC 896): a short segment only when nothing is in flight
      else if (t.max_snd_wnd > 0 && len >= t.max_snd_wnd / 2)
        send = true;  // sender-side silly window avoidance (RFC 9293 §3.8.6.2.1)
    } else if (fin && seq == end) {
      send = true;
    }
    if (!send) {
      if (t.ack_now) send_ack(w, t, now);
      // Zero window with data waiting and nothing in flight: probe (RFC 9293 §3.8.6.1).
      if (avail > 0 && in_window == 0 && t.snd_una == t.snd_max && !t.t_rexmt && !t.t_persist) {
        const uint64_t wait = std::min<uint64_t>(uint64_t{t.rto_us} << t.persist_shift, params_.max_rto_us);
        set_timer(w, t, &Tcb::t_persist, now + us_to_tsc(wait));
      }
      break;
    }
    if (len == t.mss && !fin && seq == t.snd_max) {
      // New data, a full segment, and more behind it: with TSO, as many
      // full segments as the windows allow go as one frame. Retransmissions
      // and the FIN's segment stay single.
      // Whole pieces of the device's cut (the MSS, or less where the device
      // cuts shorter), so that no runt piece follows each frame.
      const TsoShape tso = tso_shape(t);
      uint32_t frame = tso.piece ? std::min({avail, usable, in_window, tso.max_payload}) : 0;
      if (tso.piece) frame -= frame % tso.piece;
      if (fin_allowed && frame > 0 && seq + frame == end) frame -= tso.piece;
      if (frame > len) len = frame;
    }
    const uint8_t flags = static_cast<uint8_t>(kAck | (fin ? kFin : 0) | (len > 0 && seq + len == end ? kPsh : 0));
    if (!send_segment(w, t, seq, len, flags, now)) break;
    const bool rexmit = seq_lt(seq, t.snd_max);
    if (rexmit) {
      st.inc(Stat::retransmits);
      st.add(Stat::retransmitted_bytes, len);
      t.bytes_retrans += len;
      ++t.retransmits;
    } else {
      st.add(Stat::bytes_out, len);
      t.bytes_out += len;
    }
    t.snd_nxt = seq + len + (fin ? 1 : 0);
    if (seq_gt(t.snd_nxt, t.snd_max)) {
      if (!t.rtt_start && !rexmit) {
        t.rtt_start = now;
        t.rtt_seq = seq;
      }
      t.snd_max = t.snd_nxt;
    }
    t.t_persist = 0;
    if (!t.t_rexmt) set_timer(w, t, &Tcb::t_rexmt, now + us_to_tsc(uint64_t{t.rto_us} << t.backoff));
    if (fin) break;
  }
}

void Tcp::challenge_ack(unsigned w, Tcb& t, uint64_t now) {
  // RFC 5961 §7: a per-worker rate limit.
  if (per_worker_[w]->challenge.take(now)) {
    stats_[w].inc(Stat::challenge_acks);
    send_ack(w, t, now);
  } else {
    stats_[w].inc(Stat::challenge_acks_limited);
  }
}

void Tcp::respond(unsigned w, const pcb::FourTuple& tuple, uint32_t seq, uint32_t ack, uint8_t flags, uint64_t now,
                  const uint8_t* opts, uint8_t optlen, uint16_t win) {
  const int route = ip_.route_port(tuple.faddr);
  if (route < 0) return;
  const uint16_t port = static_cast<uint16_t>(route);
  if (io_[w].tx->refused(port)) return;
  rte_mbuf* m = rte_pktmbuf_alloc(ip_.pool());
  if (!m) {
    stats_[w].inc(Stat::no_mbuf);
    return;
  }
  const uint32_t hdr = kHeaderLen + optlen;
  auto* p = reinterpret_cast<uint8_t*>(
      rte_pktmbuf_append(m, static_cast<uint16_t>(sizeof(rte_ether_hdr) + sizeof(rte_ipv4_hdr) + hdr)));
  auto* eth = reinterpret_cast<rte_ether_hdr*>(p);
  eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
  ip->version_ihl = RTE_IPV4_VHL_DEF;
  ip->type_of_service = 0;
  ip->total_length = rte_cpu_to_be_16(static_cast<uint16_t>(sizeof(rte_ipv4_hdr) + hdr));
  ip->packet_id = 0;
  ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
  ip->time_to_live = 64;
  ip->next_proto_id = IPPROTO_TCP;
  ip->hdr_checksum = 0;
  ip->src_addr = rte_cpu_to_be_32(tuple.laddr);
  ip->dst_addr = rte_cpu_to_be_32(tuple.faddr);
  auto* th = reinterpret_cast<rte_tcp_hdr*>(ip + 1);
  th->src_port = rte_cpu_to_be_16(tuple.lport);
  th->dst_port = rte_cpu_to_be_16(tuple.fport);
  th->sent_seq = rte_cpu_to_be_32(seq);
  th->recv_ack = rte_cpu_to_be_32(ack);
  th->data_off = static_cast<uint8_t>((hdr / 4) << 4);
  th->tcp_flags = flags;
  th->rx_win = rte_cpu_to_be_16(win);
  th->cksum = 0;
  th->tcp_urp = 0;
  if (optlen) std::memcpy(th + 1, opts, optlen);
  ip->hdr_checksum = rte_ipv4_cksum(ip);
  th->cksum = rte_ipv4_udptcp_cksum(ip, th);
  Stats& st = stats_[w];
  st.inc(Stat::segments_out);
  if (flags & kRst) st.inc(Stat::rst_out);
  io_[w].events->inc(Event::originated);
  ip_.output(w, m, port, now);
}

void Tcp::reset_for(unsigned w, const Segment& s, uint64_t now) {
  if (s.flags & kRst) return;
  // RFC 9293 §3.10.7.1.
  if (s.flags & kAck)
    respond(w, s.tuple, s.ack, 0, kRst, now);
  else
    respond(w, s.tuple, 0, s.seq + s.seg_len(), kRst | kAck, now);
}

uint32_t Tcp::isn(const pcb::FourTuple& t, uint64_t now) const {
  // RFC 6528 §3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey), M a 4 µs clock.
  const uint64_t words[2] = {tuple_word(t), ports_word(t)};
  const uint64_t m = now / std::max<uint64_t>(1, tsc_hz_ / 250000);
  return static_cast<uint32_t>(m + siphash(secret_, words, 2));
}

uint32_t Tcp::cookie(const pcb::FourTuple& t, uint32_t peer_seq, uint8_t mss_index, uint64_t now,
                     unsigned epoch_back) const {
  // RFC 4987 §3.6: 5 bits of a 64-second counter, 3 bits of MSS, 24 bits of
  // a keyed hash over the tuple, the counter, the peer's ISN and the MSS.
  const uint64_t epoch = now / (tsc_hz_ * 64) - epoch_back;
  const uint64_t words[3] = {tuple_word(t), ports_word(t) << 32 | peer_seq, epoch << 3 | mss_index};
  const uint32_t h = static_cast<uint32_t>(siphash(secret_, words, 3)) & 0x00ffffff;
  return static_cast<uint32_t>((epoch & 0x1f) << 27) | uint32_t{mss_index} << 24 | h;
}

// --- timers ----------------------------------------------------------------------------------------

void Tcp::set_timer(unsigned w, Tcb& t, uint64_t Tcb::*field, uint64_t when) {
  t.*field = when;
  reschedule(w, t);
}

void Tcp::reschedule(unsigned w, Tcb& t) {
  uint64_t next = 0;
  for (uint64_t d : {t.t_rexmt, t.t_persist, t.t_delack, t.t_linger, t.t_keep, t.t_reorder, t.t_budget})
    if (d && (!next || d < next)) next = d;
  if (!next) {
    // No deadline left: this connection's nodes on this worker's wheel serve nothing.
    cancel_timers(w, t);
    return;
  }
  // A node armed at or before the next deadline serves it (and re-arms).
  int free_slot = -1;
  for (unsigned i = 0; i < kTimerNodes; ++i) {
    if (t.armed[i] && t.armed[i] <= next) return;
    if (!t.armed[i] && free_slot < 0) free_slot = static_cast<int>(i);
  }
  // All of the connection's nodes are armed later than `next`: the earliest
  // of them fires late for it. A connection never holds more than
  // kTimerNodes nodes, whatever a peer makes its deadlines do.
  if (free_slot < 0) {
    stats_[w].inc(Stat::timers_late);
    return;
  }
  const uint64_t arg = uint64_t{static_cast<uint32_t>(free_slot)} << 62 |
                       uint64_t{t.generation & kTimerGenerationMask} << 32 | t.index;
  if (const timer::TimerHandle h = io_[w].timers->arm(next, on_timer, per_worker_[w].get(), arg)) {
    t.armed[free_slot] = next;
    t.armed_node[free_slot] = h;
    t.armed_worker[free_slot] = static_cast<uint16_t>(w);
  } else {
    stats_[w].inc(Stat::no_timer);
  }
}

void Tcp::cancel_timers(unsigned w, Tcb& t) {
  for (unsigned i = 0; i < kTimerNodes; ++i) {
    if (!t.armed[i] || t.armed_worker[i] != w) continue;
    io_[w].timers->cancel(t.armed_node[i]);
    t.armed[i] = 0;
    t.armed_node[i] = {};
  }
}

void Tcp::on_timer(void* ctx, uint64_t arg, uint64_t now) {
  auto& pw = *static_cast<PerWorker*>(ctx);
  Tcp& tcp = *pw.tcp;
  const uint32_t index = static_cast<uint32_t>(arg);
  const uint32_t gen = static_cast<uint32_t>(arg >> 32) & kTimerGenerationMask;
  const unsigned slot = static_cast<unsigned>(arg >> 62);
  pcb::GroupGuard g = tcp.table_->lock_group(tcp.table_->group_of_slot(index));
  Tcb& t = tcp.tcbs_[index];
  // The connection this node was armed for is gone (its slot may serve another).
  if (!t.in_use || (t.generation & kTimerGenerationMask) != gen) return;
  t.armed[slot] = 0;
  t.armed_node[slot] = {};
  const uint32_t generation = t.generation;
  tcp.timers_due(pw.w, t, g, now);
  if (!t.in_use || t.generation != generation) return;
  tcp.output(pw.w, t, now);
  tcp.reschedule(pw.w, t);
}

void Tcp::timers_due(unsigned w, Tcb& t, pcb::GroupGuard& g, uint64_t now) {
  auto due = [&](uint64_t d) { return d != 0 && d <= now; };
  if (due(t.t_linger)) {
    t.t_linger = 0;
    if (t.state == State::fin_wait_2) stats_[w].inc(Stat::fin_wait2_timeouts);
    drop_connection(w, t, g, socket::CloseReason::closed, false, now);
    return;
  }
  if (due(t.t_delack)) {
    t.t_delack = 0;
    if (t.last_ack_sent != t.rcv_nxt || t.unacked_segments) {
      stats_[w].inc(Stat::delayed_acks);
      t.ack_now = true;
    }
  }
  if (due(t.t_keep)) {
    // RFC 9293 §3.8.4 / RFC 1122 §4.2.3.6: after the idle time, a probe
    // (SEQ = SND.UNA - 1, as BSD and Linux send it) draws an ACK; too many
    // unanswered ones end the connection.
    t.t_keep = 0;
    const uint64_t idle = now - t.last_rx;
    if (t.keep_idle && synchronized(t.state) && t.state != State::time_wait) {
      if (idle < t.keep_idle) {
        t.keep_probes = 0;
        t.t_keep = t.last_rx + t.keep_idle;
      } else if (t.keep_probes >= params_.keepalive_probes) {
        stats_[w].inc(Stat::keepalive_drops);
        stats_[w].inc(Stat::timeouts);
        drop_connection(w, t, g, socket::CloseReason::timeout, true, now);
        return;
      } else {
        ++t.keep_probes;
        stats_[w].inc(Stat::keepalive_probes);
        send_segment(w, t, t.snd_una - 1, 0, kAck, now);
        t.t_keep = now + us_to_tsc(params_.keepalive_interval_us);
      }
    }
  }
  if (due(t.t_reorder)) {
    t.t_reorder = 0;
    if (!t.in_recovery && t.nsacked > 0 && seq_lt(t.snd_una, t.snd_max)) {
      stats_[w].inc(Stat::reorder_timeouts);
      enter_recovery(w, t, now);
    }
  }
  if (due(t.t_rexmt)) rexmt_timeout(w, t, g, now);
  if (t.in_use && due(t.t_persist)) persist_timeout(w, t, now);
  if (t.in_use && due(t.t_budget)) {
    t.t_budget = 0;
    notify(w, t, g, now, false, true);  // the service tries send() again
  }
}

void Tcp::rexmt_timeout(unsigned w, Tcb& t, pcb::GroupGuard& g, uint64_t now) {
  Stats& st = stats_[w];
  t.t_rexmt = 0;
  const bool handshake = t.state == State::syn_sent || t.state == State::syn_received;
  if (!handshake && t.snd_una == t.snd_max) return;
  ++t.backoff;
  if (t.backoff > (handshake ? params_.syn_retries : params_.data_retries)) {
    st.inc(Stat::timeouts);
    drop_connection(w, t, g, socket::CloseReason::timeout, !handshake, now);
    return;
  }
  st.inc(Stat::rto_expired);
  // RFC 5681 §3.1 eq. (4) on the first timeout; the loss window is one segment.
  if (t.backoff == 1 && !handshake) {
    remember_for_undo(t, now, 0);
    const uint32_t flight = t.snd_max - t.snd_una;
    t.ssthresh = std::max(flight / 2, 2u * t.mss);
    if (t.cc == 1) t.cubic_wmax = static_cast<double>(t.cwnd) / t.mss, t.cubic_epoch = 0;
  }
  t.cwnd = t.mss;
  t.in_recovery = false;
  t.dupacks = 0;
  t.recover = t.snd_max;  // RFC 6582 §3.2 step 1 after a timeout
  // The scoreboard survives one timeout (go-back-N skips SACKed data, as
  // Linux does); a second in a row forgets it, in case the peer reneged
  // (RFC 2018 §8).
  if (t.backoff >= 2) t.nsacked = 0;
  t.rtt_start = 0;        // Karn
  t.snd_nxt = handshake ? t.iss : t.snd_una;
  // RFC 6298 §5.5: back off. Armed before output, which only arms an idle timer.
  const uint64_t rto = std::min<uint64_t>(uint64_t{t.rto_us} << t.backoff, params_.max_rto_us);
  t.t_rexmt = now + us_to_tsc(rto);
  if (handshake) {
    // Retransmitted SYNs and SYN-ACKs are counted here; output sends them.
    st.inc(Stat::retransmits);
    ++t.retransmits;
  }
  output(w, t, now);
  reschedule(w, t);
}

void Tcp::persist_timeout(unsigned w, Tcb& t, uint64_t now) {
  t.t_persist = 0;
  if (t.snd_wnd != 0 || t.snd_una != t.snd_max || t.snd_end() == t.snd_nxt) return;
  // A zero-window probe as Linux sends it: SEQ = SND.UNA - 1, no data; the
  // peer must answer with its window (RFC 9293 §3.8.6.1 allows either form).
  stats_[w].inc(Stat::persist_probes);
  send_segment(w, t, t.snd_una - 1, 0, kAck, now);
  if (t.persist_shift < 16) ++t.persist_shift;
  const uint64_t wait = std::min<uint64_t>(uint64_t{t.rto_us} << t.persist_shift, params_.max_rto_us);
  set_timer(w, t, &Tcb::t_persist, now + us_to_tsc(wait));
}

// --- life cycle -----------------------------------------------------------------------------------

Tcb* Tcp::create_tcb(pcb::GroupGuard& g, const pcb::FourTuple& tuple, pcb::PcbTable::InsertError* err) {
  pcb::Pcb* p = table_->insert(g, tuple, 0, err);
  if (!p) return nullptr;
  Tcb& t = tcb_of(p);
  const uint32_t index = t.index, gen = t.generation;
  t = Tcb{};
  t.index = index;
  t.generation = gen;
  t.tuple = tuple;
  t.in_use = true;
  const int route = ip_.route_port(tuple.faddr);
  t.ifport = route >= 0 ? static_cast<uint16_t>(route) : 0;
  return &t;
}

void Tcp::init_tcb(unsigned w, Tcb& t, uint64_t) {
  t.home = static_cast<uint16_t>(w);
  t.rto_us = params_.initial_rto_us;
  t.ssthresh = UINT32_MAX;
  t.cc = params_.cc;
}

void Tcp::established(unsigned w, Tcb& t, pcb::GroupGuard& g, uint64_t now) {
  Stats& st = stats_[w];
  t.state = State::established;
  t.established_tsc = now;
  t.recover = t.iss;  // RFC 6582: nothing recovered yet
  t.last_rx = now;
  if (t.keep_idle) set_timer(w, t, &Tcb::t_keep, now + t.keep_idle);
  st.inc(Stat::established);
  const uint32_t gen = t.generation;
  socket::TcpConn c(*this, t, w, now, g);
  if (t.passive) {
    // Passive open (a syncache entry or a SYN cookie): the listener's service adopts it.
    if (t.listener) {
      t.listener->embryonic_.fetch_sub(1, std::memory_order_relaxed);
      t.listener->accepted_.fetch_add(1, std::memory_order_relaxed);
    }
    t.listener = nullptr;
    st.inc(Stat::accepts);
    void* app = t.handlers->accepted ? t.handlers->accepted(t.app, c) : nullptr;
    if (!t.in_use || t.generation != gen) return;
    if (!app) {
      t.detached = true;
      drop_connection(w, t, g, socket::CloseReason::reset, true, now);
      return;
    }
    t.app = app;
  } else if (t.handlers && t.handlers->connected) {
    t.handlers->connected(t.app, c);
  }
}

void Tcp::drop_connection(unsigned w, Tcb& t, pcb::GroupGuard& g, socket::CloseReason why, bool send_rst,
                          uint64_t now) {
  if (send_rst) respond(w, t.tuple, t.snd_nxt, t.rcv_nxt, kRst | kAck, now);
  if (t.listener) {
    t.listener->embryonic_.fetch_sub(1, std::memory_order_relaxed);
    t.listener = nullptr;
  }
  const bool tell = !t.detached && t.handlers && t.handlers->closed && t.state != State::syn_received;
  if (tell) {
    t.detached = true;
    socket::TcpConn c(*this, t, w, now, g);
    t.handlers->closed(t.app, c, why);
  }
  free_tcb(w, t, g);
}

void Tcp::free_tcb(unsigned w, Tcb& t, pcb::GroupGuard& g) {
  if (!t.in_use) return;
  t.sndq.clear();
  t.rcvq.clear();
  t.ooo.clear();
  settle(t);
  // Its nodes on this worker's wheel go now; any on another worker's wheel
  // fire once and find the generation moved on.
  cancel_timers(w, t);
  table_->remove(g, &table_->at(t.index));
  t.in_use = false;
  t.state = State::closed;
  ++t.generation;
  stats_[w].inc(Stat::closed);
}

void Tcp::enter_time_wait(unsigned w, Tcb& t, uint64_t now) {
  t.state = State::time_wait;
  t.t_rexmt = t.t_persist = t.t_delack = 0;
  // Nothing more will be sent or received: those buffers go now (what the
  // service has not read stays readable), the tuple stays 2 MSL.
  t.sndq.clear();
  t.ooo.clear();
  settle(t);
  set_timer(w, t, &Tcb::t_linger, now + us_to_tsc(2 * params_.msl_us));
}

void Tcp::notify(unsigned w, Tcb& t, pcb::GroupGuard& g, uint64_t now, bool readable, bool writable) {
  if (t.detached || !t.handlers || !synchronized(t.state)) return;
  const uint32_t gen = t.generation;
  if (readable && t.handlers->readable) {
    socket::TcpConn c(*this, t, w, now, g);
    t.handlers->readable(t.app, c);
    if (!t.in_use || t.generation != gen || t.detached) return;
  }
  if (writable && t.want_writable && t.handlers->writable && t.sndq.bytes < params_.sndbuf) {
    t.want_writable = false;
    socket::TcpConn c(*this, t, w, now, g);
    t.handlers->writable(t.app, c);
  }
}

// --- buffers ---------------------------------------------------------------------------------------

size_t Tcp::append_send(Tcb& t, const uint8_t* data, size_t len) {
  const size_t room = t.sndq.bytes >= params_.sndbuf ? 0 : params_.sndbuf - t.sndq.bytes;
  size_t left = std::min(len, room), done = 0;
  // The worker's budget is applied by send_space(), not here: what it
  // offered is taken whole even when another worker's connection used the
  // budget meanwhile (it overshoots by that much, at most).
  while (left > 0) {
    rte_mbuf* tail = t.sndq.tail;
    size_t space = tail ? rte_pktmbuf_tailroom(tail) : 0;
    if (space == 0) {
      tail = rte_pktmbuf_alloc(ip_.pool());
      if (!tail) break;
      t.sndq.push(tail);  // empty: counts nothing yet
      space = rte_pktmbuf_tailroom(tail);
    }
    const size_t n = std::min(left, space);
    std::memcpy(rte_pktmbuf_append(tail, static_cast<uint16_t>(n)), data + done, n);
    t.sndq.bytes += static_cast<uint32_t>(n);
    done += n;
    left -= n;
  }
  settle(t);
  return done;
}

void Tcp::copy_from_sndq(Tcb& t, uint32_t seq, uint8_t* out, uint32_t len) {
  rte_mbuf* m = t.sndq.head;
  uint32_t mseq = t.sndq_seq();
  if (t.snd_cursor && seq_geq(seq, t.snd_cursor_seq)) m = t.snd_cursor, mseq = t.snd_cursor_seq;
  while (m && seq_geq(seq, mseq + m->data_len)) {
    mseq += m->data_len;
    m = m->next;
  }
  t.snd_cursor = m;
  t.snd_cursor_seq = mseq;
  uint32_t off = seq - mseq;
  while (m && len > 0) {
    const uint32_t n = std::min<uint32_t>(len, m->data_len - off);
    std::memcpy(out, rte_pktmbuf_mtod_offset(m, const uint8_t*, off), n);
    out += n;
    len -= n;
    off = 0;
    m = m->next;
  }
}

void Tcp::drop_acked(Tcb& t, uint32_t bytes) {
  if (bytes == 0) return;
  t.snd_cursor = nullptr;
  while (bytes > 0 && t.sndq.head) {
    rte_mbuf* h = t.sndq.head;
    if (h->data_len <= bytes) {
      bytes -= h->data_len;
      rte_pktmbuf_free(t.sndq.pop());
    } else {
      rte_pktmbuf_adj(h, static_cast<uint16_t>(bytes));
      t.sndq.bytes -= bytes;
      bytes = 0;
    }
  }
  settle(t);
}

size_t Tcp::read(unsigned w, Tcb& t, uint8_t* out, size_t len) {
  size_t done = 0;
  while (done < len && t.rcvq.head) {
    rte_mbuf* h = t.rcvq.head;
    const size_t n = std::min<size_t>(len - done, h->data_len);
    if (out) std::memcpy(out + done, rte_pktmbuf_mtod(h, const uint8_t*), n);
    done += n;
    if (n == h->data_len) {
      rte_pktmbuf_free(t.rcvq.pop());
    } else {
      rte_pktmbuf_adj(h, static_cast<uint16_t>(n));
      t.rcvq.bytes -= static_cast<uint32_t>(n);
    }
  }
  settle(t);
  // A window update when reading opened the window by two segments (RFC 9293 §3.8.6.2.2).
  const uint32_t offered = seq_gt(t.rcv_adv, t.rcv_nxt) ? t.rcv_adv - t.rcv_nxt : 0;
  if (done > 0 && rcv_space(t) >= offered + 2u * t.mss && synchronized(t.state) && !t.fin_received && !t.ack_now) {
    t.ack_now = true;
    stats_[w].inc(Stat::window_updates);
  }
  return done;
}

// --- the socket API --------------------------------------------------------------------------------

Result<socket::TcpListener*> Tcp::listen(uint32_t addr, uint16_t port, const socket::TcpHandlers& h, void* ctx,
                                         unsigned backlog, int cc) {
  if (port == 0) return Error{"listen: port 0 (pick a port)"};
  if (addr != 0 && !ip_.interfaces().local().is_own(addr))
    return Error{"listen: " + conf::format_ipv4(addr) + " is not an address of ours"};
  std::unique_ptr<socket::TcpListener> l(
      new socket::TcpListener(h, ctx, {addr, port}, backlog ? backlog : params_.syn_backlog));
  l->cc_ = cc < 0 ? params_.cc : static_cast<uint8_t>(cc);
  if (!table_->listeners().add({addr, port, reinterpret_cast<uint64_t>(l.get())}))
    return Error{"listen: TCP port " + std::to_string(port) + " is already in use"};
  std::lock_guard<std::mutex> lk(listeners_mu_);
  listeners_.push_back(std::move(l));
  return listeners_.back().get();
}

void Tcp::unlisten(socket::TcpListener* l) {
  // The listener object stays (its connections keep its handlers) until shutdown.
  table_->listeners().remove(l->local_.addr, l->local_.port);
}

std::vector<socket::TcpListener*> Tcp::listeners() const {
  std::lock_guard<std::mutex> lk(listeners_mu_);
  std::vector<socket::TcpListener*> out;
  for (const auto& l : listeners_) out.push_back(l.get());
  return out;
}

Result<socket::ConnRef> Tcp::connect(unsigned worker, uint32_t faddr, uint16_t fport, const socket::TcpHandlers& h,
                                     void* ctx, uint64_t now, uint32_t laddr) {
  if (worker >= workers_) return Error{"connect: no worker " + std::to_string(worker)};
  if (fport == 0) return Error{"connect: foreign port 0"};
  const int port = ip_.route_port(faddr);
  if (port < 0) return Error{"connect: no route to " + conf::format_ipv4(faddr)};
  if (laddr == 0) laddr = ip_.interfaces().source_for(static_cast<uint16_t>(port), faddr);
  auto tuple = table_->connect(worker, laddr, faddr, fport);
  if (!tuple)
    return Error{"connect: no free local port whose replies reach worker " + std::to_string(worker) +
                 " (or the connection table's group is full: raise stack.connections)"};
  pcb::GroupGuard g = table_->lock_group(table_->group_of(*tuple));
  pcb::Pcb* p = table_->lookup(g, *tuple);
  if (!p) return Error{"connect: the connection vanished"};
  Tcb& t = tcb_of(p);
  const uint32_t index = t.index, gen = t.generation;
  t = Tcb{};
  t.index = index;
  t.generation = gen;
  t.tuple = *tuple;
  t.in_use = true;
  t.ifport = static_cast<uint16_t>(port);
  init_tcb(worker, t, now);
  t.state = State::syn_sent;
  t.handlers = &h;
  t.app = ctx;
  t.iss = isn(*tuple, now);
  t.snd_una = t.snd_nxt = t.snd_max = t.iss;
  t.mss = static_cast<uint16_t>(ip_.interfaces().at(t.ifport).mtu - 40);
  t.snd_wnd = t.mss;
  stats_[worker].inc(Stat::connects);
  output(worker, t, now);
  return socket::ConnRef{t.index, t.generation};
}

void Tcp::shutdown() {
  for (uint32_t g = 0; g < table_->groups(); ++g) {
    pcb::GroupGuard guard = table_->lock_group(g);
    const uint32_t first = g * table_->per_group();
    for (uint32_t i = first; i < first + table_->per_group(); ++i) {
      Tcb& t = tcbs_[i];
      if (!t.in_use) continue;
      t.sndq.clear();
      t.rcvq.clear();
      t.ooo.clear();
      settle(t);
      table_->remove(guard, &table_->at(i));
      t.in_use = false;
      ++t.generation;
    }
  }
  std::vector<socket::TcpListener*> ls = listeners();
  for (auto* l : ls) table_->listeners().remove(l->local_.addr, l->local_.port);
}

uint64_t Tcp::stat(Stat s) const {
  uint64_t n = 0;
  for (unsigned w = 0; w < workers_; ++w) n += stats_[w].get(s);
  return n;
}

std::vector<ConnView> Tcp::connections() {
  std::vector<ConnView> out;
  for (uint32_t g = 0; g < table_->groups(); ++g) {
    pcb::GroupGuard guard = table_->lock_group(g);
    const uint32_t first = g * table_->per_group();
    for (uint32_t i = first; i < first + table_->per_group(); ++i) {
      const Tcb& t = tcbs_[i];
      if (!t.in_use) continue;
      ConnView v;
      v.tuple = t.tuple;
      v.state = t.state;
      v.rtt_us = t.srtt_us;
      v.rttvar_us = t.rttvar_us;
      v.rto_us = t.rto_us;
      v.cwnd = t.cwnd;
      v.ssthresh = t.ssthresh;
      v.mss = t.mss;
      v.snd_wnd = t.snd_wnd;
      v.rcv_wnd = seq_gt(t.rcv_adv, t.rcv_nxt) ? t.rcv_adv - t.rcv_nxt : 0;
      v.retransmits = t.retransmits;
      v.unacked = t.snd_max - t.snd_una;
      v.send_queue = t.sndq.bytes;
      v.recv_queue = t.rcvq.bytes;
      v.bytes_in = t.bytes_in;
      v.bytes_out = t.bytes_out;
      v.bytes_acked = t.bytes_acked;
      v.bytes_retrans = t.bytes_retrans;
      v.group = g;
      out.push_back(v);
    }
  }
  return out;
}

}  // namespace ngstack::stack::tcp

// --- TcpConn -----------------------------------------------------------------------------------------

namespace ngstack::stack::socket {

using tcp::State;

const char* close_reason_name(CloseReason r) {
  switch (r) {
    case CloseReason::closed: return "closed";
    case CloseReason::reset: return "reset";
    case CloseReason::refused: return "refused";
    case CloseReason::timeout: return "timeout";
    case CloseReason::no_memory: return "no_memory";
  }
  return "?";
}

Endpoint TcpConn::local() const { return {tcb_.tuple.laddr, tcb_.tuple.lport}; }
Endpoint TcpConn::foreign() const { return {tcb_.tuple.faddr, tcb_.tuple.fport}; }
ConnRef TcpConn::ref() const { return {tcb_.index, tcb_.generation}; }
void* TcpConn::context() const { return tcb_.app; }
void TcpConn::set_context(void* ctx) { tcb_.app = ctx; }
uint64_t TcpConn::user() const { return tcb_.user; }
void TcpConn::set_user(uint64_t v) { tcb_.user = v; }
size_t TcpConn::readable() const { return tcb_.rcvq.bytes; }
bool TcpConn::eof() const { return tcb_.fin_received && tcb_.rcvq.bytes == 0; }
size_t TcpConn::read(void* out, size_t len) { return tcp_.read(worker_, tcb_, static_cast<uint8_t*>(out), len); }
size_t TcpConn::peek(void* out, size_t len) const {
  size_t done = 0;
  for (const rte_mbuf* m = tcb_.rcvq.head; m && done < len; m = m->next) {
    const size_t n = std::min<size_t>(len - done, m->data_len);
    std::memcpy(static_cast<uint8_t*>(out) + done, rte_pktmbuf_mtod(m, const uint8_t*), n);
    done += n;
  }
  return done;
}
size_t TcpConn::unsent() const { return tcb_.sndq.bytes; }
TcpConnCounters TcpConn::counters() const {
  return {tcb_.bytes_out, tcb_.bytes_retrans, tcb_.bytes_acked, tcb_.bytes_in, tcb_.retransmits};
}

size_t TcpConn::send_space() {
  if (tcb_.fin_queued || tcb_.detached) return 0;
  if (tcb_.state != State::established && tcb_.state != State::close_wait && tcb_.state != State::syn_sent &&
      tcb_.state != State::syn_received)
    return 0;
  const uint32_t cap = tcp_.params_.sndbuf;
  if (tcb_.sndq.bytes >= cap) {
    tcb_.want_writable = true;
    return 0;
  }
  // The worker's buffer budget: the tail mbuf's room and the whole mbufs left.
  const size_t tail = tcb_.sndq.tail ? rte_pktmbuf_tailroom(tcb_.sndq.tail) : 0;
  const size_t budget = tail + size_t{tcp_.budget_room(tcb_)} * tcp_.mbuf_payload_;
  if (budget == 0) {
    // Nothing of ours may be in flight to bring `writable` back: look again
    // shortly (the other connections' ACKs and reads return the budget).
    tcb_.want_writable = true;
    tcp_.stats_[worker_].inc(tcp::Stat::worker_budget_full);
    if (!tcb_.t_budget) tcp_.set_timer(worker_, tcb_, &tcp::Tcb::t_budget, now_ + tcp_.us_to_tsc(tcp::kBudgetRetryUs));
    return 0;
  }
  return std::min<size_t>(cap - tcb_.sndq.bytes, budget);
}

size_t TcpConn::send(const void* data, size_t len) {
  const size_t room = send_space();
  const size_t n = room ? tcp_.append_send(tcb_, static_cast<const uint8_t*>(data), std::min(len, room)) : 0;
  if (n < len) tcb_.want_writable = true;
  return n;
}

void TcpConn::shutdown() {
  if (tcb_.fin_queued) return;
  switch (tcb_.state) {
    case State::syn_sent: tcp_.drop_connection(worker_, tcb_, guard_, CloseReason::closed, false, now_); return;
    case State::syn_received:
    case State::established: tcb_.state = State::fin_wait_1; break;
    case State::close_wait: tcb_.state = State::last_ack; break;
    default: return;
  }
  tcb_.fin_queued = true;
}

void TcpConn::close() {
  // RFC 2525 §2.17 (as BSD and Linux): closing with unread data resets.
  if (tcb_.rcvq.bytes > 0) return abort();
  shutdown();
  if (!tcb_.in_use) return;
  tcb_.detached = true;
  if (tcb_.state == State::fin_wait_2)
    tcp_.set_timer(worker_, tcb_, &tcp::Tcb::t_linger, now_ + tcp_.us_to_tsc(tcp_.params_.fin_wait2_us));
}

void TcpConn::abort() {
  tcb_.detached = true;
  tcp_.drop_connection(worker_, tcb_, guard_, CloseReason::reset, tcb_.state != State::syn_sent, now_);
}

}  // namespace ngstack::stack::socket
