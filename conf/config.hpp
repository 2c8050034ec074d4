// The typed configuration of one ngstack process, as loaded from YAML.
//
// Plain structs only: conf/ knows nothing of DPDK ports or the stack. Fields
// that can only be checked once devices are probed (queue counts, MTU) keep the
// source position of their key so that app/ can still report file:line:column.
// Indices into `ports` are stable: port i in the config becomes the i-th port
// that app/ brings up.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ngstack::conf {

// Where a key was written: "file:line:column: key".
struct SourcePos {
  std::string file;
  int line = 0;    // 1-based; 0 when the value was defaulted
  int column = 0;  // 1-based
  std::string key; // dotted path, e.g. ports[0].rx_queues
  std::string where() const;
};

using MacAddr = std::array<uint8_t, 6>;
std::string format_mac(const MacAddr& mac);

struct EalConfig {
  std::vector<unsigned> cores;  // EAL lcores; cores[0] is the main (control) lcore
  unsigned memory_mb = 512;
  bool no_huge = false;
  std::string file_prefix = "ngstack";
  std::string log_level = "notice";
  std::vector<std::string> extra_args;
  std::map<unsigned, unsigned> lcore_cpus;  // lcore -> CPU where they differ (EAL --lcores)
  SourcePos cores_pos;
  unsigned cpu_of(unsigned lcore) const {
    auto it = lcore_cpus.find(lcore);
    return it == lcore_cpus.end() ? lcore : it->second;
  }
};

struct RssConfig {
  std::vector<std::string> hash_names{"ip", "tcp", "udp"};
  uint64_t hash_types = 0;          // RTE_ETH_RSS_* mask from hash_names
  std::vector<uint8_t> key;         // empty: the symmetric key at the device's length
};

struct PortConfig {
  std::string name;
  std::string device;  // PCI address (0000:01:00.0) or vdev string (net_pcap0,rx_pcap=...)
  uint16_t rx_queues = 1;
  uint16_t tx_queues = 0;  // 0: one per worker (every worker owns a tx queue)
  uint16_t rx_ring = 1024;
  uint16_t tx_ring = 1024;
  uint16_t mtu = 1500;
  bool promiscuous = true;
  std::optional<MacAddr> mac;
  RssConfig rss;
  SourcePos pos, device_pos, rx_queues_pos, tx_queues_pos, mtu_pos, rx_ring_pos, tx_ring_pos;

  bool is_vdev() const;              // device names a virtual device (net_*)
  std::string device_name() const;   // the part before the first comma
};

struct RxQueueRef {
  uint16_t port = 0;  // index into Config::ports
  uint16_t queue = 0;
  bool operator==(const RxQueueRef&) const = default;
};

struct WorkerConfig {
  unsigned lcore = 0;
  std::vector<RxQueueRef> rx;
  SourcePos pos;
};

struct WorkersConfig {
  uint16_t burst = 32;
  bool auto_assign = true;
  std::vector<WorkerConfig> list;  // one per worker lcore, in config order
  SourcePos lcores_pos;
};

struct ForwardPath {
  uint16_t in_port = 0;   // index into ports
  uint16_t out_port = 0;
  std::optional<MacAddr> dst_mac;  // set: rewrite dst to this and src to out_port's MAC
  SourcePos pos;
};

struct ForwarderConfig {
  std::vector<ForwardPath> paths;
};

struct MempoolConfig {
  unsigned mbufs = 0;  // 0: sized from rings, queues and workers
  unsigned cache = 256;
  uint16_t data_room = 2048;
};

// netisr settings of one protocol; unset fields keep the protocol's defaults.
struct DispatchProtoConfig {
  std::optional<std::string> policy;  // source | flow | cpu
  std::optional<std::string> mode;    // direct | hybrid | deferred
  std::optional<uint32_t> qlimit;
  SourcePos pos;
};

struct DispatchConfig {
  std::optional<std::string> mode;  // default mode of every protocol
  unsigned buckets = 128;           // RSS buckets (power of two)
  std::vector<uint16_t> bucket_map; // bucket -> worker index; empty: round robin
  std::map<std::string, DispatchProtoConfig> protocols;
  uint16_t drain_batch = 0;         // per queue per loop iteration; 0: workers.burst
};

enum class Mode { forwarder };
const char* mode_name(Mode m);

struct Config {
  std::string source;  // file path, or "<embedded>"
  EalConfig eal;
  std::vector<PortConfig> ports;
  WorkersConfig workers;
  Mode mode = Mode::forwarder;
  ForwarderConfig forwarder;
  MempoolConfig mempool;
  DispatchConfig dispatch;

  int port_index(const std::string& name) const;  // -1 when absent
  uint16_t tx_queues_of(const PortConfig& p) const;
  bool is_output(std::size_t port_index) const;  // something may be sent out of it
  unsigned mbufs_needed() const;  // the pool size `mempool.mbufs: auto` resolves to
};

// Spread rx queues over workers. Queue q of every port goes to worker q % W, so
// that with a symmetric RSS key both directions of a flow meet on one worker.
// When there are fewer queues per port than workers, (port, queue) pairs are
// dealt round robin instead so that no worker idles.
void assign_rx_queues(Config& cfg);

// The resolved configuration as YAML (what `ngstack check` prints).
std::string dump_yaml(const Config& cfg);

}  // namespace ngstack::conf
