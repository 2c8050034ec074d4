// Table-driven Toeplitz hash, bit-exact with a NIC's RSS hash and rte_softrss.
//
// The hash of an input is the XOR, over its set bits, of the 32-bit window of
// the key starting at that bit; so each input byte contributes a value that
// depends only on its position and value. Precomputing those (position x 256)
// turns the per-bit loop of rte_softrss (~100 cycles for an IPv4 4-tuple)
// into 12 table loads. Inputs are in network byte order, as on the wire:
// IPv4 4-tuple = src addr, dst addr, src port, dst port (12 bytes).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace ngstack::dispatch {

class ToeplitzHash {
 public:
  static constexpr unsigned kMaxInput = 36;  // an IPv6 4-tuple

  explicit ToeplitzHash(const std::vector<uint8_t>& key);

  uint32_t hash(const uint8_t* input, unsigned len) const {
    uint32_t h = 0;
    for (unsigned i = 0; i < len; ++i) h ^= table_[i][input[i]];
    return h;
  }

  const std::vector<uint8_t>& key() const { return key_; }

 private:
  std::vector<uint8_t> key_;
  std::vector<std::array<uint32_t, 256>> table_;
};

}  // namespace ngstack::dispatch
