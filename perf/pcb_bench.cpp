// The connection-table microbenchmark of the locking experiment: what one
// table-wide lock (`stack.locking: giant`, FreeBSD's single tcbinfo lock)
// costs against a lock per connection group (`group`), as speed-up on N
// threads, S(N) = rate(N) / rate(1), with no NIC and any thread count.
//
// Model. Each thread is a worker, pinned round-robin to the CPUs the process
// may run on (or --cpus). The table is a PcbTable with `workers` = the thread
// count and the netisr's default bucket map (128 buckets, round robin over
// the workers); a tuple's group and owner are the table's own (group_of,
// owner_of: the Toeplitz hash of the tuple taken foreign as source). A
// thread works on tuples whose bucket it owns, except a share --cross of its
// operations, which lands on tuples owned by other workers:
//
//   cross 0        NIC RSS with the ports' key and RETA: the receiving worker
//                  owns every group it touches, so group locks never contend.
//   cross (W-1)/W  direct dispatch when packets reach workers independently
//                  of the bucket map (software RSS, a NIC that spreads by
//                  another hash or one queue): a segment lands on its group's
//                  owner with probability 1/W (`--cross uniform`).
//   cross 0.5      the default: what uniform arrival gives on 2 workers, and
//                  one fixed share at every N, so that S(N) compares the same
//                  per-thread mix. On 1 thread there is no other worker and
//                  the share is 0 whatever the flag says.
//
// With group locking, contention happens exactly when two workers touch the
// same group: cross traffic, fewer groups than workers (groups 1), or groups
// spanning buckets of several workers.
//
// Workloads. A segment is one acquisition of the lock covering a group (the
// group's, or giant) with the table's work under it; every segment that
// finds its PCB writes it (input processing updates the TCB), plus
// --work-in steps of integer work; --work-out steps follow outside the lock.
//   churn   op = a short connection: insert its tuple under the group lock
//           (a passive open), --lookups segments each a lookup (3 by
//           default), then a lookup and removal (the FIN): 2 + L segments.
//   lookup  op = a segment for a random live tuple of a table preloaded with
//           --preload connections (established traffic).
//   mixed   the preloaded table; per round one short connection as in churn
//           and --established segments of preloaded ones; op = a segment.
//
// Measurement. Tuples (each thread's churn pools, the preload) are made
// before the window; nothing is allocated in the loop. Threads meet at a
// barrier, then all start at one TSC instant and stop at one TSC deadline
// (checked every few ops); each thread's rate is its ops over its own
// [start, last check], the total the sum. Random choices come from a
// per-thread xorshift64*. The lock figures are the table's lock profile
// (the pcb_giant or pcb_group class) over the window: acquisitions per op,
// the contended share (the first try-lock failed), wait and hold cycles per
// acquisition, the longest wait (over the table's life, the preload
// included) and `held`, the share of the threads' time spent holding the
// lock (under giant on 1 thread, the serial fraction of Amdahl's law). The
// profile's own rdtsc calls are part of every acquisition, as in the
// stack. Threads beyond the CPUs used are reported as over-subscribed.
// Checks, any failing one makes the exit status 1: every lookup of a live
// tuple finds it, every insert succeeds, the profile's acquisitions equal
// the segments the threads counted (and the workload's count per op), the
// table's lookups equal theirs, and the table ends with what it started
// with (churn: empty).
//
// Usage:
//   pcb_bench [--workload churn,lookup,mixed] [--locking giant,group]
//             [--lock-type spin,queuing,speculative,rte_spinlock]
//             [--groups 1,W,128] [--threads 1,2,4] [--cross 0.5|uniform,...]
//             [--seconds 1] [--lookups 3] [--preload 65536] [--established 8]
//             [--work-in 0] [--work-out 0] [--cpus 0-3,8] [--seed 1] [--json FILE]
// Every list flag takes comma-separated values; the run covers their
// product. `W` in --groups is the thread count (rounded up to a power of
// two); the table has max(128, W) buckets. Thread count 1 is always run,
// first, for S(N).
#include <cpuid.h>
#include <pthread.h>
#include <rte_cycles.h>
#include <rte_pause.h>
#include <sched.h>
#include <unistd.h>

#include <oneapi/tbb/version.h>

#include <algorithm>
#include <cerrno>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "dispatch/rss.hpp"
#include "stack/pcb/pcb.hpp"

using namespace ngstack;
using namespace ngstack::stack::pcb;

namespace {

enum class Workload : uint8_t { churn, lookup, mixed };

const char* workload_name(Workload w) {
  switch (w) {
    case Workload::churn: return "churn";
    case Workload::lookup: return "lookup";
    case Workload::mixed: return "mixed";
  }
  return "?";
}

constexpr unsigned kBuckets = 128;            // dispatch.buckets' default
constexpr uint32_t kServer = 0xc6120001u;     // 198.18.0.1: our addresses count up from here
constexpr uint16_t kServerPort = 80;
constexpr uint32_t kPreloadNet = 0xc6130000u;  // 198.19.0.0/16: preloaded clients
constexpr uint32_t kChurnNet = 0xc6128000u;    // 198.18.128.0/17: one client address per thread
constexpr unsigned kMaxThreads = 32768;        // one churn client address each
constexpr unsigned kPool = 1024;               // churn tuples per thread, own and cross each
constexpr unsigned kCheckEvery = 8;            // ops between deadline checks

// A tuple with its group, as the table computes it (a NIC delivers the
// hash with the packet, so no thread hashes inside the window).
struct Entry {
  FourTuple t;
  uint32_t group;
};
static_assert(sizeof(Entry) == 16);

// xorshift64*: a few cycles, good enough to pick tuples.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed ? seed : 0x9e3779b97f4a7c15ULL) {}
  uint32_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return static_cast<uint32_t>((s * 0x2545f4914f6cdd1dULL) >> 32);
  }
  // Uniform in [0, n) (Lemire's multiply-shift).
  uint32_t below(uint32_t n) { return static_cast<uint32_t>((static_cast<uint64_t>(next()) * n) >> 32); }
};

uint64_t splitmix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// `n` dependent steps of integer work (no closed form for the compiler).
inline uint64_t work(uint64_t x, unsigned n) {
  for (unsigned i = 0; i < n; ++i) {
    x ^= x >> 29;
    x *= 0xbf58476d1ce4e5b9ULL;
  }
  return x + 1;
}

// --- options -----------------------------------------------------------------

struct GroupsSpec {
  bool per_worker = false;  // "W"
  unsigned n = 0;
  std::string name() const { return per_worker ? "W" : std::to_string(n); }
};

struct CrossSpec {
  bool uniform = false;  // (W-1)/W
  double share = 0.5;
  std::string name() const {
    if (uniform) return "uniform";
    std::ostringstream o;
    o << share;
    return o.str();
  }
  double at(unsigned threads) const {
    if (threads <= 1) return 0;
    return uniform ? static_cast<double>(threads - 1) / threads : share;
  }
};

struct Options {
  std::vector<Workload> workloads{Workload::churn, Workload::lookup};
  std::vector<Locking> lockings{Locking::giant, Locking::group};
  std::vector<LockType> types{LockType::spin, LockType::queuing};
  std::vector<GroupsSpec> groups{{false, 1}, {true, 0}, {false, 128}};
  std::vector<unsigned> threads{1, 2, 4};
  std::vector<CrossSpec> cross{{false, 0.5}};
  double seconds = 1.0;
  unsigned lookups = 3;
  unsigned preload = 65536;
  unsigned established = 8;
  unsigned work_in = 0, work_out = 0;
  std::vector<int> cpus;  // empty: every CPU the process may use
  uint64_t seed = 1;
  std::string json;
};

[[noreturn]] void usage(const std::string& why) {
  if (!why.empty()) std::fprintf(stderr, "pcb_bench: %s\n", why.c_str());
  std::fprintf(stderr,
               "usage: pcb_bench [--workload churn,lookup,mixed] [--locking giant,group]\n"
               "                 [--lock-type spin,queuing,speculative,rte_spinlock] [--groups 1,W,128]\n"
               "                 [--threads 1,2,4] [--cross 0.5|uniform,...] [--seconds 1] [--lookups 3]\n"
               "                 [--preload 65536] [--established 8] [--work-in 0] [--work-out 0]\n"
               "                 [--cpus 0-3,8] [--seed 1] [--json FILE]\n");
  std::exit(2);
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, ','))
    if (!cur.empty()) out.push_back(cur);
  if (out.empty()) usage("empty list: '" + s + "'");
  return out;
}

unsigned to_unsigned(const std::string& s, const char* flag) {
  char* end = nullptr;
  errno = 0;
  const unsigned long v = std::strtoul(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || errno != 0 || v > UINT32_MAX || s[0] == '-')
    usage(std::string(flag) + ": not a number: '" + s + "'");
  return static_cast<unsigned>(v);
}

double to_double(const std::string& s, const char* flag) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || !std::isfinite(v)) usage(std::string(flag) + ": not a number: '" + s + "'");
  return v;
}

std::vector<int> parse_cpus(const std::string& s) {
  std::vector<int> out;
  for (const auto& part : split(s)) {
    const auto dash = part.find('-');
    const unsigned lo = to_unsigned(part.substr(0, dash), "--cpus");
    const unsigned hi = dash == std::string::npos ? lo : to_unsigned(part.substr(dash + 1), "--cpus");
    if (hi < lo || hi >= CPU_SETSIZE) usage("--cpus: bad range '" + part + "'");
    for (unsigned c = lo; c <= hi; ++c) out.push_back(static_cast<int>(c));
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") usage("");
    if (i + 1 >= argc) usage(a + " needs a value");
    const std::string v = argv[++i];
    if (a == "--workload") {
      o.workloads.clear();
      for (const auto& x : split(v)) {
        if (x == "churn") o.workloads.push_back(Workload::churn);
        else if (x == "lookup") o.workloads.push_back(Workload::lookup);
        else if (x == "mixed") o.workloads.push_back(Workload::mixed);
        else usage("--workload: unknown '" + x + "' (churn, lookup, mixed)");
      }
    } else if (a == "--locking") {
      o.lockings.clear();
      for (const auto& x : split(v)) {
        auto l = locking_from_name(x);
        if (!l) usage("--locking: unknown '" + x + "' (giant, group)");
        o.lockings.push_back(*l);
      }
    } else if (a == "--lock-type") {
      o.types.clear();
      for (const auto& x : split(v)) {
        auto t = lock_type_from_name(x);
        if (!t) usage("--lock-type: unknown '" + x + "' (spin, queuing, speculative, rte_spinlock)");
        o.types.push_back(*t);
      }
    } else if (a == "--groups") {
      o.groups.clear();
      for (const auto& x : split(v)) {
        if (x == "W" || x == "w") {
          o.groups.push_back({true, 0});
          continue;
        }
        const unsigned n = to_unsigned(x, "--groups");
        if (n == 0 || (n & (n - 1)) != 0 || n > 65536) usage("--groups: a power of two up to 65536, or W: '" + x + "'");
        o.groups.push_back({false, n});
      }
    } else if (a == "--threads") {
      o.threads.clear();
      for (const auto& x : split(v)) {
        const unsigned n = to_unsigned(x, "--threads");
        if (n == 0 || n > kMaxThreads) usage("--threads: 1.." + std::to_string(kMaxThreads) + ": '" + x + "'");
        o.threads.push_back(n);
      }
    } else if (a == "--cross") {
      o.cross.clear();
      for (const auto& x : split(v)) {
        if (x == "uniform") {
          o.cross.push_back({true, 0});
          continue;
        }
        const double c = to_double(x, "--cross");
        if (c < 0 || c > 1) usage("--cross: a share in [0, 1] or 'uniform': '" + x + "'");
        o.cross.push_back({false, c});
      }
    } else if (a == "--seconds") {
      o.seconds = to_double(v, "--seconds");
      if (o.seconds <= 0 || o.seconds > 3600) usage("--seconds: (0, 3600]");
    } else if (a == "--lookups") {
      o.lookups = to_unsigned(v, "--lookups");
    } else if (a == "--preload") {
      o.preload = to_unsigned(v, "--preload");
      if (o.preload == 0 || o.preload > (1u << 24)) usage("--preload: 1..16777216");
    } else if (a == "--established") {
      o.established = to_unsigned(v, "--established");
    } else if (a == "--work-in") {
      o.work_in = to_unsigned(v, "--work-in");
    } else if (a == "--work-out") {
      o.work_out = to_unsigned(v, "--work-out");
    } else if (a == "--cpus") {
      o.cpus = parse_cpus(v);
    } else if (a == "--seed") {
      o.seed = to_unsigned(v, "--seed");
    } else if (a == "--json") {
      o.json = v;
    } else {
      usage("unknown flag " + a);
    }
  }
  // Thread count 1 first (S(N) needs it), then ascending.
  o.threads.push_back(1);
  std::sort(o.threads.begin(), o.threads.end());
  o.threads.erase(std::unique(o.threads.begin(), o.threads.end()), o.threads.end());
  return o;
}

// --- machine -----------------------------------------------------------------

struct Machine {
  std::string cpu_model = "unknown";
  long cpus_online = 0;
  std::vector<int> cpus;  // used, in pinning order
  double tsc_hz = 0;
  double load1 = -1;
  bool rtm = false;
};

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) {
        auto s = line.substr(colon + 1);
        s.erase(0, s.find_first_not_of(' '));
        return s;
      }
    }
  }
  return "unknown";
}

// TSC rate without EAL: cycles over 100 ms of steady time.
double tsc_hz() {
  const auto t0 = std::chrono::steady_clock::now();
  const uint64_t c0 = rte_rdtsc();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const uint64_t c1 = rte_rdtsc();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return static_cast<double>(c1 - c0) / s;
}

bool cpu_has_rtm() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  return (b & (1u << 11)) != 0;
}

Machine machine(const std::vector<int>& wanted) {
  Machine m;
  m.cpu_model = cpu_model();
  m.cpus_online = sysconf(_SC_NPROCESSORS_ONLN);
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) {
    std::perror("pcb_bench: sched_getaffinity");
    std::exit(1);
  }
  if (wanted.empty()) {
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) m.cpus.push_back(c);
  } else {
    for (int c : wanted) {
      if (!CPU_ISSET(c, &set)) usage("--cpus: CPU " + std::to_string(c) + " is not one this process may use");
      m.cpus.push_back(c);
    }
  }
  m.tsc_hz = tsc_hz();
  std::ifstream f("/proc/loadavg");
  f >> m.load1;
  m.rtm = cpu_has_rtm();
  return m;
}

std::string cpu_list(const std::vector<int>& cpus) {
  std::string s;
  for (std::size_t i = 0; i < cpus.size();) {
    std::size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    if (!s.empty()) s += ',';
    s += std::to_string(cpus[i]);
    if (j > i) s += '-' + std::to_string(cpus[j]);
    i = j + 1;
  }
  return s;
}

// TSC cycles of one step of work() (a dependent shift, xor and multiply).
double work_step_cycles() {
  constexpr unsigned kSteps = 1u << 22;
  const uint64_t t0 = rte_rdtsc();
  const uint64_t x = work(t0, kSteps);
  asm volatile("" : : "r"(x));  // the result is needed, so the work is done
  const uint64_t t1 = rte_rdtsc();
  return static_cast<double>(t1 - t0) / kSteps;
}

// --- one point ---------------------------------------------------------------

struct Point {
  Workload workload;
  Locking locking;
  LockType type;
  GroupsSpec groups;
  CrossSpec cross;
  unsigned threads;
};

struct alignas(64) ThreadOut {
  uint64_t ops = 0;
  uint64_t segments = 0;  // lock acquisitions this thread made
  uint64_t lookups = 0;   // table lookups this thread made
  uint64_t misses = 0;    // lookups of a live tuple that found nothing
  uint64_t insert_failures = 0;
  uint64_t start = 0, end = 0;  // TSC
  uint64_t sink = 0;            // keeps --work-out's results alive
  bool pinned = true;
};

struct PointResult {
  Point p;
  unsigned groups = 0, buckets = 0;
  double cross = 0;
  bool oversubscribed = false;
  double seconds = 0;  // mean measured window
  uint64_t ops = 0;
  double rate = 0, rate_min = 0, rate_max = 0;
  double speedup = NAN, efficiency = NAN;
  LockProfile lock;  // over the window
  double acq_per_op = 0, contended_share = 0, wait_per_acq = 0, hold_per_acq = 0;
  double held_share = 0;  // of the threads' time, holding the lock
  uint64_t misses = 0, insert_failures = 0;
  unsigned live_before = 0, live_after = 0;
  bool pinned = true;
  std::string check;  // "ok" or what failed
};

unsigned pow2_at_least(unsigned n) {
  unsigned p = 1;
  while (p < n) p <<= 1;
  return p;
}

class Bench {
 public:
  Bench(const Options& o, const Machine& m) : o_(o), m_(m) {}

  PointResult run(const Point& p) {
    PointResult r;
    r.p = p;
    const unsigned W = p.threads;
    r.groups = p.groups.per_worker ? pow2_at_least(W) : p.groups.n;
    r.buckets = std::max(kBuckets, pow2_at_least(W));
    r.cross = p.cross.at(W);
    r.oversubscribed = W > m_.cpus.size();
    const bool preloaded = p.workload != Workload::churn;

    PcbParams params;
    params.groups = r.groups;
    params.buckets = r.buckets;
    params.workers = W;
    params.locking = p.locking;
    params.lock_type = p.type;
    // Room for the preload at any spread over the groups, and for every
    // thread's live short connection in one group (groups 1).
    params.capacity = 2 * (preloaded ? o_.preload : 0) + std::max(64u * r.groups, 2 * W);
    params.rss_key = dispatch::symmetric_rss_key(40);
    auto created = PcbTable::create("pcb_bench", params);
    if (!created) {
      r.check = created.error();
      return r;
    }
    table_ = std::move(*created);
    PcbTable& t = *table_;

    // The preload, ordered by owner: worker w owns preload_[own_[w], own_[w+1]).
    preload_.clear();
    own_.assign(W + 1, 0);
    if (preloaded) {
      std::vector<Entry> all;
      all.reserve(o_.preload);
      std::vector<unsigned> owner(o_.preload);
      for (unsigned i = 0; i < o_.preload; ++i) {
        const FourTuple tu{kServer, kPreloadNet + i / 60000, kServerPort, static_cast<uint16_t>(1024 + i % 60000)};
        all.push_back({tu, t.group_of(tu)});
        owner[i] = t.owner_of(tu);
        ++own_[owner[i] + 1];
      }
      for (unsigned w = 0; w < W; ++w) own_[w + 1] += own_[w];
      preload_.resize(o_.preload);
      std::vector<unsigned> at(own_.begin(), own_.end() - 1);
      for (unsigned i = 0; i < o_.preload; ++i) preload_[at[owner[i]]++] = all[i];
      for (const Entry& e : preload_) {
        auto g = t.lock_group(e.group);
        if (!t.insert(g, e.t)) {
          r.check = "preload: insert failed (group " + std::to_string(e.group) + " full?)";
          return r;
        }
      }
    }
    r.live_before = t.live();

    const LockProfile before = profile(t);
    const uint64_t other_before = other_acquisitions(t);
    const uint64_t lookups_before = t.lookups();
    std::vector<ThreadOut> out(W);
    ready_.store(0);
    go_.store(false);
    std::vector<std::thread> threads;
    threads.reserve(W);
    for (unsigned w = 0; w < W; ++w) threads.emplace_back([this, &p, &r, &out, w] { worker(p, r.cross, w, out[w]); });
    // The barrier: every thread has pinned itself and made its tuples; then
    // one start instant and one deadline for all, 2 ms ahead so that every
    // running thread is already spinning at the start.
    while (ready_.load(std::memory_order_acquire) < W) std::this_thread::sleep_for(std::chrono::microseconds(100));
    const uint64_t now = rte_rdtsc();
    start_ = now + static_cast<uint64_t>(m_.tsc_hz * 0.002);
    deadline_ = start_ + static_cast<uint64_t>(m_.tsc_hz * o_.seconds);
    go_.store(true, std::memory_order_release);
    for (auto& th : threads) th.join();
    const LockProfile after = profile(t);

    // Rates: each thread over its own window; the total is their sum.
    uint64_t segments = 0, lookups = 0, window_cycles = 0;
    double window = 0;
    r.rate_min = INFINITY;
    for (const ThreadOut& x : out) {
      const double s = static_cast<double>(x.end - x.start) / m_.tsc_hz;
      const double rate = s > 0 ? static_cast<double>(x.ops) / s : 0;
      r.ops += x.ops;
      r.rate += rate;
      r.rate_min = std::min(r.rate_min, rate);
      r.rate_max = std::max(r.rate_max, rate);
      window += s;
      window_cycles += x.end - x.start;
      segments += x.segments;
      lookups += x.lookups;
      r.misses += x.misses;
      r.insert_failures += x.insert_failures;
      r.pinned = r.pinned && x.pinned;
    }
    r.seconds = window / W;
    r.lock.acquisitions = after.acquisitions - before.acquisitions;
    r.lock.contended = after.contended - before.contended;
    r.lock.wait_cycles = after.wait_cycles - before.wait_cycles;
    r.lock.hold_cycles = after.hold_cycles - before.hold_cycles;
    r.lock.wait_max = after.wait_max;
    r.lock.hold_max = after.hold_max;
    if (r.ops) r.acq_per_op = static_cast<double>(r.lock.acquisitions) / static_cast<double>(r.ops);
    if (r.lock.acquisitions) {
      const auto acq = static_cast<double>(r.lock.acquisitions);
      r.contended_share = static_cast<double>(r.lock.contended) / acq;
      r.wait_per_acq = static_cast<double>(r.lock.wait_cycles) / acq;
      r.hold_per_acq = static_cast<double>(r.lock.hold_cycles) / acq;
    }
    if (window_cycles) r.held_share = static_cast<double>(r.lock.hold_cycles) / static_cast<double>(window_cycles);
    r.live_after = t.live();

    std::string bad;
    auto fail = [&bad](const std::string& s) { bad += (bad.empty() ? "" : "; ") + s; };
    if (r.ops == 0) fail("no op completed");
    if (r.misses) fail(std::to_string(r.misses) + " lookups of live tuples missed");
    if (r.insert_failures) fail(std::to_string(r.insert_failures) + " inserts failed");
    if (r.lock.acquisitions != segments)
      fail("lock profile counts " + std::to_string(r.lock.acquisitions) + " acquisitions, the threads " +
           std::to_string(segments));
    if (t.lookups() - lookups_before != lookups)
      fail("table counts " + std::to_string(t.lookups() - lookups_before) + " lookups, the threads " +
           std::to_string(lookups));
    if (r.live_after != r.live_before)
      fail("table holds " + std::to_string(r.live_after) + " PCBs, " + std::to_string(r.live_before) + " before");
    if (other_acquisitions(t) != other_before) fail("the other lock class was taken");
    // Acquisitions per op as the workload defines them.
    const uint64_t per_op = p.workload == Workload::churn ? 2 + o_.lookups : 1;
    if (r.ops * per_op != segments)
      fail(std::to_string(segments) + " acquisitions for " + std::to_string(r.ops) + " ops, " +
           std::to_string(per_op) + " each expected");
    if (r.lock.contended > r.lock.acquisitions) fail("more contended acquisitions than acquisitions");
    r.check = bad.empty() ? "ok" : bad;
    table_.reset();
    return r;
  }

 private:
  // The profile of the lock class the point takes (pcb_giant or pcb_group),
  // and the acquisitions of the other one, which the window must not change.
  static LockProfile profile(const PcbTable& t) {
    const auto& cls = witness::pcb_classes();
    return t.class_profile(t.locking() == Locking::giant ? cls.giant : cls.group);
  }
  static uint64_t other_acquisitions(const PcbTable& t) {
    const auto& cls = witness::pcb_classes();
    return t.class_profile(t.locking() == Locking::giant ? cls.group : cls.giant).acquisitions;
  }

  // Worker w's churn tuples: kPool whose bucket it owns and, with other
  // workers, kPool that they own, all from a client address of its own, so
  // that no two threads ever insert the same tuple.
  void make_pools(unsigned w, unsigned workers, std::vector<Entry>& own, std::vector<Entry>& cross) const {
    const PcbTable& t = *table_;
    const std::size_t want_cross = workers > 1 ? kPool : 0;
    own.reserve(kPool);
    cross.reserve(want_cross);
    for (uint32_t laddr = kServer; own.size() < kPool || cross.size() < want_cross; ++laddr) {
      for (uint32_t fport = 1024; fport <= 65535; ++fport) {
        const FourTuple tu{laddr, kChurnNet + w, kServerPort, static_cast<uint16_t>(fport)};
        if (t.owner_of(tu) == w) {
          if (own.size() < kPool) own.push_back({tu, t.group_of(tu)});
        } else if (cross.size() < want_cross) {
          cross.push_back({tu, t.group_of(tu)});
        }
      }
    }
  }

  void worker(const Point& p, double cross_share, unsigned w, ThreadOut& out) {
    const int cpu = m_.cpus[w % m_.cpus.size()];
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    out.pinned = pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
    std::vector<Entry> own, cross;
    if (p.workload != Workload::lookup) make_pools(w, p.threads, own, cross);
    Rng rng(splitmix(o_.seed * 0x100000001b3ULL + w + 1));
    // P(cross) as a 32-bit threshold; 2^32 would not fit: 1.0 is "always".
    const uint64_t thr64 = static_cast<uint64_t>(cross_share * 4294967296.0);
    const bool always_cross = thr64 >= (1ULL << 32);
    const auto thr = static_cast<uint32_t>(std::min<uint64_t>(thr64, UINT32_MAX));
    auto is_cross = [&] { return always_cross || rng.next() < thr; };

    PcbTable& t = *table_;
    const unsigned W = p.threads;
    const uint32_t own_lo = own_[w], own_n = own_[w + 1] - own_[w];
    const auto others_n = static_cast<uint32_t>(preload_.size()) - own_n;
    auto pick_preloaded = [&]() -> const Entry& {
      if (W > 1 && others_n && (own_n == 0 || is_cross())) {
        const uint32_t i = rng.below(others_n);
        return preload_[i < own_lo ? i : i + own_n];
      }
      return preload_[own_lo + rng.below(own_n)];
    };
    auto pick_churn = [&]() -> const Entry& {
      if (!cross.empty() && is_cross()) return cross[rng.below(static_cast<uint32_t>(cross.size()))];
      return own[rng.below(static_cast<uint32_t>(own.size()))];
    };
    uint64_t ops = 0, segments = 0, lookups = 0, misses = 0, insert_failures = 0, sink = 0;
    const unsigned work_in = o_.work_in, work_out = o_.work_out, L = o_.lookups, E = o_.established;

    // One segment of an established connection.
    auto segment = [&](const Entry& e) {
      {
        GroupGuard g = t.lock_group(e.group);
        Pcb* pcb = t.lookup(g, e.t);
        if (pcb)
          pcb->cookie = work(pcb->cookie, work_in);
        else
          ++misses;
      }
      ++segments;
      ++lookups;
      sink = work(sink, work_out);
    };
    // A short connection: SYN (insert), L segments, FIN (lookup and remove).
    auto connection = [&](const Entry& e) {
      {
        GroupGuard g = t.lock_group(e.group);
        Pcb* pcb = t.insert(g, e.t, w);
        if (pcb)
          pcb->cookie = work(pcb->cookie, work_in);
        else
          ++insert_failures;
      }
      ++segments;
      sink = work(sink, work_out);
      for (unsigned i = 0; i < L; ++i) segment(e);
      {
        GroupGuard g = t.lock_group(e.group);
        if (Pcb* pcb = t.lookup(g, e.t))
          t.remove(g, pcb);
        else
          ++misses;
      }
      ++segments;
      ++lookups;
      sink = work(sink, work_out);
    };

    ready_.fetch_add(1, std::memory_order_release);
    while (!go_.load(std::memory_order_acquire)) std::this_thread::yield();
    const uint64_t start = start_, deadline = deadline_;
    while (rte_rdtsc() < start) rte_pause();
    out.start = start;
    uint64_t now = start;
    switch (p.workload) {
      case Workload::churn:
        while (now < deadline) {
          for (unsigned k = 0; k < kCheckEvery; ++k) connection(pick_churn());
          ops += kCheckEvery;
          now = rte_rdtsc();
        }
        break;
      case Workload::lookup:
        while (now < deadline) {
          for (unsigned k = 0; k < kCheckEvery; ++k) segment(pick_preloaded());
          ops += kCheckEvery;
          now = rte_rdtsc();
        }
        break;
      case Workload::mixed:
        while (now < deadline) {
          connection(pick_churn());
          for (unsigned k = 0; k < E; ++k) segment(pick_preloaded());
          ops += 2 + L + E;
          now = rte_rdtsc();
        }
        break;
    }
    out.end = now;
    out.ops = ops;
    out.segments = segments;
    out.lookups = lookups;
    out.misses = misses;
    out.insert_failures = insert_failures;
    out.sink = sink;
  }

  const Options& o_;
  const Machine& m_;
  std::unique_ptr<PcbTable> table_;
  std::vector<Entry> preload_;
  std::vector<uint32_t> own_;
  std::atomic<unsigned> ready_{0};
  std::atomic<bool> go_{false};
  uint64_t start_ = 0, deadline_ = 0;  // written before go_, read after
};

// --- output ------------------------------------------------------------------

std::string si(double v) {
  char b[32];
  if (!std::isfinite(v)) return "-";
  if (v >= 1e9) std::snprintf(b, sizeof b, "%.2fG", v / 1e9);
  else if (v >= 1e6) std::snprintf(b, sizeof b, "%.2fM", v / 1e6);
  else if (v >= 1e3) std::snprintf(b, sizeof b, "%.1fk", v / 1e3);
  else std::snprintf(b, sizeof b, "%.0f", v);
  return b;
}

std::string fixed(double v, int prec) {
  if (!std::isfinite(v)) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.*f", prec, v);
  return b;
}

const char* op_name(Workload w) { return w == Workload::churn ? "connection" : "segment"; }

void print_header() {
  std::printf("%-7s %-7s %-12s %-6s %-5s %3s %8s %-24s %5s %5s %6s %9s %8s %8s %8s %5s  %s\n", "work", "locking",
              "lock_type", "groups", "cross", "thr", "ops/s", "per thread (min..max)", "S(N)", "S/N", "acq/op",
              "contended", "wait/acq", "wait_max", "hold/acq", "held", "check");
  std::fflush(stdout);
}

void print_line(const PointResult& r) {
  const std::string groups = r.p.groups.per_worker ? "W=" + std::to_string(r.groups) : std::to_string(r.groups);
  const std::string per = si(r.rate / r.p.threads) + " (" + si(r.rate_min) + ".." + si(r.rate_max) + ")";
  std::string check = r.check;
  if (r.oversubscribed) check += " over-subscribed";
  if (!r.pinned) check += " unpinned";
  std::printf("%-7s %-7s %-12s %-6s %-5s %3u %8s %-24s %5s %5s %6s %8s%% %8s %8s %8s %4s%%  %s\n",
              workload_name(r.p.workload), locking_name(r.p.locking), lock_type_name(r.p.type), groups.c_str(),
              fixed(r.cross, 2).c_str(), r.p.threads, si(r.rate).c_str(), per.c_str(), fixed(r.speedup, 2).c_str(),
              fixed(r.efficiency, 2).c_str(), fixed(r.acq_per_op, 2).c_str(), fixed(100 * r.contended_share, 2).c_str(),
              fixed(r.wait_per_acq, 0).c_str(), si(static_cast<double>(r.lock.wait_max)).c_str(),
              fixed(r.hold_per_acq, 0).c_str(), fixed(100 * r.held_share, 0).c_str(), check.c_str());
  std::fflush(stdout);
}

std::string json_str(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      o += b;
      continue;
    }
    o += c;
  }
  return o + "\"";
}

std::string json_num(double v) {
  if (!std::isfinite(v)) return "null";
  char b[40];
  std::snprintf(b, sizeof b, "%.6g", v);
  return b;
}

bool write_json(const std::string& path, const std::vector<PointResult>& rs, const Options& o, const Machine& m) {
  std::ofstream f(path);
  if (!f) return false;
  f << "[\n";
  for (std::size_t i = 0; i < rs.size(); ++i) {
    const PointResult& r = rs[i];
    f << "  {\"workload\": " << json_str(workload_name(r.p.workload)) << ", \"op\": " << json_str(op_name(r.p.workload))
      << ", \"locking\": " << json_str(locking_name(r.p.locking))
      << ", \"lock_type\": " << json_str(lock_type_name(r.p.type)) << ", \"groups_spec\": " << json_str(r.p.groups.name())
      << ", \"groups\": " << r.groups << ", \"buckets\": " << r.buckets << ", \"threads\": " << r.p.threads
      << ", \"cross_spec\": " << json_str(r.p.cross.name()) << ", \"cross\": " << json_num(r.cross)
      << ", \"lookups_per_connection\": " << o.lookups << ", \"preload\": " << (r.p.workload == Workload::churn ? 0 : o.preload)
      << ", \"established_per_round\": " << (r.p.workload == Workload::mixed ? o.established : 0)
      << ", \"work_in\": " << o.work_in << ", \"work_out\": " << o.work_out << ", \"seconds\": " << json_num(r.seconds)
      << ", \"ops\": " << r.ops << ", \"ops_per_s\": " << json_num(r.rate)
      << ", \"ops_per_s_per_thread\": " << json_num(r.rate / r.p.threads)
      << ", \"ops_per_s_thread_min\": " << json_num(r.rate_min) << ", \"ops_per_s_thread_max\": " << json_num(r.rate_max)
      << ", \"speedup\": " << json_num(r.speedup) << ", \"efficiency\": " << json_num(r.efficiency)
      << ", \"acquisitions\": " << r.lock.acquisitions << ", \"acquisitions_per_op\": " << json_num(r.acq_per_op)
      << ", \"contended\": " << r.lock.contended << ", \"contended_share\": " << json_num(r.contended_share)
      << ", \"wait_cycles_per_acquisition\": " << json_num(r.wait_per_acq)
      << ", \"wait_max_cycles\": " << r.lock.wait_max
      << ", \"hold_cycles_per_acquisition\": " << json_num(r.hold_per_acq)
      << ", \"hold_max_cycles\": " << r.lock.hold_max << ", \"held_share\": " << json_num(r.held_share) << ", \"lookup_misses\": " << r.misses
      << ", \"insert_failures\": " << r.insert_failures << ", \"live_before\": " << r.live_before
      << ", \"live_after\": " << r.live_after << ", \"check\": " << json_str(r.check)
      << ", \"pinned\": " << (r.pinned ? "true" : "false")
      << ", \"oversubscribed\": " << (r.oversubscribed ? "true" : "false")
      << ", \"machine\": {\"cpu_model\": " << json_str(m.cpu_model) << ", \"cpus_online\": " << m.cpus_online
      << ", \"cpus_used\": " << m.cpus.size() << ", \"cpu_list\": " << json_str(cpu_list(m.cpus))
      << ", \"tsc_hz\": " << json_num(m.tsc_hz) << ", \"load1_at_start\": " << json_num(m.load1)
      << ", \"rtm\": " << (m.rtm ? "true" : "false") << "}}" << (i + 1 < rs.size() ? "," : "") << "\n";
  }
  f << "]\n";
  return static_cast<bool>(f);
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  const Machine m = machine(o.cpus);
  std::printf("pcb_bench: connection-table locking, threads without a NIC\n");
  std::printf("machine: %s; %ld CPUs online, %zu used (%s); TSC %.2f GHz; TSX/RTM %s; TBB %s; load %.2f at start\n",
              m.cpu_model.c_str(), m.cpus_online, m.cpus.size(), cpu_list(m.cpus).c_str(), m.tsc_hz / 1e9,
              m.rtm ? "yes" : "no", TBB_VERSION_STRING, m.load1);
  if (o.threads.back() > m.cpus.size())
    std::printf("threads > %zu are over-subscribed: workers share a CPU, and a lock holder can be preempted\n",
                m.cpus.size());
  std::printf("ops: churn = a connection (insert, %u lookups, lookup+remove: %u acquisitions), lookup = a segment "
              "of a %u-connection table, mixed = a segment (per round 1 connection + %u established); "
              "%.2f s per point; work in/out of the lock %u/%u steps of %.1f cycles; cycles are TSC cycles\n",
              o.lookups, o.lookups + 2, o.preload, o.established, o.seconds, o.work_in, o.work_out,
              work_step_cycles());
  print_header();

  Bench bench(o, m);
  std::vector<PointResult> results;
  std::map<std::tuple<int, int, int, std::string, std::string>, double> base;  // 1-thread rate per configuration
  bool ok = true;
  for (Workload wl : o.workloads)
    for (Locking l : o.lockings)
      for (LockType ty : o.types)
        for (const GroupsSpec& g : o.groups)
          for (const CrossSpec& c : o.cross)
            for (unsigned n : o.threads) {
              const Point p{wl, l, ty, g, c, n};
              PointResult r = bench.run(p);
              const auto key = std::make_tuple(static_cast<int>(wl), static_cast<int>(l), static_cast<int>(ty),
                                               g.name(), c.name());
              if (n == 1) base[key] = r.rate;
              if (auto it = base.find(key); it != base.end() && it->second > 0) {
                r.speedup = r.rate / it->second;
                r.efficiency = r.speedup / n;
              }
              ok = ok && r.check == "ok";
              print_line(r);
              results.push_back(std::move(r));
            }
  if (!o.json.empty() && !write_json(o.json, results, o, m)) {
    std::fprintf(stderr, "pcb_bench: cannot write %s\n", o.json.c_str());
    return 1;
  }
  std::printf("checks: %s\n", ok ? "every point ok (lookups found their tuples, tables ended as they began)"
                                 : "FAILED (see the check column)");
  return ok ? 0 : 1;
}
