"""The embedded default (no config file) runs for 2 s in router mode, exits
0, routes traffic, accounts for every packet and returns every mbuf."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from ngslab import Ngstack, check, run_test  # noqa: E402


def test_embedded_default():
    with Ngstack(None, ["--duration", "2"]) as ng:
        rc = ng.wait(timeout=60)
        check(rc == 0, f"exit status {rc}\n{ng.output()}")
        s = ng.summary()
        t = s["totals"]
        print(t)
        check(t["rx_packets"] > 0, "nothing received")
        check(s["mode"] == "router", f"mode {s['mode']}")
        check(t["rx_packets"] + t["originated"] == t["tx_packets"] + t["dropped"] + t["consumed"],
              "rx + originated != tx + drops + consumed")
        fwd = sum(w["events"]["ipv4_forwarded"] for w in s["workers"])
        check(fwd > 0.9 * t["rx_packets"], f"forwarded {fwd} of {t['rx_packets']}")
        check(s["router"]["fib_routes"] == 3, f"routes {s['router']}")
        check(t["balanced"] and s["ok"], "summary not ok")
        check(all(m["full"] for m in s["mempools"]) and s["mempools"], f"mempools: {s['mempools']}")
        check(1.5 < s["duration_s"] < 3.5, f"ran {s['duration_s']} s, asked for 2")
        check(len(s["intervals"]) >= 1, "no live stats interval recorded")
        check("[    1.0s] rx" in ng.out_text(), "no live stats table printed")
        ports = {p["name"]: p for p in s["ports"]}
        # The sink transmits the routed packets and one gratuitous ARP; the
        # source port, one gratuitous ARP.
        check(ports["sink"]["tx_packets"] == fwd + 1, "sink did not transmit everything routed")
        check(ports["source"]["tx_packets"] == 1, f"source tx {ports['source']['tx_packets']}")
        txq = [q for q in s["tx_queues"] if q["port"] == "sink"]
        check(len(txq) == 1 and txq[0]["tx_packets"] == fwd + 1, f"tx queues {s['tx_queues']}")
        rxq = [q for q in s["queues"] if q["port"] == "source"]
        check(len(rxq) == 1 and rxq[0]["rx_packets"] == t["rx_packets"], f"rx queues {s['queues']}")
        w = s["workers"][0]
        check(0.0 < w["busy_fraction"] <= 1.0, f"busy fraction {w['busy_fraction']}")
        check(w["cycles_per_packet"] > 0, "no cycles per packet")


if __name__ == "__main__":
    run_test(test_embedded_default)
