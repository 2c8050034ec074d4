#include "app/metrics_server.hpp"

#include <httplib.h>
#include <pthread.h>
#include <rte_mempool.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "app/metrics.hpp"
#include "app/runtime.hpp"
#include "app/stats.hpp"

namespace ngstack::app {

MetricsServer::MetricsServer() = default;

MetricsServer::~MetricsServer() { stop(); }

Status MetricsServer::start(const conf::MetricsConfig& mc) {
  if (!mc.listen) return Ok{};
  const conf::ListenAddr& addr = *mc.listen;
  server_ = std::make_unique<httplib::Server>();
  // Scrapes are rare and short: one thread is plenty.
  server_->new_task_queue = [] { return new httplib::ThreadPool(1); };
  // stop() waits for the thread, which waits for its connection: one request
  // per connection and a short read timeout keep a scraper's idle or
  // kept-alive connection from delaying ngstack's exit by httplib's default 5 s.
  server_->set_keep_alive_max_count(1);
  server_->set_keep_alive_timeout(1);
  server_->set_read_timeout(1, 0);
  server_->Get("/metrics", [](const httplib::Request&, httplib::Response& res) {
    std::string body;
    const bool live = with_registered_runtime([&](const Runtime& rt) {
      MetricsContext ctx;
      ctx.mode = conf::mode_name(rt.cfg.mode);
      ctx.tsc_hz = rt.tsc_hz;
      if (rt.pool) ctx.mempools.push_back({rt.pool->name, rt.pool->size, rte_mempool_avail_count(rt.pool)});
      body = render_metrics(take_snapshot(rt), ctx);
    });
    if (!live) {
      res.status = 503;
      res.set_content("ngstack is not running\n", "text/plain");
      return;
    }
    res.set_content(body, kMetricsContentType);
  });
  server_->Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ngstack: metrics in the Prometheus text format at /metrics\n", "text/plain");
  });
  errno = 0;
  if (!server_->bind_to_port(addr.host.c_str(), addr.port)) {
    const int err = errno;
    server_.reset();
    return Error{mc.listen_pos.where() + ": cannot listen on " + addr.str() + ": " +
                 (err ? std::strerror(err) : "bind failed") +
                 (err == EADDRINUSE ? " (another process listens there; pick another port)" : "")};
  }
  thread_ = std::thread([s = server_.get()] { s->listen_after_bind(); });
  pthread_setname_np(thread_.native_handle(), "ngs-metrics");
  // stop() before the thread marked the server running would be missed.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!server_->is_running() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  spdlog::info("metrics: Prometheus endpoint at http://{}/metrics", addr.str());
  return Ok{};
}

void MetricsServer::stop() {
  if (!server_) return;
  server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
}

}  // namespace ngstack::app
