#include "conf/loader.hpp"

#include <arpa/inet.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include "dispatch/rss.hpp"

namespace ngstack::conf {
namespace {

struct ConfigError {
  std::string message;
};

// Reads one YAML mapping, remembers which keys were consumed, and reports the
// first unknown key when finish() is called.
class MapReader {
 public:
  MapReader(const YAML::Node& node, std::string path, const std::string& file)
      : node_(node), path_(std::move(path)), file_(file) {
    if (!node_.IsMap()) fail(node_, path_, "expected a mapping");
  }

  bool has(const std::string& key) const { return static_cast<bool>(node_[key]); }

  YAML::Node take(const std::string& key) {
    used_.insert(key);
    return node_[key];
  }

  std::string key_path(const std::string& key) const {
    return path_.empty() ? key : path_ + "." + key;
  }

  SourcePos pos_of(const std::string& key) const {
    for (auto it = node_.begin(); it != node_.end(); ++it)
      if (it->first.Scalar() == key) return pos(it->first, key_path(key));
    return SourcePos{file_, 0, 0, key_path(key)};
  }

  SourcePos pos(const YAML::Node& n, const std::string& key) const {
    auto m = n.Mark();
    return SourcePos{file_, m.line + 1, m.column + 1, key};
  }

  [[noreturn]] void fail(const YAML::Node& n, const std::string& key, const std::string& msg) const {
    throw ConfigError{pos(n, key).where() + ": " + msg};
  }

  void finish() const {
    for (auto it = node_.begin(); it != node_.end(); ++it) {
      const std::string k = it->first.Scalar();
      if (!used_.count(k)) fail(it->first, key_path(k), "unknown key");
    }
  }

  long long integer(const std::string& key, long long lo, long long hi, long long dflt) {
    if (!has(key)) return dflt;
    return parse_integer(take(key), key_path(key), lo, hi);
  }

  long long parse_integer(const YAML::Node& v, const std::string& kp, long long lo, long long hi) const {
    if (!v.IsScalar()) fail(v, kp, "expected an integer");
    const std::string s = v.Scalar();
    // Decimal only: base 0 would read `vlan: 010` as 8 and `0x10` as 16.
    const std::size_t digits = s.size() - (s.rfind('-', 0) == 0 ? 1 : 0);
    if (digits == 0 || s.find_first_not_of("0123456789", s.size() - digits) != std::string::npos)
      fail(v, kp, std::string(s.rfind("0x", 0) == 0 ? "expected a decimal integer" : "expected an integer") +
                      ", got \"" + s + "\"");
    if (digits > 1 && s[s.size() - digits] == '0')
      fail(v, kp, "expected a decimal integer without leading zeros, got \"" + s +
                      "\" (YAML 1.1 reads a leading 0 as octal; write the number in decimal)");
    errno = 0;
    char* end = nullptr;
    long long x = std::strtoll(s.c_str(), &end, 10);
    if (*end != '\0' || errno == ERANGE) fail(v, kp, "expected an integer, got \"" + s + "\"");
    if (x < lo || x > hi)
      fail(v, kp, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + s);
    return x;
  }

  bool boolean(const std::string& key, bool dflt) {
    if (!has(key)) return dflt;
    YAML::Node v = take(key);
    const std::string s = v.IsScalar() ? v.Scalar() : "";
    if (s == "true" || s == "yes" || s == "on") return true;
    if (s == "false" || s == "no" || s == "off") return false;
    fail(v, key_path(key), "expected true or false, got \"" + s + "\"");
  }

  std::string string(const std::string& key, const std::string& dflt) {
    if (!has(key)) return dflt;
    return parse_string(take(key), key_path(key));
  }

  std::string parse_string(const YAML::Node& v, const std::string& kp) const {
    if (!v.IsScalar()) fail(v, kp, "expected a string");
    return v.Scalar();
  }

  const std::string& file() const { return file_; }
  const YAML::Node& node() const { return node_; }

 private:
  YAML::Node node_;
  std::string path_;
  const std::string& file_;
  std::set<std::string> used_;
};

std::optional<MacAddr> parse_mac(const std::string& s) {
  MacAddr m{};
  unsigned b[6];
  char tail;
  if (std::sscanf(s.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
                  &tail) != 6)
    return std::nullopt;
  for (int i = 0; i < 6; ++i) m[i] = static_cast<uint8_t>(b[i]);
  return m;
}

MacAddr mac_value(MapReader& r, const std::string& key) {
  YAML::Node v = r.take(key);
  std::string s = r.parse_string(v, r.key_path(key));
  auto m = parse_mac(s);
  if (!m) r.fail(v, r.key_path(key), "expected a MAC address like 02:00:00:00:00:01, got \"" + s + "\"");
  return *m;
}

const YAML::Node& sequence(const MapReader& r, const YAML::Node& v, const std::string& kp) {
  if (!v.IsSequence()) r.fail(v, kp, "expected a list");
  return v;
}

void load_eal(MapReader& top, Config& cfg, unsigned& main_lcore, SourcePos& main_pos) {
  if (!top.has("eal")) return;
  MapReader r(top.take("eal"), "eal", top.file());
  main_pos = r.pos_of("main_lcore");
  main_lcore = static_cast<unsigned>(r.integer("main_lcore", 0, 1023, 0));
  cfg.eal.memory_mb = static_cast<unsigned>(r.integer("memory_mb", 64, 1 << 20, cfg.eal.memory_mb));
  cfg.eal.no_huge = r.boolean("no_huge", cfg.eal.no_huge);
  cfg.eal.file_prefix = r.string("file_prefix", cfg.eal.file_prefix);
  if (cfg.eal.file_prefix.empty() || cfg.eal.file_prefix.find('/') != std::string::npos)
    r.fail(r.node()["file_prefix"], "eal.file_prefix", "must be a non-empty name without '/'");
  cfg.eal.log_level = r.string("log_level", cfg.eal.log_level);
  static const std::set<std::string> levels{"emerg", "alert", "critical", "error", "warning",
                                            "notice", "info", "debug"};
  if (!levels.count(cfg.eal.log_level))
    r.fail(r.node()["log_level"], "eal.log_level",
           "expected one of emerg, alert, critical, error, warning, notice, info, debug");
  if (r.has("lcore_cpus")) {
    YAML::Node m = r.take("lcore_cpus");
    if (!m.IsMap()) r.fail(m, "eal.lcore_cpus", "expected a mapping of lcore: cpu");
    for (auto it = m.begin(); it != m.end(); ++it) {
      auto l = static_cast<unsigned>(r.parse_integer(it->first, "eal.lcore_cpus", 0, 1023));
      cfg.eal.lcore_cpus[l] = static_cast<unsigned>(r.parse_integer(it->second, "eal.lcore_cpus", 0, 1023));
    }
  }
  if (r.has("extra_args")) {
    YAML::Node v = r.take("extra_args");
    for (const auto& a : sequence(r, v, "eal.extra_args"))
      cfg.eal.extra_args.push_back(r.parse_string(a, "eal.extra_args"));
  }
  r.finish();
}

void load_rss(MapReader& pr, PortConfig& p, const std::string& kp) {
  if (!pr.has("rss")) {
    for (const auto& n : p.rss.hash_names) p.rss.hash_types |= *dispatch::rss_type_from_name(n);
    return;
  }
  MapReader r(pr.take("rss"), kp + ".rss", pr.file());
  if (r.has("hash")) {
    YAML::Node v = r.take("hash");
    p.rss.hash_names.clear();
    for (const auto& h : sequence(r, v, kp + ".rss.hash")) {
      std::string name = r.parse_string(h, kp + ".rss.hash");
      if (!dispatch::rss_type_from_name(name))
        r.fail(h, kp + ".rss.hash", "unknown hash type \"" + name + "\" (known: " + dispatch::rss_type_names() + ")");
      p.rss.hash_names.push_back(name);
    }
  }
  for (const auto& n : p.rss.hash_names) p.rss.hash_types |= *dispatch::rss_type_from_name(n);
  if (r.has("key")) {
    YAML::Node v = r.take("key");
    std::string s = r.parse_string(v, kp + ".rss.key");
    if (s != "symmetric") {
      if (s.size() % 2 != 0 || s.size() / 2 < 40 || s.size() / 2 > dispatch::kMaxRssKeyLen ||
          s.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
        r.fail(v, kp + ".rss.key",
               "expected \"symmetric\" or 40 to 52 bytes as hex digits (80 to 104 characters)");
      for (std::size_t i = 0; i < s.size(); i += 2)
        p.rss.key.push_back(static_cast<uint8_t>(std::stoul(s.substr(i, 2), nullptr, 16)));
    }
  }
  r.finish();
}

void load_ports(MapReader& top, Config& cfg) {
  if (!top.has("ports")) top.fail(top.node(), "ports", "missing key \"ports\": at least one port is required");
  YAML::Node list = top.take("ports");
  sequence(top, list, "ports");
  if (list.size() == 0) top.fail(list, "ports", "at least one port is required");
  if (list.size() > 64) top.fail(list, "ports", "at most 64 ports are supported");
  std::map<std::string, SourcePos> names, devices;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string kp = "ports[" + std::to_string(i) + "]";
    MapReader r(list[i], kp, top.file());
    PortConfig p;
    p.pos = r.pos(list[i], kp);
    if (!r.has("name")) r.fail(list[i], kp, "missing key \"name\"");
    if (!r.has("device")) r.fail(list[i], kp, "missing key \"device\"");
    p.name = r.string("name", "");
    if (p.name.empty() || p.name.find_first_of(" /,:") != std::string::npos)
      r.fail(r.node()["name"], kp + ".name", "must be a non-empty name without spaces, '/', ',' or ':'");
    if (names.count(p.name))
      r.fail(r.node()["name"], kp + ".name",
             "port name \"" + p.name + "\" is used twice (first at " + names[p.name].where() + ")");
    names[p.name] = r.pos_of("name");
    p.device_pos = r.pos_of("device");
    p.device = r.string("device", "");
    if (p.device.empty()) r.fail(r.node()["device"], kp + ".device", "must not be empty");
    if (devices.count(p.device_name()))
      r.fail(r.node()["device"], kp + ".device",
             "device \"" + p.device_name() + "\" is used twice (first at " + devices[p.device_name()].where() + ")");
    devices[p.device_name()] = p.device_pos;
    p.rx_queues_pos = r.pos_of("rx_queues");
    p.rx_queues = static_cast<uint16_t>(r.integer("rx_queues", 1, 1024, 1));
    p.tx_queues_pos = r.pos_of("tx_queues");
    if (r.has("tx_queues") && r.node()["tx_queues"].IsScalar() && r.node()["tx_queues"].Scalar() == "auto")
      r.take("tx_queues");
    else
      p.tx_queues = static_cast<uint16_t>(r.integer("tx_queues", 1, 1024, 0));
    p.rx_ring_pos = r.pos_of("rx_ring");
    p.rx_ring = static_cast<uint16_t>(r.integer("rx_ring", 32, 32768, p.rx_ring));
    p.tx_ring_pos = r.pos_of("tx_ring");
    p.tx_ring = static_cast<uint16_t>(r.integer("tx_ring", 32, 32768, p.tx_ring));
    p.mtu_pos = r.pos_of("mtu");
    p.mtu = static_cast<uint16_t>(r.integer("mtu", 68, 16000, p.mtu));
    p.promiscuous = r.boolean("promiscuous", p.promiscuous);
    if (r.has("mac")) p.mac = mac_value(r, "mac");
    load_rss(r, p, kp);
    r.finish();
    cfg.ports.push_back(std::move(p));
  }
}

// "p0/1" -> (index of p0, queue 1)
RxQueueRef parse_queue_ref(const MapReader& r, const YAML::Node& v, const std::string& kp, const Config& cfg) {
  std::string s = r.parse_string(v, kp);
  auto slash = s.find('/');
  if (slash == std::string::npos) r.fail(v, kp, "expected PORT/QUEUE like p0/0, got \"" + s + "\"");
  int port = cfg.port_index(s.substr(0, slash));
  if (port < 0) r.fail(v, kp, "no port named \"" + s.substr(0, slash) + "\"");
  std::string q = s.substr(slash + 1);
  char* end = nullptr;
  long qn = std::strtol(q.c_str(), &end, 10);
  if (q.empty() || *end != '\0' || qn < 0) r.fail(v, kp, "expected PORT/QUEUE like p0/0, got \"" + s + "\"");
  if (qn >= cfg.ports[port].rx_queues)
    r.fail(v, kp, "port " + cfg.ports[port].name + " has " + std::to_string(cfg.ports[port].rx_queues) +
                      " rx queue(s); queue " + q + " does not exist");
  return RxQueueRef{static_cast<uint16_t>(port), static_cast<uint16_t>(qn)};
}

void load_workers(MapReader& top, Config& cfg, unsigned main_lcore, const SourcePos& main_pos) {
  if (!top.has("workers")) top.fail(top.node(), "workers", "missing key \"workers\"");
  MapReader r(top.take("workers"), "workers", top.file());
  if (!r.has("lcores")) r.fail(r.node(), "workers", "missing key \"lcores\" (the EAL lcores that run workers)");
  cfg.workers.lcores_pos = r.pos_of("lcores");
  YAML::Node lc = r.take("lcores");
  sequence(r, lc, "workers.lcores");
  if (lc.size() == 0) r.fail(lc, "workers.lcores", "at least one worker lcore is required");
  std::set<unsigned> seen;
  for (const auto& n : lc) {
    auto id = static_cast<unsigned>(r.parse_integer(n, "workers.lcores", 0, 1023));
    if (!seen.insert(id).second) r.fail(n, "workers.lcores", "lcore " + std::to_string(id) + " is listed twice");
    if (id == main_lcore)
      r.fail(n, "workers.lcores",
             "lcore " + std::to_string(id) + " is the main lcore (" + main_pos.where() +
                 "); workers need lcores of their own");
    WorkerConfig w;
    w.lcore = id;
    w.pos = r.pos(n, "workers.lcores");
    cfg.workers.list.push_back(w);
  }
  cfg.eal.cores.push_back(main_lcore);
  for (const auto& w : cfg.workers.list) cfg.eal.cores.push_back(w.lcore);
  cfg.eal.cores_pos = main_pos;
  cfg.workers.burst = static_cast<uint16_t>(r.integer("burst", 1, 512, cfg.workers.burst));

  if (!r.has("rx") || (r.node()["rx"].IsScalar() && r.node()["rx"].Scalar() == "auto")) {
    if (r.has("rx")) r.take("rx");
    cfg.workers.auto_assign = true;
    assign_rx_queues(cfg);
    r.finish();
    return;
  }
  cfg.workers.auto_assign = false;
  YAML::Node rx = r.take("rx");
  sequence(r, rx, "workers.rx");
  std::map<std::pair<uint16_t, uint16_t>, SourcePos> owner;
  for (std::size_t i = 0; i < rx.size(); ++i) {
    const std::string kp = "workers.rx[" + std::to_string(i) + "]";
    MapReader e(rx[i], kp, top.file());
    if (!e.has("lcore")) e.fail(rx[i], kp, "missing key \"lcore\"");
    YAML::Node ln = e.take("lcore");
    auto id = static_cast<unsigned>(e.parse_integer(ln, kp + ".lcore", 0, 1023));
    WorkerConfig* w = nullptr;
    for (auto& cand : cfg.workers.list)
      if (cand.lcore == id) w = &cand;
    if (!w) e.fail(ln, kp + ".lcore", "lcore " + std::to_string(id) + " is not in workers.lcores");
    if (!e.has("queues")) e.fail(rx[i], kp, "missing key \"queues\"");
    YAML::Node qs = e.take("queues");
    for (const auto& q : sequence(e, qs, kp + ".queues")) {
      RxQueueRef ref = parse_queue_ref(e, q, kp + ".queues", cfg);
      auto key = std::make_pair(ref.port, ref.queue);
      if (owner.count(key))
        e.fail(q, kp + ".queues",
               cfg.ports[ref.port].name + "/" + std::to_string(ref.queue) + " is already polled (" +
                   owner[key].where() + "); each rx queue has exactly one worker");
      owner[key] = e.pos(q, kp + ".queues");
      w->rx.push_back(ref);
    }
    e.finish();
  }
  for (std::size_t p = 0; p < cfg.ports.size(); ++p)
    for (uint16_t q = 0; q < cfg.ports[p].rx_queues; ++q)
      if (!owner.count({static_cast<uint16_t>(p), q}))
        r.fail(rx, "workers.rx",
               cfg.ports[p].name + "/" + std::to_string(q) +
                   " is polled by no worker; packets on it would never be freed");
  r.finish();
}

void load_forwarder(MapReader& top, Config& cfg) {
  if (!top.has("forwarder")) top.fail(top.node(), "forwarder", "mode forwarder needs a \"forwarder\" section");
  MapReader r(top.take("forwarder"), "forwarder", top.file());
  if (!r.has("paths")) r.fail(r.node(), "forwarder", "missing key \"paths\"");
  YAML::Node paths = r.take("paths");
  sequence(r, paths, "forwarder.paths");
  if (paths.size() == 0) r.fail(paths, "forwarder.paths", "at least one path is required");
  std::map<int, SourcePos> inputs;
  for (std::size_t i = 0; i < paths.size(); ++i) {
    const std::string kp = "forwarder.paths[" + std::to_string(i) + "]";
    MapReader e(paths[i], kp, top.file());
    ForwardPath fp;
    fp.pos = e.pos(paths[i], kp);
    for (const char* k : {"in", "out"})
      if (!e.has(k)) e.fail(paths[i], kp, std::string("missing key \"") + k + "\"");
    YAML::Node in = e.take("in"), out = e.take("out");
    int ip = cfg.port_index(e.parse_string(in, kp + ".in"));
    if (ip < 0) e.fail(in, kp + ".in", "no port named \"" + in.Scalar() + "\"");
    int op = cfg.port_index(e.parse_string(out, kp + ".out"));
    if (op < 0) e.fail(out, kp + ".out", "no port named \"" + out.Scalar() + "\"");
    if (inputs.count(ip))
      e.fail(in, kp + ".in",
             "port " + in.Scalar() + " is already the input of a path (" + inputs[ip].where() + ")");
    inputs[ip] = e.pos(in, kp + ".in");
    fp.in_port = static_cast<uint16_t>(ip);
    fp.out_port = static_cast<uint16_t>(op);
    if (e.has("dst_mac")) fp.dst_mac = mac_value(e, "dst_mac");
    e.finish();
    cfg.forwarder.paths.push_back(fp);
  }
  r.finish();
}

// "198.18.1.1" -> host-order address.
std::optional<uint32_t> parse_ipv4(const std::string& s) {
  in_addr a{};
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) return std::nullopt;
  return ntohl(a.s_addr);
}

uint32_t ipv4_value(const MapReader& r, const YAML::Node& v, const std::string& kp) {
  std::string s = r.parse_string(v, kp);
  auto a = parse_ipv4(s);
  if (!a) r.fail(v, kp, "expected an IPv4 address like 198.18.1.1, got \"" + s + "\"");
  return *a;
}

// "198.18.1.1/24"; `network`: the host bits must be clear (a route).
Ipv4Prefix prefix_value(const MapReader& r, const YAML::Node& v, const std::string& kp, bool network) {
  std::string s = r.parse_string(v, kp);
  auto slash = s.find('/');
  std::optional<uint32_t> a = parse_ipv4(s.substr(0, slash));
  char* end = nullptr;
  long len = slash == std::string::npos ? -1 : std::strtol(s.c_str() + slash + 1, &end, 10);
  if (!a || len < 0 || len > 32 || *end != '\0' || slash + 1 == s.size())
    r.fail(v, kp, "expected an IPv4 prefix like 198.18.1.0/24, got \"" + s + "\"");
  Ipv4Prefix p{*a, static_cast<uint8_t>(len)};
  if (network && (p.addr & ~p.mask()) != 0)
    r.fail(v, kp, "\"" + s + "\" has host bits set; the network is " +
                      format_prefix(Ipv4Prefix{p.addr & p.mask(), p.len}));
  return p;
}

uint16_t port_ref(const MapReader& r, const YAML::Node& v, const std::string& kp, const Config& cfg) {
  std::string name = r.parse_string(v, kp);
  int i = cfg.port_index(name);
  if (i < 0) r.fail(v, kp, "no port named \"" + name + "\"");
  return static_cast<uint16_t>(i);
}

// The `router:` section, or in host mode the `host:` section (the same keys).
void load_router(MapReader& top, Config& cfg) {
  const std::string sec = mode_name(cfg.mode);
  if (!top.has(sec)) top.fail(top.node(), sec, "mode " + sec + " needs a \"" + sec + "\" section");
  MapReader r(top.take(sec), sec, top.file());
  RouterConfig& rc = cfg.router;
  if (!r.has("interfaces")) r.fail(r.node(), sec, "missing key \"interfaces\"");
  YAML::Node ifs = r.take("interfaces");
  sequence(r, ifs, sec + ".interfaces");
  if (ifs.size() == 0) r.fail(ifs, sec + ".interfaces", "at least one interface is required");
  std::map<uint16_t, SourcePos> seen_ports;
  std::vector<std::pair<Ipv4Prefix, SourcePos>> subnets;
  for (std::size_t i = 0; i < ifs.size(); ++i) {
    const std::string kp = sec + ".interfaces[" + std::to_string(i) + "]";
    MapReader e(ifs[i], kp, top.file());
    InterfaceConfig ic;
    ic.pos = e.pos(ifs[i], kp);
    for (const char* k : {"port", "addresses"})
      if (!e.has(k)) e.fail(ifs[i], kp, std::string("missing key \"") + k + "\"");
    YAML::Node pn = e.take("port");
    ic.port = port_ref(e, pn, kp + ".port", cfg);
    if (seen_ports.count(ic.port))
      e.fail(pn, kp + ".port",
             "port " + cfg.ports[ic.port].name + " is already an interface (" + seen_ports[ic.port].where() + ")");
    seen_ports[ic.port] = e.pos(pn, kp + ".port");
    YAML::Node as = e.take("addresses");
    sequence(e, as, kp + ".addresses");
    if (as.size() == 0) e.fail(as, kp + ".addresses", "at least one address is required");
    for (const auto& a : as) {
      Ipv4Prefix p = prefix_value(e, a, kp + ".addresses", false);
      if (p.len == 0 || (p.len > 30 && p.len != 32))
        e.fail(a, kp + ".addresses", "an interface prefix must be /1 to /30, or /32");
      const uint32_t host = p.addr & ~p.mask();
      if (p.len <= 30 && (host == 0 || host == ~p.mask()))
        e.fail(a, kp + ".addresses", format_prefix(p) + " is the network or broadcast address of its subnet");
      for (const auto& [other, where] : subnets) {
        const uint8_t shorter = std::min(p.len, other.len);
        const uint32_t m = Ipv4Prefix{0, shorter}.mask();
        if ((p.addr & m) == (other.addr & m))
          e.fail(a, kp + ".addresses", format_prefix(p) + " overlaps " + format_prefix(other) + " (" + where.where() + ")");
      }
      subnets.push_back({p, e.pos(a, kp + ".addresses")});
      ic.addresses.push_back(p);
    }
    e.finish();
    rc.interfaces.push_back(std::move(ic));
  }
  auto connected = [&](uint32_t a) -> const InterfaceConfig* {
    for (const auto& ic : rc.interfaces)
      for (const auto& p : ic.addresses)
        if ((a & p.mask()) == (p.addr & p.mask()) && a != p.addr) return &ic;
    return nullptr;
  };
  if (r.has("routes")) {
    YAML::Node rs = r.take("routes");
    sequence(r, rs, sec + ".routes");
    std::map<std::pair<uint32_t, uint8_t>, SourcePos> seen;
    for (std::size_t i = 0; i < rs.size(); ++i) {
      const std::string kp = sec + ".routes[" + std::to_string(i) + "]";
      MapReader e(rs[i], kp, top.file());
      RouteConfig rt;
      rt.pos = e.pos(rs[i], kp);
      if (!e.has("prefix")) e.fail(rs[i], kp, "missing key \"prefix\"");
      YAML::Node pn = e.take("prefix");
      rt.prefix = prefix_value(e, pn, kp + ".prefix", true);
      auto key = std::make_pair(rt.prefix.addr, rt.prefix.len);
      if (seen.count(key))
        e.fail(pn, kp + ".prefix", format_prefix(rt.prefix) + " is already routed (" + seen[key].where() + ")");
      seen[key] = e.pos(pn, kp + ".prefix");
      std::string action = e.string("action", "forward");
      if (action == "forward") rt.action = RouteAction::forward;
      else if (action == "blackhole") rt.action = RouteAction::blackhole;
      else if (action == "reject") rt.action = RouteAction::reject;
      else e.fail(e.node()["action"], kp + ".action", "unknown action \"" + action + "\" (known: forward, blackhole, reject)");
      if (rt.action == RouteAction::forward) {
        if (!e.has("via")) e.fail(rs[i], kp, "missing key \"via\" (the gateway), or set action: blackhole or reject");
        YAML::Node vn = e.take("via");
        rt.via = ipv4_value(e, vn, kp + ".via");
        if (!connected(rt.via))
          e.fail(vn, kp + ".via", format_ipv4(rt.via) + " is on no interface's subnet; a gateway must be directly connected");
      } else if (e.has("via")) {
        e.fail(e.node()["via"], kp + ".via", "a " + action + " route has no gateway");
      }
      e.finish();
      rc.routes.push_back(rt);
    }
  }
  if (r.has("arp")) {
    MapReader a(r.take("arp"), sec + ".arp", top.file());
    ArpConfig& ac = rc.arp;
    ac.reachable_ms = static_cast<unsigned>(a.integer("reachable_ms", 100, 86400000, ac.reachable_ms));
    ac.stale_ms = static_cast<unsigned>(a.integer("stale_ms", 100, 86400000, ac.stale_ms));
    ac.retries = static_cast<unsigned>(a.integer("retries", 1, 100, ac.retries));
    ac.retry_ms = static_cast<unsigned>(a.integer("retry_ms", 10, 60000, ac.retry_ms));
    ac.hold_packets = static_cast<unsigned>(a.integer("hold_packets", 1, 1024, ac.hold_packets));
    ac.max_entries = static_cast<unsigned>(a.integer("max_entries", 16, 1 << 20, ac.max_entries));
    if (a.has("hold_total") && a.node()["hold_total"].IsScalar() && a.node()["hold_total"].Scalar() == "auto")
      a.take("hold_total");
    else
      ac.hold_total = static_cast<unsigned>(a.integer("hold_total", 1, 1 << 24, 0));
    ac.learn_rate = static_cast<unsigned>(a.integer("learn_rate", 1, 100000000, ac.learn_rate));
    ac.learn_burst = static_cast<unsigned>(a.integer("learn_burst", 1, 1 << 20, ac.learn_burst));
    if (a.has("static")) {
      YAML::Node ss = a.take("static");
      sequence(a, ss, sec + ".arp.static");
      for (std::size_t i = 0; i < ss.size(); ++i) {
        const std::string kp = sec + ".arp.static[" + std::to_string(i) + "]";
        MapReader e(ss[i], kp, top.file());
        StaticNeighborConfig sn;
        sn.pos = e.pos(ss[i], kp);
        for (const char* k : {"port", "address", "mac"})
          if (!e.has(k)) e.fail(ss[i], kp, std::string("missing key \"") + k + "\"");
        YAML::Node pn = e.take("port");
        sn.port = port_ref(e, pn, kp + ".port", cfg);
        YAML::Node an = e.take("address");
        sn.addr = ipv4_value(e, an, kp + ".address");
        const InterfaceConfig* ic = connected(sn.addr);
        if (!ic || ic->port != sn.port)
          e.fail(an, kp + ".address",
                 format_ipv4(sn.addr) + " is on no subnet of port " + cfg.ports[sn.port].name + "'s interface");
        sn.mac = mac_value(e, "mac");
        e.finish();
        ac.statics.push_back(sn);
      }
    }
    a.finish();
  }
  if (r.has("icmp")) {
    MapReader a(r.take("icmp"), sec + ".icmp", top.file());
    rc.icmp.rate = static_cast<unsigned>(a.integer("rate", 0, 10000000, rc.icmp.rate));
    rc.icmp.burst = static_cast<unsigned>(a.integer("burst", 1, 10000000, rc.icmp.burst));
    a.finish();
  }
  if (r.has("reassembly")) {
    MapReader a(r.take("reassembly"), sec + ".reassembly", top.file());
    rc.reassembly.max_datagrams =
        static_cast<unsigned>(a.integer("max_datagrams", 16, 1 << 20, rc.reassembly.max_datagrams));
    rc.reassembly.timeout_ms = static_cast<unsigned>(a.integer("timeout_ms", 10, 600000, rc.reassembly.timeout_ms));
    a.finish();
  }
  r.finish();
}

void load_bridge(MapReader& top, Config& cfg) {
  if (!top.has("bridge")) top.fail(top.node(), "bridge", "mode bridge needs a \"bridge\" section");
  MapReader r(top.take("bridge"), "bridge", top.file());
  BridgeConfig& bc = cfg.bridge;
  bc.aging_ms = static_cast<unsigned>(r.integer("aging_ms", 100, 86400000, bc.aging_ms));
  bc.max_entries = static_cast<unsigned>(r.integer("max_entries", 16, 1 << 20, bc.max_entries));
  bc.learn_rate = static_cast<unsigned>(r.integer("learn_rate", 1, 100000000, bc.learn_rate));
  bc.learn_burst = static_cast<unsigned>(r.integer("learn_burst", 1, 1 << 20, bc.learn_burst));
  if (!r.has("ports")) r.fail(r.node(), "bridge", "missing key \"ports\"");
  YAML::Node ps = r.take("ports");
  sequence(r, ps, "bridge.ports");
  if (ps.size() < 2) r.fail(ps, "bridge.ports", "a bridge needs at least two ports");
  std::map<uint16_t, SourcePos> seen;
  auto vlan_id = [](const MapReader& e, const YAML::Node& v, const std::string& kp) {
    return static_cast<uint16_t>(e.parse_integer(v, kp, 1, 4094));
  };
  for (std::size_t i = 0; i < ps.size(); ++i) {
    const std::string kp = "bridge.ports[" + std::to_string(i) + "]";
    MapReader e(ps[i], kp, top.file());
    BridgePortConfig bp;
    bp.pos = e.pos(ps[i], kp);
    if (!e.has("port")) e.fail(ps[i], kp, "missing key \"port\"");
    YAML::Node pn = e.take("port");
    bp.port = port_ref(e, pn, kp + ".port", cfg);
    if (seen.count(bp.port))
      e.fail(pn, kp + ".port", "port " + cfg.ports[bp.port].name + " is already in the bridge (" + seen[bp.port].where() + ")");
    seen[bp.port] = e.pos(pn, kp + ".port");
    if (e.has("vlan") && e.has("trunk"))
      e.fail(e.node()["trunk"], kp + ".trunk", "a port is either an access port (vlan) or a trunk (trunk), not both");
    if (e.has("vlan")) bp.access_vlan = vlan_id(e, e.take("vlan"), kp + ".vlan");
    if (e.has("trunk")) {
      YAML::Node t = e.take("trunk");
      sequence(e, t, kp + ".trunk");
      if (t.size() == 0) e.fail(t, kp + ".trunk", "a trunk carries at least one VLAN");
      for (const auto& v : t) {
        uint16_t id = vlan_id(e, v, kp + ".trunk");
        if (std::find(bp.trunk_vlans.begin(), bp.trunk_vlans.end(), id) != bp.trunk_vlans.end())
          e.fail(v, kp + ".trunk", "VLAN " + std::to_string(id) + " is listed twice");
        bp.trunk_vlans.push_back(id);
      }
    }
    e.finish();
    bc.ports.push_back(std::move(bp));
  }
  const bool aware = bc.ports.front().vlan_aware();
  for (const auto& bp : bc.ports)
    if (bp.vlan_aware() != aware)
      throw ConfigError{bp.pos.where() + ": either every bridge port names its VLANs (vlan or trunk) or none does"};
  r.finish();
}

// "198.18.0.1" or "198.18.0.1-198.18.0.254" (inclusive).
AddressRange address_range(const MapReader& r, const YAML::Node& v, const std::string& kp) {
  const std::string s = r.parse_string(v, kp);
  const auto dash = s.find('-');
  auto first = parse_ipv4(s.substr(0, dash));
  auto last = dash == std::string::npos ? first : parse_ipv4(s.substr(dash + 1));
  if (!first || !last) r.fail(v, kp, "expected an IPv4 address or a range like 198.18.0.1-198.18.0.254, got \"" + s + "\"");
  if (*last < *first) r.fail(v, kp, "the range ends before it starts: \"" + s + "\"");
  return {*first, *last - *first + 1};
}

// "9" or "1024-2047" (inclusive).
PortRange port_range(const MapReader& r, const YAML::Node& v, const std::string& kp) {
  const std::string s = v.IsScalar() ? v.Scalar() : "";
  unsigned a = 0, b = 0;
  char tail;
  const int got = std::sscanf(s.c_str(), "%u-%u%c", &a, &b, &tail);
  if (got == 1 && s.find('-') == std::string::npos) b = a;
  else if (got != 2) r.fail(v, kp, "expected a port or a range like 1024-2047, got \"" + s + "\"");
  if (a > 65535 || b > 65535 || b < a) r.fail(v, kp, "ports are 0..65535, first <= last; got \"" + s + "\"");
  return {static_cast<uint16_t>(a), b - a + 1};
}

double positive_number(const MapReader& r, const YAML::Node& v, const std::string& kp, double hi) {
  const std::string s = v.IsScalar() ? v.Scalar() : "";
  char* end = nullptr;
  const double x = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0') r.fail(v, kp, "expected a number, got \"" + s + "\"");
  if (!(x > 0) || x > hi) r.fail(v, kp, "must be above 0 and at most " + std::to_string(static_cast<long long>(hi)) + ", got " + s);
  return x;
}

void load_traffic(MapReader& top, Config& cfg) {
  if (!top.has("traffic")) top.fail(top.node(), "traffic", "mode traffic needs a \"traffic\" section");
  MapReader r(top.take("traffic"), "traffic", top.file());
  TrafficConfig& tc = cfg.traffic;
  std::map<uint16_t, SourcePos> used;
  auto claim = [&](const MapReader& e, const YAML::Node& pn, const std::string& kp) {
    const uint16_t port = port_ref(e, pn, kp, cfg);
    if (used.count(port))
      e.fail(pn, kp, "port " + cfg.ports[port].name + " already has a traffic role (" + used[port].where() + ")");
    used[port] = e.pos(pn, kp);
    return port;
  };
  if (r.has("generators")) {
    YAML::Node gs = r.take("generators");
    sequence(r, gs, "traffic.generators");
    for (std::size_t i = 0; i < gs.size(); ++i) {
      const std::string kp = "traffic.generators[" + std::to_string(i) + "]";
      MapReader e(gs[i], kp, top.file());
      GeneratorConfig g;
      g.pos = e.pos(gs[i], kp);
      if (!e.has("port")) e.fail(gs[i], kp, "missing key \"port\"");
      g.port = claim(e, e.take("port"), kp + ".port");
      if (e.has("protocol")) {
        YAML::Node v = e.take("protocol");
        const std::string p = e.parse_string(v, kp + ".protocol");
        if (p == "udp") g.protocol = TrafficProtocol::udp;
        else if (p == "tcp_syn") g.protocol = TrafficProtocol::tcp_syn;
        else e.fail(v, kp + ".protocol", "unknown protocol \"" + p + "\" (known: udp, tcp_syn)");
      }
      if (e.has("size")) {
        YAML::Node v = e.take("size");
        if (v.IsScalar() && v.Scalar() == "imix") {
          g.sizes = {64, 594, 1518};
          g.weights = {7, 4, 1};
        } else if (v.IsSequence()) {
          if (v.size() == 0 || v.size() > 64) e.fail(v, kp + ".size", "a list of 1 to 64 frame sizes");
          g.sizes.clear();
          for (const auto& x : v) g.sizes.push_back(static_cast<uint16_t>(e.parse_integer(x, kp + ".size", 64, 9000)));
          g.weights.assign(g.sizes.size(), 1);
        } else {
          g.sizes = {static_cast<uint16_t>(e.parse_integer(v, kp + ".size", 64, 9000))};
        }
      }
      if (e.has("weights")) {
        YAML::Node v = e.take("weights");
        sequence(e, v, kp + ".weights");
        if (v.size() != g.sizes.size())
          e.fail(v, kp + ".weights", "one weight per size (" + std::to_string(g.sizes.size()) + ")");
        g.weights.clear();
        for (const auto& x : v) g.weights.push_back(static_cast<uint16_t>(e.parse_integer(x, kp + ".weights", 1, 1000)));
      }
      for (uint16_t size : g.sizes)
        if (size > cfg.ports[g.port].mtu + 18u)
          e.fail(gs[i], kp + ".size",
                 "frame size " + std::to_string(size) + " exceeds port " + cfg.ports[g.port].name + "'s MTU " +
                     std::to_string(cfg.ports[g.port].mtu) + " + 18");
      if (e.has("src_mac")) g.src_mac = mac_value(e, "src_mac");
      if (e.has("dst_mac")) g.dst_mac = mac_value(e, "dst_mac");
      if (e.has("src")) g.src = address_range(e, e.take("src"), kp + ".src");
      if (e.has("dst")) g.dst = address_range(e, e.take("dst"), kp + ".dst");
      if (e.has("sport")) g.sport = port_range(e, e.take("sport"), kp + ".sport");
      if (e.has("dport")) g.dport = port_range(e, e.take("dport"), kp + ".dport");
      g.flows = static_cast<uint32_t>(e.integer("flows", 1, 1 << 24, 1));
      g.ttl = static_cast<uint8_t>(e.integer("ttl", 1, 255, 64));
      if (e.has("rate")) {
        YAML::Node v = e.take("rate");
        g.rate_pos = e.pos(v, kp + ".rate");
        MapReader rr(v, kp + ".rate", top.file());
        int units = 0;
        for (auto [name, unit, hi] : {std::tuple{"pps", RateUnit::pps, 1e10}, std::tuple{"bps", RateUnit::bps, 1e13},
                                      std::tuple{"percent", RateUnit::percent, 100.0}})
          if (rr.has(name)) {
            ++units;
            g.rate_unit = unit;
            g.rate = positive_number(rr, rr.take(name), kp + ".rate." + name, hi);
          }
        if (units != 1) e.fail(v, kp + ".rate", "give exactly one of pps, bps, percent");
        rr.finish();
      }
      g.burst = static_cast<uint16_t>(e.integer("burst", 1, 512, 32));
      g.packets = static_cast<uint64_t>(e.integer("packets", 1, 1ll << 50, 0));
      g.duration_ms = static_cast<uint64_t>(e.integer("duration_ms", 1, 1ll << 40, 0));
      e.finish();
      tc.generators.push_back(std::move(g));
    }
  }
  if (r.has("sinks")) {
    YAML::Node ks = r.take("sinks");
    sequence(r, ks, "traffic.sinks");
    for (std::size_t i = 0; i < ks.size(); ++i) {
      const std::string kp = "traffic.sinks[" + std::to_string(i) + "]";
      MapReader e(ks[i], kp, top.file());
      SinkConfig k;
      k.pos = e.pos(ks[i], kp);
      if (!e.has("port")) e.fail(ks[i], kp, "missing key \"port\"");
      k.port = claim(e, e.take("port"), kp + ".port");
      k.max_flows = static_cast<uint32_t>(e.integer("max_flows", 1, 1 << 24, k.max_flows));
      e.finish();
      tc.sinks.push_back(k);
    }
  }
  if (tc.generators.empty() && tc.sinks.empty()) r.fail(r.node(), "traffic", "no generators and no sinks");
  if (r.has("stop_when_done")) {
    const YAML::Node v = r.node()["stop_when_done"];
    tc.stop_when_done = r.boolean("stop_when_done", false);
    if (tc.stop_when_done && tc.generators.empty())
      r.fail(v, "traffic.stop_when_done", "needs at least one generator (a sink alone is never done)");
    if (tc.stop_when_done)
      for (const auto& g : tc.generators)
        if (g.packets == 0 && g.duration_ms == 0)
          r.fail(v, "traffic.stop_when_done",
                 g.pos.key + " (line " + std::to_string(g.pos.line) + ") never ends: give it packets or duration_ms");
  }
  tc.settle_ms = static_cast<uint32_t>(r.integer("settle_ms", 1, 60000, tc.settle_ms));
  r.finish();
}

void load_mempool(MapReader& top, Config& cfg) {
  if (!top.has("mempool")) return;
  MapReader r(top.take("mempool"), "mempool", top.file());
  if (r.has("mbufs") && r.node()["mbufs"].IsScalar() && r.node()["mbufs"].Scalar() == "auto") {
    r.take("mbufs");
  } else if (r.has("mbufs")) {
    cfg.mempool.mbufs_pos = r.pos(r.node()["mbufs"], "mempool.mbufs");
    cfg.mempool.mbufs = static_cast<unsigned>(r.integer("mbufs", 1024, 1 << 24, 0));
  }
  cfg.mempool.cache = static_cast<unsigned>(r.integer("cache", 0, 512, cfg.mempool.cache));
  cfg.mempool.data_room = static_cast<uint16_t>(r.integer("data_room", 256, 16384, cfg.mempool.data_room));
  r.finish();
}

void load_dispatch(MapReader& top, Config& cfg) {
  if (!top.has("dispatch")) return;
  MapReader r(top.take("dispatch"), "dispatch", top.file());
  auto one_of = [&](MapReader& m, const std::string& key, std::initializer_list<const char*> names) {
    YAML::Node v = m.take(key);
    std::string s = m.parse_string(v, m.key_path(key));
    std::string all;
    for (const char* n : names) {
      if (s == n) return s;
      all += all.empty() ? "" : ", ";
      all += n;
    }
    m.fail(v, m.key_path(key), "unknown value \"" + s + "\" (known: " + all + ")");
  };
  if (r.has("mode")) cfg.dispatch.mode = one_of(r, "mode", {"direct", "hybrid", "deferred"});
  YAML::Node buckets_node = r.node()["buckets"];
  cfg.dispatch.buckets = static_cast<unsigned>(r.integer("buckets", 1, 65536, cfg.dispatch.buckets));
  if (cfg.dispatch.buckets & (cfg.dispatch.buckets - 1))
    r.fail(buckets_node, "dispatch.buckets", "must be a power of two, got " + std::to_string(cfg.dispatch.buckets));
  cfg.dispatch.drain_batch = static_cast<uint16_t>(r.integer("drain_batch", 1, 512, 0));
  if (r.has("bucket_map") && !(r.node()["bucket_map"].IsScalar() && r.node()["bucket_map"].Scalar() == "auto")) {
    YAML::Node m = r.take("bucket_map");
    sequence(r, m, "dispatch.bucket_map");
    if (m.size() != cfg.dispatch.buckets)
      r.fail(m, "dispatch.bucket_map",
             "has " + std::to_string(m.size()) + " entries; one per bucket (" + std::to_string(cfg.dispatch.buckets) +
                 ") is needed");
    for (const auto& e : m) {
      auto lcore = static_cast<unsigned>(r.parse_integer(e, "dispatch.bucket_map", 0, 1023));
      int index = -1;
      for (std::size_t i = 0; i < cfg.workers.list.size(); ++i)
        if (cfg.workers.list[i].lcore == lcore) index = static_cast<int>(i);
      if (index < 0) r.fail(e, "dispatch.bucket_map", "lcore " + std::to_string(lcore) + " runs no worker");
      cfg.dispatch.bucket_map.push_back(static_cast<uint16_t>(index));
    }
  } else if (r.has("bucket_map")) {
    r.take("bucket_map");
  }
  if (r.has("protocols")) {
    YAML::Node ps = r.take("protocols");
    if (!ps.IsMap()) r.fail(ps, "dispatch.protocols", "expected a mapping of protocol name to settings");
    for (auto it = ps.begin(); it != ps.end(); ++it) {
      const std::string name = it->first.Scalar();
      MapReader e(it->second, "dispatch.protocols." + name, top.file());
      DispatchProtoConfig pc;
      pc.pos = r.pos(it->first, "dispatch.protocols." + name);
      if (e.has("policy")) pc.policy = one_of(e, "policy", {"source", "flow", "cpu"});
      if (e.has("mode")) pc.mode = one_of(e, "mode", {"direct", "hybrid", "deferred"});
      if (e.has("qlimit")) pc.qlimit = static_cast<uint32_t>(e.integer("qlimit", 1, 1 << 20, 0));
      e.finish();
      cfg.dispatch.protocols[name] = pc;
    }
  }
  r.finish();
}

void load_stack(MapReader& top, Config& cfg) {
  if (!top.has("stack")) return;
  MapReader r(top.take("stack"), "stack", top.file());
  auto one_of = [&](const std::string& key, std::initializer_list<const char*> names) {
    YAML::Node v = r.take(key);
    std::string s = r.parse_string(v, r.key_path(key));
    std::string all;
    for (const char* n : names) {
      if (s == n) return s;
      all += all.empty() ? "" : ", ";
      all += n;
    }
    r.fail(v, r.key_path(key), "unknown value \"" + s + "\" (known: " + all + ")");
  };
  YAML::Node groups_node = r.node()["groups"];
  cfg.stack.groups = static_cast<unsigned>(r.integer("groups", 1, 65536, cfg.stack.groups));
  if (cfg.stack.groups & (cfg.stack.groups - 1))
    r.fail(groups_node, "stack.groups", "must be a power of two, got " + std::to_string(cfg.stack.groups));
  if (r.has("locking")) cfg.stack.locking = one_of("locking", {"giant", "group"});
  if (r.has("lock_type")) cfg.stack.lock_type = one_of("lock_type", {"spin", "queuing", "speculative", "rte_spinlock"});
  cfg.stack.connections = static_cast<unsigned>(r.integer("connections", 1, 1 << 24, cfg.stack.connections));
  if (r.has("tcp")) {
    MapReader t(r.take("tcp"), "stack.tcp", top.file());
    TcpConfig& c = cfg.stack.tcp;
    auto ms = [&](const char* key, uint32_t lo, uint32_t dflt) {
      return static_cast<uint32_t>(t.integer(key, lo, 3'600'000, dflt));
    };
    c.msl_ms = ms("msl_ms", 1, c.msl_ms);
    c.min_rto_ms = ms("min_rto_ms", 1, c.min_rto_ms);
    c.initial_rto_ms = ms("initial_rto_ms", 1, c.initial_rto_ms);
    c.max_rto_ms = ms("max_rto_ms", 1, c.max_rto_ms);
    c.delayed_ack_ms = ms("delayed_ack_ms", 1, c.delayed_ack_ms);
    c.fin_wait2_timeout_ms = ms("fin_wait2_timeout_ms", 1, c.fin_wait2_timeout_ms);
    c.sndbuf = static_cast<uint32_t>(t.integer("sndbuf", 4096, 1 << 28, c.sndbuf));
    c.rcvbuf = static_cast<uint32_t>(t.integer("rcvbuf", 4096, 1 << 28, c.rcvbuf));
    c.nagle = t.boolean("nagle", c.nagle);
    c.ooo_segments = static_cast<uint32_t>(t.integer("ooo_segments", 0, 65536, c.ooo_segments));
    c.syn_backlog = static_cast<uint32_t>(t.integer("syn_backlog", 1, 1 << 24, c.syn_backlog));
    c.syn_cookies = t.boolean("syn_cookies", c.syn_cookies);
    c.challenge_ack_limit = static_cast<double>(t.integer("challenge_ack_limit", 1, 1 << 24, 1000));
    c.syn_retries = static_cast<uint32_t>(t.integer("syn_retries", 1, 30, c.syn_retries));
    c.data_retries = static_cast<uint32_t>(t.integer("data_retries", 1, 30, c.data_retries));
    c.keepalive_interval_ms = ms("keepalive_interval_ms", 1, c.keepalive_interval_ms);
    c.keepalive_probes = static_cast<uint32_t>(t.integer("keepalive_probes", 1, 255, c.keepalive_probes));
    if (t.has("worker_buffers") && t.node()["worker_buffers"].IsScalar() &&
        t.node()["worker_buffers"].Scalar() == "auto") {
      t.take("worker_buffers");
      c.worker_buffers = 0;
    } else {
      c.worker_buffers = static_cast<uint32_t>(t.integer("worker_buffers", 16, 1u << 30, c.worker_buffers));
    }
    c.tso = t.boolean("tso", c.tso);
    if (t.has("congestion_control")) {
      YAML::Node v = t.take("congestion_control");
      c.congestion_control = t.parse_string(v, "stack.tcp.congestion_control");
      if (c.congestion_control != "newreno" && c.congestion_control != "cubic")
        t.fail(v, "stack.tcp.congestion_control", "unknown value \"" + c.congestion_control + "\" (known: newreno, cubic)");
    }
    if (c.min_rto_ms > c.max_rto_ms)
      t.fail(t.node(), "stack.tcp", "min_rto_ms (" + std::to_string(c.min_rto_ms) + ") is above max_rto_ms (" +
                                        std::to_string(c.max_rto_ms) + ")");
    t.finish();
  }
  r.finish();
}

// `services:` (host and router modes): built-in services on the stack's sockets.
void load_services(MapReader& top, Config& cfg) {
  if (!top.has("services")) return;
  const SourcePos pos = top.pos_of("services");
  if (!cfg.is_inet())
    throw ConfigError{pos.where() + ": services run on the IPv4 stack: set mode: host or mode: router"};
  YAML::Node ss = top.take("services");
  sequence(top, ss, "services");
  std::map<std::pair<uint32_t, uint32_t>, SourcePos> bound;  // (address, port | 0x10000 for TCP)
  for (std::size_t i = 0; i < ss.size(); ++i) {
    const std::string kp = "services[" + std::to_string(i) + "]";
    MapReader e(ss[i], kp, top.file());
    ServiceConfig sv;
    sv.pos = e.pos(ss[i], kp);
    static constexpr const char* kKnown =
        "udp-echo, udp-discard, udp-client, tcp-echo, tcp-discard, tcp-source, http, tcp-client";
    if (!e.has("type")) e.fail(ss[i], kp, std::string("missing key \"type\" (") + kKnown + ")");
    const std::string type = e.string("type", "");
    if (type == "udp-echo") sv.type = ServiceType::udp_echo;
    else if (type == "udp-discard") sv.type = ServiceType::udp_discard;
    else if (type == "udp-client") sv.type = ServiceType::udp_client;
    else if (type == "tcp-echo") sv.type = ServiceType::tcp_echo;
    else if (type == "tcp-discard") sv.type = ServiceType::tcp_discard;
    else if (type == "tcp-source") sv.type = ServiceType::tcp_source;
    else if (type == "http") sv.type = ServiceType::http;
    else if (type == "tcp-client") sv.type = ServiceType::tcp_client;
    else e.fail(e.node()["type"], kp + ".type", "unknown service \"" + type + "\" (known: " + kKnown + ")");
    if (!e.has("port")) e.fail(ss[i], kp, "missing key \"port\"");
    YAML::Node pn = e.node()["port"];
    sv.port = static_cast<uint16_t>(e.integer("port", 1, 65535, 0));
    if (e.has("address")) {
      YAML::Node an = e.take("address");
      sv.address = ipv4_value(e, an, kp + ".address");
      bool ours = sv.address == 0;  // 0.0.0.0: any of ours
      for (const auto& ic : cfg.router.interfaces)
        for (const auto& p : ic.addresses) ours |= p.addr == sv.address;
      if (!ours) e.fail(an, kp + ".address", format_ipv4(sv.address) + " is no address of an interface");
    }
    if (sv.type == ServiceType::tcp_client) {
      if (!e.has("server")) e.fail(ss[i], kp, "missing key \"server\" (the address to connect to)");
      YAML::Node sn = e.take("server");
      sv.server = ipv4_value(e, sn, kp + ".server");
      sv.flows = static_cast<uint32_t>(e.integer("flows", 1, 1 << 20, sv.flows));
      sv.bytes = static_cast<uint64_t>(e.integer("bytes", 0, INT64_MAX, 0));
      sv.duration_ms = static_cast<uint64_t>(e.integer("duration_ms", 0, INT64_MAX, 0));
      if (uint64_t{sv.flows} > cfg.stack.connections)
        e.fail(ss[i], kp + ".flows", std::to_string(sv.flows) + " flows need as many connections; stack.connections is " +
                                       std::to_string(cfg.stack.connections));
    } else if (sv.type == ServiceType::udp_client) {
      if (!e.has("server")) e.fail(ss[i], kp, "missing key \"server\" (the address to send requests to)");
      YAML::Node sn = e.take("server");
      sv.server = ipv4_value(e, sn, kp + ".server");
      sv.flows = static_cast<uint32_t>(e.integer("flows", 1, 1 << 20, sv.flows));
      sv.payload = static_cast<uint16_t>(e.integer("payload", 16, 1472, sv.payload));
      sv.window = static_cast<uint16_t>(e.integer("window", 1, 64, sv.window));
      if (e.has("rate")) {
        YAML::Node rn = e.take("rate");
        // 0: closed loop, as fast as the replies come back.
        if (!(rn.IsScalar() && rn.Scalar() == "0")) sv.rate = positive_number(e, rn, kp + ".rate", 1e9);
      }
      sv.requests = static_cast<uint64_t>(e.integer("requests", 0, INT64_MAX, 0));
      sv.duration_ms = static_cast<uint64_t>(e.integer("duration_ms", 0, INT64_MAX, 0));
      sv.timeout_ms = static_cast<uint32_t>(e.integer("timeout_ms", 1, 600000, sv.timeout_ms));
      if (uint64_t{sv.flows} > cfg.stack.connections)
        e.fail(ss[i], kp + ".flows", std::to_string(sv.flows) + " flows need as many connections; stack.connections is " +
                                       std::to_string(cfg.stack.connections));
    } else {
      if (is_tcp_service(sv.type)) {
        if (sv.type == ServiceType::tcp_source) sv.bytes = static_cast<uint64_t>(e.integer("bytes", 0, INT64_MAX, 0));
        if (sv.type == ServiceType::http) {
          sv.body_bytes = static_cast<uint64_t>(e.integer("body_bytes", 0, INT64_MAX, static_cast<long long>(sv.body_bytes)));
          if (e.has("root")) sv.root = e.string("root", "");
          sv.sessions = static_cast<uint32_t>(e.integer("sessions", 1, 1 << 20, sv.sessions));
        }
        sv.backlog = static_cast<uint32_t>(e.integer("backlog", 0, 1 << 24, 0));
        sv.keepalive_ms = static_cast<uint32_t>(e.integer("keepalive_ms", 0, 86'400'000, 0));
        if (e.has("congestion_control")) {
          YAML::Node v = e.take("congestion_control");
          sv.congestion_control = e.parse_string(v, kp + ".congestion_control");
          if (sv.congestion_control != "newreno" && sv.congestion_control != "cubic")
            e.fail(v, kp + ".congestion_control", "unknown value \"" + sv.congestion_control + "\" (known: newreno, cubic)");
        }
      }
      // UDP and TCP ports are apart (two tables), as on every host.
      const uint32_t proto_bit = is_tcp_service(sv.type) ? 0x10000u : 0;
      const char* proto = is_tcp_service(sv.type) ? "TCP" : "UDP";
      auto key = std::make_pair(sv.address, static_cast<uint32_t>(sv.port) | proto_bit);
      auto any = std::make_pair(uint32_t{0}, key.second);
      for (const auto& k : {key, any})
        if (auto it = bound.find(k); it != bound.end() && (k == key || sv.address == 0 || k.first == 0))
          e.fail(pn, kp + ".port", std::string(proto) + " port " + std::to_string(sv.port) + " is already bound (" +
                                       it->second.where() + ")");
      if (sv.address == 0)
        for (const auto& [k, where] : bound)
          if (k.second == key.second)
            e.fail(pn, kp + ".port", std::string(proto) + " port " + std::to_string(sv.port) + " is already bound (" +
                                         where.where() + ")");
      bound[key] = e.pos(pn, kp + ".port");
    }
    e.finish();
    cfg.services.push_back(sv);
  }
}

// `clients:` (host and router modes): TCP load generators on the stack's sockets.
void load_clients(MapReader& top, Config& cfg) {
  if (!top.has("clients")) return;
  ClientsConfig& cc = cfg.clients;
  cc.pos = top.pos_of("clients");
  if (!cfg.is_inet())
    throw ConfigError{cc.pos.where() + ": clients run on the IPv4 stack: set mode: host or mode: router"};
  MapReader r(top.take("clients"), "clients", top.file());
  cc.stop_when_done = r.boolean("stop_when_done", false);
  if (!r.has("generators")) r.fail(r.node(), "clients", "missing key \"generators\" (a list of load generators)");
  YAML::Node gs = r.take("generators");
  sequence(r, gs, "clients.generators");
  if (gs.size() == 0) r.fail(gs, "clients.generators", "no generator listed");
  // An address we can reach: on a connected subnet, or under a forwarding route.
  auto routed = [&](uint32_t a) {
    for (const auto& ic : cfg.router.interfaces)
      for (const auto& p : ic.addresses)
        if ((a & p.mask()) == (p.addr & p.mask())) return true;
    for (const auto& rt : cfg.router.routes)
      if (rt.action == RouteAction::forward && (a & rt.prefix.mask()) == rt.prefix.addr) return true;
    return false;
  };
  // Printable ASCII without spaces or quotes: a request line's target and a field value.
  auto token = [](const std::string& v) {
    return !v.empty() && std::all_of(v.begin(), v.end(), [](char ch) { return ch > ' ' && ch < 127 && ch != '"'; });
  };
  uint64_t sessions = 0;
  for (std::size_t i = 0; i < gs.size(); ++i) {
    const std::string kp = "clients.generators[" + std::to_string(i) + "]";
    MapReader e(gs[i], kp, top.file());
    ClientConfig g;
    g.pos = e.pos(gs[i], kp);
    g.name = e.string("name", "client" + std::to_string(i));
    if (!token(g.name)) e.fail(e.node()["name"], kp + ".name", "expected a name without spaces or quotes");
    // The target: one ADDR:PORT, or ranges of addresses and ports.
    if (e.has("target") && (e.has("addresses") || e.has("ports")))
      e.fail(e.node()["target"], kp + ".target", "either target or addresses and ports, not both");
    if (e.has("target")) {
      YAML::Node t = e.take("target");
      const std::string ts = e.parse_string(t, kp + ".target");
      const auto colon = ts.rfind(':');
      auto a = parse_ipv4(colon == std::string::npos ? ts : ts.substr(0, colon));
      unsigned port = 0;
      char tail;
      if (!a || colon == std::string::npos || std::sscanf(ts.c_str() + colon + 1, "%u%c", &port, &tail) != 1 ||
          port < 1 || port > 65535)
        e.fail(t, kp + ".target", "expected ADDRESS:PORT like 198.18.1.2:80, got \"" + ts + "\"");
      g.addresses = {*a, 1};
      g.ports = {static_cast<uint16_t>(port), 1};
    } else {
      if (!e.has("addresses") || !e.has("ports"))
        e.fail(gs[i], kp, "missing key \"target\" (ADDRESS:PORT), or \"addresses\" and \"ports\" (ranges)");
      YAML::Node an = e.take("addresses");
      g.addresses = address_range(e, an, kp + ".addresses");
      YAML::Node pn = e.take("ports");
      g.ports = port_range(e, pn, kp + ".ports");
      if (g.ports.first == 0) e.fail(pn, kp + ".ports", "port 0 is no destination");
    }
    for (uint32_t k = 0; k < g.addresses.count; ++k)
      if (!routed(g.addresses.first + k))
        e.fail(gs[i], kp, "no route to " + format_ipv4(g.addresses.first + k) +
                              " (no interface subnet or forwarding route covers it)");
    if (e.has("source")) {
      YAML::Node sn = e.take("source");
      g.source = ipv4_value(e, sn, kp + ".source");
      bool ours = false;
      for (const auto& ic : cfg.router.interfaces)
        for (const auto& p : ic.addresses) ours |= p.addr == g.source;
      if (!ours) e.fail(sn, kp + ".source", format_ipv4(g.source) + " is no address of an interface");
    }
    // Open loop (rate) or closed loop (concurrency): exactly one.
    if (e.has("rate") == e.has("concurrency"))
      e.fail(gs[i], kp, "set either rate (connections per second) or concurrency (connections kept open), one of them");
    if (e.has("rate")) g.rate = positive_number(e, e.take("rate"), kp + ".rate", 1e8);
    g.concurrency = static_cast<uint32_t>(e.integer("concurrency", 1, 1 << 20, 0));
    g.connections = static_cast<uint64_t>(e.integer("connections", 0, INT64_MAX, 0));
    g.duration_ms = static_cast<uint64_t>(e.integer("duration_ms", 0, INT64_MAX, 0));
    const std::string tr = e.string("transaction", "raw");
    if (tr == "raw") g.transaction = ClientTransaction::raw;
    else if (tr == "http") g.transaction = ClientTransaction::http;
    else e.fail(e.node()["transaction"], kp + ".transaction", "unknown value \"" + tr + "\" (known: raw, http)");
    const bool http = g.transaction == ClientTransaction::http;
    for (const char* k : {"request_bytes", "response_bytes"})
      if (http && e.has(k)) e.fail(e.node()[k], kp + "." + k, "only for transaction: raw");
    for (const char* k : {"path", "host"})
      if (!http && e.has(k)) e.fail(e.node()[k], kp + "." + k, "only for transaction: http");
    g.request_bytes = static_cast<uint32_t>(e.integer("request_bytes", 0, 1 << 30, g.request_bytes));
    g.response_bytes = static_cast<uint32_t>(e.integer("response_bytes", 0, 1 << 30, g.response_bytes));
    if (e.has("path")) {
      g.path = e.string("path", "/");
      if (g.path[0] != '/' || !token(g.path))
        e.fail(e.node()["path"], kp + ".path", "expected an absolute path (/...) without spaces or quotes");
    }
    if (e.has("host")) {
      g.host = e.string("host", "");
      if (!token(g.host)) e.fail(e.node()["host"], kp + ".host", "expected a host name without spaces or quotes");
    }
    g.requests = static_cast<uint32_t>(e.integer("requests", 0, 1 << 30, g.requests));
    const std::string cl = e.string("close", "fin");
    if (cl == "fin") g.close = ClientClose::fin;
    else if (cl == "rst") g.close = ClientClose::rst;
    else e.fail(e.node()["close"], kp + ".close", "unknown value \"" + cl + "\" (known: fin, rst)");
    g.timeout_ms = static_cast<uint32_t>(e.integer("timeout_ms", 1, 3'600'000, g.timeout_ms));
    if (e.has("max_open") && e.node()["max_open"].IsScalar() && e.node()["max_open"].Scalar() == "auto")
      e.take("max_open");
    else
      g.max_open = static_cast<uint32_t>(e.integer("max_open", 1, 1 << 20, 0));
    if (g.concurrency && g.max_open && g.max_open < g.concurrency)
      e.fail(gs[i], kp + ".max_open", "max_open " + std::to_string(g.max_open) + " is below concurrency " +
                                           std::to_string(g.concurrency));
    if (cc.stop_when_done && g.connections == 0 && g.duration_ms == 0)
      e.fail(gs[i], kp, "stop_when_done needs an end: set connections or duration_ms");
    e.finish();
    sessions += g.sessions();
    // Closing first with FIN leaves our side in TIME-WAIT for 2 MSL, each holding a PCB.
    if (g.rate > 0 && g.close == ClientClose::fin)
      sessions += static_cast<uint64_t>(g.rate * 2.0 * cfg.stack.tcp.msl_ms / 1000.0);
    cc.generators.push_back(std::move(g));
  }
  if (sessions > cfg.stack.connections)
    r.fail(gs, "clients.generators", "the generators may hold " + std::to_string(sessions) +
                                         " connections at once (max_open, and rate x 2 MSL in TIME-WAIT after "
                                         "close: fin); stack.connections is " + std::to_string(cfg.stack.connections) +
                                         " (raise it, lower stack.tcp.msl_ms, or close: rst)");
  r.finish();
}

void load_metrics(MapReader& top, Config& cfg) {
  if (!top.has("metrics")) return;
  MapReader r(top.take("metrics"), "metrics", top.file());
  if (!r.has("listen")) r.fail(r.node(), "metrics.listen", "missing key \"listen\" (e.g. listen: 127.0.0.1:9464)");
  cfg.metrics.listen_pos = r.pos_of("listen");
  YAML::Node v = r.take("listen");
  auto a = parse_listen(r.parse_string(v, "metrics.listen"));
  if (!a) r.fail(v, "metrics.listen", a.error());
  cfg.metrics.listen = *a;
  r.finish();
}

// An explicit mempool.mbufs must cover what the stack may keep at once
// without freeing it: rx descriptors refill from the pool, so a pool that
// rings, ARP hold queues and reassembly can empty between them stops rx.
void check_pool(const Config& cfg) {
  if (cfg.mempool.mbufs == 0) return;
  const uint64_t pinned = cfg.mbufs_pinned();
  if (cfg.mempool.mbufs >= pinned) return;
  std::string parts = std::to_string(cfg.ring_mbufs()) +
                      " in rx/tx rings (ports[].rx_queues x rx_ring + tx_queues x tx_ring)";
  if (cfg.is_inet())
    parts += " + " + std::to_string(cfg.arp_hold_total()) + " in ARP hold queues (router.arp.hold_total" +
             (cfg.router.arp.hold_total ? "" : ", auto: a quarter of mempool.mbufs") + ") + " +
             std::to_string(cfg.reassembly_mbufs()) + " in reassembly (" + std::to_string(cfg.workers.list.size()) +
             " workers x router.reassembly.max_datagrams " + std::to_string(cfg.router.reassembly.max_datagrams) +
             " x " + std::to_string(kMaxFragmentsPerDatagram) + " fragments)";
  // The least pool that suffices: an auto hold budget grows with the pool.
  Config least = cfg;
  while (least.mempool.mbufs < least.mbufs_pinned())
    least.mempool.mbufs = static_cast<unsigned>(std::min<uint64_t>(least.mbufs_pinned(), UINT32_MAX));
  throw ConfigError{cfg.mempool.mbufs_pos.where() + ": " + std::to_string(cfg.mempool.mbufs) +
                    " mbufs are fewer than the stack may hold at once: " + parts + " = " + std::to_string(pinned) +
                    "; raise mempool.mbufs to at least " + std::to_string(least.mempool.mbufs) +
                    " (or auto), or lower those"};
}

Config parse(const YAML::Node& root, const std::string& file) {
  if (!root || root.IsNull()) throw ConfigError{file + ": the file is empty"};
  MapReader top(root, "", file);
  Config cfg;
  cfg.source = file;
  std::string mode = top.string("mode", "forwarder");
  if (mode == "forwarder") cfg.mode = Mode::forwarder;
  else if (mode == "router") cfg.mode = Mode::router;
  else if (mode == "bridge") cfg.mode = Mode::bridge;
  else if (mode == "traffic") cfg.mode = Mode::traffic;
  else if (mode == "host") cfg.mode = Mode::host;
  else top.fail(top.node()["mode"], "mode", "unknown mode \"" + mode + "\" (known: forwarder, router, bridge, traffic, host)");
  unsigned main_lcore = 0;
  SourcePos main_pos{file, 0, 0, "eal.main_lcore"};
  load_eal(top, cfg, main_lcore, main_pos);
  load_mempool(top, cfg);
  load_ports(top, cfg);
  load_workers(top, cfg, main_lcore, main_pos);
  for (auto& p : cfg.ports)
    if (p.tx_queues != 0 && p.tx_queues < cfg.workers.list.size())
      throw ConfigError{p.tx_queues_pos.where() + ": port " + p.name + " has " + std::to_string(p.tx_queues) +
                        " tx queue(s) but there are " + std::to_string(cfg.workers.list.size()) +
                        " workers; every worker needs a tx queue of its own on every port"};
  // Each mode reads its own section; another mode's section is an error, so
  // that a config cannot look like it does something it does not.
  for (const Mode other : {Mode::forwarder, Mode::router, Mode::bridge, Mode::traffic, Mode::host})
    if (other != cfg.mode && top.has(mode_name(other)))
      throw ConfigError{top.pos_of(mode_name(other)).where() + ": a " + mode_name(other) + " section in mode " +
                        mode_name(cfg.mode) + " (set mode: " + mode_name(other) + ", or remove the section)"};
  switch (cfg.mode) {
    case Mode::forwarder: load_forwarder(top, cfg); break;
    case Mode::router:
    case Mode::host: load_router(top, cfg); break;
    case Mode::bridge: load_bridge(top, cfg); break;
    case Mode::traffic: load_traffic(top, cfg); break;
  }
  check_pool(cfg);
  load_dispatch(top, cfg);
  load_stack(top, cfg);
  load_services(top, cfg);
  load_clients(top, cfg);
  load_metrics(top, cfg);
  top.finish();
  return cfg;
}

Result<Config> parse_guarded(const std::string& file, auto&& load_root) {
  try {
    return parse(load_root(), file);
  } catch (const ConfigError& e) {
    return Error{e.message};
  } catch (const YAML::Exception& e) {
    return Error{file + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) +
                 ": YAML syntax error: " + e.msg};
  }
}

}  // namespace

Result<Config> load_string(const std::string& yaml_text, const std::string& source_name) {
  return parse_guarded(source_name, [&] { return YAML::Load(yaml_text); });
}

Result<Config> load_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return Error{"cannot read config file " + path + ": it is a directory"};
  std::ifstream in(path);
  if (!in) return Error{"cannot read config file " + path + ": " + std::strerror(errno)};
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Error{"cannot read config file " + path + ": " + std::strerror(errno)};
  return load_string(ss.str(), path);
}

}  // namespace ngstack::conf
