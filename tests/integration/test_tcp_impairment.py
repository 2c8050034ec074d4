"""ngstack's TCP through an impaired path: the host-routed lab (deploy/lab up
host-routed), ngstack 198.18.1.1 behind the Linux router namespace ngs-r,
ngs-h1 198.18.2.2 and ngs-h2 198.18.3.2 behind the same router; tc netem on
each of the router's egress interfaces (toward ngstack, h1 and h2, so both
directions of every path) drops 2%, duplicates 1%, and delays by 10 ms all
but 5% of the packets, which go at once: reordered (NETEM).

One test, two legs through the same netem, one after the other:
  * ngstack: h1 sends TRANSFER_BYTES of random data through ngstack's
    tcp-echo with `nc -N` (both directions at once), every byte back (sha256);
  * Linux to Linux: the same transfer from h1 through a Linux echo in h2
    (tcp_peers.py serve), for comparison.
Both times are printed. Then the counters must show what the impairment did:
netem dropped on every egress, the server's retransmits moved
(tcp.stats.retransmits > 0) and so did its SACK loss recoveries
(sack_recoveries > 0: Linux's h1 offers SACK), out-of-order segments
were queued (ooo_queued > 0), h1 retransmitted in each leg; and for ngstack at
exit: the echo's byte counters exact, every packet accounted for, every mbuf
back in its pool.

The impairment (`--impair auto|netem|tun`, default auto: netem where the
kernel has it): `tc netem` on ngs-r's eth0, eth1 and eth2; or, on a kernel
built without sch_netem (CONFIG_NET_SCH_NETEM, as this project's VMs are),
the same loss, duplication, delay and reordering in user space: ngs-r routes
every packet it forwards into a tun device, where tcp_peers.py impair holds,
drops, duplicates and reorders it as netem would and writes it back to be
forwarded on (each packet impaired once per crossing, as with netem on every
egress); its counters must show losses, duplicates and reorderings.

ngstack's config: the host section's route 198.18.2.0/24 via 198.18.1.2
(the router). `--workers 2`: two workers (p0 with two queue pairs), tcp
dispatched deferred.

`--server linux`: Linux in ngstack's place (the lab's p0 in a namespace of its
own at 198.18.1.1 with the same route, tcp_peers.py serve as its echo), so
that the netem setup, the checks and the timing are validated before
ngstack's TCP exists; tcp.stats is then that namespace's Linux counters."""
import contextlib
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from ngslab import Lab, Ngstack, check, run_test, service, sh  # noqa: E402
from tcp_peers import (NGSTACK_ADDR, LinuxServer, file_sha256, linux_tcp_stats, nc_echo,  # noqa: E402
                       netem_available, random_file, standin_namespace, tc_netem, tc_stats, tcp_host_config,
                       test_args, tun_impairer)

ARGS = test_args()
WORKERS, SERVER = ARGS.workers, ARGS.server
TRANSFER_BYTES = 20 * 1000 * 1000
LOSS, DUPLICATE, REORDER, DELAY_MS, LIMIT = 2, 1, 5, 10, 100000  # %, %, %, ms, packets
NETEM = f"limit {LIMIT} delay {DELAY_MS}ms reorder {REORDER}% loss {LOSS}% duplicate {DUPLICATE}%"
ROUTER_EGRESS = ("eth0", "eth1", "eth2")  # toward ngstack, h1, h2
H2_ADDR = "198.18.3.2"
ROUTES = [("198.18.2.0/24", "198.18.1.2")]
LEG_TIMEOUT = 120  # seconds a leg may take at most


@contextlib.contextmanager
def tcp_server(lab):
    if SERVER == "linux":
        with standin_namespace(lab, routes=ROUTES) as ns, LinuxServer(ns, echo=7) as srv:
            yield srv
    else:
        prefix = f"ngt-tcpimp-{os.getpid()}"
        with Ngstack(tcp_host_config(lab, prefix, workers=WORKERS, tcp_mode="deferred" if WORKERS == 2 else None,
                                     services=("{type: tcp-echo, port: 7}",), routes=ROUTES)) as ng:
            yield ng


def leg(name, h1, addr, tmp):
    """TRANSFER_BYTES from h1 through the echo at `addr` and back; returns
    (seconds, h1's TCP counters' increase during the leg)."""
    src, dst = os.path.join(tmp, "in"), os.path.join(tmp, "out")
    want = random_file(src, TRANSFER_BYTES)
    before = linux_tcp_stats(h1)
    rc, secs, err = nc_echo(h1, addr, 7, src, dst, timeout=LEG_TIMEOUT)
    after = linux_tcp_stats(h1)
    got_size, intact = os.path.getsize(dst), file_sha256(dst) == want
    check(rc == 0, f"{name}: nc -N to {addr}:7 exit {rc} after {secs:.1f} s, {got_size} bytes back: {err}")
    check(got_size == TRANSFER_BYTES and intact,
          f"{name}: {got_size} of {TRANSFER_BYTES} bytes back, sha256 {'equal' if intact else 'differs'}")
    delta = {k: after[k] - before[k] for k in after}
    print(f"ok: {name}: {TRANSFER_BYTES} bytes each way intact in {secs:.1f} s "
          f"({TRANSFER_BYTES / secs / 1e6:.2f} MB/s each way); h1: {json.dumps(delta)}", flush=True)
    check(delta["retransmits"] > 0, f"{name}: h1 retransmitted (netem drops toward the server): {delta}")
    os.unlink(src)
    os.unlink(dst)
    return secs


def check_server_stats(name, st):
    print(f"{name} tcp.stats:", json.dumps(st), flush=True)
    check(st["retransmits"] > 0, f"{name}: retransmits moved: {st}")
    check(st["sack_recoveries"] > 0, f"{name}: SACK loss recoveries: {st}")
    check(st["ooo_queued"] > 0, f"{name}: out-of-order segments queued: {st}")
    print(f"{name}: {st['sack_recoveries']} SACK recoveries for {st['retransmits']} retransmitted segments "
          f"(fast {st.get('fast_retransmits')}, RTO {st.get('rto_expired')})", flush=True)


def test_tcp_impairment():
    what = "linux stand-in" if SERVER == "linux" else f"ngstack ({WORKERS} worker(s))"
    print(f"--- {what} and Linux to Linux through netem: {NETEM}", flush=True)
    tmp = tempfile.mkdtemp(prefix="tcp-impairment-")
    try:
        with Lab("host-routed") as lab, tcp_server(lab) as srv, LinuxServer(lab.host(2), echo=7) as peer, \
                contextlib.ExitStack() as stack:
            h1, router = lab.host(1), f"{lab.tag}-r"
            srv.wait_running()
            peer.wait_running()
            # Before the impairment: the paths and ARP are settled.
            for addr in (NGSTACK_ADDR, H2_ADDR):
                r = sh(f"ip netns exec {h1} ping -n -c 3 -i 0.2 -W 2 {addr}", check=False, timeout=30)
                check(r.returncode == 0 and " 0% packet loss" in r.stdout,
                      f"ping {addr} through the router:\n{r.stdout}{r.stderr}\n{srv.output()}")
            impair = ARGS.impair
            if impair == "auto":
                impair = "netem" if netem_available(router, ROUTER_EGRESS[0]) else "tun"
            print("impairment:", "tc netem on each router egress" if impair == "netem" else
                  "netem in user space (tcp_peers.py impair on a tun device in the router)", flush=True)
            if impair == "netem":
                for dev in ROUTER_EGRESS:
                    tc_netem(router, dev, NETEM)
            else:
                impairer = stack.enter_context(tun_impairer(router, ROUTER_EGRESS, LOSS, DUPLICATE, REORDER,
                                                            DELAY_MS, LIMIT))
                impairer.wait_running()

            t_server = leg(what, h1, NGSTACK_ADDR, tmp)
            t_linux = leg("linux to linux", h1, H2_ADDR, tmp)
            if impair == "netem":
                netem = {dev: tc_stats(router, dev) for dev in ROUTER_EGRESS}
                print("netem (packets sent, dropped) per router egress:", netem, flush=True)
                check(all(sent > 0 and dropped > 0 for sent, dropped in netem.values()),
                      f"netem dropped on every egress: {netem}")
            else:
                check(impairer.stop() == 0, f"impairer exit:\n{impairer.output()}")
                imp = impairer.summary()
                print("impairer:", json.dumps(imp), flush=True)
                check(imp["lost"] > 0 and imp["duplicated"] > 0 and imp["reordered"] > 0 and imp["write_errors"] == 0
                      and imp["limit_dropped"] == 0, f"the impairer lost, duplicated and reordered: {imp}")
            print(f"times: {what} {t_server:.1f} s, linux to linux {t_linux:.1f} s "
                  f"(ratio {t_server / t_linux:.2f})", flush=True)

            check(peer.stop() == 0, f"h2's echo exit:\n{peer.output()}")
            check_server_stats("linux to linux (h2)", peer.summary()["tcp"]["stats"])
            rc = srv.stop()
            check(rc == 0, f"server exit {rc}:\n{srv.output()}")
            s = srv.summary()
            echo = service(s, "tcp-echo", 7)
            print("tcp-echo:", json.dumps(echo), flush=True)
            check(echo["rx_bytes"] == TRANSFER_BYTES and echo["tx_bytes"] == TRANSFER_BYTES,
                  f"tcp-echo: {TRANSFER_BYTES} bytes in and out: {echo}")
            check_server_stats(what, s["tcp"]["stats"])
            if SERVER == "ngstack":
                check(s["ok"] and s["totals"]["balanced"], f"rx + originated == tx + drops + consumed: {s['totals']}")
                check(all(m["full"] for m in s["mempools"]), f"every mbuf back in its pool: {s['mempools']}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run_test(test_tcp_impairment)
