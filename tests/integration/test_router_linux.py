"""Router mode against real Linux hosts: ngs-h1 (198.18.1.2/24) and ngs-h2
(198.19.1.2/24) on the standard router lab, routed through ngstack.

Covers: ping to ngstack and through it both ways (the first packet waits for
ARP instead of being dropped); time exceeded for TTL 1; frag-needed with the
next-hop MTU for a DF packet too big for the egress; egress fragmentation of
a packet without DF; a 20 MB TCP transfer that arrives intact; ARP entries
that appear and age out; and every packet accounted for at exit.

h1's link has MTU 9000 (so that it can send a 1628-byte packet at all; the
kernel side of the veth is raised after ngstack set its port MTU, since
net_af_packet offers no jumbo MTU); the egress towards h2 keeps 1500.

Then a shorter second run with `ip` in the other dispatch mode: with ip
direct (the default) the router runs ip input inside the ether pass;
deferred takes the other path, through the netisr queues, and must route the
same.

Two variants (ngslab.workers_arg): one worker, ip direct first, then
deferred; and `--workers 2` (meson's test_router_linux_2w): two workers, two
queue pairs per port, ip deferred under the flow policy first (a packet
received by one worker is routed by its flow's owner, held packets are
released by whichever worker receives the ARP reply), then ip direct. Every
check is the same in both; only the netisr counters that say which path ip
took follow the mode."""
import hashlib
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from ngslab import (Lab, Ngstack, check, drops, events, router_lab_config, run_test, sh, telemetry,  # noqa: E402
                    worker_counters, workers_arg)

WORKERS = workers_arg()
# The main run's ip mode, and the short second run's.
IP_MODES = ("direct", "deferred") if WORKERS == 1 else ("deferred", "direct")


def config(lab, prefix, ip_mode):
    return router_lab_config(lab, prefix, "  arp: {reachable_ms: 2000, stale_ms: 2000, retries: 3, retry_ms: 300}\n",
                             workers=WORKERS, ip_mode=ip_mode)


def ip_workstreams(summary):
    return [w for w in summary["netisr"]["workstreams"] if w["protocol"] == "ip"]


def check_ip_path(summary, ip_mode, at_least):
    """ip direct: handled in the ether pass, counted as dispatched, never
    queued; deferred: every IPv4 packet went through a netisr queue."""
    ws = ip_workstreams(summary)
    print("rx per worker:", {w["lcore"]: w["rx_packets"] for w in summary["workers"]},
          "ip workstreams:", [{k: w[k] for k in ("lcore", "dispatched", "queued", "handled", "qdrops")} for w in ws],
          flush=True)
    dispatched, queued = sum(w["dispatched"] for w in ws), sum(w["queued"] for w in ws)
    if ip_mode == "direct":
        check(dispatched >= at_least and queued == 0, f"ip direct: handled in the ether pass: {ws}")
    else:
        check(queued >= at_least and dispatched == 0, f"ip deferred: packets went through the queue: {ws}")


def check_pinned_workers(prefix, ip_mode):
    """Two workers (ngslab.router_lab_config): lcore 2 polls p0 (h1), lcore 1
    polls p1 (h2), and every ICMP flow of the pings so far is lcore 2's.
    ip deferred: lcore 1 received h2's packets and routed none of them,
    lcore 2 routed them all (the hand-off through the netisr queue). ip
    direct: each worker routes what it received, so both do."""
    w1, w2 = worker_counters(prefix, 1), worker_counters(prefix, 2)
    f1, f2 = w1["event_ipv4_forwarded"], w2["event_ipv4_forwarded"]
    print(f"after the pings: lcore 1 rx {w1['rx_packets']} forwarded {f1}; lcore 2 rx {w2['rx_packets']} "
          f"forwarded {f2}", flush=True)
    if ip_mode == "deferred":
        check(w1["rx_packets"] >= 6 and f1 == 0 and f2 >= 12,
              f"ip deferred: h2's packets received by lcore 1 and routed by lcore 2 (their flows' owner): {w1} {w2}")
    else:
        check(f1 >= 6 and f2 >= 6, f"ip direct: each worker routes what it received: {w1} {w2}")


def ping(lab, host, dst, args=""):
    return sh(f"ip netns exec {lab.host(host)} ping -n -c 1 -W 2 {args} {dst}", check=False)


def neighbours(prefix):
    """{(port, address): state} from /ngstack/arp."""
    return {(r.split()[0], r.split()[1]): r.split()[3] for r in telemetry(prefix, "/ngstack/arp")}


def test_router_linux():
    prefix = f"ngt-router-{os.getpid()}"
    first, second = IP_MODES
    print(f"--- {WORKERS} worker(s), ip {first}", flush=True)
    with Lab("router") as lab:
        h1, h2 = lab.host(1), lab.host(2)
        sh(f"ip netns exec {h1} ip link set eth0 mtu 9000")
        with Ngstack(config(lab, prefix, first)) as ng:
            ng.wait_running()
            sh(f"ip link set {lab.port(0)} mtu 9000")
            time.sleep(0.5)
            # The very first packet towards h2 waits for ARP: one ping, one answer.
            r = ping(lab, 1, "198.19.1.2")
            check(r.returncode == 0, f"first ping h1 -> h2 through ngstack:\n{r.stdout}{r.stderr}\n{ng.output()}")
            for host, dst in [(1, "198.18.1.1"), (2, "198.19.1.1"), (2, "198.18.1.2"), (1, "198.19.1.2")]:
                r = sh(f"ip netns exec {lab.host(host)} ping -n -c 3 -i 0.2 -W 2 {dst}", check=False)
                check(r.returncode == 0 and " 0% packet loss" in r.stdout, f"ping h{host} -> {dst}:\n{r.stdout}")
            if WORKERS == 2:
                check_pinned_workers(prefix, first)
            arp = neighbours(prefix)
            check(arp.get(("p0", "198.18.1.2")) == "reachable" and arp.get(("p1", "198.19.1.2")) == "reachable",
                  f"ARP entries for both hosts: {arp}")

            # Nobody answers for .99: three requests 300 ms apart, then the
            # held ping is dropped with ICMP host unreachable.
            r = sh(f"ip netns exec {h1} ping -n -c 1 -W 4 198.19.1.99", check=False)
            check("From 198.18.1.1" in r.stdout and "Destination Host Unreachable" in r.stdout,
                  f"ping to a neighbour that never answers ARP:\n{r.stdout}")
            r = ping(lab, 1, "198.19.1.2", "-t 1")
            check("From 198.18.1.1" in r.stdout and "Time to live exceeded" in r.stdout, f"ping -t 1:\n{r.stdout}")
            r = ping(lab, 1, "198.19.1.2", "-M do -s 1600")
            check("Frag needed" in r.stdout and "mtu = 1500" in r.stdout, f"ping -M do -s 1600:\n{r.stdout}{r.stderr}")
            r = ping(lab, 1, "198.19.1.2", "-M dont -s 1600")
            check(r.returncode == 0 and "1608 bytes from 198.19.1.2" in r.stdout,
                  f"ping -s 1600 (fragmented by ngstack):\n{r.stdout}{r.stderr}")

            data = os.urandom(20 * 1024 * 1024)
            src = os.path.join(ng.dir, "tcp.bin")
            dst = os.path.join(ng.dir, "tcp.out")
            with open(src, "wb") as f:
                f.write(data)
            with open(dst, "wb") as out:
                server = subprocess.Popen(["ip", "netns", "exec", h2, "timeout", "60", "nc", "-l", "5001"], stdout=out)
            time.sleep(0.5)
            r = sh(f"ip netns exec {h1} timeout 60 nc -N 198.19.1.2 5001 < {src}", check=False)
            server.wait(timeout=60)
            with open(dst, "rb") as f:
                got = f.read()
            check(hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest(),
                  f"20 MB over TCP through ngstack: got {len(got)} bytes, sha256 differs (nc rc {r.returncode}: {r.stderr})")

            # Quiet now: both entries go stale, then away.
            deadline = time.time() + 15
            while time.time() < deadline and neighbours(prefix):
                time.sleep(0.5)
            check(neighbours(prefix) == {}, f"ARP entries aged out: {neighbours(prefix)}")
            rc = ng.stop()
            check(rc == 0, f"ngstack exit {rc}:\n{ng.output()}")
            s = ng.summary()
            check(s["ok"], f"balanced and mempools full:\n{ng.out_text()}")
            check(events(s, "arp_held") >= 1 and events(s, "arp_released") >= 1, "the first packet was held, then sent")
            check(events(s, "icmp_echo_replies") >= 6, "echo replies from ngstack")
            check(drops(s, "ipv4_ttl_exceeded") >= 1 and drops(s, "ipv4_frag_needed") >= 1, "ttl and frag-needed drops")
            check(events(s, "ipv4_fragments_out") >= 2, "egress fragmentation")
            check(events(s, "arp_gratuitous_out") == 2, "one gratuitous ARP per interface address")
            check(drops(s, "arp_unresolved") >= 1 and events(s, "arp_requests_out") >= 4,
                  "the unanswered neighbour was retried, then its packet dropped")
            check(len(s["workers"]) == WORKERS, f"{WORKERS} worker(s): {[w['lcore'] for w in s['workers']]}")
            check_ip_path(s, first, 1000)
            if WORKERS == 2:
                # The first ping and the one to .99 waited on lcore 2 (their
                # flows' owner); h2's ARP reply arrived on lcore 1, which sent
                # the held ping; lcore 2, which created the entry for .99 and
                # so times it, gave up on it.
                per_worker = {k: {w["lcore"]: w["events"].get(k, w["drops"].get(k)) for w in s["workers"]}
                              for k in ("arp_held", "arp_released", "arp_unresolved")}
                print("per worker:", per_worker, flush=True)
                check(events(s, "arp_held", 2) >= 2 and events(s, "arp_released", 1) >= 1
                      and drops(s, "arp_unresolved", 2) >= 1,
                      f"held on lcore 2, released on lcore 1, given up on lcore 2: {per_worker}")

    # The same router with ip in the other mode.
    print(f"--- {WORKERS} worker(s), ip {second}", flush=True)
    with Lab("router") as lab:
        with Ngstack(config(lab, prefix, second)) as ng:
            ng.wait_running()
            for host, dst in [(1, "198.19.1.2"), (2, "198.18.1.2"), (1, "198.18.1.1")]:
                r = sh(f"ip netns exec {lab.host(host)} ping -n -c 3 -i 0.2 -W 2 {dst}", check=False)
                check(r.returncode == 0 and " 0% packet loss" in r.stdout,
                      f"ip {second}: ping h{host} -> {dst}:\n{r.stdout}")
            if WORKERS == 2:
                check_pinned_workers(prefix, second)
            r = ping(lab, 1, "198.19.1.2", "-t 1")
            check("Time to live exceeded" in r.stdout, f"ip {second}: ping -t 1:\n{r.stdout}")
            rc = ng.stop()
            check(rc == 0, f"ngstack exit {rc}:\n{ng.output()}")
            s = ng.summary()
            check(s["ok"], f"ip {second}: balanced and mempools full:\n{ng.out_text()}")
            check_ip_path(s, second, 9)
            check(events(s, "ipv4_forwarded") >= 12 and events(s, "icmp_echo_replies") >= 3, f"ip {second}: routed")


if __name__ == "__main__":
    run_test(test_router_linux)
