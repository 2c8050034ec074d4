// The embedded default: what `ngstack` runs when given no config file. It needs
// no NIC, no hugepages and no file: ngstack writes a capture of UDP flows into a
// temporary directory, replays it forever through net_pcap (infinite_rx) and
// forwards it to a net_null sink.
#pragma once

#include <set>
#include <string>

#include "conf/config.hpp"
#include "conf/result.hpp"

namespace ngstack::app {

// The MAC address net_pcap gives its first port (net_pcap0).
inline constexpr uint8_t kPcapPort0Mac[6] = {0x02, 0x70, 0x63, 0x61, 0x70, 0x00};

// A capture of `flows` Ethernet/IPv4/UDP frames of `frame_len` bytes (without
// FCS) to `dst`, 198.18.0.0/16 -> 198.19.0.0/16, valid IPv4 checksums.
Status write_flow_pcap(const std::string& path, unsigned flows, unsigned frame_len, const uint8_t (&dst)[6]);

// The embedded configuration as YAML, for the given capture and CPUs.
std::string embedded_config_yaml(const std::string& pcap_path, unsigned main_lcore, unsigned worker_lcore,
                                 const std::string& file_prefix);

// Writes the capture into a fresh temporary directory and loads the embedded
// config; `tmp_dir` receives the directory to remove after the run.
Result<conf::Config> load_embedded(const std::set<unsigned>& cpus, std::string& tmp_dir);

}  // namespace ngstack::app
