"""dpdk-dumpcap captures from a running ngstack: the embedded default, run on
hugepages (`--hugepages`), and 100 of its routed packets captured on the sink
port into a pcapng file that tshark reads.

dumpcap is a DPDK secondary process and needs the primary's hugepage memory,
so the test reserves 2 MiB hugepages (and mounts hugetlbfs) if the machine
has too few, and puts both back as they were when it ends, also on failure.
Needs dpdk-dumpcap (package dpdk-dev) and tshark."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from ngslab import Ngstack, check, run_test  # noqa: E402

NR_HUGEPAGES = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"
HUGETLBFS = "/dev/hugepages"
# ngstack preallocates eal.memory_mb (512 MiB of the embedded default, 256
# pages); dumpcap's ring and mbuf pool need some more.
PAGES_NEEDED = 384
COUNT = 100


def meminfo(key):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def hugetlbfs_mounted():
    with open("/proc/mounts") as f:
        return any(line.split()[2] == "hugetlbfs" for line in f if len(line.split()) > 2)


class Hugepages:
    """Enough free 2 MiB hugepages and a hugetlbfs mount for the test's
    duration; what it changed is undone on exit."""

    def __enter__(self):
        with open(NR_HUGEPAGES) as f:
            self.before = int(f.read())
        self.mounted_here = False
        free = meminfo("HugePages_Free")
        if free < PAGES_NEEDED:
            with open(NR_HUGEPAGES, "w") as f:
                f.write(str(self.before + PAGES_NEEDED - free))
        try:
            got = meminfo("HugePages_Free")
            check(got >= PAGES_NEEDED, f"could reserve only {got} free 2 MiB hugepages of {PAGES_NEEDED}")
            if not hugetlbfs_mounted():
                os.makedirs(HUGETLBFS, exist_ok=True)
                subprocess.run(["mount", "-t", "hugetlbfs", "nodev", HUGETLBFS], check=True)
                self.mounted_here = True
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        if self.mounted_here:
            subprocess.run(["umount", HUGETLBFS], check=False)
        with open(NR_HUGEPAGES, "w") as f:
            f.write(str(self.before))
        return False


def test_capture():
    for tool in ("dpdk-dumpcap", "tshark"):
        check(shutil.which(tool), f"{tool} is not installed (packages dpdk-dev, tshark)")
    out_dir = tempfile.mkdtemp(prefix="ngstack-capture-")
    pcapng = os.path.join(out_dir, "out.pcapng")
    try:
        with Hugepages(), Ngstack(None, ["--hugepages", "--duration", "60", "--stats-interval", "0"]) as ng:
            ng.wait_running()
            check("capture: dpdk-dumpcap" in ng.err_text(), "no capture line at start-up:\n" + ng.output())
            # The embedded default's EAL file prefix carries ngstack's pid.
            prefix = f"ngstack-embedded-{ng.proc.pid}"
            # Interfaces are named after the DPDK device: net_pcap0 is the
            # source, net_null0 the sink, which transmits what was routed.
            listing = subprocess.run(["dpdk-dumpcap", f"--file-prefix={prefix}", "-D"], capture_output=True,
                                     text=True, timeout=60)
            check("0. net_pcap0" in listing.stdout and "1. net_null0" in listing.stdout,
                  f"dumpcap -D:\n{listing.stdout}{listing.stderr}")
            cap = subprocess.run(["dpdk-dumpcap", f"--file-prefix={prefix}", "-i", "net_null0", "-c", str(COUNT),
                                  "-w", pcapng], capture_output=True, text=True, timeout=60)
            print(cap.stdout.strip().splitlines()[-2:])
            check(cap.returncode == 0, f"dumpcap exit {cap.returncode}:\n{cap.stdout}{cap.stderr}")
            rc = ng.stop()
            check(rc == 0, f"ngstack exit {rc} after a capture\n{ng.output()}")
            s = ng.summary()
            check(s["ok"] and s["mempools"] and all(m["full"] for m in s["mempools"]),
                  f"summary not ok after a capture: {s['mempools']}")
        fields = subprocess.run(["tshark", "-r", pcapng, "-T", "fields", "-E", "separator=,", "-e", "eth.dst",
                                 "-e", "ip.src", "-e", "ip.dst", "-e", "ip.ttl", "-e", "udp.dstport",
                                 "-e", "frame.len"], capture_output=True, text=True, timeout=60)
        check(fields.returncode == 0, f"tshark cannot read the capture:\n{fields.stderr}")
        rows = [r.split(",") for r in fields.stdout.splitlines()]
        # dpdk-dumpcap (22.11) checks its count after each burst it takes from
        # its ring, so it stops after the burst that reaches 100 (bursts of up
        # to 32 packets): the file holds at least 100 packets, and fewer than 132.
        check(COUNT <= len(rows) < COUNT + 32, f"{len(rows)} packets captured, asked for {COUNT}")
        for r in rows:
            dst_mac, src, dst, ttl, dport, flen = r
            # Routed by ngstack: to the sink's neighbour, TTL decremented.
            ok = (dst_mac == "02:00:00:00:00:03" and src.startswith("198.18.") and dst.startswith("198.19.")
                  and ttl == "63" and dport == "9" and flen == "60")
            check(ok, f"not a routed embedded UDP flow: {r}")
        print(f"{len(rows)} packets captured, all embedded UDP flows routed to 02:00:00:00:00:03")
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


if __name__ == "__main__":
    run_test(test_capture)
