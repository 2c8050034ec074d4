// The Prometheus endpoint: GET /metrics on `metrics.listen`, served by one
// control-plane thread (cpp-httplib, a pool of one) that runs on the main
// lcore's CPU, never on a worker's. Each scrape takes the telemetry lock
// (stats.hpp: with_registered_runtime), renders a fresh Snapshot
// (metrics.hpp) and releases it; workers are never stopped or touched.
// stop() closes the socket and joins the thread; run() calls it once the
// workers have stopped, before the stack frees what it holds and long before
// teardown.
#pragma once

#include <memory>
#include <thread>

#include "conf/config.hpp"
#include "conf/result.hpp"

namespace httplib {
class Server;
}

namespace ngstack::app {

class MetricsServer {
 public:
  MetricsServer();
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Binds and starts serving; an address that cannot be bound (in use, not
  // of this host) is an error naming metrics.listen.
  Status start(const conf::MetricsConfig& mc);
  void stop();

 private:
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

}  // namespace ngstack::app
