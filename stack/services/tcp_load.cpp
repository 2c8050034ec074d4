#include "stack/services/tcp_load.hpp"

#include <rte_cycles.h>
#include <rte_ring.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "stack/services/http_response.hpp"
#include "stack/services/stream_pattern.hpp"
#include "stack/tcp/tcp.hpp"

namespace ngstack::stack::services {

using socket::CloseReason;
using socket::TcpConn;

namespace {

constexpr size_t kChunk = 16384;       // bytes moved per read/send call
constexpr unsigned kMaxOpensPerPoll = 64;

enum class Phase : uint8_t { connecting, request, closing };

struct Session {
  // Set at start:
  void* owner = nullptr;  // the generator
  uint32_t index = 0;
  unsigned opener = 0;
  // Read by the opener's timeout scan without the lock: 0 while free.
  std::atomic<uint64_t> deadline{0};
  // The rest under the connection's group lock (or the opener's, before connect()).
  socket::ConnRef ref;
  Phase phase = Phase::connecting;
  bool established = false;
  bool first_byte = false;
  uint32_t requests_left = 0;
  uint64_t t_open = 0, t_request = 0;
  uint64_t stop_at = UINT64_MAX;  // duration_ms: no request starts at or after this TSC
  uint64_t send_off = 0;   // bytes of the current request sent
  uint64_t read_left = 0;  // raw: response bytes still to read
  uint64_t request_len = 0;
  socket::TcpConnCounters seen;  // the connection's counters as last accounted
  http::ResponseParser http;
};

class TcpLoad final : public CountingService {
 public:
  TcpLoad(const conf::ClientConfig& c, tcp::Tcp& tcp, unsigned workers, uint64_t tsc_hz, unsigned index)
      : cfg_(c), tcp_(tcp), workers_(workers), tsc_hz_(tsc_hz), index_(index) {
    handlers_.connected = connected_cb;
    handlers_.readable = pump_cb;
    handlers_.writable = pump_cb;
    handlers_.closed = closed_cb;
    timeout_ = static_cast<uint64_t>(cfg_.timeout_ms) * tsc_hz / 1000;
    scan_every_ = std::max<uint64_t>(tsc_hz / 1000, timeout_ / 32);
  }
  ~TcpLoad() override {
    for (auto& pw : per_worker_)
      if (pw && pw->free) rte_ring_free(pw->free);
  }

  Status start() {
    const uint32_t sessions = cfg_.sessions();
    per_worker_.resize(workers_);
    for (unsigned w = 0; w < workers_; ++w) {
      auto pw = std::make_unique<PerWorker>();
      const auto share = [&](uint64_t n) { return n / workers_ + (w < n % workers_); };
      pw->nsessions = static_cast<uint32_t>(share(sessions));
      pw->concurrency = static_cast<uint32_t>(share(cfg_.concurrency));
      pw->quota = cfg_.connections ? share(cfg_.connections) : UINT64_MAX;
      pw->interval = cfg_.rate > 0 ? static_cast<double>(tsc_hz_) * workers_ / cfg_.rate : 0;
      if (pw->quota == 0 || (cfg_.concurrency && pw->concurrency == 0)) stop_opening(*pw);
      pw->sessions = std::make_unique<Session[]>(std::max<uint32_t>(pw->nsessions, 1));
      const std::string name = "tload" + std::to_string(index_) + "_" + std::to_string(w);
      // Multi-producer (whichever worker ends a connection), single consumer (the opener).
      pw->free = rte_ring_create(name.c_str(), rte_align32pow2(pw->nsessions + 1), SOCKET_ID_ANY, RING_F_SC_DEQ);
      if (!pw->free) return Error{"no memory for a ring of " + std::to_string(pw->nsessions) + " sessions"};
      for (uint32_t i = 0; i < pw->nsessions; ++i) {
        Session& s = pw->sessions[i];
        s.owner = this;
        s.index = i;
        s.opener = w;
        rte_ring_enqueue(pw->free, &s);
      }
      per_worker_[w] = std::move(pw);
    }
    spdlog::info("tcp-load {}: {} target(s) from {}:{}, {}, {} session(s)", cfg_.name,
                 uint64_t{cfg_.addresses.count} * cfg_.ports.count, conf::format_ipv4(cfg_.addresses.first),
                 cfg_.ports.first,
                 cfg_.rate > 0 ? std::to_string(cfg_.rate) + " connections/s"
                               : std::to_string(cfg_.concurrency) + " concurrent",
                 sessions);
    return Ok{};
  }

  void worker_online(unsigned, uint64_t) override {}

  void poll(unsigned w, uint64_t now) override {
    PerWorker& pw = *per_worker_[w];
    if (now >= pw.next_scan) {
      pw.next_scan = now + scan_every_;
      expire(w, pw, now);
      if (w == 0) sample_peak();
    }
    if (pw.opening_done) return;
    if (!warm_.load(std::memory_order_acquire)) {
      // One probe per worker until the generator's first connection ends its handshake.
      if (pw.probes == 0) {
        open_one(w, pw, now);
        pw.probes = 1;
      }
      return;
    }
    if (pw.start == 0) {
      pw.start = now;
      pw.next_open = static_cast<double>(now) + (pw.probes ? pw.interval : 0);
    }
    if (cfg_.duration_ms && now - pw.start >= cfg_.duration_ms * tsc_hz_ / 1000) return stop_opening(pw);
    unsigned opened = 0;
    if (cfg_.rate > 0) {
      while (pw.quota > 0 && static_cast<double>(now) >= pw.next_open && opened < kMaxOpensPerPoll) {
        open_one(w, pw, now);
        pw.next_open += pw.interval;
        ++opened;
      }
    } else {
      while (pw.quota > 0 && in_use(pw) < pw.concurrency && opened < kMaxOpensPerPoll) {
        open_one(w, pw, now);
        ++opened;
      }
    }
    if (pw.quota == 0) stop_opening(pw);
  }

  ServiceView live_view() const override {
    ServiceView v;
    v.type = conf::ServiceType::tcp_load;
    v.server = cfg_.addresses.first;
    v.port = cfg_.ports.first;
    LoadView& l = v.load;
    l.name = cfg_.name;
    l.addresses = cfg_.addresses.count;
    l.ports = cfg_.ports.count;
    l.rate = cfg_.rate;
    l.concurrency = cfg_.concurrency;
    uint64_t first = UINT64_MAX, last = 0, last_response = 0, ended = 0;
    bool done = true;
    for (const auto& p : per_worker_) {
      const PerWorker& pw = *p;
      l.attempted += pw.attempted.get();
      l.established += pw.established.get();
      ended += pw.ended_established.get();
      l.completed += pw.completed.get();
      l.requests += pw.requests.get();
      l.responses += pw.responses.get();
      l.tx_bytes += pw.tx_bytes.get();
      l.rx_bytes += pw.rx_bytes.get();
      l.tx_acked_bytes += pw.tx_acked_bytes.get();
      l.rx_acked_bytes += pw.rx_acked_bytes.get();
      l.tx_wire_bytes += pw.tx_wire_bytes.get();
      l.retransmitted_bytes += pw.retransmitted_bytes.get();
      l.retransmits += pw.retransmits.get();
      l.refused += pw.refused.get();
      l.reset += pw.reset.get();
      l.timeout += pw.timeout.get();
      l.bad_response += pw.bad_response.get();
      l.local += pw.local.get();
      l.no_session += pw.no_session.get();
      for (int k = 0; k < 6; ++k) l.http_status[k] += pw.status[k].get();
      if (const uint64_t f = pw.first_open.get()) first = std::min(first, f);
      last = std::max(last, pw.last_open.get());
      last_response = std::max(last_response, pw.last_response.get());
      done = done && pw.opening_done_seen.get() && in_use(pw) == 0;
    }
    l.open = l.established > ended ? l.established - ended : 0;
    l.goodput_bytes = l.tx_acked_bytes + l.rx_acked_bytes;
    sample_peak();
    // A connection that opened and ended between two samples was still open
    // once: with any established, at least one was.
    l.peak_open = std::max<uint64_t>({peak_open_.load(std::memory_order_relaxed), l.open, l.established ? 1u : 0u});
    if (first != UINT64_MAX && last > first) l.seconds = static_cast<double>(last - first) / static_cast<double>(tsc_hz_);
    if (first != UINT64_MAX && last_response > first)
      l.response_seconds = static_cast<double>(last_response - first) / static_cast<double>(tsc_hz_);
    l.connect = summarize(&PerWorker::connect_ns);
    l.ttfb = summarize(&PerWorker::ttfb_ns);
    l.transaction = summarize(&PerWorker::transaction_ns);
    v.connections = l.established;
    v.resets = l.errors();
    v.requests = l.requests;
    v.responses = l.responses;
    v.io.tx_bytes = l.tx_bytes;
    v.io.rx_bytes = l.rx_bytes;
    v.seconds = l.seconds;
    v.done = done;
    return v;
  }

 private:
  struct alignas(64) PerWorker {
    // The opener's own:
    std::unique_ptr<Session[]> sessions;
    uint32_t nsessions = 0, concurrency = 0;
    rte_ring* free = nullptr;
    uint64_t quota = 0;
    double interval = 0, next_open = 0;
    uint64_t start = 0, next_scan = 0;
    unsigned probes = 0;
    uint64_t next_target = 0;
    bool opening_done = false;
    // Counters this worker writes (as opener, or as the worker handling a connection's group):
    dispatch::Counter attempted, established, ended_established, completed, requests, responses;
    dispatch::Counter tx_bytes, rx_bytes;
    // From the connections' own counters (TcpConn::counters), as they move:
    dispatch::Counter tx_acked_bytes, rx_acked_bytes, tx_wire_bytes, retransmitted_bytes, retransmits;
    dispatch::Counter refused, reset, timeout, bad_response, local, no_session;
    dispatch::Counter status[6];
    dispatch::Counter first_open, last_open, last_response, opening_done_seen;
    LatencyHistogram connect_ns, ttfb_ns, transaction_ns;
  };

  static void stop_opening(PerWorker& pw) {
    pw.opening_done = true;
    pw.opening_done_seen.set(1);
  }
  // Connections established and not ended, over the workers' own counters.
  uint64_t open_now() const {
    // Established first: ends counted after it only lower the result, so a
    // sample never exceeds what was open at some instant between the reads.
    uint64_t established = 0, ended = 0;
    for (const auto& p : per_worker_) established += p->established.get();
    for (const auto& p : per_worker_) ended += p->ended_established.get();
    return established > ended ? established - ended : 0;
  }

  // Raises the peak to what is open now. A maximum cannot be merged from
  // per-worker counts, and one shared count written per connection would put
  // a cache line every worker writes on the connection path (the cost a
  // generator must not add to what it measures). So the peak is sampled:
  // by worker 0 at each timeout scan (every >= 1 ms) and by every view().
  void sample_peak() const {
    const uint64_t open = open_now();
    uint64_t peak = peak_open_.load(std::memory_order_relaxed);
    while (open > peak && !peak_open_.compare_exchange_weak(peak, open, std::memory_order_relaxed)) {
    }
  }

  uint32_t in_use(const PerWorker& pw) const { return pw.nsessions - rte_ring_count(pw.free); }

  LatencySummary summarize(LatencyHistogram PerWorker::*h) const {
    LatencyMerge m;
    for (const auto& pw : per_worker_) m.add((*pw).*h);
    return m.summary();
  }

  uint64_t ns(uint64_t from, uint64_t to) const {
    return to > from ? (to - from) * 1'000'000'000ull / tsc_hz_ : 0;
  }

  void open_one(unsigned w, PerWorker& pw, uint64_t now) {
    --pw.quota;
    void* p = nullptr;
    if (rte_ring_sc_dequeue(pw.free, &p) != 0) {
      pw.no_session.inc();
      return;
    }
    auto& s = *static_cast<Session*>(p);
    // Connection k of this worker: address k % count, then the next port.
    const uint64_t k = pw.next_target++ * workers_ + w;
    const uint32_t addr = cfg_.addresses.first + static_cast<uint32_t>(k % cfg_.addresses.count);
    const uint16_t port = static_cast<uint16_t>(cfg_.ports.first + (k / cfg_.addresses.count) % cfg_.ports.count);
    s.phase = Phase::connecting;
    s.established = false;
    s.seen = {};
    s.requests_left = cfg_.requests;
    // A probe (opened before the generator's start) counts the duration from its own open.
    s.stop_at = cfg_.duration_ms ? (pw.start ? pw.start : now) + cfg_.duration_ms * tsc_hz_ / 1000 : UINT64_MAX;
    s.t_open = rte_rdtsc();
    s.deadline.store(s.t_open + timeout_, std::memory_order_release);
    pw.attempted.inc();
    if (!pw.first_open.get()) pw.first_open.set(s.t_open);
    pw.last_open.set(s.t_open);
    auto r = tcp_.connect(w, addr, port, handlers_, &s, now, cfg_.source);
    if (!r) {
      pw.local.inc();
      if (!local_warned_.exchange(true)) spdlog::warn("tcp-load {}: {}", cfg_.name, r.error());
      warm_.store(true, std::memory_order_release);
      release(s);
      return;
    }
    s.ref = *r;
  }

  // The opener's timeout scan: a session whose deadline passed is aborted
  // under its connection's lock, if it is still that connection's.
  void expire(unsigned w, PerWorker& pw, uint64_t now) {
    for (uint32_t i = 0; i < pw.nsessions; ++i) {
      Session& s = pw.sessions[i];
      const uint64_t d = s.deadline.load(std::memory_order_acquire);
      if (d == 0 || now <= d) continue;
      tcp_.with(s.ref, w, now, [&](TcpConn& c) {
        const uint64_t again = s.deadline.load(std::memory_order_relaxed);
        if (c.context() != &s || again == 0 || now <= again) return;  // ended, or made progress meanwhile
        fail(s, c, per_worker_[c.worker()]->timeout);
      });
    }
  }

  static void connected_cb(void* ctx, TcpConn& c) {
    auto& s = *static_cast<Session*>(ctx);
    instance(s)->connected(s, c);
  }
  static void pump_cb(void* ctx, TcpConn& c) {
    auto& s = *static_cast<Session*>(ctx);
    instance(s)->pump(s, c);
  }
  static void closed_cb(void* ctx, TcpConn& c, CloseReason r) {
    auto& s = *static_cast<Session*>(ctx);
    instance(s)->closed(s, c, r);
  }
  static TcpLoad* instance(Session& s) { return static_cast<TcpLoad*>(s.owner); }

  void connected(Session& s, TcpConn& c) {
    PerWorker& k = *per_worker_[c.worker()];
    const uint64_t now = rte_rdtsc();
    k.established.inc();
    s.established = true;
    k.connect_ns.add(ns(s.t_open, now));
    account(s, c, k);
    warm_.store(true, std::memory_order_release);
    next_request(s, c, now);
  }

  // Starts the next request, or closes when none is left.
  void next_request(Session& s, TcpConn& c, uint64_t now) {
    PerWorker& k = *per_worker_[c.worker()];
    // After duration_ms no further request starts (as wrk stops at -d): the
    // connection ends after its current transaction, closed as configured.
    // Its first request always runs: a connection opened within the duration
    // is one transaction, not an empty one.
    const bool first = s.requests_left == cfg_.requests;
    if (s.requests_left == 0 || (now >= s.stop_at && !first)) return finish(s, c);
    --s.requests_left;
    s.phase = Phase::request;
    s.t_request = now;
    s.first_byte = false;
    s.send_off = 0;
    s.deadline.store(now + timeout_, std::memory_order_release);
    if (cfg_.transaction == conf::ClientTransaction::raw) {
      s.request_len = cfg_.request_bytes;
      s.read_left = cfg_.response_bytes;
    } else {
      s.request_len = http_request(c, nullptr, 0);
      s.http.reset();
    }
    k.requests.inc();
    send_request(s, c);
    if (raw_complete(s)) response_done(s, c, now);  // nothing to read
  }

  // A raw transaction is done when its request is sent and its response read.
  bool raw_complete(const Session& s) const {
    return cfg_.transaction == conf::ClientTransaction::raw && s.phase == Phase::request && s.read_left == 0 &&
           s.send_off == s.request_len;
  }

  // "GET path HTTP/1.1\r\nHost: host\r\n\r\n" into out (when given); returns its length.
  size_t http_request(TcpConn& c, char* out, size_t room) const {
    char host[32];
    const char* h = cfg_.host.c_str();
    if (cfg_.host.empty()) {
      const socket::Endpoint f = c.foreign();
      if (f.port == 80)
        std::snprintf(host, sizeof host, "%u.%u.%u.%u", f.addr >> 24, f.addr >> 16 & 255, f.addr >> 8 & 255, f.addr & 255);
      else
        std::snprintf(host, sizeof host, "%u.%u.%u.%u:%u", f.addr >> 24, f.addr >> 16 & 255, f.addr >> 8 & 255,
                      f.addr & 255, unsigned{f.port});
      h = host;
    }
    const int n = std::snprintf(out, room, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: ngstack\r\n\r\n",
                                cfg_.path.c_str(), h);
    return n > 0 ? static_cast<size_t>(n) : 0;
  }

  void send_request(Session& s, TcpConn& c) {
    PerWorker& k = *per_worker_[c.worker()];
    if (cfg_.transaction == conf::ClientTransaction::raw) {
      while (s.send_off < s.request_len) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>({s.request_len - s.send_off, c.send_space(), kChunk}));
        if (n == 0) break;
        const size_t sent = c.send(pattern_.at(s.send_off), n);
        k.tx_bytes.add(sent);
        s.send_off += sent;
        if (sent < n) break;
      }
      return;
    }
    if (s.send_off >= s.request_len) return;
    char buf[4096];
    const size_t len = std::min(http_request(c, buf, sizeof buf), sizeof buf - 1);
    const size_t n = std::min<size_t>(len - s.send_off, c.send_space());
    if (n == 0) return;
    const size_t sent = c.send(buf + s.send_off, n);
    k.tx_bytes.add(sent);
    s.send_off += sent;
  }

  void pump(Session& s, TcpConn& c) {
    PerWorker& k = *per_worker_[c.worker()];
    const uint64_t now = rte_rdtsc();
    account(s, c, k);
    if (s.phase == Phase::request) {
      send_request(s, c);
      if (raw_complete(s)) response_done(s, c, now);  // the response came before the request's end went
    }
    uint8_t buf[kChunk];
    while (s.phase == Phase::request) {
      const size_t avail = std::min(c.readable(), kChunk);
      if (avail == 0) break;
      if (!s.first_byte) {
        s.first_byte = true;
        k.ttfb_ns.add(ns(s.t_request, now));
      }
      if (cfg_.transaction == conf::ClientTransaction::raw) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(avail, s.read_left));
        if (n == 0) return fail(s, c, k.bad_response);  // more than the response's size
        c.read(nullptr, n);
        k.rx_bytes.add(n);
        s.read_left -= n;
        if (raw_complete(s)) response_done(s, c, now);
        continue;
      }
      c.peek(buf, avail);
      const size_t took = s.http.consume(buf, avail);
      c.read(nullptr, took);
      k.rx_bytes.add(took);
      if (s.http.state == http::ResponseParser::State::bad) return fail(s, c, k.bad_response);
      if (s.http.state == http::ResponseParser::State::done) {
        k.status[std::min<unsigned>(s.http.status / 100, 5)].inc();
        response_done(s, c, now);
      }
    }
    if (s.phase == Phase::closing) return;
    // Bytes nobody asked for, or the peer's FIN before the transactions ended.
    if (s.phase != Phase::request && c.readable() > 0) return fail(s, c, k.bad_response);
    if (c.eof()) return fail(s, c, k.bad_response);
  }

  void response_done(Session& s, TcpConn& c, uint64_t now) {
    PerWorker& k = *per_worker_[c.worker()];
    k.responses.inc();
    k.last_response.set(now);
    k.transaction_ns.add(ns(s.t_request, now));
    s.phase = Phase::connecting;  // between requests
    next_request(s, c, now);
  }

  // Every transaction done: close as configured; nothing more is heard of it.
  void finish(Session& s, TcpConn& c) {
    PerWorker& k = *per_worker_[c.worker()];
    k.completed.inc();
    s.phase = Phase::closing;
    if (cfg_.close == conf::ClientClose::rst) c.abort();
    else c.close();
    end(s, c);
  }

  // An error of kind `counter`: RST, and the session back.
  void fail(Session& s, TcpConn& c, dispatch::Counter& counter) {
    counter.inc();
    s.phase = Phase::closing;
    c.abort();
    end(s, c);
  }

  void closed(Session& s, TcpConn& c, CloseReason r) {
    PerWorker& k = *per_worker_[c.worker()];
    switch (r) {
      case CloseReason::refused: k.refused.inc(); break;
      case CloseReason::reset: k.reset.inc(); break;
      case CloseReason::timeout: k.timeout.inc(); break;
      case CloseReason::no_memory: k.local.inc(); break;
      case CloseReason::closed: k.bad_response.inc(); break;  // both FINs before the transactions ended
    }
    warm_.store(true, std::memory_order_release);
    end(s, c);
  }

  void end(Session& s, TcpConn& c) {
    PerWorker& k = *per_worker_[c.worker()];
    account(s, c, k);
    if (s.established) k.ended_established.inc();
    release(s);
  }

  // What the connection's counters moved by since the session last looked.
  // After end() the session hears no more of the connection: its FIN, and
  // bytes acknowledged (or sent again) only after that, are not counted.
  static void account(Session& s, TcpConn& c, PerWorker& k) {
    const socket::TcpConnCounters n = c.counters();
    k.tx_acked_bytes.add(n.bytes_acked - s.seen.bytes_acked);
    k.rx_acked_bytes.add(n.bytes_in - s.seen.bytes_in);
    k.tx_wire_bytes.add(n.bytes_out + n.bytes_retrans - s.seen.bytes_out - s.seen.bytes_retrans);
    k.retransmitted_bytes.add(n.bytes_retrans - s.seen.bytes_retrans);
    k.retransmits.add(n.retransmits - s.seen.retransmits);
    s.seen = n;
  }

  void release(Session& s) {
    s.deadline.store(0, std::memory_order_release);
    rte_ring_mp_enqueue(per_worker_[s.opener]->free, &s);
  }

  conf::ClientConfig cfg_;
  tcp::Tcp& tcp_;
  unsigned workers_;
  uint64_t tsc_hz_;
  unsigned index_;
  uint64_t timeout_ = 0, scan_every_ = 0;
  socket::TcpHandlers handlers_;
  std::vector<std::unique_ptr<PerWorker>> per_worker_;
  StreamPattern pattern_;
  std::atomic<bool> warm_{false};
  // The most connections open at once, as sampled (sample_peak).
  alignas(64) mutable std::atomic<uint64_t> peak_open_{0};
  std::atomic<bool> local_warned_{false};
};

}  // namespace

Result<std::unique_ptr<Service>> make_tcp_load(const conf::ClientConfig& c, tcp::Tcp& tcp, unsigned workers,
                                               uint64_t tsc_hz, unsigned index) {
  auto s = std::make_unique<TcpLoad>(c, tcp, workers, tsc_hz, index);
  if (auto st = s->start(); !st) return Error{c.pos.where() + ": tcp-load " + c.name + ": " + st.error()};
  return std::unique_ptr<Service>(std::move(s));
}

}  // namespace ngstack::stack::services
