#!/usr/bin/python3
"""The lab experiment runner.

  ngstack lab perf/experiments/NAME.yaml [--out DIR] [--repetitions N] [--trial-s S]

An experiment names what runs at each point (`kind`), the values every point
shares (`fixed`), the variables to sweep (`sweep`: every combination is a
point), the metric, the trial length and the repetitions. Repetition r runs
every point once before repetition r+1 starts, so ngstack and a testpmd peer
alternate through the whole run instead of meeting different machine states.
Writes DIR (default results/NAME/): points.csv (every run), summary.csv and
summary.md (median, min, max and spread per point, and the ratio to the
peer), results.json, NAME.png (gnuplot), configs/ with the exact config
of every run (and testpmd's command line) and sources/ with the captures
they replay. Kinds udp-rr and tcp-rr (two ngstack host-mode processes over
net_memif, perf/udp_rr.py and perf/tcp_rr.py) also write each run's logs and
JSON summaries to configs/, and beside the rate: per-core rate, S(W)/W, the
connection table's lock figures and the ratio to Linux on loopback (sockperf;
wrk -> nginx). See perf/README.md ("Lab experiments")."""
import argparse
import csv
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
import hostpair  # noqa: E402
import l3fwd  # noqa: E402
import labfile  # noqa: E402
import rfc2544  # noqa: E402
import router_bench  # noqa: E402
import tcp_rr  # noqa: E402
import udp_rr  # noqa: E402
from labfile import Map, SpecError  # noqa: E402

# kind -> variable -> (type, allowed values or None, default)
VARIABLES = {
    "forward": {
        # testpmd (--forward-mode=mac) and l3fwd (DPDK's example, --lookup=lpm,
        # built from dpdk-doc by perf/l3fwd.py) are the peers, run as modes.
        "mode": (str, ["forwarder", "router", "bridge", "testpmd", "l3fwd"], "forwarder"),
        "workers": (int, None, 1),
        "size": (int, None, 64),
        "flows": (int, None, 1024),
        "burst": (int, None, 32),
        "dispatch_mode": (str, ["direct", "hybrid", "deferred"], "direct"),
        "policy": (str, ["source", "flow", "cpu"], "source"),
        "routes": (int, None, 1000),
    },
    "rfc2544": {
        "size": (int, None, 64),
    },
    # udp-client <-> udp-echo over net_memif (perf/udp_rr.py); workers: the
    # echo side's, client_workers: the client's (0: as many as the echo side).
    "udp-rr": {
        "locking": (str, ["giant", "group"], "group"),
        "workers": (int, None, 1),
        "client_workers": (int, None, 0),
        "dispatch_mode": (str, ["direct", "hybrid", "deferred"], "direct"),
        "flows": (int, None, 256),
        "window": (int, None, 4),
        "payload": (int, None, 64),
        "groups": (int, None, 128),
        "lock_type": (str, ["spin", "queuing", "speculative", "rte_spinlock"], "spin"),
    },
    # a clients: generator <-> the http service over net_memif (perf/tcp_rr.py);
    # workers: the server side's, client_workers: the generator's (0: as many
    # as the server side); groups 0: as many as the server side's workers;
    # requests: per connection under keepalive (short: 1).
    "tcp-rr": {
        "workload": (str, ["short", "keepalive"], "short"),
        "locking": (str, ["giant", "group"], "group"),
        "workers": (int, None, 1),
        "client_workers": (int, None, 0),
        "dispatch_mode": (str, ["direct", "hybrid", "deferred"], "direct"),
        "groups": (int, None, 128),
        "lock_type": (str, ["spin", "queuing", "speculative", "rte_spinlock"], "spin"),
        "concurrency": (int, None, 64),
        "requests": (int, None, 100),
        "body_bytes": (int, None, 64),
    },
}
LIMITS = {"workers": (1, 128), "size": (64, 1518), "flows": (1, 1 << 20), "burst": (1, 512), "routes": (1, 1 << 20),
          "client_workers": (0, 128), "window": (1, 64), "payload": (16, 1472), "groups": (1, 65536),
          "concurrency": (1, 60000), "requests": (1, 1 << 20), "body_bytes": (0, 1 << 20)}
# Where a kind's range differs from LIMITS'
KIND_LIMITS = {"tcp-rr": {"groups": (0, 65536)}}
METRICS = {
    "forward": {"mpps": "Mpps (median of per-second tx rates)",
                "cycles_per_packet": "busy TSC cycles per packet (ngstack only)"},
    "rfc2544": {"throughput_pps": "RFC 2544 throughput (frames/s)",
                "throughput_percent": "RFC 2544 throughput (% of max_rate)",
                "latency_p50_us": "latency p50 at throughput (us)",
                "latency_p99_us": "latency p99 at throughput (us)"},
    "udp-rr": {"tps": "UDP transactions/s (udp-client, closed loop)",
               "per_core_tps": "UDP transactions/s per echo worker",
               "contended_share": "contended share of the echo side's pcb lock acquisitions",
               "wait_cycles_per_acquisition": "wait cycles per pcb lock acquisition (echo side)",
               "acquisitions_per_packet": "pcb lock acquisitions per packet (echo side)",
               "latency_p50_us": "request/response latency p50 (us)",
               "latency_p99_us": "request/response latency p99 (us)"},
    "tcp-rr": {"rate": "TCP transactions/s: connections/s (short) or requests/s (keepalive)",
               "per_core_rate": "TCP transactions/s per server worker",
               "contended_share": "contended share of the server's pcb lock acquisitions",
               "wait_cycles_per_acquisition": "wait cycles per pcb lock acquisition (server)",
               "acquisitions_per_transaction": "pcb lock acquisitions per transaction (server)",
               "server_cycles_per_transaction": "server busy cycles per transaction",
               "client_cycles_per_transaction": "generator busy cycles per transaction",
               "latency_p50_us": "transaction latency p50 (us)",
               "latency_p99_us": "transaction latency p99 (us)"},
}
# kind -> the peer that may run beside it, and the metric it is compared on
PEERS = {"forward": ("testpmd", "mpps"), "udp-rr": ("sockperf", "tps"), "tcp-rr": ("wrk", "rate")}
# The variables a peer's run depends on, where not every one but mode (its
# series in the plot)
PEER_VARIABLES = {"udp-rr": {"workers", "client_workers", "window", "payload"},
                  "tcp-rr": {"workload", "workers", "client_workers", "concurrency", "requests", "body_bytes"}}
# Kinds whose peer runs once per repetition for each combination of its
# PEER_VARIABLES (its result is shared by the points that have them), not
# beside every point
SHARED_PEER = {"tcp-rr"}
# The peer's unit in points.csv
PEER_COLUMN = {"testpmd": "testpmd_mpps", "sockperf": "sockperf_tps", "wrk": "wrk_rate"}
# The request/response kinds: two host-mode ngstacks over net_memif
RR = {"udp-rr": udp_rr, "tcp-rr": tcp_rr}


class Experiment:
    def __init__(self, path):
        self.path = path
        self.name = os.path.splitext(os.path.basename(path))[0]
        top = labfile.load(path)
        m = top.sub("experiment") if top.has("experiment") else top.fail(top.node, "experiment",
                                                                          'missing key "experiment"')
        top.finish()
        self.description = m.get("description", str, "")
        self.plots_seen = 0
        self.kind = m.get("kind", str, "forward", choices=list(VARIABLES))
        variables = VARIABLES[self.kind]
        self.metric = m.get("metric", str, next(iter(METRICS[self.kind])), choices=list(METRICS[self.kind]))
        # kind rfc2544: each trial of the search; unset, the RFC 2544 file's trial_s holds.
        self.trial_s_given = m.has("trial_s")
        self.trial_s = m.get("trial_s", float, 3.0, lo=0.5, hi=3600)
        self.repetitions = m.get("repetitions", int, 3, lo=1, hi=100)
        self.peer = m.get("peer", str, None, choices=[p for p, _ in PEERS.values()])
        if self.peer and PEERS.get(self.kind) != (self.peer, self.metric):
            kind, metric = next((k, mt) for k, (p, mt) in PEERS.items() if p == self.peer)
            m.fail(m.items["peer"][1], "experiment.peer",
                   f"a {self.peer} peer runs only beside kind {kind}, metric {metric}")
        self.rfc2544 = None
        if self.kind == "rfc2544":
            if not m.has("rfc2544"):
                m.fail(m.node, "experiment", 'kind rfc2544 needs key "rfc2544" (an RFC 2544 file)')
            pos = m.pos("rfc2544")
            ref = rfc2544.resolve(os.path.dirname(os.path.abspath(path)), m.get("rfc2544", str))
            try:
                self.rfc2544 = rfc2544.load_spec(ref)
            except SpecError as e:
                raise SpecError(f"{pos}: experiment.rfc2544: {e}")
        self.cpus, self.sockperf = None, {}
        if m.has("cpus") and self.kind not in RR:
            m.fail(m.items["cpus"][0], "experiment.cpus", f"only kinds {' and '.join(RR)} take this key")
        if m.has("sockperf") and self.kind != "udp-rr":
            m.fail(m.items["sockperf"][0], "experiment.sockperf", "only kind udp-rr takes this key")
        if self.kind in RR:
            self.cpus = read_cpus(m, RR[self.kind].SIDES) if m.has("cpus") else None
        if self.kind == "udp-rr":
            if m.has("sockperf"):
                sp = m.sub("sockperf")
                self.sockperf = {"burst": sp.get("burst", int, None, lo=1, hi=4096),
                                 "busy_poll": sp.get("busy_poll", bool, True)}
                sp.finish()
        self.fixed = {k: d for k, (_, _, d) in variables.items()}
        if m.has("fixed"):
            self.fixed.update(read_variables(m.sub("fixed"), variables, self.kind, Map.get))
        if not m.has("sweep"):
            m.fail(m.node, "experiment", 'missing key "sweep" (the variables to sweep, each a list)')
        s = m.sub("sweep")
        self.sweep = read_variables(s, variables, self.kind, Map.get_list)
        if not self.sweep:
            s.fail(s.node, "experiment.sweep", "sweep at least one variable")
        # skip: the combinations not to run, each {variable: value or [values]}
        # (a point is skipped when it has one of the values of every variable)
        self.skip = [read_values(k, self) for k in m.sub_list("skip")] if m.has("skip") else []
        if not any(True for _ in self.points()):
            m.fail(m.items["skip"][0], "experiment.skip", "skips every point")
        self.plots = read_plots(m, self) if m.has("plot") else [Plot(next(iter(self.sweep)), self.metric, {}, self)]
        m.finish()
        for peer in ("testpmd", "l3fwd"):
            if self.metric == "cycles_per_packet" and peer in self.sweep.get("mode", []):
                raise SpecError(f"{path}: experiment.metric: cycles_per_packet is not measured for mode {peer}")
        self.placement, self.oversubscribed = None, None
        if self.kind in RR:
            rr = RR[self.kind]
            pts = list(self.points())
            most_server = max(p["workers"] for p in pts)
            most_client = max(rr.client_workers(p) for p in pts)
            self.placement = self.cpus or rr.placement(most_server, most_client)
            over = [rr.oversubscription(self.placement, p) for p in pts]
            self.oversubscribed = next((o for o in reversed(over) if o), None)

    def points(self):
        keys = list(self.sweep)
        for values in itertools.product(*(self.sweep[k] for k in keys)):
            p = dict(self.fixed)
            p.update(zip(keys, values))
            if not any(all(p[k] in vs for k, vs in skip.items()) for skip in self.skip):
                yield p

    def label(self, point):
        return " ".join(f"{k}={value_text(k, point[k], self.kind)}" for k in self.sweep)


def value_text(k, v, kind):
    """A variable's value as the tables and plots show it."""
    return "W" if kind == "tcp-rr" and k == "groups" and v == 0 else str(v)


class Plot:
    """One figure: y (a metric of the kind) against the swept variable x, a
    line per combination of the series variables (every other swept
    variable not pinned by `where`), for the points that have the values in
    `where`."""

    def __init__(self, x, y, where, exp, name=None):
        self.x, self.y, self.where = x, y, where
        self.series = [k for k in exp.sweep if k != x and k not in where]
        self.name = exp.name if not exp.plots_seen else f"{exp.name}-{name or f'{y}-vs-{x}'}"
        exp.plots_seen += 1

    def keeps(self, s):
        return all(s[k] in vs for k, vs in self.where.items())


def read_values(w, exp):
    """{swept variable: value or list of values} as {variable: [values]}."""
    out = {}
    for k in list(w.items):
        if k not in exp.sweep:
            w.fail(w.items[k][0], w.key_path(k), f'"{k}" is not a swept variable')
        kind, choices, _ = VARIABLES[exp.kind][k]
        out[k] = (w.get_list(k, kind, None, choices=choices)
                  if isinstance(w.value_node(k), labfile.yaml.SequenceNode) else [w.get(k, kind, None, choices=choices)])
    w.finish()
    return out


def read_plots(m, exp):
    """plot: {x, y, where, name} or a list of them; the first is NAME.png,
    the others NAME-{name or Y-vs-X}.png. y: a metric of the kind (default
    the experiment's); where: {variable: value or list of values}."""
    node = m.value_node("plot")
    items = [m.sub("plot")] if not isinstance(node, labfile.yaml.SequenceNode) else m.sub_list("plot")
    plots = []
    for p in items:
        x = p.get("x", str, next(iter(exp.sweep)), choices=list(exp.sweep))
        y = p.get("y", str, exp.metric, choices=list(METRICS[exp.kind]))
        where = read_values(p.sub("where"), exp) if p.has("where") else {}
        name = p.get("name", str, None)
        if name is not None and not re.fullmatch(r"[\w.-]+", name):
            p.fail(p.items["name"][1], p.key_path("name"), "letters, digits, '.', '-' and '_' only")
        if x in where:
            p.fail(p.items["where"][1], p.key_path("where"), f"x ({x}) cannot be pinned")
        p.finish()
        plots.append(Plot(x, y, where, exp, name))
        if plots[-1].name in [q.name for q in plots[:-1]]:
            p.fail(p.node, p.path, f"a second plot named {plots[-1].name}.png (give it a name)")
    return plots


def read_variables(m, variables, kind_name, getter):
    """The variables of mapping m (fixed: one value each with Map.get, sweep:
    a list each with Map.get_list), checked against the kind's variables."""
    out = {}
    for k in list(m.items):
        if k not in variables:
            m.fail(m.items[k][0], m.key_path(k), unknown_variable(k, kind_name))
        kind, choices, _ = variables[k]
        lo, hi = KIND_LIMITS.get(kind_name, {}).get(k) or LIMITS.get(k, (None, None))
        out[k] = getter(m, k, kind, lo=lo, hi=hi, choices=choices)
    m.finish()
    return out


def read_cpus(m, sides):
    """experiment.cpus (kinds udp-rr, tcp-rr): `auto`, or where each side's
    lcores run: {echo: {main: CPU, workers: [CPU, ...]}, client: {...}}
    (tcp-rr: server and client); worker i of a side runs on workers[i % len]
    (a list shorter than the workers makes them share CPUs)."""
    node = m.value_node("cpus")
    if isinstance(node, labfile.yaml.ScalarNode):
        if node.value != "auto":
            m.fail(node, "experiment.cpus", f'expected auto or a mapping with {" and ".join(sides)}, '
                   f'got "{node.value}"')
        return None
    c = m.sub("cpus")
    out = {}
    for side in sides:
        if not c.has(side):
            c.fail(c.node, "experiment.cpus", f'missing key "{side}"')
        s = c.sub(side)
        out[side] = {"main": s.get("main", int, 0, lo=0, hi=1023),
                     "workers": s.get_list("workers", int, None, lo=0, hi=1023)}
        if out[side]["workers"] is None:
            s.fail(s.node, s.path, 'missing key "workers" (a list of CPUs)')
        usable = hostpair.usable_cpus()
        for key, cpus in (("main", [out[side]["main"]]), ("workers", out[side]["workers"])):
            for cpu in cpus:
                if cpu not in usable:
                    s.fail(s.items[key][1] if s.has(key) else s.node, s.key_path(key),
                           f"CPU {cpu} is not one this process may use ({','.join(map(str, usable))})")
        s.finish()
    c.finish()
    return out


def unknown_variable(k, kind):
    return f'unknown variable "{k}" for kind {kind} (known: {", ".join(VARIABLES[kind])})'


class Runs:
    """Runs one point's trial and keeps its exact config."""

    def __init__(self, exp, out, binary, tmp):
        self.exp, self.out, self.binary, self.tmp = exp, out, binary, tmp
        self.pcaps = {}
        self.l3fwd_binary = None  # built at the first l3fwd point
        self.progress = None  # a Progress, for the trials inside an RFC 2544 point

    def sources(self, point):
        key = (point["workers"], point["size"], point["flows"])
        if key not in self.pcaps:
            paths = []
            for i in range(point["workers"]):
                # Kept beside the configs that read them, so that any run can be repeated.
                path = os.path.abspath(os.path.join(self.out, "sources",
                                                    f"w{point['workers']}-s{point['size']}-f{point['flows']}-{i}.pcap"))
                benchlib.make_pcap(path, point["size"], point["flows"], first_flow=point["flows"] * i,
                                   dst_mac=benchlib.pcap_port_mac(0))
                paths.append(path)
            self.pcaps[key] = paths
        return self.pcaps[key]

    def l3fwd_command(self, point, pcaps):
        """l3fwd routing the same captures over the router's first routes (its
        table holds l3fwd.MAX_ROUTES), built once into the build tree."""
        if self.l3fwd_binary is None:
            try:
                self.l3fwd_binary, changed = l3fwd.build(router_bench.default_l3fwd_build(self.binary))
            except l3fwd.Unavailable as e:
                raise RuntimeError(f"mode l3fwd: {e}") from e
            print(f"l3fwd: {'built' if changed else 'using'} {self.l3fwd_binary} (rx checksum offload off: "
                  f"virtual devices lack it; --lookup=lpm)", flush=True)
        rules = l3fwd.write_rules(self.tmp, router_bench.route_prefixes(point["routes"])[:l3fwd.MAX_ROUTES], 1)
        return l3fwd.command(self.l3fwd_binary, pcaps, point["workers"], rules, router_bench.GATEWAY_MAC,
                             f"ngs-lab-l3fwd-{os.getpid()}")

    def forward_config(self, point, pcaps):
        dispatch = (f"dispatch:\n  protocols:\n    ether: {{mode: {point['dispatch_mode']}, "
                    f"policy: {point['policy']}, qlimit: 4096}}\n")
        if point["mode"] == "forwarder":
            return benchlib.forwarder_config(pcaps, point["workers"], point["burst"], dispatch)
        # router and bridge: one source port with a queue per worker
        return router_bench.config(point["mode"], pcaps, point["workers"], point["routes"], point["burst"]) + dispatch

    def run(self, index, rep, point, mode=None, tag=None):
        """One trial of `point` (mode overrides point's mode: the peer);
        returns (value, extra fields). tag: the name of its files in
        configs/ (default pointNN-repR[-MODE])."""
        tag = tag or f"point{index:02d}-rep{rep}" + (f"-{mode}" if mode else "")
        if self.exp.kind == "rfc2544":
            return self.run_rfc2544(tag, point)
        if self.exp.kind == "udp-rr":
            return self.run_udp_rr(tag, point, mode)
        if self.exp.kind == "tcp-rr":
            return self.run_tcp_rr(tag, point, mode)
        mode = mode or point["mode"]
        pcaps = self.sources(point)
        if mode == "testpmd":
            cmd = benchlib.testpmd_command(pcaps, point["burst"], point["workers"])
            with open(os.path.join(self.out, "configs", tag + ".txt"), "w") as f:
                f.write(" ".join(cmd) + "\n")
            pps = benchlib.run_testpmd(pcaps, self.exp.trial_s, point["burst"], point["workers"])
            return pps / 1e6, {"mpps": pps / 1e6}
        if mode == "l3fwd":
            cmd = self.l3fwd_command(point, pcaps)
            with open(os.path.join(self.out, "configs", tag + ".txt"), "w") as f:
                f.write(l3fwd.command_line(cmd) + "\n")
            pps = l3fwd.run(cmd, self.exp.trial_s, self.tmp)
            return pps / 1e6, {"mpps": pps / 1e6}
        text = self.forward_config(dict(point, mode=mode), pcaps)
        with open(os.path.join(self.out, "configs", tag + ".yaml"), "w") as f:
            f.write(text)
        pps, cpp, s = benchlib.run_ngstack(text, self.exp.trial_s, self.tmp, self.binary)
        if not s["ok"]:
            raise RuntimeError(f"{tag}: the run's accounting failed (configs/{tag}.yaml)")
        extra = {"mpps": pps / 1e6, "cycles_per_packet": cpp}
        return extra[self.exp.metric], extra

    def run_udp_rr(self, tag, point, peer):
        configs = os.path.join(self.out, "configs")
        if peer == "sockperf":
            r = udp_rr.run_sockperf(point, self.exp.placement, self.exp.trial_s, self.tmp, tag,
                                    burst=self.exp.sockperf.get("burst"),
                                    busy_poll=self.exp.sockperf.get("busy_poll", True), keep_dir=configs)
            return r["tps"], r
        r = udp_rr.run_ngstack(point, self.exp.placement, self.exp.trial_s, self.tmp, tag, self.binary, configs)
        return r[self.exp.metric], r

    def run_tcp_rr(self, tag, point, peer):
        configs = os.path.join(self.out, "configs")
        if peer == "wrk":
            r = tcp_rr.run_wrk(point, self.exp.placement, self.exp.trial_s, self.tmp, tag, keep_dir=configs)
            if r["errors"] or r["non_2xx"]:
                print(f"\n{tag}: wrk: {r['socket_errors'] or 'no socket errors'}, {r['non_2xx']} non-2xx "
                      f"(configs/{tag}.txt)", file=sys.stderr)
            return r["rate"], r
        r = tcp_rr.run_ngstack(point, self.exp.placement, self.exp.trial_s, self.tmp, tag, self.binary, configs)
        if r["errors"] or r["non_2xx"]:
            print(f"\n{tag}: {self.exp.label(point)}: the generator counted {r['errors']} errors "
                  f"{r['errors_by_kind']} and {r['non_2xx']} non-2xx responses (configs/{tag}-*)", file=sys.stderr)
        return r[self.exp.metric], r

    def run_rfc2544(self, tag, point):
        spec = self.exp.rfc2544
        spec.frame_sizes = [point["size"]]
        if self.exp.trial_s_given:
            spec.trial_s = spec.latency_trial_s = self.exp.trial_s
        out = os.path.join(self.out, "configs", tag)
        label = self.exp.label(point)
        runner = rfc2544.Runner(spec, out, self.binary,
                                (lambda text: self.progress.show(f"{label}: {text}")) if self.progress else None)
        for path in filter(None, (spec.config, spec.dut)):
            shutil.copy(path, out)
        row = runner.run()[0]
        rfc2544.write_outputs(out, spec, [row], runner.trials)
        lat = row["latency_ns"] or {}
        extra = {"throughput_pps": row["throughput_pps"], "throughput_percent": row["throughput_percent_of_max"],
                 "latency_p50_us": lat.get("p50", 0) / 1000, "latency_p99_us": lat.get("p99", 0) / 1000,
                 "trials": len(runner.trials), "tester_limited": row["tester_limited"]}
        return extra[self.exp.metric], extra


def summarize(exp, rows):
    out = []
    for index, point in enumerate(exp.points()):
        mine = [r for r in rows if r["point"] == index]
        entry = {"point": index, **{k: point[k] for k in exp.sweep}}
        for series in ("value", "peer"):
            vals = [r[series] for r in mine if r.get(series) is not None]
            if not vals:
                continue
            med = statistics.median(vals)
            pre = "" if series == "value" else "peer_"
            entry.update({pre + "median": med, pre + "min": min(vals), pre + "max": max(vals), pre + "n": len(vals),
                          pre + "spread_percent": 100 * (max(vals) - min(vals)) / med if med else 0.0})
        if "peer_median" in entry and entry["peer_median"]:
            entry["ratio"] = entry["median"] / entry["peer_median"]
        if exp.kind in RR:
            # Medians of every figure a run reported (x_NAME), the peer's as
            # peer_x_NAME; error counts: the most of any repetition.
            for pre, field in (("x_", "extra"), ("peer_x_", "peer_extra")):
                names = {k for r in mine for k, v in (r.get(field) or {}).items()
                         if isinstance(v, (int, float)) and not isinstance(v, bool)}
                for k in sorted(names):
                    vals = [r[field][k] for r in mine if isinstance((r.get(field) or {}).get(k), (int, float))]
                    entry[pre + k] = (max if k in WORST_OF else statistics.median)(vals)
            entry["lock_class"] = next((r["extra"].get("lock_class") for r in mine if r.get("extra")), None)
            # Ratios to the peer: the median of each repetition's own ratio
            # (ngstack and the peer ran minutes apart at most; the machine's
            # state changes more between repetitions than within one).
            rate = PEERS[exp.kind][1]
            if exp.peer:
                put_median(entry, rate + "_ratio", [r["extra"][rate] / r["peer"] for r in mine if r.get("peer")])
            if exp.kind == "tcp-rr" and exp.peer:
                # Linux per core it used (the server CPUs' busy time), else per core given
                put_median(entry, "per_core_ratio",
                           [r["extra"]["per_core_rate"] / linux for r in mine
                            for linux in [r["peer_extra"].get("per_busy_core_rate") or
                                          r["peer_extra"].get("per_core_rate")] if linux])
        out.append(entry)
    if exp.kind in RR:
        add_scaling(exp, out, rows)
    return out


def put_median(entry, key, vals):
    if vals:
        entry[key] = statistics.median(vals)


def run_retrying(runs, exp, index, rep, point):
    """runs.run; for kinds udp-rr and tcp-rr, a run in which ngstack crashed
    (hostpair.Crashed) runs once more, and its figures say so (`crashed`)."""
    try:
        return runs.run(index, rep, point)
    except hostpair.Crashed as e:
        if exp.kind not in RR:
            raise
        first = str(e).splitlines()[0]
        print(f"\n{exp.label(point)}, repetition {rep}: {first}; running it again (the log: configs/)",
              file=sys.stderr)
        value, extra = runs.run(index, rep, point, tag=f"point{index:02d}-rep{rep}-again")
        extra["crashed"] = first
        return value, extra


def peer_key(exp, point):
    return tuple(point[k] for k in sorted(PEER_VARIABLES[exp.kind]))


# Figures whose summary is the worst repetition's, not the median
WORST_OF = {"errors", "non_2xx"}


def add_scaling(exp, summary, rows):
    """S(W) and S(W)/W per point with W > 1 server workers: its rate over
    that of the point with 1 worker and every other variable the same, in
    the same repetition (the median over the repetitions), and that over W
    (1.0: linear scaling); also for the peer."""
    rate = PEERS[exp.kind][1]
    others = [k for k in exp.sweep if k != "workers"]
    ones = {tuple(s[k] for k in others): s for s in summary if s.get("workers", exp.fixed["workers"]) == 1}
    by_rep = {(r["point"], r["repetition"]): r for r in rows}
    for s in summary:
        w = s.get("workers", exp.fixed["workers"])
        base = ones.get(tuple(s[k] for k in others))
        if w <= 1 or base is None:
            continue
        pairs = [(r, by_rep[(base["point"], rep)]) for (p, rep), r in by_rep.items()
                 if p == s["point"] and (base["point"], rep) in by_rep]
        put_median(s, "speedup", [r["extra"][rate] / b["extra"][rate] for r, b in pairs if b["extra"][rate]])
        put_median(s, "peer_speedup", [r["peer"] / b["peer"] for r, b in pairs if b.get("peer")])
        for key in ("speedup", "peer_speedup"):
            if key in s:
                s[key.replace("speedup", "scaling")] = s[key] / w


# kind udp-rr: the figures beside the metric in summary.csv and summary.md
# (summary key, column title, format)
UDP_RR_COLUMNS = [
    ("x_tps", "transactions/s", "rate"),
    ("x_per_core_tps", "per echo worker", "rate"),
    ("scaling", "S(W)/W", "ratio"),
    ("lock_class", "pcb lock", "text"),
    ("x_contended_share", "contended", "percent"),
    ("x_wait_cycles_per_acquisition", "wait cycles/acq", "number"),
    ("x_acquisitions_per_packet", "acq/packet", "number"),
    ("x_latency_p50_us", "p50 us", "number"),
    ("x_latency_p99_us", "p99 us", "number"),
]
UDP_RR_PEER_COLUMNS = [
    ("peer_median", "sockperf transactions/s", "rate"),
    ("peer_scaling", "sockperf S(W)/W", "ratio"),
    ("tps_ratio", "ngstack/sockperf", "ratio"),
]


# kind tcp-rr, likewise
TCP_RR_COLUMNS = [
    ("x_rate", "transactions/s", "rate"),
    ("x_per_core_rate", "per server worker", "rate"),
    ("speedup", "S(W)", "ratio"),
    ("scaling", "S(W)/W", "ratio"),
    ("x_errors", "errors", "number"),
    ("lock_class", "pcb lock", "text"),
    ("x_acquisitions_per_transaction", "acq/txn", "number"),
    ("x_contended_share", "contended", "percent"),
    ("x_wait_cycles_per_acquisition", "wait cycles/acq", "number"),
    ("x_server_cycles_per_transaction", "server cycles/txn", "number"),
    ("x_client_cycles_per_transaction", "generator cycles/txn", "number"),
    ("x_latency_p50_us", "p50 us", "number"),
    ("x_latency_p99_us", "p99 us", "number"),
]
TCP_RR_PEER_COLUMNS = [
    ("peer_median", "Linux transactions/s", "rate"),
    ("peer_x_server_busy_cores", "nginx CPUs busy", "number"),
    ("peer_x_per_busy_core_rate", "Linux per core used", "rate"),
    ("peer_scaling", "Linux S(W)/W", "ratio"),
    ("rate_ratio", "ngstack/Linux", "ratio"),
    ("per_core_ratio", "ngstack/Linux per core", "ratio"),
]
RR_COLUMNS = {"udp-rr": (UDP_RR_COLUMNS, UDP_RR_PEER_COLUMNS), "tcp-rr": (TCP_RR_COLUMNS, TCP_RR_PEER_COLUMNS)}


def rr_columns(exp):
    cols, peer_cols = RR_COLUMNS[exp.kind]
    return [c for c in cols if c[0] != "x_" + exp.metric] + (peer_cols if exp.peer else [])


def cell(v, how):
    if v is None:
        return ""
    if how == "percent":
        return f"{100 * v:.2f}%"
    if how == "ratio":
        return f"{v:.3f}"
    if how == "rate":
        return f"{v:.0f}"
    return fmt(v)


def rr_notes(exp):
    """The lines summary.md and the console show before a udp-rr or tcp-rr
    table."""
    lines = [f"placement: {hostpair.placement_text(exp.placement)}"]
    if exp.oversubscribed:
        lines.append(f"OVERSUBSCRIBED: workers share CPUs ({exp.oversubscribed}). Busy-polling workers on one "
                     "CPU take turns on it, so per-worker rates and S(W)/W here measure no scaling; this "
                     "experiment is meant for machines with a CPU per worker of both sides plus one (16+ cores; "
                     "experiment.cpus places them).")
    lines.append("S(W) and the ratios to the peer are the medians of each repetition's own ratio.")
    if exp.peer and exp.kind == "tcp-rr":
        lines.append("wrk -> nginx: Linux TCP on 127.0.0.1, nginx with a worker process per server worker on the "
                     "server side's CPUs (access log off, the same body, closing a connection after as many "
                     "requests as the generator makes on one), wrk with a thread per client worker on the client "
                     "side's CPUs and as many connections as the generator keeps open (short: Connection: close, "
                     "so nginx closes first); run once per repetition for each workload and worker count. "
                     "Linux per core used: its rate over the server CPUs' busy time (/proc/stat); on loopback "
                     "some of the server's receive work runs in the sender's softirq on the client's CPUs.")
    elif exp.peer:
        sp = exp.sockperf
        burst = sp.get("burst") or f"window ({'/'.join(map(str, sorted({p['window'] for p in exp.points()})))})"
        lines.append(f"sockperf: Linux UDP on 127.0.0.1, one server thread per echo worker, one ping-pong client "
                     f"per client worker with {burst} messages outstanding, "
                     f"{'busy polling' if sp.get('busy_poll', True) else 'blocking'}, on the same CPUs")
    return lines


def write_results(exp, out, rows, summary, started, finished):
    keys = list(exp.sweep)
    peer_col = [PEER_COLUMN[exp.peer]] if exp.peer else []
    with open(os.path.join(out, "points.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["point", "repetition"] + keys + [exp.metric] + peer_col)
        for r in rows:
            w.writerow([r["point"], r["repetition"]] + [r[k] for k in keys] + [r["value"]] +
                       ([r.get("peer")] if exp.peer else []))
    cols = ["median", "min", "max", "spread_percent", "n"] + (["peer_median", "ratio"] if exp.peer else [])
    if exp.kind in RR:
        cols = ["median", "min", "max", "spread_percent", "n"] + [c for c, _, _ in rr_columns(exp)]
    with open(os.path.join(out, "summary.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(keys + cols)
        for s in summary:
            w.writerow([s[k] for k in keys] + [fmt(s.get(c)) for c in cols])
    unit = METRICS[exp.kind][exp.metric]
    with open(os.path.join(out, "summary.md"), "w") as f:
        trial = (f"an RFC 2544 search per point, trials of {exp.rfc2544.trial_s:g} s" if exp.kind == "rfc2544"
                 else f"trials of {exp.trial_s:g} s")
        f.write(f"{exp.name}: {exp.description}\n\nmetric: {unit}; {exp.repetitions} repetition(s), {trial}; "
                f"machine: {benchlib.machine()}\n\n")
        if exp.kind in RR:
            f.write("".join(line + "\n\n" for line in rr_notes(exp)))
            again = [f"point {r['point']} repetition {r['repetition']}" for r in rows if r["extra"].get("crashed")]
            if again:
                f.write(f"Run again after ngstack crashed: {', '.join(again)} (results.json: runs[].extra.crashed)"
                        "\n\n")
            title = next((t for k, t, _ in RR_COLUMNS[exp.kind][0] if k == "x_" + exp.metric), exp.metric)
            head = keys + [title, "min .. max", "spread"] + [t for _, t, _ in rr_columns(exp)]
        else:
            head = keys + ["median", "min .. max", "spread"] + ([exp.peer, "ratio"] if exp.peer else [])
        f.write("| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n")
        for s in summary:
            cells = [value_text(k, s[k], exp.kind) for k in keys] + [fmt(s["median"]),
                                                                     f"{fmt(s['min'])} .. {fmt(s['max'])}",
                                                 f"{s['spread_percent']:.1f}%"]
            if exp.kind in RR:
                cells += [cell(s.get(k), how) for k, _, how in rr_columns(exp)]
            elif exp.peer:
                cells += [fmt(s.get("peer_median")), fmt(s.get("ratio"))]
            f.write("| " + " | ".join(cells) + " |\n")
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"experiment": exp.name, "file": exp.path, "description": exp.description, "kind": exp.kind,
                   "metric": exp.metric, "unit": unit, "trial_s": exp.trial_s, "repetitions": exp.repetitions,
                   "fixed": exp.fixed, "sweep": exp.sweep, "skip": exp.skip, "peer": exp.peer,
                   "machine": benchlib.machine(),
                   **({"placement": exp.placement, "oversubscribed": exp.oversubscribed} if exp.kind in RR else {}),
                   **({"sockperf": exp.sockperf} if exp.kind == "udp-rr" else {}),
                   "started": started, "finished": finished, "runs": rows, "summary": summary}, f, indent=2)
    plot(exp, out, summary)


def fmt(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def plot(exp, out, summary):
    """Each of the experiment's plots (NAME.png, then NAME-Y-vs-X.png): y's
    median against x with min..max error bars (for the experiment's metric;
    other figures: medians), one line per combination of the series
    variables, and the peer's where y is the metric."""
    for i, p in enumerate(exp.plots):
        plot_one(exp, out, [s for s in summary if p.keeps(s)], p,
                 "plot" if i == 0 else "plot" + p.name[len(exp.name):])


def plot_one(exp, out, summary, p, stem):
    data = os.path.join(out, stem + ".dat")
    groups = {}
    main = p.y == exp.metric
    for s in summary:
        key = " ".join(f"{k}={value_text(k, s[k], exp.kind)}" for k in p.series) or p.y
        y = s["median"] if main else s.get("x_" + p.y)
        if y is None:
            continue
        groups.setdefault(key, []).append({p.x: s[p.x], "median": y, "min": s["min"] if main else y,
                                           "max": s["max"] if main else y})
        if exp.peer and main:
            peer_series = [k for k in p.series if (k in PEER_VARIABLES[exp.kind] if exp.kind in PEER_VARIABLES
                                                   else k != "mode")]
            groups.setdefault((exp.peer + " " + " ".join(f"{k}={value_text(k, s[k], exp.kind)}"
                                                         for k in peer_series)).strip(),
                              []).append({p.x: s[p.x], "median": s["peer_median"],
                                          "min": s["peer_min"], "max": s["peer_max"]})
    if not groups:
        raise RuntimeError(f"plot {p.y} vs {p.x}: no point has the values of its where")
    numeric_x = all(isinstance(v, (int, float)) and value_text(p.x, v, exp.kind) == str(v) for v in exp.sweep[p.x])
    xs = sorted(exp.sweep[p.x]) if numeric_x else list(exp.sweep[p.x])  # words: the file's order
    with open(data, "w") as f:
        for name, items in groups.items():
            seen = set()
            f.write(f'"{name}"\n')
            for it in sorted(items, key=lambda it: xs.index(it[p.x])):
                if it[p.x] in seen:
                    continue
                seen.add(it[p.x])
                x = it[p.x] if numeric_x else xs.index(it[p.x])
                f.write(f"{x} {it['median']} {it['min']} {it['max']}\n")
            f.write("\n\n")
    script = os.path.join(out, stem + ".gp")
    xtics = "" if numeric_x else "set xtics (" + ", ".join(f'"{value_text(p.x, x, exp.kind)}" {i}'
                                                           for i, x in enumerate(xs)) + ")\n"
    where = ", ".join(f"{k}={'/'.join(value_text(k, v, exp.kind) for v in vs)}" for k, vs in p.where.items())
    newline = "\\n"  # in a double-quoted gnuplot string
    with open(script, "w") as f:
        f.write(f"""set terminal pngcairo size 900,540 font ",10"
set output "{os.path.join(out, p.name + '.png')}"
set title "{exp.name}: {exp.description}{newline + where if where else ''}" noenhanced
set xlabel "{p.x}" noenhanced
set ylabel "{METRICS[exp.kind][p.y]}" noenhanced
set key outside right top noenhanced
set grid
set yrange [0:*]
{xtics}set offsets 0.3, 0.3, 0, 0
plot for [i=0:{len(groups) - 1}] "{data}" index i using 1:2:3:4 with yerrorlines title columnheader(1)
""")
    if not shutil.which("gnuplot"):
        # The runs are worth more than the figure: keep them, say how to draw it.
        print(f"[lab {exp.name}] gnuplot is not installed: {p.name}.png not drawn (apt-get install gnuplot-nox, "
              f"then: gnuplot {script}, or ngstack lab ... --from-results)", file=sys.stderr)
        return
    r = subprocess.run(["gnuplot", script], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"gnuplot failed on {script}:\n{r.stderr}")


class Progress:
    def __init__(self, exp, total):
        self.exp, self.total, self.done, self.start = exp, total, 0, time.time()

    def show(self, text):
        elapsed = time.time() - self.start
        left = elapsed / self.done * (self.total - self.done) if self.done else None
        left_text = f", ~{clock(left)} left" if left is not None else ""
        sys.stderr.write(f"\r\033[K[lab {self.exp.name}] run {self.done + 1}/{self.total}: {text} "
                         f"({clock(elapsed)} elapsed{left_text})")
        sys.stderr.flush()


def clock(s):
    s = int(s)
    return f"{s // 60}m{s % 60:02d}s"


def main():
    ap = argparse.ArgumentParser(prog="ngstack lab", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file")
    ap.add_argument("--out", help="output folder (default results/NAME)")
    ap.add_argument("--repetitions", type=int, help="override the experiment's repetitions")
    ap.add_argument("--trial-s", type=float, help="override the experiment's trial length")
    ap.add_argument("--ngstack", default=os.environ.get("NGSTACK", benchlib.NGSTACK))
    ap.add_argument("--from-results", action="store_true",
                    help="run nothing: write the summaries and figures again from DIR/results.json")
    a = ap.parse_args()
    try:
        exp = Experiment(a.file)
    except SpecError as e:
        print(f"ngstack lab: error: {e}", file=sys.stderr)
        return 1
    if a.from_results:
        return rewrite(exp, a.out or os.path.join("results", exp.name))
    if a.repetitions:
        exp.repetitions = a.repetitions
    if a.trial_s:
        exp.trial_s, exp.trial_s_given = a.trial_s, True
    out = a.out or os.path.join("results", exp.name)
    for sub in ("configs", "sources"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    shutil.copy(a.file, os.path.join(out, "experiment.yaml"))
    points = list(exp.points())
    if exp.kind in RR:
        sys.stderr.write("".join(f"[lab {exp.name}] {line}\n" for line in
                                 [f"machine: {benchlib.machine()}"] + rr_notes(exp)))
    peer_keys = []  # kinds in SHARED_PEER: the peer's runs, one per combination of its variables
    if exp.peer and exp.kind in SHARED_PEER:
        for point in points:
            if peer_key(exp, point) not in peer_keys:
                peer_keys.append(peer_key(exp, point))
    peer_runs = (len(peer_keys) if peer_keys else len(points) if exp.peer else 0)
    progress = Progress(exp, (len(points) + peer_runs) * exp.repetitions)
    tmp = tempfile.mkdtemp(prefix="ngstack-lab-")
    runs = Runs(exp, out, a.ngstack, tmp)
    runs.progress = progress
    rows = []
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    try:
        for rep in range(1, exp.repetitions + 1):
            peer_done = {}
            for index, point in enumerate(points):
                progress.show(f"{exp.label(point)}, repetition {rep}/{exp.repetitions}")
                value, extra = run_retrying(runs, exp, index, rep, point)
                progress.done += 1
                row = {"point": index, "repetition": rep, **{k: point[k] for k in exp.sweep}, "value": value,
                       **{f"extra_{k}": v for k, v in extra.items()}}
                if exp.kind in RR:
                    row["extra"] = extra
                if exp.peer:
                    key = peer_key(exp, point) if peer_keys else index
                    if key not in peer_done:
                        progress.show(f"{exp.label(point)}, {exp.peer}, repetition {rep}/{exp.repetitions}")
                        tag = f"peer{peer_keys.index(key):02d}-rep{rep}-{exp.peer}" if peer_keys else None
                        peer_done[key] = runs.run(index, rep, point, mode=exp.peer, tag=tag)
                        progress.done += 1
                    row["peer"], peer_extra = peer_done[key]
                    if exp.kind in RR:
                        row["peer_extra"] = peer_extra
                rows.append(row)
    except (RuntimeError, subprocess.SubprocessError) as e:
        print(f"\nngstack lab: error: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.stderr.write("\n")
    summary = summarize(exp, rows)
    write_results(exp, out, rows, summary, started, time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    with open(os.path.join(out, "summary.md")) as f:
        print(f.read())
    print(f"written: {out}/ (points.csv, summary.csv, summary.md, results.json, {exp.name}.png, configs/)")
    return 0


def rewrite(exp, out):
    """The summaries and figures of `out` again from its results.json (the
    runs of the same experiment)."""
    try:
        with open(os.path.join(out, "results.json")) as f:
            res = json.load(f)
    except (OSError, ValueError) as e:
        print(f"ngstack lab: error: {out}/results.json: {e}", file=sys.stderr)
        return 1
    exp.trial_s, exp.repetitions = res["trial_s"], res["repetitions"]
    write_results(exp, out, res["runs"], summarize(exp, res["runs"]), res["started"], res["finished"])
    print(f"written again from {out}/results.json: points.csv, summary.csv, summary.md, results.json, figures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
