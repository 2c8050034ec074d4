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
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

ECHO_ADDR, CLIENT_ADDR, PREFIX_LEN = "198.18.0.1", "198.18.0.2", 24
ECHO_MAC, CLIENT_MAC = "02:00:00:00:0e:01", "02:00:00:00:0c:01"
ECHO_PORT = 7
MEMIF_RSIZE = 11  # 2048 slots per ring: more than the 1024 requests 256 flows x window 4 keep in flight
# The client sends for the trial (udp-client's duration_ms); its process runs
# this much longer: before, its first request waits for ARP; after, the
# requests still outstanding come back. The transactions/s it reports run
# from its first request to its last response.
CLIENT_LEAD_S = 0.5
DRAIN_S = 0.5
START_TIMEOUT_S = 30


def default_point():
    return {"locking": "group", "workers": 1, "client_workers": 0, "dispatch_mode": "direct", "flows": 256,
            "window": 4, "payload": 64, "groups": 128, "lock_type": "spin"}


def client_workers(point):
    return point["client_workers"] or point["workers"]


# ---------------------------------------------------------------------------
# Where each side runs

def usable_cpus():
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:
        return list(range(os.cpu_count()))


def auto_placement(max_echo, max_client, cpus=None):
    """CPUs for each side: {"echo": {"main": c, "workers": [...]}, "client": ...}.
    With 1 + max_echo + max_client CPUs or more: both main lcores on the first
    CPU, the echo workers on the next max_echo, the client's on the next
    max_client, each worker on a CPU of its own. With fewer: the CPUs after
    the first are split between the sides (echo first); on 2 CPUs the echo
    workers share the second and the client's share the first with both main
    lcores (which sleep); on 1 CPU everything shares it."""
    cpus = cpus or usable_cpus()
    first, rest = cpus[0], cpus[1:]
    if len(rest) >= max_echo + max_client:
        echo, client = rest[:max_echo], rest[max_echo:max_echo + max_client]
    elif len(rest) >= 2:
        half = min(len(rest) - 1, max(1, round(len(rest) * max_echo / (max_echo + max_client))))
        echo, client = rest[:half], rest[half:]
    elif rest:
        echo, client = rest, [first]
    else:
        echo, client = [first], [first]
    return {"echo": {"main": first, "workers": echo}, "client": {"main": first, "workers": client}}


def worker_cpus(side, n):
    """The CPU of each of a side's n workers: worker i on workers[i % len]."""
    ws = side["workers"]
    return [ws[i % len(ws)] for i in range(n)]


def oversubscription(placement, echo_workers, n_client):
    """None when every worker of both processes has a CPU of its own, else
    which workers share a CPU (busy-polling workers time-share it: rates are
    then no per-core rates)."""
    owners = {}
    for name, n in (("echo", echo_workers), ("client", n_client)):
        for i, c in enumerate(worker_cpus(placement[name], n)):
            owners.setdefault(c, []).append(f"{name} worker {i}")
    shared = {c: who for c, who in owners.items() if len(who) > 1}
    if not shared:
        return None
    return "; ".join(f"CPU {c}: {', '.join(who)}" for c, who in sorted(shared.items()))


def placement_text(placement):
    text = "; ".join(f"{n}: main lcore on CPU {p['main']}, workers on CPU(s) {','.join(map(str, p['workers']))}"
                     for n, p in placement.items())
    mains = {p["main"] for p in placement.values()}
    beside = sorted(mains & {c for p in placement.values() for c in p["workers"]})
    if beside:
        text += f" (workers on CPU {','.join(map(str, beside))} share it with the main lcores, which mostly sleep)"
    return text


# ---------------------------------------------------------------------------
# ngstack

def side_yaml(role, point, side, sock, prefix, send_ms=0):
    """The config of one side: role "echo" (memif server, udp-echo on port 7)
    or "client" (memif client, udp-client to the echo side, sending for
    send_ms)."""
    n = point["workers"] if role == "echo" else client_workers(point)
    # Both ends of the memif link get as many queue pairs as the larger side
    # has workers (memif's server must offer every ring the client asks for).
    queues = max(point["workers"], client_workers(point))
    lmap = {0: side["main"], **{l + 1: c for l, c in enumerate(worker_cpus(side, n))}}
    lcore_cpus = ", ".join(f"{l}: {c}" for l, c in lmap.items() if l != c)
    memif_role, mac, addr = ("server", ECHO_MAC, ECHO_ADDR) if role == "echo" else ("client", CLIENT_MAC, CLIENT_ADDR)
    if role == "echo":
        service = f"  - {{type: udp-echo, port: {ECHO_PORT}}}\n"
    else:
        service = (f"  - {{type: udp-client, server: {ECHO_ADDR}, port: {ECHO_PORT}, flows: {point['flows']}, "
                   f"window: {point['window']}, payload: {point['payload']}, rate: 0, duration_ms: {send_ms}}}\n")
    return f"""mode: host
eal:
  main_lcore: 0
  memory_mb: 512
  no_huge: true
  file_prefix: {prefix}
{f"  lcore_cpus: {{{lcore_cpus}}}" + chr(10) if lcore_cpus else ""}ports:
  - name: p0
    device: "net_memif0,role={memif_role},socket={sock},rsize={MEMIF_RSIZE},mac={mac}"
    rx_queues: {queues}
    tx_queues: {queues}
workers:
  lcores: [{", ".join(str(l) for l in range(1, n + 1))}]
host:
  interfaces:
    - port: p0
      addresses: [{addr}/{PREFIX_LEN}]
services:
{service}stack:
  groups: {point['groups']}
  locking: {point['locking']}
  lock_type: {point['lock_type']}
dispatch:
  protocols:
    udp: {{mode: {point['dispatch_mode']}}}
"""


def start(binary, config, json_path, log_path, duration):
    log = open(log_path, "w")
    p = subprocess.Popen([binary, "--config", config, "--duration", f"{duration:g}", "--json", json_path, "--quiet"],
                         stdout=log, stderr=subprocess.STDOUT, text=True)
    p.log, p.log_path, p.config = log, log_path, config
    return p


def tail(path, n=3000):
    try:
        with open(path) as f:
            return f.read()[-n:]
    except OSError:
        return ""


def wait_running(p):
    """Returns once ngstack says its workers run."""
    deadline = time.time() + START_TIMEOUT_S
    while time.time() < deadline:
        if p.poll() is not None:
            raise RuntimeError(f"ngstack ({p.config}) exited {p.returncode} while starting:\n{tail(p.log_path)}")
        if "running in" in tail(p.log_path, 1 << 20):
            return
        time.sleep(0.05)
    p.kill()
    raise RuntimeError(f"ngstack ({p.config}) did not start within {START_TIMEOUT_S} s (see {p.log_path})")


def finish(p, timeout, stop=False):
    """Waits for ngstack to end; stop: SIGINT first (the summary is written
    as at the end of --duration)."""
    if stop and p.poll() is None:
        p.send_signal(signal.SIGINT)
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise RuntimeError(f"ngstack ({p.config}) did not stop (see {p.log_path})")
    finally:
        p.log.close()
    if p.returncode != 0:
        raise RuntimeError(f"ngstack ({p.config}) exited {p.returncode}:\n{tail(p.log_path)}")


def service(summary, kind):
    for s in summary.get("services", []):
        if s.get("type") == kind:
            return s
    raise RuntimeError(f"no {kind} service in the summary")


def lock_figures(summary, locking, table="udp"):
    """From a summary's `locks` section: the pcb class that was taken
    (pcb_giant under giant, pcb_group under group) of the udp table."""
    locks = summary.get("locks") or {}
    cls_name = "pcb_giant" if locking == "giant" else "pcb_group"
    for t in locks.get("tables", []):
        if t.get("name") != table:
            continue
        for c in t.get("classes", []):
            if c.get("class") == cls_name:
                acq = c.get("acquisitions", 0)
                return {"lock_class": cls_name, "acquisitions": acq, "contended": c.get("contended", 0),
                        "contended_share": c["contended"] / acq if acq else 0.0,
                        "wait_cycles_per_acquisition": c["wait_cycles"] / acq if acq else 0.0,
                        "hold_cycles_per_acquisition": c["hold_cycles"] / acq if acq else 0.0,
                        "wait_max": c.get("wait_max", 0),
                        "acquisitions_per_packet": t.get("acquisitions_per_packet", 0.0),
                        "lookups": t.get("lookups", 0)}
        raise RuntimeError(f"locks: table {table} has no class {cls_name}")
    raise RuntimeError(f"locks: no table {table} in the summary")


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
    paths = {}
    # The echo side's own --duration outlasts the client's (it is stopped
    # with SIGINT once the client has ended).
    for role in ("echo", "client"):
        paths[role] = {ext: os.path.join(keep_dir, f"{tag}-{role}.{ext}") for ext in ("yaml", "json", "log")}
        with open(paths[role]["yaml"], "w") as f:
            f.write(side_yaml(role, point, placement[role], sock, f"ngs-udprr-{role}-{pid}",
                              int(round(seconds * 1000)) if role == "client" else 0))
        if os.path.exists(paths[role]["json"]):
            os.unlink(paths[role]["json"])
    client_duration = CLIENT_LEAD_S + seconds + DRAIN_S
    echo = start(binary, paths["echo"]["yaml"], paths["echo"]["json"], paths["echo"]["log"],
                 client_duration + START_TIMEOUT_S + 10)
    try:
        wait_running(echo)
        client = start(binary, paths["client"]["yaml"], paths["client"]["json"], paths["client"]["log"],
                       client_duration)
        finish(client, client_duration + START_TIMEOUT_S + 30)
    except BaseException:
        # SIGINT first: a killed ngstack leaves its EAL runtime folder behind.
        if echo.poll() is None:
            echo.send_signal(signal.SIGINT)
            try:
                echo.wait(timeout=15)
            except subprocess.TimeoutExpired:
                echo.kill()
                echo.wait()
        echo.log.close()
        raise
    finish(echo, 30, stop=True)
    with open(paths["client"]["json"]) as f:
        cs = json.load(f)
    with open(paths["echo"]["json"]) as f:
        es = json.load(f)
    out = client_figures(cs, es, tag, keep_dir)
    out["per_core_tps"] = out["tps"] / point["workers"]
    out.update(lock_figures(es, point["locking"]))
    client_locks = lock_figures(cs, point["locking"])
    out["client_contended_share"] = client_locks["contended_share"]
    out["client_acquisitions_per_packet"] = client_locks["acquisitions_per_packet"]
    return out


def client_figures(cs, es, tag, where):
    """Transactions/s and what goes with them, from the client's and the echo
    side's summaries (services[]); as a cross check, the median of the
    client's per-second receive rates after the first second (each response
    is one packet received)."""
    rates = [i["rx_pps"] for i in cs.get("intervals", [])[1:] if i["rx_pps"] > 0]
    c, e = service(cs, "udp-client"), service(es, "udp-echo")
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
    srv_cpus = worker_cpus(placement["echo"], n_srv)
    if n_srv == 1:
        server_cmd = ["taskset", "-c", str(srv_cpus[0]), "sockperf", "server", "-i", "127.0.0.1", "-p", str(ports[0])]
    else:
        with open(feed, "w") as f:
            f.write("".join(f"U:127.0.0.1:{p}\n" for p in ports))
        server_cmd = ["taskset", "-c", ",".join(map(str, sorted(set(srv_cpus)))), "sockperf", "server", "-f", feed,
                      "--threads-num", str(n_srv), "--cpu-affinity", ",".join(map(str, srv_cpus))]
    server_cmd += poll
    clients = []
    for i, cpu in enumerate(worker_cpus(placement["client"], n_cli)):
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
    record = os.path.join(keep_dir, f"{tag}.txt")
    slog_path = os.path.join(workdir, f"{tag}-sockperf-server.log")
    slog = open(slog_path, "w")
    server = subprocess.Popen(server_cmd, stdout=slog, stderr=subprocess.STDOUT, text=True)
    outs = []
    try:
        # The server is ready when every thread says how it waits ("using epoll() ...").
        deadline = time.time() + 10
        while time.time() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"sockperf server exited {server.returncode}:\n{tail(slog_path)}")
            if tail(slog_path, 1 << 20).count("] using ") >= point["workers"]:
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"sockperf server did not start within 10 s:\n{tail(slog_path)}")
        procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for c in client_cmds]
        for p in procs:
            out, _ = p.communicate(timeout=seconds + 60)
            outs.append(out)
            if p.returncode != 0:
                raise RuntimeError(f"sockperf ping-pong exited {p.returncode}:\n{ANSI.sub('', out)[-3000:]}")
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        slog.close()
        with open(record, "w") as f:
            f.write("$ " + " ".join(server_cmd) + "\n")
            for c, o in zip(client_cmds, outs):
                f.write("$ " + " ".join(c) + "\n" + ANSI.sub("", o) + "\n")
            f.write("--- server\n" + ANSI.sub("", tail(slog_path, 20000)))
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
    placement = auto_placement(point["workers"], client_workers(point))
    print(f"machine: {benchlib.machine()}")
    print(f"placement: {placement_text(placement)}")
    over = oversubscription(placement, point["workers"], client_workers(point))
    if over:
        print(f"oversubscribed: {over}")
    tmp = tempfile.mkdtemp(prefix="ngstack-udprr-")
    keep = a.keep or tmp
    os.makedirs(keep, exist_ok=True)
    try:
        r = run_ngstack(point, placement, a.seconds, tmp, "udprr", a.ngstack, keep)
        print(json.dumps(r, indent=2))
        if not a.no_peer:
            s = run_sockperf(point, placement, a.seconds, tmp, "udprr-sockperf", keep_dir=keep)
            print(f"sockperf: {s['tps']:.0f} transactions/s ({s['clients']} client(s), burst {s['burst']}); "
                  f"ngstack/sockperf {r['tps'] / s['tps']:.3f}")
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
