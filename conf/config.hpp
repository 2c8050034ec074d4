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

#include "conf/result.hpp"

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
  unsigned mbufs = 0;  // 0: sized from rings, queues, workers and what the stack may hold (mbufs_needed)
  unsigned cache = 256;
  uint16_t data_room = 2048;
  SourcePos mbufs_pos;  // where mbufs was set explicitly
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

// An IPv4 prefix, host byte order: 198.18.1.1/24 keeps the host bits (an
// interface address); routes are stored with the host bits cleared.
struct Ipv4Prefix {
  uint32_t addr = 0;
  uint8_t len = 32;
  uint32_t mask() const { return len == 0 ? 0 : ~uint32_t{0} << (32 - len); }
  bool operator==(const Ipv4Prefix&) const = default;
};
std::string format_ipv4(uint32_t addr);
std::string format_prefix(const Ipv4Prefix& p);

// Router mode: one L3 interface per listed port.
struct InterfaceConfig {
  uint16_t port = 0;                   // index into ports
  std::vector<Ipv4Prefix> addresses;   // the first is the source of ICMP errors sent from this port
  SourcePos pos;
};

enum class RouteAction : uint8_t { forward, blackhole, reject };
const char* route_action_name(RouteAction a);

struct RouteConfig {
  Ipv4Prefix prefix;
  RouteAction action = RouteAction::forward;
  uint32_t via = 0;                // forward: the gateway (on a connected subnet)
  SourcePos pos;
};

struct StaticNeighborConfig {
  uint16_t port = 0;
  uint32_t addr = 0;
  MacAddr mac{};
  SourcePos pos;
};

struct ArpConfig {
  std::vector<StaticNeighborConfig> statics;
  unsigned reachable_ms = 30000;  // confirmed entries turn stale after this
  unsigned stale_ms = 60000;      // stale entries are removed after this more
  unsigned retries = 3;           // requests before a resolution fails
  unsigned retry_ms = 1000;       // between requests
  unsigned hold_packets = 16;     // packets waiting per unresolved neighbour
  unsigned max_entries = 4096;
  unsigned hold_total = 0;        // packets waiting in all hold queues together; 0: auto (Config::arp_hold_total)
  // New entries (next hops resolved, requesters learned) per second per
  // worker, and the burst: an address scan cannot serialise every worker on
  // the table's writer lock.
  unsigned learn_rate = 5000;
  unsigned learn_burst = 1000;
};

struct IcmpConfig {
  unsigned rate = 100;   // errors per second per worker (token bucket)
  unsigned burst = 50;
};

struct ReassemblyConfig {
  // Per worker, datagrams being reassembled; the pool is sized for 8 fragments
  // each (rte_ip_frag's limit), so the default costs 2 048 mbufs per worker.
  unsigned max_datagrams = 256;
  unsigned timeout_ms = 2000;
};
// The most fragments rte_ip_frag keeps of one datagram: DPDK 22.11's
// RTE_LIBRTE_IP_FRAG_MAX_FRAG (rte_config.h; tests/unit/test_config.cpp
// checks the two agree). conf/ includes no DPDK header.
inline constexpr unsigned kMaxFragmentsPerDatagram = 8;

struct RouterConfig {
  std::vector<InterfaceConfig> interfaces;
  std::vector<RouteConfig> routes;
  ArpConfig arp;
  IcmpConfig icmp;
  ReassemblyConfig reassembly;
};

// Bridge mode: one bridge domain over the listed ports.
struct BridgePortConfig {
  uint16_t port = 0;
  uint16_t access_vlan = 0;           // access port: untagged frames belong to this VLAN
  std::vector<uint16_t> trunk_vlans;  // trunk port: 802.1Q-tagged frames of these VLANs
  SourcePos pos;
  bool vlan_aware() const { return access_vlan != 0 || !trunk_vlans.empty(); }
};

struct BridgeConfig {
  std::vector<BridgePortConfig> ports;
  unsigned aging_ms = 300000;  // IEEE 802.1D default: 300 s
  unsigned max_entries = 4096;
  // New stations each worker may learn: a token bucket of learn_rate per
  // second, up to learn_burst at once. Frames whose source waits are flooded.
  unsigned learn_rate = 10000;
  unsigned learn_burst = 1000;
};

// Traffic mode: ngstack as a tester (as TRex or pktgen-dpdk are used).
// Generator ports send templated Ethernet/IPv4/UDP or TCP SYN frames over a
// set of flows at a paced rate; sink ports count them per flow (loss,
// duplicates, reordering) and measure latency. See stack/traffic/.
enum class TrafficProtocol { udp, tcp_syn };
enum class RateUnit { unlimited, pps, bps, percent };

struct AddressRange {
  uint32_t first = 0;  // host order
  uint32_t count = 1;
};
struct PortRange {
  uint16_t first = 0;
  uint32_t count = 1;
};

struct GeneratorConfig {
  uint16_t port = 0;  // index into Config::ports
  TrafficProtocol protocol = TrafficProtocol::udp;
  // Frame sizes with FCS (64..9000), sent in turn by weight: IMIX is
  // {64, 594, 1518} with weights {7, 4, 1}.
  std::vector<uint16_t> sizes{64};
  std::vector<uint16_t> weights{1};
  std::optional<MacAddr> src_mac;  // unset: the port's MAC
  MacAddr dst_mac{0x02, 0, 0, 0, 0, 0x02};
  AddressRange src{0xc6120001u, 1};  // 198.18.0.1
  AddressRange dst{0xc6130001u, 1};  // 198.19.0.1
  PortRange sport{1024, 1};
  PortRange dport{9, 1};
  uint32_t flows = 1;  // flow i takes element i % count of every range
  uint8_t ttl = 64;
  RateUnit rate_unit = RateUnit::unlimited;
  double rate = 0;    // in rate_unit; bps counts frame bits with FCS, percent is of the link's L1 rate
  uint16_t burst = 32;
  uint64_t packets = 0;      // 0: no limit
  uint64_t duration_ms = 0;  // 0: no limit
  SourcePos pos, rate_pos;
};

struct SinkConfig {
  uint16_t port = 0;
  uint32_t max_flows = 4096;  // stamps naming a flow at or above this are counted, not tracked (~300 bytes per flow per worker)
  SourcePos pos;
};

struct TrafficConfig {
  std::vector<GeneratorConfig> generators;
  std::vector<SinkConfig> sinks;
  // End the run once every generator is done and no sink has received a
  // frame for settle_ms (one trial of a measurement: RFC 2544, the lab runner).
  bool stop_when_done = false;
  uint32_t settle_ms = 200;
};

// `metrics.listen`: where the Prometheus endpoint (GET /metrics) listens.
struct ListenAddr {
  std::string host;  // an IPv4 or IPv6 address literal, without brackets
  uint16_t port = 0;
  std::string str() const;  // 127.0.0.1:9464, [::1]:9464
};

// "ADDRESS:PORT" with an IPv4 address or a bracketed IPv6 one, port 1..65535;
// the error says what is expected.
Result<ListenAddr> parse_listen(const std::string& s);

// Prometheus text exposition from a control-plane thread; absent: off.
struct MetricsConfig {
  std::optional<ListenAddr> listen;
  SourcePos listen_pos;
};

// The host stack's connection table (stack/pcb): how it is split and locked.
// conf/ knows nothing of stack/, so the names stay strings here; the loader
// accepts only the values listed.
// stack.tcp: TCP's timers, buffers and limits (stack/tcp).
struct TcpConfig {
  uint32_t msl_ms = 30000;               // TIME-WAIT lasts 2 MSL
  uint32_t min_rto_ms = 200;             // RFC 6298 (2.4) says 1 s; Linux and FreeBSD use 200 ms
  uint32_t initial_rto_ms = 1000;        // RFC 6298 (2.1)
  uint32_t max_rto_ms = 60000;
  uint32_t delayed_ack_ms = 40;
  uint32_t fin_wait2_timeout_ms = 60000; // a closed connection's FIN-WAIT-2
  uint32_t sndbuf = 262144;              // bytes per connection
  uint32_t rcvbuf = 262144;              // bytes per connection: the window offered
  bool nagle = true;
  uint32_t ooo_segments = 256;           // out-of-order segments kept per connection (a 256 KB window's worth)
  uint32_t syn_backlog = 1024;           // SYN-RECEIVED connections per listener; SYN cookies beyond
  bool syn_cookies = true;
  double challenge_ack_limit = 1000;     // RFC 5961 challenge ACKs per second per worker
  uint32_t syn_retries = 5;
  uint32_t data_retries = 12;
  std::string congestion_control = "newreno";  // newreno | cubic
  uint32_t keepalive_interval_ms = 75000;  // between keepalive probes (services turn keepalive on)
  uint32_t keepalive_probes = 9;           // unanswered probes that end a connection
  // mbufs one worker's connections may hold in their send, receive and
  // reassembly queues together; 0: auto (Config::tcp_worker_buffers)
  uint32_t worker_buffers = 0;
  bool tso = true;                         // TCP segmentation offload where a port offers it
};

struct StackConfig {
  unsigned groups = 128;             // connection groups, a power of two (1..65536)
  std::string locking = "group";     // giant | group
  std::string lock_type = "spin";    // spin | queuing | speculative | rte_spinlock
  unsigned connections = 16384;      // PCBs preallocated per protocol table (spread over the groups)
  TcpConfig tcp;
};

// Built-in services on the host stack's sockets (host and router modes).
enum class ServiceType : uint8_t { udp_echo, udp_discard, udp_client, tcp_echo, tcp_discard, tcp_source, http, tcp_client,
                                  tcp_load /* a `clients:` generator, in the services' views */ };
inline bool is_tcp_service(ServiceType t) { return t >= ServiceType::tcp_echo; }
const char* service_type_name(ServiceType t);

struct ServiceConfig {
  ServiceType type = ServiceType::udp_echo;
  uint32_t address = 0;   // echo/discard: the local address bound (0: any of ours); client: the source (0: by route)
  uint16_t port = 0;      // echo/discard: bound; client: the server's
  // udp-client only:
  uint32_t server = 0;
  uint32_t flows = 1;         // connected sockets, spread over the workers
  uint16_t payload = 64;      // UDP payload bytes per request (>= 16: sequence and timestamp)
  uint16_t window = 1;        // requests outstanding per flow
  double rate = 0;            // requests per second in all; 0: closed loop
  uint64_t requests = 0;      // in all; 0: no limit
  uint64_t duration_ms = 0;   // 0: no limit
  uint32_t timeout_ms = 1000; // unanswered this long: lost
  // tcp-source: bytes sent on each connection before FIN; 0: until the peer closes.
  // tcp-client: bytes sent on each connection (0: none); it reads and drops
  // what comes, for `duration_ms` (0: until stopped), over `flows` connections.
  uint64_t bytes = 0;
  // http: the body of every 200 response (body mode), or the files of a
  // directory read at start-up (files mode, `root`); `sessions` connections
  // served at once (each holds a request-head buffer of 8 KB).
  uint64_t body_bytes = 1024;
  std::string root;
  uint32_t sessions = 4096;
  uint32_t backlog = 0;       // TCP services: the listener's SYN backlog (0: stack.tcp.syn_backlog)
  std::string congestion_control;  // TCP services: newreno | cubic (empty: stack.tcp's)
  uint32_t keepalive_ms = 0;       // TCP services: keepalive idle time (0: off)
  SourcePos pos;
};

// `clients:` (host and router modes): stateful TCP load generators, the TCP
// side of traffic generation (stack/services/tcp_load.hpp). Each opens
// connections to its targets at a paced rate or keeping a fixed number open,
// runs `requests` transactions on each (raw request/response or HTTP/1.1
// GET), then closes with FIN or RST.
enum class ClientTransaction : uint8_t { raw, http };
enum class ClientClose : uint8_t { fin, rst };
const char* client_transaction_name(ClientTransaction t);

struct ClientConfig {
  std::string name;             // for the reports; default client<i>
  AddressRange addresses;       // targets: connection i goes to address i % count,
  PortRange ports;              //   port (i / addresses) % count
  uint32_t source = 0;          // our address to connect from (0: the route's source)
  double rate = 0;              // connections per second in all (TSC paced), or
  uint32_t concurrency = 0;     // connections kept open at once
  uint64_t connections = 0;     // in all; 0: no limit
  uint64_t duration_ms = 0;     // opening stops after this; 0: no limit
  ClientTransaction transaction = ClientTransaction::raw;
  uint32_t request_bytes = 64;  // raw: sent per request
  uint32_t response_bytes = 64; // raw: read per response
  std::string path = "/";       // http: the request target
  std::string host;             // http: the Host field (empty: the target address)
  uint32_t requests = 1;        // per connection (keep-alive); 0: connect and close
  ClientClose close = ClientClose::fin;
  uint32_t timeout_ms = 5000;   // the handshake and each request-response must finish within it
  uint32_t max_open = 0;        // sessions (open connections) at most; 0: auto
  SourcePos pos;
  // max_open resolved: the configured value, else concurrency, else what
  // rate x timeout can keep open (at least 64, at most 65536).
  uint32_t sessions() const;
};

struct ClientsConfig {
  std::vector<ClientConfig> generators;
  // End the run once every generator opened all it was to open (its count or
  // duration) and every connection it opened has ended.
  bool stop_when_done = false;
  SourcePos pos;
};

// host: an IPv4 end host (the router's layers with forwarding off); its
// section `host:` has the router's keys and is read into Config::router.
enum class Mode { forwarder, router, bridge, traffic, host };
const char* mode_name(Mode m);

struct Config {
  std::string source;  // file path, or "<embedded>"
  EalConfig eal;
  std::vector<PortConfig> ports;
  WorkersConfig workers;
  Mode mode = Mode::forwarder;
  ForwarderConfig forwarder;
  RouterConfig router;
  BridgeConfig bridge;
  TrafficConfig traffic;
  MempoolConfig mempool;
  DispatchConfig dispatch;
  MetricsConfig metrics;
  StackConfig stack;
  std::vector<ServiceConfig> services;
  ClientsConfig clients;

  // Router and host mode: the IPv4 stack of interfaces, ARP, ICMP, sockets.
  bool is_inet() const { return mode == Mode::router || mode == Mode::host; }
  int port_index(const std::string& name) const;  // -1 when absent
  uint16_t tx_queues_of(const PortConfig& p) const;
  bool is_output(std::size_t port_index) const;  // something may be sent out of it
  // Pool sizing. What the stack may keep at once without freeing it:
  uint64_t ring_mbufs() const;        // rx and tx descriptors of every queue
  uint64_t reassembly_mbufs() const;  // router: workers x max_datagrams x kMaxFragmentsPerDatagram
  // router.arp.hold_total resolved: the configured value, else
  // min(max_entries x hold_packets, a quarter of the pool), where the pool is
  // mempool.mbufs when set, else what auto sizing needs besides the budget;
  // never more than max_entries x hold_packets.
  unsigned arp_hold_total() const;
  uint64_t mbufs_pinned() const;      // rings + (router) ARP hold budget + reassembly
  unsigned mbufs_needed() const;      // the pool size: mempool.mbufs, or what `auto` resolves to
  // stack.tcp.worker_buffers resolved: the configured value, else half of
  // what the pool holds beyond its pinned part (mbufs_pinned), shared out
  // over the workers (at least 64 each): TCP's queues can never take the
  // mbufs the rx rings and packets in flight need.
  unsigned tcp_worker_buffers() const;
};

// Spread rx queues over workers. Queue q of every port goes to worker q % W, so
// that with a symmetric RSS key both directions of a flow meet on one worker.
// When there are fewer queues per port than workers, (port, queue) pairs are
// dealt round robin instead so that no worker idles.
void assign_rx_queues(Config& cfg);

// The resolved configuration as YAML (what `ngstack check` prints).
std::string dump_yaml(const Config& cfg);

}  // namespace ngstack::conf
