#!/usr/bin/python3
"""RFC 2544 benchmarking with ngstack's traffic mode.

  ngstack rfc2544 FILE [--out DIR] [--ngstack BINARY]

FILE names a traffic-mode config (one generator and one sink facing the
device under test) and what to measure; see perf/README.md ("RFC 2544").
For each frame size:
  * throughput (RFC 2544 §26.1): a binary search for the highest offered
    rate at which the frames lost stay within `loss_tolerance` percent, each
    trial a fresh ngstack run of `trial_s` seconds;
  * latency (§26.2) at that rate, from the sink's histogram of the stamps;
  * frame loss rate (§26.3) at each of `loss_steps` percent of `max_rate`.
A trial's frames sent are the generator's count, its frames received are the
stamped frames the sink got (duplicates not counted). A trial whose
generator reached less than 99% of the rate asked is marked tester_limited:
the tester, not the device, set that rate. Writes rfc2544.json,
rfc2544.csv (one row per frame size), trials.csv (one row per trial) and
each trial's exact config under DIR/trials/."""
import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import time

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
import labfile  # noqa: E402
from labfile import SpecError  # noqa: E402

RFC2544_SIZES = [64, 128, 256, 512, 1024, 1280, 1518]


class Spec:
    """What one RFC 2544 run measures (the `rfc2544` mapping)."""

    def __init__(self, m, base_dir):
        self.config = resolve(base_dir, m.get("config", str) or m.fail(m.node, m.path, 'missing key "config"'))
        self.config_pos = m.pos("config")
        self.dut = m.get("dut", str)
        if self.dut is not None:
            self.dut = resolve(base_dir, self.dut)
        self.frame_sizes = m.get_list("frame_sizes", int, RFC2544_SIZES, lo=64, hi=9000)
        self.trial_s = m.get("trial_s", float, 2.0, lo=0.1, hi=3600)
        self.latency_trial_s = m.get("latency_trial_s", float, self.trial_s, lo=0.1, hi=3600)
        self.max_unit, self.max_rate = labfile.rate_of(m, "max_rate") if m.has("max_rate") else ("percent", 100.0)
        self.resolution = m.get("resolution", float, 0.5, lo=0.01, hi=50)
        self.loss_tolerance = m.get("loss_tolerance", float, 0.0, lo=0, hi=100)
        self.loss_steps = m.get_list("loss_steps", float, [100, 90, 80, 70, 60, 50, 40, 30, 20, 10], lo=1, hi=100)
        self.settle_ms = m.get("settle_ms", int, 200, lo=1, hi=60000)
        m.finish()


def resolve(base_dir, path):
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(base_dir, path))


def load_spec(path):
    top = labfile.load(path)
    if not top.has("rfc2544"):
        top.fail(top.node, "rfc2544", 'missing key "rfc2544"')
    spec = Spec(top.sub("rfc2544"), os.path.dirname(os.path.abspath(path)))
    top.finish()
    check_base(spec)
    return spec


def check_base(spec):
    """The traffic config must exist, be in traffic mode, and have exactly one
    generator and one sink (ngstack itself checks the rest when it starts)."""
    try:
        with open(spec.config) as f:
            base = yaml.safe_load(f)
    except OSError as e:
        raise SpecError(f"{spec.config_pos}: rfc2544.config: cannot read {spec.config}: {e.strerror}")
    t = (base or {}).get("traffic") or {}
    if (base or {}).get("mode") != "traffic" or len(t.get("generators") or []) != 1 or len(t.get("sinks") or []) != 1:
        raise SpecError(f"{spec.config_pos}: rfc2544.config: {spec.config} must be a traffic-mode config with "
                        "exactly one generator and one sink")
    spec.base = base
    if spec.dut is not None and not os.path.exists(spec.dut):
        raise SpecError(f"rfc2544.dut: cannot read {spec.dut}")


class Runner:
    def __init__(self, spec, out_dir, binary=benchlib.NGSTACK, progress=None):
        self.spec, self.out_dir, self.binary = spec, out_dir, binary
        self.progress = progress or (lambda text: None)
        self.trials = []
        os.makedirs(os.path.join(out_dir, "trials"), exist_ok=True)

    def trial_config(self, size, fraction, seconds):
        """The base config with the generator set to `size` bytes, `fraction`
        of max_rate, for `seconds`; ngstack ends the run by itself."""
        cfg = json.loads(json.dumps(self.spec.base))  # deep copy
        g = cfg["traffic"]["generators"][0]
        g["size"] = size
        g["rate"] = {self.spec.max_unit: round(self.spec.max_rate * fraction, 6)}
        g.pop("packets", None)
        g["duration_ms"] = max(1, int(round(seconds * 1000)))
        cfg["traffic"]["stop_when_done"] = True
        cfg["traffic"]["settle_ms"] = self.spec.settle_ms
        return cfg

    def trial(self, phase, size, fraction, seconds):
        n = len(self.trials) + 1
        cfg = self.trial_config(size, fraction, seconds)
        path = os.path.join(self.out_dir, "trials", f"{n:03d}-{size}B-{phase}.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)
        js = path[:-5] + ".json"
        self.progress(f"{size} B {phase}: trial {n} at {100 * fraction:.2f}% of max ({self.rate_text(fraction)})")
        r = subprocess.run([self.binary, "--config", path, "--json", js, "--quiet"], capture_output=True, text=True,
                           timeout=seconds + 120)
        if r.returncode != 0:
            raise RuntimeError(f"trial {n} ({path}): ngstack exit {r.returncode}:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
        with open(js) as f:
            s = json.load(f)
        g, k = s["traffic"]["generators"][0], s["traffic"]["sinks"][0]
        sent = g["packets"]
        # Frames too far behind their flow to be checked may be old duplicates:
        # not counted as received.
        received = max(0, k["stamped"] - k["duplicates"] - k.get("beyond_window", 0))
        lost = max(0, sent - received)
        t = {"trial": n, "phase": phase, "size": size, "offered_percent_of_max": round(100 * fraction, 4),
             "offered": self.rate_text(fraction), "target_pps": g["target_pps"], "achieved_pps": g["achieved_pps"],
             "sent": sent, "received": received, "lost": lost,
             "loss_percent": 100.0 * lost / sent if sent else 100.0,
             # The tester could not offer what was asked (its own limit, not the device's).
             "tester_limited": g["target_pps"] > 0 and g["achieved_pps"] < 0.99 * g["target_pps"],
             "latency_ns": {q: k[f"latency_{q}_ns"] for q in ("min", "p50", "p99", "p999", "max")},
             "config": os.path.relpath(path, self.out_dir)}
        self.trials.append(t)
        return t

    def rate_text(self, fraction):
        unit = {"pps": "pps", "bps": "bit/s", "percent": "% of line rate"}[self.spec.max_unit]
        value = self.spec.max_rate * fraction
        return f"{value:.4g} {unit}" if self.spec.max_unit == "percent" else f"{value:.0f} {unit}"

    def passes(self, t):
        return t["sent"] > 0 and t["loss_percent"] <= self.spec.loss_tolerance

    def throughput(self, size):
        """RFC 2544 §26.1 by binary search over the fraction of max_rate."""
        s = self.spec
        top = self.trial("throughput", size, 1.0, s.trial_s)
        if self.passes(top):
            return 1.0, top
        lo, hi, best = 0.0, 1.0, None
        while (hi - lo) * 100 > s.resolution:
            mid = (lo + hi) / 2
            t = self.trial("throughput", size, mid, s.trial_s)
            if self.passes(t):
                lo, best = mid, t
            else:
                hi = mid
        return lo, best

    def frame_loss(self, size):
        """RFC 2544 §26.3: from the highest step down, until two steps in a
        row lose nothing."""
        rows, clean = [], 0
        for step in sorted(self.spec.loss_steps, reverse=True):
            t = self.trial("loss", size, step / 100.0, self.spec.trial_s)
            rows.append({"percent_of_max": step, "loss_percent": t["loss_percent"], "sent": t["sent"],
                         "received": t["received"]})
            clean = clean + 1 if t["lost"] == 0 else 0
            if clean == 2:
                break
        return rows

    def run(self):
        dut = start_dut(self.spec.dut, self.binary, os.path.join(self.out_dir, "dut.log")) if self.spec.dut else None
        results = []
        try:
            for size in self.spec.frame_sizes:
                fraction, best = self.throughput(size)
                latency = self.trial("latency", size, fraction, self.spec.latency_trial_s) if fraction > 0 else None
                results.append({
                    "size": size,
                    "throughput_percent_of_max": round(100 * fraction, 4),
                    "throughput": self.rate_text(fraction),
                    "throughput_pps": best["achieved_pps"] if best else 0.0,
                    "received_pps": (best["received"] / best["sent"] * best["achieved_pps"]) if best and best["sent"] else 0.0,
                    "tester_limited": bool(best and best["tester_limited"]),
                    "latency_ns": latency["latency_ns"] if latency else None,
                    "latency_loss_percent": latency["loss_percent"] if latency else None,
                    "frame_loss": self.frame_loss(size),
                })
        finally:
            if dut:
                stop_dut(dut)
        return results


def start_dut(config, binary, log_path):
    """Starts the device under test (an ngstack config); its output goes to
    log_path. Returns once it reports its workers running."""
    log = open(log_path, "w")
    p = subprocess.Popen([binary, "--config", config, "--quiet"], stdout=log, stderr=subprocess.STDOUT, text=True)
    p.log, p.log_path = log, log_path
    deadline = time.time() + 30
    while time.time() < deadline:
        with open(log_path) as f:
            seen = f.read()
        if p.poll() is not None:
            raise RuntimeError(f"the device under test ({config}) exited {p.returncode}:\n{seen[-3000:]}")
        if "running in" in seen:
            time.sleep(0.5)  # its ports come up
            return p
        time.sleep(0.05)
    p.kill()
    raise RuntimeError(f"the device under test ({config}) did not start within 30 s (see {log_path})")


def stop_dut(p):
    p.send_signal(signal.SIGINT)
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        raise RuntimeError(f"the device under test did not stop within 30 s of SIGINT (see {p.log_path})")
    finally:
        p.log.close()
    if p.returncode != 0:
        with open(p.log_path) as f:
            raise RuntimeError(f"the device under test exited {p.returncode}:\n{f.read()[-3000:]}")


def write_outputs(out_dir, spec, results, trials):
    with open(os.path.join(out_dir, "rfc2544.json"), "w") as f:
        json.dump({"config": spec.config, "dut": spec.dut, "max_rate": {spec.max_unit: spec.max_rate},
                   "trial_s": spec.trial_s, "loss_tolerance_percent": spec.loss_tolerance,
                   "resolution_percent": spec.resolution, "results": results, "trials": trials}, f, indent=2)
    with open(os.path.join(out_dir, "rfc2544.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["frame_size", "throughput_percent_of_max", "throughput_pps", "latency_min_ns", "latency_p50_ns",
                    "latency_p99_ns", "latency_p999_ns", "latency_max_ns"])
        for r in results:
            lat = r["latency_ns"] or {}
            w.writerow([r["size"], r["throughput_percent_of_max"], round(r["throughput_pps"], 1)] +
                       [lat.get(q, "") for q in ("min", "p50", "p99", "p999", "max")])
    with open(os.path.join(out_dir, "trials.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["trial", "phase", "frame_size", "offered_percent_of_max", "achieved_pps", "tester_limited", "sent",
                    "received", "loss_percent", "config"])
        for t in trials:
            w.writerow([t["trial"], t["phase"], t["size"], t["offered_percent_of_max"], round(t["achieved_pps"], 1),
                        int(t["tester_limited"]), t["sent"], t["received"], round(t["loss_percent"], 6), t["config"]])


def table(results):
    lines = ["frame size | throughput (% of max) | throughput (pps) | latency min / p50 / p99 / max (us) | frame loss by % of max",
             "---|---|---|---|---"]
    for r in results:
        lat = r["latency_ns"]
        lat_text = " / ".join(f"{lat[q] / 1000:.1f}" for q in ("min", "p50", "p99", "max")) if lat else "-"
        loss = ", ".join(f"{s['percent_of_max']:g}%: {s['loss_percent']:.2f}%" for s in r["frame_loss"])
        limited = " (tester-limited)" if r["tester_limited"] else ""
        lines.append(f"{r['size']} | {r['throughput_percent_of_max']:.2f}{limited} | {r['throughput_pps']:.0f} | "
                     f"{lat_text} | {loss}")
    return "\n".join(lines)


def progress_line(start):
    def show(text):
        sys.stderr.write(f"\r\033[K[rfc2544 {time.time() - start:6.1f} s] {text}")
        sys.stderr.flush()
    return show


def main():
    ap = argparse.ArgumentParser(prog="ngstack rfc2544", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file")
    ap.add_argument("--out", help="output folder (default results/rfc2544-NAME)")
    ap.add_argument("--ngstack", default=os.environ.get("NGSTACK", benchlib.NGSTACK))
    a = ap.parse_args()
    try:
        spec = load_spec(a.file)
    except SpecError as e:
        print(f"ngstack rfc2544: error: {e}", file=sys.stderr)
        return 1
    out = a.out or os.path.join("results", "rfc2544-" + os.path.splitext(os.path.basename(a.file))[0])
    runner = Runner(spec, out, a.ngstack, progress_line(time.time()))
    try:
        results = runner.run()
    except RuntimeError as e:
        print(f"\nngstack rfc2544: error: {e}", file=sys.stderr)
        return 1
    sys.stderr.write("\n")
    write_outputs(out, spec, results, runner.trials)
    print(table(results))
    print(f"written: {out}/rfc2544.json, rfc2544.csv, trials.csv, trials/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
