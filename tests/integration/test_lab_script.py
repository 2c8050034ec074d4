"""deploy/lab builds the standard topologies (router, bridge, host) and removes them, idempotently.
Runs under a prefix of its own (NGS_LAB_PREFIX) so a user's lab is untouched."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from ngslab import check, run_test, sh  # noqa: E402

LAB = os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "lab")
P = f"ngt{os.getpid()}"
ENV = dict(os.environ, NGS_LAB_PREFIX=P)


def lab(*args, ok=True):
    r = subprocess.run([LAB, *args], env=ENV, capture_output=True, text=True, timeout=60)
    if ok:
        check(r.returncode == 0, f"deploy/lab {' '.join(args)}: {r.returncode}\n{r.stdout}{r.stderr}")
    return r


def namespaces():
    return sorted(l.split()[0] for l in sh("ip netns list").stdout.splitlines() if l.startswith(f"{P}-h"))


def in_ns(ns, cmd):
    return sh(f"ip netns exec {ns} {cmd}").stdout


def test_lab_script():
    try:
        lab("up", "router")
        check(namespaces() == [f"{P}-h1", f"{P}-h2"], f"router namespaces: {namespaces()}")
        check("198.18.1.2/24" in in_ns(f"{P}-h1", "ip -br addr show eth0"), "h1 address")
        check("default via 198.19.1.1" in in_ns(f"{P}-h2", "ip route"), "h2 default route")
        check(f"{P}-p1" in sh("ip -br link").stdout, "root-side veth p1")
        check("tx-checksumming: off" in in_ns(f"{P}-h1", "ethtool -k eth0"), "checksum offload off")

        lab("up", "bridge")  # replaces the router lab
        check(namespaces() == [f"{P}-h1", f"{P}-h2", f"{P}-h3"], f"bridge namespaces: {namespaces()}")
        check("198.18.0.3/24" in in_ns(f"{P}-h3", "ip -br addr show eth0"), "h3 address")
        check(f"{P}-p2" in lab("status").stdout, "status lists the ports")

        lab("up", "host")  # replaces the bridge lab: one host on ngstack's own subnet
        check(namespaces() == [f"{P}-h1"], f"host namespaces: {namespaces()}")
        check("198.18.1.2/24" in in_ns(f"{P}-h1", "ip -br addr show eth0"), "host-lab h1 address")
        check("default" not in in_ns(f"{P}-h1", "ip route"), "host-lab h1: no gateway (ngstack is on its subnet)")
        check("tx-checksumming: off" in in_ns(f"{P}-h1", "ethtool -k eth0"), "host-lab checksum offload off")
        links = sh("ip -br link").stdout
        check(f"{P}-p0" in links and f"{P}-p1" not in links, f"host-lab veths: only p0\n{links}")

        lab("down")
        lab("down")  # twice is fine
        check(namespaces() == [], f"left behind: {namespaces()}")
        check(f"{P}-p" not in sh("ip -br link").stdout, "veths left behind")
        check(lab("sideways", ok=False).returncode == 2, "usage error")
    finally:
        lab("down", ok=False)


if __name__ == "__main__":
    run_test(test_lab_script)
