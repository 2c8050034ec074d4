"""TCP conformance battery (packetimpact style): a scapy testbench
(tcpbench.py) on the tester's end of a veth drives the DUT's TCP with
scripted segments and checks every reply, field by field.

    /usr/bin/python3 tests/integration/test_tcp_conformance.py --dut linux|ngstack [-k NAME] [-v] [--list]

--dut linux: two namespaces of the test's own (ngstc-<pid>-t, tester
198.18.1.2/24; ngstc-<pid>-d, DUT 198.18.1.1/24) joined by a veth, Python
servers in the DUT's (echo 7, discard 9, source 19 sending forever, source
2019 sending 3000 bytes then closing). --dut ngstack: ngslab's host lab
(ngstack 198.18.1.1 on the lab's p0, the tester in <prefix>-h1 198.18.1.2)
with the services tcp-echo 7, tcp-discard 9, tcp-source 19 (bytes: 0),
tcp-source 2019 (bytes: 3000) and a `stack.tcp` section with short timers
(NGSTACK_TCP below). Either way the tester kernel's own RSTs are dropped by
an nftables rule in the tester namespace and the bench runs inside that
namespace (the script re-executes itself there with --inner). Every
namespace is removed at the end, also on failure or SIGTERM.

Cases (each opens its own connections from fresh ports):

handshake            RFC 9293 §3.7.1, RFC 7323 §2.2/§3.2, RFC 2018 §2: the
                     SYN-ACK acks ISS+1 and carries MSS (1460 on a 1500 MTU)
                     always; window scale, timestamps (TSecr = the SYN's
                     TSval) and SACK-permitted exactly when the SYN offered
                     them (all, none, MSS only, TS only, SACK+wscale; ngstack:
                     shift 7); each connection then echoes data; the DUT's
                     segments respect an offered MSS of 536; ISNs differ
                     (RFC 6528).
closed_port          §3.10.7.1: SYN to a closed port -> <SEQ=0><ACK=SEG.SEQ+
                     SEG.LEN><CTL=RST,ACK>; an ACK -> <SEQ=SEG.ACK><CTL=RST>.
acceptable_segment   §3.10.7.4 (first check): data beyond the receive window,
                     an old duplicate entirely below RCV.NXT and an empty
                     segment beyond the window each get <SEQ=SND.NXT>
                     <ACK=RCV.NXT><CTL=ACK> and are not delivered (the echo
                     stream goes on unchanged).
rst_at_rcv_nxt       §3.10.7.4 (second check), RFC 5961 §3.2: a RST with
                     SEQ=RCV.NXT resets silently; the next segment is
                     answered as by a closed connection (<SEQ=SEG.ACK><RST>).
rst_in_window        RFC 5961 §3.2: a RST in the window but not at RCV.NXT
                     gets a challenge ACK (SEQ=SND.NXT, ACK=RCV.NXT); the
                     connection lives on.
syn_established      RFC 5961 §4.2 (RFC 9293 §3.10.7.4 fourth check): a SYN
                     on an established connection, in or out of the window,
                     gets a challenge ACK; the connection lives on.
ack_unsent           §3.10.7.4 (fifth check, ESTABLISHED): SEG.ACK > SND.NXT:
                     an ACK is sent and the segment dropped (its data never
                     echoed).
paws                 RFC 7323 §5.3: data whose TSval is older than TS.Recent
                     is dropped with an ACK and not delivered (checked via
                     the echo); the same bytes with a current TSval are.
zero_window          §3.8.6.1, RFC 1122 §4.2.2.17: after the bench ACKs with
                     window 0 while tcp-source has data queued, probes come
                     (a byte at SND.NXT, or Linux's empty SND.UNA-1 probe),
                     each answered with window 0; successive intervals grow
                     (>= 1.5x); on a window update data resumes at RCV.NXT.
rto_backoff          RFC 6298 §5.5-5.7: echoed data never ACKed is
                     retransmitted with the RTO doubled each time (each
                     interval >= 1.5x the previous; the first >= 150 ms).
fast_retransmit      RFC 5681 §3.2, RFC 6582: tcp-source without SACK; after
                     a new ACK and three duplicate ACKs (same ACK, same window,
                     no data) the first unacked segment is retransmitted at
                     once (< 100 ms, well before the >= 200 ms RTO).
sack_recovery        RFC 2018, RFC 6675: with SACK negotiated, a flight from
                     tcp-source is SACKed but for two holes; the first hole
                     is retransmitted at once (< 100 ms, before the RTO), the
                     second with it or at once after a partial ACK, and no
                     SACKed byte is ever sent again.
fin_wait2_timeout    RFC 9293 §3.6 (FIN-WAIT-2 timer, RFC 1122 §4.2.2.20
                     practice): the DUT closes first (source 2019), the bench
                     ACKs its FIN and says nothing; half-way through the
                     timeout an out-of-window segment still gets an ACK, after
                     it a FIN gets <SEQ=SEG.ACK><RST> (the connection is gone).
                     Linux: tcp_fin_timeout=2 s in the DUT namespace.
time_wait            §3.6, §3.10.7.4 TIME-WAIT: after the DUT's active close
                     and the bench's FIN, the DUT ACKs the FIN, and ACKs each
                     retransmission of it again (SEQ=SND.NXT, ACK=FIN+1).
keepalive            RFC 9293 §3.8.4, RFC 1122 §4.2.3.6 (ngstack only: a
                     tcp-discard on 2009 with keepalive_ms 600, interval
                     300 ms, 2 probes): probes are plain ACKs with
                     SEQ = SND.UNA - 1 after the idle time and an interval
                     apart; after the last unanswered one, a RST.
urgent               §3.8.5, RFC 6093: data with URG and an urgent pointer
                     comes back from the echo whole and in order (urgent data
                     inline; the Linux echo server sets SO_OOBINLINE).
ooo_queue            §3.10.7.4 (data), RFC 2018 §4: 20 segments after a hole
                     draw immediate duplicate ACKs (with a SACK block when
                     negotiated); filling the hole acknowledges what was
                     queued (ngstack: exactly `ooo_segments` (8) segments;
                     Linux: all 20) and the whole stream comes back intact.
simultaneous_open    §3.5 figure 8, §3.10.7.3: the DUT's active opener
                     (ngstack: a tcp-client, flows 2, bytes 1000, in an
                     ngstack run of its own after the others; Linux:
                     connect() from the DUT namespace) sends SYNs to port
                     3009 of the tester, where nothing listens; the bench
                     answers each with its own SYN (no ACK); the DUT replies
                     <SEQ=ISS><ACK=bench's ISN+1><CTL=SYN,ACK> with its SYN's
                     options. One connection is completed by the bench's
                     SYN-ACK, the other by an ACK alone; each is ESTABLISHED:
                     the DUT's data comes at ISS+1, the bench's is ACKed, and
                     the DUT lists it as ESTABLISHED (`ngstack show tcp`,
                     Linux: ss).
syn_cookies          RFC 4987 §3.6: with the listener's syncache full
                     (ngstack: syn_backlog 4 half-open SYNs; Linux:
                     tcp_syncookies=2 for the case), a SYN is still answered,
                     the ACK of its SYN-ACK completes the connection (data
                     echoes); an ACK with a wrong cookie gets <SEQ=SEG.ACK>
                     <RST>. Run last (Linux remembers the cookie mode).

With --dut ngstack, simultaneous_open's run is checked by its JSON summary
(summary_simultaneous_open: tcp.stats connects and established 2, accepts 0,
the tcp-client's connections and bytes), and the shared instance's JSON
summary too (summary_ngstack):
totals balanced, mempools full, tcp_bad_checksum 0, and the tcp.stats
counters of what ran: challenge_acks, out_of_window, paws_dropped,
persist_probes, rto_expired, fast_retransmits, sack_recoveries,
cookies_sent/cookies_accepted/cookies_rejected, syncache_overflow,
ooo_queued, ooo_dropped, rst_in.
"""
import argparse
import json
import os
import signal
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tcpbench as tb  # noqa: E402
from tcpbench import (CLOSED_PORT, DISCARD, ECHO, FULL, SOURCE, SOURCE_N, SOURCE_N_BYTES, CheckFailed,  # noqa: E402
                      Conn, check, seq_add, seq_diff, seq_lt)

HERE = os.path.abspath(__file__)

# ngstack's stack.tcp section for the battery (keys of the TCP contract).
NG_OOO_SEGMENTS = 8
NG_FIN_WAIT2_MS = 1500
NG_SYN_BACKLOG = 4
# A tcp-discard with keepalive on (ngstack only: the Linux DUT's servers do not set SO_KEEPALIVE).
NG_KEEPALIVE_PORT, NG_KEEPALIVE_IDLE_MS, NG_KEEPALIVE_INTERVAL_MS, NG_KEEPALIVE_PROBES = 2009, 600, 300, 2
NGSTACK_TCP = {
    "msl_ms": 1000, "min_rto_ms": 200, "initial_rto_ms": 1000, "delayed_ack_ms": 40,
    "fin_wait2_timeout_ms": NG_FIN_WAIT2_MS, "ooo_segments": NG_OOO_SEGMENTS, "syn_backlog": NG_SYN_BACKLOG,
    "keepalive_interval_ms": NG_KEEPALIVE_INTERVAL_MS, "keepalive_probes": NG_KEEPALIVE_PROBES,
}

# Simultaneous open: the DUT's active opener connects to this port of the
# tester (nothing listens there; prepare_tester's rule drops the tester
# kernel's RSTs), SIMOPEN_FLOWS connections at once, each sending
# SIMOPEN_BYTES once established.
SIMOPEN_PORT, SIMOPEN_FLOWS, SIMOPEN_BYTES = 3009, 2, 1000
SIMOPEN_BENCH_DATA = b"simultaneous open"  # what the bench sends on each
# ngstack's tcp-client connects once, when its worker comes online, and then
# only retransmits its SYN (initial_rto_ms, doubling, syn_retries times:
# with the battery's settings SYNs at 0, 1, 3, 7, 15 and 31 s, given up at
# 63 s). In the battery's shared instance whether a SYN is still coming when
# the case runs would depend on how long the cases before it take. So the
# case gets an ngstack run of its own (NG_OWN_RUN), started just before its
# bench, with the SYN retransmitted at least every second (max_rto_ms) for
# about 30 s (syn_retries): the case sees a SYN within a second of looking
# however long ngstack and the bench took to come up. Its counters stay out
# of the shared summary too.
NG_SIMOPEN_TCP = dict(NGSTACK_TCP, initial_rto_ms=500, max_rto_ms=1000, syn_retries=30)

# What each DUT is expected to do where the RFCs leave a choice.
DUTS = {
    "linux": {"wscale": None, "mss": 1460, "ooo_bound": None, "fin_wait2_s": tb.LINUX_FIN_TIMEOUT_S,
              "syn_backlog": 0},
    "ngstack": {"wscale": 7, "mss": 1460, "ooo_bound": NG_OOO_SEGMENTS, "fin_wait2_s": NG_FIN_WAIT2_MS / 1000,
                "syn_backlog": NG_SYN_BACKLOG},
}


class Dut:
    def __init__(self, name, ns=None, ng_prefix=None):
        self.name, self.ns, self.ng_prefix = name, ns, ng_prefix
        self.p = DUTS[name]

    def tcp_states(self, lport, fport):
        """The states the DUT lists for its connection <DUT_IP:lport,
        TESTER_IP:fport> (`ngstack show tcp --json`; Linux: ss)."""
        local, foreign = f"{tb.DUT_IP}:{lport}", f"{tb.TESTER_IP}:{fport}"
        if self.name == "linux":
            out = tb.sh(f"ip netns exec {self.ns} ss -Htan src {local} dst {foreign}").stdout
            states = [ln.split()[0] for ln in out.splitlines() if ln.strip()]
            return ["ESTABLISHED" if st == "ESTAB" else st for st in states]
        from ngslab import NGSTACK
        r = tb.sh(f"{NGSTACK} show tcp --json --prefix {self.ng_prefix}")
        return [c["state"] for c in json.loads(r.stdout)["tcp"]["connections"]
                if c["local"] == local and c["foreign"] == foreign]

    def sysctl(self, key, value):
        tb.sh(f"ip netns exec {self.ns} sysctl -qw {key}={value}")

    def linux_mib(self):
        """The Linux DUT's TcpExt counters (its namespace's /proc/net/netstat)."""
        lines = [ln.split() for ln in tb.sh(f"ip netns exec {self.ns} cat /proc/net/netstat").stdout.splitlines()
                 if ln.startswith("TcpExt:")]
        return dict(zip(lines[0][1:], map(int, lines[1][1:])))


CASES = []


def case(fn):
    CASES.append(fn)
    return fn


def say(*a):
    print("   ", *a, flush=True)


def pure_ack(s):
    """An ACK without data, SYN, FIN or RST."""
    return "A" in s.flags and not s.payload and not any(f in s.flags for f in "SFR")


def check_ack_fields(r, c, what):
    check(r.seq == c.rcv_nxt and r.ack == c.snd_nxt,
          f"{what}: expected <SEQ=SND.NXT {c.rcv_nxt}><ACK=RCV.NXT {c.snd_nxt}>, got {r}")


# ---------------------------------------------------------------- cases

@case
def handshake(b, dut):
    variants = [
        ("all offered", FULL, {"wscale", "ts", "sackok"}),
        ("none offered", {}, set()),
        ("MSS only", {"mss": 1200}, set()),
        ("timestamps only", {"ts": True}, {"ts"}),
        ("SACK and wscale", {"mss": 1460, "sackok": True, "wscale": 7}, {"wscale", "sackok"}),
    ]
    isns = []
    for label, offer, want in variants:
        c = Conn(b, ECHO)
        c.syn(offer)
        sa = c.expect(lambda s: "S" in s.flags or "R" in s.flags, 3.0, f"a SYN-ACK ({label})")
        check(sa.flags == "SA" and sa.ack == seq_add(c.iss, 1),
              f"{label}: SYN-ACK with flags SA acking ISS+1 {seq_add(c.iss, 1)}, got {sa}")
        check(sa.opts.get("mss") == dut.p["mss"], f"{label}: MSS {dut.p['mss']} in the SYN-ACK, got {sa}")
        for opt in ("wscale", "ts", "sackok"):
            check((opt in sa.opts) == (opt in want),
                  f"{label}: option {opt} {'present' if opt in want else 'absent'} in the SYN-ACK, got {sa}")
        check(not sa.opts.get("malformed") and not sa.payload, f"{label}: well-formed SYN-ACK, got {sa}")
        if "ts" in want:
            check(sa.opts["ts"][1] == c.syn_tsval, f"{label}: TSecr = the SYN's TSval {c.syn_tsval}, got {sa}")
        if "wscale" in want:
            exp = dut.p["wscale"]
            check(sa.opts["wscale"] <= 14 and (exp is None or sa.opts["wscale"] == exp),
                  f"{label}: window scale {exp if exp is not None else '<= 14'}, got {sa}")
        check(sa.window > 0, f"{label}: SYN-ACK opens a window, got {sa}")
        isns.append(sa.seq)
        c.snd_nxt = seq_add(c.iss, 1)
        c.complete(sa)
        c.echo(f"hello over a connection with {label}".encode())
        c.abort()
        say(f"ok: {label}: SYN-ACK {sa}, then echo")
    check(len(set(isns)) == len(isns), f"distinct ISNs, got {isns}")
    # An offered MSS is honoured.
    c = Conn(b, SOURCE)
    c.connect({"mss": 536}, window=8 * 536)
    c.recv_stream(8 * 536, 3.0, window=8 * 536)
    c.abort()
    sizes = [len(s.payload) for s in c.log]
    check(max(sizes) <= 536, f"segments of at most the offered MSS 536, got sizes {sizes}")
    say(f"ok: distinct ISNs {isns}; tcp-source segments within an offered MSS of 536")


@case
def closed_port(b, dut):
    c = Conn(b, CLOSED_PORT)
    c.syn(FULL)
    r = c.expect(lambda s: True, 2.0, "a RST for a SYN to a closed port")
    check(r.flags == "RA" and r.seq == 0 and r.ack == seq_add(c.iss, 1) and not r.payload,
          f"SYN to closed port {CLOSED_PORT}: expected <SEQ=0><ACK={seq_add(c.iss, 1)}><CTL=RST,ACK>, got {r}")
    say(f"ok: SYN to a closed port -> {r}")
    c = Conn(b, CLOSED_PORT)
    ack = 0x12345678
    c.send("PA", b"anyone?", seq=c.iss, ack=ack)
    r = c.expect(lambda s: True, 2.0, "a RST for an ACK to a closed port")
    check(r.flags == "R" and r.seq == ack, f"ACK to a closed port: expected <SEQ=SEG.ACK {ack}><CTL=RST>, got {r}")
    say(f"ok: ACK with data to a closed port -> {r}")


@case
def acceptable_segment(b, dut):
    c = Conn(b, ECHO)
    c.connect(FULL)
    c.echo(b"a" * 300)
    wnd = c.dut_wnd
    check(wnd > 0, f"the DUT advertises a window, got {wnd}")
    tests = [
        ("data beyond the window", b"B" * 100, seq_add(c.snd_nxt, wnd + 1000)),
        ("an old duplicate below RCV.NXT", b"a" * 100, seq_add(c.snd_nxt, -200)),
        ("an empty segment beyond the window", b"", seq_add(c.snd_nxt, wnd + 5000)),
    ]
    for label, payload, seq in tests:
        c.send("PA" if payload else "A", payload, seq=seq, advance=False)
        r = c.expect(lambda s: "A" in s.flags and not s.payload, 1.0, f"an ACK for {label}")
        check(pure_ack(r), f"{label}: a plain ACK, got {r}")
        check_ack_fields(r, c, label)
        say(f"ok: {label} (SEQ {seq}, window {wnd}) -> {r}")
    c.expect_nothing(0.3, c.data_match, "echoed data (nothing was acceptable)")
    c.echo(b"the stream goes on")
    c.abort()
    say("ok: nothing of it delivered; the stream goes on")


@case
def rst_at_rcv_nxt(b, dut):
    c = Conn(b, DISCARD)
    c.connect(FULL)
    c.send("PA", b"some data")
    c.drain(0.2)
    c.send("R", seq=c.snd_nxt, advance=False)
    c.expect_nothing(0.5, what="reply to a RST at RCV.NXT")
    say("ok: RST at RCV.NXT, no reply")
    c.send("PA", b"after the reset", advance=False)
    r = c.expect(lambda s: True, 1.0, "a RST for a segment of the reset connection")
    check(r.flags == "R" and r.seq == c.rcv_nxt,
          f"segment after the reset: expected <SEQ=SEG.ACK {c.rcv_nxt}><CTL=RST> as by a closed connection, got {r}")
    say(f"ok: the next segment -> {r}")


@case
def rst_in_window(b, dut):
    c = Conn(b, ECHO)
    c.connect(FULL)
    c.echo(b"before")
    for label, flags, off in (("RST", "R", 10), ("RST+ACK", "RA", 1000)):
        seq = seq_add(c.snd_nxt, off)
        c.send(flags, seq=seq, advance=False)
        r = c.expect(lambda s: True, 1.0, f"a challenge ACK for a {label} at RCV.NXT+{off}")
        check(pure_ack(r), f"{label} in the window: a challenge ACK (no RST), got {r}")
        check_ack_fields(r, c, f"challenge ACK for a {label} at RCV.NXT+{off}")
        say(f"ok: {label} at RCV.NXT+{off} -> challenge ACK {r}")
    c.echo(b"still alive")
    c.abort()
    say("ok: the connection lives on")


@case
def syn_established(b, dut):
    c = Conn(b, ECHO)
    c.connect(FULL)
    c.echo(b"before")
    for label, off in (("at RCV.NXT", 0), ("in the window", 100), ("beyond the window", 0x10000000)):
        c.send("S", seq=seq_add(c.snd_nxt, off), advance=False)
        r = c.expect(lambda s: True, 1.0, f"a challenge ACK for a SYN {label}")
        check(pure_ack(r), f"SYN {label}: a challenge ACK, got {r}")
        check_ack_fields(r, c, f"challenge ACK for a SYN {label}")
        say(f"ok: SYN {label} -> challenge ACK {r}")
    c.echo(b"still alive")
    c.abort()
    say("ok: the connection lives on")


@case
def ack_unsent(b, dut):
    c = Conn(b, ECHO)
    c.connect(FULL)
    c.echo(b"before")
    bad_ack = seq_add(c.rcv_nxt, 100000)
    c.send("PA", b"ghost", ack=bad_ack, advance=False)
    r = c.expect(lambda s: True, 1.0, "an ACK for a segment acking unsent data")
    check(pure_ack(r), f"ACK of unsent data: a plain ACK, got {r}")
    check_ack_fields(r, c, "ACK for a segment acking unsent data")
    say(f"ok: SEG.ACK = SND.NXT+100000 -> {r}")
    c.expect_nothing(0.5, c.data_match, "echo of the data of a segment acking unsent data")
    c.echo(b"real")
    c.abort()
    say("ok: its data was dropped (not echoed); the stream goes on")


@case
def paws(b, dut):
    c = Conn(b, ECHO)
    c.connect(FULL)
    check(c.ts_ok, "timestamps negotiated")
    c.echo(b"warm up")
    old = seq_add(c.tsval(), -100000)
    c.send("PA", b"stale", tsval=old, advance=False)
    r = c.expect(lambda s: True, 1.0, "an ACK for a segment with an old TSval")
    check(pure_ack(r), f"PAWS: a plain ACK, got {r}")
    check_ack_fields(r, c, "PAWS ACK (data not acknowledged)")
    say(f"ok: TSval {old} (TS.Recent is newer by 100 s) -> {r}")
    c.expect_nothing(0.5, c.data_match, "echo of the PAWS-dropped data")
    c.echo(b"stale")
    c.abort()
    say("ok: not delivered; the same bytes with a current TSval are")


def warm_flight(c, window, warm_bytes, min_segs):
    """tcp-source: take warm_bytes ACKing each segment with `window` (its
    congestion window opens), then stop ACKing and take the flight the last
    ACK allowed. Returns the flight's segments (rcv_nxt past them, not
    ACKed) and the ACK number before them."""
    c.recv_stream(warm_bytes, 5.0, window=window)
    base = c.rcv_nxt
    flight = c.collect_flight(seq_add(base, window))
    check(len(flight) >= min_segs, f"a flight of at least {min_segs} segments after the warm-up, got "
                                   f"{len(flight)} ({sum(len(s.payload) for s in flight)} bytes of {window})")
    return base, flight


@case
def zero_window(b, dut):
    c = Conn(b, SOURCE)
    w = 4000
    c.connect({"mss": 1000, "ts": True}, window=w)
    base, flight = warm_flight(c, w, 8000, 1)
    t_zero = c.send("A", window=0)
    say(f"window 0 at RCV.NXT {c.rcv_nxt} after a flight of {len(flight)} segments")
    probes = []
    deadline = time.time() + 9.0
    while len(probes) < 4:
        left = deadline - time.time()
        r = c.next(max(0.0, left)) if left > 0 else None
        check(r is not None, f"4 zero-window probes within 9 s, got {len(probes)}: "
                             f"{[(round(p.time - t_zero, 3), p) for p in probes]}")
        # The flight was all in and ACKed with window 0: from here on the DUT
        # may send nothing but probes.
        ok_probe = ((r.seq == seq_add(c.rcv_nxt, -1) and not r.payload) or
                    (r.seq == c.rcv_nxt and len(r.payload) == 1))
        check(ok_probe and not any(f in r.flags for f in "SRF"),
              f"a zero-window probe (1 byte at {c.rcv_nxt} or empty at {seq_add(c.rcv_nxt, -1)}), got {r}")
        probes.append(r)
        c.send("A", window=0)
    times = [t_zero] + [p.time for p in probes]
    iv = [round(times[i + 1] - times[i], 3) for i in range(len(times) - 1)]
    say(f"ok: probes {probes}")
    say(f"intervals (s): {iv}")
    for i in range(1, len(iv)):
        check(iv[i] >= 1.5 * iv[i - 1] - 0.01, f"probe intervals grow (each >= 1.5x the previous), got {iv}")
    c.send("A", window=8000)
    r = c.expect(lambda s: len(s.payload) > 1, 2.0, "data after the window opens")
    check(r.seq == c.rcv_nxt, f"data resumes at RCV.NXT {c.rcv_nxt} after the window opens, got {r}")
    c.abort()
    say(f"ok: intervals grow; the window opens and data resumes at RCV.NXT: {r}")


@case
def rto_backoff(b, dut):
    c = Conn(b, ECHO)
    c.connect(FULL)
    c.send("PA", b"R" * 100)
    first = c.expect(lambda s: len(s.payload) > 0, 2.0, "the echo")
    check(first.seq == c.rcv_nxt and first.payload == b"R" * 100, f"the echo at RCV.NXT {c.rcv_nxt}, got {first}")
    times = [first.time]
    for i in range(4):
        prev = times[-1] - times[-2] if len(times) > 1 else 1.0
        r = c.expect(lambda s: len(s.payload) > 0, max(3.0, 3 * prev),
                     f"retransmission {i + 1} of the unacknowledged echo")
        check(r.seq == first.seq and r.payload == first.payload,
              f"retransmission {i + 1}: the same 100 bytes at {first.seq}, got {r}")
        times.append(r.time)
    iv = [round(times[i + 1] - times[i], 3) for i in range(len(times) - 1)]
    say(f"retransmission intervals (s): {iv}")
    check(iv[0] >= 0.15, f"the first RTO is at least ~min RTO (200 ms), got {iv}")
    for i in range(1, len(iv)):
        check(iv[i] >= 1.5 * iv[i - 1] - 0.01, f"RTO doubles (each interval >= 1.5x the previous), got {iv}")
    c.abort()
    say("ok: exponential backoff")


@case
def fast_retransmit(b, dut):
    c = Conn(b, SOURCE)
    w = 8000
    c.connect({"mss": 1000}, window=w)
    check(not c.sack_ok and not c.ts_ok, "no SACK, no timestamps")
    base, flight = warm_flight(c, w, 16000, 5)
    seg2 = flight[1]
    c.send("A", ack=seg2.seq, window=w)  # a new ACK: seg1
    c.drain(0.05)
    t = [c.send("A", ack=seg2.seq, window=w) for _ in range(3)]
    r = c.expect(lambda s: s.payload and s.seq == seg2.seq, 1.5, f"the retransmission of {seg2.seq}")
    delay = r.time - t[-1]
    check(r.time > t[-1], f"no retransmission before the third duplicate ACK, got {r} {(t[-1] - r.time) * 1000:.1f} ms"
                          " before it")
    say(f"flight of {len(flight)} segments from {base}; ACK {seg2.seq} then three duplicates;"
        f" retransmission {r} after {delay * 1000:.1f} ms")
    check(delay < 0.1, f"fast retransmit at once after the third duplicate ACK (< 100 ms, before the >= 200 ms RTO),"
                       f" got {delay * 1000:.0f} ms")
    c.abort()
    say("ok: fast retransmit")


@case
def sack_recovery(b, dut):
    c = Conn(b, SOURCE)
    w = 10000
    c.connect({"mss": 1000, "sackok": True, "ts": True}, window=w)
    check(c.sack_ok, "SACK negotiated")
    base, flight = warm_flight(c, w, 20000, 8)
    highest = flight[-1].end
    holes = [flight[1], flight[4]]
    sacked = [(flight[2].seq, flight[3].end), (flight[5].seq, highest)]
    say(f"flight of {len(flight)} segments; holes {[(h.seq, h.end) for h in holes]}, SACKed {sacked}")
    retrans = []

    def watch(timeout, want):
        """Read for `timeout` s (or until `want` seq is retransmitted);
        fail on any resend of SACKed data."""
        end = time.time() + timeout
        while time.time() < end:
            s = c.next(end - time.time(), lambda s: len(s.payload) > 0)
            if s is None:
                return
            if seq_lt(s.seq, highest):
                for lo, hi in sacked:
                    check(not (seq_lt(s.seq, hi) and seq_lt(lo, s.end)),
                          f"no SACKed data retransmitted: {s} overlaps SACKed [{lo}, {hi})")
                retrans.append(s)
                if s.seq == want:
                    return

    # As a receiver would: an ACK of segment 0, then one ACK per segment
    # above the first hole, each SACKing what has arrived so far (the block
    # of the latest segment first): duplicate ACKs by RFC 5681's definition
    # (same ACK and window, no data) and by RFC 6675's (new SACKed data).
    ack = flight[1].seq
    c.send("A", ack=ack, window=w)
    dup_times = []
    for k in range(2, len(flight)):
        if k == 4:
            continue
        blocks = [(flight[2].seq, flight[min(k, 3)].end)]
        if k > 4:
            blocks.insert(0, (flight[5].seq, flight[k].end))
        dup_times.append(c.send("A", ack=ack, window=w, sack=blocks))
    watch(1.5, holes[0].seq)
    first = [s for s in retrans if s.seq == holes[0].seq]
    check(first, f"the first hole {holes[0].seq} retransmitted, got {retrans}")
    delay = first[0].time - dup_times[2]
    check(delay < 0.1, f"the first hole retransmitted at once by SACK recovery (< 100 ms after the third duplicate"
                       f" ACK, before the >= 200 ms RTO), got {delay * 1000:.0f} ms")
    say(f"ok: {len(dup_times)} duplicate ACKs with SACK blocks; first hole retransmitted {delay * 1000:.1f} ms"
        " after the third")
    watch(0.03, holes[1].seq)  # the second hole may come right behind the first
    if not any(s.seq == holes[1].seq for s in retrans):
        t1 = c.send("A", ack=holes[1].seq, window=w, sack=[sacked[1]])  # partial ACK
        watch(1.5, holes[1].seq)
        second = [s for s in retrans if s.seq == holes[1].seq]
        check(second, f"the second hole {holes[1].seq} retransmitted after a partial ACK, got {retrans}")
        check(second[0].time - t1 < 0.1, f"the second hole retransmitted at once after the partial ACK (< 100 ms),"
                                         f" got {(second[0].time - t1) * 1000:.0f} ms")
        say(f"ok: second hole retransmitted {(second[0].time - t1) * 1000:.1f} ms after a partial ACK")
    else:
        say("ok: second hole retransmitted too, before any partial ACK")
    watch(0.2, None)
    c.abort()
    say(f"ok: only the holes were retransmitted: {retrans}")


def source_n_closed(b):
    """A connection to source-N, its data and FIN taken and ACKed: the DUT
    is in FIN_WAIT_2."""
    c = Conn(b, SOURCE_N)
    c.connect(FULL)
    data = c.recv_stream(None, 5.0, fin=True)
    check(len(data) == SOURCE_N_BYTES, f"{SOURCE_N_BYTES} bytes then a FIN from port {SOURCE_N}, got {len(data)}")
    return c


@case
def fin_wait2_timeout(b, dut):
    tmo = dut.p["fin_wait2_s"]
    c = source_n_closed(b)
    t0 = time.time()
    say(f"DUT closed first, its FIN ACKed: FIN_WAIT_2 for {tmo} s")
    time.sleep(tmo / 2)
    c.send("A", seq=seq_add(c.snd_nxt, 0x20000000), advance=False)
    r = c.expect(lambda s: True, 1.0, f"an ACK for an out-of-window segment {tmo / 2:.1f} s into FIN_WAIT_2")
    check(pure_ack(r), f"FIN_WAIT_2 alive: a plain ACK, got {r}")
    check_ack_fields(r, c, "ACK in FIN_WAIT_2")
    say(f"ok: half-way, FIN_WAIT_2 answers {r}")
    time.sleep(max(0.0, t0 + tmo + 1.0 - time.time()))
    c.send("FA", advance=False)
    r = c.expect(lambda s: True, 1.0, "a RST for a FIN after the FIN_WAIT_2 timeout")
    check(r.flags == "R" and r.seq == c.rcv_nxt,
          f"after the timeout the connection is gone: expected <SEQ=SEG.ACK {c.rcv_nxt}><CTL=RST>, got {r}")
    say(f"ok: {tmo + 1.0:.1f} s after, a FIN gets {r}")


@case
def time_wait(b, dut):
    c = source_n_closed(b)
    c.send("FA")
    r = c.expect(lambda s: True, 1.0, "an ACK of the bench's FIN")
    check(pure_ack(r), f"our FIN ACKed with a plain ACK, got {r}")
    check_ack_fields(r, c, "ACK of the FIN")
    say(f"ok: FIN ACKed {r}: TIME_WAIT")
    for i in range(2):
        time.sleep(0.1)
        c.send("FA", seq=seq_add(c.snd_nxt, -1), advance=False)
        r = c.expect(lambda s: True, 1.0, f"a re-ACK of retransmitted FIN {i + 1}")
        check(pure_ack(r), f"retransmitted FIN {i + 1}: a plain ACK, got {r}")
        check_ack_fields(r, c, f"re-ACK of retransmitted FIN {i + 1}")
        say(f"ok: retransmitted FIN {i + 1} re-ACKed {r}")


@case
def keepalive(b, dut):
    """RFC 9293 §3.8.4 / RFC 1122 §4.2.3.6: after the idle time a probe
    (SEQ = SND.UNA - 1, no data) every interval; the last unanswered one
    ends the connection with a RST. ngstack only (keepalive_ms on a
    service)."""
    if dut.name != "ngstack":
        say("not applicable: the Linux DUT's servers do not turn keepalive on")
        return
    c = Conn(b, NG_KEEPALIVE_PORT)
    c.connect(FULL)
    t0 = time.time()
    times = []
    for i in range(NG_KEEPALIVE_PROBES):
        r = c.expect(lambda s: True, 3.0, f"keepalive probe {i + 1}")
        check(pure_ack(r) and r.seq == seq_add(c.rcv_nxt, -1),
              f"probe {i + 1}: a plain ACK with SEQ = SND.UNA - 1 ({seq_add(c.rcv_nxt, -1)}), got {r}")
        times.append(time.time() - t0)
    r = c.expect(lambda s: True, 3.0, "a RST after the last unanswered probe")
    check("R" in r.flags, f"the connection ends with a RST, got {r}")
    idle, step = NG_KEEPALIVE_IDLE_MS / 1000, NG_KEEPALIVE_INTERVAL_MS / 1000
    check(times[0] >= idle * 0.9, f"the first probe after the idle time ({idle} s), came at {times[0]:.2f} s")
    check(times[1] - times[0] >= step * 0.8, f"probes {step} s apart, got {times[1] - times[0]:.2f} s")
    say(f"ok: probes at {', '.join(f'{t:.2f}' for t in times)} s, then {r}")


@case
def urgent(b, dut):
    c = Conn(b, ECHO)
    c.connect(FULL)
    parts = [b"normal data, ", b"URGENT", b", more normal data"]
    c.send("PA", parts[0])
    c.send("PAU", parts[1], urgptr=len(parts[1]))
    c.send("PA", parts[2])
    want = b"".join(parts)
    got = c.recv_stream(len(want), 3.0)
    check(got == want, f"urgent data inline and the stream unbroken: expected {want!r}, got {got!r}")
    c.echo(b"and after")
    c.abort()
    say(f"ok: {got!r} came back whole")


@case
def ooo_queue(b, dut):
    c = Conn(b, ECHO)
    c.connect(FULL)
    n, seg = 20, 100
    data = bytes((i * 7 + 3) & 0xFF for i in range((n + 1) * seg))
    base = c.snd_nxt
    for i in range(1, n + 1):
        c.send("PA", data[i * seg:(i + 1) * seg], seq=seq_add(base, i * seg), advance=False)
    dup = []
    end = time.time() + 0.5
    while time.time() < end:
        r = c.next(end - time.time())
        if r is None:
            break
        dup.append(r)
    check(dup and all(pure_ack(r) and r.ack == base for r in dup),
          f"duplicate ACKs of RCV.NXT {base} for out-of-order data, got {dup[:5]}")
    if c.sack_ok:
        check(any(r.opts.get("sack") and r.opts["sack"][0][0] == seq_add(base, seg) for r in dup),
              f"SACK blocks from {seq_add(base, seg)} in the duplicate ACKs, got {dup[:5]}")
    say(f"ok: {len(dup)} duplicate ACKs for {n} out-of-order segments, e.g. {dup[-1]}")
    c.send("PA", data[:seg], seq=base, advance=False)
    r = c.expect(lambda s: s.ack != base, 1.0, "an ACK after the hole is filled")
    c.putback(r)
    acked = seq_diff(r.ack, base)
    bound = dut.p["ooo_bound"]
    if bound is not None:
        check(acked == (min(bound, n) + 1) * seg,
              f"the hole and the {min(bound, n)} queued segments (ooo_segments) acknowledged: ACK "
              f"{seq_add(base, (min(bound, n) + 1) * seg)}, got {r} ({acked} bytes)")
    else:
        check(seg <= acked <= len(data) and acked % seg == 0,
              f"the hole and whole queued segments acknowledged, got {r} ({acked} bytes)")
    say(f"ok: hole filled -> ACK of {acked} bytes ({acked // seg - 1} queued segments)")
    c.snd_nxt = seq_add(base, acked)
    c.send_data(data[acked:], mss=seg)
    got = c.recv_stream(len(data), 3.0)
    check(got == data, f"the whole stream echoed intact ({len(data)} bytes), got {len(got)} bytes"
                       f"{' that differ' if len(got) == len(data) else ''}")
    c.echo(b"and after")
    c.abort()
    say("ok: the rest resent; the whole stream came back intact")


def simopen_other(s, isn, iss):
    """What the DUT may send, besides its data, once the bench has answered
    its SYN-ACK: a plain ACK <SEQ=ISS+1><ACK=bench's ISN+1> or its SYN-ACK
    again (a retransmission that crossed the bench's answer)."""
    if s.flags == "SA":
        return s.seq == isn and s.ack == seq_add(iss, 1) and not s.payload
    return pure_ack(s) and s.seq == seq_add(isn, 1) and s.ack == seq_add(iss, 1)


@case
def simultaneous_open(b, dut):
    """RFC 9293 §3.5 figure 8, §3.10.7.3: the DUT's active opener (ngstack:
    the tcp-client of its own run, simopen_config; Linux: connect() in its
    namespace) sends SYNs to SIMOPEN_PORT of the tester, where nothing
    listens. The bench answers each with a SYN of its own (no ACK), as a
    simultaneous opener whose SYN crossed; the DUT must answer
    <SEQ=ISS><ACK=bench's ISN+1><CTL=SYN,ACK> with its first SYN's options.
    The bench then completes one connection with its SYN-ACK (figure 8) and
    the other with an ACK alone; each is ESTABLISHED: the DUT's data comes
    at ISS+1, the bench's is ACKed, the DUT lists the connection as
    established."""
    proc = None
    if dut.name == "linux":
        proc = tb.linux_connect(dut.ns, tb.TESTER_IP, SIMOPEN_PORT, SIMOPEN_FLOWS, SIMOPEN_BYTES)
    conns = []
    try:
        done = set()
        for completion in ("SYN-ACK", "ACK"):
            port = b.syn_port(SIMOPEN_PORT, done, 10.0)
            check(port is not None, f"a SYN from the DUT to port {SIMOPEN_PORT} within 10 s"
                                    f"{' besides port(s) ' + str(sorted(done)) if done else ''}")
            done.add(port)
            c = Conn(b, port, sport=SIMOPEN_PORT)
            conns.append(c)
            syn = c.expect(lambda s: True, 1.0, "the DUT's SYN")
            check(syn.flags == "S" and not syn.payload and "mss" in syn.opts, f"a SYN with MSS, got {syn}")
            isn = syn.seq
            c.syn(FULL)
            # Its SYN again (a retransmission) may cross the bench's; anything else is the answer.
            sa = c.expect(lambda s: not (s.flags == "S" and s.seq == isn), 3.0,
                          "a SYN-ACK for the bench's SYN (the DUT in SYN-SENT)")
            check(sa.flags == "SA" and sa.seq == isn and sa.ack == seq_add(c.iss, 1) and not sa.payload,
                  f"SYN in SYN-SENT: expected <SEQ=ISS {isn}><ACK={seq_add(c.iss, 1)}><CTL=SYN,ACK>, got {sa}"
                  f" (the DUT's SYN {syn})")
            check(set(sa.opt_kinds) == set(syn.opt_kinds) and
                  all(sa.opts.get(k) == syn.opts.get(k) for k in ("mss", "wscale", "sackok")),
                  f"the SYN-ACK keeps its SYN's options: SYN {syn}, SYN-ACK {sa}")
            if "ts" in sa.opts:
                check(sa.opts["ts"][1] == c.syn_tsval, f"TSecr = the bench's TSval {c.syn_tsval}, got {sa}")
            say(f"ok: DUT port {port}: SYN {syn}; bench's SYN -> {sa}")
            c.take_synack(sa)
            if completion == "SYN-ACK":
                c.send("SA", seq=c.iss, options=c.syn_options(FULL, tsecr=c.ts_recent))
            else:
                c.send("A")
            mark = len(c.log)
            data = c.recv_stream(SIMOPEN_BYTES, 3.0)
            check(len(data) == SIMOPEN_BYTES, f"{SIMOPEN_BYTES} bytes from the DUT, got {len(data)}")
            first = next(s for s in c.log[mark:] if s.payload)
            check(first.seq == seq_add(isn, 1) and first.ack == seq_add(c.iss, 1),
                  f"the DUT's data at ISS+1 {seq_add(isn, 1)} acking {seq_add(c.iss, 1)}, got {first}")
            odd = [s for s in c.log[mark:] if not s.payload and not simopen_other(s, isn, c.iss)]
            check(not odd, f"after the bench's {completion}, nothing but the DUT's data, plain ACKs and its"
                           f" SYN-ACK again: {odd}")
            c.send("PA", SIMOPEN_BENCH_DATA)
            r = c.expect(lambda s: "A" in s.flags and s.ack == c.snd_nxt, 2.0, "an ACK of the bench's data")
            check("R" not in r.flags and "S" not in r.flags, f"the bench's data ACKed, got {r}")
            states = dut.tcp_states(port, SIMOPEN_PORT)
            check(states == ["ESTABLISHED"], f"the DUT lists {tb.DUT_IP}:{port} <-> {tb.TESTER_IP}:{SIMOPEN_PORT}"
                                             f" as ESTABLISHED, it says {states}")
            say(f"ok: the bench's {completion} -> ESTABLISHED: {len(data)} bytes from ISS+1 ({first}),"
                f" the bench's data ACKed ({r})")
    finally:
        if proc is not None:
            # ngstack's stay up until its run stops (summary_simultaneous_open: no resets).
            for c in conns:
                c.abort()
            proc.kill()
            out = proc.communicate()[0].strip()
            if out:
                say("the Linux DUT's connect()s said: " + out.replace("\n", "; "))


@case
def syn_cookies(b, dut):
    if dut.name == "linux":
        dut.sysctl("net.ipv4.tcp_syncookies", 2)
        mib0 = dut.linux_mib()
    half = []
    try:
        for i in range(dut.p["syn_backlog"]):
            h = Conn(b, ECHO)
            h.syn(FULL)
            half.append(h)
        for h in half:
            sa = h.expect(lambda s: s.has("SA"), 2.0, "a SYN-ACK for a half-open connection")
            h.irs, h.rcv_nxt, h.snd_nxt = sa.seq, seq_add(sa.seq, 1), seq_add(h.iss, 1)
        if half:
            say(f"{len(half)} half-open connections fill the syncache (syn_backlog {len(half)})")
        c = Conn(b, ECHO)
        sa = c.connect(FULL)
        c.echo(b"through a SYN cookie")
        c.abort()
        say(f"ok: beyond the backlog a SYN is answered {sa}, its ACK completes the connection, data echoes")
        bad = Conn(b, ECHO)
        bad.syn(FULL)
        sa = bad.expect(lambda s: s.has("SA"), 2.0, "a SYN-ACK")
        wrong = seq_add(sa.seq, 1 + 4096)
        bad.send("A", seq=seq_add(bad.iss, 1), ack=wrong)
        r = bad.expect(lambda s: True, 1.0, "a RST for an ACK with a wrong cookie")
        check(r.flags == "R" and r.seq == wrong, f"a wrong cookie: expected <SEQ=SEG.ACK {wrong}><CTL=RST>, got {r}")
        say(f"ok: an ACK with a wrong cookie gets {r}")
        if dut.name == "linux":
            mib = dut.linux_mib()
            d = {k: mib[k] - mib0[k] for k in ("SyncookiesSent", "SyncookiesRecv", "SyncookiesFailed")}
            check(d["SyncookiesSent"] >= 2 and d["SyncookiesRecv"] >= 1 and d["SyncookiesFailed"] >= 1,
                  f"Linux counted the cookies (sent >= 2, received >= 1, failed >= 1): {d}")
            say(f"ok: Linux's counters: {d}")
    finally:
        for h in half:
            if h.rcv_nxt is not None:
                h.send("R", seq=h.snd_nxt, advance=False)
        if dut.name == "linux":
            dut.sysctl("net.ipv4.tcp_syncookies", 1)


# ---------------------------------------------------------------- running

def selected(k):
    return [fn for fn in CASES if not k or any(x in fn.__name__ for x in k.split(","))]


def inner(args):
    """The bench itself, inside the tester namespace."""
    dut = Dut(args.dut, args.dut_ns, args.ng_prefix)
    b = tb.Bench(verbose=args.verbose)
    results = []
    cases = [fn for fn in CASES if fn.__name__ in args.only.split(",")] if args.only else selected(args.k)
    try:
        for fn in cases:
            print(f"--- {fn.__name__}", flush=True)
            t0 = time.time()
            try:
                fn(b, dut)
                status, msg = "PASS", ""
            except CheckFailed as e:
                status, msg = "FAIL", str(e)
            except Exception as e:  # noqa: BLE001 - a broken case is a failed case
                status, msg = "FAIL", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"
            secs = time.time() - t0
            print(f"{status}: {fn.__name__} ({secs:.1f} s){': ' + msg if msg else ''}", flush=True)
            results.append({"name": fn.__name__, "status": status, "msg": msg, "secs": round(secs, 2)})
            time.sleep(0.1)
    finally:
        b.close()
        if args.results:
            with open(args.results, "w") as f:
                json.dump(results, f)


def ngstack_config(lab, prefix):
    from ngslab import af_packet, workers_yaml
    lcore_cpus, workers_text = workers_yaml(1)
    tcp = "".join(f"    {k}: {v}\n" for k, v in NGSTACK_TCP.items())
    return f"""mode: host
eal:
  main_lcore: 0
  memory_mb: 512
  no_huge: true
  file_prefix: {prefix}
{lcore_cpus}ports:
  - {{name: p0, {af_packet(0, lab.port(0), 1)}}}
{workers_text}host:
  interfaces:
    - {{port: p0, addresses: [198.18.1.1/24]}}
services:
  - {{type: tcp-echo, port: {ECHO}}}
  - {{type: tcp-discard, port: {DISCARD}}}
  - {{type: tcp-source, port: {SOURCE}, bytes: 0}}
  - {{type: tcp-source, port: {SOURCE_N}, bytes: {SOURCE_N_BYTES}}}
  - {{type: tcp-discard, port: {NG_KEEPALIVE_PORT}, keepalive_ms: {NG_KEEPALIVE_IDLE_MS}}}
stack:
  locking: group
  tcp:
{tcp}"""


def simopen_config(lab, prefix):
    """The simultaneous_open case's own ngstack: only a tcp-client to the
    tester, with SYNs kept coming (NG_SIMOPEN_TCP)."""
    from ngslab import af_packet, workers_yaml
    lcore_cpus, workers_text = workers_yaml(1)
    tcp = "".join(f"    {k}: {v}\n" for k, v in NG_SIMOPEN_TCP.items())
    return f"""mode: host
eal:
  main_lcore: 0
  memory_mb: 512
  no_huge: true
  file_prefix: {prefix}
{lcore_cpus}ports:
  - {{name: p0, {af_packet(0, lab.port(0), 1)}}}
{workers_text}host:
  interfaces:
    - {{port: p0, addresses: [198.18.1.1/24]}}
services:
  - {{type: tcp-client, server: {tb.TESTER_IP}, port: {SIMOPEN_PORT}, flows: {SIMOPEN_FLOWS}, bytes: {SIMOPEN_BYTES}}}
stack:
  locking: group
  tcp:
{tcp}"""


# tcp.stats counters that must have moved when a case passed on ngstack.
NG_COUNTERS = {
    "acceptable_segment": ["out_of_window"],
    "rst_at_rcv_nxt": ["rst_in"],
    "rst_in_window": ["challenge_acks"],
    "syn_established": ["challenge_acks"],
    "paws": ["paws_dropped"],
    "zero_window": ["persist_probes"],
    "rto_backoff": ["rto_expired", "retransmits"],
    "fast_retransmit": ["fast_retransmits"],
    "keepalive": ["keepalive_probes", "keepalive_drops"],
    "sack_recovery": ["sack_recoveries"],
    "ooo_queue": ["ooo_queued", "ooo_dropped"],
    "syn_cookies": ["syncache_overflow", "cookies_sent", "cookies_accepted", "cookies_rejected"],
}


def check_ngstack_summary(s, results):
    from ngslab import drops
    check(s["ok"] and s["totals"]["balanced"], f"rx + originated == tx + drops + consumed: {s['totals']}")
    check(all(m["full"] for m in s["mempools"]), f"every mbuf back in its pool: {s['mempools']}")
    check("tcp" in s and "stats" in s["tcp"], f"a tcp section in the summary: keys {sorted(s)}")
    st = s["tcp"]["stats"]
    print("    tcp.stats:", json.dumps(st), flush=True)
    check(drops(s, "tcp_bad_checksum") == 0, f"tcp_bad_checksum {drops(s, 'tcp_bad_checksum')}")
    passed = {r["name"] for r in results if r["status"] == "PASS"}
    for name, counters in NG_COUNTERS.items():
        if name in passed:
            for k in counters:
                check(st.get(k, 0) > 0, f"{name} passed, so tcp.stats.{k} > 0: {st.get(k)}")
    if "ooo_queue" in passed:
        check(st["ooo_queued"] >= NG_OOO_SEGMENTS, f"ooo_queued >= {NG_OOO_SEGMENTS}: {st['ooo_queued']}")


def check_simopen_summary(s, results):
    """The simultaneous_open run: both connections actively opened and
    established (none accepted), each having sent its bytes and received
    the bench's. (The summary's connection list is taken after the stack
    closed its connections: the case checks their state live, with `ngstack
    show tcp`.)"""
    from ngslab import service
    check(s["ok"] and s["totals"]["balanced"], f"rx + originated == tx + drops + consumed: {s['totals']}")
    check(all(m["full"] for m in s["mempools"]), f"every mbuf back in its pool: {s['mempools']}")
    if not any(r["name"] == "simultaneous_open" and r["status"] == "PASS" for r in results):
        return
    st = s["tcp"]["stats"]
    print("    tcp.stats:", json.dumps(st), flush=True)
    n, sent = SIMOPEN_FLOWS, len(SIMOPEN_BENCH_DATA)
    check(st["connects"] == n and st["established"] == n and st["accepts"] == 0 and st["resets"] == 0,
          f"tcp.stats: connects {n}, established {n}, accepts 0, resets 0: {st}")
    check(st["bytes_out"] == n * SIMOPEN_BYTES and st["bytes_in"] == n * sent,
          f"tcp.stats: bytes_out {n * SIMOPEN_BYTES}, bytes_in {n * sent}: {st}")
    client = service(s, "tcp-client", SIMOPEN_PORT)
    check(client["connections"] == n and client["resets"] == 0 and client["tx_bytes"] == n * SIMOPEN_BYTES
          and client["rx_bytes"] == n * sent,
          f"tcp-client: {n} connections, no resets, {n * SIMOPEN_BYTES} bytes out, {n * sent} in: {client}")


# Cases that run in an ngstack of their own (its config, its summary check),
# after the battery's shared instance.
NG_OWN_RUN = {"simultaneous_open": (simopen_config, check_simopen_summary)}


def run_ngstack(lab, config, prefix, argv, results_path, names, summary_name, summary_check):
    """One ngstack run: the bench (argv, writing results_path) runs the
    cases `names` against it; then its summary is checked. Returns the
    results, the summary's included."""
    from ngslab import Ngstack
    with Ngstack(config) as ng:
        ng.wait_running()
        tb.in_namespace(lab.host(1), argv + ["--only", ",".join(names), "--ng-prefix", prefix], timeout=240)
        results = json.load(open(results_path)) if os.path.getsize(results_path) else []
        rc = ng.stop()
        try:
            check(rc == 0, f"ngstack exit {rc}:\n{ng.output()[-3000:]}")
            summary_check(ng.summary(), results)
            results.append({"name": summary_name, "status": "PASS"})
        except (CheckFailed, KeyError, OSError, ValueError) as e:
            results.append({"name": summary_name, "status": "FAIL", "msg": str(e)})
            print(f"FAIL: {summary_name}: {e}", flush=True)
    return results


def outer(args):
    """Build the DUT and the tester namespace, run the bench inside it,
    clean up whatever happens."""
    import ngslab  # noqa: F401 - its SIGTERM handler turns meson's timeout into SystemExit (cleanup runs)
    for sig in (signal.SIGINT, signal.SIGHUP):  # likewise an interrupt or a closed terminal
        signal.signal(sig, ngslab._on_sigterm)
    fd, results_path = tempfile.mkstemp(prefix="tcpbench-", suffix=".json")
    os.close(fd)
    argv = [tb.PY, HERE, "--inner", "--dut", args.dut, "--results", results_path]
    if args.k:
        argv += ["-k", args.k]
    if args.verbose:
        argv.append("-v")
    results, extra_fail = [], None
    t0 = time.time()
    try:
        if args.dut == "linux":
            with tb.LinuxDut() as env:
                tb.in_namespace(env.tester, argv + ["--dut-ns", env.dut], timeout=240)
                results = json.load(open(results_path)) if os.path.getsize(results_path) else []
        else:
            from ngslab import Lab
            names = [fn.__name__ for fn in selected(args.k)]
            shared = [n for n in names if n not in NG_OWN_RUN]
            with Lab("host") as lab:
                tb.prepare_tester(lab.host(1))
                if shared:
                    prefix = f"ngt-tcpc-{os.getpid()}"
                    results += run_ngstack(lab, ngstack_config(lab, prefix), prefix, argv, results_path, shared,
                                           "summary_ngstack", check_ngstack_summary)
                for n in names:
                    if n in NG_OWN_RUN:
                        config, summary_check = NG_OWN_RUN[n]
                        prefix = f"ngt-tcpc-{n[:8]}-{os.getpid()}"
                        results += run_ngstack(lab, config(lab, prefix), prefix, argv, results_path, [n],
                                               f"summary_{n}", summary_check)
    except BaseException as e:  # noqa: BLE001 - the namespaces are gone by now; report
        extra_fail = f"{type(e).__name__}: {e}"
        print(f"FAIL: setup/teardown: {extra_fail}", flush=True)
    finally:
        os.unlink(results_path)
    failed = [r["name"] for r in results if r["status"] != "PASS"]
    passed = len(results) - len(failed)
    print(f"--- dut {args.dut}: {time.time() - t0:.1f} s", flush=True)
    if failed:
        print("failed:", ", ".join(failed), flush=True)
    print(f"{passed} passed, {len(failed) + (1 if extra_fail else 0)} failed", flush=True)
    return 1 if failed or extra_fail or not results else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dut", choices=sorted(DUTS), default="linux")
    ap.add_argument("-k", help="run only cases whose name contains one of these (comma separated)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every segment")
    ap.add_argument("--list", action="store_true", help="list the cases")
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--dut-ns", help=argparse.SUPPRESS)
    ap.add_argument("--results", help=argparse.SUPPRESS)
    ap.add_argument("--only", help=argparse.SUPPRESS)  # exact case names (the outer's split between ngstack runs)
    ap.add_argument("--ng-prefix", help=argparse.SUPPRESS)  # the running ngstack's file prefix
    args = ap.parse_args()
    if args.list:
        print("\n".join(fn.__name__ for fn in selected(args.k)))
        return 0
    if args.inner:
        inner(args)
        return 0
    if not selected(args.k):
        raise SystemExit(f"no case matches {args.k!r}")
    return outer(args)


if __name__ == "__main__":
    sys.exit(main())
