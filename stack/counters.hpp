// Statistics counters and named drop reasons. Counters have one writer each;
// see dispatch/counter.hpp.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "dispatch/counter.hpp"

namespace ngstack::stack {

using dispatch::Counter;

// Why a packet was freed instead of sent. Every freed mbuf is counted under
// exactly one of these, so that rx == tx + drops holds at every stop.
enum class DropReason : uint8_t {
  tx_full,   // the egress tx queue had no room (rte_eth_tx_burst sent fewer)
  no_path,   // forwarder: the ingress port is the input of no path
  runt,      // shorter than an Ethernet header
  // IPv4 input (stack/ipv4/input.hpp, RFC 1812 §5.2.2 order)
  ipv4_truncated,
  ipv4_bad_version,
  ipv4_bad_ihl,
  ipv4_bad_length,
  ipv4_bad_checksum,
  ipv4_bad_source,
  ipv4_bad_destination,
  kCount
};

inline constexpr std::size_t kDropReasonCount = static_cast<std::size_t>(DropReason::kCount);

std::string_view drop_reason_name(DropReason r);

class DropCounters {
 public:
  void add(DropReason r, uint64_t n) { c_[static_cast<std::size_t>(r)].add(n); }
  uint64_t get(DropReason r) const { return c_[static_cast<std::size_t>(r)].get(); }
  uint64_t total() const {
    uint64_t t = 0;
    for (const auto& c : c_) t += c.get();
    return t;
  }

 private:
  std::array<Counter, kDropReasonCount> c_{};
};

}  // namespace ngstack::stack
