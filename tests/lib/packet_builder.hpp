// Test frames: Ethernet / IPv4 / UDP or ICMP, valid by default, with every
// field a test may want to break exposed. Bytes are built in network order;
// to_mbuf() copies them into a real mbuf.
#pragma once

#include <rte_mbuf.h>

#include <cstdint>
#include <cstring>
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
