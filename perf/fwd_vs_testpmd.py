#!/usr/bin/python3
"""ngstack forwarder vs dpdk-testpmd --forward-mode=mac, side by side.

Both forward 64-byte frames from a net_pcap infinite_rx source to a net_null
sink on one forwarding core (lcore 1; lcore 0 is the main lcore), with the same
burst size and ring sizes, and both rewrite the Ethernet addresses of every
frame. They run alternately, `--rounds` times each, `--seconds` per run; the
per-second rates after the first second are collected and the medians
compared. Prints the machine, the DPDK version, every run and the ratio.

  perf/fwd_vs_testpmd.py [--rounds 3] [--seconds 5] [--size 64] [--json FILE]
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--burst", type=int, default=32)
    ap.add_argument("--ngstack", default=benchlib.NGSTACK)
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="ngstack-perf-")
    pcap = os.path.join(tmp, "flows.pcap")
    benchlib.make_pcap(pcap, a.size)
    print(f"machine: {benchlib.machine()}")
    print(f"setup: net_pcap infinite_rx -> net_null no-rx, {a.size}-byte frames, 1024 flows, 1 forwarding core, "
          f"burst {a.burst}, {a.seconds} s per run, {a.rounds} round(s), medians of per-second rates")
    rows = []
    try:
        for r in range(a.rounds):
            tp = benchlib.run_testpmd([pcap], a.seconds, a.burst)
            ng, cpp, _ = benchlib.run_ngstack(benchlib.forwarder_config([pcap], 1, a.burst), a.seconds, tmp, a.ngstack)
            rows.append({"round": r + 1, "testpmd_mac_pps": tp, "ngstack_pps": ng, "ngstack_cycles_per_packet": cpp})
            print(f"round {r + 1}: testpmd mac {tp / 1e6:7.3f} Mpps   ngstack forwarder {ng / 1e6:7.3f} Mpps "
                  f"({cpp:.1f} cycles/packet)   ratio {ng / tp:.3f}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    tp = statistics.median(r["testpmd_mac_pps"] for r in rows)
    ng = statistics.median(r["ngstack_pps"] for r in rows)
    print(f"median: testpmd mac {tp / 1e6:.3f} Mpps, ngstack forwarder {ng / 1e6:.3f} Mpps, "
          f"ratio ngstack/testpmd = {ng / tp:.3f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"machine": benchlib.machine(), "size": a.size, "rounds": rows, "testpmd_mac_pps": tp,
                       "ngstack_pps": ng, "ratio": ng / tp}, f, indent=2)
    if tp <= 0 or ng <= 0:
        sys.exit(1)


if __name__ == "__main__":
    main()
