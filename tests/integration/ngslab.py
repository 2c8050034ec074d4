"""Helpers for ngstack integration tests: Linux hosts in network namespaces
joined to ngstack through veth pairs, and an ngstack process to drive.

Every namespace and veth a test creates is removed when the test ends, also
when it fails or is killed with SIGTERM (meson's timeout). Addresses come from
198.18.0.0/15 only, inside namespaces the test made itself.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

NGSTACK = os.environ.get("NGSTACK", "build/app/ngstack")
PREFIX = "ngt"  # every namespace/veth name a test makes starts with this


def sh(cmd, check=True, **kw):
    r = subprocess.run(cmd, shell=True, text=True, capture_output=True, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"command failed ({r.returncode}): {cmd}\n{r.stdout}{r.stderr}")
    return r


def _on_sigterm(signum, frame):
    raise SystemExit(f"killed by signal {signum}")


signal.signal(signal.SIGTERM, _on_sigterm)


def remove_stale():
    """Remove namespaces and veths left by a test process that no longer runs."""
    for line in sh("ip netns list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(rf"{PREFIX}(\d+)-", name)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            sh(f"ip netns del {name}", check=False)
    # EAL runtime directories of test processes that were killed (ngt-*-<pid>).
    for d in os.listdir("/var/run/dpdk") if os.path.isdir("/var/run/dpdk") else []:
        m = re.match(r"ngt-.*-(\d+)$", d)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            shutil.rmtree(os.path.join("/var/run/dpdk", d), ignore_errors=True)
    for line in sh("ip -o link show", check=False).stdout.splitlines():
        m = re.match(rf"\d+: ({PREFIX}(\d+)[a-z]\d*)[@:]", line)
        if m and not os.path.exists(f"/proc/{m.group(2)}"):
            sh(f"ip link del {m.group(1)}", check=False)


class Lab:
    """Namespaces h0..hN-1, each with a veth whose root-side end ngstack opens."""

    def __init__(self):
        self.tag = f"{PREFIX}{os.getpid()}"
        self.hosts = []
        self.links = []

    def __enter__(self):
        remove_stale()
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False

    def host(self, index, addr_cidr):
        """Create namespace `<tag>-h<index>` with address addr_cidr on eth0;
        returns (namespace, root-side interface name)."""
        ns = f"{self.tag}-h{index}"
        root_if = f"{PREFIX}{os.getpid() % 100000}p{index}"
        self.hosts.append(ns)
        self.links.append(root_if)
        sh(f"ip netns add {ns}")
        sh(f"ip link add {root_if} type veth peer name eth0 netns {ns}")
        for cmd in [f"sysctl -qw net.ipv6.conf.{root_if}.disable_ipv6=1", f"ip link set {root_if} up"]:
            sh(cmd)
        # A veth leaves TCP/UDP checksums to "hardware" that does not exist on
        # the far side of an af_packet port: the frame would cross ngstack with
        # a partial checksum and the peer would drop it. Real NICs compute it.
        for cmd in ["sysctl -qw net.ipv6.conf.all.disable_ipv6=1", "ethtool -K eth0 tx off",
                    f"ip addr add {addr_cidr} dev eth0",
                    "ip link set eth0 up", "ip link set lo up"]:
            sh(f"ip netns exec {ns} {cmd}")
        return ns, root_if

    def cleanup(self):
        for ns in self.hosts:
            sh(f"ip netns del {ns}", check=False)
        for link in self.links:
            sh(f"ip link del {link}", check=False)
        self.hosts, self.links = [], []


class Ngstack:
    """An ngstack process run with a config text; stops it with SIGINT."""

    def __init__(self, config_text=None, args=()):
        self.dir = tempfile.mkdtemp(prefix="ngstack-test-")
        self.json_path = os.path.join(self.dir, "summary.json")
        cmd = [NGSTACK, "--json", self.json_path, "--stats-interval", "1"] + list(args)
        if config_text is not None:
            self.config_path = os.path.join(self.dir, "config.yaml")
            with open(self.config_path, "w") as f:
                f.write(config_text)
            cmd += ["--config", self.config_path]
        self.stdout = open(os.path.join(self.dir, "stdout"), "w+")
        self.stderr = open(os.path.join(self.dir, "stderr"), "w+")
        self.proc = subprocess.Popen(cmd, stdout=self.stdout, stderr=self.stderr)

    def wait_running(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ngstack exited early ({self.proc.returncode}):\n{self.output()}")
            if "worker(s) running" in self.err_text():
                return
            time.sleep(0.1)
        raise RuntimeError("ngstack did not start in time:\n" + self.output())

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("ngstack did not stop on SIGINT:\n" + self.output())
        return self.proc.returncode

    def wait(self, timeout=60):
        return self.proc.wait(timeout=timeout)

    def err_text(self):
        self.stderr.flush()
        with open(self.stderr.name) as f:
            return f.read()

    def out_text(self):
        self.stdout.flush()
        with open(self.stdout.name) as f:
            return f.read()

    def output(self):
        return "--- stdout\n" + self.out_text() + "--- stderr\n" + self.err_text()

    def summary(self):
        with open(self.json_path) as f:
            return json.load(f)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
        return False


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def run_test(fn):
    """Run a test function; print PASS/FAIL; exit 0/1 for meson."""
    try:
        fn()
    except BaseException as e:  # noqa: BLE001 - report everything, including SystemExit from SIGTERM
        print(f"FAIL: {fn.__name__}: {e}", flush=True)
        sys.exit(1)
    print(f"PASS: {fn.__name__}", flush=True)
    sys.exit(0)
