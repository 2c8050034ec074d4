#!/usr/bin/python3
"""ngstack forwarder vs dpdk-testpmd --forward-mode=mac, side by side.

Both forward 64-byte frames from a net_pcap infinite_rx source to a net_null
sink on one forwarding core (lcore 1; lcore 0 is the main lcore), with the same
burst size and ring sizes, and both rewrite the Ethernet addresses of every
frame. They run alternately, `--rounds` times each, `--seconds` per run; the
per-second rates after the first second are collected and the medians
compared. Prints the machine, the DPDK version, every run and the ratio.

  perf/fwd_vs_testpmd.py [--rounds 3] [--seconds 5] [--size 64] [--json FILE]
"""
import argparse
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def machine():
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    dpdk = subprocess.run(["pkg-config", "--modversion", "libdpdk"], capture_output=True, text=True).stdout.strip()
    return f"{model}, {os.cpu_count()} CPUs, kernel {platform.release()}, DPDK {dpdk}"


def run_testpmd(pcap, seconds, burst):
    cmd = ["dpdk-testpmd", "-l", "0,1", "--no-huge", "-m", "1024", "--no-pci", "--file-prefix",
           f"ngs-perf-testpmd-{os.getpid()}", "--log-level", "notice",
           "--vdev", f"net_pcap0,rx_pcap={pcap},infinite_rx=1", "--vdev", "net_null0,no-rx=1", "--",
           "--forward-mode=mac", "--stats-period", "1", "--no-mlockall", "--total-num-mbufs=16384",
           f"--burst={burst}", "--rxd=1024", "--txd=1024"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(seconds + 1.5)
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=30)
    # Port 1 (the sink) reports Tx-pps each period; the first period includes start-up.
    tx = [int(x) for x in re.findall(r"Tx-pps:\s+(\d+)", out)]
    samples = [v for v in tx[1::2]][1:]  # ports alternate 0,1,0,1...; take port 1, skip the first
    samples = [v for v in samples if v > 0]
    if not samples:
        raise RuntimeError("testpmd reported no rate:\n" + out[-3000:])
    return statistics.median(samples), None


def run_ngstack(ngstack, pcap, seconds, burst, tmp):
    cfg = os.path.join(tmp, "fwd.yaml")
    with open(cfg, "w") as f:
        f.write(f"""eal: {{main_lcore: 0, memory_mb: 1024, no_huge: true, file_prefix: ngs-perf-{os.getpid()}}}
mempool: {{mbufs: 16383}}
ports:
  - {{name: source, device: "net_pcap0,rx_pcap={pcap},infinite_rx=1"}}
  - {{name: sink, device: "net_null0,no-rx=1"}}
workers: {{lcores: [1], burst: {burst}}}
forwarder: {{paths: [{{in: source, out: sink, dst_mac: "02:00:00:00:00:02"}}]}}
""")
    js = os.path.join(tmp, "ngstack.json")
    r = subprocess.run([ngstack, "--config", cfg, "--duration", str(seconds + 1), "--json", js, "--quiet"],
                       capture_output=True, text=True, timeout=seconds + 60)
    if r.returncode != 0:
        raise RuntimeError(f"ngstack failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    with open(js) as f:
        s = json.load(f)
    samples = [i["tx_pps"] for i in s["intervals"][1:] if i["tx_pps"] > 0]
    return statistics.median(samples), s["workers"][0]["cycles_per_packet"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--burst", type=int, default=32)
    ap.add_argument("--ngstack", default=os.path.join(ROOT, "build", "app", "ngstack"))
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="ngstack-perf-")
    pcap = os.path.join(tmp, "flows.pcap")
    subprocess.run([sys.executable, os.path.join(HERE, "make_pcap.py"), pcap, "--size", str(a.size), "--flows",
                    "1024"], check=True)
    print(f"machine: {machine()}")
    print(f"setup: net_pcap infinite_rx -> net_null no-rx, {a.size}-byte frames, 1024 flows, 1 forwarding core, "
          f"burst {a.burst}, {a.seconds} s per run, {a.rounds} round(s), medians of per-second rates")
    rows = []
    try:
        for r in range(a.rounds):
            tp, _ = run_testpmd(pcap, a.seconds, a.burst)
            ng, cpp = run_ngstack(a.ngstack, pcap, a.seconds, a.burst, tmp)
            rows.append({"round": r + 1, "testpmd_mac_pps": tp, "ngstack_pps": ng, "ngstack_cycles_per_packet": cpp})
            print(f"round {r + 1}: testpmd mac {tp / 1e6:7.3f} Mpps   ngstack forwarder {ng / 1e6:7.3f} Mpps "
                  f"({cpp:.1f} cycles/packet)   ratio {ng / tp:.3f}", flush=True)
    finally:
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)
    tp = statistics.median(r["testpmd_mac_pps"] for r in rows)
    ng = statistics.median(r["ngstack_pps"] for r in rows)
    print(f"median: testpmd mac {tp / 1e6:.3f} Mpps, ngstack forwarder {ng / 1e6:.3f} Mpps, "
          f"ratio ngstack/testpmd = {ng / tp:.3f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"machine": machine(), "size": a.size, "rounds": rows, "testpmd_mac_pps": tp,
                       "ngstack_pps": ng, "ratio": ng / tp}, f, indent=2)
    if tp <= 0 or ng <= 0:
        sys.exit(1)


if __name__ == "__main__":
    main()
