#include "app/cli.hpp"

#include "app/control.hpp"

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string_view>

#ifndef NGSTACK_INSTALLED_PERF_DIR
#define NGSTACK_INSTALLED_PERF_DIR ""
#endif

namespace ngstack::app {

std::string usage() {
  return R"(Usage:
  ngstack [OPTIONS]                  run the embedded default: a built-in traffic
                                     source forwarded to a sink, no NIC or file needed
  ngstack --config FILE [OPTIONS]    run the configuration in FILE
  ngstack check FILE [--offline]     validate FILE, print the resolved configuration;
                                     --offline skips the checks against this host
                                     (lcores and CPUs), for a config written for
                                     another machine
  ngstack rfc2544 FILE [--out DIR]   RFC 2544 throughput, latency and frame loss
                                     against a device under test (perf/rfc2544.py)
  ngstack lab FILE [--out DIR]       run a lab experiment: sweep, repeat, tabulate
                                     and plot (perf/lab.py)
  ngstack doctor [--config FILE] [--json] [--root DIR]
                                     is this machine ready? CPU, hugepages, NICs,
                                     kernel: ok/warn/FAIL per check with the fix;
                                     exit 1 if a check FAILs

Operating a running instance (choose it with --prefix P, its eal.file_prefix,
when several run):
  ngstack show ports|workers|netisr|arp|fib|fdb|locks|services|tcp|stats [--json]
                                     locks: the connection tables' lock profiles;
                                     services: the UDP and TCP services (router, host);
                                     tcp: TCP counters, listeners, connections
  ngstack set netisr PROTO [policy source|flow|cpu] [mode direct|hybrid|deferred]
                           [qlimit N]
  ngstack set netisr buckets MAP     bucket -> worker map, comma-separated
  ngstack route add PREFIX via GATEWAY|blackhole|reject
  ngstack route del PREFIX
  ngstack arp add ADDRESS MAC PORT   a static ARP entry (router mode)
  ngstack arp del ADDRESS [PORT]

Options:
  -c, --config FILE          YAML configuration (see conf/README.md)
  -d, --duration SEC         stop after SEC seconds (default: 10 for the embedded
                             default; with --config, run until SIGINT or SIGTERM)
  -i, --stats-interval SEC   print live stats every SEC seconds (default 1; 0: never)
  -j, --json FILE            write the final summary as JSON to FILE
  -q, --quiet                no live stats, only the summary
      --metrics ADDR:PORT    serve Prometheus metrics at http://ADDR:PORT/metrics
                             (sets metrics.listen; see README, Metrics)
      --hugepages            run on hugepages even where the configuration (or
                             the embedded default) says eal.no_huge: true, so
                             that dpdk-dumpcap can capture (see README, Capture)
  -h, --help                 this text
  -V, --version              print the version

Exit status: 0 success; 1 configuration or start-up error (show/set/route/arp:
no running instance, or the instance refused the command); 2 usage error;
3 the run ended but an invariant failed (an mbuf leaked, packets unaccounted).
)";
}

namespace {
Result<double> parse_seconds(const std::string& opt, const std::string& v, bool allow_zero) {
  errno = 0;
  char* end = nullptr;
  double d = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(d) || d < 0 || (!allow_zero && d == 0))
    return Error{opt + ": expected a " + (allow_zero ? "non-negative" : "positive") + " number of seconds, got \"" +
                 v + "\""};
  return d;
}
}  // namespace

Result<Options> parse_args(const std::vector<std::string>& args) {
  Options o;
  std::size_t i = 0;
  if (!args.empty() && args[0] == "check") {
    o.command = Command::check;
    for (std::size_t a = 1; a < args.size(); ++a) {
      if (args[a] == "--offline") {
        o.offline = true;
      } else if (o.config_path.empty() && args[a].rfind("-", 0) != 0) {
        o.config_path = args[a];
      } else {
        return Error{"usage: ngstack check FILE [--offline]"};
      }
    }
    if (o.config_path.empty()) return Error{"usage: ngstack check FILE [--offline]"};
    return o;
  }
  if (!args.empty() && (args[0] == "rfc2544" || args[0] == "lab")) {
    if (args.size() < 2) return Error{"usage: ngstack " + args[0] + " FILE [--out DIR]"};
    o.command = args[0] == "lab" ? Command::lab : Command::rfc2544;
    o.script_args.assign(args.begin() + 1, args.end());
    return o;
  }
  if (!args.empty() && args[0] == "doctor") {
    o.command = Command::doctor;
    const std::string use = "usage: ngstack doctor [--config FILE] [--json] [--root DIR]";
    for (i = 1; i < args.size(); ++i) {
      const std::string& a = args[i];
      const auto eq = a.rfind("--", 0) == 0 ? a.find('=') : std::string::npos;
      const std::string opt = a.substr(0, eq);
      auto take = [&]() -> Result<std::string> {
        if (eq != std::string::npos) return a.substr(eq + 1);
        if (i + 1 >= args.size()) return Error{opt + " needs a value (" + use + ")"};
        return args[++i];
      };
      if (opt == "-c" || opt == "--config" || opt == "--root") {
        auto v = take();
        if (!v) return Error{v.error()};
        if (v->empty()) return Error{opt + " needs a value (" + use + ")"};
        (opt == "--root" ? o.root : o.config_path) = *v;
      } else if (a == "--json") {
        o.doctor_json = true;
      } else if (a == "-h" || a == "--help") {
        o.command = Command::help;
      } else {
        return Error{"unknown argument \"" + a + "\" (" + use + ")"};
      }
    }
    return o;
  }
  if (!args.empty() && (args[0] == "show" || args[0] == "set" || args[0] == "route" || args[0] == "arp")) {
    auto req = parse_control_args(args);
    if (!req) return Error{req.error()};
    o.command = Command::control;
    o.script_args = args;
    return o;
  }
  auto value = [&](const std::string& opt) -> Result<std::string> {
    if (i + 1 >= args.size()) return Error{opt + " needs a value"};
    return args[++i];
  };
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    std::string opt = a, inline_val;
    bool has_inline = false;
    if (a.rfind("--", 0) == 0 && a.find('=') != std::string::npos) {
      opt = a.substr(0, a.find('='));
      inline_val = a.substr(a.find('=') + 1);
      has_inline = true;
    }
    auto take = [&]() -> Result<std::string> {
      if (has_inline) return inline_val;
      return value(opt);
    };
    if (opt == "-h" || opt == "--help") {
      o.command = Command::help;
    } else if (opt == "-V" || opt == "--version") {
      o.command = Command::version;
    } else if (opt == "-q" || opt == "--quiet") {
      o.quiet = true;
    } else if (opt == "--hugepages") {
      o.hugepages = true;
    } else if (opt == "--metrics") {
      auto v = take();
      if (!v) return Error{v.error()};
      auto a = conf::parse_listen(*v);
      if (!a) return Error{opt + ": " + a.error()};
      o.metrics = *a;
    } else if (opt == "-c" || opt == "--config") {
      auto v = take();
      if (!v) return Error{v.error()};
      o.config_path = *v;
    } else if (opt == "-j" || opt == "--json") {
      auto v = take();
      if (!v) return Error{v.error()};
      o.json_path = *v;
    } else if (opt == "-d" || opt == "--duration") {
      auto v = take();
      if (!v) return Error{v.error()};
      auto d = parse_seconds(opt, *v, false);
      if (!d) return Error{d.error()};
      o.duration_s = *d;
    } else if (opt == "-i" || opt == "--stats-interval") {
      auto v = take();
      if (!v) return Error{v.error()};
      auto d = parse_seconds(opt, *v, true);
      if (!d) return Error{d.error()};
      o.stats_interval_s = *d;
    } else {
      return Error{"unknown argument \"" + a + "\" (see ngstack --help)"};
    }
  }
  return o;
}

int exec_perf_program(const std::string& name, const std::vector<std::string>& args) {
  // NGSTACK_PERF_DIR overrides where the programs are; else an installed
  // binary uses the copy installed beside it (PREFIX/bin/../share/ngstack/perf),
  // and a binary in the build tree the source tree's perf/.
  std::error_code ec;
  const char* env_dir = std::getenv("NGSTACK_PERF_DIR");
  std::string dir = env_dir ? env_dir : NGSTACK_PERF_DIR;
  if (!env_dir && std::string_view(NGSTACK_INSTALLED_PERF_DIR).size() > 0) {
    const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    const auto installed = self.parent_path() / NGSTACK_INSTALLED_PERF_DIR;
    if (!ec && std::filesystem::exists(installed / (name + ".py"), ec)) dir = installed.lexically_normal().string();
  }
  const std::string program = dir + "/" + name + ".py";
  if (!std::filesystem::exists(program, ec)) {
    std::fprintf(stderr, "ngstack: error: %s not found (set NGSTACK_PERF_DIR to the perf/ folder)\n", program.c_str());
    return 1;
  }
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) setenv("NGSTACK", self.c_str(), 1);
  std::vector<std::string> argv_s{"/usr/bin/python3", program};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  execv(argv[0], argv.data());
  std::fprintf(stderr, "ngstack: error: cannot run %s: %s\n", argv[0], std::strerror(errno));
  return 1;
}

}  // namespace ngstack::app
