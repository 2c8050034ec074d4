"""ngstack's counters are readable through DPDK telemetry while it runs, as
dpdk-telemetry.py reads them, and SIGTERM stops it cleanly."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from ngslab import Ngstack, check, pcap_forwarder_config, run_test, sh, telemetry  # noqa: E402


def test_telemetry_and_sigterm():
    prefix = f"ngt-tel-{os.getpid()}"
    pcap = f"/tmp/{prefix}.pcap"
    sh(f"/usr/bin/python3 {os.path.dirname(__file__)}/../../perf/make_pcap.py {pcap} --size 64 --flows 64")
    cfg = pcap_forwarder_config(prefix, pcap)
    try:
        with Ngstack(cfg) as ng:
            ng.wait_running()
            time.sleep(1)
            summary = telemetry(prefix, "/ngstack/summary")
            print("summary:", summary)
            check(summary["rx_packets"] > 0 and summary["mode"] == "forwarder", f"summary {summary}")
            check(telemetry(prefix, "/ngstack/ports") == ["source", "sink"], "port list")
            src = telemetry(prefix, "/ngstack/port,source")
            check(src["rx_packets"] > 0 and "imissed" in src, f"port source {src}")
            check(telemetry(prefix, "/ngstack/workers") == [1], "worker list")
            w = telemetry(prefix, "/ngstack/worker,1")
            check(w["rx_packets"] > 0 and "drop_tx_full" in w and w["busy_cycles"] > 0, f"worker {w}")
            netisr = telemetry(prefix, "/ngstack/netisr")
            check(netisr == {"buckets": 128, "ether_policy": "flow", "ether_mode": "deferred", "ether_qlimit": 2048},
                  f"netisr {netisr}")
            ws = telemetry(prefix, "/ngstack/workstream,1")
            check(ws["ether_queued"] > 0 and ws["ether_handled"] > 0 and ws["ether_dispatched"] == 0, f"workstream {ws}")
            # DPDK's own ethdev telemetry sees the same ports.
            check(len(telemetry(prefix, "/ethdev/list")) == 2, "ethdev list")

            ng.proc.terminate()  # SIGTERM
            rc = ng.wait(timeout=30)
            check(rc == 0, f"exit status {rc} after SIGTERM\n{ng.output()}")
            s = ng.summary()
            check(s["ok"] and s["totals"]["rx_packets"] >= summary["rx_packets"], f"summary {s['totals']}")
    finally:
        if os.path.exists(pcap):
            os.unlink(pcap)


if __name__ == "__main__":
    run_test(test_telemetry_and_sigterm)
