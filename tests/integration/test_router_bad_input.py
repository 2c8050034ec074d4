"""Router mode under bad input, sent with scapy from a Linux host on the
router lab: each malformed packet is dropped under its named counter,
ngstack keeps forwarding, and every mbuf is back at exit.

ngstack's p0 is a net_pcap port on the veth (rx_iface_in/tx_iface) rather
than net_af_packet: af_packet hands DPDK datagrams the kernel has already
reassembled (PACKET_FANOUT_FLAG_DEFRAG), and the fragment attacks must reach
ngstack as fragments. The same port proves reassembly for local delivery: a
3000-byte ping to ngstack is answered.

Two variants (ngslab.workers_arg): one worker, ip direct; and `--workers 2`
(meson's test_router_bad_input_2w): two workers, ip deferred under the flow
policy, lcore 2 polling p0 (net_pcap: one rx queue, a tx queue per worker)
and lcore 1 p1. Every bad packet arrives on lcore 2 and is counted by
whichever worker its flow belongs to, so the counters are the workers' sums;
fragments of one datagram share a flow (the 2-tuple), hence a worker and its
reassembly table.

Then (one-worker variant) the NIC's checksum verdict, end to end: p0 is a
net_tap port, the one virtual device here that offers rx checksum offload
(it checks in software and sets RTE_MBUF_F_RX_IP_CKSUM_GOOD/BAD as a NIC
does). ngstack asks for it (the summary's ports[].rx_offloads, the start-up
log), routes pings from a host behind the tap, and a frame with a bad IPv4
header checksum is dropped as ipv4_bad_checksum. The tap's kernel side is
moved into a namespace of the test's own after ngstack opened it."""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from ngslab import (Lab, Ngstack, check, events, router_lab_config, run_test, sh, worker_counters,  # noqa: E402
                    workers_arg)

WORKERS = workers_arg()

ROUTER_MAC = "02:70:63:61:70:00"  # net_pcap0's MAC

# (name, scapy expression of the frame(s), counter, how many it must add)
CASES = [
    ("bad header checksum", 'E/IP(src=H1, dst=H2, chksum=0x1234)/UDP(dport=9)/("x"*18)', "drop_ipv4_bad_checksum", 1),
    ("IHL < 5", 'E/IP(src=H1, dst=H2, ihl=4)/("x"*40)', "drop_ipv4_bad_ihl", 1),
    ("total length beyond the frame", 'E/IP(src=H1, dst=H2, len=1000)/UDP(dport=9)/("x"*18)', "drop_ipv4_bad_length", 1),
    ("TTL 0", 'E/IP(src=H1, dst=H2, ttl=0)/UDP(dport=9)/("x"*18)', "drop_ipv4_ttl_exceeded", 1),
    ("TTL 1", 'E/IP(src=H1, dst=H2, ttl=1)/UDP(dport=9)/("x"*18)', "drop_ipv4_ttl_exceeded", 1),
    # RFC 1812 §5.3.4: unicast IP in a link-layer broadcast or multicast frame is not forwarded.
    ("unicast IP in a link-layer broadcast", 'Ether(dst="ff:ff:ff:ff:ff:ff")/IP(src=H1, dst=H2)/UDP(dport=9)/("x"*18)',
     "drop_ipv4_link_broadcast", 1),
    ("unicast IP in a link-layer multicast", 'Ether(dst="01:00:5e:00:00:01")/IP(src=H1, dst=H2)/UDP(dport=9)/("x"*18)',
     "drop_ipv4_link_broadcast", 1),
    ("broadcast source", 'E/IP(src="255.255.255.255", dst=H2)/UDP(dport=9)/("x"*18)', "drop_ipv4_bad_source", 1),
    ("teardrop (overlapping fragments)",
     '[E/IP(src=H1, dst=R, id=77, flags="MF", frag=0, proto=17)/("a"*32), '
     'E/IP(src=H1, dst=R, id=77, frag=2, proto=17)/("b"*8)]', "drop_ipv4_reassembly_failed", 1),
    ("ping of death (fragment past 65535)",
     'E/IP(src=H1, dst=R, id=78, frag=8189, proto=1)/("c"*200)', "drop_ipv4_frag_too_big", 1),
    ("truncated ARP", 'Ether(dst="ff:ff:ff:ff:ff:ff", type=0x0806)/bytes.fromhex("0001080006040001")',
     "drop_arp_truncated", 1),
    ("ARP for a foreign address", 'Ether(dst="ff:ff:ff:ff:ff:ff")/ARP(op=1, psrc="198.18.1.77", pdst="198.18.1.99")',
     "drop_arp_not_for_us", 1),
]


class Sender:
    """One scapy process in namespace `ns` (importing scapy takes seconds,
    more so beside two busy-polling workers on two CPUs): each send() is a
    scapy expression of the frame(s), sent on `iface`, with E = Ether to
    `router_mac` and H1, H2, R the lab's addresses; it returns once sent."""

    CODE = """import sys
from scapy.all import *
conf.verb = 0
E = Ether(dst=sys.argv[1])
H1, H2, R = '198.18.1.2', '198.19.1.2', '198.18.1.1'
print('ready', flush=True)
for line in sys.stdin:
    sendp(eval(line), iface=sys.argv[2])
    print('sent', flush=True)
"""

    def __init__(self, ns, iface, router_mac):
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, "/usr/bin/python3", "-c", self.CODE, router_mac, iface],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._expect("ready")

    def _expect(self, word):
        line = self.proc.stdout.readline().strip()
        if line != word:
            raise RuntimeError(f"scapy sender: expected {word!r}, got {line!r} (exit {self.proc.poll()})")

    def send(self, expr):
        self.proc.stdin.write(expr + "\n")
        self.proc.stdin.flush()
        self._expect("sent")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return False


def bad_input():
    prefix = f"ngt-badin-{os.getpid()}"
    with Lab("router") as lab:
        tx = f",tx_iface={lab.port(0)}" * WORKERS  # net_pcap: one tx queue per tx_iface
        cfg = router_lab_config(lab, prefix, "  icmp: {rate: 1, burst: 3}\n",
                                p0_device=f"net_pcap0,rx_iface_in={lab.port(0)}{tx}", workers=WORKERS,
                                ip_mode="deferred" if WORKERS == 2 else None)
        with Ngstack(cfg) as ng, Sender(lab.host(1), "eth0", ROUTER_MAC) as sender:
            ng.wait_running()
            r = sh(f"ip netns exec {lab.host(1)} ping -n -c 2 -i 0.2 -W 2 198.19.1.2", check=False)
            check(r.returncode == 0, f"ping before the bad input:\n{r.stdout}\n{ng.output()}")
            r = sh(f"ip netns exec {lab.host(1)} ping -n -c 1 -W 2 -s 3000 198.18.1.1", check=False)
            check(r.returncode == 0 and "3008 bytes from 198.18.1.1" in r.stdout,
                  f"a 3000-byte ping to ngstack (reassembled, answered, fragmented back):\n{r.stdout}")
            # rte_ip_frag joins at most RTE_LIBRTE_IP_FRAG_MAX_FRAG (8) fragments:
            # at MTU 1500 that is 8 x 1480 bytes of ICMP, a 11 832-byte ping.
            r = sh(f"ip netns exec {lab.host(1)} ping -n -c 1 -W 2 -s 11832 198.18.1.1", check=False)
            check(r.returncode == 0 and "11840 bytes from 198.18.1.1" in r.stdout,
                  f"an 8-fragment ping to ngstack (the reassembly limit) is answered:\n{r.stdout}")
            before = worker_counters(prefix)["drop_ipv4_reassembly_failed"]
            r = sh(f"ip netns exec {lab.host(1)} ping -n -c 1 -W 2 -s 11833 198.18.1.1", check=False)
            # The 9th fragment overflows the datagram (its first 8 are dropped at
            # once) and starts a datagram of its own, dropped when that times out.
            deadline = time.time() + 5
            while time.time() < deadline and worker_counters(prefix)["drop_ipv4_reassembly_failed"] < before + 9:
                time.sleep(0.1)
            after = worker_counters(prefix)["drop_ipv4_reassembly_failed"]
            check(r.returncode != 0 and after - before == 9,
                  f"a 9-fragment ping: not answered, its 9 fragments counted ({after - before}):\n{r.stdout}")
            print("ok: 8 fragments reassembled and answered; 9 dropped as ipv4_reassembly_failed", flush=True)
            for name, expr, counter, n in CASES:
                before = worker_counters(prefix)[counter]
                sender.send(expr)
                deadline = time.time() + 3
                while time.time() < deadline and worker_counters(prefix)[counter] < before + n:
                    time.sleep(0.05)
                after = worker_counters(prefix)[counter]
                check(after >= before + n, f"{name}: {counter} went {before} -> {after}")
                print(f"ok: {name}: {counter} +{after - before}", flush=True)
            # ICMP errors are rate-limited (1/s, burst 3): 20 expiring packets at
            # once draw at most 4 errors; the rest are counted, not sent.
            before = worker_counters(prefix)
            sender.send('[E/IP(src=H1, dst=H2, ttl=1)/UDP(dport=9)/("r"*18)] * 20')
            time.sleep(0.5)
            after = worker_counters(prefix)
            sent = after["event_icmp_errors_out"] - before["event_icmp_errors_out"]
            limited = after["event_icmp_rate_limited"] - before["event_icmp_rate_limited"]
            check(sent <= 4 and sent + limited == 20, f"rate limit: {sent} errors sent, {limited} limited")
            r = sh(f"ip netns exec {lab.host(1)} ping -n -c 2 -i 0.2 -W 2 198.19.1.2", check=False)
            check(r.returncode == 0, f"ngstack still forwards after the bad input:\n{r.stdout}")
            check(ng.stop() == 0, ng.output())
            s = ng.summary()
            check(s["ok"], f"balanced and mempools full:\n{ng.out_text()}")
            check(events(s, "ipv4_reassembled") >= 1, "the big ping was reassembled")
            check(events(s, "ipv4_fragments_out") >= 2, "its reply left in fragments")
            # net_pcap and net_af_packet offer no rx checksum or hash offload.
            check([p["rx_offloads"] for p in s["ports"]] == [[], []], f"no rx offloads: {s['ports']}")
            check("port p0 (net_pcap): rx offloads requested: none; not offered by the device: ipv4_cksum, "
                  "udp_cksum, tcp_cksum" in ng.err_text(), "start-up log of p0's rx offloads")


def nic_checksum_verdict():
    prefix = f"ngt-tapck-{os.getpid()}"
    with Lab("router") as lab:
        tap, ns = f"{lab.tag}-t0", f"{lab.tag}-h9"  # names ngslab.remove_stale knows
        try:
            with Ngstack(router_lab_config(lab, prefix, p0_device=f"net_tap0,iface={tap}")) as ng:
                ng.wait_running()
                check("port p0 (net_tap): rx offloads requested: ipv4_cksum, udp_cksum, tcp_cksum" in ng.err_text(),
                      f"net_tap's checksum offloads requested:\n{ng.output()}")
                sh(f"ip netns add {ns}")
                sh(f"ip link set {tap} netns {ns}")
                sh(f"ip -n {ns} link set lo up && ip -n {ns} link set {tap} up && "
                   f"ip -n {ns} addr add 198.18.1.2/24 dev {tap} && ip -n {ns} route add default via 198.18.1.1")
                r = sh(f"ip netns exec {ns} ping -n -c 3 -i 0.2 -W 2 198.19.1.2", check=False)
                check(r.returncode == 0, f"ping through the tap port:\n{r.stdout}\n{ng.output()}")
                mac = re.search(r"port p0: .* mac ([0-9a-f:]{17})", ng.err_text()).group(1)
                before = worker_counters(prefix)["drop_ipv4_bad_checksum"]
                with Sender(ns, tap, mac) as sender:
                    sender.send('E/IP(src=H1, dst=H2, chksum=0x1234)/UDP(dport=9)/("x"*18)')
                deadline = time.time() + 3
                while time.time() < deadline and worker_counters(prefix)["drop_ipv4_bad_checksum"] == before:
                    time.sleep(0.05)
                after = worker_counters(prefix)["drop_ipv4_bad_checksum"]
                check(after == before + 1, f"bad checksum through net_tap: ipv4_bad_checksum {before} -> {after}")
                check(ng.stop() == 0, ng.output())
                s = ng.summary()
                check(s["ok"], f"balanced and mempools full:\n{ng.out_text()}")
                check(s["ports"][0]["rx_offloads"] == ["ipv4_cksum", "udp_cksum", "tcp_cksum"]
                      and s["ports"][1]["rx_offloads"] == [], f"ports[].rx_offloads: {s['ports']}")
                check(events(s, "ipv4_forwarded") >= 6, "pings routed")
                print("ok: net_tap checksum offload requested; routes; bad checksum dropped", flush=True)
        finally:
            sh(f"ip netns del {ns}", check=False)


def test_router_bad_input():
    bad_input()
    if WORKERS == 1:
        nic_checksum_verdict()


if __name__ == "__main__":
    run_test(test_router_bad_input)
