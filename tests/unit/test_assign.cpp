// Automatic assignment of rx queues to workers.
#include <gtest/gtest.h>

#include "conf/config.hpp"

using namespace ngstack::conf;

namespace {
Config topology(std::vector<uint16_t> queues_per_port, std::size_t workers) {
  Config c;
  for (std::size_t i = 0; i < queues_per_port.size(); ++i) {
    PortConfig p;
    p.name = std::string("p").append(std::to_string(i));
    p.rx_queues = queues_per_port[i];
    c.ports.push_back(p);
  }
  for (std::size_t w = 0; w < workers; ++w) c.workers.list.push_back(WorkerConfig{static_cast<unsigned>(w + 1), {}, {}});
  assign_rx_queues(c);
  return c;
}
}  // namespace

TEST(AutoAssign, QueueQOfEveryPortGoesToWorkerQ) {
  // With a symmetric RSS key both directions of a flow hash to the same queue
  // index, so they meet on one worker.
  Config c = topology({4, 4}, 2);
  EXPECT_EQ(c.workers.list[0].rx, (std::vector<RxQueueRef>{{0, 0}, {0, 2}, {1, 0}, {1, 2}}));
  EXPECT_EQ(c.workers.list[1].rx, (std::vector<RxQueueRef>{{0, 1}, {0, 3}, {1, 1}, {1, 3}}));
}

TEST(AutoAssign, FewerQueuesThanWorkersDealsPairsSoNoWorkerIdles) {
  Config c = topology({1, 1}, 2);
  EXPECT_EQ(c.workers.list[0].rx, (std::vector<RxQueueRef>{{0, 0}}));
  EXPECT_EQ(c.workers.list[1].rx, (std::vector<RxQueueRef>{{1, 0}}));
}

TEST(AutoAssign, EveryQueueExactlyOnce) {
  for (std::size_t workers : {1u, 2u, 3u, 16u}) {
    Config c = topology({1, 3, 8}, workers);
    std::size_t total = 0;
    std::set<std::pair<uint16_t, uint16_t>> seen;
    for (const auto& w : c.workers.list)
      for (const auto& r : w.rx) {
        EXPECT_TRUE(seen.insert({r.port, r.queue}).second);
        ++total;
      }
    EXPECT_EQ(total, 12u) << workers << " workers";
  }
}

TEST(AutoAssign, MbufPoolCoversRingsQueuesAndWorkers) {
  Config c = topology({2, 2}, 2);
  c.eal.cores = {0, 1, 2};
  const unsigned n = c.mbufs_needed();
  // 2 ports x (2 rx x 1024 + 2 tx x 1024) = 8192 in rings alone.
  EXPECT_GT(n, 8192u + 8192u);
  EXPECT_EQ((n + 1) & n, 0u) << "a power of two minus one";
  c.mempool.mbufs = 5000;
  EXPECT_EQ(c.mbufs_needed(), 5000u);
}
