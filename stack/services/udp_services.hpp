// The built-in UDP services of `services:` (host and router modes), each
// written on the socket API (stack/socket) as a user's service would be:
//
//   udp-echo     sends every datagram back to its sender, from the address
//                it was sent to (RFC 862)
//   udp-discard  receives and counts (RFC 863)
//   udp-client   a request/response client for measurements: `flows`
//                connected sockets spread over the workers, each keeping
//                `window` requests outstanding (closed loop) or sending at
//                `rate` in all; the payload carries a sequence number and the
//                TSC at sending, so each response gives a round-trip time (a
//                log-linear histogram per worker, about 3% wide buckets).
//                A request unanswered after `timeout_ms` is lost; a response
//                to a request already counted lost is late.
//
// The client's per-flow state belongs to the flow's connection group: its
// receive callback runs with the group's lock held, and poll() takes the
// same lock (once per run of flows in one group) to send and to expire
// requests, so whichever worker handles a response (the opener under
// deferred dispatch, the receiving worker under direct) sees the flow
// consistent.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "conf/config.hpp"
#include "conf/result.hpp"
#include "stack/socket/socket.hpp"
#include "stack/traffic/stamp.hpp"
#include "stack/udp/udp.hpp"

namespace ngstack::stack::tcp {
class Tcp;
}

namespace ngstack::stack::services {

// Round-trip times in nanoseconds, in traffic mode's log-linear buckets
// (traffic::LatencyHistogram: 32 per power of two), with counters a stats
// reader may read while the worker writes them.
class LatencyHistogram {
 public:
  using Buckets = traffic::LatencyHistogram;
  static constexpr unsigned kBuckets = Buckets::kBuckets;
  void add(uint64_t ns) {
    counts_[Buckets::index(ns)].inc();
    sum_.add(ns);
    min_.raise_to(~ns);  // stored inverted: raise_to keeps the largest
    max_.raise_to(ns);
  }
  uint64_t count(unsigned i) const { return counts_[i].get(); }
  uint64_t sum() const { return sum_.get(); }
  uint64_t min() const { return ~min_.get(); }
  uint64_t max() const { return max_.get(); }

 private:
  dispatch::Counter counts_[kBuckets];
  dispatch::Counter sum_, min_, max_;
};

struct LatencySummary {
  uint64_t samples = 0;
  double min_us = 0, mean_us = 0, p50_us = 0, p90_us = 0, p99_us = 0, p999_us = 0, max_us = 0;
};

// Several workers' histograms merged into one summary; a percentile is its
// bucket's upper bound, within the observed range (as traffic mode says it).
class LatencyMerge {
 public:
  void add(const LatencyHistogram& h) {
    uint64_t n = 0;
    for (unsigned i = 0; i < LatencyHistogram::kBuckets; ++i) {
      const uint64_t c = h.count(i);
      counts_[i] += c;
      n += c;
    }
    if (n == 0) return;
    samples_ += n;
    sum_ += h.sum();
    min_ = std::min(min_, h.min());
    max_ = std::max(max_, h.max());
  }
  LatencySummary summary() const {
    LatencySummary l;
    l.samples = samples_;
    if (samples_ == 0) return l;
    l.min_us = static_cast<double>(min_) / 1000.0;
    l.max_us = static_cast<double>(max_) / 1000.0;
    l.mean_us = static_cast<double>(sum_) / static_cast<double>(samples_) / 1000.0;
    l.p50_us = percentile(0.50);
    l.p90_us = percentile(0.90);
    l.p99_us = percentile(0.99);
    l.p999_us = percentile(0.999);
    return l;
  }

 private:
  double percentile(double q) const {
    const uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(samples_ - 1)) + 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < LatencyHistogram::kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank)
        return static_cast<double>(std::clamp(LatencyHistogram::Buckets::upper(i), min_, max_)) / 1000.0;
    }
    return static_cast<double>(max_) / 1000.0;
  }
  uint64_t counts_[LatencyHistogram::kBuckets] = {};
  uint64_t samples_ = 0, sum_ = 0, min_ = UINT64_MAX, max_ = 0;
};

// What a `clients:` generator (tcp-load, stack/services/tcp_load.hpp) says of itself.
struct LoadView {
  std::string name;
  uint32_t addresses = 1, ports = 1;  // how many targets: address and port ranges' sizes
  double rate = 0;                    // the configured rate (0: concurrency)
  uint32_t concurrency = 0;
  uint64_t attempted = 0;    // connect() called
  uint64_t established = 0;  // `connected`
  uint64_t completed = 0;    // every request answered, then closed as configured
  uint64_t open = 0;         // established and not ended yet (concurrent connections)
  uint64_t peak_open = 0;    // the most connections established at once
  uint64_t requests = 0;     // requests sent
  uint64_t responses = 0;    // responses read whole
  uint64_t tx_bytes = 0;     // L7 bytes handed to the socket
  uint64_t rx_bytes = 0;     // L7 bytes read
  // TCP's view, from the connections' own counters (stack/tcp/tcb.hpp), SYN and FIN not counted:
  uint64_t tx_acked_bytes = 0;       // our bytes the peers acknowledged
  uint64_t rx_acked_bytes = 0;       // the peers' bytes received in order (so acknowledged by us)
  uint64_t goodput_bytes = 0;        // tx_acked_bytes + rx_acked_bytes
  uint64_t tx_wire_bytes = 0;        // payload bytes sent, retransmissions included
  uint64_t retransmitted_bytes = 0;  // of them, sent again
  uint64_t retransmits = 0;          // segments sent again, SYNs included
  // Errors by kind: one per connection that did not complete.
  uint64_t refused = 0, reset = 0, timeout = 0, bad_response = 0;
  uint64_t local = 0;       // connect() failed here (no PCB, no port, no route) or the stack dropped it (no memory)
  uint64_t no_session = 0;  // rate mode: a connection due found every session (max_open) busy, and was skipped
  uint64_t http_status[6] = {};  // http: responses by status class
  double seconds = 0;           // the first connection opened to the last one: connections/s = attempted / seconds
  double response_seconds = 0;  // the first connection opened to the last response: responses/s over it
  LatencySummary connect, ttfb, transaction;
  uint64_t errors() const { return refused + reset + timeout + bad_response + local + no_session; }
  // Retransmitted of all payload bytes sent: 0 on a clean path.
  double retransmission_ratio() const {
    return tx_wire_bytes ? static_cast<double>(retransmitted_bytes) / static_cast<double>(tx_wire_bytes) : 0.0;
  }
  // Over response_seconds (the first connection opened to the last response).
  double goodput_bytes_per_s() const {
    return response_seconds > 0 ? static_cast<double>(goodput_bytes) / response_seconds : 0.0;
  }
};

// What `show services`, the summary and the JSON say of one service.
struct ServiceView {
  conf::ServiceType type = conf::ServiceType::udp_echo;
  uint32_t address = 0;
  uint16_t port = 0;
  uint32_t server = 0;  // udp-client
  unsigned sockets = 0;
  socket::SocketStats io;
  // TCP services:
  uint64_t connections = 0;  // accepted
  uint64_t resets = 0;       // ended by a reset or a timeout
  uint64_t http_status[6] = {};  // http: responses by status class, [2] 2xx .. [5] 5xx
  // udp-client only:
  uint64_t requests = 0, responses = 0, lost = 0, late = 0;
  double seconds = 0;  // first request to last response
  double transactions_per_s = 0;
  bool done = false;  // sent all it was to send, nothing outstanding
  LatencySummary latency;
  LoadView load;  // tcp-load only
};

class Service {
 public:
  virtual ~Service() = default;
  virtual void worker_online(unsigned w, uint64_t now) = 0;
  virtual void poll(unsigned w, uint64_t now) = 0;
  virtual ServiceView view() const = 0;
  // After the workers stopped: keeps the view, closes the sockets.
  virtual void shutdown() = 0;
};

// A service whose view is read from its counters, kept as they were at
// shutdown (the TCP services: Tcp::shutdown then frees their connections).
class CountingService : public Service {
 public:
  ServiceView view() const final { return stopped_ ? final_ : live_view(); }
  void shutdown() override {
    if (stopped_) return;
    final_ = live_view();
    stopped_ = true;
  }

 protected:
  virtual ServiceView live_view() const = 0;

 private:
  bool stopped_ = false;
  ServiceView final_;
};

class Services {
 public:
  static Result<std::unique_ptr<Services>> create(const conf::Config& cfg, udp::Udp& udp, tcp::Tcp& tcp,
                                                  unsigned workers, uint64_t tsc_hz);
  void worker_online(unsigned w, uint64_t now) {
    for (auto& s : list_) s->worker_online(w, now);
  }
  void poll(unsigned w, uint64_t now) {
    for (auto& s : list_) s->poll(w, now);
  }
  std::vector<ServiceView> views() const;
  void shutdown();
  bool empty() const { return list_.empty(); }

 private:
  std::vector<std::unique_ptr<Service>> list_;
};

}  // namespace ngstack::stack::services
