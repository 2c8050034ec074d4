"""DPDK's l3fwd example as a benchmark peer: built from the sources Debian's
dpdk-doc ships (/usr/share/dpdk/examples), run on the same net_pcap
infinite_rx source and net_null sink as ngstack, its rate read from DPDK
telemetry.

Build: the example's own Makefile (make, cc, pkg-config libdpdk) on a copy
of its sources, with one change: l3fwd asks every port for rx checksum
offload, which net_pcap and net_null lack (rte_eth_dev_configure refuses
it), so the copy asks for no rx offload. l3fwd never reads the checksum
flags it asks for (its RFC 1812 checks say "checked in H/W"), so the change
costs it nothing and the forwarding path is the one it runs on a NIC. The
build is kept in a directory with a stamp of the sources and the change,
and redone only when they differ.

Run: one source port with one rx queue per worker (one capture each), as
ngstack's router gets, rather than testpmd's one port per capture: l3fwd
sets up a tx queue per lcore on every port, and net_pcap has as many tx
queues as captures. The forwarding lcores are 1..N on the CPUs benchlib
gives ngstack's workers; l3fwd's main lcore forwards too, so there is no
lcore 0. Routes come from --rule_ipv4 (l3fwd's table holds at most 1024);
--parse-ptype because net_pcap does not set packet types. The rate is the
sink's opackets from /ethdev/stats, sampled each second once forwarding has
started; the first second is left out, as for the other peers."""
import hashlib
import json
import math
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import time

import benchlib

EXAMPLES = "/usr/share/dpdk/examples"
# l3fwd's LPM table size (IPV4_L3FWD_LPM_MAX_RULES in l3fwd_lpm.c).
MAX_ROUTES = 1024
# The one change to the copied sources, (file, what, by, why).
PATCH = ("main.c", ".offloads = RTE_ETH_RX_OFFLOAD_CHECKSUM,", ".offloads = 0,",
         "port_conf.rxmode.offloads RTE_ETH_RX_OFFLOAD_CHECKSUM -> 0 (net_pcap and net_null have no rx "
         "checksum offload; l3fwd never reads the flags it asks for)")


class Unavailable(Exception):
    """l3fwd could not be built here; the message says why and what to install."""


def _sources_digest():
    h = hashlib.sha256()
    for top in ("l3fwd", "common"):
        base = os.path.join(EXAMPLES, top)
        for dirpath, dirnames, files in os.walk(base):
            dirnames.sort()
            for f in sorted(files):
                p = os.path.join(dirpath, f)
                h.update(os.path.relpath(p, EXAMPLES).encode() + b"\0")
                with open(p, "rb") as fh:
                    h.update(fh.read())
    h.update(repr(PATCH[:3]).encode())
    h.update(subprocess.run(["pkg-config", "--modversion", "libdpdk"], capture_output=True, text=True).stdout.encode())
    return h.hexdigest()


def build(dest):
    """Build l3fwd under `dest` (reusing a build of the same sources).
    Returns (binary, what was changed in its source); raises Unavailable."""
    if not os.path.isfile(os.path.join(EXAMPLES, "l3fwd", "main.c")):
        raise Unavailable(f"its sources are not here ({EXAMPLES}/l3fwd): apt-get install dpdk-doc")
    for prog, pkg in (("make", "make"), ("cc", "build-essential"), ("pkg-config", "pkg-config")):
        if not shutil.which(prog):
            raise Unavailable(f"{prog} is not installed: apt-get install {pkg}")
    if subprocess.run(["pkg-config", "--exists", "libdpdk"]).returncode != 0:
        raise Unavailable("pkg-config does not know libdpdk: apt-get install libdpdk-dev")
    src = os.path.join(dest, "src")
    binary = os.path.join(src, "l3fwd", "build", "l3fwd-shared")
    stamp = os.path.join(dest, "stamp")
    digest = _sources_digest()
    changed = f"{PATCH[0]}: {PATCH[3]}"
    try:
        with open(stamp) as f:
            if f.read().strip() == digest and os.access(binary, os.X_OK):
                return binary, changed
    except OSError:
        pass
    shutil.rmtree(src, ignore_errors=True)
    os.makedirs(src)
    # The Makefile includes ../common: copy both, side by side as in the package.
    for top in ("l3fwd", "common"):
        shutil.copytree(os.path.join(EXAMPLES, top), os.path.join(src, top))
    path = os.path.join(src, "l3fwd", PATCH[0])
    with open(path) as f:
        text = f.read()
    if text.count(PATCH[1]) != 1:
        raise Unavailable(f"{PATCH[0]} has {text.count(PATCH[1])} copies of `{PATCH[1]}` (expected 1): "
                          f"this l3fwd differs from the one the benchmark knows")
    with open(path, "w") as f:
        f.write(text.replace(PATCH[1], PATCH[2]))
    r = subprocess.run(["make", "-C", os.path.join(src, "l3fwd")], capture_output=True, text=True, timeout=900)
    if r.returncode != 0 or not os.access(binary, os.X_OK):
        raise Unavailable(f"make failed ({r.returncode}):\n{(r.stdout + r.stderr)[-2000:]}")
    with open(stamp, "w") as f:
        f.write(digest + "\n")
    return binary, changed


def write_rules(directory, prefixes, out_port):
    """l3fwd's route files: every IPv4 prefix to `out_port`, and one IPv6
    route (l3fwd reads its own defaults unless given both files)."""
    v4, v6 = os.path.join(directory, "l3fwd-v4.rules"), os.path.join(directory, "l3fwd-v6.rules")
    with open(v4, "w") as f:
        f.writelines(f"R{p} {out_port}\n" for p in prefixes)
    with open(v6, "w") as f:
        f.write(f"R2001:db8::/32 {out_port}\n")
    return v4, v6


def command(binary, pcaps, workers, rules, dst_mac, prefix):
    """l3fwd --lookup=lpm from the captures (port 0, a queue each) to the
    net_null sink (port 1), forwarding lcores 1..workers."""
    lmap = {l: c for l, c in benchlib.lcores_arg(workers).items() if l != 0}
    rx = ",".join(f"rx_pcap={p}" for p in pcaps)
    config = ",".join(f"(0,{q},{q + 1})" for q in range(len(pcaps)))
    return [binary, "--lcores", ",".join(f"{l}@{c}" for l, c in lmap.items()), "--main-lcore", "1",
            "--no-huge", "-m", "1024", "--no-pci", "--file-prefix", prefix, "--log-level", "notice",
            "--vdev", f"net_pcap0,{rx},infinite_rx=1", "--vdev", "net_null0,no-rx=1",
            "--", "-p", "0x3", "--lookup=lpm", f"--config={config}", "--parse-ptype",
            f"--rule_ipv4={rules[0]}", f"--rule_ipv6={rules[1]}", f"--eth-dest=1,{dst_mac}"]


def runtime_dir(prefix):
    # Where EAL puts its runtime files (eal_get_runtime_dir).
    base = "/var/run" if os.geteuid() == 0 else os.environ.get("XDG_RUNTIME_DIR", "/tmp")
    return os.path.join(base, "dpdk", prefix)


class Telemetry:
    """A connection to a DPDK process's telemetry socket."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.connect(path)
        json.loads(self.sock.recv(16384))  # greeting

    def __call__(self, cmd):
        self.sock.send(cmd.encode())
        return json.loads(self.sock.recv(1 << 20))[cmd.split(",")[0]]

    def close(self):
        self.sock.close()


def _connect(p, path, log, deadline):
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise RuntimeError(f"l3fwd exited ({p.returncode}) before it started:\n{_tail(log)}")
        if os.path.exists(path):
            try:
                return Telemetry(path)
            except OSError:
                pass
        time.sleep(0.1)
    raise RuntimeError(f"l3fwd's telemetry socket {path} did not appear:\n{_tail(log)}")


def _tail(log):
    with open(log, errors="replace") as f:
        return f.read()[-3000:]


def run(cmd, seconds, tmp, sink=1, source=0):
    """Run l3fwd; returns the median of the sink's per-second tx rates after
    the first second of forwarding. Fails when a frame went anywhere but the
    sink (l3fwd sends a frame without a route back out of its input port)."""
    prefix = cmd[cmd.index("--file-prefix") + 1]
    log = os.path.join(tmp, "l3fwd.log")
    with open(log, "w") as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    tel = None
    try:
        tel = _connect(p, os.path.join(runtime_dir(prefix), "dpdk_telemetry.v2"), log, time.monotonic() + 30)

        def sent():
            return tel(f"/ethdev/stats,{sink}")["opackets"], time.monotonic()

        deadline = time.monotonic() + 30
        while (s := sent())[0] == 0:
            if p.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"l3fwd forwarded nothing to the sink:\n{_tail(log)}")
            time.sleep(0.05)
        rates = []
        for i in range(math.ceil(seconds) + 1):
            time.sleep(max(0.0, s[1] + 1.0 - time.monotonic()))
            n = sent()
            rates.append((n[0] - s[0]) / (n[1] - s[1]))
            s = n
        back = tel(f"/ethdev/stats,{source}")["opackets"]
        if back:
            raise RuntimeError(f"l3fwd sent {back} frames back out of the source port: its routes do not cover "
                               f"the capture's destinations")
    finally:
        if tel:
            tel.close()
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        shutil.rmtree(runtime_dir(prefix), ignore_errors=True)
    rates = [r for r in rates[1:] if r > 0]
    if not rates:
        raise RuntimeError("l3fwd reported no rate:\n" + _tail(log))
    return statistics.median(rates)


def command_line(cmd):
    return shlex.join(cmd)
