"""TCP segmentation offload on a real device: ngstack's port is DPDK's
net_tap, which offers TCP_TSO (it cuts a frame with DPDK's GSO library
before writing each piece to the kernel), and its Linux end is the peer.

ngstack runs inside a namespace of this test's own (so the tap interface
it creates is born there), with 198.18.78.1/24; the tap's kernel side gets
198.18.78.2/24. A Linux receiver in the namespace reads SOURCE_BYTES from
tcp-source and checks every byte ("ngstack\\n" repeated), and 20 MB of
random data go through tcp-echo both ways at once (sha256 equal).

Two runs, the same traffic: `stack.tcp.tso: true` (the default), then
`false`. With TSO: the port log says it is enabled, `tso_frames_out` counts
frames that carried several segments each (data_segments_out counts the
pieces on the wire), and the Linux end counts no checksum error (nstat
TcpInCsumErrors), so every piece the device cut was right. Without: no TSO
frame. Both: the exact bytes, every mbuf back in the pool, the totals
balanced. The transfer times of both runs are printed (a measurement, not
a bound: perf/ is for speed)."""
import hashlib
import json
import os
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from ngslab import PREFIX, Ngstack, check, remove_stale, run_test, service, sh  # noqa: E402

SOURCE_BYTES = 60 * 1000 * 1000 + 7
ECHO_BYTES = 20 * 1000 * 1000
OURS, PEER = "198.18.78.1", "198.18.78.2"
PY = "/usr/bin/python3"
SELF = os.path.abspath(__file__)


def receive_pattern(addr, port, nbytes):
    """In the namespace: read tcp-source's stream, check the pattern."""
    s = socket.create_connection((addr, port), timeout=20)
    pattern = b"ngstack\n" * 8200  # 65 600 bytes: any offset 0..7 plus a 64 KiB read
    got, bad, t0 = 0, 0, time.monotonic()
    while True:
        chunk = s.recv(1 << 16)
        if not chunk:
            break
        off = got % 8
        if chunk != pattern[off:off + len(chunk)]:
            bad += 1
        got += len(chunk)
    print(json.dumps({"received": got, "bad_chunks": bad, "seconds": round(time.monotonic() - t0, 3)}))


def echo_both_ways(addr, port, nbytes):
    """In the namespace: send nbytes of random data to tcp-echo while reading
    the echo; sha256 of both."""
    import threading
    data = os.urandom(1 << 20)
    s = socket.create_connection((addr, port), timeout=20)
    sent_hash, got_hash = hashlib.sha256(), hashlib.sha256()
    got = [0]

    def reader():
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            got_hash.update(chunk)
            got[0] += len(chunk)

    t = threading.Thread(target=reader)
    t0 = time.monotonic()
    t.start()
    left = nbytes
    while left:
        block = data[:min(left, len(data))]
        s.sendall(block)
        sent_hash.update(block)
        left -= len(block)
    s.shutdown(socket.SHUT_WR)
    t.join(60)
    print(json.dumps({"sent": nbytes, "received": got[0], "equal": sent_hash.digest() == got_hash.digest(),
                      "seconds": round(time.monotonic() - t0, 3)}))


def config(prefix, iface, tso):
    return f"""mode: host
eal:
  main_lcore: 0
  memory_mb: 512
  no_huge: true
  file_prefix: {prefix}
ports:
  - {{name: p0, device: "net_tap0,iface={iface}"}}
workers: {{lcores: [1]}}
host:
  interfaces:
    - {{port: p0, addresses: [{OURS}/24]}}
services:
  - {{type: tcp-source, port: 19, bytes: {SOURCE_BYTES}}}
  - {{type: tcp-echo, port: 7}}
stack: {{tcp: {{tso: {'true' if tso else 'false'}}}}}
"""


def in_ns(ns, *args, timeout=120):
    r = sh(f"ip netns exec {ns} {PY} {SELF} " + " ".join(map(str, args)), check=False, timeout=timeout)
    check(r.returncode == 0, f"{args[0]} in {ns}: exit {r.returncode}\n{r.stdout}{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def csum_errors(ns):
    r = sh(f"ip netns exec {ns} nstat -az TcpInCsumErrors", check=False)
    for line in r.stdout.splitlines():
        if line.startswith("TcpInCsumErrors"):
            return int(line.split()[1])
    return 0


def one_run(ns, tso):
    iface = f"{PREFIX}{os.getpid()}t"
    prefix = f"ngt-tso-{os.getpid()}"
    ng = Ngstack(config(prefix, iface, tso), netns=ns)
    with ng:
        ng.wait_running()
        sh(f"ip netns exec {ns} ip addr add {PEER}/24 dev {iface}")
        sh(f"ip netns exec {ns} ip link set {iface} up")
        # The peer's receive path as it would be on a NIC: its GRO may merge
        # pieces; nothing here depends on it.
        src = in_ns(ns, "--receive", OURS, 19, SOURCE_BYTES)
        echo = in_ns(ns, "--echo", OURS, 7, ECHO_BYTES)
        errors = csum_errors(ns)
        rc = ng.stop()
        check(rc == 0, f"ngstack exit {rc}\n{ng.output()}")
        s = ng.summary()
        log = ng.err_text()
    secs = src["seconds"]
    print(f"tso {tso}: {SOURCE_BYTES} bytes from tcp-source in {secs} s "
          f"({SOURCE_BYTES * 8 / secs / 1e9:.2f} Gbit/s), echo {ECHO_BYTES} bytes both ways in {echo['seconds']} s",
          flush=True)
    check(src["received"] == SOURCE_BYTES and src["bad_chunks"] == 0, f"tcp-source's exact stream: {src}")
    check(echo["received"] == ECHO_BYTES and echo["equal"], f"tcp-echo: every byte back: {echo}")
    check(errors == 0, f"the Linux end counted {errors} TCP checksum errors")
    st = s["tcp"]["stats"]
    print("tcp.stats:", json.dumps({k: v for k, v in st.items() if v}), flush=True)
    check(s["ok"] and s["totals"]["balanced"], f"rx + originated == tx + drops + consumed: {s['totals']}")
    check(all(m["full"] for m in s["mempools"]), f"every mbuf back in its pool: {s['mempools']}")
    check(service(s, "tcp-source", 19)["tx_bytes"] == SOURCE_BYTES, "tcp-source's counter")
    check(service(s, "tcp-echo", 7)["tx_bytes"] == ECHO_BYTES, "tcp-echo's counter")
    if tso:
        check("TCP segmentation offload enabled" in log, "the port log says TSO is enabled:\n" + log)
        check(st["tso_frames_out"] > 100, f"TSO frames sent: {st['tso_frames_out']}")
        check(st["data_segments_out"] > 3 * st["tso_frames_out"],
              f"several wire segments a frame: {st['data_segments_out']} segments, {st['tso_frames_out']} frames")
    else:
        check("TCP segmentation offload enabled" not in log, "tso: false leaves the offload off")
        check(st["tso_frames_out"] == 0, f"no TSO frame with tso: false: {st['tso_frames_out']}")
    return secs


def test_tcp_tso():
    if os.geteuid() != 0:
        raise SystemExit("needs root (namespaces, tap devices)")
    remove_stale()
    ns = f"{PREFIX}{os.getpid()}-tso"
    sh(f"ip netns add {ns}")
    try:
        sh(f"ip netns exec {ns} ip link set lo up")
        with_tso = one_run(ns, True)
        without = one_run(ns, False)
        # Short transfers on a shared 2-CPU machine: a figure to look at, not
        # a result (net_tap cuts with DPDK's GSO library in software: no NIC's figure).
        print(f"tcp-source to Linux over net_tap: {with_tso} s with TSO, {without} s without "
              f"(ratio {without / with_tso:.2f}, same run)", flush=True)
    finally:
        sh(f"ip netns del {ns}", check=False)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--receive":
        receive_pattern(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--echo":
        echo_both_ways(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        run_test(test_tcp_tso)
