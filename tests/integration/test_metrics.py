"""The Prometheus endpoint (metrics.listen): scraped twice while ngstack
forwards net_pcap -> net_null, its counters move, each scrape's totals agree
with their parts, the last scrape is at or below the final --json summary,
and the port is closed once ngstack has exited. A port already in use is a
start-up error naming metrics.listen with its position; `--metrics` serves the
embedded default too."""
import os
import socket
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from ngslab import Ngstack, check, pcap_forwarder_config, run_test, sh  # noqa: E402


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_labels(text):
    """Label text between braces -> dict (values unescaped)."""
    labels, i = {}, 0
    while i < len(text):
        eq = text.index("=", i)
        name = text[i:eq]
        j, val = eq + 2, ""
        while text[j] != '"':
            if text[j] == "\\":
                j += 1
                val += {"n": "\n", "\\": "\\", '"': '"'}[text[j]]
            else:
                val += text[j]
            j += 1
        labels[name] = val
        i = j + 2 if j + 1 < len(text) and text[j + 1] == "," else j + 1
    return labels


class Scrape:
    def __init__(self, url):
        with urllib.request.urlopen(url, timeout=10) as r:
            self.content_type = r.headers.get("Content-Type", "")
            self.text = r.read().decode()
        self.samples = []  # (name, labels, value)
        self.types = {}
        for line in self.text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(" ")
                self.types[name] = kind
                continue
            if line.startswith("#"):
                continue
            series, value = line.rsplit(" ", 1)
            if "{" in series:
                name, rest = series.split("{", 1)
                labels = parse_labels(rest[:-1])
            else:
                name, labels = series, {}
            self.samples.append((name, labels, float(value)))

    def get(self, name, **labels):
        found = [v for n, ls, v in self.samples if n == name and all(ls.get(k) == str(x) for k, x in labels.items())]
        check(len(found) == 1, f"{name}{labels}: {len(found)} samples")
        return found[0]

    def total(self, name, **labels):
        return sum(v for n, ls, v in self.samples if n == name and all(ls.get(k) == str(x) for k, x in labels.items()))

    def check_relations(self):
        """Totals and their parts come from one snapshot: they agree exactly."""
        rx, tx = self.get("ngstack_rx_packets_total"), self.get("ngstack_tx_packets_total")
        for part in ("ngstack_worker_rx_packets_total", "ngstack_port_rx_packets_total", "ngstack_rxq_packets_total"):
            check(self.total(part) == rx, f"sum of {part} {self.total(part)} != rx total {rx}")
        for part in ("ngstack_worker_tx_packets_total", "ngstack_port_tx_packets_total", "ngstack_txq_packets_total"):
            check(self.total(part) == tx, f"sum of {part} {self.total(part)} != tx total {tx}")
        dropped = self.total("ngstack_drops_total") + self.total("ngstack_netisr_qdrops_total")
        check(self.get("ngstack_dropped_packets_total") == dropped, "dropped total != drops + netisr qdrops")
        check(self.total("ngstack_port_rx_bytes_total") == self.total("ngstack_worker_rx_bytes_total"), "rx bytes")
        check(self.get("ngstack_originated_packets_total") == self.total("ngstack_events_total", event="originated"),
              "originated total != originated events")


def check_port_closed(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
        raise AssertionError(f"127.0.0.1:{port} still accepts connections after ngstack exited")
    except ConnectionRefusedError:
        pass
    finally:
        s.close()


def config(prefix, pcap, port):
    return pcap_forwarder_config(prefix, pcap, f"metrics:\n  listen: 127.0.0.1:{port}\n")


def scrape_run(pcap):
    prefix = f"ngt-met-{os.getpid()}"
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    with Ngstack(config(prefix, pcap, port)) as ng:
        ng.wait_running()
        check(f"metrics: Prometheus endpoint at http://127.0.0.1:{port}/metrics" in ng.err_text(), ng.output())
        time.sleep(0.5)
        first = Scrape(url)
        time.sleep(1.0)
        last = Scrape(url)
        rc = ng.stop()
        check(rc == 0, f"exit {rc}\n{ng.output()}")
        final = ng.summary()
    check_port_closed(port)

    check(first.content_type.startswith("text/plain; version=0.0.4"), f"Content-Type {first.content_type}")
    check(first.types["ngstack_rx_packets_total"] == "counter" and first.types["ngstack_uptime_seconds"] == "gauge",
          "TYPE lines")
    for s in (first, last):
        s.check_relations()
    check(first.get("ngstack_info", mode="forwarder") == 1, "ngstack_info")
    # The counters move between scrapes.
    for name, labels in (("ngstack_rx_packets_total", {}), ("ngstack_tx_packets_total", {}),
                         ("ngstack_uptime_seconds", {}), ("ngstack_worker_iterations_total", {"worker": 1}),
                         ("ngstack_port_rx_bytes_total", {"port": "source"}),
                         ("ngstack_netisr_queued_total", {"worker": 1, "protocol": "ether"}),
                         ("ngstack_worker_busy_cycles_total", {"worker": 1})):
        a, b = first.get(name, **labels), last.get(name, **labels)
        check(0 < a < b, f"{name}{labels} did not grow: {a} then {b}")
    check(last.get("ngstack_netisr_protocol_info", protocol="ether", policy="flow", mode="deferred") == 1,
          "netisr protocol info")
    check(last.get("ngstack_netisr_protocol_qlimit", protocol="ether") == 2048, "qlimit")
    size = last.get("ngstack_mempool_size", pool="ngs_mbuf_pool")
    check(0 < last.get("ngstack_mempool_available", pool="ngs_mbuf_pool") <= size, "mempool gauges")

    # The last scrape is at or below the final summary; the summary's own
    # relations hold.
    t = final["totals"]
    print(f"scrapes: rx {first.get('ngstack_rx_packets_total'):.0f} -> {last.get('ngstack_rx_packets_total'):.0f}; "
          f"final rx {t['rx_packets']}")
    check(last.get("ngstack_rx_packets_total") <= t["rx_packets"], "rx above the final value")
    check(last.get("ngstack_tx_packets_total") <= t["tx_packets"], "tx above the final value")
    check(last.get("ngstack_dropped_packets_total") <= t["dropped"], "drops above the final value")
    for p in final["ports"]:
        for k in ("rx_packets", "rx_bytes", "tx_packets", "tx_bytes"):
            check(last.get(f"ngstack_port_{k}_total", port=p["name"], device=p["device"]) <= p[k], f"{p['name']} {k}")
    for w in final["workers"]:
        for k in ("rx_packets", "tx_packets", "iterations", "busy_cycles", "empty_polls"):
            check(last.get(f"ngstack_worker_{k}_total", worker=w["lcore"]) <= w[k], f"worker {k}")
        for reason, v in w["drops"].items():
            check(last.get("ngstack_drops_total", worker=w["lcore"], reason=reason) <= v, f"drop {reason}")
        for event, v in w["events"].items():
            check(last.get("ngstack_events_total", worker=w["lcore"], event=event) <= v, f"event {event}")
    for ws in final["netisr"]["workstreams"]:
        for k in ("queued", "handled", "qdrops"):
            check(last.get(f"ngstack_netisr_{k}_total", worker=ws["lcore"], protocol=ws["protocol"]) <= ws[k],
                  f"netisr {k}")
    check(t["rx_packets"] == sum(w["rx_packets"] for w in final["workers"]), "final rx != sum over workers")
    check(t["balanced"] and final["ok"], "final summary not ok")


def port_in_use(pcap):
    prefix = f"ngt-met2-{os.getpid()}"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with Ngstack(config(prefix, pcap, port)) as ng:
            rc = ng.wait(timeout=60)
            err = ng.err_text()
            check(rc == 1, f"exit {rc} with metrics.listen in use\n{ng.output()}")
            want = f"config.yaml:9:3: metrics.listen: cannot listen on 127.0.0.1:{port}: Address already in use"
            check(want in err, f"wanted {want!r} in:\n{err}")


def embedded_with_option():
    port = free_port()
    with Ngstack(None, ["--metrics", f"127.0.0.1:{port}", "--duration", "30"]) as ng:
        ng.wait_running()
        s = Scrape(f"http://127.0.0.1:{port}/metrics")
        check(s.get("ngstack_info", mode="router") == 1 and s.get("ngstack_fib_routes") == 3, "embedded metrics")
        s.check_relations()
        # A scraper's idle connection does not hold up the exit.
        idle = socket.create_connection(("127.0.0.1", port))
        t0 = time.time()
        check(ng.stop() == 0, ng.output())
        idle.close()
        check(time.time() - t0 < 3, f"ngstack took {time.time() - t0:.1f} s to stop with an idle metrics connection")
    check_port_closed(port)


def test_metrics():
    pcap = f"/tmp/ngt-met-{os.getpid()}.pcap"
    sh(f"/usr/bin/python3 {os.path.dirname(__file__)}/../../perf/make_pcap.py {pcap} --size 64 --flows 64")
    try:
        scrape_run(pcap)
        port_in_use(pcap)
        embedded_with_option()
    finally:
        os.unlink(pcap)


if __name__ == "__main__":
    run_test(test_metrics)
