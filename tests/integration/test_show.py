"""`ngstack show|set|route|arp` against a running router between two Linux
hosts (the standard router lab: h1 198.18.1.2/24 behind p0, h2 198.19.1.2/24
behind p1), through the control socket in the instance's runtime directory.

Covers: every show table prints, --json parses, and the numbers agree with
the final summary (counters only grow); with no instance, or a --prefix no
instance has, the client says so in one line and exits 1; with two instances
it asks for --prefix, and --prefix picks one; `set netisr` changes the ip
protocol's policy and mode while traffic flows (show reflects it, pings still
pass, packets now go through the netisr queues); `route add` makes an
address h2 owns on its loopback reachable from h1, `route del` makes it
unreachable again (ICMP net unreachable, ipv4_no_route moves); `arp add` and
`arp del` install and remove a static entry; bad commands fail with a clear
message and a non-zero exit; every change is logged once. A small host-mode
instance (a null port, a udp-echo service and a udp-client) answers `show
locks|services` (text and --json) and /ngstack/locks, /ngstack/services in
telemetry; a forwarder says it has no IPv4 stack."""
import json
import os
import threading
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from ngslab import NGSTACK, Lab, Ngstack, check, drops, router_lab_config, run_test, sh, telemetry  # noqa: E402

FAR = "198.19.200.1"  # on h2's loopback; ngstack has no route to it until `route add`


def ctl(*args, prefix=None):
    cmd = [NGSTACK, *args] + (["--prefix", prefix] if prefix else [])
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def ok(*args, prefix=None):
    r = ctl(*args, prefix=prefix)
    check(r.returncode == 0, f"ngstack {' '.join(args)}: exit {r.returncode}\n{r.stdout}{r.stderr}")
    return r.stdout


def show_json(what, prefix):
    return json.loads(ok("show", what, "--json", prefix=prefix))


def fails(args, want, prefix=None, rc=1):
    r = ctl(*args, prefix=prefix)
    check(r.returncode == rc and want in r.stderr,
          f"ngstack {' '.join(args)}: wanted exit {rc} and {want!r}, got {r.returncode}:\n{r.stdout}{r.stderr}")


def ping(lab, host, dst, count=1):
    return sh(f"ip netns exec {lab.host(host)} ping -n -c {count} -i 0.2 -W 2 {dst}", check=False)


def no_route_drops(prefix):
    return drops(show_json("workers", prefix), "ipv4_no_route")


def other_instances():
    """Runtime directories with a control socket: instances of someone else."""
    base = "/var/run/dpdk"
    return [d for d in (os.listdir(base) if os.path.isdir(base) else [])
            if os.path.exists(os.path.join(base, d, "ngstack.ctl"))]


def second_instance_config(prefix):
    return f"""mode: forwarder
eal: {{main_lcore: 0, memory_mb: 256, no_huge: true, file_prefix: {prefix}}}
ports:
  - {{name: nulla, device: "net_null0,no-rx=1"}}
  - {{name: nullb, device: "net_null1,no-rx=1"}}
workers: {{lcores: [1]}}
forwarder: {{paths: [{{in: nulla, out: nullb}}]}}
"""


def host_instance_config(prefix):
    # The client's server is on the null port's subnet: its requests wait for
    # ARP, then are lost; enough to fill every key.
    return f"""mode: host
eal: {{main_lcore: 0, memory_mb: 256, no_huge: true, file_prefix: {prefix}}}
ports:
  - {{name: h0, device: "net_null0,no-rx=1"}}
workers: {{lcores: [1]}}
host:
  interfaces:
    - {{port: h0, addresses: [198.18.7.1/24]}}
services:
  - {{type: udp-echo, port: 7}}
  - {{type: udp-client, server: 198.18.7.2, port: 7, flows: 4, timeout_ms: 200}}
stack: {{groups: 256, locking: group, lock_type: spin}}
"""


LOCK_CLASS_KEYS = {"class", "acquisitions", "contended", "contended_share", "wait_cycles", "wait_max",
                   "wait_cycles_per_acquisition", "hold_cycles", "hold_max"}
SERVICE_KEYS = {"type", "port", "sockets", "rx_datagrams", "rx_bytes", "tx_datagrams", "tx_bytes", "tx_no_mbuf",
                "tx_queue_full", "tx_unroutable", "icmp_errors"}


def check_host_locks_and_services(prefix):
    with Ngstack(host_instance_config(prefix)) as ng:
        ng.wait_running()
        locks = show_json("locks", prefix)["locks"]
        check(locks["locking"] == "group" and locks["lock_type"] == "spin" and locks["groups"] == 256,
              f"show locks --json: {locks}")
        udp = next(t for t in locks["tables"] if t["name"] == "udp")
        check({"lookups", "acquisitions_per_packet", "live", "classes", "busiest_groups"} <= udp.keys()
              and udp["live"] >= 4, f"udp table: {udp}")
        classes = {c["class"]: c for c in udp["classes"]}
        check(set(classes) == {"pcb_listen", "pcb_giant", "pcb_group", "pcb_conn"}
              and all(c.keys() == LOCK_CLASS_KEYS for c in classes.values())
              and classes["pcb_listen"]["acquisitions"] > 0, f"lock classes: {classes}")
        for g in udp["busiest_groups"]:
            check(g.keys() == {"group", "owner", "acquisitions", "contended", "wait_cycles"} and g["acquisitions"] > 0
                  and g["owner"] == 0, f"busiest group: {g}")
        services = {s["type"]: s for s in show_json("services", prefix)["services"]}
        echo, client = services.get("udp-echo"), services.get("udp-client")
        check(echo is not None and SERVICE_KEYS | {"address"} == echo.keys() and echo["address"] == "0.0.0.0"
              and echo["port"] == 7 and echo["sockets"] == 1, f"show services --json: {services}")
        check(client is not None and client["server"] == "198.18.7.2" and client["sockets"] == 4
              and {"requests", "responses", "lost", "late", "seconds", "transactions_per_s", "latency_us"}
              <= client.keys() and set(client["latency_us"]) == {"min", "mean", "p50", "p90", "p99", "p999", "max"},
              f"udp-client: {client}")
        text = ok("show", "locks", prefix=prefix)
        check("locks: group locking, spin locks, 256 connection groups" in text and "pcb_group" in text,
              f"show locks:\n{text}")
        text = ok("show", "services", prefix=prefix)
        check("udp-echo" in text and "0.0.0.0:7" in text and "to 198.18.7.2:7" in text and "requests" in text,
              f"show services:\n{text}")
        tl = telemetry(prefix, "/ngstack/locks")
        check(tl["locking"] == "group" and "udp_pcb_group_acquisitions" in tl and "udp_busiest_groups" in tl,
              f"/ngstack/locks: {tl}")
        ts = telemetry(prefix, "/ngstack/services")
        check(len(ts) == 2 and ts[0].startswith("udp-echo 0.0.0.0:7 1 "), f"/ngstack/services: {ts}")
        tc = telemetry(prefix, "/ngstack/service,1")
        check(tc["type"] == "udp-client" and "requests" in tc and "latency_us_p99" in tc, f"/ngstack/service,1: {tc}")
        check(ng.stop() == 0, f"host instance exit:\n{ng.output()}")
        s = ng.summary()
        check(s["mode"] == "host" and {x["type"] for x in s["services"]} == {"udp-echo", "udp-client"}
              and s["locks"]["tables"][0]["name"] == "udp", f"host summary: {s.get('services')} {s.get('locks')}")
        out = ng.out_text()
        check("services: 2" in out and "locks: group locking" in out, f"host text summary:\n{out}")


def test_show():
    prefix = f"ngt-show-{os.getpid()}"
    other = f"ngt-show2-{os.getpid()}"

    fails(["show", "ports"], "no running ngstack with file prefix", prefix=prefix)
    r = ctl("show", "ports")
    if not other_instances():
        check(r.returncode == 1 and r.stderr.strip().count("\n") == 0 and "no running ngstack instance" in r.stderr,
              f"show with no instance: one line, exit 1: {r.returncode} {r.stderr!r}")
    # Usage errors are found before any instance is looked for.
    fails(["show", "routes"], 'unknown table "routes"', rc=2)
    fails(["route", "add", "198.19.200.0/33", "via", "198.19.1.2"], "expected an IPv4 prefix", rc=2)
    fails(["set", "netisr", "ip", "mode", "sideways"], 'unknown mode "sideways"', rc=2)
    fails(["arp", "add", "198.19.1.77", "02:00:00:00:00", "p1"], "expected a MAC address", rc=2)

    check_host_locks_and_services(prefix)

    with Lab("router") as lab:
        h1, h2 = lab.host(1), lab.host(2)
        sh(f"ip netns exec {h2} ip addr add {FAR}/32 dev lo")
        with Ngstack(router_lab_config(lab, prefix)) as ng:
            ng.wait_running()
            r = ping(lab, 1, "198.19.1.2", 3)
            check(r.returncode == 0, f"ping h1 -> h2 through ngstack:\n{r.stdout}\n{ng.output()}")

            # Every table prints, as text and as JSON.
            text = ok("show", "ports", prefix=prefix)
            check("rx packets" in text and "p0" in text and "p1" in text and "rx queue" in text, f"show ports:\n{text}")
            text = ok("show", "workers", prefix=prefix)
            check(text.startswith("worker lcore 1: rx "), f"show workers:\n{text}")
            text = ok("show", "netisr", prefix=prefix)
            check("netisr: 128 RSS buckets" in text and "bucket map" in text, f"show netisr:\n{text}")
            text = ok("show", "fib", prefix=prefix)
            check("fib: 2 routes over 2 next hops" in text and "198.18.1.0/24" in text and "connected" in text,
                  f"show fib:\n{text}")
            text = ok("show", "arp", prefix=prefix)
            check("198.19.1.2" in text and "reachable" in text, f"show arp:\n{text}")
            text = ok("show", "stats", prefix=prefix)
            check("=== ngstack stats: router mode" in text and "total: rx" in text and "fib: 2 routes" in text,
                  f"show stats:\n{text}")
            fails(["show", "fdb"], "ngstack runs in router mode", prefix=prefix)
            text = ok("show", "services", prefix=prefix)
            check("services: none" in text, f"show services without services:\n{text}")
            check(show_json("services", prefix) == {"services": []}, "show services --json without services")
            check(show_json("locks", prefix)["locks"]["tables"][0]["name"] == "udp", "show locks --json in router mode")

            ports = show_json("ports", prefix)
            check({p["name"] for p in ports["ports"]} == {"p0", "p1"} and "queues" in ports, f"ports json {ports}")
            check(len(show_json("workers", prefix)["workers"]) == 1, "workers json")
            netisr = show_json("netisr", prefix)["netisr"]
            check(netisr["buckets"] == 128 and len(netisr["bucket_map"]) == 128, f"netisr json {netisr}")
            fib = show_json("fib", prefix)["router"]
            check(fib["fib_routes"] == 2 and {r["prefix"] for r in fib["routes"]} == {"198.18.1.0/24", "198.19.1.0/24"},
                  f"fib json {fib}")
            stats = show_json("stats", prefix)
            check(stats["mode"] == "router" and stats["totals"]["rx_packets"] > 0, f"stats json {stats['totals']}")
            rx_before = {p["name"]: p["rx_packets"] for p in ports["ports"]}

            # A second instance: without --prefix the client lists both; --prefix picks one.
            with Ngstack(second_instance_config(other)) as ng2:
                ng2.wait_running()
                r = ctl("show", "ports")
                check(r.returncode == 1 and "choose one with --prefix" in r.stderr and prefix in r.stderr
                      and other in r.stderr, f"two instances, no --prefix:\n{r.stderr}")
                text = ok("show", "ports", prefix=other)
                check("nulla" in text and "p0" not in text, f"--prefix {other}:\n{text}")
                text = ok("show", "ports", prefix=prefix)
                check("p0" in text and "nulla" not in text, f"--prefix {prefix}:\n{text}")
                fails(["route", "add", "198.19.200.0/24", "blackhole"], "ngstack runs in forwarder mode", prefix=other)
                fails(["show", "locks"], "forwarder mode, which has no IPv4 stack", prefix=other)
                fails(["show", "services", "--json"], "forwarder mode, which has no IPv4 stack", prefix=other)
                check(ng2.stop() == 0, f"second instance exit:\n{ng2.output()}")

            # netisr: ip from direct (flow) to deferred (source) while pings flow.
            out = ok("set", "netisr", "ip", "policy", "source", "mode", "deferred", prefix=prefix)
            check("netisr ip: policy source, mode deferred" in out, f"set netisr reply: {out}")
            text = ok("show", "netisr", prefix=prefix)
            check(any(l.split()[:3] == ["ip", "source", "deferred"] for l in text.splitlines()), f"show netisr:\n{text}")
            r = ping(lab, 1, "198.19.1.2", 3)
            check(r.returncode == 0 and " 0% packet loss" in r.stdout, f"ping after set netisr:\n{r.stdout}")
            queued = sum(w["queued"] for w in show_json("netisr", prefix)["netisr"]["workstreams"] if w["protocol"] == "ip")
            check(queued >= 6, f"ip deferred: pings went through the queue ({queued} queued)")
            fails(["set", "netisr", "nosuch", "mode", "direct"], 'no protocol "nosuch"', prefix=prefix)
            fails(["set", "netisr", "ip", "qlimit", "100000"], "qlimit must be in", prefix=prefix)
            fails(["set", "netisr", "buckets", "0,0"], "bucket map has 2 entries, expected 128", prefix=prefix)
            fails(["set", "netisr", "buckets", ",".join(["1"] * 128)], "names worker 1 of 1", prefix=prefix)
            ok("set", "netisr", "buckets", ",".join(["0"] * 128), prefix=prefix)

            # Routes: FAR is unreachable, then reachable via h2, then not again.
            before = no_route_drops(prefix)
            r = ping(lab, 1, FAR)
            check(r.returncode != 0 and "Destination Net Unreachable" in r.stdout, f"ping {FAR} before route add:\n{r.stdout}")
            check(no_route_drops(prefix) > before, "ipv4_no_route counted before route add")
            out = ok("route", "add", "198.19.200.0/24", "via", "198.19.1.2", prefix=prefix)
            check("route 198.19.200.0/24 added" in out, f"route add reply: {out}")
            text = ok("show", "fib", prefix=prefix)
            check(any("198.19.200.0/24" in l and "via 198.19.1.2" in l and "p1" in l and "static" in l
                      for l in text.splitlines()), f"show fib after route add:\n{text}")
            r = ping(lab, 1, FAR, 3)
            check(r.returncode == 0 and " 0% packet loss" in r.stdout, f"ping {FAR} after route add:\n{r.stdout}")
            fails(["route", "add", "198.19.200.0/24", "reject"], "exists already", prefix=prefix)
            fails(["route", "add", "198.20.0.0/16", "via", "203.0.113.1"], "is on no connected subnet", prefix=prefix)
            fails(["route", "add", "198.19.200.1/24", "blackhole"], "has host bits set", prefix=prefix)
            fails(["route", "del", "198.18.1.0/24"], "connected route", prefix=prefix)
            fails(["route", "del", "198.20.0.0/16"], "no route for 198.20.0.0/16", prefix=prefix)
            ok("route", "del", "198.19.200.0/24", prefix=prefix)
            before = no_route_drops(prefix)
            r = ping(lab, 1, FAR)
            check(r.returncode != 0, f"ping {FAR} after route del:\n{r.stdout}")
            check(no_route_drops(prefix) > before, "ipv4_no_route moved after route del")
            text = ok("show", "fib", prefix=prefix)
            check("198.19.200.0/24" not in text and "fib: 2 routes" in text, f"show fib after route del:\n{text}")

            # Static ARP entries.
            ok("arp", "add", "198.19.1.77", "02:00:00:00:00:77", "p1", prefix=prefix)
            arp = {(n["port"], n["address"]): n for n in show_json("arp", prefix)["router"]["arp"]}
            e = arp.get(("p1", "198.19.1.77"))
            check(e is not None and e["state"] == "permanent" and e["mac"] == "02:00:00:00:00:77", f"arp add: {arp}")
            text = ok("show", "arp", prefix=prefix)
            check(any("198.19.1.77" in l and "permanent" in l for l in text.splitlines()), f"show arp:\n{text}")
            fails(["arp", "add", "198.18.1.77", "02:00:00:00:00:78", "p9"], 'no router interface named "p9"', prefix=prefix)
            fails(["arp", "add", "198.18.9.77", "02:00:00:00:00:78", "p0"], "is on no subnet of p0", prefix=prefix)
            fails(["arp", "add", "198.18.1.1", "02:00:00:00:00:78", "p0"], "address of ngstack itself", prefix=prefix)
            ok("arp", "del", "198.19.1.77", prefix=prefix)
            arp = {(n["port"], n["address"]) for n in show_json("arp", prefix)["router"]["arp"]}
            check(("p1", "198.19.1.77") not in arp, f"arp del: {arp}")
            fails(["arp", "del", "198.19.1.77", "p1"], "no ARP entry for 198.19.1.77 on p1", prefix=prefix)
            # A learned entry made static with the host's own MAC: traffic keeps flowing; deleted, it is learned again.
            h2_mac = sh(f"ip netns exec {h2} cat /sys/class/net/eth0/address").stdout.strip()
            ok("arp", "add", "198.19.1.2", h2_mac, "p1", prefix=prefix)
            arp = {(n["port"], n["address"]): n["state"] for n in show_json("arp", prefix)["router"]["arp"]}
            check(arp.get(("p1", "198.19.1.2")) == "permanent", f"learned entry made permanent: {arp}")
            r = ping(lab, 1, "198.19.1.2", 2)
            check(r.returncode == 0, f"ping h2 over the static entry:\n{r.stdout}")
            ok("arp", "del", "198.19.1.2", "p1", prefix=prefix)
            r = ping(lab, 1, "198.19.1.2", 2)
            arp = {(n["port"], n["address"]): n["state"] for n in show_json("arp", prefix)["router"]["arp"]}
            check(r.returncode == 0 and arp.get(("p1", "198.19.1.2")) == "reachable", f"relearned: {arp}\n{r.stdout}")

            final_show = show_json("ports", prefix)
            for p in final_show["ports"]:
                check(p["rx_packets"] >= rx_before[p["name"]], f"rx counters only grow: {rx_before} -> {final_show}")
            # A client that trickles its request a byte at a time holds the
            # control thread for at most its 2-s request deadline: the
            # process still stops at once.
            slow = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            slow.connect(f"/var/run/dpdk/{prefix}/ngstack.ctl")
            stop_trickle = threading.Event()

            def trickle():
                for ch in "show ports " * 4:  # 22 s at this pace
                    if stop_trickle.wait(0.5):
                        return
                    try:
                        slow.send(ch.encode())
                    except OSError:
                        return
            trickler = threading.Thread(target=trickle)
            trickler.start()
            time.sleep(0.3)
            t0 = time.time()
            rc = ng.stop()
            stop_s = time.time() - t0
            stop_trickle.set()
            trickler.join()
            slow.close()
            check(rc == 0, f"ngstack exit {rc}:\n{ng.output()}")
            # Not a speed check: without the deadline the stop waits for the whole 22-s trickle.
            check(stop_s < 10, f"stopping took {stop_s:.1f} s while a client trickled a request")
            print(f"ok: stopped in {stop_s:.2f} s while a client trickled a request", flush=True)
            s = ng.summary()
            check(s["ok"], f"balanced and mempools full:\n{ng.out_text()}")
            for p in s["ports"]:
                shown = next(x for x in final_show["ports"] if x["name"] == p["name"])
                check(p["rx_packets"] >= shown["rx_packets"] and p["tx_packets"] >= shown["tx_packets"],
                      f"summary {p} >= last show {shown}")
            check({n["name"]: n["mode"] for n in s["netisr"]["protocols"]}["ip"] == "deferred", "summary: ip deferred")
            err = ng.err_text()
            for line in ["control: netisr ip: policy source, mode deferred", "route 198.19.200.0/24 via 198.19.1.2 (p1) added",
                         "route 198.19.200.0/24 deleted", "static ARP entry 198.19.1.77 02:00:00:00:00:77 on p1 added",
                         "ARP entry 198.19.1.77 on p1 deleted", "control: netisr bucket map",
                         f"static ARP entry 198.19.1.2 {h2_mac} on p1 added"]:
                check(err.count(line) == 1, f"logged once: {line!r}\n{err}")
            check(not os.path.exists(f"/var/run/dpdk/{prefix}"), "the runtime directory (and socket) is gone")
        fails(["show", "ports"], "no running ngstack with file prefix", prefix=prefix)


if __name__ == "__main__":
    run_test(test_show)
