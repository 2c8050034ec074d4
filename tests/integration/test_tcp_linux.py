"""ngstack's TCP against a real Linux peer: ngstack is the end host
198.18.1.1 with tcp-echo on 7, tcp-discard on 9 and tcp-source on 19
(SOURCE_BYTES a connection), ngs-h1 (198.18.1.2/24, the host lab: same
subnet, no router between) talks to it with Linux TCP.

Covers: 50 MB of random data through tcp-echo with `nc -N`, sending and
receiving at once, every byte back (sha256 of what came back == of what
went), nc's FIN at the end of its input and the echo's FIN after the last
byte back; a strict half-close (tcp_peers.py half-close: the peer queues
300 KiB and its FIN before reading anything, with a 16 KiB receive buffer,
so the FIN reaches the echo with most of the answer still to send: all of
it must come back, then a clean EOF); a connect to a port with no listener
refused (ECONNREFUSED: ngstack answered the SYN with RST); 10 MB into
tcp-discard, counted by the service (summary `services` entry) and closed
after the peer's FIN; tcp-source delivering exactly SOURCE_BYTES then EOF.
At exit: every packet accounted for, every mbuf back in the pool, the
services' byte counters exact, tcp.stats sane (segments in and out at least
the data's full-sized segments, an accept per connection, an RST per refused
connect), no segment with a bad checksum, the tcp connection table's lock
profile under the run's locking.

Runs (as test_host_linux): one worker, `locking: group`, then a second run
under `locking: giant`. `--workers 2`: two workers, p0 with two queue pairs
(lcore 1 polls p0/0, lcore 2 p0/1), tcp dispatched deferred in the group
run (every segment through the netisr queue of its connection group's
owner) and direct in the giant run.

`--server linux`: for developing the test before ngstack's TCP exists: the
lab's p0 goes into a namespace of its own at 198.18.1.1 with Linux TCP and
the same three services (tcp_peers.py serve); one run, the checks of the
services' counters and of tcp.stats made on the stand-in's (its namespace's
/proc/net counters), the ngstack-only checks (pool, accounting, locks,
dispatch) left out."""
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from ngslab import Lab, Ngstack, check, lock_table, run_test, service, sh  # noqa: E402
from tcp_peers import (NGSTACK_ADDR, LinuxServer, file_sha256, nc_echo, random_file, run_in,  # noqa: E402
                       standin_namespace, tcp_host_config, test_args)

ARGS = test_args()
WORKERS, SERVER = ARGS.workers, ARGS.server
ECHO_BYTES = 50 * 1000 * 1000
HALF_CLOSE_BYTES = 300 * 1024
DISCARD_BYTES = 10 * 1000 * 1000
SOURCE_BYTES = 5000001  # not a multiple of any segment size
REFUSED_PORT, REFUSED_TRIES = 8, 3
MSS = 1460
SERVICES = ("{type: tcp-echo, port: 7}", "{type: tcp-discard, port: 9}",
            f"{{type: tcp-source, port: 19, bytes: {SOURCE_BYTES}}}")
# (locking, tcp dispatch mode or None for the default)
if SERVER == "linux":
    RUNS = [("linux", None)]
elif WORKERS == 1:
    RUNS = [("group", None), ("giant", None)]
else:
    RUNS = [("group", "deferred"), ("giant", "direct")]


@contextlib.contextmanager
def tcp_server(lab, locking, tcp_mode):
    """ngstack with the three services, or (--server linux) Linux TCP at its
    address."""
    if SERVER == "linux":
        with standin_namespace(lab) as ns, LinuxServer(ns, echo=7, discard=9, source=(19, SOURCE_BYTES)) as srv:
            yield srv
    else:
        prefix = f"ngt-tcp-{os.getpid()}"
        with Ngstack(tcp_host_config(lab, prefix, workers=WORKERS, tcp_mode=tcp_mode, locking=locking,
                                     services=SERVICES)) as ng:
            yield ng


def drop(s, name):
    """Sum of drop reason `name` over the workers; the name must exist."""
    missing = [w["lcore"] for w in s["workers"] if name not in w["drops"]]
    check(not missing, f"drop reason {name} in the summary of every worker (missing on {missing})")
    return sum(w["drops"][name] for w in s["workers"])


def check_summary(s, locking, tcp_mode):
    echo, discard, source = service(s, "tcp-echo", 7), service(s, "tcp-discard", 9), service(s, "tcp-source", 19)
    print("tcp-echo:", json.dumps(echo), "\ntcp-discard:", json.dumps(discard), "\ntcp-source:", json.dumps(source),
          flush=True)
    echoed = ECHO_BYTES + HALF_CLOSE_BYTES
    check(echo["rx_bytes"] == echoed and echo["tx_bytes"] == echoed, f"tcp-echo: {echoed} bytes in and out: {echo}")
    check(discard["rx_bytes"] == DISCARD_BYTES and discard["tx_bytes"] == 0,
          f"tcp-discard: {DISCARD_BYTES} bytes in, none out: {discard}")
    check(source["tx_bytes"] == SOURCE_BYTES and source["rx_bytes"] == 0,
          f"tcp-source: {SOURCE_BYTES} bytes out, none in: {source}")

    st = s["tcp"]["stats"]
    print("tcp.stats:", json.dumps(st), flush=True)
    data_in = ECHO_BYTES + HALF_CLOSE_BYTES + DISCARD_BYTES
    data_out = ECHO_BYTES + HALF_CLOSE_BYTES + SOURCE_BYTES
    check(st["segments_in"] >= data_in // MSS and st["segments_out"] >= data_out // MSS,
          f"segments in >= {data_in // MSS} and out >= {data_out // MSS} (the data in full-sized segments): {st}")
    check(st["accepts"] >= 4, f"an accept for each of the 4 connections: accepts {st['accepts']}")
    check(st["rst_out"] >= REFUSED_TRIES, f"an RST for each refused connect: rst_out {st['rst_out']}")
    if SERVER == "linux":
        return

    check(s["mode"] == "host", f"mode: {s['mode']}")
    check(s["ok"] and s["totals"]["balanced"], f"rx + originated == tx + drops + consumed: {s['totals']}")
    check(all(m["full"] for m in s["mempools"]), f"every mbuf back in its pool: {s['mempools']}")
    check(len(s["workers"]) == WORKERS, f"{WORKERS} worker(s): {[w['lcore'] for w in s['workers']]}")
    check(st["bytes_in"] >= data_in and st["bytes_out"] >= data_out,
          f"tcp bytes in >= {data_in}, out >= {data_out}: {st}")
    print("tcp connections at exit:", json.dumps(s["tcp"].get("connections")), flush=True)
    check(drop(s, "tcp_no_socket") >= REFUSED_TRIES, f"tcp_no_socket >= {REFUSED_TRIES} (the refused SYNs)")
    for name in ("tcp_bad_checksum", "tcp_truncated", "tcp_bad_offset"):
        check(drop(s, name) == 0, f"{name} {drop(s, name)}")

    locks = s["locks"]
    table = lock_table(s, "tcp")
    print("tcp locks:", json.dumps({k: table[k] for k in ("lookups", "acquisitions_per_packet", "live")}),
          json.dumps({c: {k: v[k] for k in ("acquisitions", "contended", "wait_cycles", "hold_cycles")}
                      for c, v in table["classes"].items()}), flush=True)
    check(locks["locking"] == locking, f"locks: {locks['locking']}")
    taken, other = ("pcb_group", "pcb_giant") if locking == "group" else ("pcb_giant", "pcb_group")
    check(table["classes"].get(taken, {}).get("acquisitions", 0) > 0,
          f"{locking} locking takes {taken}: {table['classes']}")
    check(table["classes"].get(other, {}).get("acquisitions", 0) == 0,
          f"{locking} locking never takes {other}: {table['classes']}")

    ws = [w for w in s["netisr"]["workstreams"] if w["protocol"] == "tcp"]
    print("tcp workstreams:", [{k: w[k] for k in ("lcore", "dispatched", "queued", "handled", "qdrops")} for w in ws],
          flush=True)
    check(sum(w["qdrops"] for w in ws) == 0, f"no segment dropped at a netisr queue: {ws}")
    if tcp_mode == "deferred":
        check(sum(w["queued"] for w in ws) >= data_in // MSS and sum(w["dispatched"] for w in ws) == 0,
              f"tcp deferred: every segment through a netisr queue: {ws}")
    elif tcp_mode == "direct":
        check(sum(w["dispatched"] for w in ws) >= data_in // MSS and sum(w["queued"] for w in ws) == 0,
              f"tcp direct: every segment handled where it was received: {ws}")
    if WORKERS == 2:
        print("per worker rx packets:", {w["lcore"]: w["rx_packets"] for w in s["workers"]}, flush=True)


def run(locking, tcp_mode):
    label = "linux stand-in" if SERVER == "linux" else f"{WORKERS} worker(s), locking {locking}, " \
                                                       f"tcp {tcp_mode or 'default'}"
    print(f"--- {label}", flush=True)
    tmp = tempfile.mkdtemp(prefix="tcp-linux-")
    t_run = time.monotonic()
    try:
        with Lab("host") as lab, tcp_server(lab, locking, tcp_mode) as srv:
            h1 = lab.host(1)
            srv.wait_running()
            r = sh(f"ip netns exec {h1} ping -n -c 3 -i 0.2 -W 2 {NGSTACK_ADDR}", check=False, timeout=30)
            check(r.returncode == 0 and " 0% packet loss" in r.stdout,
                  f"ping {NGSTACK_ADDR}:\n{r.stdout}{r.stderr}\n{srv.output()}")

            # (a) 50 MB through tcp-echo, both directions at once.
            src, dst = os.path.join(tmp, "echo.in"), os.path.join(tmp, "echo.out")
            want = random_file(src, ECHO_BYTES)
            rc, secs, err = nc_echo(h1, NGSTACK_ADDR, 7, src, dst, timeout=40)
            got_size, intact = os.path.getsize(dst), file_sha256(dst) == want
            check(rc == 0, f"nc -N to tcp-echo: exit {rc} after {secs:.1f} s, {got_size} bytes back: {err}\n"
                           f"{srv.output()}")
            check(got_size == ECHO_BYTES and intact,
                  f"tcp-echo: {got_size} of {ECHO_BYTES} bytes back, sha256 {'equal' if intact else 'differs'}")
            print(f"ok: {ECHO_BYTES} bytes through tcp-echo and back intact in {secs:.2f} s "
                  f"({ECHO_BYTES / secs / 1e6:.1f} MB/s each way)", flush=True)
            os.unlink(src)
            os.unlink(dst)

            # (b) half-close: our FIN first, then the whole answer, then the echo's FIN.
            r = run_in(h1, "half-close", NGSTACK_ADDR, 7, HALF_CLOSE_BYTES, timeout=40)
            check(r.returncode == 0, f"half-close client: exit {r.returncode}: {r.stderr}")
            res = json.loads(r.stdout)
            check(res["received"] == HALF_CLOSE_BYTES and res["intact"] and res["end"] == "eof",
                  f"half-close: every byte back after our FIN, then EOF: {res}")
            print(f"ok: half-close: {res['received']} bytes back after our FIN, then EOF", flush=True)

            # (c) no listener: RST, ECONNREFUSED.
            r = run_in(h1, "refused", NGSTACK_ADDR, REFUSED_PORT, REFUSED_TRIES, timeout=30)
            check(r.stdout.split() == ["refused"] * REFUSED_TRIES,
                  f"port {REFUSED_PORT}: ECONNREFUSED on each try: {r.stdout!r} {r.stderr}")
            print(f"ok: port {REFUSED_PORT} refused {REFUSED_TRIES} times", flush=True)

            # (d) tcp-discard: 10 MB in, and the server's FIN after ours.
            r = run_in(h1, "send", NGSTACK_ADDR, 9, DISCARD_BYTES, timeout=40)
            check(r.returncode == 0, f"send to tcp-discard: exit {r.returncode}: {r.stderr}")
            res = json.loads(r.stdout)
            check(res["end"] == "eof", f"tcp-discard: nothing back, closed after our FIN: {res}")
            print(f"ok: {DISCARD_BYTES} bytes into tcp-discard in {res['seconds']} s", flush=True)

            # (e) tcp-source: exactly SOURCE_BYTES, then EOF.
            r = run_in(h1, "receive", NGSTACK_ADDR, 19, timeout=40)
            check(r.returncode == 0, f"receive from tcp-source: exit {r.returncode}: {r.stderr}")
            res = json.loads(r.stdout)
            check(res["received"] == SOURCE_BYTES and res["end"] == "eof",
                  f"tcp-source: exactly {SOURCE_BYTES} bytes then EOF: {res}")
            print(f"ok: tcp-source: {SOURCE_BYTES} bytes then EOF in {res['seconds']} s", flush=True)

            rc = srv.stop()
            check(rc == 0, f"server exit {rc}:\n{srv.output()}")
            check_summary(srv.summary(), locking, tcp_mode)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"ok: {label} ({time.monotonic() - t_run:.1f} s)", flush=True)


def test_tcp_linux():
    for locking, tcp_mode in RUNS:
        run(locking, tcp_mode)


if __name__ == "__main__":
    run_test(test_tcp_linux)
