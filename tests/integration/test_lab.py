"""ngstack lab: a 2-point experiment end to end, and bad experiment files.

The experiment sweeps the frame size over 64 and 256 bytes (forwarder,
1 worker, 1-second trials) with testpmd as its peer. Every output file must
be there and agree with the runs: points.csv has a row per run, summary.csv
and summary.md a row per point with the ratio to testpmd, results.json the
same numbers, the PNG is a PNG, and every run's config is kept and loads in
`ngstack check`. Bad files get FILE:LINE:COLUMN: KEY: message."""
import csv
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from ngslab import NGSTACK, check, expect_file_errors, run_test  # noqa: E402

EXPERIMENT = """experiment:
  description: two sizes
  kind: forward
  metric: mpps
  trial_s: 1
  repetitions: 1
  peer: testpmd
  fixed: {mode: forwarder, workers: 1, flows: 64}
  sweep:
    size: [64, 256]
"""


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def bad_files(tmp):
    cases = [
        (EXPERIMENT.replace("kind: forward", "kind: sideways"),
         'bad.yaml:3:9: experiment.kind: unknown value "sideways" (known: forward, rfc2544, udp-rr)'),
        (EXPERIMENT.replace("size: [64, 256]", "size: [64, 20000]"),
         "bad.yaml:10:16: experiment.sweep.size: must be in [64, 1518], got 20000"),
        (EXPERIMENT.replace("    size: [64, 256]", "    colour: [red]"),
         'bad.yaml:10:5: experiment.sweep.colour: unknown variable "colour" for kind forward'),
        (EXPERIMENT.replace("repetitions: 1", "repetitions: many"),
         'bad.yaml:6:16: experiment.repetitions: expected an integer, got "many"'),
        (EXPERIMENT.replace("fixed: {mode: forwarder", "fixed: {mode: teleport"),
         'bad.yaml:8:17: experiment.fixed.mode: unknown value "teleport"'),
        (EXPERIMENT + "  extra: 1\n", "bad.yaml:11:3: experiment.extra: unknown key"),
        (EXPERIMENT.replace("metric: mpps", "metric: cycles_per_packet"),
         "bad.yaml:7:9: experiment.peer: a testpmd peer runs only beside kind forward, metric mpps"),
        ("experiment:\n  kind: rfc2544\n  rfc2544: none.yaml\n  sweep: {size: [64]}\n",
         "bad.yaml:3:3: experiment.rfc2544: cannot read"),
        ("experiment: [1\n", "bad.yaml:2:1: YAML syntax error"),
    ]
    expect_file_errors("lab", cases, tmp)
    print(f"bad experiment files: {len(cases)} clear errors")


def test_two_point_experiment():
    with tempfile.TemporaryDirectory(prefix="ngt-lab-") as tmp:
        bad_files(tmp)
        path = os.path.join(tmp, "two.yaml")
        write(path, EXPERIMENT)
        out = os.path.join(tmp, "out")
        r = subprocess.run([NGSTACK, "lab", path, "--out", out], capture_output=True, text=True, timeout=300)
        print(r.stdout)
        check(r.returncode == 0, f"lab exit {r.returncode}:\n{r.stdout}{r.stderr[-3000:]}")
        check("run 4/4" in r.stderr and "left" in r.stderr, f"progress line: {r.stderr[-500:]!r}")
        points = list(csv.DictReader(open(os.path.join(out, "points.csv"))))
        check([p["size"] for p in points] == ["64", "256"], f"points.csv: {points}")
        for p in points:
            check(float(p["mpps"]) > 0 and float(p["testpmd_mpps"]) > 0, f"a measured rate and a peer rate: {p}")
        summary = list(csv.DictReader(open(os.path.join(out, "summary.csv"))))
        check(len(summary) == 2, f"summary.csv: {summary}")
        for s, p in zip(summary, points):
            check(abs(float(s["median"]) - float(p["mpps"])) < 0.01 * float(p["mpps"]) + 1e-3, f"median of one run: {s} {p}")
            check(abs(float(s["ratio"]) - float(p["mpps"]) / float(p["testpmd_mpps"])) < 0.01, f"ratio: {s}")
        md = open(os.path.join(out, "summary.md")).read()
        check("| size | median | min .. max | spread | testpmd | ratio |" in md and md.count("\n| ") == 3, md)
        res = json.load(open(os.path.join(out, "results.json")))
        check(len(res["runs"]) == 2 and res["peer"] == "testpmd" and "machine" in res, "results.json")
        with open(os.path.join(out, "two.png"), "rb") as f:
            check(f.read(8) == b"\x89PNG\r\n\x1a\n", "two.png is a PNG")
        configs = sorted(os.listdir(os.path.join(out, "configs")))
        check(configs == ["point00-rep1-testpmd.txt", "point00-rep1.yaml", "point01-rep1-testpmd.txt",
                          "point01-rep1.yaml"], f"configs: {configs}")
        for c in configs:
            if c.endswith(".yaml"):
                r = subprocess.run([NGSTACK, "check", os.path.join(out, "configs", c)], capture_output=True,
                                   text=True, timeout=60)
                check(r.returncode == 0, f"configs/{c} does not load: {r.stderr}")
        check(len(os.listdir(os.path.join(out, "sources"))) == 2, "the captures the configs replay are kept")


if __name__ == "__main__":
    run_test(test_two_point_experiment)
