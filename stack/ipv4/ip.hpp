// IPv4 as a protocol layer: the `ip` netisr protocol of router and host modes.
//
//   input     check_input (RFC 1812 §5.2.2) over the burst, classifying each
//             packet into the forward vector or local delivery; sets l2_len
//             and l3_len on every packet it accepts
//   forward   TTL, one batched FIB lookup, MTU (fragment or frag-needed),
//             TTL decrement (RFC 1624), ether_output; a run of packets to a
//             resolved gateway takes a fast path with no per-packet lookups
//   local     reassembly (per worker), then the protocol switch: ICMP echo is
//             answered here; a protocol registered with set_upper() gets the
//             datagram through its netisr protocol, and so do the ICMP errors
//             quoting one of its datagrams; anything else gets port or
//             protocol unreachable
//   output    routing for packets made or answered here (no TTL decrement,
//             no ICMP errors about them), DF, fragmentation
//   icmp      errors (RFC 792, RFC 1812 §4.3) under a per-worker token bucket
//
// Per-worker state (ICMP token bucket, reassembly table, its expiry timer) is
// a per-worker object, used only by its worker. The FIB and the interfaces are
// read without locks. IP options: forwarding passes them through untouched;
// local delivery ignores them. Fragments of one datagram share a flow id (the
// 2-tuple), so the flow policy brings them to one worker's reassembly table.
#pragma once

#include <rte_ip_frag.h>
#include <rte_mbuf.h>

#include <array>
#include <memory>
#include <vector>

#include "conf/config.hpp"
#include "conf/result.hpp"
#include "dispatch/netisr.hpp"
#include "stack/arp/resolver.hpp"
#include "stack/ether/ether.hpp"
#include "stack/ifnet/ifnet.hpp"
#include "stack/ipv4/icmp.hpp"
#include "stack/ipv4/input.hpp"
#include "stack/route/fib.hpp"
#include "stack/service.hpp"

namespace ngstack::stack::ipv4 {

class Ip {
 public:
  static Result<std::unique_ptr<Ip>> create(const conf::RouterConfig& cfg, const ifnet::Interfaces& ifs,
                                            route::Fib& fib, ether::Ether& ether, arp::Resolver& arp,
                                            rte_mempool* pool, unsigned workers, uint64_t tsc_hz);
  ~Ip();
  void bind(std::vector<WorkerIo> io) { io_ = std::move(io); }

  // netisr handler of `ip`; ctx is the Ip.
  static void input_handler(void* ctx, unsigned worker, uint16_t port, rte_mbuf** pkts, uint16_t n);

  // The protocol switch: datagrams for us with IP protocol `ip_proto` go to
  // netisr protocol `proto` (l2_len and l3_len set, reassembled).
  void set_upper(dispatch::Netisr* netisr, uint8_t ip_proto, dispatch::ProtoId proto);

  // Host mode: packets not for us are dropped (ipv4_not_forwarding).
  void set_forwarding(bool on) { forwarding_ = on; }
  bool forwarding() const { return forwarding_; }
  // The config port a packet to `dst` would leave by, or -1 (no route, a
  // blackhole or reject route). Lock-free, as every FIB read.
  int route_port(uint32_t dst) const {
    const route::NextHop& nh = fib_.nexthop(fib_.lookup(dst));
    return nh.kind == route::NextHopKind::forward ? nh.port : -1;
  }
  const ifnet::Interfaces& interfaces() const { return ifs_; }
  rte_mempool* pool() const { return pool_; }

  // Routes a packet made or answered here; it starts at its Ethernet header
  // (EtherType set), its IPv4 header complete. `in_port`: the interface that
  // ICMP errors about it would name (the one it answers), for source selection.
  void output(unsigned w, rte_mbuf* m, uint16_t in_port, uint64_t now);
  // Sends the ICMP error about `m` (left to the caller to free) if allowed.
  void icmp_error(unsigned w, const rte_mbuf* m, IcmpError e, uint16_t in_port, uint64_t now, uint16_t mtu = 0);
  // ARP gave up on a next hop: host unreachable about each held packet.
  static void on_unresolved(void* ctx, unsigned worker, rte_mbuf** pkts, uint16_t n, uint64_t now);

  void worker_online(unsigned w);
  // Fragments waiting for reassembly on all workers (read when they are quiet).
  uint64_t fragments_held() const {
    uint64_t n = 0;
    for (const auto& pw : per_worker_) n += pw->frags_held;
    return n;
  }
  // After every worker stopped: frees and counts the fragments still held.
  void shutdown();

 private:
  struct alignas(RTE_CACHE_LINE_SIZE) PerWorker {
    PerWorker(Ip* ip, unsigned worker, double rate, double burst, uint64_t hz)
        : owner(ip), w(worker), icmp_bucket(rate, burst, hz) {}
    Ip* owner;
    unsigned w;
    TokenBucket icmp_bucket;
    rte_ip_frag_tbl* frag_table = nullptr;
    rte_ip_frag_death_row death_row{};
    uint64_t frags_held = 0;  // fragments inside frag_table
  };
  // The packets of one burst that passed input checks and go to the FIB.
  struct ForwardBatch {
    rte_mbuf* pkts[dispatch::kMaxDispatchBurst];
    uint32_t dst[dispatch::kMaxDispatchBurst];
    uint64_t ids[dispatch::kMaxDispatchBurst];
    uint16_t in_port[dispatch::kMaxDispatchBurst];
    uint16_t n = 0;
  };
  struct Upper {
    dispatch::Netisr* netisr = nullptr;  // null: no protocol registered
    dispatch::ProtoId proto = 0;
  };
  // The datagrams of one burst for the protocols above, one dispatch each
  // at the end of the burst (so that udp groups them by connection group);
  // arrival order within each.
  struct LocalBatch {
    static constexpr unsigned kMaxUpper = 4;
    const Upper* upper[kMaxUpper] = {};
    rte_mbuf* pkts[kMaxUpper][dispatch::kMaxDispatchBurst];
    uint16_t n[kMaxUpper] = {};
    unsigned used = 0;
  };

  Ip(const ifnet::Interfaces& ifs, route::Fib& fib, ether::Ether& ether, arp::Resolver& arp, rte_mempool* pool)
      : ifs_(ifs), fib_(fib), ether_(ether), arp_(arp), pool_(pool) {}

  void input(unsigned w, rte_mbuf** pkts, uint16_t n);
  void accept(unsigned w, rte_mbuf* m, uint16_t in, uint64_t now, ForwardBatch& batch, LocalBatch& local);
  void forward_batch(unsigned w, ForwardBatch& batch, uint64_t now);
  // Forwards one packet whose TTL is checked; `id` is its FIB next hop.
  // `local_origin`: made or answered here (no TTL decrement, no ICMP errors).
  void forward(unsigned w, rte_mbuf* m, uint64_t id, uint16_t in_port, uint64_t now, bool local_origin);
  void send_fragments(unsigned w, rte_mbuf* m, uint16_t out, uint32_t nh_addr, uint64_t now);
  void local_input(unsigned w, rte_mbuf* m, const InputVerdict& v, uint16_t in_port, uint64_t now, LocalBatch& local);
  void to_upper(unsigned w, const Upper& up, rte_mbuf* m, LocalBatch& local);
  void flush_local(unsigned w, LocalBatch& local);
  static void on_frag_expiry(void* ctx, uint64_t arg, uint64_t now);
  void drop(unsigned w, rte_mbuf* m, DropReason r) {
    rte_pktmbuf_free(m);
    io_[w].drops->inc(r);
  }

  const ifnet::Interfaces& ifs_;
  route::Fib& fib_;
  ether::Ether& ether_;
  arp::Resolver& arp_;
  rte_mempool* pool_;
  uint64_t frag_sweep_cycles_ = 0;
  bool forwarding_ = true;
  std::array<Upper, 256> upper_{};
  std::vector<std::unique_ptr<PerWorker>> per_worker_;
  std::vector<WorkerIo> io_;
};

}  // namespace ngstack::stack::ipv4
