// Bridge mode: one bridge domain (IEEE 802.1D/802.1Q transparent bridging)
// over the configured ports.
//
// Each frame: learn (VLAN, source MAC) -> ingress port in the forwarding
// database (FDB); look up (VLAN, destination MAC): known unicast goes out of
// its one port (never back out of the ingress port); unknown unicast,
// broadcast and multicast are flooded to every other port of the VLAN.
// Entries age out after aging_ms without a frame from that station; a
// station seen on another port moves there at once. Ageing runs on timers:
// the worker that learned a station arms one on its own wheel, which re-arms
// while the station keeps being seen and removes it once it is idle; a
// per-slot generation keeps a timer from acting on a later station in a
// reused slot. No worker scans the table.
//
// VLANs are optional. Without them every port is in one domain and frames
// pass untouched, tags included. With them, an access port carries one VLAN
// untagged, a trunk carries a list of VLANs tagged (802.1Q), learning is per
// VLAN, and frames are tagged or untagged on the way out as the egress port
// requires.
//
// Concurrency. The FDB is an RcuTable (stack/rcu_table.hpp): lookups take no
// lock; a new station takes the writer lock once; a known station's port and
// last-seen time are atomics that any worker may update (last-seen at most a
// few times per ageing period, so workers do not fight over its cache line).
// Flooded frames are shared between egress ports by reference count, not
// copied, unless the egress encapsulation differs.
//
// Learning is rate-limited per worker (bridge.learn_rate, learn_burst): a
// flood of new source MACs (macof) would otherwise take the writer lock once
// per frame on every worker. A source that cannot be learned now is counted
// (bridge_learn_limited) and its frame is forwarded as usual, flooded when
// its destination is unknown; a later frame learns it. A full table is
// checked first, and spends no token.
#pragma once

#include <rte_ether.h>
#include <rte_mbuf.h>

#include <atomic>
#include <bitset>
#include <memory>
#include <string>
#include <vector>

#include "conf/config.hpp"
#include "conf/result.hpp"
#include "stack/rcu_table.hpp"
#include "stack/service.hpp"
#include "stack/token_bucket.hpp"

namespace ngstack::stack {

struct FdbView {
  uint16_t vlan = 0;
  rte_ether_addr mac{};
  std::string port;
  uint64_t age_ms = 0;
};

class Bridge final : public Service {
 public:
  static Result<std::unique_ptr<Bridge>> create(const conf::Config& cfg, const std::vector<PortInfo>& ports,
                                                rte_mempool* pool, unsigned workers, uint64_t tsc_hz);

  void bind(std::vector<WorkerIo> io) { io_ = std::move(io); }
  static void netisr_handler(void* ctx, unsigned worker, uint16_t port, rte_mbuf** pkts, uint16_t n);

  void worker_online(unsigned w) override { fdb_->reader_online(w); }
  void poll(unsigned w, uint64_t now) override;
  void worker_offline(unsigned w) override { fdb_->reader_offline(w); }
  void shutdown() override {}

  std::vector<FdbView> fdb() const;
  unsigned fdb_size() const { return fdb_->size(); }
  uint64_t fdb_lock_acquisitions() const { return fdb_->lock_acquisitions(); }

  // Read side, for a worker between two of its quiescent reports (poll):
  // the FDB slot of (vlan, mac) or RcuTable::kNone, and what the slot holds.
  // The slot keeps its key until the worker's next report, even if the
  // station ages out meanwhile (tests check that through these).
  int32_t fdb_find(uint16_t vlan, const rte_ether_addr& mac) const { return fdb_->lookup(key(vlan, mac)); }
  uint64_t fdb_key_of(int32_t slot) const { return fdb_->key_of(slot); }
  uint16_t fdb_port_of(int32_t slot) const { return stations_[slot].port.load(std::memory_order_relaxed); }

  static uint64_t key(uint16_t vlan, const rte_ether_addr& mac) {
    uint64_t k = static_cast<uint64_t>(vlan) << 48;
    for (int i = 0; i < 6; ++i) k |= static_cast<uint64_t>(mac.addr_bytes[i]) << (8 * (5 - i));
    return k;
  }

 private:
  struct Member {
    bool member = false;
    bool trunk = false;
    uint16_t access_vlan = 0;
    std::bitset<4096> vlans;  // carried VLANs (access: one)
    std::string name;
  };
  struct Station {
    std::atomic<uint16_t> port{0};
    std::atomic<uint32_t> generation{0};  // bumped when a station is learned into the slot
    std::atomic<uint64_t> seen_tsc{0};
  };

  Bridge(rte_mempool* pool, uint64_t tsc_hz) : pool_(pool), tsc_hz_(tsc_hz) {}
  // The last destination a burst looked up and what the FDB said (a slot or
  // RcuTable::kNone), so that a run of frames to one station costs one
  // lookup. It lives for one handler call, in which the worker reports no
  // quiescent state (the slot keeps its key); this worker learning a station
  // forgets it, so a station learned mid-burst is found by the next frame.
  struct DstMemo {
    uint64_t key = UINT64_MAX;
    int32_t slot = 0;
  };
  void input(unsigned w, rte_mbuf* m, uint64_t now, DstMemo& dst);
  // True when it added a station to the FDB.
  bool learn(unsigned w, uint16_t vlan, const rte_ether_addr& src, uint16_t in, uint64_t now);
  // Sets m's 802.1Q encapsulation to what `out` wants; false if it could not.
  bool encapsulate(rte_mbuf*& m, uint16_t out, uint16_t vlan) const;
  void flood(unsigned w, rte_mbuf* m, uint16_t in, uint16_t vlan, bool tagged_in);
  void drop(unsigned w, rte_mbuf* m, DropReason r) {
    rte_pktmbuf_free(m);
    io_[w].drops->inc(r);
  }

  rte_mempool* pool_;
  uint64_t tsc_hz_;
  bool vlan_aware_ = false;
  std::vector<Member> members_;       // by config port
  PortIndex port_index_;
  std::unique_ptr<RcuTable> fdb_;
  std::unique_ptr<Station[]> stations_;
  uint64_t aging_cycles_ = 0, refresh_cycles_ = 0;
  std::vector<WorkerIo> io_;
  // The station a worker last confirmed, so that a run of frames from one
  // station costs one FDB lookup. `tsc` bounds how long it is trusted.
  struct Memo {
    uint64_t key = UINT64_MAX;
    uint16_t port = 0;
    uint64_t tsc = 0;
  };
  // What one worker owns, on cache lines of its own.
  struct alignas(RTE_CACHE_LINE_SIZE) PerWorker {
    PerWorker(Bridge* b, unsigned worker, double learn_rate, double learn_burst, uint64_t hz)
        : owner(b), w(worker), learn_bucket(learn_rate, learn_burst, hz) {}
    Bridge* owner;
    unsigned w;
    Memo memo;
    TokenBucket learn_bucket;  // new stations this worker may learn (bridge.learn_rate)
    uint64_t timers_refused = 0;
  };
  void arm_ageing(PerWorker& pw, int32_t slot, uint32_t gen, uint64_t expiry);
  static void on_ageing_timer(void* ctx, uint64_t arg, uint64_t now);
  std::vector<std::unique_ptr<PerWorker>> per_worker_;
};

}  // namespace ngstack::stack
