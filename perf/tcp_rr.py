#!/usr/bin/python3
"""TCP transactions per second: an ngstack `clients:` generator against
ngstack's http service, beside Linux's own stack on loopback (wrk -> nginx).

Two ngstack processes in host mode, joined by one net_memif link (the server
side is the memif server, the client side connects to it), on 198.18.0.1/24
(server: the `http` service on port 80, a body of `body_bytes`) and
198.18.0.2/24 (client: one generator, closed loop, `concurrency`
connections open at a time, HTTP/1.1 GETs). Workload `short`: one request
per connection, then FIN (the rate is connections/s); `keepalive`:
`requests` GETs per connection, one after the other (the rate is
requests/s). Both sides run the same tcp dispatch mode
(dispatch.protocols.tcp.mode) and lock settings; the server side's summary
reports its connection table's locks (stack.locking giant or group) and
both sides' busy cycles give the cycles per transaction of the server and
of the generator.

The peer is Linux on 127.0.0.1: nginx (worker_processes = server workers,
pinned to the server side's CPUs, access log off, the same body, closing a
connection after `requests` requests as the generator does) and wrk
(threads = client workers, pinned to the client side's CPUs, the same
number of connections; `Connection: close` on every request for `short`).

`ngstack lab perf/experiments/tcp-locking.yaml` runs a sweep (kind tcp-rr,
perf/lab.py); this program runs one point:

  perf/tcp_rr.py [--workload short] [--locking group] [--workers 1] [--client-workers N]
                 [--dispatch-mode direct] [--groups 128] [--lock-type spin] [--concurrency 64]
                 [--requests 100] [--body-bytes 64] [--seconds 3] [--no-peer] [--keep DIR]
"""
import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
import hostpair  # noqa: E402

SERVER_ADDR, CLIENT_ADDR = "198.18.0.1", "198.18.0.2"
SERVER_MAC, CLIENT_MAC = "02:00:00:00:0e:02", "02:00:00:00:0c:02"
HTTP_PORT = 80
SIDES = ("server", "client")
# The generator opens connections for the trial (its duration_ms); its
# process may run this much longer: before, the first connection waits for
# ARP; after, the connections still open finish their requests (it stops by
# itself once they have: stop_when_done).
CLIENT_LEAD_S = 0.5
DRAIN_S = 1.5
# The client closes first, so its side of every connection spends 2 MSL in
# TIME-WAIT, a PCB and a port each (16 384 ephemeral ports): at 10 ms, 100 000
# connections/s hold 2 000.
CLIENT_MSL_MS = 10
CONNECTIONS = 65536
TIMEOUT_MS = 2000


def default_point():
    return {"workload": "short", "locking": "group", "workers": 1, "client_workers": 0, "dispatch_mode": "direct",
            "groups": 128, "lock_type": "spin", "concurrency": 64, "requests": 100, "body_bytes": 64}


def client_workers(point):
    return point["client_workers"] or point["workers"]


def requests_per_connection(point):
    return 1 if point["workload"] == "short" else point["requests"]


def unit(point):
    return "connections/s" if point["workload"] == "short" else "requests/s"


def placement(max_server, max_client):
    return hostpair.auto_placement(max_server, max_client, SIDES)


def oversubscription(placement, point):
    return hostpair.oversubscription(placement, {"server": point["workers"], "client": client_workers(point)})


# ---------------------------------------------------------------------------
# ngstack

def side_yaml(role, point, side, sock, prefix, open_ms=0):
    """The config of one side: role "server" (memif server, http on port 80)
    or "client" (memif client, a generator opening connections for open_ms)."""
    stack = f"  connections: {CONNECTIONS}\n"
    top = ""
    if role == "server":
        services = f"  - {{type: http, port: {HTTP_PORT}, body_bytes: {point['body_bytes']}}}\n"
        memif_role, mac, addr, n = "server", SERVER_MAC, SERVER_ADDR, point["workers"]
    else:
        services = ""
        top = f"""clients:
  stop_when_done: true
  generators:
    - name: {point['workload']}
      target: {SERVER_ADDR}:{HTTP_PORT}
      concurrency: {point['concurrency']}
      duration_ms: {open_ms}
      transaction: http
      path: /
      requests: {requests_per_connection(point)}
      close: fin
      timeout_ms: {TIMEOUT_MS}
"""
        stack += f"  tcp:\n    msl_ms: {CLIENT_MSL_MS}\n"
        memif_role, mac, addr, n = "client", CLIENT_MAC, CLIENT_ADDR, client_workers(point)
    return hostpair.side_yaml(memif_role=memif_role, sock=sock, mac=mac, addr=addr, workers=n,
                              queues=max(point["workers"], client_workers(point)), side=side, prefix=prefix,
                              services=services, point=dict(point, groups=point["groups"] or point["workers"]),
                              protocol="tcp", stack_extra=stack, top_extra=top)


def run_ngstack(point, placement, seconds, workdir, tag, binary=benchlib.NGSTACK, keep_dir=None, profile=False):
    """One trial: the server side starts (memif server), then the client,
    which opens connections for `seconds` and ends once they are done.
    Returns a dict of figures. The configs, logs and JSON summaries stay in
    keep_dir (default workdir) as TAG-server.* and TAG-client.*. profile:
    sample the server's workers with perf during the trial (`profile`: the
    share of their time in each part of the stack)."""
    keep_dir = keep_dir or workdir
    sock = os.path.join(workdir, f"{tag}.sock")
    if os.path.exists(sock):
        os.unlink(sock)
    pid = os.getpid()
    configs = {role: side_yaml(role, point, placement[role], sock, f"ngs-tcprr-{role}-{pid}",
                               int(round(seconds * 1000)) if role == "client" else 0) for role in SIDES}
    perf_data = os.path.join(workdir, f"{tag}-perf.data")
    during = (lambda srv: perf_record(srv, perf_data, seconds)) if profile else None
    sums = hostpair.run_pair(binary, keep_dir, tag, configs, CLIENT_LEAD_S + seconds + DRAIN_S, during)
    out = figures(point, sums["server"], sums["client"], tag, keep_dir)
    if profile:
        out["profile"] = perf_parts(perf_data, os.path.join(keep_dir, f"{tag}-server-perf.txt"))
        # The workers' CPU time per transaction, shared out as the samples were
        per_txn = sums["server"]["tsc_hz"] / out["per_core_rate"]
        out["profile_cycles_per_transaction"] = {k: v * per_txn for k, v in out["profile"].items()}
    out.update(hostpair.lock_figures(sums["server"], point["locking"], "tcp"))
    out["acquisitions_per_transaction"] = out["acquisitions"] / out["transactions"]
    listen = class_figures(sums["server"], "tcp", "pcb_listen")
    out["listen_acquisitions_per_transaction"] = listen.get("acquisitions", 0) / out["transactions"]
    client_locks = hostpair.lock_figures(sums["client"], point["locking"], "tcp")
    out["client_contended_share"] = client_locks["contended_share"]
    out["client_acquisitions_per_transaction"] = client_locks["acquisitions"] / out["transactions"]
    return out


# ---------------------------------------------------------------------------
# Where the server's time goes: perf samples (cpu-clock: this VM has no
# hardware counters) of its worker threads, by symbol, in parts of the stack.
# Inlined code counts in the function it was inlined into.

# (part, DSO pattern, symbol pattern): the first that matches a sample's
# DSO and symbol names its part. The PMD's and libc's own functions are
# not all in their symbol tables; their DSO says where they are.
PARTS = [
    ("memif PMD (rx/tx, copies)", r"memif", ""),
    ("mbuf/mempool", r"librte_(mbuf|mempool|ring)|mempool_", ""),
    ("kernel", r"kernel", ""),
    ("libc (memcpy, memchr, ...)", r"libc", ""),
    ("pcb locks", r"libtbb|ngstack", r"spin_mutex|queuing_mutex|speculative|LockHold|PcbLock|witness"),
    ("pcb table (lookups, groups)", r"ngstack", r"ngstack::stack::pcb::"),
    ("tcp", r"ngstack", r"ngstack::stack::(tcp|socket)::"),
    ("http service", r"ngstack", r"services::.*[Hh]ttp"),
    ("ip/ether/arp", r"ngstack|librte_(fib|hash|net)", r"ngstack::stack::(ipv4|ether|arp|ifnet|modes)::|rte_"),
    ("netisr (dispatch, work queues)", r"ngstack", r"ngstack::dispatch::"),
    ("timers", r"ngstack", r"ngstack::stack::timer::"),
    ("worker loop (polling)", r"ngstack", r"ngstack::app::"),
]
WORKER_COMM = "rte-worker-"


def perf_record(srv, path, seconds):
    """perf record of the server process for the trial, from when the
    client's first connections are open."""
    time.sleep(CLIENT_LEAD_S + 0.2)
    return subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "2999", "-p", str(srv.pid), "-o", path,
                             "--", "sleep", f"{max(0.5, seconds - 0.4):g}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def perf_parts(path, report_path):
    """The share of the worker threads' samples in each of PARTS (and
    "other"); the full report by symbol is kept in report_path."""
    r = subprocess.run(["perf", "report", "-i", path, "--stdio", "--no-children", "--sort", "comm,dso,sym", "-q",
                        "--percent-limit", "0"], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"perf report failed:\n{r.stderr[-2000:]}")
    with open(report_path, "w") as f:
        f.write(r.stdout)
    shares, total = {}, 0.0
    for line in r.stdout.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+(\S+)\s+\[.\]\s+(.*)", line)
        if not m or not m.group(2).startswith(WORKER_COMM):
            continue
        pct, dso, sym = float(m.group(1)), m.group(3), m.group(4)
        part = next((name for name, d, rx in PARTS if re.search(d, dso) and re.search(rx, sym)), "other")
        shares[part] = shares.get(part, 0.0) + pct
        total += pct
    return {k: v / total for k, v in sorted(shares.items(), key=lambda kv: -kv[1])} if total else {}


def class_figures(summary, table, cls):
    for t in (summary.get("locks") or {}).get("tables", []):
        if t.get("name") == table:
            return next((c for c in t.get("classes", []) if c.get("class") == cls), {})
    return {}


def figures(point, ss, cs, tag, where):
    """The rate and what goes with it, from the generator's report (the
    client's `clients`) and the server's http service; cycles per
    transaction from each side's workers' busy cycles."""
    gens = cs.get("clients") or []
    if not gens:
        raise RuntimeError(f"{tag}: no clients section in the client's summary ({where}/{tag}-client.json)")
    g = gens[0]
    h = hostpair.service(ss, "http")
    errors = g["errors"]
    responses = g.get("responses", 0)
    if not responses:
        raise RuntimeError(f"{tag}: the generator got no responses: attempted {g.get('attempted', 0)}, established "
                           f"{g.get('established', 0)}, errors {errors}; the server received {h.get('requests', 0)} "
                           f"requests. Configs, logs and summaries: {where}/{tag}-*")
    lat = g.get("transaction_us") or {}
    conn = g.get("connect_us") or {}
    seconds = g.get("response_seconds", 0.0)
    out = {"rate": g["responses_per_s"], "transactions": responses, "seconds": seconds,
           "attempted": g.get("attempted", 0), "established": g.get("established", 0),
           "completed": g.get("completed", 0), "requests": g.get("requests", 0), "responses": responses,
           "errors": errors.get("total", 0), "errors_by_kind": {k: v for k, v in errors.items() if k != "total" and v},
           "connections_per_s": g.get("completed", 0) / seconds if seconds else 0.0,
           "responses_per_s": g["responses_per_s"],
           "non_2xx": sum(v for k, v in (g.get("http_status") or {}).items() if k != "2xx"),
           "latency_p50_us": lat.get("p50", 0), "latency_p99_us": lat.get("p99", 0),
           "connect_p50_us": conn.get("p50", 0),
           "server_requests": h.get("requests", 0), "server_responses": h.get("responses", 0),
           "server_cycles_per_transaction": hostpair.busy_cycles(ss) / responses,
           "client_cycles_per_transaction": hostpair.busy_cycles(cs) / responses,
           "server_busy_fraction": busy_fraction(ss), "client_busy_fraction": busy_fraction(cs)}
    out["per_core_rate"] = out["rate"] / point["workers"]
    return out


def busy_fraction(summary):
    ws = summary.get("workers", [])
    total = sum(w["total_cycles"] for w in ws)
    return hostpair.busy_cycles(summary) / total if total else 0.0


# ---------------------------------------------------------------------------
# Linux: wrk -> nginx on loopback

NGINX_CONF = """worker_processes {workers};
worker_cpu_affinity {affinity};
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 16384; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  keepalive_requests {keepalive_requests};
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{ default_type text/plain; return 200 "{body}"; }}
  }}
}}
"""
RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
TOTAL = re.compile(r"(\d+) requests in ([\d.]+)(\w+),")
SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


def free_tcp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def cpu_mask(cpu):
    return format(1 << cpu, "b")


def wrk_commands(point, placement, seconds, d):
    """(nginx command, [wrk command]), the nginx config written to d."""
    port = free_tcp_port()
    srv_cpus = hostpair.worker_cpus(placement["server"], point["workers"])
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF.format(workers=point["workers"], affinity=" ".join(cpu_mask(c) for c in srv_cpus), d=d,
                                  port=port, body="x" * point["body_bytes"],
                                  keepalive_requests=requests_per_connection(point)))
    nginx_cmd = ["taskset", "-c", ",".join(map(str, sorted(set(srv_cpus)))), "nginx", "-p", d, "-c",
             os.path.join(d, "nginx.conf")]
    cli_cpus = sorted(set(hostpair.worker_cpus(placement["client"], client_workers(point))))
    # wrk takes whole seconds; a connection per thread at least.
    wrk_cmd = ["taskset", "-c", ",".join(map(str, cli_cpus)), "wrk", "-t", str(client_workers(point)),
           "-c", str(max(point["concurrency"], client_workers(point))), "-d", f"{max(1, int(round(seconds)))}s",
           "--timeout", f"{TIMEOUT_MS // 1000}s"]
    if point["workload"] == "short":
        wrk_cmd += ["-H", "Connection: close"]
    wrk_cmd.append(f"http://127.0.0.1:{port}/")
    return nginx_cmd, [wrk_cmd], port


def parse_wrk(text):
    rps, total = RPS.search(text), TOTAL.search(text)
    if not rps or not total:
        raise ValueError("no Requests/sec in wrk's output:\n" + text[-2000:])
    errs = SOCKET_ERRORS.search(text)
    non2xx = NON_2XX.search(text)
    return {"rate": float(rps.group(1)), "requests": int(total.group(1)),
            "errors": sum(int(x) for x in errs.groups()) if errs else 0,
            "socket_errors": errs.group(0) if errs else "", "non_2xx": int(non2xx.group(1)) if non2xx else 0}


def cpu_busy():
    """Per CPU: (busy, all) jiffies from /proc/stat (busy: all but idle,
    iowait and steal)."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            m = re.match(r"cpu(\d+)\s+(.*)", line)
            if m:
                v = [int(x) for x in m.group(2).split()]
                idle = v[3] + v[4] + (v[7] if len(v) > 7 else 0)
                out[int(m.group(1))] = (sum(v[:8]) - idle, sum(v[:8]))
    return out


def run_wrk(point, placement, seconds, workdir, tag, keep_dir=None):
    """Linux on loopback with wrk and nginx; returns {"rate", ...} (wrk's
    Requests/sec: with `Connection: close`, connections/s) and how busy the
    server's and the client's CPUs were; writes the nginx config, the
    command lines and wrk's output to keep_dir as TAG.txt."""
    keep_dir = keep_dir or workdir
    d = os.path.join(workdir, f"{tag}-nginx")
    os.makedirs(d, exist_ok=True)
    nginx, wrks, port = wrk_commands(point, placement, seconds, d)
    record = os.path.join(keep_dir, f"{tag}.txt")
    before, t0 = [], []

    def ready(_log):
        if not listening(port):
            return False
        before.append(cpu_busy())
        t0.append(time.time())
        return True

    outs = hostpair.run_loopback_peer("nginx", nginx, ready, wrks, workdir, tag, record, seconds + 60)
    after = cpu_busy()
    with open(record, "a") as f, open(os.path.join(d, "nginx.conf")) as c:
        f.write("--- nginx.conf\n" + c.read())
    r = parse_wrk(outs[0])
    srv = set(hostpair.worker_cpus(placement["server"], point["workers"]))
    cli = set(hostpair.worker_cpus(placement["client"], client_workers(point)))

    def busy_cores(cpus):
        b = sum(after[c][0] - before[0][c][0] for c in cpus)
        a = sum(after[c][1] - before[0][c][1] for c in cpus)
        return len(cpus) * b / a if a else 0.0

    r.update({"server_busy_cores": busy_cores(srv), "client_busy_cores": busy_cores(cli),
              "per_core_rate": r["rate"] / point["workers"]})
    if srv & cli:
        r["server_busy_cores"] = r["client_busy_cores"] = None  # one CPU's time cannot be split between the sides
    r["per_busy_core_rate"] = r["rate"] / r["server_busy_cores"] if r.get("server_busy_cores") else None
    return r


# ---------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = default_point()
    ap.add_argument("--workload", choices=["short", "keepalive"], default=d["workload"])
    ap.add_argument("--locking", choices=["giant", "group"], default=d["locking"])
    ap.add_argument("--workers", type=int, default=1, help="server side's workers")
    ap.add_argument("--client-workers", type=int, default=0, help="client side's workers (default: as --workers)")
    ap.add_argument("--dispatch-mode", choices=["direct", "hybrid", "deferred"], default="direct")
    ap.add_argument("--groups", type=int, default=d["groups"])
    ap.add_argument("--lock-type", default=d["lock_type"])
    ap.add_argument("--concurrency", type=int, default=d["concurrency"])
    ap.add_argument("--requests", type=int, default=d["requests"], help="per connection (keepalive)")
    ap.add_argument("--body-bytes", type=int, default=d["body_bytes"])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--no-peer", action="store_true", help="leave wrk -> nginx out")
    ap.add_argument("--profile", action="store_true", help="sample the server's workers with perf (cpu-clock)")
    ap.add_argument("--keep", help="keep configs, logs and summaries in this folder")
    ap.add_argument("--ngstack", default=os.environ.get("NGSTACK", benchlib.NGSTACK))
    a = ap.parse_args()
    point = dict(d, workload=a.workload, locking=a.locking, workers=a.workers, client_workers=a.client_workers,
                 dispatch_mode=a.dispatch_mode, groups=a.groups, lock_type=a.lock_type, concurrency=a.concurrency,
                 requests=a.requests, body_bytes=a.body_bytes)
    where = placement(point["workers"], client_workers(point))
    tmp, keep = hostpair.one_point(benchlib.machine(), where, oversubscription(where, point), "ngstack-tcprr-", a.keep)
    try:
        r = run_ngstack(point, where, a.seconds, tmp, "tcprr", a.ngstack, keep, a.profile)
        print(json.dumps(r, indent=2))
        for part, share in (r.get("profile") or {}).items():
            print(f"  {part:20s} {100 * share:5.1f}%  {r['profile_cycles_per_transaction'][part]:8.0f} cycles/txn")
        print(f"ngstack: {r['rate']:.0f} {unit(point)}, {r['errors']} errors, server {r['server_cycles_per_transaction']:.0f} "
              f"cycles/transaction, generator {r['client_cycles_per_transaction']:.0f}")
        if not a.no_peer:
            w = run_wrk(point, where, a.seconds, tmp, "tcprr-wrk", keep_dir=keep)
            print(f"wrk -> nginx: {w['rate']:.0f} {unit(point)} ({w['errors']} socket errors, {w['non_2xx']} non-2xx), "
                  f"server CPUs busy {w['server_busy_cores'] or 0:.2f} cores; ngstack/Linux {r['rate'] / w['rate']:.3f}")
        if r["errors"]:
            print(f"error: the generator counted {r['errors']} errors: {r['errors_by_kind']}", file=sys.stderr)
            return 1
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
