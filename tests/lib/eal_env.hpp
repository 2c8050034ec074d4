// DPDK for unit tests: EAL starts once per test binary (no hugepages, no PCI,
// its own file prefix, no telemetry); pools are real mempools; at exit the
// pools are freed, EAL is cleaned up and its runtime directory removed.
#pragma once

#include <rte_mempool.h>

namespace ngstack::test {

// Starts EAL on first use. Pools are named and created once.
rte_mempool* pool(const char* name, unsigned mbufs, uint16_t data_room);

}  // namespace ngstack::test
