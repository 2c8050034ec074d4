"""Forwarder (L2 cross-connect) between two Linux hosts in namespaces.

  [h0 198.18.0.1] eth0 -- veth -- net_af_packet p0 ==ngstack== p1 net_af_packet -- veth -- eth0 [h1 198.18.0.2]

Host h0 pings h1 (ARP and ICMP both cross ngstack), then sends 100 000
sequence-numbered UDP datagrams that must all arrive at h1, in order. At the
end ngstack stops on SIGINT with every mempool full and every packet counted.
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from ngslab import Lab, Ngstack, check, run_test, sh  # noqa: E402

COUNT = int(os.environ.get("NGS_UDP_COUNT", "100000"))
MODES = os.environ.get("NGS_DISPATCH_MODES", "direct,hybrid,deferred").split(",")
UDP_SEQ = os.path.join(os.path.dirname(__file__), "udp_seq.py")
PY = "/usr/bin/python3"


def config(if0, if1, mode):
    # Two workers (lcore 2 shares CPU 0 with the mostly idle main lcore); with
    # the flow policy a packet is handled by the worker its flow bucket maps
    # to, whichever worker received it.
    return f"""mode: forwarder
eal:
  main_lcore: 0
  memory_mb: 512
  no_huge: true
  file_prefix: ngt-fwd-{os.getpid()}
  lcore_cpus: {{2: 0}}
# Workers here are not on isolated CPUs: the kernel may preempt one for tens
# of milliseconds. A deep work queue (and mbufs to fill it) rides that out, as
# the NIC ring does for rx; a shallow one would drop (and count) the overflow.
mempool: {{mbufs: 65535}}
ports:
  - name: p0
    # qpairs=2: a tx queue per worker; the kernel fans frames out over the two
    # rx queues by flow hash (PACKET_FANOUT_HASH), like RSS.
    device: net_af_packet0,iface={if0},framecnt=4096,qpairs=2
    rx_queues: 2
  - name: p1
    device: net_af_packet1,iface={if1},framecnt=4096,qpairs=2
    rx_queues: 2
workers:
  lcores: [1, 2]
forwarder:
  paths:
    - {{in: p0, out: p1}}
    - {{in: p1, out: p0}}
dispatch:
  mode: {mode}
  protocols:
    ether: {{policy: flow, qlimit: 16384}}
"""


def test_forwarder_between_linux_hosts():
    # The bridge lab's first two hosts: 198.18.0.1 and 198.18.0.2.
    with Lab("bridge") as lab:
        h0, if0 = lab.host(1), lab.port(0)
        h1, if1 = lab.host(2), lab.port(1)
        for mode in MODES:
            print(f"--- dispatch mode {mode}", flush=True)
            run_mode(h0, h1, if0, if1, mode)


def run_mode(h0, h1, if0, if1, mode):
    with Ngstack(config(if0, if1, mode)) as ng:
        ng.wait_running()
        for src, dst in ((h0, "198.18.0.2"), (h1, "198.18.0.1")):
            r = sh(f"ip netns exec {src} ping -c 3 -i 0.2 -W 2 {dst}", check=False)
            check(r.returncode == 0, f"ping {src} -> {dst} failed:\n{r.stdout}{r.stderr}\n{ng.output()}")

        # Sender and receiver share the main lcore's CPU so that the worker's
        # core stays the worker's.
        recv = subprocess.Popen(["ip", "netns", "exec", h1, "taskset", "-c", "0", PY, UDP_SEQ, "recv", "9000",
                                 str(COUNT)], stdout=subprocess.PIPE, text=True)
        check(recv.stdout.readline().strip() == "ready", "receiver did not start")
        sh(f"ip netns exec {h0} taskset -c 0 {PY} {UDP_SEQ} send 198.18.0.2 9000 {COUNT}", timeout=300)
        result = json.loads(recv.stdout.readline())
        recv.wait(timeout=30)
        print("receiver:", result)
        check(result["received"] == COUNT and result["missing"] == 0,
              f"lost datagrams: {result}\n{ng.output()}")
        check(result["reordered"] == 0, f"reordered datagrams: {result}")
        check(result["duplicates"] == 0, f"duplicated datagrams: {result}")

        rc = ng.stop()
        check(rc == 0, f"ngstack exit status {rc}\n{ng.output()}")
        s = ng.summary()
        print(json.dumps(s["totals"]))
        check(s["totals"]["balanced"], "rx != tx + drops")
        check(all(m["full"] for m in s["mempools"]), f"mempool not full: {s['mempools']}")
        ports = {p["name"]: p for p in s["ports"]}
        check(ports["p0"]["rx_packets"] >= COUNT, f"p0 rx {ports['p0']['rx_packets']} < {COUNT}")
        check(ports["p1"]["tx_packets"] >= COUNT, f"p1 tx {ports['p1']['tx_packets']} < {COUNT}")
        check("mempool ngs_mbuf_pool" in ng.out_text() and "(full)" in ng.out_text(), "summary lacks mempool line")
        ws = s["netisr"]["workstreams"]
        check(s["netisr"]["protocols"][0]["mode"] == mode, f"netisr mode {s['netisr']['protocols']}")
        queued = sum(w["queued"] for w in ws)
        if mode == "deferred":
            check(queued >= COUNT, f"deferred mode queued only {queued}")
        if mode == "direct":
            check(queued == 0 and sum(w["dispatched"] for w in ws) >= COUNT, f"direct mode: {ws}")
        print(f"netisr workstreams: {ws}")


if __name__ == "__main__":
    run_test(test_forwarder_between_linux_hosts)
