// Forced into the fuzz_tcp harness's own compiles of stack/tcp/tcp.cpp and
// stack/ipv4/ip.cpp (meson: -include): the TSC those layers read at input
// (rte_rdtsc()) becomes the harness's virtual clock, the same clock it runs
// the timer wheels at. Every "now" TCP sees is then the one time line the
// input's delays advance, so timers, RTT samples, ISNs, SYN-cookie epochs
// and timestamps agree with each other and a crash replays byte for byte.
// The library build (stack/libngs_stack.a) is untouched; the linker takes
// these objects' definitions and never pulls the archive's copies of them.
#pragma once

#include <rte_cycles.h>

#include <stdint.h>

#ifdef __cplusplus
extern "C"
#endif
    uint64_t
    ngstack_fuzz_tsc(void);

#define rte_rdtsc() ngstack_fuzz_tsc()
