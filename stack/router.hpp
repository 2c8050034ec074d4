// Router mode: every configured port is an IPv4 interface; packets between
// them are routed (RFC 1812), ARP resolves next hops (RFC 826), and ngstack
// answers pings to its own addresses and sends ICMP errors (RFC 792).
//
// The packet path, over bursts, through the dispatcher:
//   ether   (entry protocol) demux by EtherType -> dispatch `arp` / `ip`
//   ip      check_input (RFC 1812 §5.2.2) -> local | forward
//           forward: TTL, batched FIB lookup, MTU (fragment or frag-needed),
//                    TTL decrement (RFC 1624), output
//           local:   reassembly, echo reply, else ICMP unreachable
//   arp     answer requests for our addresses, learn, release held packets
//   output  neighbour lookup (lock-free), Ethernet header, per-worker tx buffer
//
// Per-worker state (tx buffers, ICMP token bucket, reassembly table) is owned
// by its worker. The ARP table is shared, read without locks (see
// arp/arp_table.hpp). The FIB is read without locks too; static routes and
// ARP entries change at run time through the control methods below (one
// control thread, see route/fib.hpp for the FIB's live-update rule).
//
// IP options: forwarding passes them through untouched; local delivery
// ignores them. Reassembly is per worker: fragments of one datagram share a
// flow id (the 2-tuple), so the flow policy brings them to one worker.
#pragma once

#include <rte_ether.h>
#include <rte_ip_frag.h>
#include <rte_mbuf.h>

#include <memory>
#include <string>
#include <vector>

#include "conf/config.hpp"
#include "conf/result.hpp"
#include "dispatch/netisr.hpp"
#include "stack/arp/arp_table.hpp"
#include "stack/ipv4/icmp.hpp"
#include "stack/ipv4/input.hpp"
#include "stack/route/fib.hpp"
#include "stack/service.hpp"

namespace ngstack::stack {

struct NeighborView {
  std::string port;
  uint32_t addr = 0;
  rte_ether_addr mac{};
  arp::State state = arp::State::dead;
  uint64_t age_ms = 0;  // since last confirmed
  unsigned held = 0;
};

class Router final : public Service {
 public:
  static Result<std::unique_ptr<Router>> create(const conf::Config& cfg, const std::vector<PortInfo>& ports,
                                                rte_mempool* pool, unsigned workers, uint64_t tsc_hz);
  ~Router() override;

  void bind(std::vector<WorkerIo> io) { io_ = std::move(io); }
  // The dispatcher and the ids it gave `ip` and `arp` (the ether handler dispatches to them).
  void set_dispatch(dispatch::Netisr* netisr, dispatch::ProtoId ip, dispatch::ProtoId arp) {
    netisr_ = netisr, ip_proto_ = ip, arp_proto_ = arp;
  }

  // netisr handlers; `ctx` is the Router.
  static void ether_handler(void* ctx, unsigned worker, uint16_t port, rte_mbuf** pkts, uint16_t n);
  static void ip_handler(void* ctx, unsigned worker, uint16_t port, rte_mbuf** pkts, uint16_t n);
  static void arp_handler(void* ctx, unsigned worker, uint16_t port, rte_mbuf** pkts, uint16_t n);

  void worker_online(unsigned worker) override;
  void poll(unsigned worker, uint64_t now) override;
  void worker_offline(unsigned worker) override;
  void shutdown() override;

  std::vector<NeighborView> neighbors() const;
  const route::Fib& fib() const { return *fib_; }

  // --- control (one caller at a time, while workers run) ---------------------
  // A static route: forward via `via` (on a connected subnet), blackhole or reject.
  Status route_add(const conf::Ipv4Prefix& p, conf::RouteAction action, uint32_t via);
  Status route_del(const conf::Ipv4Prefix& p);
  // A static (permanent) ARP entry on the interface named `port`, as
  // router.arp.static installs one; replaces a learned entry.
  Status arp_add(const std::string& port, uint32_t addr, const rte_ether_addr& mac);
  // Removes the entry for `addr` on `port` (empty: on whichever interface has
  // one). Learned entries may be removed too (they are learned again).
  Status arp_del(uint32_t addr, const std::string& port);

 private:
  struct Interface {
    bool active = false;
    uint16_t port_id = 0;
    rte_ether_addr mac{};
    uint16_t mtu = 1500;
    std::vector<conf::Ipv4Prefix> addresses;
    std::string name;
  };
  struct alignas(RTE_CACHE_LINE_SIZE) PerWorker {
    PerWorker(double rate, double burst, uint64_t hz) : icmp_bucket(rate, burst, hz) {}
    ipv4::TokenBucket icmp_bucket;
    rte_ip_frag_tbl* frag_table = nullptr;
    rte_ip_frag_death_row death_row{};
    uint64_t frags_held = 0;  // fragments inside frag_table
    uint64_t next_maintenance = 0;
    uint64_t next_frag_expiry = 0;  // when this worker next drops its timed-out datagrams
    bool announced = false;
    // A one-entry neighbour memo, valid within one handler call.
    uint64_t memo_key = UINT64_MAX;
    rte_ether_addr memo_mac{};
  };

  Router(rte_mempool* pool, uint64_t tsc_hz, std::unique_ptr<route::Fib> fib)
      : pool_(pool), tsc_hz_(tsc_hz), fib_(std::move(fib)) {}

  int cfg_port(uint16_t port_id) const { return port_index_.of(port_id); }
  uint32_t source_for(uint16_t cfg_port, uint32_t dst) const;
  // The packets of one burst that passed input checks and go to the FIB.
  struct ForwardBatch {
    rte_mbuf* pkts[dispatch::kMaxDispatchBurst];
    uint32_t dst[dispatch::kMaxDispatchBurst];
    uint64_t ids[dispatch::kMaxDispatchBurst];
    uint16_t in_port[dispatch::kMaxDispatchBurst];
    uint16_t n = 0;
  };
  void ip_input(unsigned w, rte_mbuf** pkts, uint16_t n);
  // Starts an ip stage on worker w: the neighbour memo holds for one stage.
  void ip_begin(unsigned w) { per_worker_[w]->memo_key = UINT64_MAX; }
  // Input checks for one packet from config port `in` (an active interface):
  // it is dropped, delivered locally, or added to `batch`.
  void ip_accept(unsigned w, rte_mbuf* m, uint16_t in, uint64_t now, ForwardBatch& batch);
  void ip_forward(unsigned w, ForwardBatch& batch, uint64_t now);
  void arp_input(unsigned w, rte_mbuf* m, uint64_t now);
  void local_input(unsigned w, rte_mbuf* m, const ipv4::InputVerdict& v, uint16_t in_port, uint64_t now);
  // Forwards a packet whose Ethernet header is in place and whose TTL is
  // already checked; `id` is its FIB next hop. `local_origin`: made or
  // answered here (no TTL decrement, no ICMP errors about it).
  void forward(unsigned w, rte_mbuf* m, uint64_t id, uint16_t in_port, uint64_t now, bool local_origin);
  // Routes a packet made or answered here (starts at the Ethernet header).
  void route_local(unsigned w, rte_mbuf* m, uint16_t in_port, uint64_t now);
  void send_fragments(unsigned w, rte_mbuf* m, uint16_t out, uint32_t nh_addr, uint64_t now);
  void output(unsigned w, rte_mbuf* m, uint16_t out, uint32_t nh_addr, uint64_t now);
  // Writes the Ethernet addresses (to `dst`, from `out`'s MAC) and buffers m for `out`.
  void transmit(unsigned w, rte_mbuf* m, uint16_t out, const rte_ether_addr& dst) {
    auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
    eth->dst_addr = dst;
    eth->src_addr = ifaces_[out].mac;
    io_[w].tx->push(out, m);
  }
  void send_request(unsigned w, uint16_t out, uint32_t target, uint64_t now);
  // Sends the ICMP error about `m` (left to the caller to free) if allowed.
  void icmp_error(unsigned w, const rte_mbuf* m, ipv4::IcmpError e, uint16_t in_port, uint64_t now, uint16_t mtu = 0);
  void maintenance(unsigned w, uint64_t now);
  void drop(unsigned w, rte_mbuf* m, DropReason r) {
    rte_pktmbuf_free(m);
    io_[w].drops->inc(r);
  }

  std::vector<Interface> ifaces_;     // by config port
  PortIndex port_index_;
  ipv4::LocalAddresses local_;
  rte_mempool* pool_;
  uint64_t tsc_hz_;
  std::unique_ptr<route::Fib> fib_;
  std::unique_ptr<arp::ArpTable> arp_;
  conf::ArpConfig arp_cfg_;
  uint64_t reachable_cycles_ = 0, stale_cycles_ = 0, retry_cycles_ = 0;
  std::vector<std::unique_ptr<PerWorker>> per_worker_;
  std::vector<WorkerIo> io_;
  dispatch::Netisr* netisr_ = nullptr;
  dispatch::ProtoId ip_proto_ = 0, arp_proto_ = 0;
};

}  // namespace ngstack::stack
