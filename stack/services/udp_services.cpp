#include "stack/services/udp_services.hpp"

#include "stack/services/tcp_load.hpp"
#include "stack/services/tcp_services.hpp"

#include <rte_cycles.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

namespace ngstack::stack::services {

using socket::Datagram;
using socket::SendResult;
using socket::UdpSocket;

namespace {

std::string addr_str(uint32_t a) { return conf::format_ipv4(a); }

// --- udp-echo and udp-discard: one bound socket ----------------------------------

class BoundService final : public Service {
 public:
  BoundService(const conf::ServiceConfig& c, UdpSocket* so) : cfg_(c), so_(so) {}
  static void echo(void*, UdpSocket& so, const Datagram& d) { so.reply(d, d.data, d.len); }
  void worker_online(unsigned, uint64_t) override {}
  void poll(unsigned, uint64_t) override {}
  ServiceView view() const override {
    if (!so_) return final_;
    ServiceView v;
    v.type = cfg_.type;
    v.address = cfg_.address;
    v.port = cfg_.port;
    v.sockets = 1;
    v.io = so_->stats();
    return v;
  }
  void shutdown() override {
    if (!so_) return;
    final_ = view();
    so_->close();
    so_ = nullptr;
  }

 private:
  conf::ServiceConfig cfg_;
  UdpSocket* so_;
  ServiceView final_;
};

// --- udp-client -----------------------------------------------------------------------

// The request's payload; the server echoes it.
struct Request {
  uint64_t seq;
  uint64_t sent_tsc;
};

class Client final : public Service {
 public:
  Client(const conf::ServiceConfig& c, udp::Udp& udp, unsigned workers, uint64_t tsc_hz)
      : cfg_(c), udp_(udp), tsc_hz_(tsc_hz), per_worker_(workers) {
    for (unsigned w = 0; w < workers; ++w) {
      auto& pw = per_worker_[w];
      pw = std::make_unique<PerWorker>();
      // Worker w's share of the flows, requests and rate.
      pw->nflows = cfg_.flows / workers + (w < cfg_.flows % workers);
      pw->quota = cfg_.requests == 0 ? UINT64_MAX : cfg_.requests / workers + (w < cfg_.requests % workers);
      pw->interval = cfg_.rate > 0 ? static_cast<double>(tsc_hz) * workers / cfg_.rate : 0;
    }
    timeout_ = static_cast<uint64_t>(cfg_.timeout_ms) * tsc_hz / 1000;
    payload_.assign(std::size_t{cfg_.payload} * workers, 0);  // one request being built per worker
  }

  // Opens worker w's flows there: connect() picks ports whose replies land on w.
  void worker_online(unsigned w, uint64_t now) override {
    PerWorker& pw = *per_worker_[w];
    for (unsigned i = 0; i < pw.nflows; ++i) {
      auto f = std::make_unique<Flow>();
      f->slots.resize(cfg_.window);
      UdpSocket* so = udp_.open(on_response, on_error, f.get());
      f->client = this;
      if (auto st = so->connect(w, cfg_.server, cfg_.port, cfg_.address); !st) {
        spdlog::error("udp-client: flow {} of worker {}: {}", i, w, st.error());
        so->close();
        continue;
      }
      f->so = so;
      f->group = so->group();
      pw.flows.push_back(std::move(f));
    }
    // One lock acquisition covers a run of flows in one group.
    std::sort(pw.flows.begin(), pw.flows.end(), [](const auto& a, const auto& b) { return a->group < b->group; });
    pw.start = now;
    pw.next_send = now;
    pw.next_expiry = now;
    pw.ready.store(true, std::memory_order_release);
  }

  void poll(unsigned w, uint64_t now) override {
    PerWorker& pw = *per_worker_[w];
    if (pw.flows.empty()) return;
    const bool expire = now >= pw.next_expiry;
    if (expire) pw.next_expiry = now + tsc_hz_ / 1000;
    // `now` is the loop's TSC, which may lag stamps taken since (worker_online, on_response).
    if (cfg_.duration_ms && now > pw.start && now - pw.start >= cfg_.duration_ms * tsc_hz_ / 1000) pw.stopped = true;
    if (pw.stopped) pw.done.store(true, std::memory_order_relaxed);
    // Until a first response arrived, each worker probes with one request:
    // the server's address may still be resolving, and ARP holds only a few.
    if (!warm_.load(std::memory_order_relaxed)) {
      if (!expire) return;
      Flow& f = *pw.flows.front();
      pcb::GroupGuard g = f.so->lock();
      expire_flow(w, f, now);
      if (f.outstanding == 0 && !pw.stopped) send_request(w, f, now);
      return;
    }
    // Rate mode: the requests due since the last poll (at most 64; a stall
    // is not caught up). Closed loop: each response sends the next request
    // (on_response); the walk every millisecond expires lost requests and
    // fills the windows they leave (and, the first time, all windows).
    uint64_t budget = UINT64_MAX;
    if (pw.interval > 0) {
      budget = 0;
      const auto step = static_cast<uint64_t>(pw.interval);
      while (pw.next_send <= now && budget < 64) pw.next_send += step, ++budget;
      if (pw.next_send + 64 * step < now) pw.next_send = now;
      if (budget == 0 && !expire) return;
    } else if (!expire) {
      return;
    }
    const std::size_t n = pw.flows.size();
    for (std::size_t i = 0; i < n;) {
      Flow& first = *pw.flows[(pw.cursor + i) % n];
      const uint32_t group = first.group;
      pcb::GroupGuard g = first.so->lock();
      for (; i < n && pw.flows[(pw.cursor + i) % n]->group == group; ++i) {
        Flow& f = *pw.flows[(pw.cursor + i) % n];
        if (expire) expire_flow(w, f, now);
        while (!pw.stopped && budget > 0 && f.outstanding < cfg_.window) {
          if (!send_request(w, f, now)) break;
          if (budget != UINT64_MAX) --budget;
        }
      }
    }
    // Rate mode: the next poll starts where the budget ran out.
    if (pw.interval > 0) pw.cursor = (pw.cursor + 1) % n;
  }

  ServiceView view() const override {
    if (closed_) return final_;
    ServiceView v;
    v.type = cfg_.type;
    v.address = cfg_.address;
    v.port = cfg_.port;
    v.server = cfg_.server;
    uint64_t first = UINT64_MAX, last = 0;
    bool done = true;
    LatencyMerge rtt;
    for (const auto& pwp : per_worker_) {
      const PerWorker& pw = *pwp;
      if (!pw.ready.load(std::memory_order_acquire)) {  // still opening its flows
        done = false;
        continue;
      }
      v.sockets += static_cast<unsigned>(pw.flows.size());
      for (const auto& f : pw.flows) v.io += f->so->stats();
      v.requests += pw.requests.get();
      v.responses += pw.responses.get();
      v.lost += pw.lost.get();
      v.late += pw.late.get();
      if (pw.requests.get()) first = std::min(first, pw.first_tsc.load(std::memory_order_relaxed));
      last = std::max(last, pw.last_response_tsc.get());
      done = done && pw.done.load(std::memory_order_relaxed);
      rtt.add(pw.rtt);
    }
    v.done = done && v.requests == v.responses + v.lost;
    if (first != UINT64_MAX && last > first) {
      v.seconds = static_cast<double>(last - first) / static_cast<double>(tsc_hz_);
      v.transactions_per_s = static_cast<double>(v.responses) / v.seconds;
    }
    v.latency = rtt.summary();
    return v;
  }

  void shutdown() override {
    if (closed_) return;
    final_ = view();
    closed_ = true;
    for (auto& pw : per_worker_)
      for (auto& f : pw->flows) f->so->close();
  }

 private:
  struct Slot {
    uint64_t seq = 0;
    uint64_t sent_tsc = 0;
    bool outstanding = false;
  };
  // Under the group lock of its socket.
  struct Flow {
    Client* client = nullptr;
    UdpSocket* so = nullptr;
    std::vector<Slot> slots;  // seq % window
    uint64_t next_seq = 0;
    unsigned outstanding = 0;
    uint32_t group = 0;
  };
  // Written by its worker only (as sender, and as the handler of responses);
  // read by the stats thread.
  struct alignas(64) PerWorker {
    std::vector<std::unique_ptr<Flow>> flows;
    unsigned nflows = 0;
    uint64_t quota = 0, sent = 0;
    double interval = 0;
    uint64_t start = 0, next_send = 0, next_expiry = 0;
    std::size_t cursor = 0;
    bool stopped = false;
    std::atomic<bool> ready{false};  // flows open
    std::atomic<bool> done{false};   // stopped
    std::atomic<uint64_t> first_tsc{0};
    dispatch::Counter requests, responses, lost, late, last_response_tsc;
    LatencyHistogram rtt;
  };

  // Under f's group lock, on worker w.
  bool send_request(unsigned w, Flow& f, uint64_t now) {
    PerWorker& pw = *per_worker_[w];
    if (pw.stopped || pw.sent >= pw.quota) {
      pw.stopped = true;
      pw.done.store(true, std::memory_order_relaxed);
      return false;
    }
    Slot& s = f.slots[f.next_seq % cfg_.window];
    if (s.outstanding) return false;
    const Request r{f.next_seq, now};
    std::memcpy(payload_scratch(w), &r, sizeof r);
    if (f.so->send(w, payload_scratch(w), cfg_.payload, now) != SendResult::ok) return false;  // the socket counted why
    if (pw.requests.get() == 0) pw.first_tsc.store(now, std::memory_order_relaxed);
    s = {f.next_seq, now, true};
    ++f.next_seq;
    ++f.outstanding;
    ++pw.sent;
    pw.requests.inc();
    return true;
  }

  void expire_flow(unsigned w, Flow& f, uint64_t now) {
    PerWorker& pw = *per_worker_[w];
    for (Slot& s : f.slots)
      if (s.outstanding && now > s.sent_tsc && now - s.sent_tsc > timeout_) {
        s.outstanding = false;
        --f.outstanding;
        pw.lost.inc();
      }
  }

  // With the flow's group lock held, on the worker that handles the response.
  static void on_response(void* ctx, UdpSocket&, const Datagram& d) {
    auto& f = *static_cast<Flow*>(ctx);
    Client& c = *f.client;
    PerWorker& pw = *c.per_worker_[d.worker];
    Request r;
    if (d.len < sizeof r) return pw.late.inc();
    std::memcpy(&r, d.data, sizeof r);
    Slot& s = f.slots[r.seq % c.cfg_.window];
    if (!s.outstanding || s.seq != r.seq) return pw.late.inc();
    s.outstanding = false;
    --f.outstanding;
    const uint64_t now = rte_rdtsc();
    // The stamp kept in the slot, not the payload's: a peer cannot skew it.
    pw.rtt.add((now > s.sent_tsc ? now - s.sent_tsc : 0) * 1000000000ull / c.tsc_hz_);
    pw.responses.inc();
    pw.last_response_tsc.set(now);
    if (!c.warm_.load(std::memory_order_relaxed)) c.warm_.store(true, std::memory_order_relaxed);
    // Closed loop: the next request at once, from the worker handling this
    // response (under direct dispatch not always the opener: the request
    // counts against the handler's share).
    if (c.cfg_.rate == 0) c.send_request(d.worker, f, now);
  }

  static void on_error(void* ctx, UdpSocket&, const socket::IcmpNotice&) {
    (void)ctx;  // counted by the socket (icmp_errors); the request times out
  }

  uint8_t* payload_scratch(unsigned w) { return payload_.data() + std::size_t{cfg_.payload} * w; }

  conf::ServiceConfig cfg_;
  udp::Udp& udp_;
  uint64_t tsc_hz_;
  uint64_t timeout_ = 0;
  std::vector<std::unique_ptr<PerWorker>> per_worker_;
  std::vector<uint8_t> payload_;
  std::atomic<bool> warm_{false};
  bool closed_ = false;
  ServiceView final_;
};

}  // namespace

Result<std::unique_ptr<Services>> Services::create(const conf::Config& cfg, udp::Udp& udp, tcp::Tcp& tcp,
                                                   unsigned workers, uint64_t tsc_hz) {
  auto s = std::make_unique<Services>();
  for (const auto& sc : cfg.services) {
    switch (sc.type) {
      case conf::ServiceType::udp_echo:
      case conf::ServiceType::udp_discard: {
        UdpSocket* so = udp.open(sc.type == conf::ServiceType::udp_echo ? BoundService::echo : nullptr, nullptr, nullptr);
        if (auto st = so->bind(sc.address, sc.port); !st) {
          so->close();
          return Error{sc.pos.where() + ": " + st.error()};
        }
        spdlog::info("{}: bound to {}:{}", conf::service_type_name(sc.type), addr_str(sc.address), sc.port);
        s->list_.push_back(std::make_unique<BoundService>(sc, so));
        break;
      }
      case conf::ServiceType::udp_client:
        s->list_.push_back(std::make_unique<Client>(sc, udp, workers, tsc_hz));
        break;
      case conf::ServiceType::tcp_echo:
      case conf::ServiceType::tcp_discard:
      case conf::ServiceType::tcp_source:
      case conf::ServiceType::tcp_client:
      case conf::ServiceType::http: {
        auto t = make_tcp_service(sc, tcp, workers);
        if (!t) return Error{t.error()};
        s->list_.push_back(std::move(*t));
        break;
      }
      case conf::ServiceType::tcp_load:
        break;  // `clients:`, below
    }
  }
  for (std::size_t i = 0; i < cfg.clients.generators.size(); ++i) {
    auto t = make_tcp_load(cfg.clients.generators[i], tcp, workers, tsc_hz, static_cast<unsigned>(i));
    if (!t) return Error{t.error()};
    s->list_.push_back(std::move(*t));
  }
  return s;
}

std::vector<ServiceView> Services::views() const {
  std::vector<ServiceView> v;
  for (const auto& s : list_) v.push_back(s->view());
  return v;
}

void Services::shutdown() {
  for (auto& s : list_) s->shutdown();
}

}  // namespace ngstack::stack::services
