// Cost of handing a packet from one worker to another, per work-queue
// topology, at a given burst size. Two threads on two CPUs: a producer
// enqueues bursts of pointers, a consumer dequeues and releases them. Prints
// TSC cycles per packet (throughput-bound: elapsed cycles / packets) for
//   spsc       ngstack's SPSC ring (peek + release), one per (source, target)
//   rte_sp_sc  rte_ring with single-producer/single-consumer flags
//   rte_mp_sc  rte_ring with the multi-producer enqueue a shared per-target
//              queue (MPSC) needs, uncontended here (one producer)
// Usage: handoff_bench [--burst 32] [--packets 50000000] [--producer-cpu 1] [--consumer-cpu 0]
#include <pthread.h>
#include <rte_cycles.h>
#include <rte_ring.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "dispatch/spsc_ring.hpp"

namespace {

void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

struct Options {
  unsigned burst = 32;
  uint64_t packets = 50'000'000;
  int producer_cpu = 1, consumer_cpu = 0;
};

// Runs producer and consumer over any queue with the given enqueue/dequeue
// functions; returns cycles per packet.
template <class Enq, class Deq>
double run(const Options& o, Enq enqueue, Deq dequeue) {
  std::atomic<bool> go{false};
  uint64_t start = 0, end = 0;
  std::thread consumer([&] {
    pin(o.consumer_cpu);
    std::vector<void*> buf(o.burst);
    while (!go.load()) {
    }
    uint64_t got = 0;
    while (got < o.packets) got += dequeue(buf.data(), o.burst);
    end = rte_rdtsc();
  });
  std::thread producer([&] {
    pin(o.producer_cpu);
    std::vector<void*> buf(o.burst);
    for (unsigned i = 0; i < o.burst; ++i) buf[i] = reinterpret_cast<void*>(uintptr_t{i + 1} * 64);
    start = rte_rdtsc();
    go.store(true);
    uint64_t sent = 0;
    while (sent < o.packets) sent += enqueue(buf.data(), o.burst);
  });
  producer.join();
  consumer.join();
  return static_cast<double>(end - start) / static_cast<double>(o.packets);
}

rte_ring* make_ring(unsigned flags) {
  const ssize_t size = rte_ring_get_memsize(4096);
  void* mem = std::aligned_alloc(64, static_cast<std::size_t>((size + 63) / 64 * 64));
  auto* r = static_cast<rte_ring*>(mem);
  if (rte_ring_init(r, "handoff", 4096, flags) != 0) std::abort();
  return r;
}

// TSC frequency without EAL: count cycles over 100 ms of steady time.
double tsc_ghz() {
  const auto t0 = std::chrono::steady_clock::now();
  const uint64_t c0 = rte_rdtsc();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const uint64_t c1 = rte_rdtsc();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return static_cast<double>(c1 - c0) / s / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--burst") o.burst = static_cast<unsigned>(std::atoi(argv[i + 1]));
    if (a == "--packets") o.packets = std::strtoull(argv[i + 1], nullptr, 10);
    if (a == "--producer-cpu") o.producer_cpu = std::atoi(argv[i + 1]);
    if (a == "--consumer-cpu") o.consumer_cpu = std::atoi(argv[i + 1]);
  }
  if (o.burst == 0 || o.burst > 512) return 2;

  ngstack::dispatch::SpscRing<void*> spsc(4096);
  const double c_spsc = run(
      o,
      [&](void** b, unsigned n) {
        uint32_t len;
        return spsc.enqueue(b, n, len);
      },
      [&](void** b, unsigned n) {
        const uint32_t got = spsc.peek(b, n);
        spsc.release(got);
        return got;
      });
  rte_ring* sp = make_ring(RING_F_SP_ENQ | RING_F_SC_DEQ);
  const double c_sp = run(
      o, [&](void** b, unsigned n) { return rte_ring_sp_enqueue_burst(sp, b, n, nullptr); },
      [&](void** b, unsigned n) { return rte_ring_sc_dequeue_burst(sp, b, n, nullptr); });
  rte_ring* mp = make_ring(RING_F_SC_DEQ);
  const double c_mp = run(
      o, [&](void** b, unsigned n) { return rte_ring_mp_enqueue_burst(mp, b, n, nullptr); },
      [&](void** b, unsigned n) { return rte_ring_sc_dequeue_burst(mp, b, n, nullptr); });

  std::printf("handoff: burst %u, %llu packets, producer CPU %d -> consumer CPU %d, TSC %.2f GHz\n", o.burst,
              static_cast<unsigned long long>(o.packets), o.producer_cpu, o.consumer_cpu, tsc_ghz());
  std::printf("  %-10s %6.2f cycles/packet\n", "spsc", c_spsc);
  std::printf("  %-10s %6.2f cycles/packet   (spsc/rte_sp_sc = %.2f)\n", "rte_sp_sc", c_sp, c_spsc / c_sp);
  std::printf("  %-10s %6.2f cycles/packet   (spsc/rte_mp_sc = %.2f)\n", "rte_mp_sc", c_mp, c_spsc / c_mp);
  std::free(sp);
  std::free(mp);
  return 0;
}
