#!/usr/bin/python3
"""UDP request/response transactions per second: an ngstack udp-client
against an ngstack udp-echo, beside Linux kernel UDP on loopback (sockperf).

Two ngstack processes in host mode, joined by one net_memif link (the echo
side is the memif server, the client side connects to it), on 198.18.0.1/24
(echo) and 198.18.0.2/24 (client). The client's udp-client keeps `window`
requests outstanding on each of `flows` connected UDP sockets (closed loop)
and reports transactions per second; the echo side's summary reports its
connection table's locks (stack.locking giant or group). Both sides run the
same udp dispatch mode (dispatch.protocols.udp.mode) and lock settings; each
side's workers are pinned to CPUs of their own where the machine has them.

The peer is Linux UDP on 127.0.0.1: `sockperf server` (one thread per echo
worker, one socket each) and one `sockperf ping-pong` per client worker,
each keeping `burst` messages outstanding, pinned to the same CPUs as the
ngstack sides; busy polling (non-blocking sockets, epoll timeout 0) as DPDK
polls, unless told otherwise.

`ngstack lab perf/experiments/udp-groups.yaml` runs a sweep (kind udp-rr,
perf/lab.py); this program runs one point:

  perf/udp_rr.py [--locking group] [--workers 1] [--client-workers N] [--dispatch-mode direct]
                 [--flows 256] [--window 4] [--payload 64] [--seconds 3] [--no-peer] [--keep DIR]
"""
import argparse
import json
import os
import re
import shutil
import socket
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
import hostpair  # noqa: E402

ECHO_ADDR, CLIENT_ADDR = "198.18.0.1", "198.18.0.2"
ECHO_MAC, CLIENT_MAC = "02:00:00:00:0e:01", "02:00:00:00:0c:01"
ECHO_PORT = 7
# The client sends for the trial (udp-client's duration_ms); its process runs
# this much longer: before, its first request waits for ARP; after, the
# requests still outstanding come back. The transactions/s it reports run
# from its first request to its last response.
CLIENT_LEAD_S = 0.5
DRAIN_S = 0.5


def default_point():
    return {"locking": "group", "workers": 1, "client_workers": 0, "dispatch_mode": "direct", "flows": 256,
            "window": 4, "payload": 64, "groups": 128, "lock_type": "spin"}


def client_workers(point):
    return point["client_workers"] or point["workers"]


# ---------------------------------------------------------------------------
# ngstack (hostpair.py: placement, processes, summaries)

SIDES = ("echo", "client")


def placement(max_echo, max_client):
    return hostpair.auto_placement(max_echo, max_client, SIDES)


def oversubscription(placement, point):
    return hostpair.oversubscription(placement, {"echo": point["workers"], "client": client_workers(point)})


def side_yaml(role, point, side, sock, prefix, send_ms=0):
    """The config of one side: role "echo" (memif server, udp-echo on port 7)
    or "client" (memif client, udp-client to the echo side, sending for
    send_ms)."""
    if role == "echo":
        service = f"  - {{type: udp-echo, port: {ECHO_PORT}}}\n"
        memif_role, mac, addr, n = "server", ECHO_MAC, ECHO_ADDR, point["workers"]
    else:
        service = (f"  - {{type: udp-client, server: {ECHO_ADDR}, port: {ECHO_PORT}, flows: {point['flows']}, "
                   f"window: {point['window']}, payload: {point['payload']}, rate: 0, duration_ms: {send_ms}}}\n")
        memif_role, mac, addr, n = "client", CLIENT_MAC, CLIENT_ADDR, client_workers(point)
    return hostpair.side_yaml(memif_role=memif_role, sock=sock, mac=mac, addr=addr, workers=n,
                              queues=max(point["workers"], client_workers(point)), side=side, prefix=prefix,
                              services=service, point=point, protocol="udp")


def run_ngstack(point, placement, seconds, workdir, tag, binary=benchlib.NGSTACK, keep_dir=None):
    """One trial: the echo side starts (memif server), then the client, which
    sends for `seconds`. Returns a dict of figures. The configs, logs and
    JSON summaries stay in keep_dir (default workdir) as TAG-echo.* and
    TAG-client.*."""
    keep_dir = keep_dir or workdir
    sock = os.path.join(workdir, f"{tag}.sock")
    if os.path.exists(sock):
        os.unlink(sock)
    pid = os.getpid()
    configs = {role: side_yaml(role, point, placement[role], sock, f"ngs-udprr-{role}-{pid}",
                               int(round(seconds * 1000)) if role == "client" else 0) for role in SIDES}
    sums = hostpair.run_pair(binary, keep_dir, tag, configs, CLIENT_LEAD_S + seconds + DRAIN_S)
    cs, es = sums["client"], sums["echo"]
    out = client_figures(cs, es, tag, keep_dir)
    out["per_core_tps"] = out["tps"] / point["workers"]
    out.update(hostpair.lock_figures(es, point["locking"], "udp"))
    client_locks = hostpair.lock_figures(cs, point["locking"], "udp")
    out["client_contended_share"] = client_locks["contended_share"]
    out["client_acquisitions_per_packet"] = client_locks["acquisitions_per_packet"]
    return out


def client_figures(cs, es, tag, where):
    """Transactions/s and what goes with them, from the client's and the echo
    side's summaries (services[]); as a cross check, the median of the
    client's per-second receive rates after the first second (each response
    is one packet received)."""
    rates = [i["rx_pps"] for i in cs.get("intervals", [])[1:] if i["rx_pps"] > 0]
    c, e = hostpair.service(cs, "udp-client"), hostpair.service(es, "udp-echo")
    lat = c.get("latency_us") or {}
    out = {"tps": c["transactions_per_s"], "requests": c.get("requests", 0), "responses": c.get("responses", 0),
           "lost": c.get("lost", 0), "late": c.get("late", 0), "client_seconds": c.get("seconds", 0.0),
           "latency_p50_us": lat.get("p50", 0), "latency_p99_us": lat.get("p99", 0),
           "echo_rx": e.get("rx_datagrams", 0), "echo_tx": e.get("tx_datagrams", 0),
           "echo_tx_dropped": sum(e.get(k, 0) for k in ("tx_no_mbuf", "tx_queue_full", "tx_unroutable")),
           "interval_tps": statistics.median(rates) if rates else 0.0}
    if not out["responses"]:
        raise RuntimeError(f"{tag}: the client got no responses: it sent {out['requests']} requests (lost "
                           f"{out['lost']}); the echo side received {out['echo_rx']} and sent {out['echo_tx']}. "
                           f"Configs, logs and summaries: {where}/{tag}-*")
    return out


# ---------------------------------------------------------------------------
# sockperf: Linux UDP on loopback

ANSI = re.compile(r"\x1b\[[0-9;]*m")
VALID = re.compile(r"\[Valid Duration\] RunTime=([\d.]+) sec; SentMessages=(\d+); ReceivedMessages=(\d+)")
PERCENTILE = re.compile(r"percentile\s+([\d.]+)\s*=\s*([\d.]+)")
AVG = re.compile(r"avg-latency=([\d.]+)")


def parse_ping_pong(text):
    """sockperf ping-pong's output: {"seconds", "sent", "received", "tps",
    "latency_avg_us", "latency_p50_us", "latency_p99_us"} (latency: half the
    round trip, as sockperf reports it)."""
    text = ANSI.sub("", text)
    m = VALID.search(text)
    if not m:
        raise ValueError("no [Valid Duration] line in sockperf's output:\n" + text[-2000:])
    secs, sent, received = float(m.group(1)), int(m.group(2)), int(m.group(3))
    pct = {float(k): float(v) for k, v in PERCENTILE.findall(text)}
    avg = AVG.search(text)
    return {"seconds": secs, "sent": sent, "received": received, "tps": received / secs if secs else 0.0,
            "latency_avg_us": float(avg.group(1)) if avg else 0.0, "latency_p50_us": pct.get(50.0, 0.0),
            "latency_p99_us": pct.get(99.0, 0.0)}


def free_udp_ports(n):
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def sockperf_commands(point, placement, seconds, burst, busy_poll, feed):
    """(server command, [client command, ...], ports): one server socket and
    thread per echo worker, one ping-pong client per client worker."""
    n_srv, n_cli = point["workers"], client_workers(point)
    ports = free_udp_ports(n_srv)
    poll = ["--nonblocked", "--timeout", "0"] if busy_poll else []
    srv_cpus = hostpair.worker_cpus(placement["echo"], n_srv)
    if n_srv == 1:
        server_cmd = ["taskset", "-c", str(srv_cpus[0]), "sockperf", "server", "-i", "127.0.0.1", "-p", str(ports[0])]
    else:
        with open(feed, "w") as f:
            f.write("".join(f"U:127.0.0.1:{p}\n" for p in ports))
        server_cmd = ["taskset", "-c", ",".join(map(str, sorted(set(srv_cpus)))), "sockperf", "server", "-f", feed,
                      "--threads-num", str(n_srv), "--cpu-affinity", ",".join(map(str, srv_cpus))]
    server_cmd += poll
    clients = []
    for i, cpu in enumerate(hostpair.worker_cpus(placement["client"], n_cli)):
        # sockperf takes whole seconds; its messages are at least 14 bytes.
        client_cmd = ["taskset", "-c", str(cpu), "sockperf", "ping-pong", "-i", "127.0.0.1", "-p",
                      str(ports[i % n_srv]), "-t", str(max(1, int(round(seconds)))),
                      "-m", str(max(14, point["payload"])), "-b", str(burst)] + poll
        clients.append(client_cmd)
    return server_cmd, clients, ports


def run_sockperf(point, placement, seconds, workdir, tag, burst=None, busy_poll=True, keep_dir=None):
    """Linux UDP on loopback with sockperf; returns {"tps", ...} (the clients'
    replies per second, summed) and writes the command lines and outputs to
    keep_dir as TAG-sockperf.txt."""
    keep_dir = keep_dir or workdir
    burst = burst or point["window"]
    feed = os.path.join(workdir, f"{tag}-sockperf-feed.txt")
    server_cmd, client_cmds, ports = sockperf_commands(point, placement, seconds, burst, busy_poll, feed)
    # The server is ready when every thread says how it waits ("using epoll() ...").
    outs = hostpair.run_loopback_peer("sockperf", server_cmd, lambda log: log.count("] using ") >= point["workers"],
                                      client_cmds, workdir, tag, os.path.join(keep_dir, f"{tag}.txt"),
                                      seconds + 60, clean=lambda text: ANSI.sub("", text))
    res = [parse_ping_pong(o) for o in outs]
    return {"tps": sum(r["tps"] for r in res), "clients": len(res), "burst": burst, "busy_poll": busy_poll,
            "latency_p50_us": statistics.median(r["latency_p50_us"] for r in res),
            "latency_p99_us": max(r["latency_p99_us"] for r in res)}


# ---------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = default_point()
    ap.add_argument("--locking", choices=["giant", "group"], default=d["locking"])
    ap.add_argument("--workers", type=int, default=1, help="echo side's workers")
    ap.add_argument("--client-workers", type=int, default=0, help="client side's workers (default: as --workers)")
    ap.add_argument("--dispatch-mode", choices=["direct", "hybrid", "deferred"], default="direct")
    ap.add_argument("--flows", type=int, default=d["flows"])
    ap.add_argument("--window", type=int, default=d["window"])
    ap.add_argument("--payload", type=int, default=d["payload"])
    ap.add_argument("--groups", type=int, default=d["groups"])
    ap.add_argument("--lock-type", default=d["lock_type"])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--no-peer", action="store_true", help="leave sockperf out")
    ap.add_argument("--keep", help="keep configs, logs and summaries in this folder")
    ap.add_argument("--ngstack", default=os.environ.get("NGSTACK", benchlib.NGSTACK))
    a = ap.parse_args()
    point = dict(d, locking=a.locking, workers=a.workers, client_workers=a.client_workers,
                 dispatch_mode=a.dispatch_mode, flows=a.flows, window=a.window, payload=a.payload, groups=a.groups,
                 lock_type=a.lock_type)
    where = placement(point["workers"], client_workers(point))
    tmp, keep = hostpair.one_point(benchlib.machine(), where, oversubscription(where, point), "ngstack-udprr-", a.keep)
    try:
        r = run_ngstack(point, where, a.seconds, tmp, "udprr", a.ngstack, keep)
        print(json.dumps(r, indent=2))
        if not a.no_peer:
            s = run_sockperf(point, where, a.seconds, tmp, "udprr-sockperf", keep_dir=keep)
            print(f"sockperf: {s['tps']:.0f} transactions/s ({s['clients']} client(s), burst {s['burst']}); "
                  f"ngstack/sockperf {r['tps'] / s['tps']:.3f}")
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
