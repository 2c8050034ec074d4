#include "tests/lib/eal_env.hpp"

#include <gtest/gtest.h>
#include <rte_eal.h>
#include <rte_mbuf.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

namespace ngstack::test {
namespace {

std::map<std::string, rte_mempool*>& pools() {
  static std::map<std::string, rte_mempool*> p;
  return p;
}

bool g_started = false;

void start_eal() {
  if (g_started) return;
  const std::string prefix = "ngstack-test-" + std::to_string(getpid());
  const char* argv[] = {"ngstack-test", "--no-huge", "-m", "512", "--no-pci", "--file-prefix", prefix.c_str(),
                        "--log-level", "error", "--no-telemetry", "-l", "0"};
  if (rte_eal_init(static_cast<int>(std::size(argv)), const_cast<char**>(argv)) < 0) {
    std::fprintf(stderr, "unit tests: EAL did not start\n");
    std::abort();
  }
  g_started = true;
}

class EalEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    if (!g_started) return;
    for (auto& [name, p] : pools()) rte_mempool_free(p);
    pools().clear();
    const std::string dir = rte_eal_get_runtime_dir();
    rte_eal_cleanup();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};
[[maybe_unused]] const auto* g_env = ::testing::AddGlobalTestEnvironment(new EalEnvironment);

}  // namespace

rte_mempool* pool(const char* name, unsigned mbufs, uint16_t data_room) {
  start_eal();
  auto& p = pools()[name];
  if (!p) p = rte_pktmbuf_pool_create(name, mbufs, 0, 0, static_cast<uint16_t>(data_room + RTE_PKTMBUF_HEADROOM), 0);
  if (!p) std::abort();
  return p;
}

}  // namespace ngstack::test
