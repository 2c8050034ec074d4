// The control socket: `ngstack show|set|route|arp ...` against a running
// instance, as `vppctl show` or `ovs-appctl` do.
//
// Where. A UNIX stream socket, ngstack.ctl, in the instance's DPDK runtime
// directory (rte_eal_get_runtime_dir(): /var/run/dpdk/<eal.file_prefix> for
// root). It is per instance, as reachable as the telemetry socket beside it
// (the directory is root's, the socket 0600), and goes when the runtime
// directory is removed at exit. DPDK telemetry is not used for this: its
// replies are capped (16 KiB in all, 128-byte strings, 512 array entries),
// too small for a large FIB or ARP table, and cannot carry formatted tables.
//
// Protocol. One request per connection: the client sends one line (the
// command's words, at most kMaxRequest bytes), the server answers "ok\n" or
// "error\n" followed by the text, and closes. Both sides time out.
//
// Threads. One control thread serves the socket; it starts after the workers
// launch and is joined before the Runtime is torn down, so the Runtime
// outlives every request. Requests run one at a time under one control mutex:
// changes (netisr, routes, ARP) never overlap.
#pragma once

#include <rte_ether.h>

#include <optional>
#include <string>
#include <vector>

#include "conf/config.hpp"
#include "conf/result.hpp"
#include "dispatch/netisr.hpp"

namespace ngstack::app {

struct Runtime;

inline constexpr std::size_t kMaxRequest = 4096;
inline constexpr const char* kControlSocketName = "ngstack.ctl";

// One command, as parsed on both sides (the client checks it before connecting).
struct ControlCommand {
  enum class Kind { show, set_netisr, set_buckets, route_add, route_del, arp_add, arp_del };
  Kind kind = Kind::show;
  std::string section;  // show: ports|workers|netisr|arp|fib|fdb|locks|services|stats
  bool json = false;
  std::string proto;    // set netisr PROTO
  std::optional<dispatch::Policy> policy;
  std::optional<dispatch::Mode> mode;
  std::optional<uint32_t> qlimit;
  std::vector<uint16_t> buckets;  // set netisr buckets MAP
  conf::Ipv4Prefix prefix;        // route
  conf::RouteAction action = conf::RouteAction::forward;
  uint32_t via = 0;
  uint32_t addr = 0;              // arp
  rte_ether_addr mac{};
  std::string port;               // arp: interface name (del: may be empty)
};

// `words` start with show|set|route|arp; --prefix and --json... are not in them.
Result<ControlCommand> parse_control(const std::vector<std::string>& words);

// The command line of a control command: the words to send and --prefix.
struct ControlRequest {
  std::vector<std::string> words;
  std::string prefix;  // eal.file_prefix of the instance; empty: the only one running
};
Result<ControlRequest> parse_control_args(const std::vector<std::string>& args);

struct ControlReply {
  bool ok = true;
  std::string text;
};
// Runs one request line against `rt` (on the control thread).
ControlReply handle_control(Runtime& rt, const std::string& line);

// The server, for the Runtime of this process. start: after workers launch;
// stop: before teardown (returns once no request runs any more).
Status start_control(Runtime* rt);
void stop_control();

// The client side: finds the instance, sends the request, prints the reply.
// Returns the exit status (0 ok; 1 an error, the server's or no instance).
int run_control_client(const ControlRequest& req);

}  // namespace ngstack::app
