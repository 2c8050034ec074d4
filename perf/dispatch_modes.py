#!/usr/bin/python3
"""netisr dispatch modes x policies x workers, beside testpmd, in one run.

Every point forwards 64-byte frames from net_pcap infinite_rx sources to a
net_null sink, rewriting Ethernet addresses. With N workers there are N
sources (distinct flows), one per worker, so every worker receives; with the
flow policy a packet whose flow bucket belongs to the other worker is handed
off. testpmd --forward-mode=mac runs the same setup with the same number of
forwarding cores. Reports Mpps, busy TSC cycles per packet, the ratio to
testpmd, and the hand-off cost: deferred minus direct, in cycles per packet
(1 worker: every packet goes through the worker's own queue; 2 workers, flow
policy: about half the packets cross to the other worker).

  perf/dispatch_modes.py [--workers 1,2] [--seconds 4] [--rounds 1] [--baseline BIN] [--json FILE]

--baseline runs another ngstack binary (e.g. one built before the dispatcher
existed) at 1 worker beside this one, to measure what direct dispatch costs.
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

MODES = ["direct", "hybrid", "deferred"]
POLICIES = ["source", "flow"]


def dispatch_section(mode, policy):
    return f"dispatch:\n  protocols:\n    ether: {{mode: {mode}, policy: {policy}, qlimit: 4096}}\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--ngstack", default=benchlib.NGSTACK)
    ap.add_argument("--baseline", help="an older ngstack binary to run in direct mode beside this one")
    ap.add_argument("--json")
    a = ap.parse_args()
    workers_list = [int(x) for x in a.workers.split(",")]

    tmp = tempfile.mkdtemp(prefix="ngstack-perf-")
    pcaps = []
    for i in range(max(workers_list)):
        pcaps.append(os.path.join(tmp, f"src{i}.pcap"))
        benchlib.make_pcap(pcaps[-1], 64, 1024, first_flow=i * 1024)
    print(f"machine: {benchlib.machine()}")
    print(f"setup: {a.seconds} s per point, {a.rounds} round(s), 64-byte frames, 1024 flows per source, burst 32")
    results = []
    try:
        for nw in workers_list:
            src = pcaps[:nw]
            for rnd in range(a.rounds):
                row = {"workers": nw, "round": rnd + 1}
                row["testpmd"] = benchlib.run_testpmd(src, a.seconds, workers=nw)
                if a.baseline and nw == 1:
                    row["baseline"] = benchlib.run_ngstack(benchlib.forwarder_config(src, nw), a.seconds, tmp,
                                                           a.baseline)[:2]
                for policy in POLICIES:
                    for mode in MODES:
                        pps, cpp, _ = benchlib.run_ngstack(
                            benchlib.forwarder_config(src, nw, dispatch=dispatch_section(mode, policy)), a.seconds,
                            tmp, a.ngstack)
                        row[f"{policy}/{mode}"] = (pps, cpp)
                        print(f"  workers {nw} round {rnd + 1} {policy:6s} {mode:8s} {pps / 1e6:7.3f} Mpps "
                              f"{cpp:6.1f} cycles/packet", flush=True)
                results.append(row)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def med(rows, key, i=None):
        vals = [r[key] if i is None else r[key][i] for r in rows]
        return statistics.median(vals)

    print()
    print(f"{'workers':>7} {'policy':>7} {'mode':>9} {'Mpps':>8} {'cyc/pkt':>8} {'vs testpmd':>10}")
    summary = []
    one_worker_flow_deferred = 0.0
    for nw in workers_list:
        rows = [r for r in results if r["workers"] == nw]
        tp = med(rows, "testpmd")
        print(f"{nw:>7} {'testpmd':>7} {'mac':>9} {tp / 1e6:8.3f} {'':>8} {1.0:10.3f}")
        if a.baseline and nw == 1:
            bp, bc = med(rows, "baseline", 0), med(rows, "baseline", 1)
            print(f"{nw:>7} {'baseline':>7} {'(plain)':>9} {bp / 1e6:8.3f} {bc:8.1f} {bp / tp:10.3f}")
        for policy in POLICIES:
            for mode in MODES:
                pps, cpp = med(rows, f"{policy}/{mode}", 0), med(rows, f"{policy}/{mode}", 1)
                print(f"{nw:>7} {policy:>7} {mode:>9} {pps / 1e6:8.3f} {cpp:8.1f} {pps / tp:10.3f}")
                summary.append({"workers": nw, "policy": policy, "mode": mode, "pps": pps, "cycles_per_packet": cpp,
                                "ratio_to_testpmd": pps / tp, "testpmd_pps": tp})
        cyc = {k: med(rows, k, 1) for k in (f"{p}/{m}" for p in POLICIES for m in MODES)}
        print(f"{nw:>7} queue hand-off (source: deferred - direct): "
              f"{cyc['source/deferred'] - cyc['source/direct']:.1f} cycles/packet")
        if nw == 1:
            # At 1 worker every flow's bucket is the worker's own: hybrid runs
            # inline, so hybrid - direct is the flow hash and sort alone.
            print(f"{nw:>7} flow id + sort by target (flow: hybrid - direct): "
                  f"{cyc['flow/hybrid'] - cyc['flow/direct']:.1f} cycles/packet")
            one_worker_flow_deferred = cyc["flow/deferred"]
        elif 1 in workers_list:
            print(f"{nw:>7} cross-worker hand-off (flow deferred, {nw} workers - 1 worker; about "
                  f"{100 * (nw - 1) // nw}% of packets cross): {cyc['flow/deferred'] - one_worker_flow_deferred:.1f} "
                  "cycles/packet")
        if a.baseline and nw == 1:
            overhead = med(rows, "source/direct", 1) / med(rows, "baseline", 1) - 1
            print(f"{nw:>7} direct dispatch over the baseline forwarder: {100 * overhead:+.1f}% cycles/packet")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"machine": benchlib.machine(), "points": summary}, f, indent=2)


if __name__ == "__main__":
    main()
