#!/usr/bin/python3
"""ngstack router and bridge beside dpdk-testpmd --forward-mode=mac and DPDK's
l3fwd example (LPM), and the traffic generator beside testpmd
--forward-mode=txonly --txonly-multi-flow, side by side.

Router: 64-byte UDP frames from 1024 flows per worker (net_pcap infinite_rx,
addressed to the router's MAC) are routed through a FIB of --routes routes
(255 /24s covering the flows' destinations plus /24s elsewhere, all via one
gateway with a static ARP entry) to a net_null sink. Bridge: the same frames
bridged from the source port to the sink (the destination MAC is unknown, so
each frame is flooded to the one other port). testpmd runs the same sources
into the same sink with the same number of forwarding cores. l3fwd
(--lookup=lpm, built from dpdk-doc's sources: perf/l3fwd.py) routes the same
frames to the same sink through the same routes, as many as its table holds
(1024), on as many cores. Generator (mode `generator`, not run by default):
one traffic-mode generator per worker, 64-byte UDP frames over 1024 flows
each with per-flow sequence numbers and timestamps, into the net_null sink,
beside testpmd txonly multi-flow with 60-byte frames (64 on the wire) on as
many cores. Runs alternate; medians of per-second rates; the ratios are
ngstack/testpmd and, for the router, ngstack/l3fwd.

  perf/router_bench.py [--modes router,bridge,generator] [--workers 1,2] [--routes 10000]
                       [--peers testpmd,l3fwd] [--rounds 3] [--seconds 5]
                       [--l3fwd-build DIR] [--baseline BIN] [--json FILE]

--baseline runs another ngstack binary (one built before a change) in every
round beside this one, with the same config; each mode then also gets the
ratio ngstack/baseline, the same-run measure of what the change did.

Without --peers, l3fwd runs when it builds; the output says why when it
does not. Named in --peers, a peer that cannot run stops the benchmark.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
import l3fwd  # noqa: E402


# The router's routes: 255 /24s over the flows' destinations (198.19.0-254.x),
# then /24s in 10/8 that no flow uses.
GATEWAY, GATEWAY_MAC = "198.19.255.2", "02:00:00:00:00:03"


def route_prefixes(n):
    out = ["198.19.%d.0/24" % i for i in range(min(n, 255))]
    i = 0
    while len(out) < n:
        out.append("10.%d.%d.0/24" % (i >> 8, i & 255))
        i += 1
    return out


def routes_yaml(n):
    return "\n".join(f"    - {{prefix: {p}, via: {GATEWAY}}}" for p in route_prefixes(n))


def generator_config(workers, burst=32):
    """Traffic mode: one generator per worker (64-byte UDP frames, 1 024 flows
    each, sequence numbers and timestamps stamped) into a net_null sink."""
    gens = "".join(f'    - {{port: sink, protocol: udp, size: 64, dst_mac: "02:00:00:00:00:02", '
                   f'src: 198.18.{i}.1-198.18.{i}.255, dst: 198.19.0.1-198.19.0.4, sport: 1024-2047, dport: 9, '
                   f'flows: 1024, burst: {burst}}}\n' for i in range(workers))
    return f"""mode: traffic
{benchlib.eal_yaml(workers)}ports:
  - {{name: sink, device: "net_null0,no-rx=1"}}
{benchlib.workers_yaml(workers, burst)}traffic:
  generators:
{gens}"""


def config(mode, pcaps, workers, routes, burst=32):
    if mode == "generator":
        return generator_config(workers, burst)
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
      - {{port: sink, address: {GATEWAY}, mac: "{GATEWAY_MAC}"}}
  routes:
{routes_yaml(routes)}
"""


PEERS = ("testpmd", "l3fwd")


def peers_arg(a):
    """The peers to run: (names, l3fwd binary or None). l3fwd is built here;
    by default a failed build is reported and the run goes on without it."""
    named = a.peers is not None
    peers = [p for p in (a.peers.split(",") if named else PEERS) if p]
    unknown = [p for p in peers if p not in PEERS]
    if unknown:
        sys.exit(f"router_bench: unknown peer {', '.join(unknown)} (peers: {', '.join(PEERS)})")
    binary = None
    if "l3fwd" in peers:
        build_dir = a.l3fwd_build or default_l3fwd_build(a.ngstack)
        try:
            binary, changed = l3fwd.build(build_dir)
            print(f"l3fwd: {binary}, built from {l3fwd.EXAMPLES}/l3fwd (dpdk-doc); changed at build time: {changed}")
        except (l3fwd.Unavailable, OSError, subprocess.SubprocessError) as e:
            if named:
                sys.exit(f"router_bench: l3fwd could not be built: {e}")
            print(f"l3fwd: NOT RUN, it could not be built: {e}")
            peers.remove("l3fwd")
    return peers, binary


def default_l3fwd_build(ngstack):
    """Beside the ngstack binary's build tree (build/perf/l3fwd), where the
    build is kept between runs; an installed ngstack gets a temporary one."""
    perf = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(ngstack))), "perf")
    if os.path.isdir(perf) and os.access(perf, os.W_OK):
        return os.path.join(perf, "l3fwd")
    return os.path.join(tempfile.gettempdir(), f"ngstack-perf-l3fwd-{os.getuid()}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modes", default="router,bridge")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--routes", type=int, default=10000)
    ap.add_argument("--peers", help=f"comma-separated, of {','.join(PEERS)} (default: both; l3fwd when it builds)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--ngstack", default=benchlib.NGSTACK)
    ap.add_argument("--l3fwd-build", help="where l3fwd is built and kept (default: build/perf/l3fwd)")
    ap.add_argument("--baseline", help="another ngstack binary to run beside this one in every round")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()
    modes = a.modes.split(",")
    workers = [int(w) for w in a.workers.split(",")]
    print(f"machine: {benchlib.machine()}")
    peers, l3fwd_bin = peers_arg(a)
    l3fwd_routes = route_prefixes(a.routes)[:l3fwd.MAX_ROUTES]
    print(f"setup: net_pcap infinite_rx -> net_null no-rx, 64-byte frames, 1024 flows per worker, router FIB "
          f"{a.routes} routes, {a.seconds} s per run, {a.rounds} round(s), medians of per-second rates; "
          f"peers: {', '.join(peers) or 'none'}")
    if l3fwd_bin:
        print(f"l3fwd: --lookup=lpm, {len(l3fwd_routes)} of the router's routes (its table holds "
              f"{l3fwd.MAX_ROUTES}), all to the sink; it checks no IPv4 header checksum (ngstack does, in "
              f"software), decrements the TTL without an expiry check and resolves no neighbour")
    tmp = tempfile.mkdtemp(prefix="ngstack-perf-")
    results = []
    try:
        rules = l3fwd.write_rules(tmp, l3fwd_routes, 1) if l3fwd_bin else None
        for w in workers:
            pcaps = []
            for i in range(w):
                p = os.path.join(tmp, f"flows{i}.pcap")
                benchlib.make_pcap(p, 64, 1024, first_flow=1024 * i, dst_mac=benchlib.pcap_port_mac(0))
                pcaps.append(p)
            l3fwd_cmd = None
            if l3fwd_bin:
                l3fwd_cmd = l3fwd.command(l3fwd_bin, pcaps, w, rules, GATEWAY_MAC, f"ngs-perf-l3fwd-{os.getpid()}")
                print(f"l3fwd command, {w} worker(s): {l3fwd.command_line(l3fwd_cmd)}")
            for r in range(a.rounds):
                row = {"workers": w, "round": r + 1}
                line = f"workers {w} round {r + 1}:"
                if "testpmd" in peers and set(modes) - {"generator"}:
                    row["testpmd_mac_pps"] = tp = benchlib.run_testpmd(pcaps, a.seconds, 32, w)
                    line += f" testpmd mac {tp / 1e6:7.3f} Mpps"
                if "testpmd" in peers and "generator" in modes:
                    row["testpmd_txonly_pps"] = tp = benchlib.run_testpmd(
                        [], a.seconds, 32, w, cmd=benchlib.testpmd_txonly_command(32, w))
                    line += f" testpmd txonly {tp / 1e6:7.3f} Mpps"
                if l3fwd_cmd and "router" in modes:
                    row["l3fwd_lpm_pps"] = lf = l3fwd.run(l3fwd_cmd, a.seconds, tmp)
                    line += f"   l3fwd lpm {lf / 1e6:7.3f} Mpps"
                for mode in modes:
                    # The baseline runs first in rounds 1, 3, ..., second in the others.
                    order = [("", a.ngstack)]
                    if a.baseline:
                        order = order + [("baseline_", a.baseline)] if r % 2 else [("baseline_", a.baseline)] + order
                    for prefix, binary in order:
                        pps, cpp, s = benchlib.run_ngstack(config(mode, pcaps, w, a.routes), a.seconds, tmp, binary)
                        if not s["ok"]:
                            raise RuntimeError(f"{mode}: the run's accounting failed ({binary})")
                        row[f"{prefix}{mode}_pps"], row[f"{prefix}{mode}_cycles_per_packet"] = pps, cpp
                    pps, cpp = row[f"{mode}_pps"], row[f"{mode}_cycles_per_packet"]
                    line += f"   {mode} {pps / 1e6:7.3f} Mpps ({cycles_text(cpp)}{ratios(mode, pps, row)})"
                    if a.baseline:
                        bp = row[f"baseline_{mode}_pps"]
                        row[f"{mode}_ratio_baseline"] = pps / bp
                        line += (f"   baseline {mode} {bp / 1e6:7.3f} Mpps "
                                 f"({row[f'baseline_{mode}_cycles_per_packet']:5.1f} cycles/packet), "
                                 f"ngstack/baseline {pps / bp:.3f}")
                print(line, flush=True)
                results.append(row)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary = []
    for w in workers:
        rows = [r for r in results if r["workers"] == w]
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0] if k not in ("workers", "round")}
        peer_text = "".join(f"{name} {med[key] / 1e6:.3f} Mpps, " for name, key in
                            (("testpmd mac", "testpmd_mac_pps"), ("testpmd txonly", "testpmd_txonly_pps"),
                             ("l3fwd lpm", "l3fwd_lpm_pps")) if key in med)
        for mode in modes:
            ng, cpp = med[f"{mode}_pps"], med[f"{mode}_cycles_per_packet"]
            item = {"mode": mode, "workers": w, "ngstack_pps": ng, "cycles_per_packet": cpp}
            text = ""
            tkey = testpmd_key(mode)
            if tkey in med:
                item.update({tkey: med[tkey], "ratio": ng / med[tkey]})
                text += f", ratio ngstack/testpmd = {item['ratio']:.3f}"
            if "l3fwd_lpm_pps" in med and mode == "router":
                item.update(l3fwd_lpm_pps=med["l3fwd_lpm_pps"], ratio_l3fwd=ng / med["l3fwd_lpm_pps"])
                text += f", ratio ngstack/l3fwd = {item['ratio_l3fwd']:.3f}"
            if a.baseline:
                item.update(baseline_pps=med[f"baseline_{mode}_pps"],
                            baseline_cycles_per_packet=med[f"baseline_{mode}_cycles_per_packet"],
                            ratio_baseline=med[f"{mode}_ratio_baseline"])
                text += (f", baseline {item['baseline_pps'] / 1e6:.3f} Mpps "
                         f"({item['baseline_cycles_per_packet']:.1f} cycles/packet), ratio ngstack/baseline = "
                         f"{item['ratio_baseline']:.3f} (median of the rounds' ratios)")
            summary.append(item)
            print(f"median, {w} worker(s): {peer_text}ngstack {mode} {ng / 1e6:.3f} Mpps ({cycles_text(cpp)})"
                  f"{text}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"machine": benchlib.machine(), "routes": a.routes, "peers": peers,
                       "l3fwd_routes": len(l3fwd_routes) if l3fwd_bin else 0, "rounds": results,
                       "summary": summary}, f, indent=2)


def testpmd_key(mode):
    """The testpmd run a mode is compared with: txonly for the generator, mac for the rest."""
    return "testpmd_txonly_pps" if mode == "generator" else "testpmd_mac_pps"


def cycles_text(cpp):
    # Busy cycles count loop iterations that received something: a generator receives nothing.
    return f"{cpp:5.1f} cycles/packet" if cpp else "cycles n/a"


def ratios(mode, pps, row):
    """", ngstack/testpmd R, ngstack/l3fwd R" for the peers of this round; l3fwd is a router's peer only."""
    out = ""
    if testpmd_key(mode) in row:
        out += f", ngstack/testpmd {pps / row[testpmd_key(mode)]:.3f}"
    if "l3fwd_lpm_pps" in row and mode == "router":
        out += f", ngstack/l3fwd {pps / row['l3fwd_lpm_pps']:.3f}"
    return out


if __name__ == "__main__":
    main()
