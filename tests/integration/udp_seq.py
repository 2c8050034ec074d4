"""Sequence-numbered UDP: `send ADDR PORT COUNT` or `recv PORT COUNT`.

The receiver prints one JSON line: received, in_order, reordered, duplicates,
missing, first_gap. The sender paces itself (a short pause every `batch`
packets) so that a kernel socket buffer on the path does not overflow: the
test is about ngstack losing or reordering nothing, not about host buffers.
"""
import json
import socket
import struct
import sys
import time


def send(addr, port, count, batch=200, pause=0.002):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    pad = b"n" * 28
    for seq in range(count):
        s.sendto(struct.pack("!Q", seq) + pad, (addr, port))
        if seq % batch == batch - 1:
            time.sleep(pause)
    print(json.dumps({"sent": count}), flush=True)


def recv(port, count, idle_timeout=5.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE (root)
    s.bind(("0.0.0.0", port))
    s.settimeout(idle_timeout)
    print("ready", flush=True)
    seen = set()
    last = -1
    received = reordered = dup = 0
    first_gap = None
    while received < count:
        try:
            data = s.recv(2048)
        except socket.timeout:
            break
        seq = struct.unpack("!Q", data[:8])[0]
        received += 1
        if seq in seen:
            dup += 1
        seen.add(seq)
        if seq < last:
            reordered += 1
        elif seq != last + 1 and first_gap is None:
            first_gap = last + 1
        last = max(last, seq)
    print(json.dumps({"received": received, "distinct": len(seen), "reordered": reordered,
                      "duplicates": dup, "missing": count - len(seen), "first_gap": first_gap}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "send":
        send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        recv(int(sys.argv[2]), int(sys.argv[3]))
