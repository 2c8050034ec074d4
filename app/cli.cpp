#include "app/cli.hpp"

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace ngstack::app {

std::string usage() {
  return R"(Usage:
  ngstack [OPTIONS]                  run the embedded default: a built-in traffic
                                     source forwarded to a sink, no NIC or file needed
  ngstack --config FILE [OPTIONS]    run the configuration in FILE
  ngstack check FILE                 validate FILE, print the resolved configuration
  ngstack rfc2544 FILE [--out DIR]   RFC 2544 throughput, latency and frame loss
                                     against a device under test (perf/rfc2544.py)
  ngstack lab FILE [--out DIR]       run a lab experiment: sweep, repeat, tabulate
                                     and plot (perf/lab.py)

Options:
  -c, --config FILE          YAML configuration (see conf/README.md)
  -d, --duration SEC         stop after SEC seconds (default: 10 for the embedded
                             default; with --config, run until SIGINT or SIGTERM)
  -i, --stats-interval SEC   print live stats every SEC seconds (default 1; 0: never)
  -j, --json FILE            write the final summary as JSON to FILE
  -q, --quiet                no live stats, only the summary
  -h, --help                 this text
  -V, --version              print the version

Exit status: 0 success; 1 configuration or start-up error; 2 usage error;
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
    if (args.size() != 2) return Error{"usage: ngstack check FILE"};
    o.command = Command::check;
    o.config_path = args[1];
    return o;
  }
  if (!args.empty() && (args[0] == "rfc2544" || args[0] == "lab")) {
    if (args.size() < 2) return Error{"usage: ngstack " + args[0] + " FILE [--out DIR]"};
    o.command = args[0] == "lab" ? Command::lab : Command::rfc2544;
    o.script_args.assign(args.begin() + 1, args.end());
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
  // NGSTACK_PERF_DIR overrides where the programs are (an installed copy).
  const char* env_dir = std::getenv("NGSTACK_PERF_DIR");
  const std::string dir = env_dir ? env_dir : NGSTACK_PERF_DIR;
  const std::string program = dir + "/" + name + ".py";
  std::error_code ec;
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
