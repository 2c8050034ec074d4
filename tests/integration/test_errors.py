"""Bad configs and bad environments get one clear line and a non-zero exit:
missing file, YAML syntax error, not root, no hugepages, a device that does not
probe, more queues than a device offers, an lcore that does not exist, a bad
argument. `ngstack check` validates and prints the resolved config."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from ngslab import NGSTACK, check, run_test  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
TMP = tempfile.mkdtemp(prefix="ngstack-errors-")
os.chmod(TMP, 0o755)  # the not-root case reads the config as nobody


def write(name, text):
    path = os.path.join(TMP, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def ngstack(*args, user=None):
    cmd = [NGSTACK, *args]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout, r.stderr


def expect_error(args, rc_expected, message, user=None):
    rc, out, err = ngstack(*args, user=user)
    lines = [l for l in err.splitlines() if l.startswith("ngstack: error:") or l.startswith("ngstack: ")]
    check(rc == rc_expected, f"{args}: exit {rc}, expected {rc_expected}\n{out}{err}")
    check(any(message in l for l in lines), f"{args}: no line with {message!r} in:\n{err}")
    print(f"ok: {' '.join(args)} -> {rc}: {message}")


def base(prefix, ports, lcores="[1]", huge=True):
    return f"""eal:
  main_lcore: 0
  memory_mb: 256
  no_huge: {"true" if huge else "false"}
  file_prefix: {prefix}-{os.getpid()}
ports:
{ports}
workers:
  lcores: {lcores}
forwarder:
  paths:
    - {{in: a, out: b}}
"""


PCAP = os.path.join(TMP, "flows.pcap")
subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "perf", "make_pcap.py"), PCAP, "--flows", "4"], check=True)
PCAP_AND_NULL = f"""  - name: a
    device: net_pcap0,rx_pcap={PCAP},infinite_rx=1
  - name: b
    device: net_null0,no-rx=1
"""


def test_error_paths():
    expect_error(["--config", "/nonexistent/ngstack.yaml"], 1,
                 "ngstack: error: cannot read config file /nonexistent/ngstack.yaml: No such file or directory")
    bad_yaml = write("syntax.yaml", "ports: [\n  name: x\n")
    expect_error(["--config", bad_yaml], 1, f"ngstack: error: {bad_yaml}:3:1: YAML syntax error")
    unknown = write("unknown.yaml", base("ngt-e0", PCAP_AND_NULL) + "colour: blue\n")
    expect_error(["check", unknown], 1, f"ngstack: error: {unknown}:17:1: colour: unknown key")

    ok_cfg = write("ok.yaml", base("ngt-e1", PCAP_AND_NULL))
    expect_error(["--config", ok_cfg, "--duration", "1"], 1, "ngstack must run as root", user=65534)

    with open("/proc/meminfo") as f:
        has_huge = any(l.startswith("HugePages_Free:") and int(l.split()[1]) > 0 for l in f)
    if has_huge:
        print("SKIP: hugepage check (this machine has free hugepages)")
    else:
        huge = write("huge.yaml", base("ngt-e2", PCAP_AND_NULL, huge=False))
        expect_error(["--config", huge], 1, "ngstack: error: no free hugepages are reserved; reserve and mount some")

    missing_if = write("noif.yaml", base("ngt-e3", """  - name: a
    device: net_af_packet0,iface=ngt-no-such-if
  - name: b
    device: net_null0,no-rx=1
"""))
    expect_error(["--config", missing_if, "--duration", "1"], 1,
                 f"ngstack: error: {missing_if}:8:5: ports[0].device: device \"net_af_packet0,iface=ngt-no-such-if\" "
                 "did not probe")

    bad_pcap = write("badpcap.yaml", base("ngt-e7", """  - name: a
    device: net_pcap0,rx_pcap=/dev/null,infinite_rx=1
  - name: b
    device: net_null0,no-rx=1
"""))
    expect_error(["--config", bad_pcap, "--duration", "1"], 1,
                 f"ngstack: error: {bad_pcap}:8:5: ports[0].device: device \"net_pcap0,rx_pcap=/dev/null,infinite_rx=1\" "
                 "did not probe: the driver rejected it")

    too_many = write("queues.yaml", base("ngt-e4", f"""  - name: a
    device: net_pcap0,rx_pcap={PCAP},infinite_rx=1
    rx_queues: 4
  - name: b
    device: net_null0,no-rx=1
"""))
    expect_error(["--config", too_many, "--duration", "1"], 1,
                 f"ngstack: error: {too_many}:9:5: ports[0].rx_queues: port a (net_pcap) offers at most 1 rx "
                 "queue(s), 4 requested")

    no_proto = write("noproto.yaml", base("ngt-e8", PCAP_AND_NULL) + "dispatch:\n  protocols:\n    ip: {mode: hybrid}\n")
    expect_error(["--config", no_proto, "--duration", "1"], 1,
                 f"ngstack: error: {no_proto}:19:5: dispatch.protocols.ip: no protocol \"ip\" in forwarder mode "
                 "(registered: ether)")

    lcore = write("lcore.yaml", base("ngt-e5", PCAP_AND_NULL, lcores="[1, 4000]"))
    expect_error(["--config", lcore], 1, f"{lcore}:13:15: workers.lcores: must be in [0, 1023], got 4000")
    far = write("far.yaml", base("ngt-e6", PCAP_AND_NULL, lcores="[1, 999]"))
    expect_error(["--config", far], 1, f"{far}:13:15: workers.lcores: lcore 999 does not exist on this machine")
    expect_error(["check", far], 1, "lcore 999 does not exist on this machine")
    # --offline checks everything but this host: the same file passes.
    rc, out, err = ngstack("check", far, "--offline")
    check(rc == 0 and "lcores: [1, 999]" in out, f"check --offline {far}: {rc}\n{out}{err}")
    print("ok: check --offline skips the host's CPUs")

    expect_error(["--duration", "-1"], 2, "--duration: expected a positive number of seconds")
    expect_error(["--bogus"], 2, "unknown argument \"--bogus\"")

    for example in ("forwarder-pcap.yaml", "forwarder-lab.yaml"):
        rc, out, err = ngstack("check", os.path.join(ROOT, "conf", "examples", example))
        check(rc == 0 and "mode: forwarder" in out and "queues: [" in out, f"check {example}: {rc}\n{out}{err}")
    print("ok: ngstack check on the shipped examples")
    # Every shipped example is valid on any machine (forwarder-pci.yaml names
    # lcores 1-2 and PCI devices a laptop or CI VM does not have).
    examples = sorted(f for f in os.listdir(os.path.join(ROOT, "conf", "examples")) if f.endswith(".yaml"))
    check(len(examples) >= 8, f"examples: {examples}")
    for example in examples:
        rc, out, err = ngstack("check", os.path.join(ROOT, "conf", "examples", example), "--offline")
        check(rc == 0 and "mode: " in out, f"check --offline {example}: {rc}\n{out}{err}")
    print(f"ok: ngstack check --offline on all {len(examples)} shipped examples")


def main():
    try:
        test_error_paths()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    run_test(main)
