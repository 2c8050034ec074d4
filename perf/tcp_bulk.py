#!/usr/bin/python3
"""TCP bulk throughput per core: five legs in one run, each one connection
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
  (d) ngstack -> Linux over net_tap, stack.tcp.tso: true: ngstack (198.18.8.1/24,
      tcp-source on port 19) runs inside namespace T, so the tap interface
      it creates is born there; the tap's kernel side gets 198.18.8.2/24.
      A Python receiver in T connects, reads for the trial, half-closes
      (tcp-source then ends the stream with a FIN behind what it queued) and
      reads to that FIN. The rate is the bytes read over the time from the
      connection's establishment to that FIN; tcp-source's count must equal
      the receiver's, every read is checked against the stream's pattern by
      its offset (first and last 8 bytes; every 64th read byte by byte) and
      the Linux end must count no TCP checksum error. The port log must say
      TSO is enabled; the table gives tso_frames_out and data_segments_out /
      tso_frames_out (wire segments a frame; an upper bound, as data sent in
      single segments counts too).
  (e) the same with stack.tcp.tso: false (no TSO frame allowed).
  The Linux reference for ngstack as the sender is (c): Linux's TCP sender
  builds frames of several MSS as well (TCP always uses GSO), and with TSO
  and tx-checksum off on the veth the kernel cuts and checksums them in
  software just before the device: the same shape as (d), where ngstack
  hands net_tap frames of several MSS and net_tap cuts and checksums them
  in software (DPDK's GSO library) before writing each piece to the kernel.
  The pieces of (d) and (e) are 1500-byte frames like (c)'s, and the Linux
  receiver gets them without GRO in every leg. A veth with TSO on is no
  reference: its frames of 64 KB are never cut.

iperf3 is no peer here: its client needs an iperf3 server (its own control
connection), so it cannot drive ngstack's tcp-discard or tcp-source. The
Python programs are plain socket calls; the kernel's TCP does the work.

CPUs: in every leg the sender runs on one CPU and the receiver on another
(on 2 CPUs: sender on CPU 0 beside ngstack's main lcores, which sleep;
receiver on CPU 1). In (a) that is A's worker and B's worker; in (b) the
Python sender and ngstack's worker; in (c) the Python sender and the Python
receiver (taskset); in (d) and (e) ngstack's worker and the Python receiver
(taskset). Kernel softirq work is not pinned: on a veth a frame is processed
on the CPU that sent it, and a frame written to a tap is processed in the
writer's system call (see the per-CPU lines), so in (c), (d) and (e) the
receiving kernel's TCP work lands on the sender's CPU.

Every veth facing af_packet, and for equality every veth of (c) too, has
tso/gso/gro/tx-checksum off: 1500-byte frames and software checksums in every
leg. Addresses are from 198.18.0.0/15 and live only in this run's namespaces.

  perf/tcp_bulk.py [--seconds 10] [--legs a,b,c,d,e] [--smoke] [--keep DIR] [--ngstack PATH]

--smoke: 2 s per leg, legs a-d ((e) is left out to keep it short); checks
that every leg moved bytes, that B's mempool was full at exit (nothing
leaked) and that (d) sent TSO frames. (d) and (e) also fail, smoke or not,
on a byte count or pattern that does not agree, on a checksum error, on
oerrors of the tap port and on a mempool not full at exit. A full run also
fails (exit 1, after the table) when a leg's data stopped before 90% of the
trial. Leg (a) did in an earlier run: ngstack's TCP sender stalled after
2^31 bytes on one connection (Tcb::sndq_seq() compared SND.UNA with the
ISS, which turns false half the sequence space later, so ACKs stopped
freeing the send queue); the check stays.
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
import hostpair  # noqa: E402  (start / wait_running / finish / tail of an ngstack process)

PY = "/usr/bin/python3"
TAG = "ngtb"  # namespaces ngtb<pid>-{s,r,t}, root-side veth ngtb<pid>-p0, tap ngtb<pid>-tap (born in -t)
EAL_PREFIX = "ngs-tcpbulk"  # EAL file prefixes ngs-tcpbulk-{asrc,acli,b,d,e}-<pid>
A_ADDR, B_ADDR = "198.18.5.1", "198.18.5.2"
NGS_B_ADDR, SENDER_B_ADDR = "198.18.6.1", "198.18.6.2"
LINUX_R_ADDR, SENDER_C_ADDR = "198.18.7.1", "198.18.7.2"
NGS_TAP_ADDR, LINUX_TAP_ADDR = "198.18.8.1", "198.18.8.2"
SOURCE_PORT, DISCARD_PORT = 19, 9
A_MAC, B_MAC = "02:00:00:00:05:01", "02:00:00:00:05:02"
CLIENT_LEAD_S = 0.5  # tcp-client's process runs this much before and after its trial
AF_PACKET_FRAMES = 4096  # as conf/examples/host-lab.yaml
STALL_SHARE = 0.9  # a leg whose data moved for less than this share of the trial stalled
LEGS_FULL, LEGS_SMOKE = "a,b,c,d,e", "a,b,c,d"


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

# The receiver of (d) and (e): connects to tcp-source, reads for the trial,
# half-closes (tcp-source then ends the stream with a FIN behind what it has
# queued) and reads to that FIN. tcp-source's byte i is "ngstack\n"[i % 8]:
# every read is checked at its first and last 8 bytes by its offset (a lost,
# repeated or misplaced byte shifts them), and every 64th read byte by byte.
# "data_seconds": from the connection to the last read before the half-close.
TAP_RECEIVER = r"""
import json, resource, socket, sys, time
host, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
FULL_EVERY = 64
pat = b"ngstack\n" * ((1 << 17) + 2)  # any offset 0..7 plus a whole 1 MiB read
buf = bytearray(1 << 20)
mv = memoryview(buf)
s = socket.create_connection((host, port), timeout=30)
s.settimeout(0.5)
r0 = resource.getrusage(resource.RUSAGE_SELF)
t0 = time.monotonic()
n = reads = bad = whole = 0
t_data = t0
half_closed, eof = None, False
while True:
    now = time.monotonic()
    if half_closed is None and now - t0 >= secs:
        s.shutdown(socket.SHUT_WR)
        half_closed = now
        s.settimeout(5)
    elif half_closed is not None and now - half_closed > 30:
        break  # no FIN 30 s after the half-close
    try:
        k = s.recv_into(buf)
    except socket.timeout:
        continue
    if not k:
        eof = True
        break
    h = min(k, 8)
    o1, o2 = n % 8, (n + k - h) % 8
    if mv[:h] != pat[o1:o1 + h] or mv[k - h:k] != pat[o2:o2 + h]:
        bad += 1
    if reads % FULL_EVERY == 0:
        whole += 1
        if mv[:k].tobytes() != pat[o1:o1 + k]:
            bad += 1
    n += k
    reads += 1
    if half_closed is None:
        t_data = time.monotonic()
t1 = time.monotonic()
r1 = resource.getrusage(resource.RUSAGE_SELF)
s.close()
print(json.dumps({"bytes": n, "seconds": t1 - t0, "data_seconds": t_data - t0, "eof": eof, "reads": reads,
                  "bad_reads": bad, "whole_checked": whole,
                  "after_half_close_s": (t1 - half_closed) if half_closed else None,
                  "cpu_s": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)}), flush=True)
"""


# ---------------------------------------------------------------------------
# Measurements beside the programs

def cpu_times():
    """{cpu: (user, system, softirq+irq, steal, total)} in jiffies, from /proc/stat."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            m = re.match(r"cpu(\d+)\s+(.*)", line)
            if not m:
                continue
            v = [int(x) for x in m.group(2).split()]
            user, nice, system, idle, iowait, irq, softirq, steal = (v + [0] * 8)[:8]
            out[int(m.group(1))] = (user + nice, system, irq + softirq, steal, user + nice + system + idle + iowait
                                    + irq + softirq + steal)
    return out


def cpu_delta(before, after):
    """Per CPU: shares of the interval in user, system, softirq/irq and steal
    time (steal: the hypervisor ran something else on this virtual CPU)."""
    res = {}
    for c in after:
        d = [a - b for a, b in zip(after[c], before.get(c, (0, 0, 0, 0, 0)))]
        tot = d[4] or 1
        res[c] = {"user": d[0] / tot, "system": d[1] / tot, "softirq": d[2] / tot, "steal": d[3] / tot}
    return res


def cpu_text(d):
    return "; ".join(f"CPU {c}: user {v['user']:.0%} sys {v['system']:.0%} softirq {v['softirq']:.0%} "
                     f"steal {v['steal']:.0%}" for c, v in sorted(d.items()))


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
         f"(c) Python sender CPU {snd}, Python receiver CPU {rcv}; "
         f"(d), (e) ngstack's worker (tcp-source) CPU {snd}, Python receiver CPU {rcv}]")
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
        self.ns_t, self.tap = f"{TAG}{self.pid}-t", f"{TAG}{self.pid}-tap"
        self.procs = []  # Popen objects still to stop
        self.prefixes = []
        self.topology = False
        self.tap_ns = False

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
        if self.tap_ns:  # the tap goes with its namespace (and with ngstack, which holds it)
            sh(f"ip netns del {self.ns_t}", check=False)
        for p in self.prefixes:
            shutil.rmtree(f"/var/run/dpdk/{p}", ignore_errors=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


def remove_stale():
    """Namespaces, veths and EAL folders of earlier runs whose process is gone."""
    for line in sh("ip netns list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(rf"{TAG}(\d+)-[srt]$", name)
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


def tcp_stat(summary, name):
    return (summary.get("tcp") or {}).get("stats", {}).get(name, 0)


def mempools_full(summary):
    pools = summary.get("mempools", [])
    return bool(pools) and all(m["full"] for m in pools), pools


def start_ngstack(run, name, config, duration, binary, netns=None):
    """netns: run it in that namespace (`ip netns exec` execs ngstack, so the
    process is ngstack's own); the devices it creates (net_tap) are born there."""
    paths = {ext: run.path(f"{name}.{ext}") for ext in ("yaml", "json", "log")}
    with open(paths["yaml"], "w") as f:
        f.write(config)
    if os.path.exists(paths["json"]):
        os.unlink(paths["json"])
    if netns:
        log = open(paths["log"], "w")
        cmd = ["ip", "netns", "exec", netns, binary, "--config", paths["yaml"], "--duration", f"{duration:g}",
               "--json", paths["json"], "--quiet"]
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
        p.log, p.log_path, p.config = log, paths["log"], paths["yaml"]
    else:
        p = hostpair.start(binary, paths["yaml"], paths["json"], paths["log"], duration)
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
    a = start_ngstack(run, "a-source", a_cfg, b_duration + hostpair.START_TIMEOUT_S + 30, binary)
    hostpair.wait_running(a)
    c0, sn0 = cpu_times(), softnet_drops()
    b = start_ngstack(run, "a-client", b_cfg, b_duration, binary)
    hostpair.finish(b, b_duration + hostpair.START_TIMEOUT_S + 30)
    c1, sn1 = cpu_times(), softnet_drops()
    hostpair.finish(a, 30, stop=True)
    sa, sb = load(a.json_path), load(b.json_path)
    cl, src = hostpair.service(sb, "tcp-client"), hostpair.service(sa, "tcp-source")
    full, pools = mempools_full(sb)
    nbytes = cl["rx_bytes"]
    return {
        "leg": "a", "name": "ngstack -> ngstack (memif)",
        "bytes": nbytes, "seconds": cl["seconds"], "gbps": cl["rx_bits_per_s"] / 1e9,
        "retransmits": tcp_stat(sa, "retransmits") + tcp_stat(sb, "retransmits"),
        "retransmits_text": f"A {tcp_stat(sa, 'retransmits')} (sender), B {tcp_stat(sb, 'retransmits')}",
        "sender_cpb": hostpair.busy_cycles(sa) / src["tx_bytes"] if src["tx_bytes"] else None,
        "receiver_cpb": hostpair.busy_cycles(sb) / nbytes if nbytes else None,
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
    n = start_ngstack(run, "b-discard", cfg, seconds + hostpair.START_TIMEOUT_S + 90, binary)
    hostpair.wait_running(n)
    snmp0, c0, sn0 = snmp_tcp(run.ns_s), cpu_times(), softnet_drops()
    snd_res = run_sender(run, NGS_B_ADDR, seconds, snd)
    c1, snmp1, sn1 = cpu_times(), snmp_tcp(run.ns_s), softnet_drops()
    hostpair.finish(n, 30, stop=True)
    s = load(n.json_path)
    d = hostpair.service(s, "tcp-discard")
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
        "receiver_cpb": hostpair.busy_cycles(s) / d["rx_bytes"] if d["rx_bytes"] else None,
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
    while "ready" not in hostpair.tail(log_path):
        if r.poll() is not None or time.time() > deadline:
            raise RuntimeError(f"(c): the receiver did not start:\n{hostpair.tail(log_path)}")
        time.sleep(0.05)
    snmp0, c0, sn0 = snmp_tcp(run.ns_s), cpu_times(), softnet_drops()
    snd_res = run_sender(run, LINUX_R_ADDR, seconds, snd)
    c1, snmp1, sn1 = cpu_times(), snmp_tcp(run.ns_s), softnet_drops()
    r.wait(timeout=30)
    log.close()
    if r.returncode != 0:
        raise RuntimeError(f"(c): the receiver exited {r.returncode}:\n{hostpair.tail(log_path)}")
    rec = json.loads(hostpair.tail(log_path).strip().splitlines()[-1])
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


def tap_namespace_up(run):
    """T: the namespace ngstack runs in for (d) and (e), so that its tap
    interface is born there beside the Linux receiver."""
    run.tap_ns = True
    sh(f"ip netns add {run.ns_t}")
    for k in ("all", "default"):  # default: the tap made later has no IPv6 either
        sh(f"ip netns exec {run.ns_t} sysctl -qw net.ipv6.conf.{k}.disable_ipv6=1")
    sh(f"ip -n {run.ns_t} link set lo up")


def csum_errors(ns):
    r = sh(f"ip netns exec {ns} nstat -az TcpInCsumErrors", check=False)
    for line in r.stdout.splitlines():
        if line.startswith("TcpInCsumErrors"):
            return int(line.split()[1])
    return 0


def leg_tap(run, leg, seconds, cpus, binary):
    """(d) tso true, (e) tso false: tcp-source -> a Linux receiver over net_tap."""
    main, snd, rcv = cpus
    tso = leg == "d"
    cfg = f"""mode: host
{eal_yaml(run.prefix(leg), main, snd)}ports:
  - {{name: p0, device: "net_tap0,iface={run.tap}"}}
workers: {{lcores: [1]}}
host:
  interfaces:
    - {{port: p0, addresses: [{NGS_TAP_ADDR}/24]}}
services:
  - {{type: tcp-source, port: {SOURCE_PORT}}}
stack: {{tcp: {{tso: {"true" if tso else "false"}}}}}
"""
    n = start_ngstack(run, f"{leg}-source", cfg, seconds + hostpair.START_TIMEOUT_S + 90, binary, netns=run.ns_t)
    hostpair.wait_running(n)
    sh(f"ip -n {run.ns_t} addr add {LINUX_TAP_ADDR}/24 dev {run.tap}")
    sh(f"ip -n {run.ns_t} link set {run.tap} up")
    cs0, c0, sn0 = csum_errors(run.ns_t), cpu_times(), softnet_drops()
    cmd = ["ip", "netns", "exec", run.ns_t, "taskset", "-c", str(rcv), PY, "-c", TAP_RECEIVER, NGS_TAP_ADDR,
           str(SOURCE_PORT), str(seconds)]
    r = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run.procs.append(r)
    out, err = r.communicate(timeout=seconds + 90)
    c1, sn1, cs1 = cpu_times(), softnet_drops(), csum_errors(run.ns_t)
    hostpair.finish(n, 30, stop=True)
    s = load(n.json_path)
    if r.returncode != 0:
        raise RuntimeError(f"({leg}): the receiver exited {r.returncode}:\n{out}{err}")
    rec = json.loads(out.strip().splitlines()[-1])
    src = hostpair.service(s, "tcp-source")
    st = (s.get("tcp") or {}).get("stats", {})
    port = s["ports"][0]
    evidence = (f"receiver {rec}; tcp-source sent {src['tx_bytes']} bytes; port {port}; "
                f"tcp.stats {json.dumps({k: v for k, v in st.items() if v})}; see {n.log_path}")
    if not rec["eof"]:
        raise RuntimeError(f"({leg}): no FIN from tcp-source within 30 s of the receiver's half-close: {evidence}")
    if rec["bytes"] != src["tx_bytes"]:
        raise RuntimeError(f"({leg}): tcp-source sent {src['tx_bytes']} bytes, the receiver read {rec['bytes']}: "
                           f"{evidence}")
    if rec["bad_reads"]:
        raise RuntimeError(f"({leg}): {rec['bad_reads']} reads not in tcp-source's pattern: {evidence}")
    if cs1 - cs0:
        raise RuntimeError(f"({leg}): the Linux end counted {cs1 - cs0} TCP checksum errors: {evidence}")
    log = hostpair.tail(n.log_path, 1 << 20)
    enabled = "TCP segmentation offload enabled" in log
    if enabled != tso or (not tso and st.get("tso_frames_out", 0)):
        raise RuntimeError(f"({leg}): tso {tso}, but the port log says enabled: {enabled}, tso_frames_out "
                           f"{st.get('tso_frames_out', 0)}: {evidence}")
    hz = s["tsc_hz"]
    frames, segs = st.get("tso_frames_out", 0), st.get("data_segments_out", 0)
    full, pools = mempools_full(s)
    return {
        "leg": leg, "name": f"ngstack -> Linux (net_tap, TSO {'on' if tso else 'off'})",
        "bytes": rec["bytes"], "seconds": rec["seconds"], "active_seconds": rec["data_seconds"],
        "gbps": 8 * rec["bytes"] / rec["seconds"] / 1e9,
        "retransmits": tcp_stat(s, "retransmits"), "retransmits_text": f"ngstack sender {tcp_stat(s, 'retransmits')}",
        "sender_cpb": hostpair.busy_cycles(s) / src["tx_bytes"] if src["tx_bytes"] else None,
        "receiver_cpb": rec["cpu_s"] * hz / rec["bytes"] if rec["bytes"] else None,
        "cpb_how": "sender: busy cycles of ngstack's worker / bytes; receiver: process CPU time x TSC Hz / bytes",
        "tsc_hz": hz, "tso_frames": frames, "segs_per_frame": segs / frames if frames else None,
        "extra": (f"tcp-source sent {src['tx_bytes']} bytes, {src['connections']} connection(s), {src['resets']} "
                  f"reset(s); receiver read {rec['bytes']} bytes in {rec['reads']} reads, checked by offset "
                  f"({rec['whole_checked']} of them byte by byte): 0 wrong; tcp-source's FIN "
                  f"{rec['after_half_close_s']:.3f} s after the half-close; receiver CPU {rec['cpu_s']:.2f} s; "
                  f"tso_frames_out {frames}, data_segments_out {segs} ({rec['bytes'] / segs if segs else 0:.0f} "
                  f"payload bytes a wire segment); port tx_packets {port.get('tx_packets')} oerrors "
                  f"{port.get('oerrors')} imissed {port.get('imissed')}; ngstack mempool full at exit: {full}; "
                  f"drops: {ngstack_drops(s)}; worker busy {s['workers'][0]['busy_fraction']:.0%} of its cycles; "
                  f"Linux TcpInCsumErrors {cs1 - cs0}"),
        "oerrors": port.get("oerrors", 0), "mempool_full": full, "mempools": pools,
        "cpu": cpu_delta(c0, c1), "softnet_drops": sn1 - sn0,
    }


# ---------------------------------------------------------------------------

def fmt_cpb(v):
    return "-" if v is None else f"{v:.2f}"


def report(results):
    print("| leg | Gbit/s | duration s | bytes | retransmits | sender cycles/B | receiver cycles/B | TSO frames out "
          "| wire segments/TSO frame |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        frames = r.get("tso_frames")
        spf = r.get("segs_per_frame")
        print(f"| ({r['leg']}) {r['name']} | {r['gbps']:.3f} | {r['seconds']:.2f} | {r['bytes']} | {r['retransmits']} | "
              f"{fmt_cpb(r['sender_cpb'])} | {fmt_cpb(r['receiver_cpb'])} | {'-' if frames is None else frames} | "
              f"{'-' if spf is None else f'{spf:.2f}'} |")
    for r in results:
        print(f"({r['leg']}) retransmits: {r['retransmits_text']}; cycles/byte: {r['cpb_how']}; {r['extra']}")
        print(f"({r['leg']}) {cpu_text(r['cpu'])}; kernel backlog drops {r['softnet_drops']}")
    if any(r["leg"] == "d" for r in results):
        print("(d) wire segments/TSO frame: data_segments_out / tso_frames_out (data segments sent as single "
              "frames count too: an upper bound)")
    by = {r["leg"]: r for r in results}

    def ratio(x, y, what, sides=()):
        if x in by and y in by and by[y]["gbps"] > 0:
            print(f"ratio ({x})/({y}) Gbit/s: {by[x]['gbps'] / by[y]['gbps']:.3f}  ({what})")
            for side in sides:
                k = f"{side}_cpb"
                if by[x][k] and by[y][k]:
                    print(f"ratio ({x})/({y}) {side} cycles/byte: {by[x][k] / by[y][k]:.3f}")

    ratio("b", "c", "ngstack vs Linux as the receiver of the same Linux sender", ["receiver"])
    ratio("a", "c", "ngstack pair over memif vs Linux pair over veth")
    ratio("d", "e", "ngstack as the sender to Linux over net_tap, TSO on vs off", ["sender"])
    ratio("d", "c", "ngstack with TSO over net_tap vs Linux over veth, each sending to a Linux receiver",
          ["sender"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="per leg")
    ap.add_argument("--legs", help=f"default {LEGS_FULL}; with --smoke {LEGS_SMOKE}")
    ap.add_argument("--smoke", action="store_true",
                    help="2 s per leg, legs a-d; checks bytes moved, B's mempool and (d)'s TSO frames")
    ap.add_argument("--keep", help="keep configs, logs and summaries in this folder")
    ap.add_argument("--ngstack", default=os.environ.get("NGSTACK", benchlib.NGSTACK))
    a = ap.parse_args()
    if a.smoke:
        a.seconds = 2.0
    legs = [x.strip() for x in (a.legs or (LEGS_SMOKE if a.smoke else LEGS_FULL)).split(",") if x.strip()]
    if not set(legs) <= set("abcde"):
        ap.error("--legs: a, b, c, d, e")
    signal.signal(signal.SIGTERM, _on_sigterm)
    if os.geteuid() != 0:
        print("error: run as root (namespaces, veths, af_packet)", file=sys.stderr)
        return 1
    cpus = placement()
    print(f"machine: {benchlib.machine()}")
    print(f"placement: {placement_text(*cpus)}")
    print(f"trial: {a.seconds:g} s per leg, 1 connection, MTU 1500, offloads (tso/gso/gro/tx-csum) off on every veth; "
          f"(d)/(e): net_tap, whose pieces are cut and checksummed in software by the PMD; ngstack {a.ngstack}")
    c0 = cpu_times()
    time.sleep(1)
    c1 = cpu_times()
    idle = max(0.0, sum(1 - v["user"] - v["system"] - v["softirq"] - v["steal"] for v in cpu_delta(c0, c1).values())
               / len(c1))
    print(f"before the run: the machine was {idle:.0%} idle over 1 s (other jobs share these CPUs otherwise)")
    remove_stale()
    run = Run(a.keep)
    results, failures = [], []
    try:
        if "b" in legs or "c" in legs:
            topology_up(run)
        if "d" in legs or "e" in legs:
            tap_namespace_up(run)
        tsc = 0.0
        for leg in legs:
            if leg == "a":
                r = leg_a(run, a.seconds, cpus, a.ngstack)
            elif leg == "b":
                r = leg_b(run, a.seconds, cpus, a.ngstack)
            elif leg in ("d", "e"):
                r = leg_tap(run, leg, a.seconds, cpus, a.ngstack)
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
        elif r.get("active_seconds", r["seconds"]) < STALL_SHARE * a.seconds:
            # tcp-client's time runs to its last read: data stopped before the trial ended.
            # (d)/(e): the receiver's last read before its half-close.
            # --smoke checks only bytes and B's mempool: there a stall is a note.
            act = r.get("active_seconds", r["seconds"])
            (notes if a.smoke else failures).append(f"({r['leg']}) data stopped {act:.2f} s into a {a.seconds:g} s trial, after "
                            f"{r['bytes']} bytes ({r['bytes'] / 2**31:.4f} x 2^31); its Gbit/s is over "
                            f"{r['seconds']:.2f} s")
        if r["leg"] in ("d", "e"):
            if r["oerrors"]:
                failures.append(f"({r['leg']}) the net_tap port counted {r['oerrors']} oerrors")
            if not r["mempool_full"]:
                failures.append(f"({r['leg']}) ngstack's mempool not full at exit: {r['mempools']}")
            if r["leg"] == "d" and not r["tso_frames"]:
                failures.append("(d) no TSO frame sent (tso_frames_out 0)")
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
