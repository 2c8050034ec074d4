// Per-worker transmit buffers: one per port, each bound to the worker's own tx
// queue on that port, so no two workers ever share a tx queue and no tx lock
// exists. Packets collect during one loop iteration and leave in one
// rte_eth_tx_burst per port (or earlier, when a buffer fills). What the queue
// refuses is freed and counted as tx_full: nothing is retried, nothing leaks.
#pragma once

#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "stack/counters.hpp"

namespace ngstack::stack {

inline constexpr uint16_t kMaxBurst = 512;

inline uint64_t burst_bytes(rte_mbuf* const* pkts, uint16_t n) {
  uint64_t bytes = 0;
  for (uint16_t i = 0; i < n; ++i) bytes += pkts[i]->pkt_len;
  return bytes;
}

struct PortTxStats {
  Counter packets;
  Counter bytes;
};

class TxBuffers {
 public:
  // port_ids[i] is the DPDK port id of config port i; `queue` is this worker's
  // tx queue on every port; `capacity` is the flush threshold (<= kMaxBurst).
  TxBuffers(const std::vector<uint16_t>& port_ids, uint16_t queue, uint16_t capacity, DropCounters& drops)
      : bufs_(port_ids.size()), stats_(port_ids.size()), queue_(queue), capacity_(capacity), drops_(drops) {
    for (std::size_t i = 0; i < port_ids.size(); ++i) bufs_[i].port_id = port_ids[i];
  }

  // Queue one packet for config port `port`.
  void push(uint16_t port, rte_mbuf* m) {
    Buffer& b = bufs_[port];
    b.pkts[b.count++] = m;
    b.bytes += m->pkt_len;
    if (b.count == capacity_) [[unlikely]] flush(port);
  }

  // Queue a run of packets for config port `port`, copied in chunks that
  // fill the buffer up to its flush threshold.
  void enqueue(uint16_t port, rte_mbuf** pkts, uint16_t n) {
    Buffer& b = bufs_[port];
    while (n > 0) {
      const uint16_t room = static_cast<uint16_t>(capacity_ - b.count);
      const uint16_t take = n < room ? n : room;
      std::memcpy(&b.pkts[b.count], pkts, take * sizeof(rte_mbuf*));
      b.bytes += burst_bytes(pkts, take);
      b.count = static_cast<uint16_t>(b.count + take);
      if (b.count == capacity_) flush(port);
      pkts += take;
      n = static_cast<uint16_t>(n - take);
    }
  }

  // Send a run now, behind whatever this worker already buffered for the
  // port: for packets that must leave before the caller lets others send
  // (see arp::ArpTable::confirm).
  void send_now(uint16_t port, rte_mbuf** pkts, uint16_t n) {
    enqueue(port, pkts, n);
    flush(port);
  }

  void flush(uint16_t port) {
    Buffer& b = bufs_[port];
    if (b.count == 0) {
      b.refused = false;  // a loop iteration went by: the queue had time to drain
      return;
    }
    uint64_t bytes = b.bytes;
    const uint16_t sent = rte_eth_tx_burst(b.port_id, queue_, b.pkts, b.count);
    if (sent < b.count) [[unlikely]] {
      for (uint16_t i = sent; i < b.count; ++i) bytes -= b.pkts[i]->pkt_len;
      rte_pktmbuf_free_bulk(&b.pkts[sent], b.count - sent);
      drops_.add(DropReason::tx_full, b.count - sent);
    }
    count_sent(port, sent, bytes);
    b.refused = sent < b.count;
    b.count = 0;
    b.bytes = 0;
  }

  void flush_all() {
    for (uint16_t p = 0; p < bufs_.size(); ++p) flush(p);
  }

  // For a sender that calls rte_eth_tx_burst itself on this worker's queue
  // (a traffic generator keeps what the queue refuses and retries it).
  void count_sent(uint16_t port, uint64_t packets, uint64_t bytes) {
    stats_[port].packets.add(packets);
    stats_[port].bytes.add(bytes);
  }
  uint16_t queue() const { return queue_; }
  // The queue refused packets at this port's last flush, and no loop
  // iteration has gone by since: a sender that can wait (a socket) is told
  // so rather than have more dropped.
  bool refused(uint16_t port) const { return bufs_[port].refused; }

  const PortTxStats& stats(uint16_t port) const { return stats_[port]; }

 private:
  struct Buffer {
    uint16_t port_id = 0;
    uint16_t count = 0;
    bool refused = false;
    uint64_t bytes = 0;  // of the packets buffered, summed as they arrive (their mbuf is hot then)
    rte_mbuf* pkts[kMaxBurst];
  };
  std::vector<Buffer> bufs_;
  std::vector<PortTxStats> stats_;
  uint16_t queue_;
  uint16_t capacity_;
  DropCounters& drops_;
};

}  // namespace ngstack::stack
