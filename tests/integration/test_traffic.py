"""Traffic mode: the generator and the sink, checked against what a capture
and a second process see.

1. A generator sends exactly 2 000 000 UDP frames over 16 flows at 1 Mpps
   into a net_pcap capture. The capture holds exactly that many frames, and
   libpcap's own timestamps (not ngstack's) put the rate within 1% of 1 Mpps.
2. The capture, edited on purpose (frames removed, duplicated, and same-flow
   neighbours swapped), is replayed into a sink: it reports exactly the
   injected loss, duplicates and reordering.
3. Generator and sink in two ngstack processes joined by net_memif: every
   stamped frame arrives, and latency is measured on the shared TSC."""
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from ngslab import Ngstack, check, run_test, telemetry  # noqa: E402

COUNT = 2_000_000
RATE = 1_000_000
FLOWS = 16
CAPTURE = f"/dev/shm/ngstack-test-traffic-{os.getpid()}.pcap"
EDITED = CAPTURE + ".edited"


def config(prefix, port, section, lcores="[1]"):
    return f"""mode: traffic
eal: {{main_lcore: 0, memory_mb: 512, no_huge: true, file_prefix: {prefix}}}
ports:
  - {{name: p, device: "{port}"}}
workers: {{lcores: {lcores}}}
traffic:
{section}"""


def run_to_end(config_text, seconds, what):
    """Runs ngstack for `seconds`; checks exit 0 and the accounting line;
    returns the JSON summary."""
    with Ngstack(config_text, ["--duration", str(seconds)]) as ng:
        rc = ng.wait(timeout=60)
        check(rc == 0, f"{what} exit {rc}:\n{ng.output()}")
        s = ng.summary()
        check(s["ok"], f"{what}: balanced and mempools full:\n{ng.out_text()}")
        return s


def read_pcap(path):
    """(global header, [(seconds, record bytes)]); net_pcap writes
    nanosecond-resolution captures (magic 0xa1b23c4d)."""
    with open(path, "rb") as f:
        data = f.read()
    head, recs, at = data[:24], [], 24
    frac = 1e9 if struct.unpack_from("<I", data, 0)[0] == 0xa1b23c4d else 1e6
    while at < len(data):
        sec, sub, incl, _ = struct.unpack_from("<IIII", data, at)
        recs.append((sec + sub / frac, data[at:at + 16 + incl]))
        at += 16 + incl
    return head, recs


def test_generator_rate_and_count():
    gen = config(f"ngt-gen-{os.getpid()}", f"net_pcap0,tx_pcap={CAPTURE}", f"""  generators:
    - {{port: p, src: 198.18.0.1-198.18.0.4, sport: 1024-1027, flows: {FLOWS}, rate: {{pps: {RATE}}}, packets: {COUNT}}}
""")
    s = run_to_end(gen, 4, "generator")
    g = s["traffic"]["generators"][0]
    check(g["packets"] == COUNT and g["done"], f"generator sent {g['packets']} of {COUNT}")
    check(s["ports"][0]["tx_packets"] == COUNT, f"port tx {s['ports'][0]['tx_packets']}")
    print(f"generator: {g}")
    _, recs = read_pcap(CAPTURE)
    check(len(recs) == COUNT, f"the capture holds {len(recs)} frames, not {COUNT}")
    # libpcap stamps each frame when net_pcap writes it: an independent clock.
    first, last = recs[0][0], recs[-1][0]
    rate = (COUNT - 1) / (last - first)
    print(f"capture: {len(recs)} frames over {last - first:.4f} s = {rate:.0f} frames/s")
    check(abs(rate - RATE) <= 0.01 * RATE, f"rate {rate:.0f} frames/s is not within 1% of {RATE}")
    sizes = {len(r[1]) - 16 for r in recs[:1000]}
    check(sizes == {60}, f"64-byte frames are 60 bytes without FCS: {sizes}")


def test_sink_finds_injected_loss_duplicates_reordering():
    head, recs = read_pcap(CAPTURE)
    # Frame i belongs to flow i % 16 and carries its (i // 16)th number; the
    # same flow's next frame is i + 16. Edits sit far apart, away from both
    # ends (loss at a flow's tail is invisible to sequence numbers).
    drop = {1000 + 50_000 * k for k in range(7)}             # 7 lost
    dup = {500_000 + 30_000 * k for k in range(5)}           # 5 duplicated
    swap = {900_000 + 40_000 * k for k in range(9)}          # 9 swapped with i + 16
    out = []
    i = 0
    while i < len(recs):
        if i in swap:
            out.append(recs[i + 16][1])
            for j in range(i + 1, i + 16):
                out.append(recs[j][1])
            out.append(recs[i][1])
            i += 17
            continue
        if i not in drop:
            out.append(recs[i][1])
            if i in dup:
                out.append(recs[i][1])
        i += 1
    with open(EDITED, "wb") as f:
        f.write(head + b"".join(out))
    sink = config(f"ngt-sink-{os.getpid()}", f"net_pcap0,rx_pcap={EDITED}", "  sinks:\n    - {port: p}\n")
    k = run_to_end(sink, 4, "sink")["traffic"]["sinks"][0]
    print(f"sink: {k}")
    check(k["packets"] == COUNT - 7 + 5 and k["stamped"] == k["packets"], f"frames read: {k}")
    check(k["flows"] == FLOWS, f"flows: {k['flows']}")
    check(k["lost"] == 7, f"lost {k['lost']}, injected 7")
    check(k["duplicates"] == 5, f"duplicates {k['duplicates']}, injected 5")
    check(k["reordered"] == 9, f"reordered {k['reordered']}, injected 9")


def test_generator_and_sink_in_two_processes():
    sock = f"/run/ngstack-test-memif-{os.getpid()}.sock"
    count = 100_000
    sink_prefix = f"ngt-msink-{os.getpid()}"
    sink = config(sink_prefix, f"net_memif0,role=server,socket={sock}",
                  "  sinks:\n    - {port: p}\n")
    gen = config(f"ngt-mgen-{os.getpid()}", f"net_memif0,role=client,socket={sock}", f"""  generators:
    - {{port: p, protocol: tcp_syn, size: 128, flows: 64, dst: 198.19.0.1-198.19.0.64, rate: {{pps: 50000}}, packets: {count}}}
""")
    try:
        with Ngstack(sink) as rx:
            rx.wait_running()
            g = run_to_end(gen, 5, "generator")["traffic"]["generators"][0]
            check(g["packets"] == count, f"generator sent {g['packets']} of {count}")
            time.sleep(0.5)
            rows = telemetry(sink_prefix, "/ngstack/traffic")
            check(rows == [f"sink p {count} {count} 0"], f"/ngstack/traffic while running: {rows}")
            rc = rx.stop()
            check(rc == 0, f"sink exit {rc}:\n{rx.output()}")
            s = rx.summary()
            check(s["ok"], f"sink balanced and mempools full:\n{rx.out_text()}")
            k = s["traffic"]["sinks"][0]
            print(f"sink: {k}")
            check(k["stamped"] == count and k["flows"] == 64, f"every stamped frame arrived: {k}")
            check(k["lost"] == 0 and k["duplicates"] == 0 and k["reordered"] == 0, f"clean link: {k}")
            check(k["latency_samples"] == count and k["latency_future"] == 0, f"latency from the shared TSC: {k}")
            check(0 < k["latency_min_ns"] <= k["latency_p50_ns"] <= k["latency_p99_ns"] <= k["latency_max_ns"],
                  f"latency order: {k}")
    finally:
        if os.path.exists(sock):
            os.unlink(sock)


def test_traffic():
    try:
        test_generator_rate_and_count()
        test_sink_finds_injected_loss_duplicates_reordering()
        test_generator_and_sink_in_two_processes()
    finally:
        for p in (CAPTURE, EDITED):
            if os.path.exists(p):
                os.unlink(p)


if __name__ == "__main__":
    run_test(test_traffic)
