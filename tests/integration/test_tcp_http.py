"""ngstack's http service (stack/services/http.hpp) against real HTTP
clients: ngstack is the end host 198.18.1.1 (the host lab) with an http
service in body mode on port 80 (BODY_BYTES of "ngstack\\n" repeated for any
path) and one in files mode on 8080 (`root:` a directory the test fills);
the lab's namespace h1 (198.18.1.2) runs curl, wrk and raw sockets.

Covers, from h1:
  * curl GET in body mode: status 200, the body exact (length and bytes);
    curl GET in files mode: a text file, a 200 KB random file (sha256) and
    `/` (index.html), each exact and with its Content-Type;
  * HEAD (curl -I): the header section only, Content-Length the GET's
    length; on a raw socket, HEAD pipelined before a GET: the GET's status
    line comes right after HEAD's empty line (no content was sent);
  * a missing file: 404; POST: 405 with `Allow: GET, HEAD`;
  * a malformed request (raw bytes on a socket): 400 and the connection
    closed;
  * pipelining: five requests in one write (GET, HEAD, GET of a missing
    file, POST with a body, GET), answered in order, each response exact;
  * keep-alive: `curl -v URL1 URL2` reuses the connection ("Re-using
    existing connection"), and both bodies are exact;
  * `wrk -t 2 -c 1000 -d 10s --latency --timeout 5s` with keep-alive,
    then again with `Connection: close` (a connection per request): no
    socket error (connect, read, write, timeout all 0), no non-2xx/3xx
    response; the requests/s are printed. The tester namespace has the
    whole ephemeral port range and TIME-WAIT reuse (net.ipv4.tcp_tw_reuse=1);
    ngstack runs with stack.connections 65536 and stack.tcp.msl_ms 1000, so
    that its TIME-WAIT PCBs (ngstack closes first under Connection: close)
    are freed within 2 s, and with an af_packet ring of FRAMECNT frames
    (the lab's 1024 overflow when wrk opens 1000 connections at once).
At exit: every mbuf back in its pool, the packet accounting balanced, no
TCP segment with a bad checksum, no response refused for want of a session,
no 5xx, the http services' request counts at least what the clients
counted (files mode: exactly), and h1's PAWS test never dropped a segment
of ngstack's (TcpExt PAWSEstab 0: no TSval went backwards).

`--workers 2`: two workers (p0 with two queue pairs, lcore 1 polls p0/0,
lcore 2 polls p0/1), tcp dispatched deferred.

Run by the test itself inside h1: `test_tcp_http.py raw ADDR PORT HEX
[IDLE_S]` sends the bytes (hex), reads until EOF or IDLE_S seconds without
data, and prints JSON {"data": hex, "eof": bool}."""
import binascii
import hashlib
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

PY = "/usr/bin/python3"
SELF = os.path.abspath(__file__)
ADDR = "198.18.1.1"
BODY_BYTES = 10001  # not a multiple of the pattern's 8 bytes
BODY_PORT, FILES_PORT = 80, 8080
WRK_CONNECTIONS, WRK_SECONDS = 1000, 10
FRAMECNT = 16384
WRK_TIMEOUT = "5s"


def raw_client(argv):
    addr, port, data = argv[0], int(argv[1]), binascii.unhexlify(argv[2])
    idle = float(argv[3]) if len(argv) > 3 else 2.0
    s = socket.create_connection((addr, port), timeout=10)
    s.sendall(data)
    s.settimeout(idle)
    got, eof = b"", False
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                eof = True
                break
            got += chunk
    except socket.timeout:
        pass
    except ConnectionResetError:
        eof = True
    s.close()
    print(json.dumps({"data": got.hex(), "eof": eof}))


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "raw":
    raw_client(sys.argv[2:])
    sys.exit(0)

from ngslab import Lab, Ngstack, check, run_test, service, sh, workers_arg  # noqa: E402
from tcp_peers import tcp_host_config  # noqa: E402

WORKERS = workers_arg()


def body_pattern(n):
    return (b"ngstack\n" * (n // 8 + 1))[:n]


def run(cmd, timeout=30, nofile=None):
    def pre():
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        soft = nofile if hard == resource.RLIM_INFINITY else min(nofile, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return subprocess.run(cmd, capture_output=True, timeout=timeout, preexec_fn=pre if nofile else None)


def raw(ns, port, data, idle=2.0):
    """Raw bytes to ngstack's `port` from namespace `ns`: (bytes back, EOF seen)."""
    r = run(["ip", "netns", "exec", ns, PY, SELF, "raw", ADDR, str(port), data.hex(), str(idle)], timeout=30)
    check(r.returncode == 0, f"raw client to port {port}: exit {r.returncode}: {r.stderr.decode(errors='replace')}")
    res = json.loads(r.stdout)
    return bytes.fromhex(res["data"]), res["eof"]


def parse_responses(data, head_flags):
    """Splits `data` into HTTP/1.1 responses, one per request (`head_flags`:
    whether each request was HEAD, so its response has no content). Returns
    [(status, {field: value}, body)] and the bytes left over."""
    out = []
    for is_head in head_flags:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            break
        lines = data[:end].decode("latin-1").split("\r\n")
        m = re.match(r"HTTP/1\.1 (\d{3}) ", lines[0] + " ")
        check(m is not None, f"a status line: {lines[0]!r}")
        fields = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            fields[k.strip().lower()] = v.strip()
        length = 0 if is_head else int(fields.get("content-length", "0"))
        body = data[end + 4:end + 4 + length]
        out.append((int(m.group(1)), fields, body))
        data = data[end + 4 + length:]
    return out, data


def linux_tcpext(ns, name):
    """A TcpExt counter of namespace `ns` (/proc/net/netstat: the namespace's own)."""
    lines = sh(f"ip netns exec {ns} cat /proc/net/netstat").stdout.splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            return dict(zip(names.split()[1:], map(int, values.split()[1:])))[name]
    raise AssertionError(f"no TcpExt in {ns}'s /proc/net/netstat")


def curl(ns, *args, timeout=20):
    r = run(["ip", "netns", "exec", ns, "curl", "-sS", "--max-time", "10", *args], timeout=timeout)
    return r.returncode, r.stdout, r.stderr.decode(errors="replace")


def make_root(tmp):
    root = os.path.join(tmp, "www")
    os.makedirs(os.path.join(root, "sub"))
    files = {
        "/index.html": b"<html><body>ngstack files mode</body></html>\n",
        "/a.txt": b"a text file\n" * 100,
        "/sub/style.css": b"body { color: black; }\n",
        "/data.bin": os.urandom(200 * 1000 + 7),
    }
    for path, content in files.items():
        with open(root + path, "wb") as f:
            f.write(content)
    return root, files


def http_services(root):
    return (f"{{type: http, port: {BODY_PORT}, body_bytes: {BODY_BYTES}}}",
            f"{{type: http, port: {FILES_PORT}, root: {root}}}")


def config(lab, prefix, root):
    text = tcp_host_config(lab, prefix, workers=WORKERS, tcp_mode="deferred" if WORKERS == 2 else None,
                           services=http_services(root), tcp={"msl_ms": 1000})
    # Many connections at once, and TIME-WAIT PCBs from the Connection: close run.
    old = "stack: {locking: group"
    check(old in text, f"tcp_host_config's stack line: {text}")
    text = text.replace(old, old + ", connections: 65536")
    # wrk's 1000 connections open in a burst: a deeper af_packet ring than the lab's 1024 frames. With 1024,
    # one run lost about 7% of h1's segments in the ring (DPDK 22.11's af_packet does not count those drops:
    # imissed stays 0), and the retransmissions after them made the test's timing depend on luck.
    check("framecnt=1024" in text, f"tcp_host_config's af_packet device: {text}")
    return text.replace("framecnt=1024", f"framecnt={FRAMECNT}")


def functional(h1, files):
    """curl and raw-socket checks; returns the number of requests made to
    each port (body, files) that ngstack must have counted."""
    n_body = n_files = 0
    url = f"http://{ADDR}"
    want_body = body_pattern(BODY_BYTES)

    # GET, body mode.
    rc, out, err = curl(h1, "-o", "-", "-w", "\n%{http_code} %{size_download} %{content_type}", f"{url}/any/path")
    n_body += 1
    check(rc == 0, f"curl GET {url}/any/path: exit {rc}: {err}")
    body, _, trailer = out.rpartition(b"\n")
    code, size, ctype = trailer.decode().split(" ", 2)
    check(code == "200" and body == want_body and int(size) == BODY_BYTES,
          f"GET body mode: 200 and {BODY_BYTES} bytes of the pattern: {code}, {len(body)} bytes, "
          f"{'equal' if body == want_body else 'differs'}")
    check(ctype.startswith("text/plain"), f"GET body mode: Content-Type text/plain: {ctype!r}")
    print(f"ok: GET {url}/any/path: 200, {BODY_BYTES} bytes exact", flush=True)

    # GET, files mode.
    types = {"/index.html": "text/html", "/a.txt": "text/plain", "/sub/style.css": "text/css",
             "/data.bin": "application/octet-stream"}
    for path, content in list(files.items()) + [("/", files["/index.html"])]:
        rc, out, err = curl(h1, "-o", "-", "-w", "\n%{http_code} %{content_type}", f"{url}:{FILES_PORT}{path}")
        n_files += 1
        check(rc == 0, f"curl GET :{FILES_PORT}{path}: exit {rc}: {err}")
        body, _, trailer = out.rpartition(b"\n")
        code, ctype = trailer.decode().split(" ", 1)
        want_type = types.get(path, "text/html")
        check(code == "200" and body == content,
              f"GET :{FILES_PORT}{path}: 200 and the file's {len(content)} bytes: {code}, {len(body)} bytes, "
              f"sha256 {hashlib.sha256(body).hexdigest()[:16]} vs {hashlib.sha256(content).hexdigest()[:16]}")
        check(ctype.startswith(want_type), f"GET :{FILES_PORT}{path}: Content-Type {want_type}: {ctype!r}")
    print(f"ok: GET of {len(files) + 1} paths in files mode: 200, content and Content-Type exact", flush=True)

    # HEAD (curl -I): headers only, Content-Length of the GET.
    for port, path, length in ((BODY_PORT, "/x", BODY_BYTES), (FILES_PORT, "/data.bin", len(files["/data.bin"]))):
        rc, out, err = curl(h1, "-I", "-w", "%{size_download}", f"{url}:{port}{path}")
        if port == BODY_PORT:
            n_body += 1
        else:
            n_files += 1
        text = out.decode("latin-1")
        head, _, downloaded = text.rpartition("\r\n\r\n")
        check(rc == 0 and head.startswith("HTTP/1.1 200"), f"HEAD :{port}{path}: exit {rc}: {text!r} {err}")
        check(re.search(rf"(?im)^content-length: {length}\r?$", head) is not None,
              f"HEAD :{port}{path}: Content-Length: {length}: {head!r}")
        check(downloaded.strip() == "0", f"HEAD :{port}{path}: no content downloaded: {downloaded!r}")
    # HEAD then GET on one connection: the GET's response right after HEAD's header section.
    data, eof = raw(h1, BODY_PORT, b"HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n"
                                   b"GET /g HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    n_body += 2
    resps, rest = parse_responses(data, [True, False])
    check(len(resps) == 2 and rest == b"" and eof,
          f"HEAD + GET pipelined: two responses, nothing after, then EOF: {len(resps)} parsed, "
          f"{len(rest)} bytes left, eof {eof}: {data[:600]!r}")
    (s1, f1, b1), (s2, f2, b2) = resps
    check(s1 == 200 and f1.get("content-length") == str(BODY_BYTES) and b1 == b"",
          f"HEAD: 200, Content-Length {BODY_BYTES}, no content: {s1} {f1}")
    check(s2 == 200 and b2 == want_body and f2.get("connection", "").lower() == "close",
          f"GET after HEAD: 200, the body, Connection: close: {s2} {f2} {len(b2)} bytes")
    print("ok: HEAD: header section only, Content-Length right (curl -I, and HEAD then GET on one connection)",
          flush=True)

    # 404 and 405.
    rc, out, err = curl(h1, "-o", "/dev/null", "-w", "%{http_code}", f"{url}:{FILES_PORT}/missing.txt")
    n_files += 1
    check(rc == 0 and out == b"404", f"GET :{FILES_PORT}/missing.txt: 404: exit {rc}, {out!r} {err}")
    rc, out, err = curl(h1, "-i", "-X", "POST", "-d", "a=1&b=2", f"{url}/form")
    n_body += 1
    text = out.decode("latin-1")
    check(rc == 0 and text.startswith("HTTP/1.1 405"), f"POST {url}/form: 405: exit {rc}: {text[:300]!r} {err}")
    check(re.search(r"(?im)^allow: GET, HEAD\r?$", text) is not None, f"POST: 405 with Allow: GET, HEAD: {text!r}")
    print("ok: 404 for a missing file, 405 (Allow: GET, HEAD) for POST", flush=True)

    # 400 for a malformed request, then the connection closed.
    for bad in (b"GARBAGE\r\n\r\n", b"GET /x HTTP/1.1\r\nHost: t\r\nNo colon here\r\n\r\n",
                b"GET /x HTTP/1.1\r\n\r\n"):  # HTTP/1.1 without Host (RFC 9112 3.2)
        data, eof = raw(h1, BODY_PORT, bad)
        n_body += 1
        resps, rest = parse_responses(data, [False])
        check(len(resps) == 1 and resps[0][0] == 400 and rest == b"" and eof,
              f"{bad!r}: 400, nothing more, the connection closed: {data[:400]!r} eof {eof}")
        check(resps[0][1].get("connection", "").lower() == "close", f"{bad!r}: 400 says Connection: close: {resps[0][1]}")
    print("ok: malformed requests: 400 and the connection closed", flush=True)

    # Pipelining: five requests in one write, answered in order.
    reqs = (b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n"
            b"HEAD /data.bin HTTP/1.1\r\nHost: t\r\n\r\n"
            b"GET /nothing-here HTTP/1.1\r\nHost: t\r\n\r\n"
            b"POST /sub/style.css HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
            b"GET /sub/style.css HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    data, eof = raw(h1, FILES_PORT, reqs)
    n_files += 5
    resps, rest = parse_responses(data, [False, True, False, False, False])
    got = [(s, len(b)) for s, _, b in resps]
    check(len(resps) == 5 and rest == b"" and eof, f"pipelined: 5 responses then EOF: {got}, {len(rest)} left, eof {eof}")
    want = [(200, files["/a.txt"]), (200, b""), (404, None), (405, None), (200, files["/sub/style.css"])]
    for i, ((status, fields, body), (ws, wb)) in enumerate(zip(resps, want)):
        check(status == ws and (wb is None or body == wb), f"pipelined response {i + 1}: {ws}: got {status}, "
                                                             f"{len(body)} bytes: {got}")
    check(resps[1][1].get("content-length") == str(len(files["/data.bin"])),
          f"pipelined HEAD: Content-Length {len(files['/data.bin'])}: {resps[1][1]}")
    print(f"ok: 5 pipelined requests answered in order: {[s for s, _ in got]}", flush=True)

    # Keep-alive: two URLs on one connection.
    rc, out, err = curl(h1, "-v", "-o", "-", "-o", "-", f"{url}/one", f"{url}/two")
    n_body += 2
    check(rc == 0 and out == want_body * 2, f"curl -v two URLs: exit {rc}, {len(out)} bytes of {2 * BODY_BYTES}: {err}")
    check("Re-using existing connection" in err, f"curl reused the connection for the second URL:\n{err}")
    check(err.count("Connected to") == 1, f"curl connected once:\n{err}")
    print("ok: keep-alive: curl's second request on the same connection", flush=True)
    return n_body, n_files


def wrk(h1, close):
    cmd = ["ip", "netns", "exec", h1, "wrk", "-t", "2", "-c", str(WRK_CONNECTIONS), "-d", f"{WRK_SECONDS}s",
           "--latency", "--timeout", WRK_TIMEOUT]
    if close:
        cmd += ["-H", "Connection: close"]
    r = run(cmd + [f"http://{ADDR}:{BODY_PORT}/"], timeout=WRK_SECONDS + 30, nofile=WRK_CONNECTIONS + 1024)
    out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    label = "Connection: close" if close else "keep-alive"
    print(f"--- wrk, {label}:\n{out}", flush=True)
    check(r.returncode == 0, f"wrk ({label}): exit {r.returncode}")
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+),", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    check(m is not None and rps is not None, f"wrk ({label}): its request count and Requests/sec")
    requests = int(m.group(1))
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    check(errs is None, f"wrk ({label}): no socket errors: {errs.group(0) if errs else ''}")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    check(non2xx is None, f"wrk ({label}): every response 2xx: {non2xx.group(0) if non2xx else ''}")
    check(requests > 0, f"wrk ({label}): some requests: {requests}")
    print(f"ok: wrk {label}: {requests} requests, {float(rps.group(1)):.0f} requests/s, "
          f"no socket error, no non-2xx", flush=True)
    return requests, float(rps.group(1))


def test_tcp_http():
    t0 = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="tcp-http-")
    try:
        root, files = make_root(tmp)
        prefix = f"ngt-http-{os.getpid()}"
        with Lab("host") as lab, Ngstack(config(lab, prefix, root)) as ng:
            h1 = lab.host(1)
            ng.wait_running()
            r = sh(f"ip netns exec {h1} ping -n -c 3 -i 0.2 -W 2 {ADDR}", check=False, timeout=30)
            check(r.returncode == 0 and " 0% packet loss" in r.stdout, f"ping {ADDR}:\n{r.stdout}{r.stderr}\n{ng.output()}")
            n_body, n_files = functional(h1, files)

            # Many connections from one host: every ephemeral port, and TIME-WAIT reuse.
            for k, v in (("net.ipv4.ip_local_port_range", "1024 65535"), ("net.ipv4.tcp_tw_reuse", "1")):
                sh(f"ip netns exec {h1} sysctl -qw {k}='{v}'")
            keep_requests, keep_rps = wrk(h1, close=False)
            close_requests, close_rps = wrk(h1, close=True)
            paws = linux_tcpext(h1, "PAWSEstab")

            rc = ng.stop()
            check(rc == 0, f"ngstack exit {rc}:\n{ng.output()}")
            s = ng.summary()
        body, files_svc = service(s, "http", BODY_PORT), service(s, "http", FILES_PORT)
        print("http :80:", json.dumps(body), "\nhttp :8080:", json.dumps(files_svc), flush=True)
        st = s["tcp"]["stats"]
        print("tcp.stats:", json.dumps(st), flush=True)
        print("ports:", json.dumps([{k: p.get(k) for k in ("name", "rx_packets", "tx_packets", "imissed", "rx_nombuf",
                                                          "ierrors", "oerrors")} for p in s["ports"]]),
              "\ndrops:", json.dumps({w["lcore"]: {k: v for k, v in w["drops"].items() if v} for w in s["workers"]}),
              flush=True)
        check(s["ok"] and s["totals"]["balanced"], f"rx + originated == tx + drops + consumed: {s['totals']}")
        check(all(m["full"] for m in s["mempools"]), f"every mbuf back in its pool: {s['mempools']}")
        check(len(s["workers"]) == WORKERS, f"{WORKERS} worker(s): {[w['lcore'] for w in s['workers']]}")
        bad_csum = sum(w["drops"].get("tcp_bad_checksum", 0) for w in s["workers"])
        check(bad_csum == 0, f"no TCP segment with a bad checksum: {bad_csum}")
        for svc in (body, files_svc):
            check(svc["refused_no_session"] == 0 and svc["responses_5xx"] == 0,
                  f"http :{svc['port']}: no connection refused for want of a session, no 5xx: {svc}")
        check(files_svc["requests"] == n_files and files_svc["responses"] == n_files,
              f"http :{FILES_PORT}: {n_files} requests and responses (the functional checks): {files_svc}")
        want = n_body + keep_requests + close_requests
        check(body["requests"] >= want and body["responses_2xx"] >= keep_requests + close_requests,
              f"http :{BODY_PORT}: at least the {want} requests counted by the clients, "
              f"{keep_requests + close_requests} of them 2xx: {body}")
        check(st["accepts"] >= WRK_CONNECTIONS + close_requests,
              f"an accept per connection (wrk's {WRK_CONNECTIONS} keep-alive connections and one per "
              f"Connection: close request): {st['accepts']}")
        check(paws == 0, f"h1's PAWS test dropped {paws} of ngstack's segments (TcpExt PAWSEstab): a TSval went "
                         f"backwards on a connection")
        print(f"ok: {WORKERS} worker(s): wrk keep-alive {keep_rps:.0f} requests/s, "
              f"Connection: close {close_rps:.0f} requests/s ({time.monotonic() - t0:.1f} s)", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run_test(test_tcp_http)
