#include "conf/loader.hpp"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

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
    errno = 0;
    char* end = nullptr;
    long long x = std::strtoll(s.c_str(), &end, 0);
    if (s.empty() || *end != '\0' || errno == ERANGE)
      fail(v, kp, "expected an integer, got \"" + s + "\"");
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

void load_mempool(MapReader& top, Config& cfg) {
  if (!top.has("mempool")) return;
  MapReader r(top.take("mempool"), "mempool", top.file());
  if (r.has("mbufs") && r.node()["mbufs"].IsScalar() && r.node()["mbufs"].Scalar() == "auto")
    r.take("mbufs");
  else
    cfg.mempool.mbufs = static_cast<unsigned>(r.integer("mbufs", 1024, 1 << 24, 0));
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

Config parse(const YAML::Node& root, const std::string& file) {
  if (!root || root.IsNull()) throw ConfigError{file + ": the file is empty"};
  MapReader top(root, "", file);
  Config cfg;
  cfg.source = file;
  std::string mode = top.string("mode", "forwarder");
  if (mode != "forwarder")
    top.fail(top.node()["mode"], "mode", "unknown mode \"" + mode + "\" (known: forwarder)");
  cfg.mode = Mode::forwarder;
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
  load_forwarder(top, cfg);
  load_dispatch(top, cfg);
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
