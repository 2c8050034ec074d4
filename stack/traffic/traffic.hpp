// Traffic mode: generator and sink ports (ngstack as a tester).
//
// A generator belongs to one worker (generator i to worker i % workers), so
// its flows' sequence numbers have a single writer. From the worker's poll
// hook it builds at most one burst per loop iteration, paced by the TSC:
// after t seconds it has built floor(t * rate) frames, never more, so the
// rate holds over any interval longer than a burst. What the tx queue
// refuses waits for the next iteration (a generator does not drop its own
// frames); frames are stamped (stamp.hpp) with the TSC of the burst.
//
// A sink port's frames arrive through the dispatcher (`ether`, direct) on the
// worker that polls the rx queue. Each worker keeps its own per-flow trackers
// and latency histogram (no sharing); RSS keeps a flow on one queue, so on
// one worker. Counters for the live view are updated per burst; the per-flow
// totals and the histogram are read once workers have stopped.
//
// Accounting: generated frames count as `originated` when the queue takes
// them; sunk frames as `consumed`.
#pragma once

#include <rte_mbuf.h>

#include <memory>
#include <string>
#include <vector>

#include "conf/config.hpp"
#include "conf/result.hpp"
#include "stack/service.hpp"
#include "stack/traffic/stamp.hpp"

namespace ngstack::stack::traffic {

struct GeneratorView {
  std::string port;
  unsigned worker = 0;
  uint32_t flows = 0;
  double target_pps = 0;  // 0: as fast as the port takes them
  uint64_t packets = 0, bytes = 0;
  double seconds = 0;       // from the first burst to the last
  double achieved_pps = 0;  // packets over seconds (after the first burst)
  bool done = false;        // reached its packet count or duration
};

struct SinkView {
  std::string port;
  uint64_t packets = 0, bytes = 0;
  uint64_t stamped = 0, unstamped = 0, unknown_flow = 0;
  uint64_t flows = 0;  // flows that sent at least one stamped frame
  uint64_t lost = 0, duplicates = 0, reordered = 0;
  uint64_t beyond_window = 0;  // stamped frames too far behind their flow to check (SequenceTracker)
  uint64_t latency_samples = 0, latency_future = 0;  // future: stamp TSC ahead of ours (another host)
  uint64_t latency_min_ns = 0, latency_p50_ns = 0, latency_p99_ns = 0, latency_p999_ns = 0, latency_max_ns = 0;
};

// One link's frames per second at `percent` of its line rate, for frames of
// the given sizes and weights (sizes with FCS; 20 bytes of preamble and
// inter-frame gap each on the wire).
double line_rate_pps(uint64_t link_mbps, double percent, const std::vector<uint16_t>& sizes,
                     const std::vector<uint16_t>& weights);

class Traffic final : public Service {
 public:
  // `link_mbps[i]` is config port i's link speed (0: unknown).
  static Result<std::unique_ptr<Traffic>> create(const conf::Config& cfg, const std::vector<PortInfo>& ports,
                                                 const std::vector<uint64_t>& link_mbps, rte_mempool* pool,
                                                 unsigned workers, uint64_t tsc_hz);
  ~Traffic() override;

  void bind(std::vector<WorkerIo> io) { io_ = std::move(io); }
  // netisr handler for `ether`: frames from sink ports are counted.
  static void netisr_handler(void* ctx, unsigned worker, uint16_t port, rte_mbuf** pkts, uint16_t n);

  void worker_online(unsigned) override {}
  void poll(unsigned worker, uint64_t now_tsc) override;
  void worker_offline(unsigned worker) override;
  void shutdown() override {}

  std::vector<GeneratorView> generators() const;
  // With `live`, only the counters workers publish while running (packets,
  // bytes, stamped...); without, also loss, duplicates, reordering and
  // latency, which read workers' own state: only once workers have stopped.
  std::vector<SinkView> sinks(bool live) const;

 private:
  struct Generator;
  struct SinkState;
  Traffic() = default;
  void generate(Generator& g, unsigned w, uint64_t now);
  void sink_input(unsigned w, rte_mbuf** pkts, uint16_t n);

  std::vector<std::unique_ptr<Generator>> gens_;
  std::vector<std::vector<Generator*>> gens_of_worker_;
  std::vector<std::string> port_names_;
  std::vector<int> sink_of_port_;  // config port -> sink index, or -1
  std::vector<conf::SinkConfig> sink_cfg_;
  std::vector<std::vector<std::unique_ptr<SinkState>>> sink_state_;  // [sink][worker]
  PortIndex port_index_;
  rte_mempool* pool_ = nullptr;
  uint64_t tsc_hz_ = 0;
  std::vector<WorkerIo> io_;
};

}  // namespace ngstack::stack::traffic
