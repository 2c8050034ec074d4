// IPv4 input validation and destination classification (RFC 791, RFC 1812
// §5.2.2 and §5.3.7), the first stage of ipv4_input for a burst.
//
// A packet passes the checks in the order RFC 1812 §5.2.2 lists them, and the
// first failure names its drop reason:
//   truncated        fewer bytes than an IPv4 header after the link header
//   bad_version      version != 4
//   bad_ihl          IHL < 5, or the header runs past the frame
//   bad_length       total length < header, or more than the frame holds
//                    (a frame *longer* than total length is Ethernet padding)
//   bad_checksum     the NIC said bad, or the software sum does not verify
//   bad_source       source is limited broadcast, multicast, class E,
//                    loopback, 0.0.0.0, or one of our own addresses (§5.3.7)
//   bad_destination  destination is 0.0.0.0 or loopback (martians)
// Passing packets are classified: local (one of our addresses), broadcast
// (255.255.255.255 or the directed broadcast of the ingress interface's
// subnet), multicast (224/4), or forward. TTL is the forwarding path's
// business (time exceeded), not input's: a packet for us is delivered
// whatever its TTL. IP options are not validated here: forwarding passes them
// through untouched and local delivery ignores them.
#pragma once

#include <rte_mbuf.h>

#include <cstdint>
#include <vector>

#include "stack/counters.hpp"

namespace ngstack::stack::ipv4 {

// An address of one of our interfaces (host byte order).
struct InterfaceAddress {
  uint16_t port = 0;  // DPDK port id
  uint32_t addr = 0;
  uint8_t prefix_len = 24;
  uint32_t mask() const { return prefix_len == 0 ? 0 : ~uint32_t{0} << (32 - prefix_len); }
  uint32_t broadcast() const { return (addr & mask()) | ~mask(); }
};

class LocalAddresses {
 public:
  explicit LocalAddresses(std::vector<InterfaceAddress> addrs = {}) : addrs_(std::move(addrs)) {}
  bool is_own(uint32_t a) const {
    for (const auto& i : addrs_)
      if (i.addr == a) return true;
    return false;
  }
  // The directed broadcast of a subnet attached to `port` (prefixes < /31).
  bool is_subnet_broadcast(uint32_t a, uint16_t port) const {
    for (const auto& i : addrs_)
      if (i.port == port && i.prefix_len < 31 && i.broadcast() == a) return true;
    return false;
  }
  const std::vector<InterfaceAddress>& all() const { return addrs_; }

 private:
  std::vector<InterfaceAddress> addrs_;
};

enum class Disposition : uint8_t { drop, local, broadcast, multicast, forward };

struct InputVerdict {
  Disposition disposition = Disposition::drop;
  DropReason reason = DropReason::kCount;  // set when disposition is drop
  uint16_t header_len = 0;                 // IHL in bytes
  uint16_t total_len = 0;                  // the IP total length (frame may carry padding after it)
};

// `l3_offset` is where the IPv4 header starts in the first segment.
InputVerdict check_input(const rte_mbuf* m, uint16_t l3_offset, const LocalAddresses& local);

}  // namespace ngstack::stack::ipv4
