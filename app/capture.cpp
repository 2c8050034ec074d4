#include "app/capture.hpp"

#include <rte_errno.h>
#include <rte_pdump.h>
#include <spdlog/spdlog.h>

namespace ngstack::app {

namespace {
bool g_pdump = false;
}

void start_capture(const conf::Config& cfg) {
  if (cfg.eal.no_huge) {
    spdlog::info("capture with dpdk-dumpcap needs hugepages (eal.no_huge: false)");
    return;
  }
  if (rte_pdump_init() != 0) {
    // Not fatal: the appliance runs, only capture is unavailable.
    spdlog::warn("rte_pdump_init failed ({}): dpdk-dumpcap cannot capture from this process",
                 rte_strerror(rte_errno));
    return;
  }
  g_pdump = true;
  spdlog::info("capture: dpdk-dumpcap --file-prefix={} -i PORT can attach", cfg.eal.file_prefix);
}

void stop_capture() {
  if (!g_pdump) return;
  rte_pdump_uninit();
  g_pdump = false;
}

}  // namespace ngstack::app
