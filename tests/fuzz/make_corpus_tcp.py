#!/usr/bin/env python3
"""Writes the seed inputs of fuzz_tcp (tests/fuzz/corpus_tcp/seed-*.bin) and
the inputs that fail it because of a known TCP bug (crash-*.bin: while one is
there, the `fuzz` suite fails at once; remove it with the fix).

The format is fuzz_tcp.cpp's (see its header comment): a config byte, then
steps. Run from anywhere: python3 tests/fuzz/make_corpus_tcp.py
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus_tcp")

ECHO, DISCARD, SOURCE, HTTP, CLIENT, CLOSED = 0, 1, 2, 3, 4, 7  # the 3 side bits of a conn byte
# Compact actions.
ACK, DATA, FIN, SYN, RST, DUPACK, OOO, WINDOW = range(8)
ALL_OPTS = 1 | 2 | 4 | 8  # SYN code bits: MSS, window scale, SACK-permitted, timestamps
LEN = {0: 0, 1: 1, 50: 6, 100: 7, 536: 11, 1000: 13, 1460: 20}  # compact length codes


def conn(peer, svc, pport=0):
    return peer | svc << 2 | pport << 5


def compact(c, action, code=0, delay=None):
    if delay is None:
        return bytes([2, c, action | code << 3])
    return bytes([3, c, action | code << 3, delay])


def delay(d):
    return bytes([4, d])


# Delay bytes: (1 + low nibble) << high nibble milliseconds.
D_48MS, D_250MS, D_1S, D_2S, D_65S, D_131S = 0x2B, 0x4F, 0x6F, 0x7F, 0xCF, 0xDF


CONNECT, SEND, SHUTDOWN, CLOSE, ABORT, READ, CONNECT_MANUAL, FILL = range(8)  # client steps


def app(peer, port, what, length_code=None):
    return bytes([6, peer | port << 2 | what << 5]) + (bytes([length_code]) if length_code is not None else b"")


def full(c, flags, mode, *fields):
    return bytes([0, c, flags, mode]) + b"".join(fields)


def u16(v):
    return v.to_bytes(2, "big")


def seeds():
    s = {}
    # tcp-echo: handshake with every option, data, its echo acknowledged, our FIN, its FIN acknowledged.
    e = conn(0, ECHO)
    s["echo"] = bytes([0]) + compact(e, SYN, ALL_OPTS) + compact(e, ACK) + compact(e, DATA, LEN[100]) + \
        delay(D_48MS) + compact(e, ACK) + compact(e, FIN) + delay(1) + compact(e, ACK) + delay(D_131S)
    # tcp-source over the MTU-1280 port: a transfer with losses reported by SACK,
    # a zero window and persist probes, then the end and FIN-WAIT/TIME-WAIT.
    src = conn(2, SOURCE)
    b = bytes([0]) + compact(src, SYN, ALL_OPTS) + compact(src, ACK)
    for _ in range(3):
        b += compact(src, ACK, delay=1)
    b += compact(src, DUPACK, 1) * 3 + delay(D_250MS) + compact(src, ACK)
    b += compact(src, WINDOW, 0) + delay(D_2S) + delay(D_2S) + compact(src, WINDOW, 31)
    for _ in range(8):
        b += compact(src, ACK, delay=1)
    b += compact(src, FIN) + delay(D_65S) + delay(D_131S)
    s["source-sack-persist"] = b
    # http: a request, the response acknowledged, FIN.
    h = conn(1, HTTP, 3)
    b = bytes([0]) + compact(h, SYN, 1 | 8) + compact(h, ACK) + compact(h, DATA, LEN[50])
    for _ in range(4):
        b += compact(h, ACK, delay=0x1F)
    s["http"] = b + compact(h, FIN) + delay(1) + compact(h, ACK) + delay(D_131S)
    # tcp-discard behind the gateway: out-of-order data, the hole filled, RST.
    d = conn(3, DISCARD, 5)
    s["discard-ooo-rst"] = bytes([0x10]) + compact(d, SYN, ALL_OPTS) + compact(d, ACK) + \
        compact(d, OOO, 0) + compact(d, OOO, 5) + compact(d, DATA, LEN[536]) + compact(d, DATA, LEN[1000]) + \
        delay(D_48MS) + compact(d, RST, 1)
    # SYN backlog 1: the second SYN is answered with a cookie, whose ACK makes the connection.
    b = bytes([0x20])
    for p in range(3):
        b += compact(conn(0, ECHO, p), SYN, 1 | 8)
    c = conn(0, ECHO, 2)
    s["syn-cookies"] = b + compact(c, ACK) + compact(c, DATA, LEN[1]) + compact(c, FIN) + delay(D_48MS) + \
        compact(c, ACK)
    # Nobody answers: SYN-RECEIVED and data retransmission timeouts until they give up.
    b = bytes([0x02]) + compact(conn(1, ECHO, 1), SYN, 1) + compact(conn(1, SOURCE, 1), SYN, 1) + \
        compact(conn(1, SOURCE, 1), ACK)
    s["timeouts"] = b + delay(D_2S) * 6 + delay(D_65S) * 12
    # Full segments: a SYN with explicit options, a data segment with a SACK
    # block and garbage options, an ICMP fragmentation-needed, a closed port.
    f = conn(0, SOURCE, 7)
    b = bytes([0x01])
    b += full(f, 0x02, 0x80, bytes([0x0F]), u16(1460), bytes([7]), bytes([0]), bytes([0]))
    b += full(f, 0x10, 0x00, bytes([0]))
    b += bytes([5, f, 0x08]) + u16(576)
    # options byte (timestamps, SACK, garbage), the garbage (5 bytes), the timestamp mode,
    # the SACK byte and its block (1 segment above the last ACK), 63 bytes of pattern
    b += full(f, 0x18, 0xC4, u16(8192), bytes([0x38, 5]), b"\x01\x01\xfe\x05\x00", bytes([0, 0, 1, 0]),
              bytes([0x3F]))
    b += delay(D_250MS) + compact(f, ACK) + full(conn(0, CLOSED, 1), 0x02, 0x00, bytes([0]))
    s["full-icmp-closed"] = b
    # The harness's client: connect (reading as data comes), the peer's SYN-ACK,
    # data both ways, more sent by a step, the peer's FIN, the client closes.
    a = conn(1, CLIENT, 4)
    b = bytes([0x04]) + app(1, 4, CONNECT) + compact(a, SYN, ALL_OPTS) + compact(a, DATA, LEN[100]) + \
        app(1, 4, SEND, 20) + delay(D_48MS) + compact(a, ACK) + compact(a, FIN) + delay(1) + compact(a, ACK) + \
        delay(D_131S)
    s["client"] = b
    # Simultaneous open (the peer's SYN without ACK answers ours), then an abort.
    a = conn(2, CLIENT, 6)
    s["client-simultaneous-abort"] = bytes([0]) + app(2, 6, CONNECT_MANUAL) + full(a, 0x02, 0x80, bytes([0x09]), u16(1400),
        bytes([0]), bytes([0])) + compact(a, ACK) + app(2, 6, FILL) + compact(a, ACK, delay=1) + app(2, 6, ABORT)
    return s


def crashes():
    """Inputs that fail fuzz_tcp because of a bug in stack/tcp (kept until it is fixed)."""
    s = {}
    # Timer nodes pile up: tcp-echo, whose echoed byte the peer never
    # acknowledges, backs off to a long RTO; then a 1-byte segment every 48 ms.
    # Each arms the delayed ACK earlier than the RTO (a node); when it fires,
    # Tcb::timer_at is cleared and reschedule() arms the RTO deadline again
    # while the node armed for it earlier is still on the wheel. One node per
    # segment until the RTO fires: the wheel (timer_nodes(): 224 here) runs out.
    e = conn(0, ECHO)
    no_ack = full(e, 0x18, 0x04, bytes([1]))  # PSH+ACK, ACK = the peer's last: 1 byte of data
    b = bytes([0]) + compact(e, SYN, ALL_OPTS) + compact(e, ACK) + no_ack + delay(0xBF) * 6
    s["timer-nodes"] = b + (no_ack + delay(D_48MS)) * 400
    return s


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in seeds().items():
        with open(os.path.join(OUT, f"seed-{name}.bin"), "wb") as f:
            f.write(data)
    for name, data in crashes().items():
        with open(os.path.join(OUT, f"crash-{name}.bin"), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
