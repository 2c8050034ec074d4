#!/usr/bin/python3
"""ngstack router and bridge vs dpdk-testpmd --forward-mode=mac, side by side.

Router: 64-byte UDP frames from 1024 flows per worker (net_pcap infinite_rx,
addressed to the router's MAC) are routed through a FIB of --routes routes
(256 /24s covering the flows' destinations plus /24s elsewhere, all via one
gateway with a static ARP entry) to a net_null sink. Bridge: the same frames
bridged from the source port to the sink (the destination MAC is unknown, so
each frame is flooded to the one other port). testpmd runs the same sources
into the same sink with the same number of forwarding cores. Runs alternate;
medians of per-second rates; the ratio is ngstack/testpmd.

  perf/router_bench.py [--modes router,bridge] [--workers 1,2] [--routes 10000]
                       [--rounds 3] [--seconds 5] [--json FILE]
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


def routes_yaml(n):
    out = ["    - {prefix: 198.19.%d.0/24, via: 198.19.255.2}" % i for i in range(255)]
    i = 0
    while len(out) < n:
        out.append("    - {prefix: 10.%d.%d.0/24, via: 198.19.255.2}" % (i >> 8, i & 255))
        i += 1
    return "\n".join(out[:n])


def config(mode, pcaps, workers, routes, burst=32):
    # One source port with one rx queue per worker (one capture each).
    rx = ",".join(f"rx_pcap={p}" for p in pcaps)
    head = f"""mode: {mode}
{benchlib.eal_yaml(workers)}ports:
  - {{name: src, device: "net_pcap0,{rx},infinite_rx=1", rx_queues: {workers}}}
  - {{name: sink, device: "net_null0,no-rx=1", rx_queues: {workers}}}
{benchlib.workers_yaml(workers, burst)}"""
    if mode == "bridge":
        return head + "bridge:\n  ports:\n    - {port: src}\n    - {port: sink}\n"
    return head + f"""router:
  interfaces:
    - {{port: src, addresses: [198.18.250.1/24]}}
    - {{port: sink, addresses: [198.19.255.1/30]}}
  arp:
    static:
      - {{port: sink, address: 198.19.255.2, mac: "02:00:00:00:00:03"}}
  routes:
{routes_yaml(routes)}
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modes", default="router,bridge")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--routes", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--ngstack", default=benchlib.NGSTACK)
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()
    modes = a.modes.split(",")
    workers = [int(w) for w in a.workers.split(",")]
    tmp = tempfile.mkdtemp(prefix="ngstack-perf-")
    print(f"machine: {benchlib.machine()}")
    print(f"setup: net_pcap infinite_rx -> net_null no-rx, 64-byte frames, 1024 flows per worker, router FIB "
          f"{a.routes} routes, {a.seconds} s per run, {a.rounds} round(s), medians of per-second rates")
    results = []
    try:
        for w in workers:
            pcaps = []
            for i in range(w):
                p = os.path.join(tmp, f"flows{i}.pcap")
                benchlib.make_pcap(p, 64, 1024, first_flow=1024 * i, dst_mac=benchlib.pcap_port_mac(0))
                pcaps.append(p)
            for r in range(a.rounds):
                tp = benchlib.run_testpmd(pcaps, a.seconds, 32, w)
                row = {"workers": w, "round": r + 1, "testpmd_mac_pps": tp}
                line = f"workers {w} round {r + 1}: testpmd mac {tp / 1e6:7.3f} Mpps"
                for mode in modes:
                    pps, cpp, s = benchlib.run_ngstack(config(mode, pcaps, w, a.routes), a.seconds, tmp, a.ngstack)
                    if not s["ok"]:
                        raise RuntimeError(f"{mode}: the run's accounting failed")
                    row[f"{mode}_pps"], row[f"{mode}_cycles_per_packet"] = pps, cpp
                    line += f"   {mode} {pps / 1e6:7.3f} Mpps ({cpp:5.1f} cycles/packet, ratio {pps / tp:.3f})"
                print(line, flush=True)
                results.append(row)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary = []
    for w in workers:
        rows = [r for r in results if r["workers"] == w]
        tp = statistics.median(r["testpmd_mac_pps"] for r in rows)
        for mode in modes:
            ng = statistics.median(r[f"{mode}_pps"] for r in rows)
            cpp = statistics.median(r[f"{mode}_cycles_per_packet"] for r in rows)
            summary.append({"mode": mode, "workers": w, "testpmd_mac_pps": tp, "ngstack_pps": ng,
                            "cycles_per_packet": cpp, "ratio": ng / tp})
            print(f"median, {w} worker(s): testpmd mac {tp / 1e6:.3f} Mpps, ngstack {mode} {ng / 1e6:.3f} Mpps "
                  f"({cpp:.1f} cycles/packet), ratio ngstack/testpmd = {ng / tp:.3f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"machine": benchlib.machine(), "routes": a.routes, "rounds": results, "summary": summary}, f,
                      indent=2)


if __name__ == "__main__":
    main()
