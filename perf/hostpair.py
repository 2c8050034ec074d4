"""Two host-mode ngstack processes joined by one net_memif link: the plumbing
the request/response lab kinds share (udp_rr.py: udp-echo <-> udp-client,
tcp_rr.py: http <-> a `clients:` generator), and tcp_bulk.py's leg (a).

* Where each side runs: `auto_placement` gives each worker of each side a
  CPU of its own where the machine has 1 + both sides' workers CPUs, else
  splits the CPUs after the first between the sides; `oversubscription`
  says which workers then share a CPU.
* One side's config (`side_yaml`): EAL, the memif port (the server side is
  memif's server), the workers pinned to their CPUs, one address, the
  services, the `stack` and `dispatch` settings; the caller adds what
  differs (services, `clients:`, `stack.tcp`).
* Processes: `start`, `wait_running` (until ngstack says its workers run),
  `finish` (SIGINT, then the summary), and `run_pair`, which runs the
  server side, then the client side to its end, then stops the server.
* Reading a `--json` summary: `service`, `lock_figures` (the connection
  table's lock class that was taken), `busy_cycles`.
"""
import json
import os
import shlex
import signal
import subprocess
import tempfile
import time

START_TIMEOUT_S = 30
PREFIX_LEN = 24
# memif ring size (log2): 2048 slots, more than what either side keeps in flight.
MEMIF_RSIZE = 11


# ---------------------------------------------------------------------------
# Where each side runs

def usable_cpus():
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:
        return list(range(os.cpu_count()))


def auto_placement(max_server, max_client, names=("server", "client"), cpus=None):
    """CPUs for each side: {names[0]: {"main": c, "workers": [...]}, names[1]: ...}.
    With 1 + max_server + max_client CPUs or more: both main lcores on the
    first CPU, the server's workers on the next max_server, the client's on
    the next max_client, each worker on a CPU of its own. With fewer: the
    CPUs after the first are split between the sides (server first); on 2
    CPUs the server's workers share the second and the client's share the
    first with both main lcores (which sleep); on 1 CPU everything shares it."""
    cpus = cpus or usable_cpus()
    first, rest = cpus[0], cpus[1:]
    if len(rest) >= max_server + max_client:
        srv, cli = rest[:max_server], rest[max_server:max_server + max_client]
    elif len(rest) >= 2:
        half = min(len(rest) - 1, max(1, round(len(rest) * max_server / (max_server + max_client))))
        srv, cli = rest[:half], rest[half:]
    elif rest:
        srv, cli = rest, [first]
    else:
        srv, cli = [first], [first]
    return {names[0]: {"main": first, "workers": srv}, names[1]: {"main": first, "workers": cli}}


def worker_cpus(side, n):
    """The CPU of each of a side's n workers: worker i on workers[i % len]."""
    ws = side["workers"]
    return [ws[i % len(ws)] for i in range(n)]


def oversubscription(placement, counts):
    """None when every worker of both processes has a CPU of its own, else
    which workers share a CPU (busy-polling workers time-share it: rates are
    then no per-core rates). counts: {side name: workers}."""
    owners = {}
    for name, n in counts.items():
        for i, c in enumerate(worker_cpus(placement[name], n)):
            owners.setdefault(c, []).append(f"{name} worker {i}")
    shared = {c: who for c, who in owners.items() if len(who) > 1}
    if not shared:
        return None
    return "; ".join(f"CPU {c}: {', '.join(who)}" for c, who in sorted(shared.items()))


def placement_text(placement):
    text = "; ".join(f"{n}: main lcore on CPU {p['main']}, workers on CPU(s) {','.join(map(str, p['workers']))}"
                     for n, p in placement.items())
    mains = {p["main"] for p in placement.values()}
    beside = sorted(mains & {c for p in placement.values() for c in p["workers"]})
    if beside:
        text += f" (workers on CPU {','.join(map(str, beside))} share it with the main lcores, which mostly sleep)"
    return text


def one_point(machine, where, over, tmp_prefix, keep):
    """The start of a program that runs one point (udp_rr.py, tcp_rr.py):
    prints the machine, the placement and any over-subscription; returns
    its temporary folder and the folder that keeps its files (keep, or the
    temporary one)."""
    print(f"machine: {machine}")
    print(f"placement: {placement_text(where)}")
    if over:
        print(f"oversubscribed: {over}")
    tmp = tempfile.mkdtemp(prefix=tmp_prefix)
    keep = keep or tmp
    os.makedirs(keep, exist_ok=True)
    return tmp, keep


# ---------------------------------------------------------------------------
# One side's config

def side_yaml(*, memif_role, sock, mac, addr, workers, queues, side, prefix, services, point, protocol,
              stack_extra="", top_extra="", memory_mb=None):
    """A host-mode config on one end of the memif link. workers: this side's;
    queues: memif queue pairs (both ends need as many: memif's server must
    offer every ring the client asks for); side: its placement entry;
    services: the `services:` items (YAML lines, indented 2); point: the
    `groups`, `locking`, `lock_type` and `dispatch_mode` (of `protocol`);
    stack_extra: more `stack:` lines (indented 2); top_extra: top-level
    blocks (`clients:`). memory_mb: by default room for the pool ngstack
    sizes by itself, which grows with the workers (512 MB held 2 workers'
    pool; 6 workers' 131 071 mbufs did not fit)."""
    if memory_mb is None:
        memory_mb = max(512, 256 * (workers + 2))
    lmap = {0: side["main"], **{l + 1: c for l, c in enumerate(worker_cpus(side, workers))}}
    lcore_cpus = ", ".join(f"{l}: {c}" for l, c in lmap.items() if l != c)
    return f"""mode: host
eal:
  main_lcore: 0
  memory_mb: {memory_mb}
  no_huge: true
  file_prefix: {prefix}
{f"  lcore_cpus: {{{lcore_cpus}}}" + chr(10) if lcore_cpus else ""}ports:
  - name: p0
    device: "net_memif0,role={memif_role},socket={sock},rsize={MEMIF_RSIZE},mac={mac}"
    rx_queues: {queues}
    tx_queues: {queues}
workers:
  lcores: [{", ".join(str(l) for l in range(1, workers + 1))}]
host:
  interfaces:
    - port: p0
      addresses: [{addr}/{PREFIX_LEN}]
{"services:" + chr(10) + services if services else ""}{top_extra}stack:
  groups: {point['groups']}
  locking: {point['locking']}
  lock_type: {point['lock_type']}
{stack_extra}dispatch:
  protocols:
    {protocol}: {{mode: {point['dispatch_mode']}}}
"""


# ---------------------------------------------------------------------------
# Processes

def start(binary, config, json_path, log_path, duration):
    log = open(log_path, "w")
    p = subprocess.Popen([binary, "--config", config, "--duration", f"{duration:g}", "--json", json_path, "--quiet"],
                         stdout=log, stderr=subprocess.STDOUT, text=True)
    p.log, p.log_path, p.config = log, log_path, config
    return p


def tail(path, n=3000):
    try:
        with open(path) as f:
            return f.read()[-n:]
    except OSError:
        return ""


def wait_running(p):
    """Returns once ngstack says its workers run."""
    deadline = time.time() + START_TIMEOUT_S
    while time.time() < deadline:
        if p.poll() is not None:
            raise RuntimeError(f"ngstack ({p.config}) exited {p.returncode} while starting:\n{tail(p.log_path)}")
        if "running in" in tail(p.log_path, 1 << 20):
            return
        time.sleep(0.05)
    p.kill()
    raise RuntimeError(f"ngstack ({p.config}) did not start within {START_TIMEOUT_S} s (see {p.log_path})")


class Crashed(RuntimeError):
    """ngstack died of a signal it did not ask for (SIGSEGV, SIGABRT, ...).
    One known cause: DPDK 22.11's memif PMD unmaps a disconnected peer's
    regions in its interrupt thread while a worker may still be polling
    them, so the side that outlives the other can crash as the other exits."""


def finish(p, timeout, stop=False):
    """Waits for ngstack to end; stop: SIGINT first (the summary is written
    as at the end of --duration)."""
    if stop and p.poll() is None:
        p.send_signal(signal.SIGINT)
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise RuntimeError(f"ngstack ({p.config}) did not stop (see {p.log_path})")
    finally:
        p.log.close()
    if p.returncode < 0:
        raise Crashed(f"ngstack ({p.config}) was killed by signal {-p.returncode} "
                      f"({signal.Signals(-p.returncode).name}):\n{tail(p.log_path)}")
    if p.returncode != 0:
        raise RuntimeError(f"ngstack ({p.config}) exited {p.returncode}:\n{tail(p.log_path)}")


def abandon(p):
    """Stops p after a failure elsewhere: SIGINT first (a killed ngstack
    leaves its EAL runtime folder behind), then kill."""
    if p.poll() is None:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    p.log.close()


def side_paths(keep_dir, tag, role):
    return {ext: os.path.join(keep_dir, f"{tag}-{role}.{ext}") for ext in ("yaml", "json", "log")}


def run_pair(binary, keep_dir, tag, configs, client_duration, during=None):
    """One trial: configs = {server role: yaml, client role: yaml} (the
    server first). The server side starts (the memif server), then the
    client, which runs for client_duration (or ends itself earlier); then
    the server is stopped with SIGINT. during(server process): called once
    the client has started; it may return a process that is waited for
    before the server stops (a profiler). Keeps TAG-ROLE.{yaml,json,log} in
    keep_dir; returns {role: summary}."""
    (srv_role, srv_cfg), (cli_role, cli_cfg) = configs.items()
    paths = {}
    for role, text in configs.items():
        paths[role] = side_paths(keep_dir, tag, role)
        with open(paths[role]["yaml"], "w") as f:
            f.write(text)
        if os.path.exists(paths[role]["json"]):
            os.unlink(paths[role]["json"])
    # The server's own --duration outlasts the client's (it is stopped with
    # SIGINT once the client has ended).
    srv = start(binary, paths[srv_role]["yaml"], paths[srv_role]["json"], paths[srv_role]["log"],
                client_duration + START_TIMEOUT_S + 10)
    try:
        wait_running(srv)
        cli = start(binary, paths[cli_role]["yaml"], paths[cli_role]["json"], paths[cli_role]["log"],
                    client_duration)
        watcher = during(srv) if during else None
        finish(cli, client_duration + START_TIMEOUT_S + 30)
        if watcher:
            watcher.wait(timeout=client_duration + START_TIMEOUT_S)
    except BaseException:
        abandon(srv)
        raise
    finish(srv, 30, stop=True)
    out = {}
    for role in configs:
        with open(paths[role]["json"]) as f:
            out[role] = json.load(f)
    return out


# ---------------------------------------------------------------------------
# Reading a summary

def service(summary, kind):
    for s in summary.get("services", []):
        if s.get("type") == kind:
            return s
    raise RuntimeError(f"no {kind} service in the summary")


def busy_cycles(summary):
    """TSC cycles the workers spent in loop iterations that received or
    drained something, summed over the workers."""
    return sum(w["busy_cycles"] for w in summary.get("workers", []))


def lock_figures(summary, locking, table):
    """From a summary's `locks` section: the pcb class that was taken
    (pcb_giant under giant, pcb_group under group) of `table` (udp, tcp)."""
    locks = summary.get("locks") or {}
    cls_name = "pcb_giant" if locking == "giant" else "pcb_group"
    for t in locks.get("tables", []):
        if t.get("name") != table:
            continue
        for c in t.get("classes", []):
            if c.get("class") == cls_name:
                acq = c.get("acquisitions", 0)
                return {"lock_class": cls_name, "acquisitions": acq, "contended": c.get("contended", 0),
                        "contended_share": c["contended"] / acq if acq else 0.0,
                        "wait_cycles_per_acquisition": c["wait_cycles"] / acq if acq else 0.0,
                        "hold_cycles_per_acquisition": c["hold_cycles"] / acq if acq else 0.0,
                        "wait_max": c.get("wait_max", 0),
                        "acquisitions_per_packet": t.get("acquisitions_per_packet", 0.0),
                        "lookups": t.get("lookups", 0)}
        raise RuntimeError(f"locks: table {table} has no class {cls_name}")
    raise RuntimeError(f"locks: no table {table} in the summary")


# ---------------------------------------------------------------------------
# The Linux peer on loopback

def run_loopback_peer(name, server_cmd, ready, client_cmds, workdir, tag, record, timeout, clean=lambda s: s):
    """Linux's own stack beside a trial: starts server_cmd (its output to a
    log in workdir), waits up to 10 s until ready(log text) is true, runs
    client_cmds together and waits for them (timeout), then stops the
    server with SIGINT. The command lines and outputs (clean(): their text
    as kept) go to record. Returns the clients' outputs, in order."""
    slog_path = os.path.join(workdir, f"{tag}-{name}-server.log")
    slog = open(slog_path, "w")
    server = subprocess.Popen(server_cmd, stdout=slog, stderr=subprocess.STDOUT, text=True)
    outs = []
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"{name} server exited {server.returncode}:\n{tail(slog_path)}")
            if ready(tail(slog_path, 1 << 20)):
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"{name} server did not start within 10 s:\n{tail(slog_path)}")
        procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for c in client_cmds]
        for c, p in zip(client_cmds, procs):
            out, _ = p.communicate(timeout=timeout)
            outs.append(out)
            if p.returncode != 0:
                raise RuntimeError(f"{shlex.join(c)} exited {p.returncode}:\n{clean(out)[-3000:]}")
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        slog.close()
        with open(record, "w") as f:
            f.write("$ " + shlex.join(server_cmd) + "\n")
            for c, o in zip(client_cmds, outs):
                f.write("$ " + shlex.join(c) + "\n" + clean(o) + "\n")
            f.write("--- server\n" + clean(tail(slog_path, 20000)))
    return outs
