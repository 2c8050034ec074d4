"""Helpers for the TCP integration tests (test_tcp_linux.py,
test_tcp_impairment.py): the ngstack config of a TCP host, a Linux stand-in
for ngstack (Linux TCP in a namespace of its own at ngstack's address, with
the same three services), the Linux TCP servers and clients those tests run
in namespaces, and the TCP counters of a Linux namespace under the names of
ngstack's `tcp.stats`.

As a program (run by the tests inside namespaces with /usr/bin/python3):

  tcp_peers.py serve [--echo PORT] [--discard PORT] [--source PORT:BYTES]
      Linux TCP servers with ngstack's services' behaviour: echo (every byte
      back; on the peer's FIN, everything echoed, then FIN), discard (reads
      and drops; on the peer's FIN, FIN), source (on accept, BYTES bytes,
      then FIN). Prints "ready" once listening; on SIGINT or SIGTERM prints
      a summary shaped like ngstack's (`services`, `tcp.stats`) and exits 0.
  tcp_peers.py half-close ADDR PORT BYTES
      Connects with a small receive buffer, queues BYTES bytes and FIN
      before reading anything, then reads to EOF: the echo must deliver
      everything after the FIN came, then close. Prints JSON.
  tcp_peers.py refused ADDR PORT TRIES
      Connects TRIES times to a port with no listener; prints one word a try
      (refused, timeout, connected, or the error's name).
  tcp_peers.py send ADDR PORT BYTES
      Sends BYTES bytes, shuts the write side, waits for the server's FIN.
  tcp_peers.py receive ADDR PORT
      Reads to EOF; prints the byte count and how the stream ended.
  tcp_peers.py impair DEV --loss P --duplicate P --reorder P --delay-ms MS --limit N
      netem in user space, for kernels without sch_netem: reads every packet
      the namespace routes into tun device DEV, and writes it back (the
      kernel then forwards it on) as netem would have sent it: lost with
      probability P%, else duplicated with P%, sent at once with P%
      (reordered ahead of the others) and else after MS ms; at most N
      packets held. Prints "ready"; on SIGINT or SIGTERM prints its counters.
      --flow-delay-ms LO:HI in place of --delay-ms: each TCP/UDP flow its own
      delay, the same both ways and for each of its packets (so nothing is
      reordered), spread evenly over [LO, HI] by a hash of its endpoints.

The module's functions serve the tests: the command line (`--workers`,
`--server`), tcp_host_config, LinuxServer, standin_namespace, linux_tcp_stats.
"""
import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
SELF = os.path.abspath(__file__)
PY = "/usr/bin/python3"
NGSTACK_ADDR = "198.18.1.1"


# ----------------------------------------------------------------- test side

def test_args(argv=None):
    """The tests' command line: `--workers 1|2` (as ngslab.workers_arg) and
    `--server ngstack|linux` (default ngstack; linux: Linux TCP at ngstack's
    address instead, to develop and validate a test before ngstack's TCP
    exists), and for the impairment test `--impair auto|netem|tun`.
    ngslab.workers_arg refuses any other argument, hence this."""
    p = argparse.ArgumentParser()
    p.add_argument("--workers", type=int, choices=(1, 2), default=1)
    p.add_argument("--server", choices=("ngstack", "linux"), default="ngstack")
    p.add_argument("--impair", choices=("auto", "netem", "tun"), default="auto",
                   help="test_tcp_impairment: tc netem, or its user-space stand-in (auto: netem where the "
                        "kernel has it)")
    return p.parse_args(sys.argv[1:] if argv is None else argv)


TCP_SERVICES = ("{type: tcp-echo, port: 7}", "{type: tcp-discard, port: 9}")


def tcp_host_config(lab, prefix, workers=1, tcp_mode=None, locking="group", services=TCP_SERVICES,
                    routes=(), tcp=None):
    """ngstack as the end host 198.18.1.1/24 on p0 (net_af_packet on the
    lab's p0), as ngslab.host_lab_config with the TCP services and keys:
    `services` (flow mappings), `routes` ((prefix, via) pairs: the host
    section's routes), `tcp` (dict: the stack.tcp keys), the connection
    table under `locking`, and tcp dispatched in `tcp_mode` when set.
    Two workers: p0 with two queue pairs, lcore 1 polls p0/0, lcore 2 p0/1."""
    from ngslab import af_packet, workers_yaml
    lcore_cpus, workers_text = workers_yaml(workers, {1: ["p0/0"], 2: ["p0/1"]})
    dispatch = f"dispatch: {{protocols: {{tcp: {{mode: {tcp_mode}}}}}}}\n" if tcp_mode else ""
    routes_text = ("  routes:\n" + "".join(f"    - {{prefix: {p}, via: {v}}}\n" for p, v in routes)) if routes else ""
    services_text = "".join(f"  - {svc}\n" for svc in services)
    tcp_text = (", tcp: {" + ", ".join(f"{k}: {v}" for k, v in tcp.items()) + "}") if tcp else ""
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
    - {{port: p0, addresses: [{NGSTACK_ADDR}/24]}}
{routes_text}services:
{services_text}stack: {{locking: {locking}{tcp_text}}}
{dispatch}"""


def sh(cmd, check=True, timeout=60):
    r = subprocess.run(cmd, shell=True, text=True, capture_output=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"command failed ({r.returncode}): {cmd}\n{r.stdout}{r.stderr}")
    return r


@contextlib.contextmanager
def standin_namespace(lab, routes=()):
    """Linux in ngstack's place: the lab's root-side p0 moved into a
    namespace of its own (<tag>-s) as 198.18.1.1/24, every offload off,
    `routes` ((prefix, via) pairs) added. Yields the namespace; removes it
    (and with it the veth pair) on the way out, also on failure. A test
    killed outright leaves it to ngslab.remove_stale (<tag> holds the pid)."""
    ns = f"{lab.tag}-s"
    port = lab.port(0)
    try:
        sh(f"ip netns add {ns}")
        sh(f"ip link set {port} netns {ns}")
        sh(f"ip netns exec {ns} sysctl -qw net.ipv6.conf.all.disable_ipv6=1")
        sh(f"ip netns exec {ns} ethtool -K {port} tx off tso off gso off gro off")
        sh(f"ip -n {ns} addr add {NGSTACK_ADDR}/24 dev {port}")
        sh(f"ip -n {ns} link set {port} up")
        sh(f"ip -n {ns} link set lo up")
        for prefix, via in routes:
            sh(f"ip -n {ns} route add {prefix} via {via}")
        yield ns
    finally:
        sh(f"ip netns del {ns}", check=False)


class _Peer:
    """A command of tcp_peers.py run in namespace `ns` until stopped, with
    the interface of ngslab.Ngstack that the tests use (wait_running, stop,
    summary, output): it prints "ready", and its summary (JSON) at SIGINT."""

    name = "peer"

    def __init__(self, ns, args):
        self.ns = ns
        self.dir = tempfile.mkdtemp(prefix="tcp-peers-")
        args = [PY, SELF] + args
        self.stdout = open(os.path.join(self.dir, "stdout"), "w+")
        self.stderr = open(os.path.join(self.dir, "stderr"), "w+")
        cmd = ["ip", "netns", "exec", ns] + args
        self.proc = subprocess.Popen(cmd, stdout=self.stdout, stderr=self.stderr, start_new_session=True)
        self._summary = None

    def _text(self, f):
        f.flush()
        with open(f.name) as g:
            return g.read()

    def output(self):
        return f"--- {self.name} in {self.ns}: stdout\n{self._text(self.stdout)}--- stderr\n{self._text(self.stderr)}"

    def wait_running(self, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early ({self.proc.returncode}):\n{self.output()}")
            if "ready" in self._text(self.stdout):
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start in time:\n" + self.output())

    def stop(self, timeout=10):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise RuntimeError(f"{self.name} did not stop on SIGINT:\n" + self.output())
        text = self._text(self.stdout)
        self._summary = json.loads(text.split("ready\n", 1)[1]) if "ready\n" in text else None
        return self.proc.returncode

    def summary(self):
        if self._summary is None:
            raise RuntimeError(f"no summary from the {self.name}:\n" + self.output())
        return self._summary

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.stdout.close()
        self.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return False


class LinuxServer(_Peer):
    """`tcp_peers.py serve` (Linux TCP echo, discard, source) in `ns`."""

    name = "linux server"

    def __init__(self, ns, echo=None, discard=None, source=None):
        args = ["serve"]
        if echo:
            args += ["--echo", str(echo)]
        if discard:
            args += ["--discard", str(discard)]
        if source:
            args += ["--source", f"{source[0]}:{source[1]}"]
        super().__init__(ns, args)


class Impairer(_Peer):
    """`tcp_peers.py impair` on tun device `dev` of `ns` (see tun_impairer)."""

    name = "impairer"

    def __init__(self, ns, dev, loss, duplicate, reorder, delay_ms, limit, flow_delay_ms=None):
        extra = ["--flow-delay-ms", f"{flow_delay_ms[0]}:{flow_delay_ms[1]}"] if flow_delay_ms else []
        super().__init__(ns, ["impair", dev, "--loss", str(loss), "--duplicate", str(duplicate),
                              "--reorder", str(reorder), "--delay-ms", str(delay_ms), "--limit", str(limit)] + extra)


def run_in(ns, *args, timeout=60):
    """`tcp_peers.py ARGS` in namespace `ns`; returns the CompletedProcess."""
    return subprocess.run(["ip", "netns", "exec", ns, PY, SELF, *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def random_file(path, size):
    """`size` random bytes in `path`; returns their sha256 (hex)."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(left, 1 << 20))
            h.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    return h.hexdigest()


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                return h.hexdigest()
            h.update(chunk)


def nc_echo(ns, addr, port, src, dst, timeout):
    """`nc -N` from namespace `ns` to an echo server: sends file `src`,
    writing what comes back to `dst`, both directions at once (nc's poll
    loop), then shuts its write side at EOF and runs until the server closes.
    Returns (exit status, seconds, nc's stderr); exit 124: the timeout."""
    t0 = time.monotonic()
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        # A session of its own: killed as a group (timeout and nc) if the
        # test stops here (SIGTERM, an exception).
        p = subprocess.Popen(["ip", "netns", "exec", ns, "timeout", str(timeout), "nc", "-N", addr, str(port)],
                             stdin=fin, stdout=fout, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            _, err = p.communicate(timeout=timeout + 10)
        except BaseException:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            raise
    return p.returncode, time.monotonic() - t0, err


# ngstack tcp.stats name: (/proc/net/snmp or /proc/net/netstat group, Linux counter)
LINUX_TCP_STATS = {
    "segments_in": ("Tcp", "InSegs"),
    "segments_out": ("Tcp", "OutSegs"),
    "retransmits": ("Tcp", "RetransSegs"),
    "rst_out": ("Tcp", "OutRsts"),
    "accepts": ("Tcp", "PassiveOpens"),
    "connects": ("Tcp", "ActiveOpens"),
    "fast_retransmits": ("TcpExt", "TCPFastRetrans"),
    "rto_expired": ("TcpExt", "TCPTimeouts"),
    "sack_recoveries": ("TcpExt", "TCPSackRecovery"),
    "ooo_queued": ("TcpExt", "TCPOFOQueue"),
    "ooo_dropped": ("TcpExt", "TCPOFODrop"),
}


def _proc_net_tables(texts):
    tables = {}
    for text in texts:
        lines = text.splitlines()
        for names, values in zip(lines[::2], lines[1::2]):
            group, names = names.split(":", 1)
            tables.setdefault(group, {}).update(zip(names.split(), map(int, values.split(":", 1)[1].split())))
    return tables


def linux_tcp_stats(ns=None):
    """The TCP counters of namespace `ns` (None: this process's own), under
    the names of ngstack's tcp.stats (LINUX_TCP_STATS). The counters are per
    namespace, so a namespace a test made counts only that test's segments."""
    if ns is None:
        texts = [open(f"/proc/net/{f}").read() for f in ("snmp", "netstat")]
    else:
        texts = [sh(f"ip netns exec {ns} cat /proc/net/{f}").stdout for f in ("snmp", "netstat")]
    tables = _proc_net_tables(texts)
    return {name: tables.get(group, {}).get(counter, 0) for name, (group, counter) in LINUX_TCP_STATS.items()}


def tc_netem(ns, dev, spec):
    sh(f"ip netns exec {ns} tc qdisc replace dev {dev} root netem {spec}")


def netem_available(ns, dev):
    """Whether the kernel has netem: tried on `dev` (in `ns`), removed again."""
    r = sh(f"ip netns exec {ns} tc qdisc replace dev {dev} root netem delay 1ms", check=False)
    if r.returncode != 0:
        return False
    sh(f"ip netns exec {ns} tc qdisc del dev {dev} root", check=False)
    return True


TUN_TABLE = 100


def tun_impairer(router, ifaces, loss, duplicate, reorder, delay_ms, limit, dev="imp0"):
    """netem's loss, duplication, delay and reordering in user space
    (`tcp_peers.py impair`), for a kernel without sch_netem: in namespace
    `router`, every packet that comes in on one of `ifaces` to be forwarded
    is routed (policy table TUN_TABLE) into tun device `dev`, impaired, and
    written back into `dev`, from where the main table forwards it on. Each
    packet crosses the impairer once, as with netem on every egress. Returns
    the started LinuxServer-like process (wait_running, stop, summary)."""
    sh(f"ip -n {router} tuntap add dev {dev} mode tun")
    sh(f"ip -n {router} link set {dev} txqueuelen 10000 up")
    for conf in ("all", "default", dev) + tuple(ifaces):
        sh(f"ip netns exec {router} sysctl -qw net.ipv4.conf.{conf}.rp_filter=0")
    sh(f"ip -n {router} route add default dev {dev} table {TUN_TABLE}")
    for iface in ifaces:
        sh(f"ip -n {router} rule add iif {iface} lookup {TUN_TABLE} pref 100")
    return Impairer(router, dev, loss, duplicate, reorder, delay_ms, limit)


def tc_stats(ns, dev):
    """(packets sent, dropped) of dev's root qdisc."""
    out = sh(f"ip netns exec {ns} tc -s qdisc show dev {dev}").stdout
    words = out.replace(",", " ").replace("(", " ").replace(")", " ").split()
    sent = int(words[words.index("Sent") + 3]) if "Sent" in words else 0
    dropped = int(words[words.index("dropped") + 1]) if "dropped" in words else 0
    return sent, dropped


# --------------------------------------------------------------- peers side

class _Counters:
    def __init__(self, type_, port):
        self.lock = threading.Lock()
        self.v = {"type": type_, "address": "0.0.0.0", "port": port, "accepts": 0, "rx_bytes": 0, "tx_bytes": 0,
                  "closed": 0, "errors": 0}

    def add(self, **kw):
        with self.lock:
            for k, n in kw.items():
                self.v[k] += n


def _echo(conn, c):
    while True:
        data = conn.recv(65536)
        if not data:
            conn.shutdown(socket.SHUT_WR)
            return
        c.add(rx_bytes=len(data))
        conn.sendall(data)
        c.add(tx_bytes=len(data))


def _discard(conn, c):
    while True:
        data = conn.recv(65536)
        if not data:
            conn.shutdown(socket.SHUT_WR)
            return
        c.add(rx_bytes=len(data))


def _source(nbytes):
    block = bytes(range(256)) * 256

    def serve(conn, c):
        left = nbytes
        while nbytes == 0 or left:
            n = len(block) if nbytes == 0 else min(left, len(block))
            conn.sendall(block[:n])
            c.add(tx_bytes=n)
            left -= n
        conn.shutdown(socket.SHUT_WR)
        # Wait for the peer's FIN (or a reset) before closing, so that no
        # unread byte turns the close into a reset.
        conn.settimeout(10)
        with contextlib.suppress(OSError):
            while conn.recv(65536):
                pass
    return serve


def _listen(port, handler, c):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port))
    ls.listen(128)

    def conn_thread(conn):
        try:
            handler(conn, c)
        except OSError:
            c.add(errors=1)
        finally:
            conn.close()
            c.add(closed=1)

    def accept_loop():
        while True:
            conn, _ = ls.accept()
            c.add(accepts=1)
            threading.Thread(target=conn_thread, args=(conn,), daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()


def serve(a):
    services = []
    for port, type_, handler in ([(a.echo, "tcp-echo", _echo)] if a.echo else []) + \
            ([(a.discard, "tcp-discard", _discard)] if a.discard else []) + \
            ([(int(a.source.split(":")[0]), "tcp-source", _source(int(a.source.split(":")[1])))] if a.source else []):
        c = _Counters(type_, port)
        if type_ == "tcp-source":
            c.v["bytes"] = int(a.source.split(":")[1])
        _listen(port, handler, c)
        services.append(c)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    while not stop.wait(0.2):
        pass
    summary = {"server": "linux", "services": [dict(c.v) for c in services],
               "tcp": {"stats": linux_tcp_stats(), "connections": []}}
    print(json.dumps(summary), flush=True)


def half_close(a):
    """Queue everything and FIN before reading: with a 16 KiB receive
    buffer and 1 MiB of send buffer, the FIN reaches the echo while most of
    its answer is still to come."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    s.settimeout(20)
    s.connect((a.addr, a.port))
    data = os.urandom(a.bytes)
    t0 = time.monotonic()
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    time.sleep(0.5)  # the FIN reaches the echo long before we read its answer
    got, end = bytearray(), "eof"
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except OSError as e:
        end = type(e).__name__
    print(json.dumps({"sent": len(data), "received": len(got), "intact": bytes(got) == data, "end": end,
                      "seconds": round(time.monotonic() - t0, 3)}))


def refused(a):
    out = []
    for _ in range(a.tries):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(3)
        try:
            s.connect((a.addr, a.port))
            out.append("connected")
        except ConnectionRefusedError:
            out.append("refused")
        except socket.timeout:
            out.append("timeout")
        except OSError as e:
            out.append(type(e).__name__)
        finally:
            s.close()
    print(" ".join(out))


def send(a):
    s = socket.create_connection((a.addr, a.port), timeout=20)
    block = os.urandom(1 << 16)
    left, t0 = a.bytes, time.monotonic()
    while left:
        n = min(left, len(block))
        s.sendall(block[:n])
        left -= n
    s.shutdown(socket.SHUT_WR)
    end = "eof"
    try:
        extra = s.recv(65536)
        if extra:
            end = "data"
    except OSError as e:
        end = type(e).__name__
    print(json.dumps({"sent": a.bytes, "end": end, "seconds": round(time.monotonic() - t0, 3)}))


def receive(a):
    s = socket.create_connection((a.addr, a.port), timeout=20)
    n, end, t0 = 0, "eof", time.monotonic()
    try:
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            n += len(chunk)
    except OSError as e:
        end = type(e).__name__
    print(json.dumps({"received": n, "end": end, "seconds": round(time.monotonic() - t0, 3)}))


TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x400454CA, 0x0001, 0x1000


def flow_delay(pkt, lo, hi):
    """The delay (seconds) of an IPv4 packet's flow: a point of [lo, hi]
    chosen by a hash of its two endpoints, in either order (so both
    directions get the same); lo for anything that is not TCP or UDP."""
    import zlib
    if len(pkt) < 20 or pkt[0] >> 4 != 4 or pkt[9] not in (6, 17):
        return lo
    ihl = (pkt[0] & 15) * 4
    if len(pkt) < ihl + 4:
        return lo
    a, b = pkt[12:16] + pkt[ihl:ihl + 2], pkt[16:20] + pkt[ihl + 2:ihl + 4]
    key = min(a, b) + max(a, b) + bytes([pkt[9]])
    return lo + (hi - lo) * (zlib.crc32(key) % 10007) / 10006


def impair(a):
    import fcntl
    import heapq
    import random
    import select
    import struct
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", a.dev.encode(), IFF_TUN | IFF_NO_PI))
    loss, dup, reorder, delay = a.loss / 100, a.duplicate / 100, a.reorder / 100, a.delay_ms / 1000
    spread = tuple(float(x) / 1000 for x in a.flow_delay_ms.split(":")) if a.flow_delay_ms else None
    c = dict.fromkeys(("packets", "lost", "duplicated", "reordered", "delayed", "limit_dropped", "sent",
                       "write_errors"), 0)
    held, seq = [], 0  # heap of (due, seq, packet)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    rnd = random.Random()

    def send(pkt):
        try:
            os.write(fd, pkt)
            c["sent"] += 1
        except OSError:
            c["write_errors"] += 1

    print("ready", flush=True)
    while not stop.is_set():
        now = time.monotonic()
        wait = min(max(held[0][0] - now, 0), 0.2) if held else 0.2
        try:
            readable = select.select([fd], [], [], wait)[0]
        except InterruptedError:
            continue
        for _ in range(256 if readable else 0):
            try:
                pkt = os.read(fd, 65536)
            except BlockingIOError:
                break
            c["packets"] += 1
            if rnd.random() < loss:
                c["lost"] += 1
                continue
            copies = 1
            if rnd.random() < dup:
                c["duplicated"] += 1
                copies = 2
            for _ in range(copies):
                if rnd.random() < reorder:
                    c["reordered"] += 1
                    send(pkt)
                elif len(held) >= a.limit:
                    c["limit_dropped"] += 1
                else:
                    c["delayed"] += 1
                    seq += 1
                    d = flow_delay(pkt, *spread) if spread else delay
                    heapq.heappush(held, (time.monotonic() + d, seq, pkt))
        now = time.monotonic()
        while held and held[0][0] <= now:
            send(heapq.heappop(held)[2])
    print(json.dumps(c), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--echo", type=int)
    s.add_argument("--discard", type=int)
    s.add_argument("--source", help="PORT:BYTES")
    s.set_defaults(fn=serve)
    for name, fn, extra in (("half-close", half_close, "bytes"), ("refused", refused, "tries"),
                            ("send", send, "bytes"), ("receive", receive, None)):
        s = sub.add_parser(name)
        s.add_argument("addr")
        s.add_argument("port", type=int)
        if extra:
            s.add_argument(extra, type=int)
        s.set_defaults(fn=fn)
    s = sub.add_parser("impair")
    s.add_argument("dev")
    for opt in ("--loss", "--duplicate", "--reorder", "--delay-ms"):
        s.add_argument(opt, type=float, default=0)
    s.add_argument("--limit", type=int, default=1000)
    s.add_argument("--flow-delay-ms", help="LO:HI: a delay per flow (in place of --delay-ms)")
    s.set_defaults(fn=impair)
    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()


def nginx_conf(d, addr, port, body="ngstack load test\n", listen_extra="", keepalive_requests=100000):
    """An nginx.conf for one worker process serving `body` on addr:port, its
    pid, error log, temp paths and access log (one line per request:
    $msec $request_uri $status $bytes_sent $request_length) all in `d`."""
    body = body.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return f"""worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 4096; }}
http {{
  log_format t '$msec $request_uri $status $bytes_sent $request_length';
  access_log {d}/access.log t;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  keepalive_requests {keepalive_requests};
  server {{
    listen {addr}:{port}{listen_extra};
    location / {{ default_type text/plain; return 200 "{body}"; }}
  }}
}}
"""


def stop_nginx(proc):
    """Stops an nginx started in the foreground (daemon off) gracefully, so
    that its access log is written out; kills it if it has not gone in 10 s."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGQUIT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

