#!/usr/bin/python3
"""Write a capture of Ethernet/IPv4/UDP frames for net_pcap's infinite_rx.

  make_pcap.py FILE [--size 64] [--flows 1024] [--first-flow 0] [--dst-mac 02:00:00:00:00:02]

--size is the frame size on the wire including the 4-byte FCS (the capture
holds size-4 bytes, as NICs deliver frames). Flows differ in addresses
(198.18.x.y -> 198.19.x.y) and UDP source port. Valid IPv4 header checksums.
"""
import argparse
import struct


def ip_checksum(hdr):
    s = sum(struct.unpack(f"!{len(hdr) // 2}H", hdr))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def frame(i, size, dst_mac="02:00:00:00:00:02"):
    length = size - 4
    eth = bytes.fromhex(dst_mac.replace(":", "") + "020000000001") + struct.pack("!H", 0x0800)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, length - 14, 0, 0, 64, 17, 0,
                     bytes([198, 18, (i >> 8) & 0xFF, i & 0xFF]), bytes([198, 19, (i >> 8) & 0xFF, (i + 1) & 0xFF]))
    ip = ip[:10] + struct.pack("!H", ip_checksum(ip)) + ip[12:]
    udp = struct.pack("!HHHH", 1024 + i % 60000, 9, length - 34, 0)
    return (eth + ip + udp).ljust(length, b"\0")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--flows", type=int, default=1024)
    ap.add_argument("--first-flow", type=int, default=0, help="number flows from here (distinct captures)")
    ap.add_argument("--dst-mac", default="02:00:00:00:00:02",
                    help="Ethernet destination (a router routes only frames to its own MAC)")
    a = ap.parse_args()
    if not 64 <= a.size <= 9018:
        ap.error("--size must be in [64, 9018]")
    with open(a.file, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(a.first_flow, a.first_flow + a.flows):
            fr = frame(i, a.size, a.dst_mac)
            f.write(struct.pack("<IIII", 0, i, len(fr), len(fr)) + fr)


if __name__ == "__main__":
    main()
