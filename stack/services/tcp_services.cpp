#include "stack/services/tcp_services.hpp"

#include <spdlog/spdlog.h>

#include <rte_cycles.h>
#include <rte_ring.h>

#include <algorithm>
#include <ctime>
#include <cstring>

#include "stack/services/http.hpp"
#include "stack/services/stream_pattern.hpp"

namespace ngstack::stack::services {

using socket::TcpConn;

namespace {

constexpr size_t kChunk = 16384;  // bytes moved per read/send call

class TcpService final : public CountingService {
 public:
  TcpService(const conf::ServiceConfig& c, tcp::Tcp& tcp, unsigned workers)
      : cfg_(c), tcp_(tcp), counters_(new Counters[workers]), workers_(workers) {
    handlers_.accepted = accepted;
    handlers_.readable = readable;
    handlers_.writable = writable;
    handlers_.closed = closed;
  }

  Status start() {
    const int cc = cfg_.congestion_control.empty() ? -1 : cfg_.congestion_control == "cubic" ? 1 : 0;
    auto l = tcp_.listen(cfg_.address, cfg_.port, handlers_, this, cfg_.backlog, cc);
    if (!l) return Error{l.error()};
    listener_ = *l;
    listener_->set_keepalive_ms(cfg_.keepalive_ms);
    spdlog::info("{}: listening on {}:{}", conf::service_type_name(cfg_.type), conf::format_ipv4(cfg_.address),
                 cfg_.port);
    return Ok{};
  }

  void worker_online(unsigned, uint64_t) override {}
  void poll(unsigned, uint64_t) override {}
  ServiceView live_view() const override {
    ServiceView v;
    v.type = cfg_.type;
    v.address = cfg_.address;
    v.port = cfg_.port;
    v.sockets = 1;
    for (unsigned w = 0; w < workers_; ++w) {
      const Counters& c = counters_[w];
      v.io.rx_bytes += c.rx_bytes.get();
      v.io.tx_bytes += c.tx_bytes.get();
      v.connections += c.accepted.get();
      v.resets += c.resets.get();
    }
    v.done = true;
    return v;
  }

 private:
  struct alignas(64) Counters {
    dispatch::Counter accepted, rx_bytes, tx_bytes, resets;
  };

  static void* accepted(void* ctx, TcpConn& c) {
    auto* s = static_cast<TcpService*>(ctx);
    s->counters_[c.worker()].accepted.inc();
    if (s->cfg_.type == conf::ServiceType::tcp_source) {
      c.set_user(s->cfg_.bytes == 0 ? UINT64_MAX : s->cfg_.bytes);
      s->pump(c);
    }
    return s;
  }
  static void readable(void* ctx, TcpConn& c) { static_cast<TcpService*>(ctx)->pump(c); }
  static void writable(void* ctx, TcpConn& c) { static_cast<TcpService*>(ctx)->pump(c); }
  static void closed(void* ctx, TcpConn& c, socket::CloseReason r) {
    if (r != socket::CloseReason::closed) static_cast<TcpService*>(ctx)->counters_[c.worker()].resets.inc();
  }

  // Moves what can move now; closes when the service's part is done.
  void pump(TcpConn& c) {
    Counters& k = counters_[c.worker()];
    uint8_t buf[kChunk];
    switch (cfg_.type) {
      case conf::ServiceType::tcp_echo:
        for (;;) {
          const size_t n = std::min({c.readable(), c.send_space(), kChunk});
          if (n == 0) break;
          const size_t got = c.read(buf, n);
          const size_t sent = c.send(buf, got);
          k.rx_bytes.add(got);
          k.tx_bytes.add(sent);
        }
        // The peer's FIN and everything before it echoed: our FIN follows the data.
        if (c.eof()) c.close();
        return;
      case conf::ServiceType::tcp_source: {
        k.rx_bytes.add(c.read(nullptr, c.readable()));
        // `bytes: 0` is endless: 2^64 - 1 bytes, counted down all the same.
        uint64_t left = c.user();
        k.tx_bytes.add(pattern_.send(c, left, cfg_.bytes == 0 ? UINT64_MAX : cfg_.bytes));
        c.set_user(left);
        // A half-close by the peer does not stop a counted transfer; an
        // endless one ends with it (RFC 864's chargen ends when the peer closes).
        if (left == 0 || (c.eof() && cfg_.bytes == 0)) c.close();
        return;
      }
      default:  // tcp-discard
        k.rx_bytes.add(c.read(nullptr, c.readable()));
        if (c.eof()) c.close();
        return;
    }
  }

  conf::ServiceConfig cfg_;
  tcp::Tcp& tcp_;
  socket::TcpHandlers handlers_;
  socket::TcpListener* listener_ = nullptr;
  std::unique_ptr<Counters[]> counters_;
  unsigned workers_;
  StreamPattern pattern_;
};

// --- tcp-client: connections that receive (and send `bytes`), for bulk measurements ------------

class TcpClient final : public CountingService {
 public:
  TcpClient(const conf::ServiceConfig& c, tcp::Tcp& tcp, unsigned workers)
      : cfg_(c), tcp_(tcp), per_worker_(workers), workers_(workers) {
    handlers_.connected = connected;
    handlers_.readable = pump_cb;
    handlers_.writable = pump_cb;
    handlers_.closed = closed;
    for (unsigned w = 0; w < workers; ++w) per_worker_[w] = std::make_unique<PerWorker>();
  }

  // Worker w opens its share there: connect() picks ports whose replies land on w.
  void worker_online(unsigned w, uint64_t now) override {
    PerWorker& pw = *per_worker_[w];
    const unsigned n = cfg_.flows / workers_ + (w < cfg_.flows % workers_);
    for (unsigned i = 0; i < n; ++i) {
      auto r = tcp_.connect(w, cfg_.server, cfg_.port, handlers_, this, now, cfg_.address);
      if (!r) {
        spdlog::warn("tcp-client: {}", r.error());
        continue;
      }
      pw.conns.push_back(*r);
    }
    pw.started = now;
  }
  void poll(unsigned w, uint64_t now) override {
    PerWorker& pw = *per_worker_[w];
    if (pw.stopped || cfg_.duration_ms == 0) return;
    // The loop's time may be older than worker_online's.
    if (now <= pw.started || now - pw.started < cfg_.duration_ms * rte_get_tsc_hz() / 1000) return;
    pw.stopped = true;
    for (const auto& r : pw.conns) tcp_.with(r, w, now, [](TcpConn& c) { c.abort(); });
    pw.last = now;
  }
  ServiceView live_view() const override {
    ServiceView v;
    v.type = cfg_.type;
    v.server = cfg_.server;
    v.port = cfg_.port;
    v.sockets = cfg_.flows;
    uint64_t first = UINT64_MAX, last = 0;
    for (const auto& pw : per_worker_) {
      v.io.rx_bytes += pw->rx_bytes.get();
      v.io.tx_bytes += pw->tx_bytes.get();
      v.connections += pw->connected.get();
      v.resets += pw->failed.get();
      if (pw->started) first = std::min(first, pw->started);
      last = std::max(last, pw->last_rx.get());
    }
    v.seconds = last > first && first != UINT64_MAX ? static_cast<double>(last - first) / rte_get_tsc_hz() : 0;
    v.done = true;
    for (const auto& pw : per_worker_) v.done = v.done && pw->stopped;
    return v;
  }

 private:
  struct alignas(64) PerWorker {
    std::vector<socket::ConnRef> conns;
    uint64_t started = 0, last = 0;
    bool stopped = false;
    dispatch::Counter rx_bytes, tx_bytes, connected, failed, last_rx;
  };
  static void connected(void* ctx, TcpConn& c) {
    auto* s = static_cast<TcpClient*>(ctx);
    s->per_worker_[c.worker()]->connected.inc();
    c.set_user(s->cfg_.bytes);
    s->pump(c);
  }
  static void pump_cb(void* ctx, TcpConn& c) { static_cast<TcpClient*>(ctx)->pump(c); }
  static void closed(void* ctx, TcpConn& c, socket::CloseReason r) {
    if (r != socket::CloseReason::closed) static_cast<TcpClient*>(ctx)->per_worker_[c.worker()]->failed.inc();
  }
  void pump(TcpConn& c) {
    PerWorker& pw = *per_worker_[c.worker()];
    const size_t got = c.read(nullptr, c.readable());
    if (got) {
      pw.rx_bytes.add(got);
      pw.last_rx.set(c.now());
    }
    uint64_t left = c.user();
    pw.tx_bytes.add(pattern_.send(c, left, cfg_.bytes));
    c.set_user(left);
    if (c.eof()) c.close();
  }

  conf::ServiceConfig cfg_;
  tcp::Tcp& tcp_;
  socket::TcpHandlers handlers_;
  std::vector<std::unique_ptr<PerWorker>> per_worker_;
  unsigned workers_;
  StreamPattern pattern_;
};

// --- http: an HTTP/1.1 responder over stack/services/http.hpp ---------------------------------

class HttpService final : public CountingService {
 public:
  HttpService(const conf::ServiceConfig& c, tcp::Tcp& tcp, unsigned workers)
      : cfg_(c), tcp_(tcp), counters_(new Counters[workers]), dates_(new Date[workers]), workers_(workers) {
    handlers_.accepted = accepted;
    handlers_.readable = pump_cb;
    handlers_.writable = pump_cb;
    handlers_.closed = closed;
  }
  ~HttpService() override {
    if (free_) rte_ring_free(free_);
  }

  Status start() {
    if (!cfg_.root.empty()) {
      auto t = http::FileTree::load(cfg_.root, 1ull << 30);
      if (!t) return Error{"http: " + t.error()};
      files_ = std::move(*t);
    }
    http::HttpConfig hc;
    hc.body_bytes = cfg_.body_bytes;
    hc.files = files_.get();
    // A pool of sessions, taken at accept and given back at close by
    // whichever worker handles the connection: a lock-free ring.
    const std::string name = "http_" + std::to_string(cfg_.port);
    free_ = rte_ring_create(name.c_str(), rte_align32pow2(cfg_.sessions + 1), SOCKET_ID_ANY, 0);
    if (!free_) return Error{"http: no memory for a ring of " + std::to_string(cfg_.sessions) + " sessions"};
    for (uint32_t i = 0; i < cfg_.sessions; ++i) {
      sessions_.push_back(std::make_unique<Session>(hc));
      rte_ring_enqueue(free_, sessions_.back().get());
    }
    const int cc = cfg_.congestion_control.empty() ? -1 : cfg_.congestion_control == "cubic" ? 1 : 0;
    auto l = tcp_.listen(cfg_.address, cfg_.port, handlers_, this, cfg_.backlog, cc);
    if (!l) return Error{l.error()};
    (*l)->set_keepalive_ms(cfg_.keepalive_ms);
    spdlog::info("http: listening on {}:{} ({}, {} sessions)", conf::format_ipv4(cfg_.address), cfg_.port,
                 files_ ? "files of " + cfg_.root : std::to_string(cfg_.body_bytes) + "-byte bodies", cfg_.sessions);
    return Ok{};
  }

  void worker_online(unsigned, uint64_t) override {}
  void poll(unsigned w, uint64_t now) override {
    // The Date field changes once a second; reading the clock every millisecond is enough.
    Date& d = dates_[w];
    if (now - d.checked < rte_get_tsc_hz() / 1000) return;
    d.checked = now;
    d.date.update(std::time(nullptr));
  }
  ServiceView live_view() const override {
    ServiceView v;
    v.type = cfg_.type;
    v.address = cfg_.address;
    v.port = cfg_.port;
    v.sockets = 1;
    for (unsigned w = 0; w < workers_; ++w) {
      const Counters& c = counters_[w];
      v.io.rx_bytes += c.rx_bytes.get();
      v.io.tx_bytes += c.tx_bytes.get();
      v.connections += c.accepted.get();
      v.resets += c.resets.get();
      v.requests += c.requests.get();
      v.responses += c.responses.get();
      for (int k = 0; k < 6; ++k) v.http_status[k] += c.status[k].get();
      v.lost += c.no_session.get();
    }
    v.done = true;
    return v;
  }

 private:
  struct Session {
    explicit Session(const http::HttpConfig& c) : http(c) {}
    http::HttpSession http;
    bool eof_seen = false;
    bool shut = false;
    http::HttpStats counted;  // what was added to the service's counters already
  };
  struct alignas(64) Counters {
    dispatch::Counter accepted, rx_bytes, tx_bytes, resets, requests, responses, no_session;
    dispatch::Counter status[6];
  };
  struct alignas(64) Date {
    http::HttpDate date;
    uint64_t checked = 0;
  };

  static void* accepted(void* ctx, TcpConn& c) {
    auto* s = static_cast<HttpService*>(ctx);
    void* p = nullptr;
    if (rte_ring_dequeue(s->free_, &p) != 0) {
      s->counters_[c.worker()].no_session.inc();
      return nullptr;  // refused: RST
    }
    auto* ss = static_cast<Session*>(p);
    ss->http.reset();
    ss->eof_seen = ss->shut = false;
    ss->counted = {};
    s->counters_[c.worker()].accepted.inc();
    c.set_user(reinterpret_cast<uint64_t>(s));
    return ss;
  }
  static void pump_cb(void* ctx, TcpConn& c) {
    reinterpret_cast<HttpService*>(c.user())->pump(*static_cast<Session*>(ctx), c);
  }
  static void closed(void* ctx, TcpConn& c, socket::CloseReason r) {
    auto* s = reinterpret_cast<HttpService*>(c.user());
    if (r != socket::CloseReason::closed) s->counters_[c.worker()].resets.inc();
    s->release(*static_cast<Session*>(ctx), c.worker());
  }

  void release(Session& ss, unsigned w) {
    account(ss, w);
    rte_ring_enqueue(free_, &ss);
  }
  void account(Session& ss, unsigned w) {
    Counters& k = counters_[w];
    const http::HttpStats& st = ss.http.stats();
    k.requests.add(st.requests - ss.counted.requests);
    k.responses.add(st.responses_total() - ss.counted.responses_total());
    for (int i = 0; i < 6; ++i) k.status[i].add(st.responses[i] - ss.counted.responses[i]);
    k.rx_bytes.add(st.bytes_in - ss.counted.bytes_in);
    k.tx_bytes.add(st.bytes_out - ss.counted.bytes_out);
    ss.counted = st;
  }

  void pump(Session& ss, TcpConn& c) {
    uint8_t buf[kChunk];
    const unsigned w = c.worker();
    ss.http.set_date(&dates_[w].date);
    for (;;) {
      bool moved = false;
      // Requests in: what the session takes is read, the rest stays in the window.
      while (ss.http.want_read() || ss.shut) {
        const size_t avail = std::min(c.readable(), kChunk);
        if (avail == 0) break;
        c.peek(buf, avail);
        const size_t took = ss.http.consume(buf, avail);
        c.read(nullptr, took);
        moved |= took > 0;
        if (took < avail) break;
      }
      if (c.eof() && !ss.eof_seen) {
        ss.eof_seen = true;
        ss.http.consume_eof();
      }
      // Responses out, as the send buffer has room.
      while (ss.http.pending()) {
        const size_t room = std::min(c.send_space(), kChunk);
        if (room == 0) break;
        const size_t k = ss.http.produce(buf, room);
        if (k == 0) break;
        c.send(buf, k);
        moved = true;
      }
      if (!moved) break;
    }
    account(ss, w);
    // RFC 9112 §9.6: after the last response, FIN, and read until the peer closes.
    if (ss.http.finished() && !ss.shut) {
      ss.shut = true;
      c.shutdown();
    }
    if (ss.eof_seen && (ss.http.finished() || !ss.http.pending())) {
      c.close();  // nothing unread: the session is discarding
      release(ss, w);
    }
  }

  conf::ServiceConfig cfg_;
  tcp::Tcp& tcp_;
  socket::TcpHandlers handlers_;
  std::shared_ptr<const http::FileTree> files_;
  std::vector<std::unique_ptr<Session>> sessions_;
  rte_ring* free_ = nullptr;
  std::unique_ptr<Counters[]> counters_;
  std::unique_ptr<Date[]> dates_;
  unsigned workers_;
};

}  // namespace

Result<std::unique_ptr<Service>> make_tcp_service(const conf::ServiceConfig& c, tcp::Tcp& tcp, unsigned workers) {
  if (c.type == conf::ServiceType::tcp_client) return std::unique_ptr<Service>(std::make_unique<TcpClient>(c, tcp, workers));
  if (c.type == conf::ServiceType::http) {
    auto s = std::make_unique<HttpService>(c, tcp, workers);
    if (auto st = s->start(); !st) return Error{c.pos.where() + ": " + st.error()};
    return std::unique_ptr<Service>(std::move(s));
  }
  auto s = std::make_unique<TcpService>(c, tcp, workers);
  if (auto st = s->start(); !st) return Error{c.pos.where() + ": " + st.error()};
  return std::unique_ptr<Service>(std::move(s));
}

}  // namespace ngstack::stack::services
