#include "stack/services/tcp_services.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

namespace ngstack::stack::services {

using socket::TcpConn;

namespace {

constexpr size_t kChunk = 16384;  // bytes moved per read/send call

class TcpService final : public Service {
 public:
  TcpService(const conf::ServiceConfig& c, tcp::Tcp& tcp, unsigned workers)
      : cfg_(c), tcp_(tcp), counters_(new Counters[workers]), workers_(workers) {
    handlers_.accepted = accepted;
    handlers_.readable = readable;
    handlers_.writable = writable;
    handlers_.closed = closed;
    // A pattern for tcp-source: "ngstack\n" repeated.
    for (size_t i = 0; i < sizeof(pattern_); ++i) pattern_[i] = "ngstack\n"[i % 8];
  }

  Status start() {
    const int cc = cfg_.congestion_control.empty() ? -1 : cfg_.congestion_control == "cubic" ? 1 : 0;
    auto l = tcp_.listen(cfg_.address, cfg_.port, handlers_, this, cfg_.backlog, cc);
    if (!l) return Error{l.error()};
    listener_ = *l;
    spdlog::info("{}: listening on {}:{}", conf::service_type_name(cfg_.type), conf::format_ipv4(cfg_.address),
                 cfg_.port);
    return Ok{};
  }

  void worker_online(unsigned, uint64_t) override {}
  void poll(unsigned, uint64_t) override {}
  ServiceView view() const override {
    if (stopped_) return final_;
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
  void shutdown() override {
    if (stopped_) return;
    final_ = view();
    stopped_ = true;
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
        uint64_t left = c.user();
        while (left > 0) {
          const size_t n = static_cast<size_t>(std::min<uint64_t>({left, c.send_space(), sizeof(pattern_)}));
          if (n == 0) break;
          const size_t sent = c.send(pattern_, n);
          k.tx_bytes.add(sent);
          if (left != UINT64_MAX) left -= sent;
        }
        c.set_user(left);
        // A half-close by the peer does not stop a counted transfer; an
        // endless one ends with it (RFC 864's chargen ends when the peer closes).
        if (left == 0 || (c.eof() && left == UINT64_MAX)) c.close();
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
  uint8_t pattern_[kChunk];
  bool stopped_ = false;
  ServiceView final_;
};

}  // namespace

Result<std::unique_ptr<Service>> make_tcp_service(const conf::ServiceConfig& c, tcp::Tcp& tcp, unsigned workers) {
  auto s = std::make_unique<TcpService>(c, tcp, workers);
  if (auto st = s->start(); !st) return Error{c.pos.where() + ": " + st.error()};
  return std::unique_ptr<Service>(std::move(s));
}

}  // namespace ngstack::stack::services
