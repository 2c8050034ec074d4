"""Bridge mode against real Linux hosts: ngs-h1..h3 (198.18.0.1..3/24) on the
standard bridge lab, bridged by ngstack.

Without VLANs: every pair pings; the FDB learns the three hosts and ages them
out; a frame to an unknown MAC is flooded to the other ports (seen by
tcpdump on both). With VLANs (h1 and h3 on access ports of VLAN 10, h2 on
one of VLAN 20): h1 and h3 reach each other, h2 reaches neither, and
learning is per VLAN. (Trunk tagging is covered by the unit tests: this
kernel may lack 802.1Q subinterfaces for the hosts.)

Two variants (ngslab.workers_arg): one worker; and `--workers 2` (meson's
test_bridge_linux_2w): two workers, lcore 1 polling p0 and p2 (h1, h3),
lcore 2 polling p1 (h2), ether deferred under the flow policy. The flows
h1 <-> h2 and h2 <-> h3 (RSS buckets 123 and 45 of 128 under the symmetric
key) belong to lcore 2 and h1 <-> h3 (bucket 86) to lcore 1, so frames from
h1 and h3 to h2 cross from lcore 1 to lcore 2, both workers learn into the
one FDB, and each worker's timers age out what that worker learned. The checks
are the same; the flat run adds one that the hand-off happened."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from ngslab import (Lab, Ngstack, af_packet, check, drops, events, run_test, sh, telemetry,  # noqa: E402
                    worker_counters, workers_arg, workers_yaml)

WORKERS = workers_arg()


def config(lab, prefix, vlans=None):
    ports = "\n".join(f"    - {{port: p{i}{', ' + vlans[i] if vlans else ''}}}" for i in range(3))
    devices = "\n".join(f"  - {{name: p{i}, {af_packet(i, lab.port(i), WORKERS)}}}" for i in range(3))
    queues = range(WORKERS)
    lcore_cpus, workers_text = workers_yaml(
        WORKERS, {1: [f"p{p}/{q}" for p in (0, 2) for q in queues], 2: [f"p1/{q}" for q in queues]})
    dispatch = "dispatch: {protocols: {ether: {mode: deferred, policy: flow}}}\n" if WORKERS == 2 else ""
    return f"""mode: bridge
eal:
  main_lcore: 0
  memory_mb: 256
  no_huge: true
  file_prefix: {prefix}
{lcore_cpus}ports:
{devices}
{workers_text}bridge:
  aging_ms: 2000
  ports:
{ports}
{dispatch}"""


def ether_counters(prefix):
    """{lcore: (rx packets, ether frames handled)} of every worker."""
    return {lcore: (worker_counters(prefix, lcore)["rx_packets"],
                    telemetry(prefix, f"/ngstack/workstream,{lcore}")["ether_handled"])
            for lcore in telemetry(prefix, "/ngstack/workers")}


def check_handoff(lab, prefix):
    """Two workers: 3 pings h1 -> h2 (neighbours known by now) are 3 echo
    requests received by lcore 1 (p0) and 3 replies by lcore 2 (p1), all 6
    bridged by lcore 2, the flow's owner."""
    before = ether_counters(prefix)
    r = sh(f"ip netns exec {lab.host(1)} ping -n -c 3 -i 0.2 -W 1 198.18.0.2", check=False)
    check(r.returncode == 0, f"ping h1 -> h2:\n{r.stdout}")
    after = ether_counters(prefix)
    delta = {lc: (after[lc][0] - before[lc][0], after[lc][1] - before[lc][1]) for lc in after}
    print(f"3 pings h1 -> h2, (rx, ether handled) per worker: {delta}", flush=True)
    check(delta[1][0] >= 3 and delta[2][1] >= delta[2][0] + 3,
          f"h1's echo requests received by lcore 1 were bridged by lcore 2: {delta}")


def fdb(prefix):
    """{(vlan, mac): port} from /ngstack/fdb."""
    return {(int(r.split()[0]), r.split()[1]): r.split()[2] for r in telemetry(prefix, "/ngstack/fdb")}


def mac_of(lab, host):
    return sh(f"ip netns exec {lab.host(host)} cat /sys/class/net/eth0/address").stdout.strip()


def ping(lab, src, dst_index):
    return sh(f"ip netns exec {lab.host(src)} ping -n -c 2 -i 0.2 -W 1 198.18.0.{dst_index}", check=False)


def test_bridge_flat(lab):
    prefix = f"ngt-bridge-{os.getpid()}"
    with Ngstack(config(lab, prefix)) as ng:
        ng.wait_running()
        for a in (1, 2, 3):
            for b in (1, 2, 3):
                if a != b:
                    r = ping(lab, a, b)
                    check(r.returncode == 0, f"ping h{a} -> h{b} over the bridge:\n{r.stdout}\n{ng.output()}")
        table = fdb(prefix)
        for i in (1, 2, 3):
            check(table.get((0, mac_of(lab, i))) == f"p{i - 1}", f"h{i}'s MAC learned on p{i - 1}: {table}")
        check(len(table) == 3, f"three stations: {table}")
        if WORKERS == 2:
            check_handoff(lab, prefix)

        # Unknown unicast: h1 sends to a MAC nobody has; h2 and h3 both see it.
        caps = [subprocess.Popen(["ip", "netns", "exec", lab.host(i), "timeout", "4", "tcpdump", "-ni", "eth0", "-c", "1",
                                  "ether", "dst", "02:00:5e:00:53:99"], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True) for i in (2, 3)]
        time.sleep(1)
        sh(f"ip netns exec {lab.host(1)} ip neigh replace 198.18.0.99 lladdr 02:00:5e:00:53:99 dev eth0")
        sh(f"ip netns exec {lab.host(1)} ping -c 1 -W 1 198.18.0.99", check=False)
        for c, i in zip(caps, (2, 3)):
            out = c.communicate(timeout=10)[0]
            check("02:00:5e:00:53:99" in out or "198.18.0.99" in out, f"h{i} saw the flooded unknown unicast: {out!r}")

        # Quiet: the three stations age out.
        deadline = time.time() + 10
        while time.time() < deadline and fdb(prefix):
            time.sleep(0.5)
        check(fdb(prefix) == {}, f"FDB aged out: {fdb(prefix)}")
        check(ng.stop() == 0, ng.output())
        s = ng.summary()
        check(s["ok"], f"balanced and mempools full:\n{ng.out_text()}")
        check(events(s, "bridge_learned") >= 3 and events(s, "bridge_flooded") >= 1, "learned and flooded")


def test_bridge_vlans(lab):
    prefix = f"ngt-bvlan-{os.getpid()}"
    with Ngstack(config(lab, prefix, vlans=["vlan: 10", "vlan: 20", "vlan: 10"])) as ng:
        ng.wait_running()
        for a, b in ((1, 3), (3, 1)):
            r = ping(lab, a, b)
            check(r.returncode == 0, f"h{a} -> h{b} in VLAN 10:\n{r.stdout}\n{ng.output()}")
        table = fdb(prefix)
        check(table.get((10, mac_of(lab, 1))) == "p0" and table.get((10, mac_of(lab, 3))) == "p2",
              f"h1 and h3 learned in VLAN 10: {table}")
        for a, b in ((2, 1), (2, 3)):
            r = ping(lab, a, b)
            check(r.returncode != 0, f"h{a} -> h{b} across VLANs must fail:\n{r.stdout}")
        table = fdb(prefix)
        check(table.get((20, mac_of(lab, 2))) == "p1" and (10, mac_of(lab, 2)) not in table,
              f"h2 learned in VLAN 20 only: {table}")
        check(ng.stop() == 0, ng.output())
        s = ng.summary()
        check(s["ok"], f"balanced and mempools full:\n{ng.out_text()}")
        check(drops(s, "bridge_no_port") >= 1, "h2's broadcasts have no other port in VLAN 20")


def test_bridge_linux():
    with Lab("bridge") as lab:
        test_bridge_flat(lab)
        test_bridge_vlans(lab)


if __name__ == "__main__":
    run_test(test_bridge_linux)
