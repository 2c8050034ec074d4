#include "stack/pcb/witness.hpp"

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

namespace ngstack::stack::pcb::witness {

namespace {

struct ClassInfo {
  char name[32] = {};
  int rank = 0;
  bool allow_duplicates = false;
};

struct Registry {
  std::mutex mutex;
  std::array<ClassInfo, kMaxClasses> classes{};
  unsigned count = 0;
  // seen[a][b]: some thread took a lock of class b while holding one of class a.
  bool seen[kMaxClasses][kMaxClasses] = {};
};

Registry& registry() {
  static Registry r;
  return r;
}

std::atomic<Handler> g_handler{nullptr};

[[maybe_unused]] void fail(const std::string& message) {
  Handler h = g_handler.load(std::memory_order_acquire);
  if (h) {
    h(message.c_str());
    return;
  }
  std::fprintf(stderr, "witness: %s\n", message.c_str());
  std::abort();
}

#ifndef NDEBUG
struct Held {
  std::array<ClassId, kMaxHeld> classes{};
  unsigned n = 0;
};
thread_local Held t_held;
#endif

}  // namespace

ClassId register_class(const char* name, int rank, bool allow_duplicates) {
  Registry& r = registry();
  std::lock_guard lk(r.mutex);
  for (unsigned i = 0; i < r.count; ++i)
    if (std::strcmp(r.classes[i].name, name) == 0) return static_cast<ClassId>(i);
  if (r.count == kMaxClasses) {
    std::fprintf(stderr, "witness: more than %u lock classes\n", kMaxClasses);
    std::abort();
  }
  ClassInfo& c = r.classes[r.count];
  std::snprintf(c.name, sizeof c.name, "%s", name);
  c.rank = rank;
  c.allow_duplicates = allow_duplicates;
  return static_cast<ClassId>(r.count++);
}

const char* class_name(ClassId c) { return registry().classes[c].name; }

const PcbClasses& pcb_classes() {
  static const PcbClasses c{register_class("pcb_listen", 10), register_class("pcb_giant", 20),
                            register_class("pcb_group", 20), register_class("pcb_conn", 30)};
  return c;
}

Handler set_handler(Handler h) { return g_handler.exchange(h, std::memory_order_acq_rel); }

#ifndef NDEBUG
void on_acquire(ClassId c) {
  Registry& r = registry();
  Held& held = t_held;
  std::string error;
  {
    std::lock_guard lk(r.mutex);
    const ClassInfo& ci = r.classes[c];
    for (unsigned i = 0; i < held.n && error.empty(); ++i) {
      const ClassId h = held.classes[i];
      const ClassInfo& hi = r.classes[h];
      if (h == c) {
        if (!ci.allow_duplicates)
          error = std::string("lock order: acquiring a second \"") + ci.name + "\" lock while holding one";
      } else if (ci.rank < hi.rank) {
        error = std::string("lock order reversal: acquiring \"") + ci.name + "\" (rank " + std::to_string(ci.rank) +
                ") while holding \"" + hi.name + "\" (rank " + std::to_string(hi.rank) +
                "); the order is pcb_listen -> pcb_giant|pcb_group -> pcb_conn";
      } else if (r.seen[c][h]) {
        error = std::string("lock order reversal: acquiring \"") + ci.name + "\" while holding \"" + hi.name +
                "\", but \"" + ci.name + "\" -> \"" + hi.name + "\" was seen before";
      }
    }
    if (error.empty())
      for (unsigned i = 0; i < held.n; ++i)
        if (held.classes[i] != c) r.seen[held.classes[i]][c] = true;
  }
  if (!error.empty()) fail(error);
  // Recorded even after a failure that a handler survived, so that release pairs up.
  if (held.n == kMaxHeld) {
    fail("more than " + std::to_string(kMaxHeld) + " locks held by one thread");
    return;
  }
  held.classes[held.n++] = c;
}

void on_release(ClassId c) {
  Held& held = t_held;
  for (unsigned i = held.n; i-- > 0;) {
    if (held.classes[i] == c) {
      for (unsigned j = i; j + 1 < held.n; ++j) held.classes[j] = held.classes[j + 1];
      --held.n;
      return;
    }
  }
  fail(std::string("releasing a \"") + class_name(c) + "\" lock that this thread does not hold");
}

unsigned held_count() { return t_held.n; }

void reset_learned_order() {
  Registry& r = registry();
  std::lock_guard lk(r.mutex);
  std::memset(r.seen, 0, sizeof r.seen);
}
#endif

}  // namespace ngstack::stack::pcb::witness
