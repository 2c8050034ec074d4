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
they replay. See perf/README.md ("Lab experiments")."""
import argparse
import csv
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
import labfile  # noqa: E402
import rfc2544  # noqa: E402
import router_bench  # noqa: E402
from labfile import Map, SpecError  # noqa: E402

# kind -> variable -> (type, allowed values or None, default)
VARIABLES = {
    "forward": {
        "mode": (str, ["forwarder", "router", "bridge", "testpmd"], "forwarder"),
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
}
LIMITS = {"workers": (1, 128), "size": (64, 1518), "flows": (1, 1 << 20), "burst": (1, 512), "routes": (1, 1 << 20)}
METRICS = {
    "forward": {"mpps": "Mpps (median of per-second tx rates)",
                "cycles_per_packet": "busy TSC cycles per packet (ngstack only)"},
    "rfc2544": {"throughput_pps": "RFC 2544 throughput (frames/s)",
                "throughput_percent": "RFC 2544 throughput (% of max_rate)",
                "latency_p50_us": "latency p50 at throughput (us)",
                "latency_p99_us": "latency p99 at throughput (us)"},
}


class Experiment:
    def __init__(self, path):
        self.path = path
        self.name = os.path.splitext(os.path.basename(path))[0]
        top = labfile.load(path)
        m = top.sub("experiment") if top.has("experiment") else top.fail(top.node, "experiment",
                                                                          'missing key "experiment"')
        top.finish()
        self.description = m.get("description", str, "")
        self.kind = m.get("kind", str, "forward", choices=list(VARIABLES))
        variables = VARIABLES[self.kind]
        self.metric = m.get("metric", str, next(iter(METRICS[self.kind])), choices=list(METRICS[self.kind]))
        # kind rfc2544: each trial of the search; unset, the RFC 2544 file's trial_s holds.
        self.trial_s_given = m.has("trial_s")
        self.trial_s = m.get("trial_s", float, 3.0, lo=0.5, hi=3600)
        self.repetitions = m.get("repetitions", int, 3, lo=1, hi=100)
        self.peer = m.get("peer", str, None, choices=["testpmd"])
        if self.peer and (self.kind != "forward" or self.metric != "mpps"):
            m.fail(m.items["peer"][1], "experiment.peer", "a testpmd peer runs only beside kind forward, metric mpps")
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
        self.fixed = {k: d for k, (_, _, d) in variables.items()}
        if m.has("fixed"):
            self.fixed.update(read_variables(m.sub("fixed"), variables, self.kind, Map.get))
        if not m.has("sweep"):
            m.fail(m.node, "experiment", 'missing key "sweep" (the variables to sweep, each a list)')
        s = m.sub("sweep")
        self.sweep = read_variables(s, variables, self.kind, Map.get_list)
        if not self.sweep:
            s.fail(s.node, "experiment.sweep", "sweep at least one variable")
        self.plot_x = next(iter(self.sweep))
        self.plot_series = [k for k in self.sweep if k != self.plot_x]
        if m.has("plot"):
            p = m.sub("plot")
            self.plot_x = p.get("x", str, self.plot_x, choices=list(self.sweep))
            self.plot_series = [k for k in self.sweep if k != self.plot_x]
            p.finish()
        m.finish()
        if self.metric == "cycles_per_packet" and "testpmd" in self.sweep.get("mode", []):
            raise SpecError(f"{path}: experiment.metric: cycles_per_packet is not measured for mode testpmd")

    def points(self):
        keys = list(self.sweep)
        for values in itertools.product(*(self.sweep[k] for k in keys)):
            p = dict(self.fixed)
            p.update(zip(keys, values))
            yield p

    def label(self, point):
        return " ".join(f"{k}={point[k]}" for k in self.sweep)


def read_variables(m, variables, kind_name, getter):
    """The variables of mapping m (fixed: one value each with Map.get, sweep:
    a list each with Map.get_list), checked against the kind's variables."""
    out = {}
    for k in list(m.items):
        if k not in variables:
            m.fail(m.items[k][0], m.key_path(k), unknown_variable(k, kind_name))
        kind, choices, _ = variables[k]
        lo, hi = LIMITS.get(k, (None, None))
        out[k] = getter(m, k, kind, lo=lo, hi=hi, choices=choices)
    m.finish()
    return out


def unknown_variable(k, kind):
    return f'unknown variable "{k}" for kind {kind} (known: {", ".join(VARIABLES[kind])})'


class Runs:
    """Runs one point's trial and keeps its exact config."""

    def __init__(self, exp, out, binary, tmp):
        self.exp, self.out, self.binary, self.tmp = exp, out, binary, tmp
        self.pcaps = {}
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

    def forward_config(self, point, pcaps):
        dispatch = (f"dispatch:\n  protocols:\n    ether: {{mode: {point['dispatch_mode']}, "
                    f"policy: {point['policy']}, qlimit: 4096}}\n")
        if point["mode"] == "forwarder":
            return benchlib.forwarder_config(pcaps, point["workers"], point["burst"], dispatch)
        # router and bridge: one source port with a queue per worker
        return router_bench.config(point["mode"], pcaps, point["workers"], point["routes"], point["burst"]) + dispatch

    def run(self, index, rep, point, mode=None):
        """One trial of `point` (mode overrides point's mode: the peer);
        returns (value, extra fields)."""
        tag = f"point{index:02d}-rep{rep}" + (f"-{mode}" if mode else "")
        if self.exp.kind == "rfc2544":
            return self.run_rfc2544(tag, point)
        mode = mode or point["mode"]
        pcaps = self.sources(point)
        if mode == "testpmd":
            cmd = benchlib.testpmd_command(pcaps, point["burst"], point["workers"])
            with open(os.path.join(self.out, "configs", tag + ".txt"), "w") as f:
                f.write(" ".join(cmd) + "\n")
            pps = benchlib.run_testpmd(pcaps, self.exp.trial_s, point["burst"], point["workers"])
            return pps / 1e6, {"mpps": pps / 1e6}
        text = self.forward_config(dict(point, mode=mode), pcaps)
        with open(os.path.join(self.out, "configs", tag + ".yaml"), "w") as f:
            f.write(text)
        pps, cpp, s = benchlib.run_ngstack(text, self.exp.trial_s, self.tmp, self.binary)
        if not s["ok"]:
            raise RuntimeError(f"{tag}: the run's accounting failed (configs/{tag}.yaml)")
        extra = {"mpps": pps / 1e6, "cycles_per_packet": cpp}
        return extra[self.exp.metric], extra

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
        out.append(entry)
    return out


def write_results(exp, out, rows, summary, started, finished):
    keys = list(exp.sweep)
    with open(os.path.join(out, "points.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["point", "repetition"] + keys + [exp.metric] + (["testpmd_mpps"] if exp.peer else []))
        for r in rows:
            w.writerow([r["point"], r["repetition"]] + [r[k] for k in keys] + [r["value"]] +
                       ([r.get("peer")] if exp.peer else []))
    cols = ["median", "min", "max", "spread_percent", "n"] + (["peer_median", "ratio"] if exp.peer else [])
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
        head = keys + ["median", "min .. max", "spread"] + (["testpmd", "ratio"] if exp.peer else [])
        f.write("| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n")
        for s in summary:
            cells = [str(s[k]) for k in keys] + [fmt(s["median"]), f"{fmt(s['min'])} .. {fmt(s['max'])}",
                                                 f"{s['spread_percent']:.1f}%"]
            if exp.peer:
                cells += [fmt(s.get("peer_median")), fmt(s.get("ratio"))]
            f.write("| " + " | ".join(cells) + " |\n")
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"experiment": exp.name, "file": exp.path, "description": exp.description, "kind": exp.kind,
                   "metric": exp.metric, "unit": unit, "trial_s": exp.trial_s, "repetitions": exp.repetitions,
                   "fixed": exp.fixed, "sweep": exp.sweep, "peer": exp.peer, "machine": benchlib.machine(),
                   "started": started, "finished": finished, "runs": rows, "summary": summary}, f, indent=2)
    plot(exp, out, summary, unit)


def fmt(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def plot(exp, out, summary, unit):
    """NAME.png: the metric's median against plot.x with min..max error bars,
    one line per combination of the other swept variables (and testpmd)."""
    data = os.path.join(out, "plot.dat")
    groups = {}
    for s in summary:
        key = " ".join(f"{k}={s[k]}" for k in exp.plot_series) or exp.metric
        groups.setdefault(key, []).append(s)
        if exp.peer:
            groups.setdefault(("testpmd " + " ".join(f"{k}={s[k]}" for k in exp.plot_series if k != "mode")).strip(),
                              []).append({exp.plot_x: s[exp.plot_x], "median": s["peer_median"],
                                          "min": s["peer_min"], "max": s["peer_max"]})
    numeric_x = all(isinstance(s[exp.plot_x], (int, float)) for s in summary)
    xs = sorted(exp.sweep[exp.plot_x]) if numeric_x else list(exp.sweep[exp.plot_x])  # words: the file's order
    with open(data, "w") as f:
        for name, items in groups.items():
            seen = set()
            f.write(f'"{name}"\n')
            for it in sorted(items, key=lambda it: xs.index(it[exp.plot_x])):
                if it[exp.plot_x] in seen:
                    continue
                seen.add(it[exp.plot_x])
                x = it[exp.plot_x] if numeric_x else xs.index(it[exp.plot_x])
                f.write(f"{x} {it['median']} {it['min']} {it['max']}\n")
            f.write("\n\n")
    script = os.path.join(out, "plot.gp")
    xtics = "" if numeric_x else "set xtics (" + ", ".join(f'"{x}" {i}' for i, x in enumerate(xs)) + ")\n"
    with open(script, "w") as f:
        f.write(f"""set terminal pngcairo size 900,540 font ",10"
set output "{os.path.join(out, exp.name + '.png')}"
set title "{exp.name}: {exp.description}" noenhanced
set xlabel "{exp.plot_x}" noenhanced
set ylabel "{unit}" noenhanced
set key outside right top noenhanced
set grid
set yrange [0:*]
{xtics}set offsets 0.3, 0.3, 0, 0
plot for [i=0:{len(groups) - 1}] "{data}" index i using 1:2:3:4 with yerrorlines title columnheader(1)
""")
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
    a = ap.parse_args()
    try:
        exp = Experiment(a.file)
    except SpecError as e:
        print(f"ngstack lab: error: {e}", file=sys.stderr)
        return 1
    if a.repetitions:
        exp.repetitions = a.repetitions
    if a.trial_s:
        exp.trial_s, exp.trial_s_given = a.trial_s, True
    out = a.out or os.path.join("results", exp.name)
    for sub in ("configs", "sources"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    shutil.copy(a.file, os.path.join(out, "experiment.yaml"))
    points = list(exp.points())
    per_point = 2 if exp.peer else 1
    progress = Progress(exp, len(points) * exp.repetitions * per_point)
    tmp = tempfile.mkdtemp(prefix="ngstack-lab-")
    runs = Runs(exp, out, a.ngstack, tmp)
    runs.progress = progress
    rows = []
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    try:
        for rep in range(1, exp.repetitions + 1):
            for index, point in enumerate(points):
                progress.show(f"{exp.label(point)}, repetition {rep}/{exp.repetitions}")
                value, extra = runs.run(index, rep, point)
                progress.done += 1
                row = {"point": index, "repetition": rep, **{k: point[k] for k in exp.sweep}, "value": value,
                       **{f"extra_{k}": v for k, v in extra.items()}}
                if exp.peer:
                    progress.show(f"{exp.label(point)}, testpmd, repetition {rep}/{exp.repetitions}")
                    row["peer"], _ = runs.run(index, rep, point, mode="testpmd")
                    progress.done += 1
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


if __name__ == "__main__":
    sys.exit(main())
