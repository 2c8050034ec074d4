#include "dispatch/toeplitz.hpp"

namespace ngstack::dispatch {

ToeplitzHash::ToeplitzHash(const std::vector<uint8_t>& key) : key_(key) {
  // Inputs longer than key_len - 4 bytes would need key bits that do not
  // exist; a 40-byte key covers 36 input bytes.
  const unsigned positions = key.size() >= 4 ? std::min<unsigned>(kMaxInput, static_cast<unsigned>(key.size()) - 4) : 0;
  table_.resize(positions);
  auto key_bit = [&](unsigned bit) -> uint32_t {
    return bit / 8 < key.size() ? (key[bit / 8] >> (7 - bit % 8)) & 1u : 0u;
  };
  for (unsigned pos = 0; pos < positions; ++pos) {
    // window[b]: the 32 key bits starting at input bit pos*8 + b.
    uint32_t window[8];
    for (unsigned b = 0; b < 8; ++b) {
      uint32_t w = 0;
      for (unsigned k = 0; k < 32; ++k) w = (w << 1) | key_bit(pos * 8 + b + k);
      window[b] = w;
    }
    for (unsigned v = 0; v < 256; ++v) {
      uint32_t h = 0;
      for (unsigned b = 0; b < 8; ++b)
        if (v & (0x80u >> b)) h ^= window[b];
      table_[pos][v] = h;
    }
  }
}

}  // namespace ngstack::dispatch
