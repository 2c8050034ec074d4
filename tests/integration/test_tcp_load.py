"""ngstack's TCP load generator (`clients:`, stack/services/tcp_load.hpp)
against Linux servers: ngstack is the end host 198.18.1.1 (the host lab), the
lab's namespace h1 (198.18.1.2) runs the servers.

Run 1, rate and errors: one ngstack run with `stop_when_done`, five
generators at once against a server program of this file in h1:
  * `rate`: RATE connections/s, COUNT connections (COUNT / RATE = 2 s),
    connect then close (requests: 0) to a port whose server accepts, notes
    the time and closes. The generator reports COUNT attempted, established
    and completed, no error, and attempted / seconds within 1% of RATE; the
    server accepted exactly COUNT, and (COUNT - 1) / (last accept - first
    accept) is within 1% of RATE;
  * `refused`: a port with no listener: every connection counted refused;
  * `reset`: a server that accepts and resets (SO_LINGER 0): every one reset;
  * `garbage`: an HTTP GET to a server that answers "garbage": every one
    bad_response;
  * `silent`: a server that accepts and never answers, timeout_ms 300:
    every one timeout; its kernel acknowledged each 64-byte request
    (tx_acked_bytes == tx_bytes), and nothing came back.
  Each of those four opens ERRS connections and counts exactly ERRS of its
  own kind and nothing else.

Run 2, nginx (Debian's nginx-light) in h1 on port 8080, access log with
the request time: HTTP GETs with keep-alive (10 requests per connection)
and without (one per connection), at moderate rates, and a closed loop
(concurrency 8, 3 requests per connection, closed with RST). No error of any kind,
every response 2xx, and nginx's access log counts exactly the generator's
responses for each path; the requests/s the generator reports agree within
5% with the rate of nginx's log over the same requests (the paced ones).
TCP's view agrees with the log too: the bytes received in order
(rx_acked_bytes) are the sum of nginx's $bytes_sent, the bytes nginx
acknowledged (tx_acked_bytes) the sum of its $request_length; on this clean
path nothing was retransmitted (retransmission ratio exactly 0), and the
most connections established at once (peak_open) is at least 1 and, for the
closed loop, at most its concurrency.

`--workers 2`: two workers (p0 with two queue pairs), each opening its
share of every generator.

Both runs: every mbuf back in its pool, the packet accounting balanced.

Run by the test itself inside h1: `test_tcp_load.py serve` (the servers of
run 1; prints "ready", and on SIGINT a JSON summary)."""
import json
import os
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
PY = "/usr/bin/python3"
SELF = os.path.abspath(__file__)
PEER = "198.18.1.2"
RATE, COUNT = 2000, 4000
ERRS = 20
P_COUNT, P_RESET, P_GARBAGE, P_SILENT, P_REFUSED = 5001, 5002, 5003, 5004, 5005
NGINX_PORT = 8080
KA_CONNS, KA_REQS, KA_RATE = 200, 10, 100       # 2000 requests over 2 s, 10 per connection
CLOSE_CONNS, CLOSE_RATE = 1000, 500             # 1000 requests over 2 s, one per connection
CONC, CONC_CONNS, CONC_REQS = 8, 400, 3         # closed loop: 8 open at a time, 1200 requests


def serve():
    """The servers of run 1, one selector loop."""
    sel = selectors.DefaultSelector()
    accepted = {P_COUNT: 0, P_RESET: 0, P_GARBAGE: 0, P_SILENT: 0}
    times = []
    held = []
    for port in accepted:
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((PEER, port))
        ls.listen(4096)
        ls.setblocking(False)
        sel.register(ls, selectors.EVENT_READ, ("listen", port))
    stop = []
    signal.signal(signal.SIGINT, lambda *a: stop.append(1))
    print("ready", flush=True)
    while not stop:
        for key, _ in sel.select(timeout=0.1):
            kind, port = key.data
            if kind == "listen":
                while True:
                    try:
                        c, _ = key.fileobj.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    accepted[port] += 1
                    if port == P_COUNT:
                        times.append(time.monotonic())
                        c.close()
                    elif port == P_RESET:
                        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        c.close()
                    elif port == P_GARBAGE:
                        c.setblocking(False)
                        sel.register(c, selectors.EVENT_READ, ("garbage", port))
                    else:
                        held.append(c)  # never read, never answered
            else:
                c = key.fileobj
                try:
                    data = c.recv(65536)
                except (ConnectionError, BlockingIOError):
                    data = b""
                if data:
                    try:
                        c.send(b"garbage\r\n\r\n")
                    except OSError:
                        pass
                else:
                    sel.unregister(c)
                    c.close()
    span = times[-1] - times[0] if len(times) > 1 else 0
    print(json.dumps({"accepted": {str(k): v for k, v in accepted.items()}, "span_s": span}), flush=True)


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "serve":
    serve()
    sys.exit(0)

from ngslab import Lab, Ngstack, check, run_test, sh, workers_arg  # noqa: E402
from tcp_peers import nginx_conf, stop_nginx, tcp_host_config  # noqa: E402

WORKERS = workers_arg()


def client_config(lab, prefix, generators, tcp):
    text = tcp_host_config(lab, prefix, workers=WORKERS, services=("{type: tcp-discard, port: 9}",), tcp=tcp)
    return text + "clients:\n  stop_when_done: true\n  generators:\n" + "".join(f"    - {g}\n" for g in generators)


def run_ngstack(text, timeout=60):
    """Runs ngstack until its generators are done; returns the summary JSON."""
    with Ngstack(text) as ng:
        ng.wait_running()
        try:
            rc = ng.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            ng.stop()
            raise AssertionError("the generators did not finish in time:\n" + ng.output())
        out = ng.output()
        check(rc == 0, f"ngstack exit {rc}:\n{out}")
        check("clients: every generator is done: stopping" in out, f"stopped by stop_when_done:\n{out}")
        s = ng.summary()
        print("\n".join(l for l in ng.out_text().splitlines() if "client " in l), flush=True)
    check(s["ok"] and s["totals"]["balanced"], f"rx + originated == tx + drops + consumed: {s['totals']}")
    check(all(m["full"] for m in s["mempools"]), f"every mbuf back in its pool: {s['mempools']}")
    return {c["name"]: c for c in s["clients"]}


def only_errors(c, kind, n):
    errs = dict(c["errors"])
    total = errs.pop("total")
    want = {k: (n if k == kind else 0) for k in errs}
    check(errs == want and total == n, f"{c['name']}: {n} {kind} and no other error: {c['errors']}")
    check(c["attempted"] == n, f"{c['name']}: {n} connections attempted: {c}")


def run_rate_and_errors(lab):
    h1 = lab.host(1)
    srv = subprocess.Popen(["ip", "netns", "exec", h1, PY, SELF, "serve"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        check(srv.stdout.readline().strip() == "ready", f"server ready: {srv.stderr.read() if srv.poll() else ''}")
        gens = [
            f"{{name: rate, target: {PEER}:{P_COUNT}, rate: {RATE}, connections: {COUNT}, requests: 0, timeout_ms: 1000}}",
            f"{{name: refused, target: {PEER}:{P_REFUSED}, rate: 100, connections: {ERRS}}}",
            f"{{name: reset, target: {PEER}:{P_RESET}, rate: 100, connections: {ERRS}}}",
            f"{{name: garbage, target: {PEER}:{P_GARBAGE}, rate: 100, connections: {ERRS}, transaction: http}}",
            f"{{name: silent, target: {PEER}:{P_SILENT}, rate: 100, connections: {ERRS}, timeout_ms: 300}}",
        ]
        clients = run_ngstack(client_config(lab, f"ngt-load-{os.getpid()}", gens, {"msl_ms": 500}))
    finally:
        srv.send_signal(signal.SIGINT)
        out, err = srv.communicate(timeout=10)
    res = json.loads(out.strip().splitlines()[-1])
    print("server:", json.dumps(res), flush=True)
    r = clients["rate"]
    print("rate:", json.dumps(r), flush=True)
    check(r["errors"]["total"] == 0, f"rate: no error: {r['errors']}")
    check(r["attempted"] == COUNT and r["established"] == COUNT and r["completed"] == COUNT,
          f"rate: {COUNT} attempted, established and completed: {r}")
    check(res["accepted"][str(P_COUNT)] == COUNT, f"the server accepted {COUNT}: {res}")
    gen_rate = r["connections_per_s"]
    srv_rate = (COUNT - 1) / res["span_s"]
    check(abs(gen_rate - RATE) <= RATE / 100, f"generator's rate {gen_rate:.1f}/s within 1% of {RATE}")
    check(abs(srv_rate - RATE) <= RATE / 100, f"server's accept rate {srv_rate:.1f}/s within 1% of {RATE}")
    print(f"ok: rate: {COUNT} connections, generator {gen_rate:.1f}/s, server {srv_rate:.1f}/s "
          f"(target {RATE}/s); connect p50 {r['connect_us']['p50']:.0f} us, p99 {r['connect_us']['p99']:.0f} us",
          flush=True)
    only_errors(clients["refused"], "refused", ERRS)
    only_errors(clients["reset"], "reset", ERRS)
    only_errors(clients["garbage"], "bad_response", ERRS)
    only_errors(clients["silent"], "timeout", ERRS)
    # The silent server's kernel acknowledged every request though nobody
    # read it: TCP's view counts what happened until the timeout ended it.
    sil = clients["silent"]
    check(sil["tx_bytes"] == ERRS * 64 and sil["tx_acked_bytes"] == sil["tx_bytes"] and sil["rx_acked_bytes"] == 0,
          f"silent: {ERRS} requests of 64 bytes sent and acknowledged, nothing received: {sil}")
    check(res["accepted"][str(P_RESET)] == ERRS and res["accepted"][str(P_GARBAGE)] == ERRS and
          res["accepted"][str(P_SILENT)] == ERRS, f"the error servers accepted {ERRS} each: {res}")
    print(f"ok: errors: {ERRS} refused, {ERRS} reset, {ERRS} bad_response, {ERRS} timeout, each exactly", flush=True)


def run_nginx(lab, tmp):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    check(os.path.exists(nginx), "nginx (Debian package nginx-light) is installed")
    h1 = lab.host(1)
    d = os.path.join(tmp, "nginx")
    os.makedirs(d)
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(nginx_conf(d, PEER, NGINX_PORT))
    ngx = subprocess.Popen(["ip", "netns", "exec", h1, nginx, "-p", d, "-c", conf], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 10
        while sh(f"ip netns exec {h1} ss -ltn 'sport = :{NGINX_PORT}'").stdout.count("LISTEN") == 0:
            check(ngx.poll() is None and time.time() < deadline, f"nginx listening: {ngx.stderr.read() if ngx.poll() is not None else ''}")
            time.sleep(0.1)
        gens = [
            f"{{name: keepalive, target: {PEER}:{NGINX_PORT}, rate: {KA_RATE}, connections: {KA_CONNS}, "
            f"transaction: http, path: /ka, requests: {KA_REQS}, timeout_ms: 2000}}",
            f"{{name: close, target: {PEER}:{NGINX_PORT}, rate: {CLOSE_RATE}, connections: {CLOSE_CONNS}, "
            f"transaction: http, path: /close, requests: 1, timeout_ms: 2000}}",
            f"{{name: concurrent, target: {PEER}:{NGINX_PORT}, concurrency: {CONC}, connections: {CONC_CONNS}, "
            f"transaction: http, path: /conc, requests: {CONC_REQS}, close: rst, timeout_ms: 2000}}",
        ]
        clients = run_ngstack(client_config(lab, f"ngt-loadn-{os.getpid()}", gens, {"msl_ms": 500}))
    finally:
        stop_nginx(ngx)
    log = {}
    with open(os.path.join(d, "access.log")) as f:
        for line in f:
            t, uri, status, sent, req_len = line.split()
            log.setdefault(uri, []).append((float(t), status, int(sent), int(req_len)))
    for name, uri, want in (("keepalive", "/ka", KA_CONNS * KA_REQS), ("close", "/close", CLOSE_CONNS),
                            ("concurrent", "/conc", CONC_CONNS * CONC_REQS)):
        c = clients[name]
        print(f"{name}:", json.dumps(c), flush=True)
        check(c["errors"]["total"] == 0, f"{name}: no error: {c['errors']}")
        check(c["responses"] == want and c["http_status"]["2xx"] == want and c["completed"] == c["attempted"],
              f"{name}: {want} responses, all 2xx, every connection completed: {c}")
        entries = log.get(uri, [])
        check(len(entries) == want and all(e[1] == "200" for e in entries),
              f"{name}: nginx logged {len(entries)} requests of {uri}, wanted {want}")
        sent, req_len = sum(e[2] for e in entries), sum(e[3] for e in entries)
        check(c["rx_acked_bytes"] == sent and c["tx_acked_bytes"] == req_len == c["tx_bytes"],
              f"{name}: TCP received {c['rx_acked_bytes']} bytes in order (nginx's $bytes_sent: {sent}) and "
              f"had {c['tx_acked_bytes']} acknowledged (sent {c['tx_bytes']}, nginx's $request_length: {req_len})")
        check(c["retransmitted_bytes"] == 0 and c["retransmits"] == 0 and c["retransmission_ratio"] == 0 and
              c["tx_wire_bytes"] == c["tx_bytes"], f"{name}: nothing retransmitted on a clean path: {c}")
        check(1 <= c["peak_open"] <= (CONC if name == "concurrent" else c["established"]),
              f"{name}: peak_open {c['peak_open']}")
        times = sorted(e[0] for e in entries)
        ngx_rate = (len(times) - 1) / (times[-1] - times[0])
        gen_rate = c["responses_per_s"]
        if name != "concurrent":  # closed loop: as fast as it goes, over a span too short to compare
            check(abs(gen_rate - ngx_rate) <= 0.05 * ngx_rate,
                  f"{name}: the generator's {gen_rate:.1f} requests/s within 5% of nginx's {ngx_rate:.1f}")
        print(f"ok: nginx {name}: {want} requests, generator {gen_rate:.1f}/s, nginx's log {ngx_rate:.1f}/s; "
              f"transaction p50 {c['transaction_us']['p50']:.0f} us, p99 {c['transaction_us']['p99']:.0f} us; "
              f"acked {req_len} bytes sent and {sent} received as nginx logged, none retransmitted; "
              f"peak open {c['peak_open']}", flush=True)


def test_tcp_load():
    tmp = tempfile.mkdtemp(prefix="tcp-load-")
    try:
        with Lab("host") as lab:
            run_rate_and_errors(lab)
            run_nginx(lab, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run_test(test_tcp_load)
