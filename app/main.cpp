// ngstack: a DPDK packet-processing appliance. See README.md.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>

#include "app/cli.hpp"
#include "app/doctor.hpp"
#include "app/control.hpp"
#include "app/embedded.hpp"
#include "app/runtime.hpp"
#include "conf/host_check.hpp"
#include "conf/loader.hpp"

#ifndef NGSTACK_VERSION
#define NGSTACK_VERSION "unknown"
#endif

using namespace ngstack;

int main(int argc, char** argv) {
  auto logger = spdlog::stderr_color_mt("ngstack");
  logger->set_pattern("ngstack: [%l] %v");
  spdlog::set_default_logger(logger);

  auto opts = app::parse_args(std::vector<std::string>(argv + 1, argv + argc));
  if (!opts) {
    std::fprintf(stderr, "ngstack: %s\n", opts.error().c_str());
    return app::kExitUsage;
  }
  switch (opts->command) {
    case app::Command::help: std::fputs(app::usage().c_str(), stdout); return app::kExitOk;
    case app::Command::version: std::printf("ngstack %s\n", NGSTACK_VERSION); return app::kExitOk;
    case app::Command::check: {
      auto cfg = conf::load_file(opts->config_path);
      if (!cfg) {
        std::fprintf(stderr, "ngstack: error: %s\n", cfg.error().c_str());
        return app::kExitError;
      }
      // --offline: a config written for another machine (the bare-metal box)
      // is checked for everything but this host's CPUs.
      if (auto st = opts->offline ? Status{Ok{}} : conf::check_lcores(*cfg, conf::usable_cpus()); !st) {
        std::fprintf(stderr, "ngstack: error: %s\n", st.error().c_str());
        return app::kExitError;
      }
      std::fputs(conf::dump_yaml(*cfg).c_str(), stdout);
      return app::kExitOk;
    }
    case app::Command::rfc2544:
    case app::Command::lab: return app::exec_perf_program(opts->command == app::Command::lab ? "lab" : "rfc2544",
                                                          opts->script_args);
    case app::Command::doctor: return app::doctor_main(opts->config_path, opts->doctor_json, opts->root);
    case app::Command::control: return app::run_control_client(*app::parse_control_args(opts->script_args));
    case app::Command::run: break;
  }

  std::string tmp_dir;
  Result<conf::Config> cfg = Error{""};
  if (opts->config_path.empty()) {
    cfg = app::load_embedded(conf::usable_cpus(), tmp_dir);
    if (!opts->duration_s) opts->duration_s = 10.0;
  } else {
    cfg = conf::load_file(opts->config_path);
  }
  if (!cfg) {
    std::fprintf(stderr, "ngstack: error: %s\n", cfg.error().c_str());
    if (!tmp_dir.empty()) std::filesystem::remove_all(tmp_dir);
    return app::kExitError;
  }
  if (opts->hugepages) cfg->eal.no_huge = false;
  if (opts->metrics) {
    cfg->metrics.listen = *opts->metrics;
    cfg->metrics.listen_pos = conf::SourcePos{"--metrics", 0, 0, "metrics.listen"};
  }
  const int rc = app::run(*cfg, *opts);
  if (!tmp_dir.empty()) std::filesystem::remove_all(tmp_dir);
  return rc;
}
