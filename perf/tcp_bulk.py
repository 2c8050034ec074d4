#!/usr/bin/python3
"""TCP bulk throughput per core: three legs in one run, each one connection
sending as fast as it can for `--seconds`.

  (a) ngstack -> ngstack over net_memif: process A (mode host, 198.18.5.1/24,
      memif server) runs tcp-source on port 19, which sends until the peer
      goes away; process B (198.18.5.2/24, memif client) runs tcp-client
      (1 flow), which connects, reads and drops for the trial, then aborts.
      The rate is B's services[0].rx_bits_per_s (bytes read over the time
      from its start to its last read).
  (b) Linux -> ngstack over a veth: a small Python sender (the same in (b) and
      (c)) in namespace S (198.18.6.2/24) connects to ngstack's tcp-discard
      (198.18.6.1/24, net_af_packet on the veth's root end), sends 1 MiB
      writes for the trial, half-closes and waits for ngstack's FIN.
  (c) Linux -> Linux: the same sender, in the same namespace S, to a Python
      discard server in namespace R over a second veth (S 198.18.7.2/24,
      R 198.18.7.1/24).
  In (b) and (c) the rate is the bytes sent over the time from the connection's
  establishment to the receiver's FIN (every byte was then read and ACKed);
  the receiver's own count must agree.

iperf3 is no peer here: its client needs an iperf3 server (its own control
connection), so it cannot drive ngstack's tcp-discard. The Python sender is
plain socket writes; the kernel's TCP does the work in (b) and (c) alike.

CPUs: in every leg the sender runs on one CPU and the receiver on another
(on 2 CPUs: sender on CPU 0 beside ngstack's main lcores, which sleep;
receiver on CPU 1). In (a) that is A's worker and B's worker; in (b) the
Python sender and ngstack's worker; in (c) the Python sender and the Python
receiver (taskset). Kernel softirq work is not pinned: on a veth a frame is
processed on the CPU that sent it (see the per-CPU lines).

Every veth facing af_packet, and for equality every veth of (c) too, has
tso/gso/gro/tx-checksum off: 1500-byte frames and software checksums in every
leg. Addresses are from 198.18.0.0/15 and live only in this run's namespaces.

  perf/tcp_bulk.py [--seconds 10] [--legs a,b,c] [--smoke] [--keep DIR] [--ngstack PATH]

--smoke: 2 s per leg; checks only that every leg moved bytes and that B's
mempool was full at exit (nothing leaked). A full run also fails (exit 1,
after the table) when a leg's data stopped before 90% of the trial. Leg (a)
does today: ngstack's TCP sender stalls after 2^31 bytes on one connection
(Tcb::sndq_seq() compares SND.UNA with the ISS, which turns false half the
sequence space later, so ACKs stop freeing the send queue), which at ~9
Gbit/s is ~2 s into the trial. Its Gbit/s is then over the time data moved.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
import udp_rr  # noqa: E402  (start / wait_running / finish / tail of an ngstack process)

PY = "/usr/bin/python3"
TAG = "ngtb"  # namespaces ngtb<pid>-s and ngtb<pid>-r, root-side veth ngtb<pid>-p0
EAL_PREFIX = "ngs-tcpbulk"  # EAL file prefixes ngs-tcpbulk-{asrc,acli,b}-<pid>
A_ADDR, B_ADDR = "198.18.5.1", "198.18.5.2"
NGS_B_ADDR, SENDER_B_ADDR = "198.18.6.1", "198.18.6.2"
LINUX_R_ADDR, SENDER_C_ADDR = "198.18.7.1", "198.18.7.2"
SOURCE_PORT, DISCARD_PORT = 19, 9
A_MAC, B_MAC = "02:00:00:00:05:01", "02:00:00:00:05:02"
CLIENT_LEAD_S = 0.5  # tcp-client's process runs this much before and after its trial
AF_PACKET_FRAMES = 4096  # as conf/examples/host-lab.yaml
STALL_SHARE = 0.9  # a leg whose data moved for less than this share of the trial stalled


def sh(cmd, check=True, timeout=30):
    r = subprocess.run(cmd, shell=True, text=True, capture_output=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"command failed ({r.returncode}): {cmd}\n{r.stdout}{r.stderr}")
    return r


def _on_sigterm(signum, frame):
    raise SystemExit(f"killed by signal {signum}")


# ---------------------------------------------------------------------------
# The Linux programs: a sender and a discard receiver, one connection each.
# Both print one JSON line; CPU seconds are getrusage's user + system time of
# the process (as iperf3's cpu_utilization_percent counts). Without IRQ time
# accounting (CONFIG_IRQ_TIME_ACCOUNTING) softirq ticks that interrupt the
# process count as its system time; softirq work on other CPUs does not.

SENDER = r"""
import json, resource, socket, sys, time
host, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
buf = memoryview(bytearray(b"ngstack\n" * (1 << 17)))  # 1 MiB
s = socket.create_connection((host, port), timeout=30)
s.settimeout(None)
r0 = resource.getrusage(resource.RUSAGE_SELF)
t0 = time.monotonic()
sent = 0
while time.monotonic() - t0 < secs:
    s.sendall(buf)
    sent += len(buf)
t_sent = time.monotonic()
s.shutdown(socket.SHUT_WR)
extra = 0
while True:
    d = s.recv(65536)
    if not d:
        break
    extra += len(d)
t1 = time.monotonic()
r1 = resource.getrusage(resource.RUSAGE_SELF)
s.close()
print(json.dumps({"bytes": sent, "seconds": t1 - t0, "send_seconds": t_sent - t0, "received": extra,
                  "cpu_s": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)}), flush=True)
"""

RECEIVER = r"""
import json, resource, socket, sys, time
port = int(sys.argv[1])
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", port))
ls.listen(1)
print("ready", flush=True)
c, _ = ls.accept()
r0 = resource.getrusage(resource.RUSAGE_SELF)
t0 = time.monotonic()
buf = bytearray(1 << 20)
n = 0
while True:
    k = c.recv_into(buf)
    if not k:
        break
    n += k
t1 = time.monotonic()
r1 = resource.getrusage(resource.RUSAGE_SELF)
c.close()
print(json.dumps({"bytes": n, "seconds": t1 - t0,
                  "cpu_s": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)}), flush=True)
"""


# ---------------------------------------------------------------------------
# Measurements beside the programs

def cpu_times():
    """{cpu: (user, system, softirq+irq, total)} in jiffies, from /proc/stat."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            m = re.match(r"cpu(\d+)\s+(.*)", line)
            if not m:
                continue
            v = [int(x) for x in m.group(2).split()]
            user, nice, system, idle, iowait, irq, softirq, steal = (v + [0] * 8)[:8]
            out[int(m.group(1))] = (user + nice, system, irq + softirq, user + nice + system + idle + iowait + irq
                                    + softirq + steal)
    return out


def cpu_delta(before, after):
    """Per CPU: shares of the interval in user, system and softirq/irq time."""
    res = {}
    for c in after:
        d = [a - b for a, b in zip(after[c], before.get(c, (0, 0, 0, 0)))]
        tot = d[3] or 1
        res[c] = {"user": d[0] / tot, "system": d[1] / tot, "softirq": d[2] / tot}
    return res


def cpu_text(d):
    return "; ".join(f"CPU {c}: user {v['user']:.0%} sys {v['system']:.0%} softirq {v['softirq']:.0%}"
                     for c, v in sorted(d.items()))


def softnet_drops():
    """Frames the kernel dropped at its per-CPU backlogs (all CPUs, all namespaces)."""
    with open("/proc/net/softnet_stat") as f:
        return sum(int(l.split()[1], 16) for l in f if l.strip())


def ngstack_drops(summary):
    """A summary's nonzero per-reason drops, over its workers."""
    out = {}
    for w in summary["workers"]:
        for k, v in w.get("drops", {}).items():
            if v:
                out[k] = out.get(k, 0) + v
    return out


def snmp_tcp(ns):
    """The namespace's /proc/net/snmp Tcp counters as a dict."""
    text = sh(f"ip netns exec {ns} cat /proc/net/snmp").stdout
    rows = [l.split()[1:] for l in text.splitlines() if l.startswith("Tcp:")]
    return dict(zip(rows[0], (int(x) for x in rows[1])))


def tsc_hz_guess():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1]) * 1e6
    return 0.0


# ---------------------------------------------------------------------------
# Placement

def placement():
    """(main CPU, sender CPU, receiver CPU). On 3+ CPUs each has its own; on
    2 the sender shares the first with the main lcores (which sleep)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:
        cpus = list(range(os.cpu_count()))
    if len(cpus) >= 3:
        return cpus[0], cpus[1], cpus[2]
    return cpus[0], cpus[0], cpus[-1]


def placement_text(main, snd, rcv):
    t = (f"sender on CPU {snd}, receiver on CPU {rcv}, ngstack main lcores on CPU {main} "
         f"[(a) A's worker (tcp-source) CPU {snd}, B's worker (tcp-client) CPU {rcv}; "
         f"(b) Python sender CPU {snd}, ngstack's worker (tcp-discard) CPU {rcv}; "
         f"(c) Python sender CPU {snd}, Python receiver CPU {rcv}]")
    if snd == main:
        t += "; the sender's CPU also holds the main lcores, which sleep"
    if snd == rcv:
        t += "; OVERSUBSCRIBED: sender and receiver share one CPU"
    return t


def eal_yaml(prefix, main, worker):
    lmap = {0: main, 1: worker}
    lc = ", ".join(f"{l}: {c}" for l, c in lmap.items() if l != c)
    return f"""eal:
  main_lcore: 0
  memory_mb: 512
  no_huge: true
  file_prefix: {prefix}
{f"  lcore_cpus: {{{lc}}}" + chr(10) if lc else ""}"""


# ---------------------------------------------------------------------------
# Cleanup

class Run:
    """What this run made, removed by cleanup() whatever happened."""

    def __init__(self, keep):
        self.pid = os.getpid()
        self.tmp = tempfile.mkdtemp(prefix="ngstack-tcpbulk-")
        self.keep = keep or self.tmp
        os.makedirs(self.keep, exist_ok=True)
        self.ns_s, self.ns_r = f"{TAG}{self.pid}-s", f"{TAG}{self.pid}-r"
        self.veth = f"{TAG}{self.pid}-p0"
        self.procs = []  # Popen objects still to stop
        self.prefixes = []
        self.topology = False

    def path(self, name):
        return os.path.join(self.keep, name)

    def prefix(self, leg):
        p = f"{EAL_PREFIX}-{leg}-{self.pid}"
        self.prefixes.append(p)
        return p

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                # SIGINT first: ngstack then removes its EAL runtime folder.
                p.send_signal(signal.SIGINT)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            log = getattr(p, "log", None)
            if log and not log.closed:
                log.close()
        if self.topology:
            for ns in (self.ns_s, self.ns_r):
                sh(f"ip netns del {ns}", check=False)
            sh(f"ip link del {self.veth}", check=False)
        for p in self.prefixes:
            shutil.rmtree(f"/var/run/dpdk/{p}", ignore_errors=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


def remove_stale():
    """Namespaces, veths and EAL folders of earlier runs whose process is gone."""
    for line in sh("ip netns list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(rf"{TAG}(\d+)-[sr]$", name)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            sh(f"ip netns del {name}", check=False)
    for line in sh("ip -o link show", check=False).stdout.splitlines():
        m = re.match(rf"\d+: ({TAG}(\d+)-p0)[@:]", line)
        if m and not os.path.exists(f"/proc/{m.group(2)}"):
            sh(f"ip link del {m.group(1)}", check=False)
    if os.path.isdir("/var/run/dpdk"):
        for d in os.listdir("/var/run/dpdk"):
            m = re.match(rf"{EAL_PREFIX}-\w+-(\d+)$", d)
            if m and not os.path.exists(f"/proc/{m.group(1)}"):
                shutil.rmtree(os.path.join("/var/run/dpdk", d), ignore_errors=True)


def offloads_off(ns, dev):
    pre = f"ip netns exec {ns} " if ns else ""
    sh(f"{pre}ethtool -K {dev} tx off tso off gso off gro off")


def topology_up(run):
    """S with eth0 (to the root end `veth`, for af_packet) and eth1 (to R's eth0)."""
    s, r, v = run.ns_s, run.ns_r, run.veth
    run.topology = True
    sh(f"ip netns add {s}")
    sh(f"ip netns add {r}")
    for ns in (s, r):
        sh(f"ip netns exec {ns} sysctl -qw net.ipv6.conf.all.disable_ipv6=1")
        sh(f"ip -n {ns} link set lo up")
    sh(f"ip link add {v} type veth peer name eth0 netns {s}")
    sh(f"sysctl -qw net.ipv6.conf.{v}.disable_ipv6=1")
    offloads_off("", v)
    sh(f"ip link set {v} up")
    sh(f"ip -n {s} link add eth1 type veth peer name eth0 netns {r}")
    for ns, dev in ((s, "eth0"), (s, "eth1"), (r, "eth0")):
        offloads_off(ns, dev)
    sh(f"ip -n {s} addr add {SENDER_B_ADDR}/24 dev eth0")
    sh(f"ip -n {s} addr add {SENDER_C_ADDR}/24 dev eth1")
    sh(f"ip -n {r} addr add {LINUX_R_ADDR}/24 dev eth0")
    for ns, dev in ((s, "eth0"), (s, "eth1"), (r, "eth0")):
        sh(f"ip -n {ns} link set {dev} up")


# ---------------------------------------------------------------------------
# Legs

def load(path):
    with open(path) as f:
        return json.load(f)


def service(summary, kind):
    for s in summary.get("services", []):
        if s.get("type") == kind:
            return s
    raise RuntimeError(f"no {kind} service in the summary")


def tcp_stat(summary, name):
    return (summary.get("tcp") or {}).get("stats", {}).get(name, 0)


def busy_cycles(summary):
    return sum(w["busy_cycles"] for w in summary["workers"])


def mempools_full(summary):
    pools = summary.get("mempools", [])
    return bool(pools) and all(m["full"] for m in pools), pools


def start_ngstack(run, name, config, duration, binary):
    paths = {ext: run.path(f"{name}.{ext}") for ext in ("yaml", "json", "log")}
    with open(paths["yaml"], "w") as f:
        f.write(config)
    if os.path.exists(paths["json"]):
        os.unlink(paths["json"])
    p = udp_rr.start(binary, paths["yaml"], paths["json"], paths["log"], duration)
    run.procs.append(p)
    p.json_path = paths["json"]
    return p


def leg_a(run, seconds, cpus, binary):
    main, snd, rcv = cpus
    sock = os.path.join(run.tmp, "a.sock")
    a_cfg = f"""mode: host
{eal_yaml(run.prefix("asrc"), main, snd)}ports:
  - {{name: p0, device: "net_memif0,role=server,socket={sock},id=0,mac={A_MAC}"}}
workers: {{lcores: [1]}}
host:
  interfaces:
    - {{port: p0, addresses: [{A_ADDR}/24]}}
services:
  - {{type: tcp-source, port: {SOURCE_PORT}}}
"""
    b_cfg = f"""mode: host
{eal_yaml(run.prefix("acli"), main, rcv)}ports:
  - {{name: p0, device: "net_memif0,role=client,socket={sock},id=0,mac={B_MAC}"}}
workers: {{lcores: [1]}}
host:
  interfaces:
    - {{port: p0, addresses: [{B_ADDR}/24]}}
services:
  - {{type: tcp-client, server: {A_ADDR}, port: {SOURCE_PORT}, flows: 1, duration_ms: {int(seconds * 1000)}}}
"""
    b_duration = CLIENT_LEAD_S + seconds + CLIENT_LEAD_S
    a = start_ngstack(run, "a-source", a_cfg, b_duration + udp_rr.START_TIMEOUT_S + 30, binary)
    udp_rr.wait_running(a)
    c0, sn0 = cpu_times(), softnet_drops()
    b = start_ngstack(run, "a-client", b_cfg, b_duration, binary)
    udp_rr.finish(b, b_duration + udp_rr.START_TIMEOUT_S + 30)
    c1, sn1 = cpu_times(), softnet_drops()
    udp_rr.finish(a, 30, stop=True)
    sa, sb = load(a.json_path), load(b.json_path)
    cl, src = service(sb, "tcp-client"), service(sa, "tcp-source")
    full, pools = mempools_full(sb)
    nbytes = cl["rx_bytes"]
    return {
        "leg": "a", "name": "ngstack -> ngstack (memif)",
        "bytes": nbytes, "seconds": cl["seconds"], "gbps": cl["rx_bits_per_s"] / 1e9,
        "retransmits": tcp_stat(sa, "retransmits") + tcp_stat(sb, "retransmits"),
        "retransmits_text": f"A {tcp_stat(sa, 'retransmits')} (sender), B {tcp_stat(sb, 'retransmits')}",
        "sender_cpb": busy_cycles(sa) / src["tx_bytes"] if src["tx_bytes"] else None,
        "receiver_cpb": busy_cycles(sb) / nbytes if nbytes else None,
        "cpb_how": "busy cycles of the worker / bytes",
        "tsc_hz": sb["tsc_hz"],
        "extra": (f"A sent {src['tx_bytes']} bytes, {src['connections']} connection(s), {src['resets']} reset(s); "
                  f"B connected {cl['connections']}; B mempool full at exit: {full}; A mempool full at exit: "
                  f"{mempools_full(sa)[0]}; drops: A {ngstack_drops(sa)}, B {ngstack_drops(sb)}"),
        "b_mempool_full": full, "b_mempools": pools,
        "cpu": cpu_delta(c0, c1), "softnet_drops": sn1 - sn0,
    }


def run_sender(run, host, seconds, cpu):
    cmd = ["ip", "netns", "exec", run.ns_s, "taskset", "-c", str(cpu), PY, "-c", SENDER, host, str(DISCARD_PORT),
           str(seconds)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run.procs.append(p)
    out, err = p.communicate(timeout=seconds + 60)
    if p.returncode != 0:
        raise RuntimeError(f"sender to {host} exited {p.returncode}:\n{out}{err}")
    return json.loads(out.strip().splitlines()[-1])


def leg_b(run, seconds, cpus, binary):
    main, snd, rcv = cpus
    cfg = f"""mode: host
{eal_yaml(run.prefix("b"), main, rcv)}ports:
  - {{name: p0, device: "net_af_packet0,iface={run.veth},framecnt={AF_PACKET_FRAMES}"}}
workers: {{lcores: [1]}}
host:
  interfaces:
    - {{port: p0, addresses: [{NGS_B_ADDR}/24]}}
services:
  - {{type: tcp-discard, port: {DISCARD_PORT}}}
"""
    n = start_ngstack(run, "b-discard", cfg, seconds + udp_rr.START_TIMEOUT_S + 90, binary)
    udp_rr.wait_running(n)
    snmp0, c0, sn0 = snmp_tcp(run.ns_s), cpu_times(), softnet_drops()
    snd_res = run_sender(run, NGS_B_ADDR, seconds, snd)
    c1, snmp1, sn1 = cpu_times(), snmp_tcp(run.ns_s), softnet_drops()
    udp_rr.finish(n, 30, stop=True)
    s = load(n.json_path)
    d = service(s, "tcp-discard")
    if d["rx_bytes"] != snd_res["bytes"]:
        raise RuntimeError(f"(b): the sender sent {snd_res['bytes']} bytes, tcp-discard read {d['rx_bytes']}")
    lin_rt = snmp1.get("RetransSegs", 0) - snmp0.get("RetransSegs", 0)
    hz = s["tsc_hz"]
    return {
        "leg": "b", "name": "Linux -> ngstack (veth, af_packet)",
        "bytes": snd_res["bytes"], "seconds": snd_res["seconds"], "gbps": 8 * snd_res["bytes"] / snd_res["seconds"] / 1e9,
        "retransmits": lin_rt + tcp_stat(s, "retransmits"),
        "retransmits_text": f"Linux sender {lin_rt}, ngstack {tcp_stat(s, 'retransmits')}",
        "sender_cpb": snd_res["cpu_s"] * hz / snd_res["bytes"],
        "receiver_cpb": busy_cycles(s) / d["rx_bytes"] if d["rx_bytes"] else None,
        "cpb_how": "sender: process CPU time x TSC Hz / bytes; receiver: busy cycles of the worker / bytes",
        "tsc_hz": hz,
        "extra": (f"tcp-discard read {d['rx_bytes']} bytes, {d['connections']} connection(s), {d['resets']} "
                  f"reset(s); ngstack mempool full at exit: {mempools_full(s)[0]}; ngstack drops: {ngstack_drops(s)}; "
                  f"af_packet port imissed {s['ports'][0]['imissed']}"),
        "cpu": cpu_delta(c0, c1), "softnet_drops": sn1 - sn0,
    }


def leg_c(run, seconds, cpus, tsc_hz):
    main, snd, rcv = cpus
    log_path = run.path("c-receiver.log")
    log = open(log_path, "w")
    cmd = ["ip", "netns", "exec", run.ns_r, "taskset", "-c", str(rcv), PY, "-c", RECEIVER, str(DISCARD_PORT)]
    r = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
    r.log = log
    run.procs.append(r)
    deadline = time.time() + 10
    while "ready" not in udp_rr.tail(log_path):
        if r.poll() is not None or time.time() > deadline:
            raise RuntimeError(f"(c): the receiver did not start:\n{udp_rr.tail(log_path)}")
        time.sleep(0.05)
    snmp0, c0, sn0 = snmp_tcp(run.ns_s), cpu_times(), softnet_drops()
    snd_res = run_sender(run, LINUX_R_ADDR, seconds, snd)
    c1, snmp1, sn1 = cpu_times(), snmp_tcp(run.ns_s), softnet_drops()
    r.wait(timeout=30)
    log.close()
    if r.returncode != 0:
        raise RuntimeError(f"(c): the receiver exited {r.returncode}:\n{udp_rr.tail(log_path)}")
    rec = json.loads(udp_rr.tail(log_path).strip().splitlines()[-1])
    if rec["bytes"] != snd_res["bytes"]:
        raise RuntimeError(f"(c): the sender sent {snd_res['bytes']} bytes, the receiver read {rec['bytes']}")
    lin_rt = snmp1.get("RetransSegs", 0) - snmp0.get("RetransSegs", 0)
    return {
        "leg": "c", "name": "Linux -> Linux (veth)",
        "bytes": snd_res["bytes"], "seconds": snd_res["seconds"], "gbps": 8 * snd_res["bytes"] / snd_res["seconds"] / 1e9,
        "retransmits": lin_rt, "retransmits_text": f"Linux sender {lin_rt}",
        "sender_cpb": snd_res["cpu_s"] * tsc_hz / snd_res["bytes"],
        "receiver_cpb": rec["cpu_s"] * tsc_hz / rec["bytes"],
        "cpb_how": "process CPU time (getrusage) x TSC Hz / bytes, sender and receiver",
        "tsc_hz": tsc_hz,
        "extra": f"receiver read {rec['bytes']} bytes, its CPU {rec['cpu_s']:.2f} s over {rec['seconds']:.2f} s",
        "cpu": cpu_delta(c0, c1), "softnet_drops": sn1 - sn0,
    }


# ---------------------------------------------------------------------------

def fmt_cpb(v):
    return "-" if v is None else f"{v:.2f}"


def report(results):
    print("| leg | Gbit/s | duration s | bytes | retransmits | sender cycles/B | receiver cycles/B |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| ({r['leg']}) {r['name']} | {r['gbps']:.3f} | {r['seconds']:.2f} | {r['bytes']} | {r['retransmits']} | "
              f"{fmt_cpb(r['sender_cpb'])} | {fmt_cpb(r['receiver_cpb'])} |")
    for r in results:
        print(f"({r['leg']}) retransmits: {r['retransmits_text']}; cycles/byte: {r['cpb_how']}; {r['extra']}")
        print(f"({r['leg']}) {cpu_text(r['cpu'])}; kernel backlog drops {r['softnet_drops']}")
    by = {r["leg"]: r for r in results}
    if "b" in by and "c" in by and by["c"]["gbps"] > 0:
        print(f"ratio (b)/(c) Gbit/s: {by['b']['gbps'] / by['c']['gbps']:.3f}  (ngstack vs Linux as the receiver of "
              f"the same Linux sender)")
        if by["b"]["receiver_cpb"] and by["c"]["receiver_cpb"]:
            print(f"ratio (b)/(c) receiver cycles/byte: {by['b']['receiver_cpb'] / by['c']['receiver_cpb']:.3f}")
    if "a" in by and "c" in by and by["c"]["gbps"] > 0:
        print(f"ratio (a)/(c) Gbit/s: {by['a']['gbps'] / by['c']['gbps']:.3f}  (ngstack pair over memif vs Linux pair "
              f"over veth)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="per leg")
    ap.add_argument("--legs", default="a,b,c")
    ap.add_argument("--smoke", action="store_true", help="2 s per leg; checks bytes moved and B's mempool")
    ap.add_argument("--keep", help="keep configs, logs and summaries in this folder")
    ap.add_argument("--ngstack", default=os.environ.get("NGSTACK", benchlib.NGSTACK))
    a = ap.parse_args()
    if a.smoke:
        a.seconds = 2.0
    legs = [x.strip() for x in a.legs.split(",") if x.strip()]
    if not set(legs) <= {"a", "b", "c"}:
        ap.error("--legs: a, b, c")
    signal.signal(signal.SIGTERM, _on_sigterm)
    if os.geteuid() != 0:
        print("error: run as root (namespaces, veths, af_packet)", file=sys.stderr)
        return 1
    cpus = placement()
    print(f"machine: {benchlib.machine()}")
    print(f"placement: {placement_text(*cpus)}")
    print(f"trial: {a.seconds:g} s per leg, 1 connection, MTU 1500, offloads (tso/gso/gro/tx-csum) off on every veth; "
          f"ngstack {a.ngstack}")
    c0 = cpu_times()
    time.sleep(1)
    c1 = cpu_times()
    idle = sum(1 - v["user"] - v["system"] - v["softirq"] for v in cpu_delta(c0, c1).values()) / len(c1)
    print(f"before the run: the machine was {idle:.0%} idle over 1 s (other jobs share these CPUs otherwise)")
    remove_stale()
    run = Run(a.keep)
    results, failures = [], []
    try:
        if "b" in legs or "c" in legs:
            topology_up(run)
        tsc = 0.0
        for leg in legs:
            if leg == "a":
                r = leg_a(run, a.seconds, cpus, a.ngstack)
            elif leg == "b":
                r = leg_b(run, a.seconds, cpus, a.ngstack)
            else:
                r = leg_c(run, a.seconds, cpus, tsc or tsc_hz_guess())
            tsc = tsc or r["tsc_hz"]
            results.append(r)
            print(f"({r['leg']}) {r['name']}: {r['gbps']:.3f} Gbit/s, {r['bytes']} bytes in {r['seconds']:.2f} s",
                  flush=True)
    except (RuntimeError, subprocess.TimeoutExpired, OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        run.cleanup()
    report(results)
    notes = []
    for r in results:
        if r["bytes"] <= 0:
            failures.append(f"({r['leg']}) moved no bytes")
        elif r["seconds"] < STALL_SHARE * a.seconds:
            # tcp-client's time runs to its last read: data stopped before the trial ended.
            # --smoke checks only bytes and B's mempool: there a stall is a note.
            (notes if a.smoke else failures).append(f"({r['leg']}) data stopped {r['seconds']:.2f} s into a {a.seconds:g} s trial, after "
                            f"{r['bytes']} bytes ({r['bytes'] / 2**31:.4f} x 2^31); its Gbit/s is over those "
                            f"{r['seconds']:.2f} s")
    by = {r["leg"]: r for r in results}
    if a.smoke and "a" in by and not by["a"]["b_mempool_full"]:
        failures.append(f"(a) B's mempool not full at exit: {by['a']['b_mempools']}")
    for n in notes:
        print(f"note: {n}")
    for f in failures:
        print(f"FAIL: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
