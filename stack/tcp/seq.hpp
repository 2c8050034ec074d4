// TCP sequence-number arithmetic (RFC 9293 §3.4): 32-bit values compared
// modulo 2^32, valid while the two values are less than 2^31 apart.
#pragma once

#include <cstdint>

namespace ngstack::stack::tcp {

inline bool seq_lt(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) < 0; }
inline bool seq_leq(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) <= 0; }
inline bool seq_gt(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) > 0; }
inline bool seq_geq(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) >= 0; }
inline uint32_t seq_max(uint32_t a, uint32_t b) { return seq_gt(a, b) ? a : b; }
inline uint32_t seq_min(uint32_t a, uint32_t b) { return seq_lt(a, b) ? a : b; }
// a <= x < b
inline bool seq_in(uint32_t x, uint32_t a, uint32_t b) { return seq_leq(a, x) && seq_lt(x, b); }

}  // namespace ngstack::stack::tcp
