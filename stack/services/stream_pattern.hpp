// The byte stream the TCP senders among the services send (tcp-source,
// tcp-client, a raw tcp-load request): byte i of a connection's stream is
// "ngstack\n"[i % 8], however send() cut it, so a receiver can check every
// byte by its offset.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "stack/socket/tcp_socket.hpp"

namespace ngstack::stack::services {

struct StreamPattern {
  static constexpr size_t kChunk = 16384;  // the most one send() call takes from it
  uint8_t bytes[kChunk + 8];
  StreamPattern() {
    for (size_t i = 0; i < sizeof(bytes); ++i) bytes[i] = "ngstack\n"[i % 8];
  }
  // The pattern from stream offset `offset` on (at least kChunk bytes).
  const uint8_t* at(uint64_t offset) const { return bytes + offset % 8; }
  // Sends what the connection takes of the `left` bytes still owed out of
  // `total`; returns how many went.
  uint64_t send(socket::TcpConn& c, uint64_t& left, uint64_t total) const {
    uint64_t done = 0;
    while (left > 0) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>({left, c.send_space(), kChunk}));
      if (n == 0) break;
      const size_t sent = c.send(at(total - left), n);
      done += sent;
      left -= sent;
      if (sent < n) break;
    }
    return done;
  }
};

}  // namespace ngstack::stack::services
