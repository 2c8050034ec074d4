#include "stack/counters.hpp"

namespace ngstack::stack {

std::string_view drop_reason_name(DropReason r) {
  switch (r) {
    case DropReason::tx_full: return "tx_full";
    case DropReason::no_path: return "no_path";
    case DropReason::runt: return "runt";
    case DropReason::ipv4_truncated: return "ipv4_truncated";
    case DropReason::ipv4_bad_version: return "ipv4_bad_version";
    case DropReason::ipv4_bad_ihl: return "ipv4_bad_ihl";
    case DropReason::ipv4_bad_length: return "ipv4_bad_length";
    case DropReason::ipv4_bad_checksum: return "ipv4_bad_checksum";
    case DropReason::ipv4_bad_source: return "ipv4_bad_source";
    case DropReason::ipv4_bad_destination: return "ipv4_bad_destination";
    case DropReason::kCount: break;
  }
  return "unknown";
}

}  // namespace ngstack::stack
