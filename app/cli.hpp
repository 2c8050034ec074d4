// Command line of the ngstack executable.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "conf/result.hpp"

namespace ngstack::app {

enum class Command { run, check, help, version };

struct Options {
  Command command = Command::run;
  std::string config_path;               // empty: the embedded default
  std::optional<double> duration_s;      // unset: embedded default 10 s, config file: until a signal
  double stats_interval_s = 1.0;         // 0: no periodic stats
  std::string json_path;
  bool quiet = false;
};

Result<Options> parse_args(const std::vector<std::string>& args);
std::string usage();

}  // namespace ngstack::app
