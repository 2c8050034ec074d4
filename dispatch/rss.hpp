// RSS: the symmetric Toeplitz key, hash-type names and the redirection table.
//
// Ports and the (future) software flow hash must agree bucket for bucket, so the
// key, the hash types and the RETA layout live here, below both `app/` (which
// programs the NIC) and the dispatcher (which hashes in software when a NIC
// delivers no hash). The key is the 0x6d5a pattern: with it the Toeplitz hash of
// (src, dst, sport, dport) equals that of (dst, src, dport, sport), so both
// directions of a connection land in the same bucket (Woo and Park, "Scalable
// TCP Session Monitoring with Symmetric Receive-side Scaling", 2012).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ngstack::dispatch {

// 52 bytes covers every NIC key size in use (40 for most, 52 for i40e/ice).
inline constexpr std::size_t kMaxRssKeyLen = 52;

// The symmetric key truncated or extended to `len` bytes.
std::vector<uint8_t> symmetric_rss_key(std::size_t len = 40);

// Hash-type names accepted in configs: "ip", "tcp", "udp", "ipv4", "ipv4-tcp",
// "ipv4-udp", "ipv6", "ipv6-tcp", "ipv6-udp". Returns the RTE_ETH_RSS_* mask.
std::optional<uint64_t> rss_type_from_name(std::string_view name);

// All accepted names, for error messages.
std::string rss_type_names();

// Fill a redirection table of `reta.size()` entries round robin over
// `nb_queues` queues: entry i -> queue i % nb_queues, as NIC drivers do by
// default, so that RSS bucket b belongs to queue b % nb_queues.
void fill_reta_round_robin(std::span<uint16_t> reta, uint16_t nb_queues);

}  // namespace ngstack::dispatch
