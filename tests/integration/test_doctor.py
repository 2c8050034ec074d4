"""`ngstack doctor` as a user runs it: on this machine (a VM: no NIC, hugepages
as whoever reserved them left them, so only structure and consistency are
asserted), with example configs, with --json, in a network namespace where the
af_packet interfaces of router-lab.yaml do or do not exist, as a non-root user,
against a fake /sys and /proc tree (--root), and with bad arguments."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from ngslab import NGSTACK, PREFIX, check, remove_stale, run_test, sh  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LINE = re.compile(r"^(ok|warn|FAIL) +(\w+) +(.+?)$")
SUMMARY = re.compile(r"^(\d+) ok, (\d+) warn, (\d+) FAIL: (ready|not ready)$")


def doctor(*args, netns=None, user=None):
    cmd = [NGSTACK, "doctor", *args]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]  # numeric ids
    if netns is not None:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=ROOT)
    return r.returncode, r.stdout, r.stderr


def parse_text(out):
    """Check lines -> [(status, group, rest)], and the summary counts."""
    checks, summary = [], None
    for line in out.splitlines():
        if m := LINE.match(line):
            checks.append(m.groups())
        elif m := SUMMARY.match(line):
            summary = m.groups()
    check(summary is not None, f"no summary line in:\n{out}")
    counts = [sum(1 for c in checks if c[0] == s) for s in ("ok", "warn", "FAIL")]
    check([int(x) for x in summary[:3]] == counts, f"summary {summary} does not count the lines {counts}:\n{out}")
    check((summary[3] == "ready") == (counts[2] == 0), f"ready/not ready disagrees with the FAIL count:\n{out}")
    return checks


def line_of(checks, group, name):
    for status, g, rest in checks:
        if g == group and rest.startswith(name + " "):
            return status, rest[len(name):].strip()
    raise AssertionError(f"no {group} {name} line in {checks}")


def expect_consistent(rc, checks, what):
    fails = [c for c in checks if c[0] == "FAIL"]
    check(rc == (1 if fails else 0), f"{what}: exit {rc} with {len(fails)} FAIL line(s)")
    for status, group, rest in checks:
        if status != "ok":
            check("-> fix: " in rest, f"{what}: a {status} line without its fix: {group} {rest}")


def machine():
    rc, out, err = doctor()
    checks = parse_text(out)
    expect_consistent(rc, checks, "doctor")
    status, saw = line_of(checks, "cpu", "flags")
    check(status == "ok" and saw.startswith("sse4_2 (required) present"), f"cpu flags: {status} {saw}")
    check({g for _, g, _ in checks} == {"cpu", "memory", "kernel"}, f"machine checks only, got {checks}")
    for name in ("cpus",):
        line_of(checks, "cpu", name)
    for name in ("hugepages", "hugetlbfs", "1g-pages"):
        line_of(checks, "memory", name)
    for name in ("root", "irqbalance", "runtime-dir", "memlock"):
        line_of(checks, "kernel", name)
    check(line_of(checks, "kernel", "root")[0] == "ok", "this test runs as root")
    check("machine checks only; with --config FILE also:" in out, f"no note on what needs a config:\n{out}")
    print(f"ok: doctor -> {rc}, {len(checks)} checks")

    rc, out, err = doctor("--json")
    doc = json.loads(out)
    check(set(doc) == {"checks", "ok"}, f"top-level keys {set(doc)}")
    for c in doc["checks"]:
        check(set(c) == {"group", "name", "status", "saw", "fix"}, f"check keys {set(c)}")
        check(c["status"] in ("ok", "warn", "fail"), f"status {c['status']}")
    fails = [c for c in doc["checks"] if c["status"] == "fail"]
    check(doc["ok"] == (not fails) and rc == (1 if fails else 0), f"--json: ok={doc['ok']} rc={rc} fails={fails}")
    flags = [c for c in doc["checks"] if (c["group"], c["name"]) == ("cpu", "flags")]
    check(flags and flags[0]["status"] == "ok", f"cpu flags in JSON: {flags}")
    print(f"ok: doctor --json -> {rc}, {len(doc['checks'])} checks")


def example_no_huge():
    # No hugepages, two virtual ports, lcores 0 and 1: this 2-CPU VM runs it.
    rc, out, err = doctor("--config", "conf/examples/forwarder-pcap.yaml")
    checks = parse_text(out)
    expect_consistent(rc, checks, "forwarder-pcap.yaml")
    check(rc == 0, f"forwarder-pcap.yaml should be runnable here:\n{out}{err}")
    check(line_of(checks, "memory", "hugepages") ==
          ("ok", "eal.no_huge: true: ngstack runs on ordinary memory, no hugepages needed"), out)
    check(line_of(checks, "nic", "source device") == ("ok", "net_pcap0: virtual device, nothing to check"), out)
    check(line_of(checks, "cpu", "lcores")[0] == "ok", out)
    check("machine checks only" not in out, out)
    print("ok: doctor --config forwarder-pcap.yaml -> 0")


def router_lab_in_a_namespace():
    # router-lab.yaml opens ngs-p0 and ngs-p1 with net_af_packet. In a fresh
    # namespace (ip netns exec mounts its own /sys/class/net) they are absent,
    # then a veth pair with those names makes them present.
    ns = f"{PREFIX}{os.getpid()}-doc"
    sh(f"ip netns add {ns}")
    try:
        rc, out, err = doctor("--config", "conf/examples/router-lab.yaml", netns=ns)
        checks = parse_text(out)
        expect_consistent(rc, checks, "router-lab.yaml, no interfaces")
        check(rc == 1, f"exit {rc}, expected 1:\n{out}{err}")
        status, saw = line_of(checks, "nic", "p0 device")
        check(status == "FAIL" and "interface ngs-p0 does not exist" in saw
              and "conf/examples/router-lab.yaml:17:5: ports[0].device" in saw, f"p0: {status} {saw}")
        sh(f"ip -n {ns} link add ngs-p0 type veth peer name ngs-p1")
        rc, out, err = doctor("--config", "conf/examples/router-lab.yaml", netns=ns)
        checks = parse_text(out)
        check(rc == 0, f"exit {rc} with the interfaces present:\n{out}{err}")
        check(line_of(checks, "nic", "p1 device") ==
              ("ok", "net_af_packet1: virtual device on interface ngs-p1 (present)"), out)
        print("ok: doctor --config router-lab.yaml in a namespace -> 1 without ngs-p0/1, 0 with them")
    finally:
        sh(f"ip netns del {ns}", check=False)


def not_root():
    rc, out, err = doctor("--config", os.path.join(ROOT, "conf/examples/forwarder-pcap.yaml"), user=65534)  # nobody
    checks = parse_text(out)
    expect_consistent(rc, checks, "as nobody")
    status, saw = line_of(checks, "kernel", "root")
    check(rc == 1 and status == "FAIL" and "ngstack must run as root" in saw and "sudo ngstack" in saw,
          f"as nobody: exit {rc}, root line {status} {saw}")
    print("ok: doctor as nobody -> 1, root FAIL")


def fake_root():
    tmp = tempfile.mkdtemp(prefix="ngstack-doctor-")
    try:
        def write(path, text):
            full = os.path.join(tmp, path.lstrip("/"))
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w") as f:
                f.write(text)

        # A CPU without SSE4.2, a NIC on its kernel driver, no hugepages.
        write("/proc/cpuinfo", "processor\t: 0\nflags\t\t: fpu sse sse2\n")
        write("/proc/cmdline", "root=/dev/sda1\n")
        write("/proc/mounts", "proc /proc proc rw 0 0\n")
        write("/sys/devices/system/cpu/online", "0-3\n")
        write("/sys/devices/system/node/node0/cpulist", "0-3\n")
        write("/sys/devices/system/node/node0/hugepages/hugepages-2048kB/free_hugepages", "0\n")
        write("/sys/bus/pci/devices/0000:01:00.0/numa_node", "0\n")
        write("/sys/bus/pci/devices/0000:01:00.1/numa_node", "0\n")
        os.makedirs(os.path.join(tmp, "sys/bus/pci/drivers/ixgbe"))
        for fn in ("0", "1"):
            os.symlink("../../../bus/pci/drivers/ixgbe", os.path.join(tmp, f"sys/bus/pci/devices/0000:01:00.{fn}/driver"))
        os.makedirs(os.path.join(tmp, "var/run"))
        cfg = os.path.join(ROOT, "conf/examples/forwarder-pci.yaml")

        rc, out, err = doctor("--root", tmp)
        checks = parse_text(out)
        check(rc == 1 and line_of(checks, "cpu", "flags")[0] == "FAIL", f"--root without sse4_2: exit {rc}\n{out}")
        check(line_of(checks, "cpu", "cpus") == ("ok", "4 CPUs usable (0-3)"), out)

        rc, out, err = doctor("--config", cfg, "--root", tmp, "--json")
        doc = json.loads(out)
        by = {(c["group"], c["name"]): c for c in doc["checks"]}
        check(rc == 1 and doc["ok"] is False, f"--root --json: exit {rc}, ok {doc['ok']}")
        drv = by[("nic", "wan driver")]
        check(drv["status"] == "fail" and drv["fix"].startswith(f"deploy/bind.sh --config {cfg}"), f"wan driver: {drv}")
        hp = by[("memory", "hugepages")]
        check(hp["status"] == "fail" and hp["fix"] == f"deploy/hugepages.sh --config {cfg}", f"hugepages: {hp}")
        check(by[("cpu", "lcores")]["status"] == "ok", "lcores 0,2,3 exist in the fake tree (CPUs 0-3)")
        print("ok: doctor --root FAKE -> 1 (no sse4_2, ixgbe, no hugepages)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bad_arguments():
    for args in (["--frobnicate"], ["--config"], ["--root"], ["--json=yes"], ["extra"]):
        rc, out, err = doctor(*args)
        check(rc == 2, f"doctor {args}: exit {rc}, expected 2\n{out}{err}")
        check("usage: ngstack doctor [--config FILE] [--json] [--root DIR]" in err, f"doctor {args}: {err}")
    print("ok: bad arguments -> 2")


def test_doctor():
    remove_stale()
    machine()
    example_no_huge()
    router_lab_in_a_namespace()
    not_root()
    fake_root()
    bad_arguments()


if __name__ == "__main__":
    run_test(test_doctor)
