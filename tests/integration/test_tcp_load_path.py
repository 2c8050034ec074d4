"""What the TCP load generator (`clients:`, stack/services/tcp_load.hpp) says
of the path, checked against what the server side saw: the host-routed lab
(deploy/lab up host-routed), ngstack 198.18.1.1 behind the Linux router
namespace <tag>-r, nginx (Debian's nginx-light) in h1 198.18.2.2 on port 8080
with an access log of $bytes_sent and $request_length. The kernels these
tests run on may lack sch_netem, so the path is impaired in user space
(tcp_peers.py impair: the router sends every packet it forwards between
ngstack and h1 through a tun device, once per crossing).

Run 1, loss: 1% of the packets lost each way (LOSS). Two generators of HTTP
GETs, `lossy-ka` (KA_CONNS connections of KA_REQS requests, keep-alive) and
`lossy-short` (SHORT_CONNS connections of one request), timeout_ms 10 s so
that TCP recovers whatever the loss took:
  * every connection completes, no error of any kind, every response 2xx,
    and nginx logged exactly the generator's responses for each path;
  * per generator, TCP's view equals the server's: rx_acked_bytes (the
    bytes TCP received in order) == the sum of nginx's $bytes_sent, and
    tx_acked_bytes (the bytes nginx acknowledged) == tx_bytes == the sum of
    its $request_length;
  * the generators' retransmitted_bytes, tx_wire_bytes and rx_acked_bytes
    add up exactly to ngstack's own tcp.stats (retransmitted_bytes,
    bytes_out + retransmitted_bytes, bytes_in): the generators were its
    only TCP;
  * the retransmission ratio of both together is above 0.2% and below 10%,
    the impairer did lose packets, and a generator that retransmitted data
    has a transaction at least as long as the 200 ms RTO floor (its latency
    tail shows the loss); goodput and the tails are printed.

Run 2, delay: no loss; each flow (connection) its own delay, the same both
ways, spread over DELAY_MS (so the round trips spread over twice that), and
tcpdump on the router's interface toward ngstack. One generator, `delay`
(DELAY_CONNS connections of DELAY_REQS requests at DELAY_RATE/s). From the
capture, per connection: SYN -> SYN-ACK (connect) and each request's first
segment -> the first response byte after it (first byte). The generator's
p50, p90 and p99 of both agree with the capture's (the same rank of the
same connections) within TOL_REL or TOL_ABS_US, whichever is larger; its
peak_open agrees within PEAK_TOL with the most connections the capture
shows established at once (SYN-ACK to the last response segment). The
generator reads the upper bound of a histogram bucket (up to 3% above the
sample), and its clock also counts what the capture cannot see: the time
ngstack's worker waits for a CPU before it polls a segment, milliseconds on
a loaded two-CPU machine. Hence round trips of 80 to 240 ms, and nginx, the
impairer and tcpdump kept off the worker's CPU (HELPER_CPU). A scrape of
the Prometheus endpoint (metrics.listen) during the run shows the generator's
families, at or below the final summary's values.

Both runs: every mbuf back in its pool, the packet accounting balanced."""
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ngslab import Lab, Ngstack, check, run_test, sh  # noqa: E402
from tcp_peers import NGSTACK_ADDR, Impairer, nginx_conf, stop_nginx, tcp_host_config, tun_impairer  # noqa: E402

PEER = "198.18.2.2"
ROUTES = [("198.18.2.0/24", "198.18.1.2")]
NGINX_PORT = 8080
IMPAIRED = ("eth0", "eth1")  # the router's interfaces toward ngstack and h1
TUN = "imp0"
LOSS = 1  # %
KA_CONNS, KA_REQS, KA_RATE = 100, 20, 100
SHORT_CONNS, SHORT_RATE = 200, 200
DELAY_MS = (40, 120)  # one way, per flow
# nginx, the impairer and tcpdump run on CPU 0 (with ngstack's main lcore), so
# that ngstack's worker (lcore 1 on CPU 1) rarely waits for the CPU: what it
# waits is in its latencies and not in the capture's.
HELPER_CPU = "0"
DELAY_CONNS, DELAY_REQS, DELAY_RATE = 300, 2, 200
TOL_REL, TOL_ABS_US = 0.10, 2000
PEAK_TOL = 2

class Nginx:
    def __init__(self, ns, tmp):
        self.dir = os.path.join(tmp, "nginx")
        os.makedirs(self.dir)
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(nginx_conf(self.dir, PEER, NGINX_PORT, body="ngstack load test: the generator's view of the path\n",
                               listen_extra=" backlog=4096"))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        check(os.path.exists(nginx), "nginx (Debian package nginx-light) is installed")
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, "taskset", "-c", HELPER_CPU, nginx, "-p", self.dir,
                                      "-c", conf],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 10
        while sh(f"ip netns exec {ns} ss -ltn 'sport = :{NGINX_PORT}'").stdout.count("LISTEN") == 0:
            check(self.proc.poll() is None and time.time() < deadline, "nginx listening")
            time.sleep(0.1)

    def stop(self):
        stop_nginx(self.proc)

    def log(self):
        """uri -> [(bytes_sent, request_length)]"""
        out = {}
        with open(os.path.join(self.dir, "access.log")) as f:
            for line in f:
                _, uri, status, sent, req_len = line.split()
                check(status == "200", f"nginx logged status {status}: {line}")
                out.setdefault(uri, []).append((int(sent), int(req_len)))
        return out


def pin(peer):
    """A tcp_peers.py process (and its threads) onto HELPER_CPU."""
    sh(f"taskset -a -p -c {HELPER_CPU} {peer.proc.pid}")


def config(lab, prefix, generators, extra=""):
    text = tcp_host_config(lab, prefix, services=("{type: tcp-discard, port: 9}",), routes=ROUTES,
                           tcp={"msl_ms": 500})
    return text + extra + "clients:\n  stop_when_done: true\n  generators:\n" + \
        "".join(f"    - {g}\n" for g in generators)


def http_gen(name, path, rate, conns, reqs):
    return (f"{{name: {name}, target: {PEER}:{NGINX_PORT}, rate: {rate}, connections: {conns}, "
            f"transaction: http, path: {path}, requests: {reqs}, timeout_ms: 10000}}")


def run_ngstack(text, during=None, timeout=60):
    """Runs ngstack until its generators are done (calling `during()` once
    it runs); returns the summary JSON."""
    with Ngstack(text) as ng:
        ng.wait_running()
        if during:
            during()
        try:
            rc = ng.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            ng.stop()
            raise AssertionError("the generators did not finish in time:\n" + ng.output())
        out = ng.output()
        check(rc == 0, f"ngstack exit {rc}:\n{out}")
        check("clients: every generator is done: stopping" in out, f"stopped by stop_when_done:\n{out}")
        s = ng.summary()
        print("\n".join(l for l in ng.out_text().splitlines() if "client " in l or "tcp: acked" in l), flush=True)
    check(s["ok"] and s["totals"]["balanced"], f"rx + originated == tx + drops + consumed: {s['totals']}")
    check(all(m["full"] for m in s["mempools"]), f"every mbuf back in its pool: {s['mempools']}")
    return s


def check_complete(c, reqs, log):
    n = c["attempted"]
    check(c["errors"]["total"] == 0, f"{c['name']}: no error: {c['errors']}")
    check(c["completed"] == n and c["established"] == n and c["responses"] == n * reqs and
          c["http_status"]["2xx"] == n * reqs, f"{c['name']}: every connection and request completed: {c}")
    check(len(log) == n * reqs, f"{c['name']}: nginx logged {len(log)} requests, the generator {n * reqs}")


def lossy_run(lab, ngx):
    router = f"{lab.tag}-r"
    with tun_impairer(router, IMPAIRED, LOSS, 0, 0, 0, 100000, dev=TUN) as imp:
        imp.wait_running()
        pin(imp)
        gens = [http_gen("lossy-ka", "/ka", KA_RATE, KA_CONNS, KA_REQS),
                http_gen("lossy-short", "/short", SHORT_RATE, SHORT_CONNS, 1)]
        s = run_ngstack(config(lab, f"ngt-lpath-{os.getpid()}", gens))
        check(imp.stop() == 0, f"impairer exit:\n{imp.output()}")
        lost = imp.summary()
    print("impairer:", json.dumps(lost), flush=True)
    check(lost["lost"] > 0 and lost["write_errors"] == 0 and lost["limit_dropped"] == 0,
          f"the impairer lost packets and nothing else: {lost}")
    clients = {c["name"]: c for c in s["clients"]}
    log = ngx.log()
    for name, path, reqs in (("lossy-ka", "/ka", KA_REQS), ("lossy-short", "/short", 1)):
        c = clients[name]
        print(f"{name}:", json.dumps({k: v for k, v in c.items() if not k.endswith("_us")}), flush=True)
        entries = log.get(path, [])
        check_complete(c, reqs, entries)
        sent, req_len = sum(e[0] for e in entries), sum(e[1] for e in entries)
        check(c["rx_acked_bytes"] == sent and c["rx_bytes"] == sent,
              f"{name}: bytes received in order {c['rx_acked_bytes']} (read {c['rx_bytes']}) == nginx's "
              f"$bytes_sent {sent}")
        check(c["tx_acked_bytes"] == req_len and c["tx_bytes"] == req_len,
              f"{name}: bytes acknowledged {c['tx_acked_bytes']} (sent {c['tx_bytes']}) == nginx's "
              f"$request_length {req_len}")
        check(c["goodput_bytes"] == sent + req_len and c["goodput_bytes_per_s"] > 0, f"{name}: goodput: {c}")
        check(c["retransmission_ratio"] < 0.10, f"{name}: retransmission ratio {c['retransmission_ratio']:.4f}")
        t = c["transaction_us"]
        if c["retransmitted_bytes"] > 0:
            check(t["max"] >= 200000, f"{name}: a request went again, so a transaction took the 200 ms RTO "
                                      f"at least: {t}")
        print(f"ok: {name}: {c['completed']} connections, {c['responses']} responses, acked {c['tx_acked_bytes']} "
              f"sent / {c['rx_acked_bytes']} received == nginx's log; retransmitted {c['retransmitted_bytes']} of "
              f"{c['tx_wire_bytes']} bytes ({100 * c['retransmission_ratio']:.2f}%, {c['retransmits']} segments); "
              f"goodput {c['goodput_bytes_per_s'] * 8 / 1e3:.1f} kbit/s; transaction p50 {t['p50'] / 1e3:.1f} ms, "
              f"p99 {t['p99'] / 1e3:.1f} ms, p99.9 {t['p999'] / 1e3:.1f} ms, max {t['max'] / 1e3:.1f} ms",
              flush=True)
    both = list(clients.values())
    st = s["tcp"]["stats"]
    rexmit, wire = sum(c["retransmitted_bytes"] for c in both), sum(c["tx_wire_bytes"] for c in both)
    check(rexmit == st["retransmitted_bytes"] and wire == st["bytes_out"] + st["retransmitted_bytes"] and
          sum(c["rx_acked_bytes"] for c in both) == st["bytes_in"],
          f"the generators' bytes add up to tcp.stats: retransmitted {rexmit}, on the wire {wire}, {st}")
    ratio = rexmit / wire
    check(0.002 < ratio < 0.10, f"retransmission ratio {ratio:.4f} over {LOSS}% loss each way: "
                                f"{rexmit} of {wire} bytes")
    print(f"ok: loss {LOSS}% each way: retransmission ratio {100 * ratio:.2f}% ({rexmit} of {wire} bytes, "
          f"tcp.stats agrees)", flush=True)


# ---------------------------------------------------------------- run 2

def read_pcap(path):
    """Ethernet/IPv4/TCP packets of a pcap: (t_us, src, sport, dst, dport, flags, seq, payload length)."""
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    check(magic == 0xA1B2C3D4, f"a little-endian microsecond pcap: magic {magic:#x}")
    out, off = [], 24
    while off + 16 <= len(data):
        sec, usec, incl, orig = struct.unpack("<IIII", data[off:off + 16])
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if len(pkt) < 34 or pkt[12:14] != b"\x08\x00" or pkt[23] != 6:
            continue
        ihl = (pkt[14] & 15) * 4
        total = struct.unpack("!H", pkt[16:18])[0]
        t = 14 + ihl
        sport, dport, seq = struct.unpack("!HHI", pkt[t:t + 8])
        doff = (pkt[t + 12] >> 4) * 4
        out.append((sec * 1_000_000 + usec, ".".join(map(str, pkt[26:30])), sport, ".".join(map(str, pkt[30:34])),
                    dport, pkt[t + 13], seq, total - ihl - doff))
    return out


SYN, ACK = 0x02, 0x10


def capture_latencies(pkts):
    """Per connection of ngstack's (keyed by its port): connect (first SYN to
    first SYN-ACK), first byte of each request (the request's first segment
    to the first response segment after it), and the established interval
    (SYN-ACK to the last response segment), all in microseconds."""
    conns, done = {}, []
    for t, src, sport, dst, dport, flags, seq, length in pkts:
        if src == NGSTACK_ADDR and dport == NGINX_PORT:
            if flags & SYN and sport in conns and conns[sport]["synack"] is not None:
                done.append(conns.pop(sport))  # the port taken again by a later connection
            c = conns.setdefault(sport, {"syn": None, "synack": None, "req_end": None, "pending": None,
                                         "ttfb": [], "last": None})
            if flags & SYN and c["syn"] is None:
                c["syn"] = t
            elif length > 0 and (c["req_end"] is None or (seq - c["req_end"]) % 2**32 < 2**31):
                c["req_end"] = (seq + length) % 2**32  # a new request (not a retransmission)
                c["pending"] = t
        elif dst == NGSTACK_ADDR and sport == NGINX_PORT and dport in conns:
            c = conns[dport]
            if flags & SYN and flags & ACK and c["synack"] is None:
                c["synack"] = t
            elif length > 0:
                c["last"] = t
                if c["pending"] is not None:
                    c["ttfb"].append(t - c["pending"])
                    c["pending"] = None
    done += conns.values()
    connect = [c["synack"] - c["syn"] for c in done if c["syn"] is not None and c["synack"] is not None]
    ttfb = [x for c in done for x in c["ttfb"]]
    intervals = [(c["synack"], c["last"]) for c in done if c["synack"] and c["last"]]
    return connect, ttfb, intervals


def rank(values, q):
    """The generator's rank (stack/services/udp_services.hpp, LatencyMerge)."""
    v = sorted(values)
    return v[int(q * (len(v) - 1))]


def peak_overlap(intervals):
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    peak = n = 0
    for _, d in events:
        n += d
        peak = max(peak, n)
    return peak


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("ngstack_client"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def delay_run(lab, tmp):
    router = f"{lab.tag}-r"
    pcap = os.path.join(tmp, "eth0.pcap")
    port = free_port()
    scraped = {}
    with Impairer(router, TUN, 0, 0, 0, 0, 100000, flow_delay_ms=DELAY_MS) as imp:
        imp.wait_running()
        pin(imp)
        dump = subprocess.Popen(["ip", "netns", "exec", router, "taskset", "-c", HELPER_CPU, "tcpdump", "-i", "eth0", "-n", "-U", "-B", "8192",
                                 "-s", "128", "-w", pcap, "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        try:
            deadline = time.time() + 10
            while "listening on" not in (line := dump.stderr.readline()):
                check(dump.poll() is None and time.time() < deadline, f"tcpdump started: {line}")

            def during():
                time.sleep(1.0)
                scraped.update(scrape(port))

            gens = [http_gen("delay", "/delay", DELAY_RATE, DELAY_CONNS, DELAY_REQS)]
            s = run_ngstack(config(lab, f"ngt-dpath-{os.getpid()}", gens,
                                   extra=f"metrics: {{listen: 127.0.0.1:{port}}}\n"), during=during)
        finally:
            # tcpdump may lag behind on a loaded machine, and stops where it
            # is at SIGINT: first let the file stop growing.
            size, deadline = -1, time.time() + 15
            while time.time() < deadline:
                time.sleep(0.5)
                now = os.path.getsize(pcap) if os.path.exists(pcap) else 0
                if now == size:
                    break
                size = now
            dump.send_signal(signal.SIGINT)
            dump_err = dump.communicate(timeout=10)[1]
        check(imp.stop() == 0, f"impairer exit:\n{imp.output()}")
    c = {x["name"]: x for x in s["clients"]}["delay"]
    print("delay:", json.dumps({k: v for k, v in c.items() if not k.endswith("_us")}), flush=True)
    check(c["errors"]["total"] == 0 and c["completed"] == DELAY_CONNS and c["responses"] == DELAY_CONNS * DELAY_REQS,
          f"delay: every connection and request completed: {c}")

    # The scrape, during the run: the generator's families, at or below the end.
    g = 'generator="delay"'
    est = scraped.get(f'ngstack_client_total{{{g},counter="established"}}', -1)
    check(0 < est <= c["established"], f"scraped established {est} during the run, {c['established']} at the end")
    check(scraped.get(f'ngstack_client_total{{{g},counter="tx_acked_bytes"}}', -1) <= c["tx_acked_bytes"],
          "scraped tx_acked_bytes at or below the end")
    check(scraped.get(f"ngstack_client_peak_open{{{g}}}", -1) <= c["peak_open"], "scraped peak at or below the end")
    check(f'ngstack_client_latency_microseconds{{{g},histogram="connect",quantile="0.99"}}' in scraped and
          f'ngstack_client_errors_total{{{g},kind="timeout"}}' in scraped, f"scraped families: {sorted(scraped)}")
    print(f"ok: scraped during the run: {est:.0f} established, peak open "
          f"{scraped[f'ngstack_client_peak_open{{{g}}}']:.0f}", flush=True)

    print("tcpdump:", " ".join(l for l in dump_err.splitlines() if "packets" in l), flush=True)
    if os.environ.get("NGT_KEEP_PCAP"):
        shutil.copy(pcap, os.environ["NGT_KEEP_PCAP"])
    connect, ttfb, intervals = capture_latencies(read_pcap(pcap))
    check(len(connect) == DELAY_CONNS and len(ttfb) == DELAY_CONNS * DELAY_REQS,
          f"the capture has {len(connect)} handshakes and {len(ttfb)} first bytes")
    check(c["connect_us"]["samples"] == len(connect) and c["first_byte_us"]["samples"] == len(ttfb),
          "as many samples as the capture")
    for what, gen, cap in (("connect", c["connect_us"], connect), ("first byte", c["first_byte_us"], ttfb)):
        line = []
        for q, key in ((0.5, "p50"), (0.9, "p90"), (0.99, "p99")):
            want = rank(cap, q)
            tol = max(TOL_ABS_US, TOL_REL * want)
            check(abs(gen[key] - want) <= tol, f"{what} {key}: generator {gen[key]:.0f} us, capture {want} us "
                                               f"(tolerance {tol:.0f} us)\n{json.dumps(gen)}")
            line.append(f"{key} {gen[key] / 1e3:.2f}/{want / 1e3:.2f}")
        print(f"ok: {what} (ms, generator/capture): " + ", ".join(line), flush=True)
    peak = peak_overlap(intervals)
    check(abs(c["peak_open"] - peak) <= PEAK_TOL, f"peak open: generator {c['peak_open']}, capture {peak}")
    print(f"ok: peak open: generator {c['peak_open']}, capture {peak}", flush=True)


def test_tcp_load_path():
    tmp = tempfile.mkdtemp(prefix="tcp-load-path-")
    try:
        with Lab("host-routed") as lab:
            ngx = Nginx(lab.host(1), tmp)
            try:
                lossy_run(lab, ngx)
                delay_run(lab, tmp)
            finally:
                ngx.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run_test(test_tcp_load_path)
