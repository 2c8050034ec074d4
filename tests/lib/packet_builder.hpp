// Test frames: Ethernet / IPv4 / UDP, ICMP or TCP, valid by default, with every
// field a test may want to break exposed. Bytes are built in network order;
// to_mbuf() copies them into a real mbuf.
#pragma once

#include <rte_mbuf.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

namespace ngstack::test {

inline uint32_t ip(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  return static_cast<uint32_t>(a) << 24 | static_cast<uint32_t>(b) << 16 | static_cast<uint32_t>(c) << 8 | d;
}

struct Ipv4Frame {
  uint8_t dst_mac[6] = {0x02, 0, 0, 0, 0, 0x01};
  uint8_t src_mac[6] = {0x02, 0, 0, 0, 0, 0x02};
  uint16_t ether_type = 0x0800;
  uint8_t version = 4;
  uint8_t ihl = 5;                 // header length in 32-bit words; options are zero bytes
  uint8_t ttl = 64;
  uint8_t proto = 17;              // UDP
  uint16_t frag = 0;               // flags and offset, host order (0x2000 = MF)
  uint32_t src = ip(198, 18, 1, 2);
  uint32_t dst = ip(198, 19, 1, 2);
  uint16_t payload = 18;           // bytes after the IP header
  int total_length = -1;           // -1: header + payload
  bool corrupt_checksum = false;
  uint16_t padding = 0;            // bytes after the IP packet (Ethernet padding)

  std::vector<uint8_t> bytes() const {
    const uint16_t hlen = static_cast<uint16_t>(ihl * 4);
    std::vector<uint8_t> f(14 + hlen + payload + padding, 0);
    std::memcpy(&f[0], dst_mac, 6);
    std::memcpy(&f[6], src_mac, 6);
    put16(f, 12, ether_type);
    uint8_t* h = &f[14];
    h[0] = static_cast<uint8_t>(version << 4 | (ihl & 0x0f));
    put16(f, 16, static_cast<uint16_t>(total_length >= 0 ? total_length : hlen + payload));
    put16(f, 20, frag);
    h[8] = ttl;
    h[9] = proto;
    put32(f, 26, src);
    put32(f, 30, dst);
    if (hlen >= 20 && f.size() >= 14u + hlen) {
      uint32_t sum = 0;
      for (unsigned i = 0; i < hlen; i += 2) sum += static_cast<uint32_t>(h[i] << 8 | h[i + 1]);
      while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
      put16(f, 24, static_cast<uint16_t>(~sum ^ (corrupt_checksum ? 0x5a5a : 0)));
    }
    return f;
  }

  static void put16(std::vector<uint8_t>& f, std::size_t off, uint16_t v) {
    f[off] = static_cast<uint8_t>(v >> 8);
    f[off + 1] = static_cast<uint8_t>(v);
  }
  static void put32(std::vector<uint8_t>& f, std::size_t off, uint32_t v) {
    put16(f, off, static_cast<uint16_t>(v >> 16));
    put16(f, off + 2, static_cast<uint16_t>(v));
  }
};

// A TCP segment in an Ethernet / IPv4 frame, valid by default (checksums
// right, data offset covering the options), with the fields a test may want
// to break exposed. Options are raw bytes (add them with the helpers, which
// pad with NOPs as stacks do); the builder pads the list to 32 bits with EOL.
struct TcpSegment {
  enum : uint8_t { kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10, kUrg = 0x20 };
  uint8_t dst_mac[6] = {0x02, 0, 0, 0, 0, 0x01};
  uint8_t src_mac[6] = {0x02, 0, 0, 0, 0, 0x02};
  uint32_t src = ip(198, 18, 1, 2);
  uint32_t dst = ip(198, 19, 1, 2);
  uint8_t ttl = 64;
  uint16_t sport = 1000, dport = 80;
  uint32_t seq = 0, ack = 0;
  uint8_t flags = kAck;
  uint16_t window = 65535;
  std::vector<uint8_t> options;
  std::vector<uint8_t> payload;
  int data_offset = -1;            // in 32-bit words; -1: 5 + the options
  int ip_payload = -1;             // IPv4 total length less its header; -1: the TCP header + options + payload
  bool corrupt_checksum = false;

  TcpSegment& mss(uint16_t v) {
    options.insert(options.end(), {2, 4, static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)});
    return *this;
  }
  TcpSegment& wscale(uint8_t shift) {
    options.insert(options.end(), {1, 3, 3, shift});
    return *this;
  }
  TcpSegment& sack_permitted() {
    options.insert(options.end(), {1, 1, 4, 2});
    return *this;
  }
  TcpSegment& timestamps(uint32_t tsval, uint32_t tsecr) {
    options.insert(options.end(), {1, 1, 8, 10});
    for (uint32_t v : {tsval, tsecr})
      for (int i = 3; i >= 0; --i) options.push_back(static_cast<uint8_t>(v >> (8 * i)));
    return *this;
  }
  // SACK blocks (RFC 2018): [start, end) pairs.
  TcpSegment& sack(const std::vector<std::pair<uint32_t, uint32_t>>& blocks) {
    options.insert(options.end(), {1, 1, 5, static_cast<uint8_t>(2 + 8 * blocks.size())});
    for (const auto& [a, b] : blocks)
      for (uint32_t v : {a, b})
        for (int i = 3; i >= 0; --i) options.push_back(static_cast<uint8_t>(v >> (8 * i)));
    return *this;
  }

  std::vector<uint8_t> bytes() const {
    std::vector<uint8_t> opts = options;
    while (opts.size() % 4) opts.push_back(0);
    const std::size_t thlen = 20 + opts.size();
    const std::size_t tcp_len = thlen + payload.size();
    std::vector<uint8_t> f(14 + 20 + tcp_len, 0);
    std::memcpy(&f[0], dst_mac, 6);
    std::memcpy(&f[6], src_mac, 6);
    Ipv4Frame::put16(f, 12, 0x0800);
    uint8_t* h = &f[14];
    h[0] = 0x45;
    const uint16_t ipp = static_cast<uint16_t>(ip_payload >= 0 ? ip_payload : static_cast<int>(tcp_len));
    Ipv4Frame::put16(f, 16, static_cast<uint16_t>(20 + ipp));
    Ipv4Frame::put16(f, 20, 0x4000);  // DF
    h[8] = ttl;
    h[9] = 6;
    Ipv4Frame::put32(f, 26, src);
    Ipv4Frame::put32(f, 30, dst);
    Ipv4Frame::put16(f, 24, static_cast<uint16_t>(~fold(sum(h, 20))));
    const std::size_t t = 34;
    Ipv4Frame::put16(f, t, sport);
    Ipv4Frame::put16(f, t + 2, dport);
    Ipv4Frame::put32(f, t + 4, seq);
    Ipv4Frame::put32(f, t + 8, ack);
    const int doff = data_offset >= 0 ? data_offset : static_cast<int>(thlen / 4);
    f[t + 12] = static_cast<uint8_t>((doff & 0x0f) << 4);
    f[t + 13] = flags;
    Ipv4Frame::put16(f, t + 14, window);
    std::copy(opts.begin(), opts.end(), f.begin() + t + 20);
    std::copy(payload.begin(), payload.end(), f.begin() + static_cast<std::ptrdiff_t>(t + thlen));
    // The checksum over the pseudo header and the segment as IP bounds it
    // (RFC 9293 §3.1), of what the frame holds.
    const std::size_t covered = std::min<std::size_t>(ipp, tcp_len);
    uint32_t s = sum(&f[26], 8) + 6 + ipp + sum(&f[t], covered);
    Ipv4Frame::put16(f, t + 16, static_cast<uint16_t>(~fold(s) ^ (corrupt_checksum ? 0x5a5a : 0)));
    return f;
  }

  static uint32_t sum(const uint8_t* p, std::size_t n) {
    uint32_t s = 0;
    for (std::size_t i = 0; i + 1 < n; i += 2) s += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
    if (n % 2) s += static_cast<uint32_t>(p[n - 1] << 8);
    return s;
  }
  static uint16_t fold(uint32_t s) {
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return static_cast<uint16_t>(s);
  }
};

// A real mbuf holding `bytes`, received on `port`.
inline rte_mbuf* to_mbuf(rte_mempool* pool, const std::vector<uint8_t>& bytes, uint16_t port = 0) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool);
  if (!m) return nullptr;
  char* d = rte_pktmbuf_append(m, static_cast<uint16_t>(bytes.size()));
  if (!d) {
    rte_pktmbuf_free(m);
    return nullptr;
  }
  std::memcpy(d, bytes.data(), bytes.size());
  m->port = port;
  return m;
}

}  // namespace ngstack::test
