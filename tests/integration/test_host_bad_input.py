"""Host mode under bad UDP input, sent with scapy from ngs-h1 on the host
lab: each malformed datagram is dropped (or, where RFC 768 allows it,
accepted) under its named counter, the udp-echo answers exactly what it
should, ngstack still answers afterwards, and every mbuf is back at exit.

The cases (counters from the spec of host mode):
  * a wrong UDP checksum                       drop  udp_bad_checksum
  * UDP length beyond the IP payload           drop  udp_bad_length
  * UDP length below 8 (the header)            drop  udp_bad_length
  * an IP payload of 4 bytes (no whole header) drop  udp_truncated
  * UDP length below the IP payload            event udp_length_trimmed: accepted,
                                               the echo carries only the UDP-length payload
  * checksum 0 (RFC 768: none was computed)    accepted, echoed
  * a port nobody is bound to                  drop  udp_no_socket, ICMP port unreachable
                                               (icmp_errors_out), 20 at once: rate-limited
  * to ngstack's MAC, another IP address       drop  ipv4_not_forwarding (a host forwards nothing)
Each datagram is built whole by hand (a correct checksum over its UDP
length, computed by scapy on a well-formed copy) and then broken in one
field only, so that it can only be counted for the fault it has.

Two variants (ngslab.workers_arg): one worker, udp in its default mode;
and `--workers 2` (meson's test_host_bad_input_2w): two workers polling
p0's two queue pairs, udp deferred (a datagram is handled by the owner of
its connection group, whichever worker received it), so the counters are
the workers' sums."""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from ngslab import (Lab, Ngstack, check, drops, events, host_lab_config, run_test, service, sh,  # noqa: E402
                    worker_counters, workers_arg)

WORKERS = workers_arg()
SPORT = 7777  # the scapy host's source port; a socket there receives the echoes

# (name, scapy expression of the frame(s), counter, how many it must add,
#  what udp-echo must send back: bytes, or None for nothing)
CASES = [
    ("wrong UDP checksum", 'ip(bad_sum(udp(7, b"bad checksum")))', "drop_udp_bad_checksum", 1, None),
    ("UDP length beyond the IP payload", 'ip(with_len(udp(7, b"too long"), 8 + 8 + 20))', "drop_udp_bad_length", 1,
     None),
    ("UDP length below 8", 'ip(with_len(udp(7, b"too short"), 4))', "drop_udp_bad_length", 1, None),
    ("truncated UDP header (IP payload of 4 bytes)", 'ip(udp(7, b"")[:4])', "drop_udp_truncated", 1, None),
    ("UDP length below the IP payload", 'ip(udp(7, b"trimmed!") + b"trailing bytes that are not UDP")',
     "event_udp_length_trimmed", 1, b"trimmed!"),
    ("zero checksum (RFC 768: no checksum)", 'ip(udp(7, b"no checksum", chksum=0))', "event_udp_delivered", 1,
     b"no checksum"),
    ("a port nobody is bound to", 'ip(udp(4444, b"anybody there?"))', "drop_udp_no_socket", 1, None),
    ("wrong UDP checksum to udp-discard", 'ip(bad_sum(udp(9, b"bad checksum")))', "drop_udp_bad_checksum", 1,
     None),
    # Addressed to ngstack's MAC but to another host's IP address: a host forwards nothing.
    ("a datagram for another address", 'E / IP(src=H1, dst="198.18.1.77") / UDP(sport=SPORT, dport=7) / b"elsewhere"',
     "drop_ipv4_not_forwarding", 1, None),
]


class Sender:
    """One scapy process in namespace `ns` (importing scapy takes seconds,
    more so beside busy-polling workers on two CPUs), with a UDP socket on
    198.18.1.2:SPORT for the echoes. `send(expr)` sends the frame(s) of a
    scapy expression on `iface`: E is Ether to `mac`, udp(dport, data,
    chksum=None) the bytes of a well-formed datagram from SPORT (checksum
    computed over them), with_len and bad_sum break one field of it, ip(b)
    frames b as an IPv4 payload from h1 to ngstack. `recv(timeout)` returns
    the payload of the next datagram on the socket, or None."""

    CODE = """import socket, sys
from scapy.all import *
conf.verb = 0
E = Ether(dst=sys.argv[1])
H1, R, SPORT = '198.18.1.2', '198.18.1.1', int(sys.argv[3])
def udp(dport, data, chksum=None):
    return bytes(IP(src=H1, dst=R) / UDP(sport=SPORT, dport=dport, chksum=chksum) / data)[20:]
def with_len(u, n):
    return u[:4] + n.to_bytes(2, 'big') + u[6:]
def bad_sum(u):
    c = (int.from_bytes(u[6:8], 'big') ^ 0x5555) or 0x1111
    return u[:6] + c.to_bytes(2, 'big') + u[8:]
def ip(payload):
    return E / IP(src=H1, dst=R, proto=17) / Raw(payload)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((H1, SPORT))
print('ready', flush=True)
for line in sys.stdin:
    op, arg = line.rstrip('\\n').split(' ', 1)
    if op == 'send':
        sendp(eval(arg), iface=sys.argv[2])
        print('sent', flush=True)
    else:
        s.settimeout(float(arg))
        try:
            print(s.recv(65536).hex(), flush=True)
        except socket.timeout:
            print('none', flush=True)
"""

    def __init__(self, ns, iface, mac):
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, "/usr/bin/python3", "-c", self.CODE, mac, iface,
                                      str(SPORT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._line("ready")

    def _line(self, want=None):
        line = self.proc.stdout.readline().strip()
        if want is not None and line != want:
            raise RuntimeError(f"scapy sender: expected {want!r}, got {line!r} (exit {self.proc.poll()})")
        return line

    def send(self, expr):
        self.proc.stdin.write(f"send {expr}\n")
        self.proc.stdin.flush()
        self._line("sent")

    def recv(self, timeout):
        self.proc.stdin.write(f"recv {timeout}\n")
        self.proc.stdin.flush()
        line = self._line()
        return None if line == "none" else bytes.fromhex(line)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return False


def nc_echo(lab, text):
    r = sh(f"echo '{text}' | ip netns exec {lab.host(1)} timeout 10 nc -u -w1 198.18.1.1 7", check=False, timeout=20)
    return r.stdout


def test_host_bad_input():
    prefix = f"ngt-hbad-{os.getpid()}"
    with Lab("host") as lab:
        cfg = host_lab_config(lab, prefix, "  icmp: {rate: 1, burst: 3}\n", workers=WORKERS,
                              udp_mode="deferred" if WORKERS == 2 else None)
        with Ngstack(cfg) as ng:
            ng.wait_running()
            r = sh(f"ip netns exec {lab.host(1)} ping -n -c 2 -i 0.2 -W 2 198.18.1.1", check=False)
            check(r.returncode == 0, f"ping before the bad input:\n{r.stdout}\n{ng.output()}")
            check(nc_echo(lab, "before") == "before\n", "udp-echo answers before the bad input")
            mac = re.search(r"port p0: .* mac ([0-9a-f:]{17})", ng.err_text()).group(1)
            with Sender(lab.host(1), "eth0", mac) as sender:
                # A well-formed datagram first: the sender's own frames reach udp-echo.
                sender.send('ip(udp(7, b"well formed"))')
                got = sender.recv(3)
                check(got == b"well formed", f"a well-formed datagram from scapy is echoed: {got!r}")
                for name, expr, counter, n, echo in CASES:
                    before = worker_counters(prefix)
                    sender.send(expr)
                    deadline = time.time() + 3
                    while time.time() < deadline and worker_counters(prefix)[counter] < before[counter] + n:
                        time.sleep(0.05)
                    after = worker_counters(prefix)
                    check(after[counter] == before[counter] + n, f"{name}: {counter} went {before[counter]} -> "
                          f"{after[counter]}")
                    # Only its own counter moved among the UDP ones.
                    for other in ("drop_udp_bad_checksum", "drop_udp_bad_length", "drop_udp_truncated",
                                  "drop_udp_no_socket", "event_udp_length_trimmed"):
                        if other != counter:
                            check(after[other] == before[other], f"{name}: {other} moved too: "
                                  f"{before[other]} -> {after[other]}")
                    got = sender.recv(1.0 if echo is None else 3.0)
                    check(got == echo, f"{name}: udp-echo sent back {got!r}, expected {echo!r}")
                    print(f"ok: {name}: {counter} +{after[counter] - before[counter]}"
                          f"{', echoed ' + repr(got) if got else ', no answer'}", flush=True)
                # ICMP errors are rate-limited (1/s, burst 3): 20 datagrams of one
                # flow to an unbound port at once draw at most 4 port unreachables;
                # every datagram is counted.
                before = worker_counters(prefix)
                sender.send('[ip(udp(4445, b"anybody?"))] * 20')
                deadline = time.time() + 3
                while time.time() < deadline and worker_counters(prefix)["drop_udp_no_socket"] < \
                        before["drop_udp_no_socket"] + 20:
                    time.sleep(0.05)
                after = worker_counters(prefix)
                no_socket = after["drop_udp_no_socket"] - before["drop_udp_no_socket"]
                sent = after["event_icmp_errors_out"] - before["event_icmp_errors_out"]
                limited = after["event_icmp_rate_limited"] - before["event_icmp_rate_limited"]
                check(no_socket == 20 and 1 <= sent <= 4 and sent + limited == 20,
                      f"20 to an unbound port: udp_no_socket +{no_socket}, {sent} unreachables sent, {limited} limited")
                print(f"ok: 20 to an unbound port: {sent} port unreachables, {limited} rate-limited", flush=True)

            check(nc_echo(lab, "after") == "after\n", f"udp-echo still answers after the bad input\n{ng.output()}")
            r = sh(f"ip netns exec {lab.host(1)} ping -n -c 2 -i 0.2 -W 2 198.18.1.1", check=False)
            check(r.returncode == 0, f"ping after the bad input:\n{r.stdout}")
            rc = ng.stop()
            check(rc == 0, f"ngstack exit {rc}:\n{ng.output()}")
            s = ng.summary()
            check(s["ok"] and s["totals"]["balanced"], f"balanced:\n{ng.out_text()}")
            check(all(m["full"] for m in s["mempools"]), f"every mbuf back in its pool: {s['mempools']}")
            want = {"udp_bad_checksum": 2, "udp_bad_length": 2, "udp_truncated": 1, "udp_no_socket": 21,
                    "ipv4_not_forwarding": 1}
            got = {k: drops(s, k) for k in want}
            check(got == want and events(s, "udp_length_trimmed") == 1,
                  f"the summary's drops {got}, expected {want}; udp_length_trimmed {events(s, 'udp_length_trimmed')}")
            echo, discard = service(s, "udp-echo", 7), service(s, "udp-discard", 9)
            # before, well formed, trimmed, zero checksum, after
            check(echo["rx_datagrams"] == 5 and echo["tx_datagrams"] == 5, f"udp-echo: 5 datagrams in and out: {echo}")
            check(echo["rx_bytes"] == echo["tx_bytes"] == len("before\n") + len("well formed") + len("trimmed!")
                  + len("no checksum") + len("after\n"), f"udp-echo bytes: {echo}")
            check(discard["rx_datagrams"] == 0, f"udp-discard: the bad datagram never reached it: {discard}")
            check(events(s, "udp_delivered") == 5 and events(s, "udp_sent") == 5,
                  f"udp_delivered {events(s, 'udp_delivered')}, udp_sent {events(s, 'udp_sent')}")


if __name__ == "__main__":
    run_test(test_host_bad_input)
