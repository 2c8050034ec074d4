// The response side of an HTTP/1.1 client (the tcp-load generator's
// `transaction: http`), independent of the socket API: fed the bytes that
// arrived, it says when one response ended (status line, header fields, a
// Content-Length body) or that it is not one it can read. Fixed size (about
// 100 bytes), no allocation: a generator keeps one per session.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace ngstack::stack::services::http {

// An HTTP/1.1 response read as it arrives, byte by byte through the head
// (RFC 9112 §4 status line, §5 fields, §6.3 message body length), then in
// bulk through the body. Keeps kLineKeep bytes of each line: the status
// line and the two fields it needs (Content-Length, Transfer-Encoding) fit.
struct ResponseParser {
  static constexpr unsigned kLineKeep = 64;    // bytes kept of a header line: enough for the fields parsed
  static constexpr uint32_t kMaxHead = 65536;  // a longer head is a bad response

  enum class State : uint8_t { head, body, done, bad };
  State state = State::head;
  uint16_t status = 0;
  bool first_line = true;
  bool chunked = false;
  int64_t length = -1;
  uint64_t body_left = 0;
  uint32_t head_bytes = 0;
  uint32_t line_len = 0;
  char line[kLineKeep];

  void reset() {
    state = State::head;
    status = 0;
    first_line = true;
    chunked = false;
    length = -1;
    body_left = 0;
    head_bytes = 0;
    line_len = 0;
  }
  static bool iequal_prefix(const char* s, size_t n, const char* name) {
    const size_t k = std::strlen(name);
    if (n < k) return false;
    for (size_t i = 0; i < k; ++i)
      if (std::tolower(static_cast<unsigned char>(s[i])) != name[i]) return false;
    return true;
  }
  void end_line() {
    size_t n = std::min<size_t>(line_len, kLineKeep);
    if (n && line[n - 1] == '\r') --n;
    const char* l = line;
    if (first_line) {
      first_line = false;
      // "HTTP/1.x SSS" then a space or the end.
      if (n < 12 || std::memcmp(l, "HTTP/1.", 7) != 0 || !std::isdigit(static_cast<unsigned char>(l[7])) ||
          l[8] != ' ' || !std::isdigit(static_cast<unsigned char>(l[9])) ||
          !std::isdigit(static_cast<unsigned char>(l[10])) || !std::isdigit(static_cast<unsigned char>(l[11])) ||
          (n > 12 && l[12] != ' '))
        return void(state = State::bad);
      status = static_cast<uint16_t>((l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0'));
      if (status < 100) state = State::bad;
      return;
    }
    if (n == 0) {  // the empty line: the head is done
      if (status < 200) {  // an interim response (1xx): the final one follows
        first_line = true;
        return;
      }
      if (chunked) return void(state = State::bad);  // not supported: counted, not guessed at
      if (status == 204 || status == 304) length = 0;
      if (length < 0) return void(state = State::bad);  // no length: nothing delimits it on a kept connection
      body_left = static_cast<uint64_t>(length);
      state = body_left ? State::body : State::done;
      return;
    }
    const char* colon = static_cast<const char*>(std::memchr(l, ':', n));
    if (!colon || colon == l) return void(state = State::bad);
    const size_t name_len = static_cast<size_t>(colon - l);
    const char* v = colon + 1;
    const char* end = l + n;
    while (v < end && (*v == ' ' || *v == '\t')) ++v;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t')) --end;
    if (name_len == 14 && iequal_prefix(l, name_len, "content-length")) {
      if (v == end || line_len > kLineKeep) return void(state = State::bad);
      int64_t x = 0;
      for (const char* p = v; p < end; ++p) {
        if (!std::isdigit(static_cast<unsigned char>(*p)) || x > (INT64_MAX - 9) / 10) return void(state = State::bad);
        x = x * 10 + (*p - '0');
      }
      if (length >= 0 && length != x) return void(state = State::bad);  // RFC 9112 §6.3 (5)
      length = x;
    } else if (name_len == 17 && iequal_prefix(l, name_len, "transfer-encoding")) {
      chunked = true;  // any transfer coding: the body is not Content-Length delimited
    }
  }
  // Takes what it can of `n` bytes; returns how many belonged to this response.
  size_t consume(const uint8_t* p, size_t n) {
    size_t i = 0;
    while (i < n && state == State::head) {
      const char ch = static_cast<char>(p[i++]);
      if (++head_bytes > kMaxHead) return state = State::bad, i;
      if (ch == '\n') {
        end_line();
        line_len = 0;
      } else {
        if (line_len < kLineKeep) line[line_len] = ch;
        ++line_len;
      }
    }
    if (state == State::body) {
      const size_t k = static_cast<size_t>(std::min<uint64_t>(body_left, n - i));
      body_left -= k;
      i += k;
      if (body_left == 0) state = State::done;
    }
    return i;
  }
};

}  // namespace ngstack::stack::services::http
