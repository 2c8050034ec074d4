#include "app/cli.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace ngstack::app {

std::string usage() {
  return R"(Usage:
  ngstack [OPTIONS]                  run the embedded default: a built-in traffic
                                     source forwarded to a sink, no NIC or file needed
  ngstack --config FILE [OPTIONS]    run the configuration in FILE
  ngstack check FILE                 validate FILE, print the resolved configuration

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

}  // namespace ngstack::app
