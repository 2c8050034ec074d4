"""A TCP testbench in the style of gVisor's packetimpact: scapy on the Linux
end of a veth drives the TCP of a device under test (DUT) with scripted
segments and reads its answers.

Two halves:

* the topology: `LinuxDut` (two namespaces of this process's own, tester and
  DUT, joined by a veth, with Linux servers in the DUT's namespace: echo,
  discard, source), `linux_connect` (active opens from the Linux DUT's
  namespace, for cases where the DUT connects to the bench) and
  `prepare_tester` (the tester namespace's kernel TCP silenced with an
  nftables rule, offloads off), for the test driver that runs in the root
  namespace;
* the bench: `Bench` (one AF_PACKET socket on the tester's interface, run
  inside the tester namespace) and `Conn` (one TCP connection to the DUT,
  played by hand: the bench keeps SND.NXT/RCV.NXT, the DUT's window, the
  timestamps and the negotiated options, and every segment it sends is
  explicit).

Received frames are parsed by hand (`Seg`) rather than dissected by scapy:
it is faster and leaves no doubt about what the option bytes said. Arrival
times are the kernel's receive timestamps (SO_TIMESTAMPNS), so timing checks
do not depend on how late the bench got round to reading a frame.

Addresses live in 198.18.0.0/15 only, inside namespaces the test made.
"""
import os
import random
import re
import select
import signal
import struct
import subprocess
import time

PY = "/usr/bin/python3"
TESTER_IP = "198.18.1.2"
DUT_IP = "198.18.1.1"
IFACE = "eth0"  # the tester's interface inside its namespace (deploy/lab names it so too)
NS_PREFIX = "ngstc"  # Linux-DUT namespaces: ngstc-<pid>-t (tester), ngstc-<pid>-d (DUT)

# Ports of the DUT's services (the same on Linux and on ngstack).
ECHO, DISCARD, SOURCE = 7, 9, 19
SOURCE_N, SOURCE_N_BYTES = 2019, 3000  # a tcp-source that sends SOURCE_N_BYTES then FIN (active close)
CLOSED_PORT = 1  # nobody listens there


def sh(cmd, check=True, timeout=30):
    r = subprocess.run(cmd, shell=True, text=True, capture_output=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"command failed ({r.returncode}): {cmd}\n{r.stdout}{r.stderr}")
    return r


class CheckFailed(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise CheckFailed(msg)


# ---------------------------------------------------------------- topology

def prepare_tester(ns):
    """The tester namespace's own TCP must not answer the DUT (it has no
    socket for the bench's connections and would reset them): an nftables
    rule drops every RST its kernel sends, whatever the port, so also those
    for the DUT's SYNs to a port of the tester's where nothing listens (the
    output hook sees only locally generated packets; the bench's AF_PACKET
    frames pass by it). Offloads off on the tester's interface: frames as
    they are on the wire, checksums computed by the sender."""
    sh(f"ip netns exec {ns} nft add table inet tcpbench")
    sh(f"ip netns exec {ns} nft add chain inet tcpbench out '{{ type filter hook output priority 0; }}'")
    sh(f"ip netns exec {ns} nft add rule inet tcpbench out tcp flags rst drop")
    offloads_off(ns, IFACE)


def offloads_off(ns, iface):
    sh(f"ip netns exec {ns} ethtool -K {iface} tso off gso off gro off tx off")


# The DUT's services when the DUT is Linux, run in the DUT namespace: echo (7,
# every byte back, half-close honoured, urgent data inline: SO_OOBINLINE),
# discard (9), source (19, sends forever), source-N (2019: SOURCE_N_BYTES then
# close, the active close). Prints "ready" once every port listens.
SERVERS = r"""
import socket, sys, threading
SOURCE_N, SOURCE_N_BYTES = int(sys.argv[1]), int(sys.argv[2])
PATTERN = bytes(range(256)) * 256

def echo(c):
    c.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)
    while True:
        d = c.recv(65536)
        if not d:
            c.shutdown(socket.SHUT_WR)
            return
        c.sendall(d)

def discard(c):
    while c.recv(65536):
        pass

def source(c, n):
    sent = 0
    while n == 0 or sent < n:
        chunk = PATTERN if n == 0 else PATTERN[:min(len(PATTERN), n - sent)]
        c.sendall(chunk)
        sent += len(chunk)

def serve(c, fn, *args):
    try:
        fn(c, *args)
    except OSError:
        pass
    finally:
        c.close()

def accept_loop(s, fn, *args):
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c, fn) + args, daemon=True).start()

socks = []
for port, fn, args in ((7, echo, ()), (9, discard, ()), (19, source, (0,)), (SOURCE_N, source, (SOURCE_N_BYTES,))):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(128)
    socks.append(s)
    threading.Thread(target=accept_loop, args=(s, fn) + args, daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

# Active opens from the Linux DUT's namespace (ngstack's tcp-client does the
# same): `flows` sockets connect() to host:port at once, each prints
# "connected <local port>", sends `nbytes` bytes and reads until the peer
# closes or resets.
CONNECTOR = r"""
import socket, sys, threading
host, port, flows, nbytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
DATA = (bytes(range(256)) * (nbytes // 256 + 1))[:nbytes]

def run():
    try:
        s = socket.create_connection((host, port), timeout=30)
        print("connected", s.getsockname()[1], flush=True)
        s.sendall(DATA)
        while s.recv(65536):
            pass
    except OSError as e:
        print("ended:", e, flush=True)

for _ in range(flows):
    threading.Thread(target=run).start()
"""


def linux_connect(ns, host, port, flows, nbytes):
    """Start CONNECTOR in namespace ns; the caller kills it when done."""
    return subprocess.Popen(["ip", "netns", "exec", ns, PY, "-c", CONNECTOR, host, str(port), str(flows), str(nbytes)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


# Settings of the Linux DUT's namespace (each is per network namespace):
# no rate limit on the ACKs for out-of-window segments and challenge ACKs
# (tcp_invalid_ratelimit: else one per 500 ms per socket; the battery draws
# several in a row), no tail loss probe or RACK early retransmit
# (tcp_early_retrans=0: the RTO case measures plain RTO backoff), a short
# FIN_WAIT_2 lifetime (tcp_fin_timeout, seconds), SYN cookies as the kernel's
# default (1: on syncache overflow; the cookie case sets 2 for a moment).
LINUX_SYSCTLS = {
    "net.ipv4.tcp_invalid_ratelimit": 0,
    "net.ipv4.tcp_challenge_ack_limit": 1000000,
    "net.ipv4.tcp_early_retrans": 0,
    "net.ipv4.tcp_fin_timeout": 2,
    "net.ipv4.tcp_syncookies": 1,
    "net.ipv6.conf.all.disable_ipv6": 1,
}
LINUX_FIN_TIMEOUT_S = 2


def remove_stale():
    """Remove Linux-DUT namespaces of test processes that no longer run."""
    for line in sh("ip netns list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(rf"{NS_PREFIX}-(\d+)-[td]$", name)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            sh(f"ip netns del {name}", check=False)


class LinuxDut:
    """Tester and DUT namespaces joined by a veth (eth0 on both sides: tester
    198.18.1.2/24, DUT 198.18.1.1/24) and the servers in the DUT's. Removed
    on exit, also on an exception or SIGTERM (turned into SystemExit by the
    caller's handler)."""

    def __init__(self):
        self.tester = f"{NS_PREFIX}-{os.getpid()}-t"
        self.dut = f"{NS_PREFIX}-{os.getpid()}-d"
        self.servers = None

    def __enter__(self):
        remove_stale()
        try:
            self._up()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _up(self):
        t, d = self.tester, self.dut
        sh(f"ip netns add {t}")
        sh(f"ip netns add {d}")
        sh(f"ip -n {t} link add {IFACE} type veth peer name {IFACE} netns {d}")
        for ns, addr in ((t, TESTER_IP), (d, DUT_IP)):
            sh(f"ip netns exec {ns} sysctl -qw net.ipv6.conf.all.disable_ipv6=1")
            sh(f"ip -n {ns} addr add {addr}/24 dev {IFACE}")
            sh(f"ip -n {ns} link set {IFACE} up")
            sh(f"ip -n {ns} link set lo up")
            offloads_off(ns, IFACE)
        for key, value in LINUX_SYSCTLS.items():
            sh(f"ip netns exec {d} sysctl -qw {key}={value}")
        self.servers = subprocess.Popen(
            ["ip", "netns", "exec", d, PY, "-c", SERVERS, str(SOURCE_N), str(SOURCE_N_BYTES)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        r, _, _ = select.select([self.servers.stdout], [], [], 10)
        line = self.servers.stdout.readline() if r else ""
        if line.strip() != "ready":
            err = self.servers.stderr.read() if self.servers.poll() is not None else ""
            raise RuntimeError(f"Linux servers did not start: {line!r} {err}")
        prepare_tester(t)

    def sysctl(self, key, value):
        sh(f"ip netns exec {self.dut} sysctl -qw {key}={value}")

    def __exit__(self, *exc):
        if self.servers is not None and self.servers.poll() is None:
            self.servers.kill()
            self.servers.wait()
        for ns in (self.tester, self.dut):
            sh(f"ip netns del {ns}", check=False)
        return False


# ---------------------------------------------------------------- segments

FLAG_NAMES = "FSRPAUEC"  # bit 0 .. bit 7


def flags_str(bits):
    return "".join(FLAG_NAMES[i] for i in range(8) if bits & (1 << i))


class Seg:
    """A TCP segment from the DUT, parsed from an Ethernet frame."""
    __slots__ = ("src", "dst", "sport", "dport", "seq", "ack", "flags", "window", "urgptr", "payload",
                 "opts", "opt_kinds", "time", "ttl")

    @staticmethod
    def parse(frame, ts):
        if len(frame) < 34 or frame[12:14] != b"\x08\x00":
            return None
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        if ip[0] >> 4 != 4 or ip[9] != 6 or len(ip) < ihl + 20:
            return None
        total = struct.unpack("!H", ip[2:4])[0]
        tcp = ip[ihl:total]
        s = Seg()
        s.ttl = ip[8]
        s.src = ".".join(map(str, ip[12:16]))
        s.dst = ".".join(map(str, ip[16:20]))
        s.sport, s.dport, s.seq, s.ack = struct.unpack("!HHII", tcp[:12])
        off = (tcp[12] >> 4) * 4
        s.flags = flags_str(tcp[13])
        s.window, _, s.urgptr = struct.unpack("!HHH", tcp[14:20])
        s.payload = bytes(tcp[off:])
        s.opts, s.opt_kinds = {}, []
        o = tcp[20:off]
        i = 0
        while i < len(o):
            kind = o[i]
            if kind == 0:
                break
            if kind == 1:
                i += 1
                continue
            if i + 1 >= len(o) or o[i + 1] < 2:
                s.opts["malformed"] = True
                break
            ln = o[i + 1]
            data = o[i + 2:i + ln]
            s.opt_kinds.append(kind)
            if kind == 2 and ln == 4:
                s.opts["mss"] = struct.unpack("!H", data)[0]
            elif kind == 3 and ln == 3:
                s.opts["wscale"] = data[0]
            elif kind == 4 and ln == 2:
                s.opts["sackok"] = True
            elif kind == 5:
                s.opts["sack"] = [struct.unpack("!II", data[j:j + 8]) for j in range(0, len(data) - 7, 8)]
            elif kind == 8 and ln == 10:
                s.opts["ts"] = struct.unpack("!II", data)
            else:
                s.opts[f"kind{kind}"] = bytes(data)
            i += ln
        s.time = ts if ts is not None else time.time()
        return s

    @property
    def seg_len(self):
        return len(self.payload) + ("S" in self.flags) + ("F" in self.flags)

    @property
    def end(self):
        return (self.seq + self.seg_len) & 0xFFFFFFFF

    def has(self, flags):
        return all(f in self.flags for f in flags)

    def __repr__(self):
        opts = " ".join(f"{k}={v}" for k, v in self.opts.items())
        return (f"[{self.flags or '.'} seq={self.seq} ack={self.ack} win={self.window} len={len(self.payload)}"
                f"{' urg=' + str(self.urgptr) if 'U' in self.flags else ''}{' ' + opts if opts else ''}]")


def seq_lt(a, b):
    return ((a - b) & 0xFFFFFFFF) > 0x7FFFFFFF


def seq_le(a, b):
    return a == b or seq_lt(a, b)


def seq_add(a, n):
    return (a + n) & 0xFFFFFFFF


def seq_diff(a, b):
    """a - b as a signed distance."""
    d = (a - b) & 0xFFFFFFFF
    return d - (1 << 32) if d & 0x80000000 else d


# ---------------------------------------------------------------- the bench

class Bench:
    """One AF_PACKET socket on the tester's interface (run inside the tester
    namespace). Segments from the DUT are queued per connection (the bench's
    port, the DUT's port) until a Conn reads them."""

    def __init__(self, iface=IFACE, local_ip=TESTER_IP, dut_ip=DUT_IP, verbose=False):
        from scapy.all import conf, get_if_hwaddr  # noqa: F401 - imported here: the caller may only list cases
        conf.verb = 0
        self.iface, self.local_ip, self.dut_ip = iface, local_ip, dut_ip
        self.verbose = verbose
        self.sock = conf.L2socket(iface=iface)
        self.mac = get_if_hwaddr(iface)
        self.dut_mac = self._resolve()
        self.queues = {}
        self.next_port = random.randint(20000, 50000)

    def _resolve(self):
        """The DUT's MAC: one ping fills the tester kernel's neighbour table."""
        r = sh(f"ping -n -c 1 -W 2 {self.dut_ip}", check=False)
        for _ in range(30):
            out = sh(f"ip neigh show {self.dut_ip} dev {self.iface}", check=False).stdout.split()
            if "lladdr" in out:
                return out[out.index("lladdr") + 1]
            time.sleep(0.1)
        raise RuntimeError(f"cannot resolve the DUT's MAC ({self.dut_ip}): ping said {r.stdout}{r.stderr}")

    def port(self):
        self.next_port += 1
        if self.next_port > 60000:
            self.next_port = 20001
        return self.next_port

    def send(self, pkt):
        from scapy.all import Ether
        self.sock.send(Ether(src=self.mac, dst=self.dut_mac) / pkt)

    def pump(self, timeout):
        """Read what the socket has, waiting at most `timeout` for the first
        frame; queue the DUT's TCP segments. Returns whether anything came."""
        got = False
        while True:
            r, _, _ = select.select([self.sock.ins], [], [], max(0.0, timeout) if not got else 0)
            if not r:
                return got
            _, data, ts = self.sock.recv_raw()
            if data is None:
                continue
            seg = Seg.parse(data, ts)
            if seg is None or seg.src != self.dut_ip or seg.dst != self.local_ip:
                continue
            got = True
            if self.verbose:
                print(f"    <- {seg.sport}>{seg.dport} {seg}", flush=True)
            self.queues.setdefault((seg.dport, seg.sport), []).append(seg)

    def syn_port(self, port, exclude=(), timeout=5.0):
        """The DUT's port of the first connection whose SYN (no ACK) to the
        bench's `port` has come, leaving out DUT ports in `exclude`; None
        after `timeout`. The SYN stays queued for the Conn that takes it."""
        deadline = time.time() + timeout
        while True:
            for (bport, dport), q in self.queues.items():
                if bport == port and dport not in exclude and any(s.flags == "S" for s in q):
                    return dport
            left = deadline - time.time()
            if left <= 0:
                return None
            self.pump(left)

    def close(self):
        self.sock.close()


# Option sets for a SYN (scapy TCP option lists are built from them).
FULL = {"mss": 1460, "sackok": True, "ts": True, "wscale": 7}
NO_OPTS = {}


class Conn:
    """One TCP connection from the bench to the DUT's `dport`, played by hand.

    snd_nxt: the bench's next sequence number; rcv_nxt: the next sequence
    number the bench expects from the DUT (what it ACKs); dut_wnd: the DUT's
    last advertised window in bytes (scaled); ts_recent: the DUT's last TSval.
    """

    def __init__(self, bench, dport, sport=None):
        self.b = bench
        self.dport = dport
        self.sport = sport or bench.port()
        self.iss = random.randint(0, 0xFFFFFFFF)
        self.snd_nxt = self.iss
        self.irs = self.rcv_nxt = None
        self.dut_wnd = 0
        self.dut_wscale = 0  # shift applied to the DUT's window field (once negotiated)
        self.our_wscale = 0  # shift the DUT applies to ours
        self.ts_ok = self.sack_ok = False
        self.ts_recent = 0
        self.ts_base = random.randint(1, 0x7FFFFFFF)
        self.t0 = time.monotonic()
        self.rcv_wnd = 65535  # the window the bench advertises, bytes
        self.synack = None
        self.syn_tsval = None
        self.offered = {}
        self.skipped = []
        self.log = []  # every segment read on this connection

    # -- sending
    def tsval(self):
        return (self.ts_base + int((time.monotonic() - self.t0) * 1000)) & 0xFFFFFFFF

    def send(self, flags="A", payload=b"", seq=None, ack=None, window=None, tsval=None, options=None,
             sack=None, urgptr=0, advance=True):
        """Send one segment. Defaults: SEQ=snd_nxt, ACK=rcv_nxt, the bench's
        window (bytes, scaled as negotiated), TSopt when negotiated. With the
        default SEQ and `advance`, snd_nxt moves past the segment."""
        from scapy.all import IP, TCP, Raw
        default_seq = seq is None
        seq = self.snd_nxt if default_seq else seq
        if ack is None:
            ack = self.rcv_nxt if self.rcv_nxt is not None and "A" in flags else 0
        wnd = self.rcv_wnd if window is None else window
        raw_wnd = min(0xFFFF, wnd >> (0 if "S" in flags else self.our_wscale))
        if options is None:
            options = []
            if self.ts_ok:
                options += [("NOP", None), ("NOP", None),
                            ("Timestamp", (self.tsval() if tsval is None else tsval, self.ts_recent))]
            if sack:
                options += [("NOP", None), ("NOP", None), ("SAck", tuple(x for blk in sack for x in blk))]
        pkt = IP(src=self.b.local_ip, dst=self.b.dut_ip, ttl=64) / TCP(
            sport=self.sport, dport=self.dport, seq=seq, ack=ack, flags=flags, window=raw_wnd,
            urgptr=urgptr, options=options)
        if payload:
            pkt = pkt / Raw(payload)
        if self.b.verbose:
            opts = " ".join(f"{k}={v}" for k, v in options if k != "NOP")
            print(f"    -> {self.sport}>{self.dport} [{flags} seq={seq} ack={ack} win={raw_wnd} len={len(payload)}"
                  f"{' urg=' + str(urgptr) if urgptr else ''}{' ' + opts if opts else ''}]", flush=True)
        t = time.time()  # before: on a veth the DUT may answer before send() returns
        self.b.send(pkt)
        if default_seq and advance:
            self.snd_nxt = seq_add(self.snd_nxt, len(payload) + ("S" in flags) + ("F" in flags))
        return t

    def syn_options(self, offer, tsecr=0):
        """Options of a SYN (or of a SYN-ACK, with the TSecr it echoes)."""
        opts = []
        if "mss" in offer:
            opts.append(("MSS", offer["mss"]))
        if offer.get("sackok"):
            opts.append(("SAckOK", b""))
        if offer.get("ts"):
            self.syn_tsval = self.tsval()
            opts.append(("Timestamp", (self.syn_tsval, tsecr)))
        if "wscale" in offer:
            opts += [("NOP", None), ("WScale", offer["wscale"])]
        return opts

    def syn(self, offer=FULL, window=65535):
        """Send the SYN offering `offer`'s options."""
        self.offered = dict(offer)
        self.rcv_wnd = window
        return self.send("S", options=self.syn_options(offer), window=window)

    def complete(self, synack):
        """Take the SYN-ACK's options and send the handshake's ACK."""
        self.take_synack(synack)
        self.send("A")

    def take_synack(self, synack):
        """The DUT's SYN-ACK: its ISN and what it and the bench's SYN agreed."""
        self.synack = synack
        self.irs = synack.seq
        self.rcv_nxt = seq_add(synack.seq, 1)
        o = synack.opts
        self.ts_ok = bool(self.offered.get("ts")) and "ts" in o
        self.sack_ok = bool(self.offered.get("sackok")) and "sackok" in o
        if "wscale" in self.offered and "wscale" in o:
            self.dut_wscale, self.our_wscale = min(o["wscale"], 14), self.offered["wscale"]
        if "ts" in o:
            self.ts_recent = o["ts"][0]
        self.dut_wnd = synack.window  # never scaled in a SYN

    def connect(self, offer=FULL, window=65535, timeout=3.0):
        """Three-way handshake; returns the SYN-ACK."""
        self.syn(offer, window)
        sa = self.expect(lambda s: s.has("SA"), timeout, "a SYN-ACK")
        check(sa.ack == seq_add(self.iss, 1) and "R" not in sa.flags,
              f"SYN-ACK acks ISS+1 ({seq_add(self.iss, 1)}): {sa}")
        self.snd_nxt = seq_add(self.iss, 1)
        self.complete(sa)
        return sa

    def abort(self):
        """Reset the connection (the DUT's end goes away without a reply)."""
        if self.rcv_nxt is not None:
            self.send("R", seq=self.snd_nxt, advance=False)

    # -- receiving
    def _take(self, seg):
        self.log.append(seg)
        if "ts" in seg.opts:
            self.ts_recent = seg.opts["ts"][0]
        if "S" not in seg.flags:
            self.dut_wnd = seg.window << self.dut_wscale

    def next(self, timeout, match=None):
        """The next segment from the DUT on this connection that satisfies
        `match`, or None after `timeout` seconds. Segments before it that do
        not match are read and set aside (self.skipped)."""
        deadline = time.time() + timeout
        key = (self.sport, self.dport)
        while True:
            q = self.b.queues.get(key)
            while q:
                seg = q.pop(0)
                self._take(seg)
                if match is None or match(seg):
                    return seg
                self.skipped.append(seg)
            left = deadline - time.time()
            if left <= 0:
                return None
            self.b.pump(left)

    def expect(self, match, timeout, what):
        seg = self.next(timeout, match)
        if seg is None:
            recent = self.skipped[-5:]
            raise CheckFailed(f"expected {what} within {timeout:.1f} s, nothing came"
                              + (f" (other segments: {recent})" if recent else ""))
        return seg

    def expect_nothing(self, timeout, match=None, what="any segment"):
        """No segment matching `match` within `timeout`."""
        seg = self.next(timeout, match)
        check(seg is None, f"expected no {what} for {timeout:.1f} s, got {seg}")

    def putback(self, seg):
        """Return a segment read with next() to the front of the queue."""
        self.b.queues.setdefault((self.sport, self.dport), []).insert(0, seg)

    def drain(self, timeout=0.05):
        """Read and set aside what the DUT has sent on this connection."""
        while self.next(timeout) is not None:
            pass

    # -- data
    def data_match(self, seg):
        return len(seg.payload) > 0 or "F" in seg.flags

    def recv_stream(self, nbytes=None, timeout=3.0, fin=False, ack=True, window=None):
        """In-order data from the DUT until `nbytes` bytes (or its FIN with
        `fin`), each in-order segment ACKed (when `ack`). Returns the bytes."""
        out = bytearray()
        deadline = time.time() + timeout
        while True:
            if nbytes is not None and len(out) >= nbytes and not fin:
                return bytes(out)
            left = deadline - time.time()
            seg = self.next(max(0.0, left), self.data_match) if left > 0 else None
            if seg is None:
                raise CheckFailed(f"expected {nbytes if nbytes is not None else 'all'} bytes"
                                  f"{' and a FIN' if fin else ''} from port {self.dport} within {timeout:.1f} s,"
                                  f" got {len(out)} bytes (rcv_nxt {self.rcv_nxt}; last other segments"
                                  f" {self.skipped[-3:]})")
            if seg.seq != self.rcv_nxt:
                # a retransmission or out of order: re-ACK what we have
                if ack:
                    self.send("A", window=window)
                continue
            out += seg.payload
            self.rcv_nxt = seq_add(self.rcv_nxt, len(seg.payload) + ("F" in seg.flags))
            if ack:
                self.send("A", window=window)
            if "F" in seg.flags:
                return bytes(out)

    def collect_flight(self, edge, quiet=0.1, timeout=3.0):
        """The DUT's data, not ACKed, until the in-order data reaches `edge`
        (the right edge of the last window the bench advertised) or none
        comes for `quiet` s (well below a 200 ms RTO: the segments of a flight
        come back to back). Returns the in-order segments; rcv_nxt moves past
        them, but no ACK is sent."""
        segs = []
        deadline = time.time() + timeout
        while seq_lt(self.rcv_nxt, edge) and time.time() < deadline:
            s = self.next(min(quiet, deadline - time.time()), self.data_match)
            if s is None:
                break
            if s.seq == self.rcv_nxt:
                segs.append(s)
                self.rcv_nxt = s.end
        return segs

    def send_data(self, data, mss=1000):
        """Send `data` in segments of at most `mss` bytes (PSH on the last)."""
        for i in range(0, len(data), mss):
            chunk = data[i:i + mss]
            self.send("PA" if i + mss >= len(data) else "A", chunk)

    def echo(self, data, timeout=3.0):
        """Send `data` to an echo service and check it comes back whole."""
        self.send_data(data)
        got = self.recv_stream(len(data), timeout)
        check(got == data, f"echo: sent {len(data)} bytes, got back {len(got)} bytes that "
                           f"{'differ' if len(got) == len(data) else 'are not the same length'}")


def in_namespace(ns, argv, timeout):
    """Run argv in namespace ns (a re-exec of a test script), output passed
    through; killed on timeout. Returns the exit code."""
    p = subprocess.Popen(["ip", "netns", "exec", ns, *argv])
    try:
        return p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise RuntimeError(f"the bench in {ns} ran past {timeout} s and was killed")
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
