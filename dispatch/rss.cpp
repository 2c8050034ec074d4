#include "dispatch/rss.hpp"

#include <rte_ethdev.h>

namespace ngstack::dispatch {

std::vector<uint8_t> symmetric_rss_key(std::size_t len) {
  std::vector<uint8_t> key(len);
  for (std::size_t i = 0; i < len; ++i) key[i] = (i % 2 == 0) ? 0x6d : 0x5a;
  return key;
}

namespace {
struct RssTypeName {
  std::string_view name;
  uint64_t mask;
};
constexpr RssTypeName kRssTypes[] = {
    {"ip", RTE_ETH_RSS_IP},
    {"tcp", RTE_ETH_RSS_TCP},
    {"udp", RTE_ETH_RSS_UDP},
    {"ipv4", RTE_ETH_RSS_IPV4 | RTE_ETH_RSS_FRAG_IPV4 | RTE_ETH_RSS_NONFRAG_IPV4_OTHER},
    {"ipv4-tcp", RTE_ETH_RSS_NONFRAG_IPV4_TCP},
    {"ipv4-udp", RTE_ETH_RSS_NONFRAG_IPV4_UDP},
    {"ipv6", RTE_ETH_RSS_IPV6 | RTE_ETH_RSS_FRAG_IPV6 | RTE_ETH_RSS_NONFRAG_IPV6_OTHER},
    {"ipv6-tcp", RTE_ETH_RSS_NONFRAG_IPV6_TCP},
    {"ipv6-udp", RTE_ETH_RSS_NONFRAG_IPV6_UDP},
};
}  // namespace

std::optional<uint64_t> rss_type_from_name(std::string_view name) {
  for (const auto& t : kRssTypes)
    if (t.name == name) return t.mask;
  return std::nullopt;
}

std::string rss_type_names() {
  std::string out;
  for (const auto& t : kRssTypes) {
    if (!out.empty()) out += ", ";
    out += t.name;
  }
  return out;
}

void fill_reta_round_robin(std::span<uint16_t> reta, uint16_t nb_queues) {
  for (std::size_t i = 0; i < reta.size(); ++i)
    reta[i] = nb_queues == 0 ? 0 : static_cast<uint16_t>(i % nb_queues);
}

}  // namespace ngstack::dispatch
