"""ngstack lab: two 2-point experiments end to end, and bad experiment files.

The first sweeps the frame size over 64 and 256 bytes (forwarder, 1 worker,
1-second trials) with testpmd as its peer. Every output file must be there
and agree with the runs: points.csv has a row per run, summary.csv and
summary.md a row per point with the ratio to testpmd, results.json the same
numbers, the PNG is a PNG, and every run's config is kept and loads in
`ngstack check`.

The second is perf/experiments/tcp-locking.yaml cut to 2 points (kind
tcp-rr: short connections, 1 worker, giant and group locking, 1-second
trials) with wrk -> nginx on loopback as its peer, run once for both
points. Every file is there, every rate is positive, the generator counted
no error and the server answered every request it made, and the lock and
cycle columns are filled in. Bad files get FILE:LINE:COLUMN: KEY: message."""
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


# perf/experiments/tcp-locking.yaml, 2 points
TCP_EXPERIMENT = """experiment:
  description: giant vs group, short connections
  kind: tcp-rr
  metric: rate
  trial_s: 1
  repetitions: 1
  peer: wrk
  fixed: {workers: 1, concurrency: 16, body_bytes: 64}
  sweep:
    locking: [giant, group]
    workload: [short]
  cpus: auto
  plot:
    - {x: locking, y: rate}
    - {x: locking, y: contended_share, where: {workload: short}}
"""


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def bad_files(tmp):
    cases = [
        (EXPERIMENT.replace("kind: forward", "kind: sideways"),
         'bad.yaml:3:9: experiment.kind: unknown value "sideways" (known: forward, rfc2544, udp-rr, tcp-rr)'),
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
        (TCP_EXPERIMENT.replace("peer: wrk", "peer: sockperf"),
         "bad.yaml:7:9: experiment.peer: a sockperf peer runs only beside kind udp-rr, metric tps"),
        (TCP_EXPERIMENT + "  sockperf: {busy_poll: true}\n",
         "bad.yaml:16:3: experiment.sockperf: only kind udp-rr takes this key"),
        (TCP_EXPERIMENT.replace("workload: [short]", "workload: [long]"),
         'bad.yaml:11:16: experiment.sweep.workload: unknown value "long" (known: short, keepalive)'),
        (TCP_EXPERIMENT.replace("y: contended_share", "y: colour"),
         'bad.yaml:15:23: experiment.plot[1].y: unknown value "colour"'),
        (TCP_EXPERIMENT.replace("{x: locking, y: rate}", "{x: locking, y: rate, where: {workers: 1}}"),
         'bad.yaml:14:37: experiment.plot[0].where.workers: "workers" is not a swept variable'),
        (TCP_EXPERIMENT + "  skip:\n    - {locking: [giant, group]}\n",
         "bad.yaml:16:3: experiment.skip: skips every point"),
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


def test_tcp_rr_experiment():
    with tempfile.TemporaryDirectory(prefix="ngt-lab-tcp-") as tmp:
        path = os.path.join(tmp, "tcp2.yaml")
        write(path, TCP_EXPERIMENT)
        out = os.path.join(tmp, "out")
        r = subprocess.run([NGSTACK, "lab", path, "--out", out], capture_output=True, text=True, timeout=180)
        print(r.stdout)
        check(r.returncode == 0, f"lab exit {r.returncode}:\n{r.stdout}{r.stderr[-3000:]}")
        # Two ngstack points and one wrk -> nginx run, shared by both (same workload and workers)
        check("run 3/3" in r.stderr and "placement:" in r.stderr, f"progress line: {r.stderr[-500:]!r}")
        points = list(csv.DictReader(open(os.path.join(out, "points.csv"))))
        check([(p["locking"], p["workload"]) for p in points] == [("giant", "short"), ("group", "short")],
              f"points.csv: {points}")
        for p in points:
            check(float(p["rate"]) > 0 and float(p["wrk_rate"]) > 0, f"a measured rate and a peer rate: {p}")
        check(points[0]["wrk_rate"] == points[1]["wrk_rate"], f"one wrk run for both points: {points}")
        summary = list(csv.DictReader(open(os.path.join(out, "summary.csv"))))
        check(len(summary) == 2, f"summary.csv: {summary}")
        for s, lock in zip(summary, ("pcb_giant", "pcb_group")):
            check(s["lock_class"] == lock, f"the lock class taken: {s}")
            check(s["x_errors"] == "0", f"no generator errors: {s}")
            for k in ("x_per_core_rate", "x_acquisitions_per_transaction", "x_server_cycles_per_transaction",
                      "x_client_cycles_per_transaction", "peer_median", "peer_x_per_busy_core_rate", "rate_ratio",
                      "per_core_ratio"):
                check(s.get(k) and float(s[k]) > 0, f"{k} positive: {s}")
            for k in ("x_contended_share", "x_wait_cycles_per_acquisition"):
                check(s.get(k) not in (None, "") and float(s[k]) >= 0, f"{k} there: {s}")
        md = open(os.path.join(out, "summary.md")).read()
        check("| locking | workload | transactions/s | min .. max | spread | per server worker | S(W) | S(W)/W | errors |"
              in md
              and "acq/txn | contended | wait cycles/acq | server cycles/txn | generator cycles/txn" in md
              and "ngstack/Linux per core |" in md and md.count("\n| ") == 3, md)
        res = json.load(open(os.path.join(out, "results.json")))
        check(len(res["runs"]) == 2 and res["peer"] == "wrk" and res["placement"] and "machine" in res,
              "results.json")
        for run in res["runs"]:
            x = run["extra"]
            check(x["responses"] == x["server_requests"] == x["completed"] and x["errors"] == 0,
                  f"every connection made one request and the server answered it: {x}")
            check(run["peer_extra"]["errors"] == 0 and run["peer_extra"]["non_2xx"] == 0,
                  f"wrk: no socket errors, every response 2xx: {run['peer_extra']}")
        for png in ("tcp2.png", "tcp2-contended_share-vs-locking.png"):
            with open(os.path.join(out, png), "rb") as f:
                check(f.read(8) == b"\x89PNG\r\n\x1a\n", f"{png} is a PNG")
        # (a run in which ngstack crashed runs again as pointNN-repR-again-*)
        configs = sorted(c for c in os.listdir(os.path.join(out, "configs")) if "-again-" not in c)
        want = ["peer00-rep1-wrk.txt"] + [f"point0{i}-rep1-{side}.{ext}" for i in (0, 1)
                                          for side in ("client", "server") for ext in ("json", "log", "yaml")]
        check(configs == want, f"configs: {configs}")
        wrk = open(os.path.join(out, "configs", "peer00-rep1-wrk.txt")).read()
        check("'Connection: close'" in wrk and "nginx.conf" in wrk, f"wrk's command and nginx's config kept: {wrk}")
        for c in configs:
            if c.endswith(".yaml"):
                r = subprocess.run([NGSTACK, "check", os.path.join(out, "configs", c)], capture_output=True,
                                   text=True, timeout=60)
                check(r.returncode == 0, f"configs/{c} does not load: {r.stderr}")


def test_lab():
    test_two_point_experiment()
    test_tcp_rr_experiment()


if __name__ == "__main__":
    run_test(test_lab)
