// Cost of choosing the local port of an active open so that the reply's RSS
// bucket belongs to the opening worker, two ways:
//
//   walk    ngstack's PcbTable::connect: from the worker's port cursor, the
//           first ephemeral port whose tuple (foreign as source) hashes into
//           one of the worker's buckets and is free in its group (inserted
//           there under the group's lock). About W ports are tried with W
//           workers; any Toeplitz key works, the symmetric one included.
//   thash   DPDK's predictable RSS (rte_thash_adjust_tuple): the port bits to
//           flip are computed from the hash. It must own the key: adding the
//           port helper rewrites key bits, so the NIC must be given the key
//           rte_thash_get_key returns (the symmetric key that makes both
//           directions of a flow meet on one worker is then gone).
//
// Prints ns per open for each worker count, and whether rte_thash kept the
// key. Usage: connect_bench [--opens 1000]
#define ALLOW_EXPERIMENTAL_API
#include <rte_eal.h>
#include <rte_thash.h>

#include <chrono>
#include <filesystem>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "dispatch/rss.hpp"
#include "stack/pcb/pcb.hpp"

using namespace ngstack;
using namespace ngstack::stack::pcb;

namespace {

constexpr unsigned kBuckets = 128;
constexpr uint32_t kLocal = 0xc6120101u;  // 198.18.1.1
constexpr uint32_t kServerBase = 0xc6130000u;

double now_ns() {
  return static_cast<double>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

double walk(unsigned workers, unsigned opens) {
  PcbParams p;
  p.groups = kBuckets;
  p.buckets = kBuckets;
  p.workers = workers;
  p.capacity = 1 << 20;
  p.rss_key = dispatch::symmetric_rss_key(40);
  auto t = PcbTable::create("bench", p);
  if (!t) {
    std::fprintf(stderr, "connect_bench: %s\n", t.error().c_str());
    std::exit(1);
  }
  const double t0 = now_ns();
  unsigned ok = 0;
  for (unsigned i = 0; i < opens; ++i) ok += (*t)->connect(0, kLocal, kServerBase + (i % 4096) + 1, 7).has_value();
  const double ns = (now_ns() - t0) / opens;
  if (ok != opens) std::fprintf(stderr, "connect_bench: %u of %u opens failed\n", opens - ok, opens);
  return ns;
}

struct Thash {
  bool kept_key = false;
  double ns = -1;
  std::string error;
};

// The reply's tuple, foreign as source, in network order: src addr, dst addr,
// src port, dst port; our (local) port is the last 16 bits, at bit 80.
Thash thash(unsigned workers, unsigned opens) {
  Thash r;
  std::vector<uint8_t> key = dispatch::symmetric_rss_key(40);
  const std::vector<uint8_t> original = key;
  rte_thash_ctx* ctx = rte_thash_init_ctx("connect_bench", 40, 7, key.data(), 0);
  if (!ctx) {
    r.error = "rte_thash_init_ctx failed";
    return r;
  }
  if (int rc = rte_thash_add_helper(ctx, "lport", 16, 80); rc != 0) {
    r.error = "rte_thash_add_helper: " + std::string(std::strerror(-rc));
    rte_thash_free_ctx(ctx);
    return r;
  }
  rte_thash_subtuple_helper* h = rte_thash_get_helper(ctx, "lport");
  r.kept_key = std::memcmp(rte_thash_get_key(ctx), original.data(), original.size()) == 0;
  unsigned ok = 0;
  const double t0 = now_ns();
  for (unsigned i = 0; i < opens; ++i) {
    const uint32_t faddr = kServerBase + (i % 4096) + 1;
    uint8_t tuple[12] = {};
    for (int b = 0; b < 4; ++b) tuple[b] = static_cast<uint8_t>(faddr >> (24 - 8 * b));
    for (int b = 0; b < 4; ++b) tuple[4 + b] = static_cast<uint8_t>(kLocal >> (24 - 8 * b));
    tuple[9] = 7;
    tuple[10] = 0xc0;  // start in the ephemeral range
    // A bucket of worker 0 (bucket b belongs to worker b % W).
    const uint32_t desired = (i * workers) % kBuckets;
    ok += rte_thash_adjust_tuple(ctx, h, tuple, sizeof tuple, desired, 8, nullptr, nullptr) == 0;
  }
  r.ns = (now_ns() - t0) / opens;
  if (ok != opens) r.error = std::to_string(opens - ok) + " adjustments failed";
  rte_thash_free_ctx(ctx);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  unsigned opens = 1000;
  for (int i = 1; i + 1 < argc; i += 2)
    if (std::string(argv[i]) == "--opens") opens = static_cast<unsigned>(std::stoul(argv[i + 1]));
  const char* eal[] = {"connect_bench", "--no-huge", "--no-pci", "-m", "64", "--log-level", "error",
                       "--file-prefix", "connect_bench", "--lcores", "0@0"};
  if (rte_eal_init(static_cast<int>(std::size(eal)), const_cast<char**>(eal)) < 0) {
    std::fprintf(stderr, "connect_bench: rte_eal_init failed\n");
    return 1;
  }
  std::printf("active open: ns per local-port choice, %u opens, %u buckets, symmetric key\n", opens, kBuckets);
  std::printf("%8s %10s %10s\n", "workers", "walk", "thash");
  bool kept = true;
  std::string error;
  for (unsigned w : {1u, 2u, 4u, 8u, 16u, 32u, 64u}) {
    const double ns = walk(w, opens);
    const Thash t = thash(w, opens);
    kept = kept && t.kept_key;
    if (!t.error.empty()) error = t.error;
    std::printf("%8u %10.1f %10.1f\n", w, ns, t.ns);
  }
  std::printf("rte_thash kept the symmetric key: %s%s\n", kept ? "yes" : "no (the NIC would need its key)",
              error.empty() ? "" : ("; " + error).c_str());
  const std::string runtime_dir = rte_eal_get_runtime_dir();
  rte_eal_cleanup();
  std::error_code ec;
  std::filesystem::remove_all(runtime_dir, ec);  // EAL leaves it behind
  return 0;
}
