"""Host mode against a real Linux host: ngstack is the end host 198.18.1.1
with udp-echo on port 7 and udp-discard on port 9, and ngs-h1 (198.18.1.2/24,
the host lab: same subnet, no router between) talks to it.

Covers: ping to ngstack; `nc -u` to udp-echo (the payload comes back);
100 000 sequence-numbered datagrams over 1 000 flows (1 000 source ports,
so 1 000 UDP 4-tuples spread over the connection groups) to udp-echo, every
one back, byte for byte, and each flow in order (udp_flows.py, paced by a
window per flow so that no host buffer overflows); datagrams to udp-discard
counted by the service and never answered; a datagram to a port nobody is
bound to draws ICMP port unreachable, which the Linux socket reports as
ECONNREFUSED, and is counted as udp_no_socket; and at exit every packet
accounted for, every mbuf back in the pool, the services' counters exact
and the connection table's lock profile (locks section) filled in.

The main run has the connection table under `locking: group`; a shorter
second run does every check again under `locking: giant` (one lock for the
whole table).

Two variants (ngslab.workers_arg): one worker; and `--workers 2` (meson's
test_host_linux_2w): two workers, p0 with two queue pairs (lcore 1 polls
p0/0, lcore 2 p0/1), udp deferred in the main run (a datagram is handed to
the worker that owns its connection group) and direct in the second (the
receiving worker takes the group's lock, or the giant lock, itself). Both
workers then receive and deliver datagrams of the 1 000 flows."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from ngslab import (Lab, Ngstack, check, drops, events, host_lab_config, lock_table, run_test,  # noqa: E402
                    service, sh, workers_arg)

WORKERS = workers_arg()
PY = "/usr/bin/python3"
UDP_FLOWS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "udp_flows.py")
NGSTACK_ADDR = "198.18.1.1"
FLOWS = 1000
PAYLOAD = 32  # bytes per udp_flows datagram
NC_TEXT = "hello ngstack"
DISCARD_COUNT, DISCARD_SIZE = 2000, 100
UNBOUND_PORT, UNBOUND_TRIES = 19999, 3
# (locking, udp dispatch mode or None for the default, datagrams over the 1 000 flows)
RUNS = ([("group", None, 100000), ("giant", None, 20000)] if WORKERS == 1 else
        [("group", "deferred", 100000), ("giant", "direct", 20000)])

# Sends DISCARD_COUNT datagrams of DISCARD_SIZE bytes to port 9, paced, and
# prints how many answers came back in the second after (udp-discard: none).
DISCARD_CODE = """import socket, sys, time
addr, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((addr, 9))
for i in range(count):
    s.send(i.to_bytes(4, "big") + b"d" * (size - 4))
    if i % 100 == 99:
        time.sleep(0.005)
s.settimeout(1.0)
answers = 0
try:
    while True:
        s.recv(2048)
        answers += 1
except socket.timeout:
    pass
except ConnectionRefusedError:
    answers = -1
print(answers, flush=True)
"""

# A connected socket sends to a port nobody is bound to on ngstack, `tries`
# times; each time the ICMP port unreachable must come back as ECONNREFUSED
# on the next receive.
UNBOUND_CODE = """import socket, sys
addr, port, tries = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((addr, port))
s.settimeout(2.0)
out = []
for i in range(tries):
    s.send(b"anybody there?")
    try:
        s.recv(2048)
        out.append("answered")
    except ConnectionRefusedError:
        out.append("refused")
    except socket.timeout:
        out.append("timeout")
print(" ".join(out), flush=True)
"""


def in_ns(lab, cmd, timeout=30):
    return sh(f"ip netns exec {lab.host(1)} {cmd}", check=False, timeout=timeout)


def py_in_ns(lab, code, *args, timeout=30):
    """Python `code` run with `args` in h1's namespace."""
    return subprocess.run(["ip", "netns", "exec", lab.host(1), PY, "-c", code, *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def udp_workstreams(summary):
    return [w for w in summary["netisr"]["workstreams"] if w["protocol"] == "udp"]


def check_summary(s, locking, udp_mode, count):
    """Everything the JSON summary must say after one run of `count`
    datagrams over the flows, one nc datagram, the discards and the
    datagrams to the unbound port."""
    check(s["mode"] == "host", f"mode: {s['mode']}")
    check(s["ok"] and s["totals"]["balanced"], f"rx + originated == tx + drops + consumed: {s['totals']}")
    check(all(m["full"] for m in s["mempools"]), f"every mbuf back in its pool: {s['mempools']}")
    check(len(s["workers"]) == WORKERS, f"{WORKERS} worker(s): {[w['lcore'] for w in s['workers']]}")

    echo, discard = service(s, "udp-echo", 7), service(s, "udp-discard", 9)
    print("udp-echo:", json.dumps(echo), "\nudp-discard:", json.dumps(discard), flush=True)
    echo_rx = count + 1  # the flows' datagrams and nc's
    echo_bytes = count * PAYLOAD + len(NC_TEXT) + 1  # nc sends the line with its newline
    check(echo["rx_datagrams"] == echo_rx and echo["tx_datagrams"] == echo_rx,
          f"udp-echo: {echo_rx} datagrams in and out: {echo}")
    check(echo["rx_bytes"] == echo_bytes and echo["tx_bytes"] == echo_bytes, f"udp-echo: {echo_bytes} bytes: {echo}")
    for key in ("tx_no_mbuf", "tx_queue_full", "tx_unroutable", "icmp_errors"):
        check(echo[key] == 0 and discard[key] == 0, f"{key} == 0: echo {echo}, discard {discard}")
    check(echo["address"] == "0.0.0.0" and echo["sockets"] >= 1, f"udp-echo bound to any address: {echo}")
    check(discard["rx_datagrams"] == DISCARD_COUNT and discard["rx_bytes"] == DISCARD_COUNT * DISCARD_SIZE
          and discard["tx_datagrams"] == 0 and discard["tx_bytes"] == 0,
          f"udp-discard: {DISCARD_COUNT} datagrams of {DISCARD_SIZE} bytes in, none out: {discard}")

    delivered, sent = events(s, "udp_delivered"), events(s, "udp_sent")
    check(delivered == echo_rx + DISCARD_COUNT, f"udp_delivered {delivered} == {echo_rx} + {DISCARD_COUNT}")
    check(sent == echo_rx, f"udp_sent {sent} == the echoes {echo_rx}")
    check(drops(s, "udp_no_socket") == UNBOUND_TRIES, f"udp_no_socket {drops(s, 'udp_no_socket')}")
    check(events(s, "icmp_errors_out") == UNBOUND_TRIES, f"icmp_errors_out {events(s, 'icmp_errors_out')}")
    for name in ("udp_truncated", "udp_bad_length", "udp_bad_checksum", "ipv4_not_forwarding"):
        check(drops(s, name) == 0, f"{name} {drops(s, name)}")
    check(events(s, "udp_length_trimmed") == 0, "nothing trimmed")
    check(events(s, "icmp_echo_replies") >= 3, f"echo replies {events(s, 'icmp_echo_replies')}")

    locks = s["locks"]
    table = lock_table(s, "udp")
    print("locks:", json.dumps({k: locks[k] for k in ("locking", "lock_type", "groups")}),
          json.dumps({k: table[k] for k in ("lookups", "acquisitions_per_packet", "live")}),
          json.dumps({c: {k: v[k] for k in ("acquisitions", "contended", "wait_cycles", "hold_cycles")}
                      for c, v in table["classes"].items()}), flush=True)
    check(locks["locking"] == locking and locks["groups"] == 128, f"locks: {locks['locking']}, {locks['groups']}")
    check(table["lookups"] >= echo_rx + DISCARD_COUNT, f"udp lookups {table['lookups']}: one per datagram at least")
    taken, other = ("pcb_group", "pcb_giant") if locking == "group" else ("pcb_giant", "pcb_group")
    check(taken in table["classes"] and table["classes"][taken]["acquisitions"] > 0,
          f"{locking} locking takes {taken}: {table['classes']}")
    check(table["classes"].get(other, {}).get("acquisitions", 0) == 0,
          f"{locking} locking never takes {other}: {table['classes']}")
    for c, v in table["classes"].items():
        check(v["contended"] <= v["acquisitions"] and v["wait_max"] <= v["wait_cycles"],
              f"lock class {c}: consistent counters: {v}")

    ws = udp_workstreams(s)
    print("udp workstreams:", [{k: w[k] for k in ("lcore", "dispatched", "queued", "handled", "qdrops")} for w in ws],
          flush=True)
    check(sum(w["qdrops"] for w in ws) == 0, f"no udp datagram dropped at a netisr queue: {ws}")
    udp_in = echo_rx + DISCARD_COUNT + UNBOUND_TRIES
    if udp_mode == "deferred":
        check(sum(w["queued"] for w in ws) >= udp_in and sum(w["dispatched"] for w in ws) == 0,
              f"udp deferred: every datagram through a netisr queue: {ws}")
    elif udp_mode == "direct":
        check(sum(w["dispatched"] for w in ws) >= udp_in and sum(w["queued"] for w in ws) == 0,
              f"udp direct: every datagram handled where it was received: {ws}")
    if WORKERS == 2:
        per_worker = {w["lcore"]: (w["rx_packets"], w["events"]["udp_delivered"]) for w in s["workers"]}
        print("per worker (rx packets, udp delivered):", per_worker, flush=True)
        check(all(rx > 0 and d > 0 for rx, d in per_worker.values()),
              f"both workers receive and deliver datagrams of the flows: {per_worker}")


def run(locking, udp_mode, count):
    prefix = f"ngt-host-{os.getpid()}"
    print(f"--- {WORKERS} worker(s), locking {locking}, udp {udp_mode or 'default'}: {count} datagrams "
          f"over {FLOWS} flows", flush=True)
    with Lab("host") as lab, Ngstack(host_lab_config(lab, prefix, workers=WORKERS, udp_mode=udp_mode,
                                                     locking=locking)) as ng:
        ng.wait_running()
        # (a) ICMP echo; it also settles ARP both ways before the flows start.
        r = in_ns(lab, f"ping -n -c 3 -i 0.2 -W 2 {NGSTACK_ADDR}")
        check(r.returncode == 0 and " 0% packet loss" in r.stdout,
              f"ping ngstack:\n{r.stdout}{r.stderr}\n{ng.output()}")

        # (b) udp-echo with nc.
        r = sh(f"echo '{NC_TEXT}' | ip netns exec {lab.host(1)} timeout 10 nc -u -w1 {NGSTACK_ADDR} 7", check=False,
               timeout=20)
        check(r.stdout == NC_TEXT + "\n", f"nc -u to udp-echo: got {r.stdout!r} (exit {r.returncode}) {r.stderr}")
        print("ok: ping and nc -u to udp-echo", flush=True)

        # (c) 1 000 flows, every datagram back, each flow in order. The client
        # shares the main lcore's CPU, so that lcore 1's stays lcore 1's.
        r = in_ns(lab, f"taskset -c 0 {PY} {UDP_FLOWS} {NGSTACK_ADDR} 7 --flows {FLOWS} --count {count} "
                       f"--payload {PAYLOAD} --window 4 --inflight 256 --deadline 80", timeout=100)
        check(r.returncode == 0, f"udp_flows.py exit {r.returncode}: {r.stderr}")
        res = json.loads(r.stdout)
        print("udp_flows:", json.dumps(res), flush=True)
        check(res["sent"] == count and res["received"] == count and res["missing"] == 0
              and res["flows_complete"] == FLOWS and res["gave_up"] is None,
              f"every datagram of every flow back: {res}\n{ng.output()}")
        for key in ("reordered", "duplicates", "corrupt", "foreign", "late"):
            check(res[key] == 0, f"udp_flows: {key}: {res}")

        # (d) udp-discard: counted, never answered.
        r = py_in_ns(lab, DISCARD_CODE, NGSTACK_ADDR, DISCARD_COUNT, DISCARD_SIZE)
        check(r.returncode == 0 and r.stdout.strip() == "0", f"udp-discard answers nothing: {r.stdout!r} {r.stderr}")

        # (e) an unbound port: ICMP port unreachable -> ECONNREFUSED.
        r = py_in_ns(lab, UNBOUND_CODE, NGSTACK_ADDR, UNBOUND_PORT, UNBOUND_TRIES)
        check(r.stdout.split() == ["refused"] * UNBOUND_TRIES,
              f"port {UNBOUND_PORT}: ECONNREFUSED on each try: {r.stdout!r} {r.stderr}")
        print("ok: udp-discard silent; ICMP port unreachable reaches the Linux socket", flush=True)

        rc = ng.stop()
        check(rc == 0, f"ngstack exit {rc}:\n{ng.output()}")
        check_summary(ng.summary(), locking, udp_mode, count)
        print(f"ok: locking {locking}, udp {udp_mode or 'default'}", flush=True)


def test_host_linux():
    for locking, udp_mode, count in RUNS:
        run(locking, udp_mode, count)


if __name__ == "__main__":
    run_test(test_host_linux)
