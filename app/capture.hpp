// Packet capture with DPDK's own dpdk-dumpcap (and dpdk-pdump).
//
// dumpcap is a DPDK secondary process: it attaches to this (primary) process
// through the shared hugepage memory and the multi-process channel of our
// --file-prefix, and asks rte_pdump to copy the packets of a port's queues
// into its own mempool and ring. The copies are made by rx/tx callbacks on
// the ethdev queues, so they run on the worker that polls the queue, and only
// while a capture is active; our mbufs are never handed to dumpcap.
//
// A primary started with --no-huge has no shared memory to attach to, so
// with eal.no_huge capture is impossible: start_capture() says so once and
// does not initialise rte_pdump.
#pragma once

#include "conf/config.hpp"

namespace ngstack::app {

// After rte_eal_init.
void start_capture(const conf::Config& cfg);
// Before rte_eal_cleanup. Idempotent.
void stop_capture();

}  // namespace ngstack::app
