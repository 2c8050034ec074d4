// The protocol core of ngstack's built-in HTTP/1.1 responder (RFC 9110,
// RFC 9112), independent of the socket API: one HttpSession per connection,
// fed the bytes that arrived and drained of response bytes as the send
// buffer has room. It knows nothing of TCP; a TCP service drives it:
//
//   on data      n = s.consume(p, len);   // takes a prefix: keep p+n..len
//                                         // unread (the window closes)
//                                         // and offer it again once
//                                         // s.want_read() is true
//   on room      k = s.produce(buf, room) while s.pending()
//   peer's FIN   s.consume_eof();
//   after send   s.finished(): every response is out and the connection
//                ends: shut the write side down. RFC 9112 §9.6: close in
//                stages (FIN, then keep reading a while) so that a reset
//                does not destroy the last response; consume() keeps
//                taking and discarding bytes for exactly that.
//
// Model. Received bytes of a request head are copied into a buffer of
// max_header_bytes (allocated once, at construction) until the empty line
// that ends the head (RFC 9112 §2.1); the head is then parsed in place and
// becomes one queued Response (status, framing, what its body is), at most
// max_pipelined of them. produce() writes the front response: its header
// section, formatted into a small staging buffer when the response reaches
// the front, then its content, generated lazily (the body pattern, or a
// slice of a file held in memory), so a 10 MB body costs no memory. Nothing
// is allocated after construction; reset() readies the object for the next
// connection, so a service may keep a pool of sessions.
//
// Threads: a session, and the HttpDate it reads, belong to one worker (the
// owner of the connection's group); a FileTree is immutable after
// seal() and may be shared by every worker.
//
// Decisions (each cited where it is made in http.cpp):
//   * GET and HEAD are served; HEAD gets the same header fields, no content.
//     POST, PUT, DELETE, OPTIONS, PATCH, TRACE, CONNECT get 405 with
//     `Allow: GET, HEAD`; any other method 501 (RFC 9110 §9.1, methods are
//     case-sensitive). Both keep the connection: the framing is intact.
//   * Content-Length request content (any method) is read and discarded, up
//     to max_discard_bytes (413 and close beyond). With
//     `Expect: 100-continue` the content is not waited for: the response
//     closes the connection instead. Transfer-Encoding is not decoded: 501
//     and close (RFC 9112 §6.1); with Content-Length too, or in HTTP/1.0,
//     400 and close (RFC 9112 §6.1, §6.3).
//   * HTTP/1.0 and HTTP/1.1 are served; HTTP/1.x with x > 1 as HTTP/1.1
//     (RFC 9110 §6.2); any other major version 505 and close.
//   * Malformed request line or field lines, a missing or repeated Host in
//     HTTP/1.1 (RFC 9112 §3.2), a bad Content-Length, a request target
//     that is not origin- or absolute-form, bad percent-encoding or a `..`
//     path segment: 400 and close. A head larger than max_header_bytes:
//     431 and close (RFC 6585 §5).
//   * Keep-alive is the default for HTTP/1.1, close for HTTP/1.0 unless it
//     says `Connection: keep-alive` (answered with the same field, RFC 9112
//     Appendix C.2.2). Every closing response says `Connection: close`, and
//     no request after it is parsed (RFC 9112 §9.6).
//   * Every response carries Server, Content-Type, Content-Length and, with
//     an HttpDate, Date (RFC 9110 §6.6.1); without one the session is an
//     origin server without a clock (RFC 9110 §5.6.7) and omits it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "conf/result.hpp"

namespace ngstack::stack::services::http {

// Files mode: a directory read into memory at start-up (the control path
// allocates); the data path only looks paths up.
class FileTree {
 public:
  struct File {
    std::string_view data;
    const char* content_type;
  };

  // Every regular file under `dir` (recursively, dot files included) as
  // "/relative/path"; a directory with an index.html is served at "/dir/"
  // too ("/" for the top). Fails past max_total_bytes in all.
  static Result<std::shared_ptr<const FileTree>> load(const std::string& dir, uint64_t max_total_bytes);

  // Building by hand (tests, or a service with generated content): add
  // everything, then seal() before the first find().
  void add(std::string path, std::string content);
  void seal();

  // The file served at a decoded path ("/a/b.txt"), or nullptr.
  const File* find(std::string_view path) const;
  std::size_t size() const { return entries_.size(); }

  // By extension: text/html, text/css, image/png, ..., else
  // application/octet-stream.
  static const char* content_type_of(std::string_view path);

 private:
  struct Entry {
    std::string path;
    File file;  // its data is in contents_
  };
  std::vector<std::unique_ptr<std::string>> contents_;  // owned here; their bytes never move
  std::vector<Entry> entries_;                           // sorted by path after seal()
};

// The Date field value (IMF-fixdate, RFC 9110 §5.6.7), formatted again only
// when the second changes: one per worker, updated from its poll.
class HttpDate {
 public:
  static constexpr std::size_t kLength = 29;  // "Sun, 06 Nov 1994 08:49:37 GMT"
  void update(std::time_t now);
  std::string_view text() const { return {text_, kLength}; }

 private:
  std::time_t second_ = -1;
  char text_[kLength + 1] = {};
};

struct HttpConfig {
  // Body mode: every GET of any path answers 200 with this many bytes of
  // "ngstack\n" repeated. Ignored with `files`.
  uint64_t body_bytes = 1024;
  // The largest request head (request line, field lines and the empty line
  // that ends it), and so the session's buffer. 64 .. 1 MiB.
  uint32_t max_header_bytes = 8192;
  // Responses parsed ahead of the one being sent (HTTP/1.1 pipelining,
  // RFC 9112 §9.3.2): consume() stops taking bytes while this many are
  // queued. 1 .. 1024.
  uint32_t max_pipelined = 16;
  // The largest request content read and discarded (413 beyond).
  uint64_t max_discard_bytes = 1 << 20;
  // Files mode, when set: paths are looked up here, 404 when absent. Must
  // outlive the sessions.
  const FileTree* files = nullptr;
  // When set, responses carry a Date field. Must outlive the sessions.
  const HttpDate* date = nullptr;
};

// A session's counters (plain: one writer, the connection's worker; a
// service adds them into its own counters).
struct HttpStats {
  uint64_t requests = 0;          // request heads received, well-formed or not
  uint64_t responses[6] = {};     // responses written completely, by status class: [2] 2xx .. [5] 5xx
  uint64_t bytes_in = 0;          // taken by consume()
  uint64_t bytes_out = 0;         // written by produce()
  uint64_t bytes_discarded = 0;   // of bytes_in: request content, and input after close or a cut-off request
  uint64_t responses_total() const { return responses[1] + responses[2] + responses[3] + responses[4] + responses[5]; }
};

class HttpSession {
 public:
  // Allocates the head buffer and the response queue (the only allocations).
  explicit HttpSession(const HttpConfig& cfg);
  HttpSession(const HttpSession&) = delete;
  HttpSession& operator=(const HttpSession&) = delete;

  // For a new connection: empties buffers, queue and counters.
  void reset();

  // Takes received bytes and returns how many it took: all of them, unless
  // max_pipelined responses are queued (then it stops right after the
  // request that filled the queue; offer the rest again when want_read()).
  // After a closing response has been queued, or after consume_eof(), it
  // takes everything and discards it.
  std::size_t consume(const uint8_t* data, std::size_t len);
  // The peer sent FIN: an incomplete request is dropped; the queued
  // responses are still due, then finished().
  void consume_eof();
  // Writes up to `room` bytes of the queued responses, in order; returns how
  // many it wrote.
  std::size_t produce(uint8_t* out, std::size_t room);

  // Response bytes are due.
  bool pending() const { return count_ > 0; }
  // consume() would parse more requests now (false when the queue is full,
  // or once the connection is closing).
  bool want_read() const { return !closing_ && (body_left_ > 0 || count_ < max_pipelined_); }
  // The connection is over: a closing response (or the last one after
  // consume_eof()) has been written completely. Close the connection.
  bool finished() const { return closing_ && count_ == 0; }

  const HttpStats& stats() const { return stats_; }
  // The Date source of the worker now driving the session (a pooled
  // session may serve its next connection on another worker).
  void set_date(const HttpDate* d) { date_ = d; }

 private:
  struct Response {
    const uint8_t* body;       // the content; nullptr: the body pattern
    uint64_t body_len;         // Content-Length
    const char* content_type;
    uint16_t status;
    bool head_only;            // HEAD: no content (RFC 9110 §9.3.2)
    bool close;                // Connection: close, and the last response
    bool keep_alive_field;     // HTTP/1.0 keep-alive: say so
    bool allow;                // 405: Allow: GET, HEAD
  };

  static Response error_response(uint16_t status, bool head_only);
  void end_of_head();
  Response parse_head(char* head, std::size_t len, uint64_t* content);
  void push(const Response& r);
  std::size_t format_header(const Response& r);

  // Settings (from HttpConfig, clamped).
  uint64_t body_bytes_;
  uint64_t max_discard_bytes_;
  uint32_t max_header_bytes_;
  uint32_t max_pipelined_;
  const FileTree* files_;
  const HttpDate* date_;

  // Input: the request head so far, and where its current line starts.
  std::unique_ptr<char[]> head_;
  uint32_t head_len_ = 0;
  uint32_t line_start_ = 0;
  uint64_t body_left_ = 0;  // request content still to discard
  bool closing_ = false;    // no more requests: a closing response is queued, or EOF

  // Output: a ring of queued responses; the front one is being written.
  std::unique_ptr<Response[]> queue_;
  uint32_t first_ = 0;
  uint32_t count_ = 0;
  bool started_ = false;  // the front response's header is in stage_
  uint16_t stage_len_ = 0;
  uint16_t stage_off_ = 0;
  uint64_t body_off_ = 0;
  char stage_[320];

  HttpStats stats_;
};

}  // namespace ngstack::stack::services::http
