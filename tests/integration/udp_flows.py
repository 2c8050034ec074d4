"""Many sequence-numbered UDP flows against an echo service:

    udp_flows.py ADDR PORT [--flows N] [--count N] [--window N] [--inflight N]
                 [--base-port P] [--payload BYTES] [--idle S] [--deadline S]

Opens `flows` connected UDP sockets, bound to source ports base-port ..
base-port + flows - 1 (one flow each: a UDP 4-tuple), and sends `count`
datagrams in all, round-robin over the flows. Each datagram carries its
flow's index and its sequence number within the flow, padded to `payload`
bytes; the echo must bring back exactly the bytes sent, on the socket that
sent them.

Pacing: a flow has at most `window` datagrams unanswered, and all flows
together at most `inflight`, so that no host queue on the way (a socket
buffer, the veth backlog, the af_packet ring) overflows: the test is about
the echo losing or reordering nothing, not about host buffers. With a window
above 1 a flow has several datagrams on the way at once, so its order means
something. When nothing comes back for `idle` seconds, what is unanswered
is counted lost and sending goes on; after three such idle spells in a row,
or after `deadline` seconds, it gives up (gave_up in the output).

Prints one JSON line: sent, received (distinct datagrams back), missing,
reordered (a datagram came back after a later one of its flow), duplicates,
corrupt (wrong length or bytes), foreign (a datagram naming another flow),
late (back after it was counted lost), flows_complete, gave_up,
first_problem, seconds."""
import argparse
import json
import resource
import select
import socket
import struct
import sys
import time

HEADER = struct.Struct("!II")  # flow index, sequence number within the flow


def payload(flow, seq, size):
    head = HEADER.pack(flow, seq)
    return head + bytes((flow + seq + i) & 0xFF for i in range(size - len(head)))


def run(addr, port, flows, count, window, inflight_max, base_port, size, idle, deadline):
    # One descriptor per flow, beyond the usual soft limit of 1024 files.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = flows + 64
    if hard != resource.RLIM_INFINITY and hard < want:
        hard = want  # root may raise the hard limit too
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    socks, by_fd = [], {}
    for f in range(flows):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", base_port + f))
        s.connect((addr, port))
        s.setblocking(False)
        socks.append(s)
        by_fd[s.fileno()] = f
    ep = select.epoll()
    for s in socks:
        ep.register(s.fileno(), select.EPOLLIN)

    # Datagrams of flow f: count // flows, the first count % flows flows one more.
    quota = [count // flows + (1 if f < count % flows else 0) for f in range(flows)]
    next_seq = [0] * flows      # next sequence number to send
    outstanding = [0] * flows   # sent, neither back nor counted lost
    highest = [-1] * flows      # highest sequence number back
    back = [set() for _ in range(flows)]
    lost_upto = [0] * flows     # sequence numbers below this that did not come back were counted lost
    sent = received = reordered = duplicates = corrupt = foreign = late = lost = 0
    first_problem = None
    inflight = 0
    idle_spells = 0  # in a row
    gave_up = None
    cursor = 0  # round-robin position of the sender
    last_progress = start = time.monotonic()

    def problem(text):
        nonlocal first_problem
        if first_problem is None:
            first_problem = text

    while True:
        # Send while the windows allow, round-robin over the flows.
        scanned = 0
        while inflight < inflight_max and scanned < flows:
            f = cursor
            cursor = (cursor + 1) % flows
            scanned += 1
            if next_seq[f] >= quota[f] or outstanding[f] >= window:
                continue
            try:
                socks[f].send(payload(f, next_seq[f], size))
            except BlockingIOError:
                break
            except ConnectionRefusedError:
                problem(f"flow {f}: ICMP port unreachable (ECONNREFUSED) on send")
                continue
            next_seq[f] += 1
            outstanding[f] += 1
            inflight += 1
            sent += 1
            scanned = 0
        if sent == count and inflight == 0:
            break
        if time.monotonic() - start > deadline:
            gave_up = f"deadline of {deadline} s"
            break

        events = ep.poll(0.2)
        for fd, _ in events:
            f = by_fd[fd]
            s = socks[f]
            while True:
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    break
                except ConnectionRefusedError:
                    problem(f"flow {f}: ICMP port unreachable (ECONNREFUSED) on receive")
                    continue
                last_progress = time.monotonic()
                idle_spells = 0
                if len(data) != size:
                    corrupt += 1
                    problem(f"flow {f}: {len(data)} bytes back, {size} sent")
                    continue
                rf, seq = HEADER.unpack_from(data)
                if rf != f:
                    foreign += 1
                    problem(f"flow {f}: got a datagram of flow {rf}")
                    continue
                if seq >= next_seq[f] or data != payload(f, seq, size):
                    corrupt += 1
                    problem(f"flow {f}: seq {seq} back with bytes that were not sent")
                    continue
                if seq in back[f]:
                    duplicates += 1
                    problem(f"flow {f}: seq {seq} back twice")
                    continue
                back[f].add(seq)
                received += 1
                if seq < highest[f]:
                    reordered += 1
                    problem(f"flow {f}: seq {seq} back after seq {highest[f]}")
                highest[f] = max(highest[f], seq)
                if seq < lost_upto[f]:
                    late += 1
                    problem(f"flow {f}: seq {seq} back after it was counted lost")
                else:
                    outstanding[f] -= 1
                    inflight -= 1
        if not events and time.monotonic() - last_progress > idle:
            # Nothing back for `idle` seconds: what is unanswered is lost.
            for f in range(flows):
                if outstanding[f]:
                    problem(f"flow {f}: {outstanding[f]} datagram(s) below seq {next_seq[f]} never came back")
                    lost += outstanding[f]
                    outstanding[f] = 0
                    lost_upto[f] = next_seq[f]
            inflight = 0
            last_progress = time.monotonic()
            idle_spells += 1
            if idle_spells == 3:
                gave_up = f"nothing came back in {3 * idle} s"
                break

    seconds = time.monotonic() - start
    for s in socks:
        s.close()
    complete = sum(1 for f in range(flows) if len(back[f]) == quota[f])
    return {"sent": sent, "received": received, "missing": sent - received, "lost_on_idle": lost,
            "reordered": reordered, "duplicates": duplicates, "corrupt": corrupt, "foreign": foreign, "late": late,
            "flows": flows, "flows_complete": complete, "gave_up": gave_up, "first_problem": first_problem,
            "seconds": round(seconds, 3), "per_s": round(received / seconds) if seconds > 0 else 0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("addr")
    ap.add_argument("port", type=int)
    ap.add_argument("--flows", type=int, default=1000)
    ap.add_argument("--count", type=int, default=100000)
    ap.add_argument("--window", type=int, default=4)
    ap.add_argument("--inflight", type=int, default=256)
    ap.add_argument("--base-port", type=int, default=40000)
    ap.add_argument("--payload", type=int, default=32)
    ap.add_argument("--idle", type=float, default=2.0)
    ap.add_argument("--deadline", type=float, default=90.0)
    a = ap.parse_args()
    if a.payload < HEADER.size or a.flows < 1 or a.window < 1 or a.inflight < 1:
        sys.exit("udp_flows.py: payload >= 8, flows, window and inflight >= 1")
    print(json.dumps(run(a.addr, a.port, a.flows, a.count, a.window, a.inflight, a.base_port, a.payload, a.idle,
                                 a.deadline)),
          flush=True)


if __name__ == "__main__":
    main()
