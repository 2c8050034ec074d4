"""A SYN flood against ngstack's http listener while real clients keep
connecting: SYN cookies (RFC 4987) past a small backlog.

ngstack is the end host 198.18.1.1 (the host lab) with an http service on
port 80 (BODY_BYTES-byte bodies), `stack.tcp.syn_backlog: 64` and SYN
cookies on, and a default route via the tester h1 (198.18.1.2). From h1,
`hping3 --flood --rand-source -S -p 80` sends SYNs from random source
addresses for FLOOD_SECONDS: every SYN-ACK ngstack answers them with goes,
by that default route, back to h1, whose kernel drops it (the address is
not its own and it forwards nothing), so the flood's half-open connections
never complete, and nothing leaves the namespaces: h1 has no route but its
own subnet (checked), forwarding is off in h1 and on the lab's root-side
veth, and ngstack sends only to h1.

Meanwhile h1 runs CURL_LOOPS loops of curl (a fresh connection each, GET
/, body checked, CURL_MAX_S at most), and a sampler reads `ngstack show tcp
--json --prefix P` every SAMPLE_S: the listener's syn_received.

Checks: at least 90% of the curls during the flood succeed (200 and the
exact body), and one after it; syn_received never above the backlog (64) in
any sample and the backlog filled at some point (the flood did overflow
it); tcp.stats: cookies_sent > 0 (SYNs answered statelessly once the
backlog was full), cookies_accepted > 0 (curl's handshakes completed from a
cookie), syncache_overflow > 0; the http service answered every successful
curl; at exit every mbuf back in its pool and the packet accounting
balanced; and, last, h1's PAWS test dropped none of ngstack's segments
(TcpExt PAWSEstab of h1's namespace, only this test's connections): the
TSvals of a connection made from a cookie never go below its SYN-ACK's,
whose low 6 bits carry the options (RFC 7323 §5.4; Linux keeps that TSval
at or below its clock).

`--workers 2`: two workers (p0 with two queue pairs, lcore 1 polls p0/0,
lcore 2 polls p0/1), tcp dispatched deferred."""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from ngslab import NGSTACK, Lab, Ngstack, check, run_test, service, sh, workers_arg  # noqa: E402
from tcp_peers import tcp_host_config  # noqa: E402

WORKERS = workers_arg()
ADDR, TESTER = "198.18.1.1", "198.18.1.2"
PORT, BODY_BYTES = 80, 1000
BACKLOG = 64
FLOOD_SECONDS = 8
SAMPLE_S = 0.25
CURL_MAX_S = 6  # a lost SYN is sent again after 1 s, then 3 s
MIN_SUCCESS = 0.90
CURL_LOOPS = 3  # curl loops at once


def body_pattern(n):
    return (b"ngstack\n" * (n // 8 + 1))[:n]


def curl_once(h1):
    """One GET on a new connection: (ok, seconds, what went wrong)."""
    t = time.monotonic()
    r = subprocess.run(["ip", "netns", "exec", h1, "curl", "-sS", "--max-time", str(CURL_MAX_S),
                        "-o", "-", "-w", "\n%{http_code}", f"http://{ADDR}:{PORT}/"],
                       capture_output=True, timeout=CURL_MAX_S + 10)
    secs = time.monotonic() - t
    body, _, code = r.stdout.rpartition(b"\n")
    if r.returncode != 0:
        return False, secs, f"exit {r.returncode}: {r.stderr.decode(errors='replace').strip()}"
    if code != b"200" or body != body_pattern(BODY_BYTES):
        return False, secs, f"status {code!r}, {len(body)} bytes"
    return True, secs, ""


def curl_loop(h1, end, results):
    while time.monotonic() < end:
        results.append(curl_once(h1))


def linux_tcpext(ns, name):
    """A TcpExt counter of namespace `ns` (/proc/net/netstat)."""
    lines = sh(f"ip netns exec {ns} cat /proc/net/netstat").stdout.splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            return dict(zip(names.split()[1:], map(int, values.split()[1:])))[name]
    raise AssertionError(f"no TcpExt in {ns}'s /proc/net/netstat")


class Sampler(threading.Thread):
    """`ngstack show tcp --json` every SAMPLE_S: the port-80 listener."""

    def __init__(self, prefix):
        super().__init__(daemon=True)
        self.prefix = prefix
        self.samples, self.errors = [], []
        self.stop_ev = threading.Event()

    def run(self):
        while not self.stop_ev.is_set():
            try:
                r = subprocess.run([NGSTACK, "show", "tcp", "--json", "--prefix", self.prefix],
                                   capture_output=True, text=True, timeout=10)
            except (OSError, subprocess.TimeoutExpired) as e:
                self.errors.append(repr(e))
                self.stop_ev.wait(SAMPLE_S)
                continue
            try:
                tcp = json.loads(r.stdout)["tcp"]
                ls = [l for l in tcp["listeners"] if l["local"].endswith(f":{PORT}")]
                self.samples.append((time.monotonic(), ls[0], tcp["stats"]["cookies_sent"]))
            except (ValueError, KeyError, IndexError) as e:
                self.errors.append(f"{e!r}: exit {r.returncode} {r.stdout[:300]!r} {r.stderr[:300]!r}")
            self.stop_ev.wait(SAMPLE_S)


def contain(lab, h1):
    """Nothing the flood sends, nor any answer to it, may leave the
    namespaces: h1 routes only its own subnet and forwards nothing; the
    root namespace does not forward what arrives on the lab's veth."""
    routes = sh(f"ip -n {h1} -4 route show").stdout.split("\n")
    routes = [r for r in routes if r.strip()]
    check(len(routes) == 1 and routes[0].startswith("198.18.1.0/24 dev eth0"),
          f"{h1} has only its subnet's route (nothing outside is reachable): {routes}")
    sh(f"ip netns exec {h1} sysctl -qw net.ipv4.conf.all.forwarding=0")
    sh(f"sysctl -qw net.ipv4.conf.{lab.port(0)}.forwarding=0")


def test_tcp_synflood():
    t0 = time.monotonic()
    prefix = f"ngt-synflood-{os.getpid()}"
    with Lab("host") as lab:
        h1 = lab.host(1)
        contain(lab, h1)
        cfg = tcp_host_config(lab, prefix, workers=WORKERS, tcp_mode="deferred" if WORKERS == 2 else None,
                              services=(f"{{type: http, port: {PORT}, body_bytes: {BODY_BYTES}}}",),
                              routes=(("0.0.0.0/0", TESTER),),
                              tcp={"syn_backlog": BACKLOG, "syn_cookies": "true"})
        with Ngstack(cfg) as ng:
            ng.wait_running()
            r = sh(f"ip netns exec {h1} ping -n -c 3 -i 0.2 -W 2 {ADDR}", check=False, timeout=30)
            check(r.returncode == 0 and " 0% packet loss" in r.stdout, f"ping {ADDR}:\n{r.stdout}{r.stderr}\n{ng.output()}")
            ok, secs, why = curl_once(h1)
            check(ok, f"curl before the flood: {why}\n{ng.output()}")

            sampler = Sampler(prefix)
            sampler.start()
            flood = subprocess.Popen(["ip", "netns", "exec", h1, "timeout", "-s", "INT", str(FLOOD_SECONDS + 10),
                                      "hping3", "--flood", "--rand-source", "-S", "-p", str(PORT), ADDR],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                time.sleep(1)  # the backlog fills first
                if flood.poll() is not None:
                    raise AssertionError(f"hping3 exited at once ({flood.returncode}): {flood.stdout.read()!r}")
                results = []
                end = time.monotonic() + FLOOD_SECONDS - 1
                loops = [threading.Thread(target=curl_loop, args=(h1, end, results)) for _ in range(CURL_LOOPS)]
                for t in loops:
                    t.start()
                for t in loops:
                    t.join()
                os.kill(flood.pid, signal.SIGINT)  # timeout passes it on to hping3, which prints its count
                out = flood.communicate(timeout=20)[0].decode(errors="replace")
            finally:
                if flood.poll() is None:
                    os.killpg(flood.pid, signal.SIGKILL)
                    flood.wait()
                sampler.stop_ev.set()
                sampler.join(timeout=20)
            m = re.search(r"(\d+) packets transmitted", out)
            sent = int(m.group(1)) if m else None
            print(f"hping3: {sent} SYNs in about {FLOOD_SECONDS} s: {out.strip().splitlines()[-2:]}", flush=True)
            check(sent is not None and sent > 1000, f"hping3 flooded: {out!r}")

            good = sum(1 for ok, _, _ in results if ok)
            worst = max(s for _, s, _ in results)
            print(f"curl during the flood: {good} of {len(results)} succeeded, slowest {worst:.2f} s; failures: "
                  f"{[why for ok, _, why in results if not ok][:5]}", flush=True)
            check(len(results) >= 5, f"curl ran during the flood: {len(results)} tries")
            check(good >= MIN_SUCCESS * len(results),
                  f"at least {MIN_SUCCESS:.0%} of the curls during the flood succeeded: {good} of {len(results)}")
            time.sleep(1)
            ok, secs, why = curl_once(h1)
            check(ok, f"curl after the flood: {why}")
            paws = linux_tcpext(h1, "PAWSEstab")

            if sampler.errors:
                print(f"ngstack show tcp --json failed {len(sampler.errors)} times: {sampler.errors[:3]}", flush=True)
            check(len(sampler.samples) >= FLOOD_SECONDS,
                  f"samples of the listener: {len(sampler.samples)}; errors: {sampler.errors[:3]}")
            peak = max(l["syn_received"] for _, l, _ in sampler.samples)
            over = [(round(t - t0, 2), l) for t, l, _ in sampler.samples if l["syn_received"] > l["backlog"]]
            print(f"listener samples: {len(sampler.samples)}, backlog {sampler.samples[0][1]['backlog']}, "
                  f"syn_received peak {peak}, last {sampler.samples[-1][1]}", flush=True)
            check(sampler.samples[0][1]["backlog"] == BACKLOG, f"listener backlog {BACKLOG}: {sampler.samples[0][1]}")
            check(not over, f"syn_received never above the backlog: {over[:5]}")
            check(peak == BACKLOG, f"the flood filled the backlog ({BACKLOG}): peak syn_received {peak}")

            rc = ng.stop()
            check(rc == 0, f"ngstack exit {rc}:\n{ng.output()}")
            s = ng.summary()
    st = s["tcp"]["stats"]
    print("tcp.stats:", json.dumps({k: v for k, v in st.items() if v}), flush=True)
    print("tcp.listeners:", json.dumps(s["tcp"]["listeners"]), flush=True)
    print("http:", json.dumps(service(s, "http", PORT)), flush=True)
    print("ports:", json.dumps([{k: p.get(k) for k in ("name", "rx_packets", "tx_packets", "imissed", "oerrors")}
                                for p in s["ports"]]),
          "\ndrops:", json.dumps({w["lcore"]: {k: v for k, v in w["drops"].items() if v} for w in s["workers"]}),
          flush=True)
    check(st["cookies_sent"] > 0, f"SYN cookies sent: {st['cookies_sent']}")
    check(st["cookies_accepted"] > 0, f"SYN cookies accepted (curl's handshakes): {st['cookies_accepted']}")
    check(st["syncache_overflow"] > 0, f"the backlog overflowed: syncache_overflow {st['syncache_overflow']}")
    http = service(s, "http", PORT)
    check(http["responses_2xx"] >= good + 2, f"http: at least the {good + 2} successful curls answered: {http}")
    check(s["ok"] and s["totals"]["balanced"], f"rx + originated == tx + drops + consumed: {s['totals']}")
    check(all(m["full"] for m in s["mempools"]), f"every mbuf back in its pool: {s['mempools']}")
    check(len(s["workers"]) == WORKERS, f"{WORKERS} worker(s): {[w['lcore'] for w in s['workers']]}")
    # Nothing ngstack sent on curl's connections was dropped by h1's PAWS test (RFC 7323 §5.3): a
    # connection's TSvals, its SYN-ACK's included, never go backwards (RFC 7323 §5.4). h1's counters are its
    # namespace's own: only this test's connections.
    check(paws == 0, f"h1's PAWS test dropped {paws} of ngstack's segments (TcpExt PAWSEstab): TSval went "
                     f"backwards on a connection (a cookie SYN-ACK's TSval ahead of ngstack's timestamp clock)")
    print(f"ok: {WORKERS} worker(s): {good}/{len(results)} curls through a {sent}-SYN flood, "
          f"cookies sent {st['cookies_sent']}, accepted {st['cookies_accepted']} ({time.monotonic() - t0:.1f} s)",
          flush=True)


if __name__ == "__main__":
    run_test(test_tcp_synflood)
