#include "app/control.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <poll.h>
#include <rte_eal.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>
#include <thread>

#include "app/json.hpp"
#include "app/runtime.hpp"
#include "app/stats.hpp"

namespace ngstack::app {

namespace {

constexpr const char* kSections = "ports|workers|netisr|arp|fib|fdb|locks|services|tcp|stats";
constexpr const char* kUsage =
    "usage:\n"
    "  ngstack show ports|workers|netisr|arp|fib|fdb|locks|services|tcp|stats [--json] [--prefix P]\n"
    "  ngstack set netisr PROTO [policy source|flow|cpu] [mode direct|hybrid|deferred] [qlimit N] [--prefix P]\n"
    "  ngstack set netisr buckets MAP [--prefix P]\n"
    "  ngstack route add PREFIX via GATEWAY|blackhole|reject [--prefix P]\n"
    "  ngstack route del PREFIX [--prefix P]\n"
    "  ngstack arp add ADDRESS MAC PORT [--prefix P]\n"
    "  ngstack arp del ADDRESS [PORT] [--prefix P]";
// Seconds: the server's wait for a request line and for the client to read
// the reply; the client's wait for the whole reply.
constexpr int kServerIoTimeoutS = 2;
constexpr int kClientTimeoutS = 30;

Result<uint32_t> parse_addr(const std::string& s) {
  in_addr a{};
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) return Error{"expected an IPv4 address like 198.18.1.2, got \"" + s + "\""};
  return ntohl(a.s_addr);
}

Result<conf::Ipv4Prefix> parse_prefix(const std::string& s) {
  const auto slash = s.find('/');
  const std::string bad = "expected an IPv4 prefix like 198.19.200.0/24, got \"" + s + "\"";
  if (slash == std::string::npos || slash + 1 == s.size()) return Error{bad};
  auto a = parse_addr(s.substr(0, slash));
  char* end = nullptr;
  const long len = std::strtol(s.c_str() + slash + 1, &end, 10);
  if (!a || *end != '\0' || len < 0 || len > 32 || !std::isdigit(static_cast<unsigned char>(s[slash + 1])))
    return Error{bad};
  return conf::Ipv4Prefix{*a, static_cast<uint8_t>(len)};
}

Result<rte_ether_addr> parse_mac(const std::string& s) {
  unsigned b[6];
  char tail;
  if (std::sscanf(s.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) != 6)
    return Error{"expected a MAC address like 02:00:00:00:00:01, got \"" + s + "\""};
  rte_ether_addr m;
  for (int i = 0; i < 6; ++i) m.addr_bytes[i] = static_cast<uint8_t>(b[i]);
  return m;
}

Result<uint32_t> parse_uint(const std::string& what, const std::string& s, uint64_t max) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (s.empty() || !std::isdigit(static_cast<unsigned char>(s[0])) || *end != '\0' || errno == ERANGE || v > max)
    return Error{what + ": expected an integer in [0, " + std::to_string(max) + "], got \"" + s + "\""};
  return static_cast<uint32_t>(v);
}

std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> w;
  std::istringstream in(line);
  for (std::string s; in >> s;) w.push_back(s);
  return w;
}

std::string join(const std::vector<std::string>& w) {
  std::string s;
  for (const auto& x : w) s += (s.empty() ? "" : " ") + x;
  return s;
}

}  // namespace

Result<ControlCommand> parse_control(const std::vector<std::string>& w) {
  ControlCommand c;
  auto usage = [&](const std::string& why) -> Result<ControlCommand> { return Error{why + "\n" + kUsage}; };
  if (w.empty()) return usage("no command");
  const std::string& verb = w[0];
  if (verb == "show") {
    c.kind = ControlCommand::Kind::show;
    for (std::size_t i = 1; i < w.size(); ++i) {
      if (w[i] == "--json")
        c.json = true;
      else if (c.section.empty())
        c.section = w[i];
      else
        return usage("show: unexpected \"" + w[i] + "\"");
    }
    if (c.section.empty()) return usage(std::string("show: what? (") + kSections + ")");
    const std::string all = std::string("|") + kSections + "|";
    if (all.find("|" + c.section + "|") == std::string::npos)
      return usage("show: unknown table \"" + c.section + "\" (" + kSections + ")");
    return c;
  }
  if (verb == "set") {
    if (w.size() < 2 || w[1] != "netisr") return usage("set: only \"set netisr\" exists");
    if (w.size() < 4) return usage("set netisr: PROTO and at least one setting, or buckets MAP");
    if (w[2] == "buckets") {
      if (w.size() != 4) return usage("set netisr buckets: one MAP, comma-separated worker indexes");
      c.kind = ControlCommand::Kind::set_buckets;
      std::string item;
      std::istringstream in(w[3]);
      while (std::getline(in, item, ',')) {
        auto v = parse_uint("set netisr buckets", item, dispatch::kMaxWorkers - 1);
        if (!v) return Error{v.error()};
        c.buckets.push_back(static_cast<uint16_t>(*v));
      }
      if (c.buckets.empty() || w[3].back() == ',') return usage("set netisr buckets: empty entry in \"" + w[3] + "\"");
      return c;
    }
    c.kind = ControlCommand::Kind::set_netisr;
    c.proto = w[2];
    if ((w.size() - 3) % 2 != 0) return usage("set netisr " + c.proto + ": settings come as KEY VALUE pairs");
    for (std::size_t i = 3; i + 1 < w.size(); i += 2) {
      const std::string &k = w[i], &v = w[i + 1];
      if (k == "policy") {
        c.policy = dispatch::policy_from_name(v);
        if (!c.policy) return Error{"set netisr: unknown policy \"" + v + "\" (source, flow or cpu)"};
      } else if (k == "mode") {
        c.mode = dispatch::mode_from_name(v);
        if (!c.mode) return Error{"set netisr: unknown mode \"" + v + "\" (direct, hybrid or deferred)"};
      } else if (k == "qlimit") {
        auto q = parse_uint("set netisr qlimit", v, UINT32_MAX);
        if (!q) return Error{q.error()};
        c.qlimit = *q;
      } else {
        return usage("set netisr: unknown setting \"" + k + "\" (policy, mode, qlimit)");
      }
    }
    return c;
  }
  if (verb == "route") {
    if (w.size() >= 2 && w[1] == "add") {
      c.kind = ControlCommand::Kind::route_add;
      if (w.size() < 4) return usage("route add: PREFIX and via GATEWAY, blackhole or reject");
      auto p = parse_prefix(w[2]);
      if (!p) return Error{"route add: " + p.error()};
      c.prefix = *p;
      if (w[3] == "via") {
        if (w.size() != 5) return usage("route add: via takes one GATEWAY");
        auto gw = parse_addr(w[4]);
        if (!gw) return Error{"route add: " + gw.error()};
        c.via = *gw;
      } else if (w[3] == "blackhole" || w[3] == "reject") {
        if (w.size() != 4) return usage("route add: unexpected \"" + w[4] + "\"");
        c.action = w[3] == "blackhole" ? conf::RouteAction::blackhole : conf::RouteAction::reject;
      } else {
        return usage("route add: expected via, blackhole or reject, got \"" + w[3] + "\"");
      }
      return c;
    }
    if (w.size() >= 2 && w[1] == "del") {
      c.kind = ControlCommand::Kind::route_del;
      if (w.size() != 3) return usage("route del: one PREFIX");
      auto p = parse_prefix(w[2]);
      if (!p) return Error{"route del: " + p.error()};
      c.prefix = *p;
      return c;
    }
    return usage("route: add or del");
  }
  if (verb == "arp") {
    if (w.size() >= 2 && w[1] == "add") {
      c.kind = ControlCommand::Kind::arp_add;
      if (w.size() != 5) return usage("arp add: ADDRESS MAC PORT");
      auto a = parse_addr(w[2]);
      if (!a) return Error{"arp add: " + a.error()};
      auto m = parse_mac(w[3]);
      if (!m) return Error{"arp add: " + m.error()};
      c.addr = *a, c.mac = *m, c.port = w[4];
      return c;
    }
    if (w.size() >= 2 && w[1] == "del") {
      c.kind = ControlCommand::Kind::arp_del;
      if (w.size() != 3 && w.size() != 4) return usage("arp del: ADDRESS [PORT]");
      auto a = parse_addr(w[2]);
      if (!a) return Error{"arp del: " + a.error()};
      c.addr = *a;
      if (w.size() == 4) c.port = w[3];
      return c;
    }
    return usage("arp: add or del");
  }
  return usage("unknown command \"" + verb + "\"");
}

Result<ControlRequest> parse_control_args(const std::vector<std::string>& args) {
  ControlRequest r;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--prefix") {
      if (i + 1 >= args.size()) return Error{"--prefix needs a value (the instance's eal.file_prefix)"};
      r.prefix = args[++i];
    } else if (a.rfind("--prefix=", 0) == 0) {
      r.prefix = a.substr(9);
    } else {
      if (a.empty() || a.find_first_of(" \t\r\n") != std::string::npos)
        return Error{"\"" + a + "\": arguments may not be empty or contain white space"};
      r.words.push_back(a);
    }
  }
  if (r.prefix.empty() && std::find(args.begin(), args.end(), "--prefix=") != args.end())
    return Error{"--prefix needs a value (the instance's eal.file_prefix)"};
  if (r.prefix.find('/') != std::string::npos) return Error{"--prefix: a file prefix has no \"/\""};
  if (auto c = parse_control(r.words); !c) return Error{c.error()};
  if (join(r.words).size() >= kMaxRequest) return Error{"the command is too long"};
  return r;
}

// --- server --------------------------------------------------------------------

namespace {

std::string show(Runtime& rt, const ControlCommand& c) {
  Snapshot s = take_snapshot(rt);
  const std::string mode = conf::mode_name(rt.cfg.mode);
  JsonWriter j;
  j.begin_object();
  std::string text;
  if (c.section == "ports") {
    text = format_ports(s);
    json_ports(j, s);
  } else if (c.section == "workers") {
    text = format_workers(s);
    json_workers(j, s);
  } else if (c.section == "netisr") {
    text = format_netisr(s);
    json_netisr(j, s);
  } else if (c.section == "arp" || c.section == "fib") {
    if (c.section == "fib") snapshot_routes(rt, s);
    text = c.section == "arp" ? format_arp(s) : format_fib(s, true);
    json_router(j, s);
  } else if (c.section == "fdb") {
    text = format_fdb(s);
    json_bridge(j, s);
  } else if (c.section == "services") {
    // `clients:` generators are listed with the services they run beside.
    text = s.services.empty() ? "services: none (the configuration has no services: or clients:)\n"
                              : format_services(s) + format_clients(s);
    json_services(j, s);
    json_clients(j, s);
  } else if (c.section == "locks") {
    text = format_locks(s);
    json_locks(j, s);
  } else if (c.section == "tcp") {
    text = format_tcp(s, true);
    json_tcp(j, s);
  } else {  // stats
    snapshot_routes(rt, s);
    if (!c.json) return format_stats(s, mode, rt.cfg.source);
    Summary sum;
    sum.mode = mode;
    sum.source = rt.cfg.source;
    sum.tsc_hz = rt.tsc_hz;
    sum.final = std::move(s);
    return summary_json(sum);
  }
  j.end_object();
  return c.json ? j.str() + "\n" : text;
}

ControlReply apply(Runtime& rt, const ControlCommand& c) {
  const std::string mode = conf::mode_name(rt.cfg.mode);
  auto needs = [&](bool have, const std::string& what, const char* in_mode) -> std::optional<ControlReply> {
    if (have) return std::nullopt;
    return ControlReply{false, what + ": ngstack runs in " + mode + " mode; this exists in " + in_mode + " mode\n"};
  };
  using K = ControlCommand::Kind;
  switch (c.kind) {
    case K::show:
      if (c.section == "arp" || c.section == "fib")
        if (auto r = needs(rt.router != nullptr, "show " + c.section, "router")) return *r;
      if (c.section == "fdb")
        if (auto r = needs(rt.bridge != nullptr, "show fdb", "bridge")) return *r;
      // The connection tables and the services belong to the IPv4 stack.
      if ((c.section == "locks" || c.section == "services" || c.section == "tcp") && !rt.router)
        return {false, "show " + c.section + ": ngstack runs in " + mode +
                           " mode, which has no IPv4 stack (no UDP sockets, services or connection tables); "
                           "this exists in router and host modes\n"};
      return {true, show(rt, c)};
    case K::set_netisr: {
      dispatch::Netisr& n = *rt.netisr;
      const int p = n.find_protocol(c.proto);
      if (p < 0) {
        std::string names;
        for (unsigned i = 0; i < n.protocols(); ++i)
          names += (names.empty() ? "" : ", ") + n.protocol(static_cast<dispatch::ProtoId>(i)).name;
        return {false, "set netisr: no protocol \"" + c.proto + "\" (registered: " + names + ")\n"};
      }
      auto st = n.reconfigure([&](dispatch::DispatchConfig& dc) {
        auto& ps = dc.protos[static_cast<std::size_t>(p)];
        if (c.policy) ps.policy = *c.policy;
        if (c.mode) ps.mode = *c.mode;
        if (c.qlimit) ps.qlimit = *c.qlimit;
      });
      if (!st) return {false, "set netisr " + c.proto + ": " + st.error() + "\n"};
      const auto ps = n.current_config().protos[static_cast<std::size_t>(p)];
      const std::string now = fmt::format("netisr {}: policy {}, mode {}, qlimit {}", c.proto,
                                          dispatch::policy_name(ps.policy), dispatch::mode_name(ps.mode), ps.qlimit);
      spdlog::info("control: {}", now);
      return {true, now + "\n"};
    }
    case K::set_buckets: {
      auto st = rt.netisr->reconfigure([&](dispatch::DispatchConfig& dc) { dc.bucket_map = c.buckets; });
      if (!st) return {false, "set netisr buckets: " + st.error() + "\n"};
      std::string map;
      for (auto b : c.buckets) {
        if (!map.empty()) map += ',';
        map += std::to_string(b);
      }
      spdlog::info("control: netisr bucket map {}", map);
      return {true, "netisr bucket map " + map + "\n"};
    }
    case K::route_add:
    case K::route_del: {
      if (auto r = needs(rt.router != nullptr, "route", "router")) return *r;
      const auto st = c.kind == K::route_add ? rt.router->route_add(c.prefix, c.action, c.via)
                                             : rt.router->route_del(c.prefix);
      if (!st) return {false, std::string(c.kind == K::route_add ? "route add: " : "route del: ") + st.error() + "\n"};
      return {true, "route " + conf::format_prefix(c.prefix) + (c.kind == K::route_add ? " added\n" : " deleted\n")};
    }
    case K::arp_add:
    case K::arp_del: {
      if (auto r = needs(rt.router != nullptr, "arp", "router")) return *r;
      const auto st = c.kind == K::arp_add ? rt.router->arp_add(c.port, c.addr, c.mac) : rt.router->arp_del(c.addr, c.port);
      if (!st) return {false, std::string(c.kind == K::arp_add ? "arp add: " : "arp del: ") + st.error() + "\n"};
      return {true, "arp " + conf::format_ipv4(c.addr) + (c.kind == K::arp_add ? " added\n" : " deleted\n")};
    }
  }
  return {false, "unknown command\n"};
}

struct Server {
  int fd = -1;
  int wake = -1;  // eventfd: stop_control() ends the thread's poll at once
  std::string path;
  Runtime* rt = nullptr;
  std::thread thread;
  std::atomic<bool> stop{false};
};
std::mutex g_control_mutex;  // one request at a time
std::unique_ptr<Server> g_server;

void set_timeouts(int fd, int seconds) {
  timeval tv{seconds, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

using Deadline = std::chrono::steady_clock::time_point;

// Waits until `fd` can be read or written (`events`), the request's deadline
// passes or stop_control() wakes the thread: a client that trickles its
// request or reads its reply slowly holds the one control thread, and the
// shutdown that joins it, no longer than kServerIoTimeoutS.
bool wait_ready(const Server& srv, int fd, short events, Deadline deadline) {
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0 || srv.stop.load()) return false;
    pollfd p[2] = {{fd, events, 0}, {srv.wake, POLLIN, 0}};
    const int r = poll(p, 2, static_cast<int>(left));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0 || (p[1].revents & POLLIN)) return false;
    return true;
  }
}

// With `srv`, the server's reply: bounded by `deadline` as a whole and cut
// short by stop_control(). Without, the client's request.
bool send_all(int fd, const std::string& s, const Server* srv = nullptr, Deadline deadline = {}) {
  std::size_t off = 0;
  while (off < s.size()) {
    if (srv && !wait_ready(*srv, fd, POLLOUT, deadline)) return false;
    const ssize_t n = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;  // the client went away or stopped reading
    off += static_cast<std::size_t>(n);
  }
  return true;
}

void serve(Server& srv, int fd) {
  set_timeouts(fd, kServerIoTimeoutS);
  const Deadline read_by = std::chrono::steady_clock::now() + std::chrono::seconds(kServerIoTimeoutS);
  std::string line;
  char buf[512];
  bool complete = false;
  while (line.size() <= kMaxRequest) {
    if (!wait_ready(srv, fd, POLLIN, read_by)) break;
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF, timeout or error
    line.append(buf, static_cast<std::size_t>(n));
    if (const auto nl = line.find('\n'); nl != std::string::npos) {
      line.resize(nl);
      complete = true;
      break;
    }
  }
  if (line.empty() && !complete) return;  // a probe (the client looking for instances)
  ControlReply reply;
  if (line.size() > kMaxRequest) {
    reply = {false, "request longer than " + std::to_string(kMaxRequest) + " bytes\n"};
  } else {
    auto cmd = parse_control(split(line));
    if (!cmd) {
      reply = {false, cmd.error() + "\n"};
    } else {
      std::lock_guard lock(g_control_mutex);
      reply = apply(*srv.rt, *cmd);
    }
  }
  send_all(fd, (reply.ok ? "ok\n" : "error\n") + reply.text, &srv,
           std::chrono::steady_clock::now() + std::chrono::seconds(kServerIoTimeoutS));
}

void control_main(Server* srv) {
  while (!srv->stop.load()) {
    pollfd p[2] = {{srv->fd, POLLIN, 0}, {srv->wake, POLLIN, 0}};
    const int r = poll(p, 2, 1000);
    if (r <= 0 || !(p[0].revents & POLLIN)) continue;
    const int fd = accept4(srv->fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    serve(*srv, fd);
    close(fd);
  }
}

}  // namespace

ControlReply handle_control(Runtime& rt, const std::string& line) {
  auto cmd = parse_control(split(line));
  if (!cmd) return {false, cmd.error() + "\n"};
  std::lock_guard lock(g_control_mutex);
  return apply(rt, *cmd);
}

Status start_control(Runtime* rt) {
  auto srv = std::make_unique<Server>();
  srv->rt = rt;
  srv->path = std::string(rte_eal_get_runtime_dir()) + "/" + kControlSocketName;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (srv->path.size() >= sizeof addr.sun_path) return Error{"control socket path too long: " + srv->path};
  std::strcpy(addr.sun_path, srv->path.c_str());
  srv->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (srv->fd < 0) return Error{std::string("control socket: ") + std::strerror(errno)};
  // EAL holds this prefix's lock: a socket already there is a dead run's.
  unlink(srv->path.c_str());
  if (bind(srv->fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || chmod(srv->path.c_str(), 0600) != 0 ||
      listen(srv->fd, 8) != 0) {
    const std::string err = std::strerror(errno);
    close(srv->fd);
    return Error{"control socket " + srv->path + ": " + err};
  }
  srv->wake = eventfd(0, EFD_CLOEXEC);
  if (srv->wake < 0) {
    const std::string err = std::strerror(errno);
    close(srv->fd);
    return Error{"control socket: eventfd: " + err};
  }
  Server* s = srv.get();
  srv->thread = std::thread(control_main, s);
  g_server = std::move(srv);
  return Ok{};
}

void stop_control() {
  if (!g_server) return;
  g_server->stop.store(true);
  const uint64_t one = 1;
  if (write(g_server->wake, &one, sizeof one) < 0) {
    // The thread still sees `stop` within its poll timeout.
  }
  g_server->thread.join();
  close(g_server->wake);
  close(g_server->fd);
  unlink(g_server->path.c_str());
  g_server.reset();
}

// --- client --------------------------------------------------------------------

namespace {

// Where EAL puts runtime directories (eal_get_baseline_run_dir in DPDK 22.11).
std::string runtime_base() {
  if (geteuid() == 0) return "/var/run/dpdk";
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  return std::string(xdg ? xdg : "/tmp") + "/dpdk";
}

int connect_to(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return -1;
  std::strcpy(addr.sun_path, path.c_str());
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

int run_control_client(const ControlRequest& req) {
  const std::string base = runtime_base();
  int fd = -1;
  if (!req.prefix.empty()) {
    const std::string path = base + "/" + req.prefix + "/" + kControlSocketName;
    fd = connect_to(path);
    if (fd < 0) {
      std::fprintf(stderr, "ngstack: no running ngstack with file prefix \"%s\" (nothing answers on %s)\n",
                   req.prefix.c_str(), path.c_str());
      return 1;
    }
  } else {
    // Every runtime directory with a control socket that answers: a running instance.
    std::vector<std::string> live;
    if (DIR* d = opendir(base.c_str())) {
      while (dirent* e = readdir(d)) {
        const std::string name = e->d_name;
        if (name == "." || name == "..") continue;
        const int probe = connect_to(base + "/" + name + "/" + kControlSocketName);
        if (probe < 0) continue;
        close(probe);
        live.push_back(name);
      }
      closedir(d);
    }
    std::sort(live.begin(), live.end());
    if (live.empty()) {
      std::fprintf(stderr, "ngstack: no running ngstack instance (no control socket answers under %s)\n", base.c_str());
      return 1;
    }
    if (live.size() > 1) {
      std::string names;
      for (const auto& n : live) names += "\n  " + n;
      std::fprintf(stderr, "ngstack: %zu instances are running; choose one with --prefix:%s\n", live.size(),
                   names.c_str());
      return 1;
    }
    fd = connect_to(base + "/" + live.front() + "/" + kControlSocketName);
    if (fd < 0) {
      std::fprintf(stderr, "ngstack: instance \"%s\" went away\n", live.front().c_str());
      return 1;
    }
  }
  set_timeouts(fd, kClientTimeoutS);
  if (!send_all(fd, join(req.words) + "\n")) {
    std::fprintf(stderr, "ngstack: error: cannot send the request: %s\n", std::strerror(errno));
    close(fd);
    return 1;
  }
  shutdown(fd, SHUT_WR);
  std::string reply;
  char buf[1 << 16];
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(kClientTimeoutS);
  for (;;) {
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::fprintf(stderr, "ngstack: error: no complete reply in %d s (%s)\n", kClientTimeoutS, std::strerror(errno));
      close(fd);
      return 1;
    }
    if (n == 0) break;
    reply.append(buf, static_cast<std::size_t>(n));
    if (std::chrono::steady_clock::now() > deadline) {
      std::fprintf(stderr, "ngstack: error: no complete reply in %d s\n", kClientTimeoutS);
      close(fd);
      return 1;
    }
  }
  close(fd);
  const auto nl = reply.find('\n');
  const std::string status = reply.substr(0, nl);
  const std::string text = nl == std::string::npos ? "" : reply.substr(nl + 1);
  if (status == "ok") {
    std::fwrite(text.data(), 1, text.size(), stdout);
    return 0;
  }
  if (status == "error") {
    std::fprintf(stderr, "ngstack: error: %s", text.c_str());
    if (text.empty() || text.back() != '\n') std::fputc('\n', stderr);
    return 1;
  }
  std::fprintf(stderr, "ngstack: error: the instance closed the connection without a reply\n");
  return 1;
}

}  // namespace ngstack::app
