// Command line of the ngstack executable.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "conf/config.hpp"
#include "conf/result.hpp"

namespace ngstack::app {

// rfc2544 and lab are measurement runs made of many ngstack runs: Python
// programs in perf/ that drive this executable (see perf/README.md).
// doctor checks the machine (app/doctor.hpp) and starts nothing; control:
// show, set, route and arp against a running instance (app/control.hpp).
enum class Command { run, check, help, version, rfc2544, lab, doctor, control };

struct Options {
  Command command = Command::run;
  std::string config_path;               // empty: the embedded default
  std::optional<double> duration_s;      // unset: embedded default 10 s, config file: until a signal
  double stats_interval_s = 1.0;         // 0: no periodic stats
  std::string json_path;
  bool quiet = false;
  bool offline = false;                  // check: schema only, no checks against this host
  bool hugepages = false;                // run on hugepages whatever eal.no_huge says
  std::optional<conf::ListenAddr> metrics;  // --metrics: sets metrics.listen
  std::vector<std::string> script_args;  // rfc2544, lab: passed on to the perf/ program; control: the command
  bool doctor_json = false;              // doctor --json: JSON on stdout
  std::string root;                      // doctor --root DIR: read /sys, /proc, ... under DIR
};

Result<Options> parse_args(const std::vector<std::string>& args);
std::string usage();
// Replaces this process with /usr/bin/python3 perf/NAME.py ARGS, with
// NGSTACK set to this executable; returns only on failure (exit status).
int exec_perf_program(const std::string& name, const std::vector<std::string>& args);

}  // namespace ngstack::app
