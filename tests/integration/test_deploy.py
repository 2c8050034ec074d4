"""deploy/: `meson install` puts the binary, the examples, the systemd unit
and the scripts in place (and they run from there); the unit passes
`systemd-analyze verify`; bind.sh and hugepages.sh against fake /sys and /proc
trees (NGS_SYSFS_ROOT) with fake dpdk-devbind.py, modprobe, mount and umount
that record their calls. Nothing here touches the machine's real devices,
hugepages or mounts."""
import hashlib
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from ngslab import NGSTACK, check, run_test  # noqa: E402

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.dirname(os.path.dirname(os.path.abspath(NGSTACK)))
BIND = os.path.join(SRC, "deploy", "bind.sh")
HUGE = os.path.join(SRC, "deploy", "hugepages.sh")

# A fake program: appends its arguments to ROOT/<name>.log. The fake devbind
# also moves the device's driver link as dpdk-devbind.py would; the fake mount
# adds the mount to ROOT/proc/mounts.
FAKE = r'''#!/usr/bin/python3
import os, sys
root = os.environ["NGS_SYSFS_ROOT"]
name = os.path.basename(sys.argv[0])
with open(os.path.join(root, name + ".log"), "a") as f:
    f.write(" ".join(a.replace(root, "ROOT") for a in sys.argv[1:]) + "\n")
args = [a for a in sys.argv[1:] if a != "--force"]
if name == "devbind":
    link = os.path.join(root, "sys/bus/pci/devices", args[-1], "driver")
    if os.path.lexists(link):
        os.unlink(link)
    if args[0].startswith("--bind="):
        drv = os.path.join(root, "sys/bus/pci/drivers", args[0].split("=", 1)[1])
        os.makedirs(drv, exist_ok=True)
        os.symlink(drv, link)
elif name == "mount":
    with open(os.path.join(root, "proc/mounts"), "a") as f:
        f.write(f"nodev {args[-1][len(root):]} hugetlbfs rw,relatime,{args[3]} 0 0\n")
'''


def write(root, path, text):
    p = os.path.join(root, path.lstrip("/"))
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w") as f:
        f.write(text)


def read(root, path):
    with open(os.path.join(root, path.lstrip("/"))) as f:
        return f.read()


def log(root, name):
    p = os.path.join(root, name + ".log")
    return open(p).read().splitlines() if os.path.exists(p) else []


def fakes(root):
    env = dict(os.environ, NGS_SYSFS_ROOT=root, NGSTACK=os.path.abspath(NGSTACK))
    for name in ("devbind", "modprobe", "mount", "umount"):
        p = os.path.join(root, "bin", name)
        write(root, f"bin/{name}", FAKE)
        os.chmod(p, 0o755)
        env["NGS_" + name.upper()] = p
    return env


def run(cmd, env):
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout, r.stderr


def config(tmp, name, devices, extra_eal=""):
    """A forwarder config over DEVICES (lcores 0/1: loads on this machine)."""
    ports = "".join(f'  - {{name: p{i}, device: "{d}"}}\n' for i, d in enumerate(devices))
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(f"mode: forwarder\neal: {{main_lcore: 0, memory_mb: 1000{extra_eal}}}\nports:\n{ports}"
                "workers: {lcores: [1]}\nforwarder: {paths: [{in: p0, out: p1}]}\n")
    return path


def pci_device(root, addr, driver=None, iface=None, flags="0x1002", iommu=True, node=0):
    dev = os.path.join(root, "sys/bus/pci/devices", addr)
    os.makedirs(dev)
    write(root, f"sys/bus/pci/devices/{addr}/numa_node", f"{node}\n")
    if iommu:
        os.makedirs(os.path.join(root, "sys/kernel/iommu_groups/7"), exist_ok=True)
        os.symlink(os.path.join(root, "sys/kernel/iommu_groups/7"), os.path.join(dev, "iommu_group"))
    if driver:
        drv = os.path.join(root, "sys/bus/pci/drivers", driver)
        os.makedirs(drv, exist_ok=True)
        os.symlink(drv, os.path.join(dev, "driver"))
    if iface:
        os.makedirs(os.path.join(dev, "net", iface))
        write(root, f"sys/class/net/{iface}/flags", flags + "\n")


def driver(root, addr):
    link = os.path.join(root, "sys/bus/pci/devices", addr, "driver")
    return os.path.basename(os.readlink(link)) if os.path.lexists(link) else ""


def bind_script(tmp):
    root = os.path.join(tmp, "bind-root")
    env = fakes(root)
    pci_device(root, "0000:01:00.0", "ixgbe", "eth9")
    pci_device(root, "0000:01:00.1", "vfio-pci")
    pci_device(root, "0000:02:00.0", "mlx5_core", "enp2s0", flags="0x1003")
    pci_device(root, "0000:03:00.0", "i40e", "eth8", flags="0x1003")  # up
    pci_device(root, "0000:04:00.0", "igb", "eth7", iommu=False)
    write(root, "proc/net/route", "Iface\tDestination\tGateway\tFlags\n"
          "eth6\t00000000\t0102A8C0\t0003\n")
    pci_device(root, "0000:05:00.0", "igb", "eth6")  # carries the default route
    cfg = config(tmp, "bind.yaml", ["0000:01:00.0", "01:00.1", "0000:02:00.0", "net_null0,no-rx=1"])

    rc, out, err = run([BIND, "--config", cfg, "--dry-run"], env)
    check(rc == 0 and "would run: " in out and "--bind=vfio-pci 0000:01:00.0" in out and "dry run" in out,
          f"--dry-run: {rc}\n{out}{err}")
    check(log(root, "devbind") == [] and log(root, "modprobe") == [], "--dry-run ran devbind or modprobe")
    check(driver(root, "0000:01:00.0") == "ixgbe" and not os.path.exists(os.path.join(root, "var")),
          "--dry-run changed the tree")
    print("ok: bind --dry-run changes nothing")

    rc, out, err = run([BIND, "--config", cfg], env)
    check(rc == 0, f"bind: {rc}\n{out}{err}")
    # vfio-pci is loaded (01:00.1 is on it): no modprobe; uio_pci_generic below is not.
    check(log(root, "modprobe") == [], f"modprobe: {log(root, 'modprobe')}")
    check(log(root, "devbind") == ["--bind=vfio-pci 0000:01:00.0"], f"devbind: {log(root, 'devbind')}")
    check(driver(root, "0000:01:00.0") == "vfio-pci", "01:00.0 not on vfio-pci")
    check(read(root, "/var/lib/ngstack/bind/0000:01:00.0").strip() == "ixgbe", "state of 01:00.0")
    check("0000:01:00.0 (port p0): ixgbe -> vfio-pci" in out, out)
    check("0000:01:00.1 (port p1): already on vfio-pci" in out, out)
    check("0000:02:00.0 (port p2): on mlx5_core, a bifurcated driver" in out, out)
    check(driver(root, "0000:02:00.0") == "mlx5_core", "mlx5 device moved")
    print("ok: bind: ixgbe -> vfio-pci, vfio-pci skipped, mlx5_core left")

    rc, out, err = run([BIND, "--config", cfg, "--unbind"], env)
    check(rc == 0 and driver(root, "0000:01:00.0") == "ixgbe", f"--unbind: {rc}\n{out}{err}")
    check(log(root, "devbind")[-1] == "--bind=ixgbe 0000:01:00.0", f"devbind: {log(root, 'devbind')}")
    check(not os.path.exists(os.path.join(root, "var/lib/ngstack/bind/0000:01:00.0")), "state left")
    check("0000:01:00.1 (port p1): no record" in out, out)
    print("ok: bind --unbind puts ixgbe back")

    calls = len(log(root, "devbind"))
    missing = config(tmp, "missing.yaml", ["0000:01:00.0", "0000:09:00.0"])
    rc, out, err = run([BIND, "--config", missing], env)
    check(rc == 1 and "ngstack bind: error: 0000:09:00.0 (port p1): no such PCI device" in err
          and "nothing was changed" in err, f"missing device: {rc}\n{out}{err}")
    check(len(log(root, "devbind")) == calls and driver(root, "0000:01:00.0") == "ixgbe", "missing: something bound")
    print("ok: bind refuses a missing device, binds nothing")

    up = config(tmp, "up.yaml", ["0000:03:00.0", "0000:05:00.0"])
    rc, out, err = run([BIND, "--config", up], env)
    check(rc == 1 and "its interface eth8 is up" in err and "eth6 carries the default route" in err
          and "--force" in err, f"active interfaces: {rc}\n{out}{err}")
    check(len(log(root, "devbind")) == calls, "active interface: devbind ran")
    rc, out, err = run([BIND, "--config", up, "--force"], env)
    check(rc == 0 and log(root, "devbind")[-2:] == ["--force --bind=vfio-pci 0000:03:00.0",
                                                     "--force --bind=vfio-pci 0000:05:00.0"],
          f"--force: {rc}\n{out}{err}{log(root, 'devbind')}")
    print("ok: bind refuses an up interface / the default route unless --force")

    noiommu = config(tmp, "noiommu.yaml", ["0000:04:00.0", "net_null0"])
    rc, out, err = run([BIND, "--config", noiommu], env)
    check(rc == 1 and "no IOMMU group" in err, f"no IOMMU: {rc}\n{out}{err}")
    rc, out, err = run([BIND, "--config", noiommu, "--driver", "uio_pci_generic"], env)
    check(rc == 0 and driver(root, "0000:04:00.0") == "uio_pci_generic" and log(root, "modprobe") == ["uio_pci_generic"],
          f"uio_pci_generic: {rc}\n{out}{err}")
    print("ok: bind: vfio-pci without an IOMMU group refused; uio_pci_generic loaded (modprobe) and bound")

    rc, out, err = run([BIND, "--config", cfg, "--driver", "igb_uio"], env)
    check(rc == 2 and "--driver must be" in err, f"bad driver: {rc} {err}")
    rc, out, err = run([BIND, "--config", os.path.join(tmp, "nope.yaml")], env)
    check(rc == 1 and err.startswith("ngstack bind: error:"), f"unreadable config: {rc} {err}")


def huge_tree(root, nodes=2):
    for n in range(nodes):
        write(root, f"sys/devices/system/node/node{n}/cpulist", f"{n}\n")
        for kb in ("2048", "1048576"):
            for c in ("nr_hugepages", "free_hugepages"):
                write(root, f"sys/devices/system/node/node{n}/hugepages/hugepages-{kb}kB/{c}", "0\n")
    write(root, "proc/meminfo", "Hugepagesize:       2048 kB\n")
    write(root, "proc/mounts", "proc /proc proc rw 0 0\n")
    write(root, "proc/cpuinfo", "flags\t\t: fpu sse4_2 avx2\n")


def hugepages_script(tmp):
    root = os.path.join(tmp, "huge-root")
    env = fakes(root)
    huge_tree(root)
    node = "sys/devices/system/node/node{}/hugepages/hugepages-2048kB/{}"
    write(root, node.format(1, "nr_hugepages"), "10\n")   # 6 of them in use
    write(root, node.format(1, "free_hugepages"), "4\n")
    pci_device(root, "0000:01:00.0", "vfio-pci", node=0)
    # Both lcores run on CPU 1, node 1 of the fake tree; the NIC is on node 0.
    cfg = config(tmp, "huge.yaml", ["0000:01:00.0", "net_null0,no-rx=1"], ", lcore_cpus: {0: 1}")
    etc_before = {p: hashlib.sha256(open(p, "rb").read()).hexdigest() for p in ("/etc/fstab",) if os.path.exists(p)}

    rc, out, err = run([HUGE, "--config", cfg, "--dry-run"], env)
    check(rc == 0, f"--dry-run: {rc}\n{out}{err}")
    # node 1: 1000 MiB (2 of 2 lcores) + 64 MiB headroom = 532 pages, beside 6 in use.
    check(f"would write 538 to /{node.format(1, 'nr_hugepages')}" in out, f"node 1 plan:\n{out}")
    check(f"would write 32 to /{node.format(0, 'nr_hugepages')}" in out and "node 0: NICs 0000:01:00.0 + 64 MiB" in out,
          f"node 0 plan (NIC headroom):\n{out}")
    check("would run: mkdir -p /dev/hugepages" in out and "dry run: nothing was changed" in out, out)
    check(read(root, node.format(1, "nr_hugepages")) == "10\n" and log(root, "mount") == [], "--dry-run wrote")
    print("ok: hugepages --config --dry-run: node 1 538 (532 + 6 in use), node 0 32")

    rc, out, err = run([HUGE, "--config", cfg], env)
    check(rc == 0, f"--config: {rc}\n{out}{err}")
    check(read(root, node.format(1, "nr_hugepages")).strip() == "538", "node 1 count")
    check(read(root, node.format(0, "nr_hugepages")).strip() == "32", "node 0 count")
    check(log(root, "mount") == ["-t hugetlbfs -o pagesize=2M nodev ROOT/dev/hugepages"], f"mount: {log(root, 'mount')}")
    for advice in ("vm.nr_hugepages = 570", "hugepagesz=2M hugepages=0:32,1:538",
                   "nodev /dev/hugepages hugetlbfs pagesize=2M 0 0", "nothing below was written"):
        check(advice in out, f"advice {advice!r} missing:\n{out}")
    check(not os.path.exists(os.path.join(root, "etc")) and not os.path.exists("/etc/sysctl.d/80-ngstack-hugepages.conf"),
          "persistent settings were written")
    check(etc_before == {p: hashlib.sha256(open(p, "rb").read()).hexdigest() for p in etc_before}, "/etc/fstab changed")
    print("ok: hugepages --config reserves per node, mounts, prints (not writes) the persistent settings")

    rc, out, err = run([HUGE, "16"], env)  # the old form: PAGES on every node
    check(rc == 0 and [read(root, node.format(n, "nr_hugepages")).strip() for n in (0, 1)] == ["16", "16"],
          f"PAGES: {rc}\n{out}{err}")
    check(len(log(root, "mount")) == 1, "mounted twice")
    rc, out, err = run([HUGE, "--node", "1", "8"], env)
    check(rc == 0 and read(root, node.format(1, "nr_hugepages")).strip() == "8"
          and read(root, node.format(0, "nr_hugepages")).strip() == "16", f"--node: {rc}\n{out}{err}")
    rc, out, err = run([HUGE, "--node", "5", "8"], env)
    check(rc == 1 and "no such NUMA node" in err, f"--node 5: {rc} {err}")
    print("ok: hugepages PAGES (every node) and --node N PAGES")

    rc, out, err = run([HUGE, "--release"], env)
    check(rc == 0 and [read(root, node.format(n, "nr_hugepages")).strip() for n in (0, 1)] == ["0", "0"],
          f"--release: {rc}\n{out}{err}")
    check(log(root, "umount") == ["ROOT/dev/hugepages"], f"umount: {log(root, 'umount')}")
    print("ok: hugepages --release: 0 pages, unmounts what it mounted")

    rc, out, err = run([HUGE, "--size", "1G", "--node", "1", "2"], env)
    check(rc == 1 and "no pdpe1gb" in err, f"1G without pdpe1gb: {rc} {err}")
    write(root, "proc/cpuinfo", "flags\t\t: fpu sse4_2 pdpe1gb avx2\n")
    os.makedirs(os.path.join(root, "sys/kernel/mm/hugepages/hugepages-1048576kB"))
    # The kernel finds no 1 GiB page after boot: the count reads back as 0.
    gnode = "sys/devices/system/node/node1/hugepages/hugepages-1048576kB/nr_hugepages"
    os.unlink(os.path.join(root, gnode))
    os.symlink("/dev/null", os.path.join(root, gnode))
    rc, out, err = run([HUGE, "--size", "1G", "--node", "1", "2"], env)
    check(rc == 1 and "node 1: asked for 2 pages of 1G, the kernel found 0" in err
          and "default_hugepagesz=1G hugepagesz=1G hugepages=2" in err, f"1G short: {rc}\n{out}{err}")
    check("-t hugetlbfs -o pagesize=1G nodev ROOT/dev/hugepages1G" in log(root, "mount"), f"{log(root, 'mount')}")
    print("ok: hugepages --size 1G: pdpe1gb needed; a runtime shortfall prints the boot command line")


def installed(tmp):
    dest = os.path.join(tmp, "dest")
    r = subprocess.run(["meson", "install", "-C", BUILD, "--no-rebuild", "--destdir", dest, "--quiet"],
                       capture_output=True, text=True, timeout=300)
    check(r.returncode == 0, f"meson install: {r.returncode}\n{r.stdout}{r.stderr}")
    prefix = subprocess.run(["meson", "introspect", BUILD, "--buildoptions"], capture_output=True, text=True).stdout
    import json
    prefix = next(o["value"] for o in json.loads(prefix) if o["name"] == "prefix")
    top = dest + prefix
    files = ["bin/ngstack", "lib/systemd/system/ngstack@.service", "share/ngstack/deploy/bind.sh",
             "share/ngstack/deploy/hugepages.sh", "share/ngstack/deploy/config.sh",
             "share/ngstack/examples/forwarder-pci.yaml", "share/ngstack/examples/router-lab.yaml",
             "share/ngstack/perf/lab.py", "share/ngstack/perf/rfc2544.py", "share/ngstack/perf/experiments/forwarding.yaml"]
    for f in files:
        check(os.path.isfile(os.path.join(top, f)), f"not installed: {f}")
    for f in ("bin/ngstack", "share/ngstack/deploy/bind.sh", "share/ngstack/deploy/hugepages.sh"):
        check(os.access(os.path.join(top, f), os.X_OK), f"not executable: {f}")
    binary = os.path.join(top, "bin/ngstack")
    r = subprocess.run([binary, "--version"], capture_output=True, text=True)
    check(r.returncode == 0 and r.stdout.startswith("ngstack "), f"--version: {r.returncode} {r.stdout}{r.stderr}")
    r = subprocess.run([binary, "check", os.path.join(top, "share/ngstack/examples/forwarder-lab.yaml")],
                       capture_output=True, text=True)
    check(r.returncode == 0 and "mode: forwarder" in r.stdout, f"check: {r.returncode}\n{r.stderr}")
    print(f"ok: meson install --destdir: {len(files)} files in place, the binary runs --version and check")

    # The installed binary runs the installed perf programs, not the source tree's.
    with open(os.path.join(top, "share/ngstack/perf/lab.py"), "w") as f:
        f.write("import os, sys\nprint('installed lab.py', os.environ['NGSTACK'], *sys.argv[1:])\n")
    r = subprocess.run([binary, "lab", "x.yaml"], capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
    check(r.stdout.strip() == f"installed lab.py {os.path.realpath(binary)} x.yaml", f"lab: {r.stdout}{r.stderr}")
    print("ok: the installed binary runs share/ngstack/perf/lab.py")

    # The installed scripts find the installed binary (no NGSTACK in the environment).
    root = os.path.join(tmp, "inst-root")
    huge_tree(root, nodes=1)
    env = {k: v for k, v in os.environ.items() if k != "NGSTACK"}
    env["NGS_SYSFS_ROOT"] = root
    rc, out, err = run([os.path.join(top, "share/ngstack/deploy/hugepages.sh"), "--config",
                        os.path.join(top, "share/ngstack/examples/router-lab.yaml"), "--dry-run"], env)
    check(rc == 0 and "no_huge: true" in out, f"installed hugepages.sh: {rc}\n{out}{err}")

    # systemd-analyze verify on the installed unit. It checks that ExecStart's
    # program exists, which under DESTDIR it does only at DESTDIR/PREFIX/bin,
    # so the copy verified points there; nothing else is changed. Any message
    # (an unknown key, a bad value) fails the test, not only the exit status.
    unit = open(os.path.join(top, "lib/systemd/system/ngstack@.service")).read()
    for want in (f"ExecStartPre={prefix}/bin/ngstack doctor --config /etc/ngstack/%i.yaml",
                 f"ExecStart={prefix}/bin/ngstack --config /etc/ngstack/%i.yaml --stats-interval 0",
                 "KillSignal=SIGINT", "Restart=on-failure", "LimitMEMLOCK=infinity"):
        check(want in unit.splitlines(), f"unit lacks {want}")
    check(not any(l.startswith(("PrivateDevices=", "DeviceAllow=", "DevicePolicy=", "ProtectClock="))
                  for l in unit.splitlines()), "the unit restricts devices (DPDK needs /dev/vfio, /dev/hugepages)")
    vdir = os.path.join(tmp, "verify")
    os.makedirs(vdir)
    with open(os.path.join(vdir, "ngstack@lab.service"), "w") as f:
        f.write(unit.replace(f"{prefix}/bin/ngstack", os.path.join(top, "bin/ngstack")))
    r = subprocess.run(["systemd-analyze", "verify", os.path.join(vdir, "ngstack@lab.service")],
                       capture_output=True, text=True, cwd=vdir)
    check(r.returncode == 0 and r.stdout.strip() == "" and r.stderr.strip() == "",
          f"systemd-analyze verify: {r.returncode}\n{r.stdout}{r.stderr}")
    print("ok: systemd-analyze verify ngstack@lab.service: no complaint")


def test_deploy():
    with tempfile.TemporaryDirectory(prefix="ngt-deploy-") as tmp:
        bind_script(tmp)
        hugepages_script(tmp)
        installed(tmp)


if __name__ == "__main__":
    run_test(test_deploy)
