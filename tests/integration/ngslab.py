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
import socket
import subprocess
import sys
import tempfile
import time

NGSTACK = os.environ.get("NGSTACK", "build/app/ngstack")
LAB_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy", "lab")
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
        m = re.match(rf"\d+: ({PREFIX}(\d+)-p\d+)[@:]", line)
        if m and not os.path.exists(f"/proc/{m.group(2)}"):
            sh(f"ip link del {m.group(1)}", check=False)


class Lab:
    """A lab topology built by deploy/lab (the same script users run) under a
    prefix of this process's own: hosts <tag>-h1.., root-side ports <tag>-p0..

    `kind` is "router", "bridge" or "host" (see deploy/lab)."""

    def __init__(self, kind):
        self.kind = kind
        self.tag = f"{PREFIX}{os.getpid()}"
        self.env = dict(os.environ, NGS_LAB_PREFIX=self.tag)

    def _lab(self, *args, check_rc=True):
        r = subprocess.run([LAB_SCRIPT, *args], env=self.env, capture_output=True, text=True, timeout=60)
        if check_rc and r.returncode != 0:
            raise RuntimeError(f"deploy/lab {' '.join(args)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
        return r

    def __enter__(self):
        remove_stale()
        self._lab("up", self.kind)
        return self

    def __exit__(self, *exc):
        self._lab("down", check_rc=False)
        return False

    def host(self, i):
        """Namespace of host i (1-based, as deploy/lab numbers them)."""
        return f"{self.tag}-h{i}"

    def port(self, i):
        """Root-side veth of port i (0-based), for net_af_packet iface=."""
        return f"{self.tag}-p{i}"


class Ngstack:
    """An ngstack process run with a config text; stops it with SIGINT."""

    def __init__(self, config_text=None, args=(), netns=None):
        self.dir = tempfile.mkdtemp(prefix="ngstack-test-")
        self.json_path = os.path.join(self.dir, "summary.json")
        cmd = [NGSTACK, "--json", self.json_path, "--stats-interval", "1"] + list(args)
        if netns:  # its devices (net_tap) are born in that namespace; `ip netns exec` execs ngstack
            cmd = ["ip", "netns", "exec", netns] + cmd
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


def workers_arg():
    """The variant a router or bridge test runs in, from its command line:
    `--workers 2` (the `_2w` tests of meson.build), else 1.

    1: one worker, the protocols' default dispatch. 2: two workers (lcore 2
    shares CPU 0 with the mostly idle main lcore), every af_packet port with
    two queue pairs (af_packet offers one tx queue per pair, and each worker
    needs its own), and the stack's second protocol (router: ip, bridge:
    ether) deferred under the flow policy, so that a packet is handled by
    the worker that owns its flow's bucket, whichever worker received it."""
    args = sys.argv[1:]
    if not args:
        return 1
    if len(args) == 2 and args[0] == "--workers" and args[1] in ("1", "2"):
        return int(args[1])
    raise SystemExit(f"usage: {sys.argv[0]} [--workers 1|2]")


def workers_yaml(workers, rx=None):
    """The eal.lcore_cpus line (for a block `eal:`) and the `workers:`
    section of a `workers`-worker variant. `rx`: {lcore: [queue, ...]} (as
    "p0/1"), every rx queue once, for two workers.

    Two workers poll whole ports rather than `rx: auto` (queue q on worker q
    mod 2): af_packet fans flows out over its queues by the kernel's flow
    hash, whose seed changes at every boot, so with auto which worker
    receives a flow is left to chance. With ports pinned, and the symmetric
    key's Toeplitz hash of the lab's fixed addresses deciding a flow's owner,
    the same packets cross workers on every run (the tests say which)."""
    if workers == 1:
        return "", "workers: {lcores: [1]}\n"
    text = "workers:\n  lcores: [1, 2]\n  rx:\n" + "".join(
        f"    - {{lcore: {lcore}, queues: [{', '.join(queues)}]}}\n" for lcore, queues in rx.items())
    return "  lcore_cpus: {2: 0}\n", text


def af_packet(index, iface, workers):
    """A port's device and rx_queues for net_af_packet on `iface`: one queue
    pair per worker."""
    if workers == 1:
        return f'device: "net_af_packet{index},iface={iface},framecnt=1024"'
    return f'device: "net_af_packet{index},iface={iface},framecnt=1024,qpairs={workers}", rx_queues: {workers}'


def router_lab_config(lab, prefix, extra="", p0_device=None, workers=1, ip_mode=None):
    """ngstack as the router lab's gateway: p0 198.18.1.1/24 (net_af_packet,
    unless `p0_device` says otherwise; then one rx queue), p1 198.19.1.1/24,
    `workers` workers (see workers_arg); `extra` is appended to the router
    section (indented two spaces); `ip_mode` set: ip is dispatched in that
    mode under the flow policy.

    Two workers: lcore 1 polls p1 (h2's side), lcore 2 polls p0 (h1's side).
    The flows between h1 and h2 (ICMP: 198.18.1.2 <-> 198.19.1.2, RSS bucket
    45 of 128) and from h1 to the silent 198.19.1.99 (bucket 111) belong to
    lcore 2 (odd buckets: worker 1 of [1, 2]), so under ip deferred every
    packet from h2 is received by lcore 1 and routed by lcore 2, a packet
    waiting for h2's MAC is held by lcore 2 and released by lcore 1 (where
    the ARP reply arrives: arp stays on the receiving worker), and one held
    for .99 is given up by lcore 1 (worker 0 runs the ARP timers)."""
    p0 = f'device: "{p0_device}"' if p0_device else af_packet(0, lab.port(0), workers)
    p0_queues = 1 if p0_device else workers
    lcore_cpus, workers_text = workers_yaml(
        workers, {1: [f"p1/{q}" for q in range(workers)], 2: [f"p0/{q}" for q in range(p0_queues)]})
    dispatch = f"dispatch: {{protocols: {{ip: {{mode: {ip_mode}, policy: flow}}}}}}\n" if ip_mode else ""
    return f"""mode: router
eal:
  main_lcore: 0
  memory_mb: 512
  no_huge: true
  file_prefix: {prefix}
{lcore_cpus}ports:
  - {{name: p0, {p0}}}
  - {{name: p1, {af_packet(1, lab.port(1), workers)}}}
{workers_text}router:
  interfaces:
    - {{port: p0, addresses: [198.18.1.1/24]}}
    - {{port: p1, addresses: [198.19.1.1/24]}}
{extra}{dispatch}"""


# The host lab's services: udp-echo on 7, udp-discard on 9 (flow mappings).
HOST_SERVICES = ("{type: udp-echo, port: 7}", "{type: udp-discard, port: 9}")


def host_lab_config(lab, prefix, extra="", workers=1, udp_mode=None, locking="group", services=HOST_SERVICES):
    """ngstack as the host lab's end host: 198.18.1.1/24 on p0
    (net_af_packet on the lab's p0, the same subnet as h1 198.18.1.2),
    `workers` workers (see workers_arg), `services` (flow mappings, as
    HOST_SERVICES) and the connection table under `locking` (group or
    giant); `extra` is appended to the host section (indented two spaces);
    `udp_mode` set: udp is dispatched in that mode (under its own policy,
    cpu: the owner of the datagram's connection group).

    Two workers: p0 has two queue pairs, lcore 1 polls p0/0 and lcore 2
    polls p0/1. af_packet spreads flows over the two queues by the kernel's
    flow hash, so each worker receives about half of many flows, and about
    half of what each receives belongs to a connection group the other owns:
    under udp deferred those cross workers through the netisr queue, under
    direct the receiving worker takes the group's lock itself."""
    lcore_cpus, workers_text = workers_yaml(workers, {1: ["p0/0"], 2: ["p0/1"]})
    dispatch = f"dispatch: {{protocols: {{udp: {{mode: {udp_mode}}}}}}}\n" if udp_mode else ""
    services_text = "".join(f"  - {svc}\n" for svc in services)
    return f"""mode: host
eal:
  main_lcore: 0
  memory_mb: 512
  no_huge: true
  file_prefix: {prefix}
{lcore_cpus}ports:
  - {{name: p0, {af_packet(0, lab.port(0), workers)}}}
{workers_text}host:
  interfaces:
    - {{port: p0, addresses: [198.18.1.1/24]}}
{extra}services:
{services_text}stack: {{locking: {locking}}}
{dispatch}"""


def service(summary, type_, port=None):
    """The JSON summary's entry for the service of `type_` (on `port`)."""
    found = [s for s in summary["services"] if s["type"] == type_ and port in (None, s["port"])]
    if len(found) != 1:
        raise AssertionError(f"one {type_} service (port {port}) in the summary: {summary.get('services')}")
    return found[0]


def lock_table(summary, name):
    """The JSON summary's `locks` entry of connection table `name` (udp,
    tcp), with its classes as {class: counters}."""
    found = [t for t in summary["locks"]["tables"] if t["name"] == name]
    if len(found) != 1:
        raise AssertionError(f"one lock table {name!r} in the summary: {summary.get('locks')}")
    return dict(found[0], classes={c["class"]: c for c in found[0]["classes"]})


def telemetry(file_prefix, cmd):
    """One DPDK telemetry command to the ngstack running with `file_prefix`
    (as dpdk-telemetry.py sends it); returns the command's value."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(f"/var/run/dpdk/{file_prefix}/dpdk_telemetry.v2")
    json.loads(s.recv(16384))  # greeting
    s.send(cmd.encode())
    reply = json.loads(s.recv(1 << 20))
    s.close()
    return reply[cmd.split(",")[0]]


def worker_counters(file_prefix, lcore=None):
    """The telemetry counters (/ngstack/worker,<lcore>) of one worker, or of
    every worker summed: with several workers a packet is counted by
    whichever handled it."""
    if lcore is not None:
        return telemetry(file_prefix, f"/ngstack/worker,{lcore}")
    total = {}
    for lcore in telemetry(file_prefix, "/ngstack/workers"):
        for k, v in telemetry(file_prefix, f"/ngstack/worker,{lcore}").items():
            total[k] = total.get(k, 0) + v
    return total


def events(summary, name, lcore=None):
    """Sum of a stack event over the workers of a JSON summary (or of the
    worker on `lcore`)."""
    return sum(w["events"][name] for w in summary["workers"] if lcore in (None, w["lcore"]))


def drops(summary, name, lcore=None):
    """Sum of a drop reason over the workers of a JSON summary (or of the
    worker on `lcore`)."""
    return sum(w["drops"][name] for w in summary["workers"] if lcore in (None, w["lcore"]))


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def expect_file_errors(subcommand, cases, tmp):
    """`ngstack SUBCOMMAND bad.yaml` (run in tmp) exits 1 with each case's
    expected message: cases are (file text, text the error must contain,
    with tmp's path left out)."""
    path = os.path.join(tmp, "bad.yaml")
    for text, want in cases:
        with open(path, "w") as f:
            f.write(text)
        r = subprocess.run([NGSTACK, subcommand, path], capture_output=True, text=True, cwd=tmp, timeout=60)
        got = r.stderr.strip().replace(tmp + "/", "")
        check(r.returncode == 1 and want in got, f"{text!r}: exit {r.returncode}, wanted {want!r} in {got!r}")


def run_test(fn):
    """Run a test function; print PASS/FAIL; exit 0/1 for meson."""
    try:
        fn()
    except BaseException as e:  # noqa: BLE001 - report everything, including SystemExit from SIGTERM
        print(f"FAIL: {fn.__name__}: {e}", flush=True)
        sys.exit(1)
    print(f"PASS: {fn.__name__}", flush=True)
    sys.exit(0)


def pcap_forwarder_config(prefix, pcap, extra=""):
    """A one-worker forwarder from a net_pcap replay of `pcap` to a net_null
    sink, ether deferred under the flow policy (so netisr queues are used);
    `extra` is appended YAML."""
    return f"""eal: {{main_lcore: 0, memory_mb: 256, no_huge: true, file_prefix: {prefix}}}
ports:
  - {{name: source, device: "net_pcap0,rx_pcap={pcap},infinite_rx=1"}}
  - {{name: sink, device: "net_null0,no-rx=1"}}
workers: {{lcores: [1]}}
forwarder: {{paths: [{{in: source, out: sink}}]}}
dispatch: {{protocols: {{ether: {{mode: deferred, policy: flow, qlimit: 2048}}}}}}
""" + extra
