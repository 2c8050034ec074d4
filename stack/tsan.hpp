// Happens-before edges that ThreadSanitizer cannot see on its own: DPDK's
// spinlocks, rte_hash's lock-free publication and rte_rcu_qsbr's grace
// periods synchronise in libraries built without TSan instrumentation. Under
// -fsanitize=thread these calls tell it what those primitives guarantee;
// in every other build they are empty.
#pragma once

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#endif

namespace ngstack::stack {

#if defined(__SANITIZE_THREAD__)
inline void tsan_release(const void* sync) { __tsan_release(const_cast<void*>(sync)); }
inline void tsan_acquire(const void* sync) { __tsan_acquire(const_cast<void*>(sync)); }
#else
inline void tsan_release(const void*) {}
inline void tsan_acquire(const void*) {}
#endif

}  // namespace ngstack::stack
