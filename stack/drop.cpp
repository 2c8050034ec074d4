#include "stack/counters.hpp"

namespace ngstack::stack {

std::string_view drop_reason_name(DropReason r) {
  switch (r) {
    case DropReason::tx_full: return "tx_full";
    case DropReason::no_path: return "no_path";
    case DropReason::runt: return "runt";
    case DropReason::kCount: break;
  }
  return "unknown";
}

}  // namespace ngstack::stack
