// ARP as a protocol layer (RFC 826): input (answer requests for our
// addresses, learn, release held packets), resolution for output (lock-free
// lookup, hold queue while a request is out), and the neighbour timers.
//
// Timers. The worker that creates an entry (by resolving a new next hop, or
// by learning a neighbour that asked for our address) arms one timer for it
// on its own timer wheel; the callback reads the entry's current state and
// acts (retry, fail, turn stale, remove) and re-arms. Confirmations from any
// worker only update the entry; the owner's next firing sees them. Each
// creation stamps the slot with a new generation and the timer carries it, so
// a timer whose entry was removed (and whose slot may be reused) finds a
// different generation and ends: no worker ever reaches into another's wheel.
// Permanent entries have no timer.
//
// Learning is rate-limited per worker (router.arp.learn_rate new entries per
// second): a sender sweeping a large subnet, or an address scan through the
// router, cannot make every worker queue on the table's writer lock.
#pragma once

#include <rte_ether.h>
#include <rte_mbuf.h>

#include <atomic>
#include <memory>
#include <vector>

#include "conf/config.hpp"
#include "conf/result.hpp"
#include "stack/arp/arp_table.hpp"
#include "stack/ifnet/ifnet.hpp"
#include "stack/service.hpp"
#include "stack/timer/timer_wheel.hpp"
#include "stack/token_bucket.hpp"

namespace ngstack::stack::arp {

struct NeighborView {
  std::string port;
  uint32_t addr = 0;
  rte_ether_addr mac{};
  State state = State::dead;
  uint64_t age_ms = 0;  // since last confirmed
  unsigned held = 0;
};

class Resolver {
 public:
  // Gets the packets still held by an entry whose resolution failed (on the
  // worker whose timer gave up); it must free or send each one.
  using UnresolvedFn = void (*)(void* ctx, unsigned worker, rte_mbuf** pkts, uint16_t n, uint64_t now);

  // `hold_total`: what all hold queues together may hold (Config::arp_hold_total()).
  static Result<std::unique_ptr<Resolver>> create(const conf::ArpConfig& cfg, unsigned hold_total,
                                                  const ifnet::Interfaces& ifs, rte_mempool* pool, unsigned workers,
                                                  uint64_t tsc_hz);
  // Each worker's io, its timer wheel included.
  void bind(std::vector<WorkerIo> io) { io_ = std::move(io); }
  void set_unresolved(UnresolvedFn fn, void* ctx) { unresolved_ = fn, unresolved_ctx_ = ctx; }

  // netisr handler of `arp`; ctx is the Resolver.
  static void input_handler(void* ctx, unsigned worker, uint16_t port, rte_mbuf** pkts, uint16_t n);

  // Output to next hop `nh_addr` on config port `out`: true with *mac when
  // the neighbour is usable (the caller sends); false when the packet was
  // taken (held until the neighbour answers, or dropped and counted).
  bool resolve(unsigned w, rte_mbuf* m, uint16_t out, uint32_t nh_addr, uint64_t now, rte_ether_addr* mac) {
    PerWorker& pw = *per_worker_[w];
    if (ArpTable::key(out, nh_addr) == pw.memo_key) [[likely]] {
      *mac = pw.memo_mac;
      return true;
    }
    return resolve_slow(w, m, out, nh_addr, now, mac);
  }
  // The one-entry neighbour memo of worker w: the last next hop it resolved
  // as reachable or permanent. Within one handler call it holds (the worker
  // reports no quiescent state meanwhile). begin_burst() keeps it only while
  // its table slot is live, still holds that next hop, and its link word
  // (MAC and state) is the one memoised: three loads instead of a hash
  // lookup per burst. A slot reused after a grace period holds another key
  // or another link; a neighbour that went stale, incomplete or dead has
  // another link word: each sends the next packet to the slow path.
  void begin_burst(unsigned w) {
    PerWorker& pw = *per_worker_[w];
    if (pw.memo_key == UINT64_MAX) return;
    const Neighbor& nb = table_->at(pw.memo_slot);
    if (nb.link.load(std::memory_order_acquire) != pw.memo_link || !table_->index().live(pw.memo_slot) ||
        table_->index().key_of(pw.memo_slot) != pw.memo_key)
      pw.memo_key = UINT64_MAX;
  }
  uint64_t memo_key(unsigned w) const { return per_worker_[w]->memo_key; }
  const rte_ether_addr& memo_mac(unsigned w) const { return per_worker_[w]->memo_mac; }

  void send_request(unsigned w, uint16_t out, uint32_t target);

  // --- per worker -------------------------------------------------------------
  void worker_online(unsigned w);
  // Once per loop iteration, between bursts: the RCU quiescent state report,
  // and worker 0's announcement of our addresses at start.
  void poll(unsigned w, uint64_t now);
  void worker_offline(unsigned w);
  // After every worker stopped: frees and counts what hold queues still hold.
  void shutdown();

  // --- control ----------------------------------------------------------------
  std::vector<NeighborView> neighbors() const;
  Status add_permanent(const std::string& port, uint32_t addr, const rte_ether_addr& mac);
  Status remove(uint32_t addr, const std::string& port);
  ArpTable& table() { return *table_; }
  const ArpTable& table() const { return *table_; }
  uint64_t timers_refused() const;
  // Packets in all hold queues now.
  uint64_t held() const;  // entries whose timer could not be armed (wheel full)

 private:
  struct alignas(RTE_CACHE_LINE_SIZE) PerWorker {
    PerWorker(Resolver* r, unsigned worker, double rate, double burst, uint64_t hz)
        : owner(r), w(worker), learn_bucket(rate, burst, hz) {}
    Resolver* owner;
    unsigned w;
    TokenBucket learn_bucket;  // new entries this worker may create
    uint64_t memo_key = UINT64_MAX;
    rte_ether_addr memo_mac{};
    int32_t memo_slot = 0;   // the memoised neighbour's table slot
    uint64_t memo_link = 0;  // and its link word when memoised
    bool announced = false;
    uint64_t timers_refused = 0;
  };
  Resolver(const ifnet::Interfaces& ifs, rte_mempool* pool, uint64_t tsc_hz) : ifs_(ifs), pool_(pool), tsc_hz_(tsc_hz) {}

  bool resolve_slow(unsigned w, rte_mbuf* m, uint16_t out, uint32_t nh_addr, uint64_t now, rte_ether_addr* mac);
  void input(unsigned w, rte_mbuf* m, uint64_t now);
  void drop(unsigned w, rte_mbuf* m, DropReason r) {
    rte_pktmbuf_free(m);
    io_[w].drops->inc(r);
  }
  // A new entry in `slot`, created by worker w: stamp it and arm its timer.
  void adopt_entry(unsigned w, int32_t slot, uint64_t expiry);
  void arm(PerWorker& pw, int32_t slot, uint32_t gen, uint64_t expiry);
  static void on_timer(void* ctx, uint64_t arg, uint64_t now);
  void entry_timer(PerWorker& pw, int32_t slot, uint32_t gen, uint64_t now);

  const ifnet::Interfaces& ifs_;
  rte_mempool* pool_;
  uint64_t tsc_hz_;
  conf::ArpConfig cfg_;
  uint64_t reachable_cycles_ = 0, stale_cycles_ = 0, retry_cycles_ = 0;
  std::unique_ptr<ArpTable> table_;
  // Per slot: the generation of the entry in it (see the header comment).
  std::unique_ptr<std::atomic<uint32_t>[]> generation_;
  std::vector<std::unique_ptr<PerWorker>> per_worker_;
  std::vector<WorkerIo> io_;
  UnresolvedFn unresolved_ = nullptr;
  void* unresolved_ctx_ = nullptr;
};

}  // namespace ngstack::stack::arp
