"""Shared pieces of the perf/ benchmarks: the machine line, a capture to
replay, and runs of dpdk-testpmd and ngstack on net_pcap infinite_rx ->
net_null that report the median of their per-second rates (the first second,
which includes start-up, is left out)."""
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
NGSTACK = os.path.join(ROOT, "build", "app", "ngstack")


def machine():
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    dpdk = subprocess.run(["pkg-config", "--modversion", "libdpdk"], capture_output=True, text=True).stdout.strip()
    return f"{model}, {os.cpu_count()} CPUs, kernel {platform.release()}, DPDK {dpdk}"


# net_pcap's port i has the MAC 02:70:63:61:70:0i ("pcap" and the index).
def pcap_port_mac(i):
    return f"02:70:63:61:70:{i:02x}"


def make_pcap(path, size=64, flows=1024, first_flow=0, dst_mac="02:00:00:00:00:02"):
    subprocess.run([sys.executable, os.path.join(HERE, "make_pcap.py"), path, "--size", str(size), "--flows",
                    str(flows), "--first-flow", str(first_flow), "--dst-mac", dst_mac], check=True)


def lcores_arg(workers):
    """Main lcore 0 on CPU 0, workers 1..N; on a machine with fewer CPUs than
    lcores, extra workers share CPUs round robin (the main lcore mostly sleeps)."""
    ncpu = os.cpu_count()
    return {l: l % ncpu for l in range(workers + 1)}


def testpmd_command(pcaps, burst=32, workers=1):
    """testpmd --forward-mode=mac from the captures to a net_null sink."""
    lmap = lcores_arg(workers)
    prefix = f"ngs-perf-testpmd-{os.getpid()}"
    cmd = ["dpdk-testpmd", "--lcores", ",".join(f"{l}@{c}" for l, c in lmap.items()), "--main-lcore", "0",
           "--no-huge", "-m", "1024", "--no-pci", "--file-prefix", prefix,
           "--log-level", "notice"]
    for i, p in enumerate(pcaps):
        cmd += ["--vdev", f"net_pcap{i},rx_pcap={p},infinite_rx=1"]
    cmd += ["--vdev", "net_null0,no-rx=1", "--", "--forward-mode=mac", "--stats-period", "1", "--no-mlockall",
            "--total-num-mbufs=32768", f"--burst={burst}", "--rxd=1024", "--txd=1024", f"--nb-cores={workers}"]
    return cmd


def testpmd_txonly_command(burst=32, workers=1, frame=60):
    """testpmd --forward-mode=txonly --txonly-multi-flow into a net_null sink:
    frames of `frame` bytes without FCS (60: 64 on the wire), one tx queue
    per forwarding core."""
    lmap = lcores_arg(workers)
    prefix = f"ngs-perf-testpmd-{os.getpid()}"
    return ["dpdk-testpmd", "--lcores", ",".join(f"{l}@{c}" for l, c in lmap.items()), "--main-lcore", "0",
            "--no-huge", "-m", "1024", "--no-pci", "--file-prefix", prefix, "--log-level", "notice",
            "--vdev", "net_null0,no-rx=1", "--", "--forward-mode=txonly", "--txonly-multi-flow",
            f"--txpkts={frame}", "--stats-period", "1", "--no-mlockall", "--total-num-mbufs=32768",
            f"--burst={burst}", "--txd=1024", f"--rxq={workers}", f"--txq={workers}", f"--nb-cores={workers}"]


def run_testpmd(pcaps, seconds, burst=32, workers=1, cmd=None):
    """testpmd's median per-second tx rate summed over its ports (the mac
    forwarder's by default; `cmd` runs another, e.g. testpmd_txonly_command)."""
    cmd = cmd or testpmd_command(pcaps, burst, workers)
    prefix = cmd[cmd.index("--file-prefix") + 1]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(seconds + 1.5)
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=30)
    # testpmd leaves its EAL runtime directory behind.
    shutil.rmtree(f"/var/run/dpdk/{prefix}", ignore_errors=True)
    nports = len(pcaps) + 1
    tx = [int(x) for x in re.findall(r"Tx-pps:\s+(\d+)", out)]
    # Per period, one Tx-pps line per port; the sink is the last port.
    periods = [sum(tx[i:i + nports]) for i in range(0, len(tx) - nports + 1, nports)][1:]
    periods = [v for v in periods if v > 0]
    if not periods:
        raise RuntimeError("testpmd reported no rate:\n" + out[-3000:])
    return statistics.median(periods)


def run_ngstack(config_text, seconds, tmp, binary=NGSTACK):
    """Returns (median tx pps, busy cycles per packet over all workers, summary)."""
    cfg = os.path.join(tmp, "bench.yaml")
    with open(cfg, "w") as f:
        f.write(config_text)
    js = os.path.join(tmp, "ngstack.json")
    # The first second (start-up) is left out; the extra half second makes
    # sure the last full second is reported before the run stops.
    r = subprocess.run([binary, "--config", cfg, "--duration", str(seconds + 1.5), "--json", js, "--quiet"],
                       capture_output=True, text=True, timeout=seconds + 60)
    if r.returncode != 0:
        raise RuntimeError(f"ngstack failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    with open(js) as f:
        s = json.load(f)
    samples = [i["tx_pps"] for i in s["intervals"][1:] if i["tx_pps"] > 0]
    busy = sum(w["busy_cycles"] for w in s["workers"])
    pkts = sum(w["rx_packets"] for w in s["workers"])
    return (statistics.median(samples) if samples else 0.0), (busy / pkts if pkts else 0.0), s


def eal_yaml(workers):
    """The eal and mempool sections of a benchmark config: main lcore 0, workers
    on lcores 1..N (sharing CPUs where the machine has fewer), 32 767 mbufs as
    testpmd gets up to 2 workers; beyond, ngstack's own size (its rings alone
    outgrow 32 767, and it refuses a pool smaller than what it may hold)."""
    lcore_cpus = ", ".join(f"{l}: {c}" for l, c in lcores_arg(workers).items() if l != c)
    return f"""eal:
  main_lcore: 0
  memory_mb: 1024
  no_huge: true
  file_prefix: ngs-perf-{os.getpid()}
{f"  lcore_cpus: {{{lcore_cpus}}}" + chr(10) if lcore_cpus else ""}{"mempool: {mbufs: 32767}" + chr(10) if workers <= 2 else ""}"""


def workers_yaml(workers, burst):
    return f"""workers:
  lcores: [{", ".join(str(l) for l in range(1, workers + 1))}]
  burst: {burst}
"""


def forwarder_config(pcaps, workers, burst=32, dispatch=""):
    ports = "".join(f'  - {{name: src{i}, device: "net_pcap{i},rx_pcap={p},infinite_rx=1"}}\n' for i, p in enumerate(pcaps))
    paths = "".join(f'    - {{in: src{i}, out: sink, dst_mac: "02:00:00:00:00:02"}}\n' for i in range(len(pcaps)))
    return f"""{eal_yaml(workers)}ports:
{ports}  - {{name: sink, device: "net_null0,no-rx=1"}}
{workers_yaml(workers, burst)}forwarder:
  paths:
{paths}{dispatch}"""
