// The HTTP/1.1 responder's protocol core (stack/services/http) on byte
// strings, no sockets: requests go in through consume() in whatever pieces
// the test chooses, responses come out of produce() in pieces of whatever
// room the test offers, and the tests assert on the bytes, the close
// decision, the backpressure and the counters.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "stack/services/http.hpp"
#include "stack/services/http_response.hpp"

namespace ngstack::stack::services::http {
namespace {

const uint8_t* bytes(std::string_view s) { return reinterpret_cast<const uint8_t*>(s.data()); }

// Consumes all of `in` (expecting it all taken).
void feed(HttpSession& s, std::string_view in) { EXPECT_EQ(s.consume(bytes(in), in.size()), in.size()); }

// Everything due now, produced in pieces of at most `piece` bytes.
std::string drain(HttpSession& s, std::size_t piece = 1 << 16) {
  std::string out;
  std::vector<uint8_t> buf(piece);
  while (s.pending()) {
    const std::size_t n = s.produce(buf.data(), buf.size());
    EXPECT_GT(n, 0u) << "pending() but nothing produced";
    if (n == 0) break;
    out.append(reinterpret_cast<const char*>(buf.data()), n);
  }
  return out;
}

std::string roundtrip(HttpSession& s, std::string_view in) {
  feed(s, in);
  return drain(s);
}

struct Parsed {
  int status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> fields;
  std::string body;
  // The value of a field (names compared as the server wrote them), or "-".
  std::string field(std::string_view name) const {
    for (const auto& [n, v] : fields)
      if (n == name) return v;
    return "-";
  }
};

// Splits a stream of responses; head[i] says that response i answers HEAD
// (no content whatever its Content-Length).
std::vector<Parsed> parse_all(std::string_view out, const std::vector<bool>& head = {}) {
  std::vector<Parsed> list;
  while (!out.empty()) {
    const std::size_t end = out.find("\r\n\r\n");
    if (end == std::string_view::npos) {
      ADD_FAILURE() << "incomplete head: " << out;
      break;
    }
    Parsed p;
    std::string_view h = out.substr(0, end + 2);
    std::size_t eol = h.find("\r\n");
    const std::string_view status_line = h.substr(0, eol);
    EXPECT_TRUE(status_line.starts_with("HTTP/1.1 ")) << status_line;
    p.status = std::stoi(std::string(status_line.substr(9, 3)));
    p.reason = std::string(status_line.substr(13));
    h.remove_prefix(eol + 2);
    while (!h.empty()) {
      eol = h.find("\r\n");
      const std::string_view line = h.substr(0, eol);
      const std::size_t colon = line.find(": ");
      p.fields.emplace_back(line.substr(0, colon), line.substr(colon + 2));
      h.remove_prefix(eol + 2);
    }
    out.remove_prefix(end + 4);
    const std::size_t length = std::stoull(p.field("Content-Length"));
    if (!(list.size() < head.size() && head[list.size()])) {
      if (out.size() < length) {
        ADD_FAILURE() << "short content";
        break;
      }
      p.body = std::string(out.substr(0, length));
      out.remove_prefix(length);
    }
    list.push_back(std::move(p));
  }
  return list;
}

std::string pattern(std::size_t n) {
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s += "ngstack\n"[i % 8];
  return s;
}

constexpr std::string_view kGet = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

HttpConfig body_mode(uint64_t body_bytes = 16) {
  HttpConfig c;
  c.body_bytes = body_bytes;
  return c;
}

// A files-mode tree: /a, /b.html, /dir/index.html, and /0 .. /19 holding their number.
const FileTree& tree() {
  static const FileTree* t = [] {
    auto* f = new FileTree;
    f->add("/a", "alpha\n");
    f->add("/b.html", "<p>b</p>\n");
    f->add("/dir/index.html", "index\n");
    for (int i = 0; i < 20; ++i) f->add(std::string("/").append(std::to_string(i)), std::to_string(i));
    f->seal();
    return f;
  }();
  return *t;
}

HttpConfig files_mode() {
  HttpConfig c;
  c.files = &tree();
  return c;
}

TEST(HttpSession, OneRequest) {
  HttpSession s(body_mode());
  EXPECT_TRUE(s.want_read());
  EXPECT_FALSE(s.pending());
  feed(s, kGet);
  EXPECT_TRUE(s.pending());
  EXPECT_EQ(drain(s),
            "HTTP/1.1 200 OK\r\nServer: ngstack\r\nContent-Type: text/plain\r\nContent-Length: 16\r\n\r\n"
            "ngstack\nngstack\n");
  EXPECT_FALSE(s.pending());
  EXPECT_FALSE(s.finished());  // HTTP/1.1: persistent
  EXPECT_TRUE(s.want_read());
  EXPECT_EQ(s.stats().requests, 1u);
  EXPECT_EQ(s.stats().responses[2], 1u);
  EXPECT_EQ(s.stats().bytes_in, kGet.size());
}

TEST(HttpSession, ByteAtATimeInAndOut) {
  HttpSession whole(body_mode(100));
  const std::string want = roundtrip(whole, kGet);

  HttpSession s(body_mode(100));
  std::string got;
  for (char c : kGet) {
    EXPECT_FALSE(s.pending());  // nothing before the head is complete
    EXPECT_EQ(s.consume(reinterpret_cast<const uint8_t*>(&c), 1), 1u);
  }
  uint8_t b;
  while (s.pending()) {
    ASSERT_EQ(s.produce(&b, 1), 1u);
    got += static_cast<char>(b);
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ(s.produce(&b, 1), 0u);
}

TEST(HttpSession, PipelinedAnsweredInOrder) {
  HttpSession s(files_mode());
  const std::string out = roundtrip(s,
                                    "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                                    "GET /b.html HTTP/1.1\r\nHost: x\r\n\r\n"
                                    "GET /missing HTTP/1.1\r\nHost: x\r\n\r\n"
                                    "GET /dir/ HTTP/1.1\r\nHost: x\r\n\r\n");
  const auto r = parse_all(out);
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0].status, 200);
  EXPECT_EQ(r[0].body, "alpha\n");
  EXPECT_EQ(r[0].field("Content-Type"), "application/octet-stream");
  EXPECT_EQ(r[1].status, 200);
  EXPECT_EQ(r[1].body, "<p>b</p>\n");
  EXPECT_EQ(r[1].field("Content-Type"), "text/html");
  EXPECT_EQ(r[2].status, 404);  // and the connection stays up
  EXPECT_EQ(r[2].field("Connection"), "-");
  EXPECT_EQ(r[3].status, 200);
  EXPECT_EQ(r[3].body, "index\n");
  EXPECT_FALSE(s.finished());
  EXPECT_EQ(s.stats().responses[2], 3u);
  EXPECT_EQ(s.stats().responses[4], 1u);
}

// The same pipelined stream, cut at random places on the way in and out,
// gives the same bytes.
TEST(HttpSession, RandomSplitsGiveTheSameBytes) {
  const std::string in =
      "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
      "HEAD /b.html HTTP/1.1\r\nhost: x\r\n\r\n"
      "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world"
      "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
      "\r\nGET /7 HTTP/1.1\nHost: x\n\n"
      "GET /a HTTP/1.0\r\n\r\n"
      "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";  // after the 1.0 close: never answered
  HttpSession ref(files_mode());
  const std::string want = roundtrip(ref, in);
  ASSERT_TRUE(ref.finished());
  const auto r = parse_all(want, {false, true});
  ASSERT_EQ(r.size(), 6u);
  EXPECT_EQ(r[1].field("Content-Length"), "9");
  EXPECT_EQ(r[2].status, 405);
  EXPECT_EQ(r[3].status, 404);
  EXPECT_EQ(r[4].body, "7");
  EXPECT_EQ(r[5].field("Connection"), "close");

  std::mt19937 rng(12345);
  for (int round = 0; round < 300; ++round) {
    HttpSession s(files_mode());
    std::string got;
    std::size_t at = 0;
    uint8_t buf[64];
    while (at < in.size() || s.pending()) {
      if (at < in.size()) {
        const std::size_t n = std::min<std::size_t>(in.size() - at, rng() % 40 + 1);
        at += s.consume(bytes(in) + at, n);
      }
      const std::size_t room = rng() % sizeof(buf) + 1;
      got.append(reinterpret_cast<const char*>(buf), s.produce(buf, room));
    }
    ASSERT_EQ(got, want) << "round " << round;
    EXPECT_TRUE(s.finished());
  }
}

TEST(HttpSession, HeadHasTheFieldsOfGetAndNoContent) {
  HttpSession s(body_mode(1000));
  const std::string out = roundtrip(s, "HEAD /x HTTP/1.1\r\nHost: x\r\n\r\n" + std::string(kGet));
  const auto r = parse_all(out, {true});
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].status, 200);
  EXPECT_EQ(r[0].field("Content-Length"), "1000");
  EXPECT_EQ(r[0].body, "");
  EXPECT_EQ(r[1].body, pattern(1000));
  // The same header section twice.
  const std::size_t head_len = out.find("\r\n\r\n") + 4;
  EXPECT_EQ(out.substr(head_len, head_len), out.substr(0, head_len));
  EXPECT_EQ(out.size(), 2 * head_len + 1000);
}

TEST(HttpSession, MethodNotAllowedKeepsTheConnectionAndSkipsContent) {
  HttpSession s(body_mode());
  const std::string out = roundtrip(s,
                                    "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                                    "DELETE / HTTP/1.1\r\nHost: x\r\n\r\n" +
                                        std::string(kGet));
  const auto r = parse_all(out);
  ASSERT_EQ(r.size(), 3u);
  for (int i : {0, 1}) {
    EXPECT_EQ(r[i].status, 405);
    EXPECT_EQ(r[i].reason, "Method Not Allowed");
    EXPECT_EQ(r[i].field("Allow"), "GET, HEAD");
    EXPECT_EQ(r[i].field("Connection"), "-");
  }
  EXPECT_EQ(r[2].status, 200);
  EXPECT_FALSE(s.finished());
  EXPECT_EQ(s.stats().bytes_discarded, 5u);
}

TEST(HttpSession, AllKnownMethodsButGetAndHeadGet405) {
  for (std::string m : {"POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT"}) {
    HttpSession s(body_mode());
    const auto r = parse_all(roundtrip(s, m + " / HTTP/1.1\r\nHost: x\r\n\r\n"));
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].status, 405) << m;
  }
}

TEST(HttpSession, UnknownMethodIs501) {
  // RFC 9110 §9.1: methods are case-sensitive, so "get" is unknown too.
  for (std::string m : {"BREW", "get"}) {
    HttpSession s(body_mode());
    const auto r = parse_all(roundtrip(s, m + " / HTTP/1.1\r\nHost: x\r\n\r\n" + std::string(kGet)));
    ASSERT_EQ(r.size(), 2u);
    EXPECT_EQ(r[0].status, 501) << m;
    EXPECT_EQ(r[1].status, 200);
  }
}

TEST(HttpSession, NotFoundInFilesMode) {
  HttpSession s(files_mode());
  const auto r = parse_all(roundtrip(s, "GET /a/ HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 404);
  EXPECT_EQ(r[0].body, "Not Found\n");
  EXPECT_FALSE(s.finished());
}

// An answer that ends the connection: the status, Connection: close, nothing
// parsed after it (the GET behind it is taken and dropped).
void expect_closing(std::string_view head, int status, const HttpConfig& cfg = body_mode()) {
  SCOPED_TRACE(std::string(head));
  HttpSession s(cfg);
  const std::string in = std::string(head) + std::string(kGet);
  EXPECT_EQ(s.consume(bytes(in), in.size()), in.size());
  EXPECT_FALSE(s.want_read());
  const auto r = parse_all(drain(s));
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, status);
  EXPECT_EQ(r[0].field("Connection"), "close");
  EXPECT_TRUE(s.finished());
  EXPECT_EQ(s.consume(bytes(kGet), kGet.size()), kGet.size());
  EXPECT_FALSE(s.pending());
  EXPECT_EQ(s.stats().requests, 1u);
}

TEST(HttpSession, VersionNotSupported) {
  expect_closing("GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505);
  expect_closing("GET / HTTP/0.9\r\n\r\n", 505);
  expect_closing("GET / HTTP/3.1\r\nHost: x\r\n\r\n", 505);
  // RFC 9110 §6.2: a higher minor version of 1 is served as 1.1.
  HttpSession s(body_mode());
  const auto r = parse_all(roundtrip(s, "GET / HTTP/1.2\r\nHost: x\r\n\r\n"));
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 200);
  EXPECT_FALSE(s.finished());
}

TEST(HttpSession, MalformedRequestsGet400AndClose) {
  for (std::string_view head : {
           "GET /\r\n\r\n",                                              // no version
           "GET\r\n\r\n",                                                // nothing but a method
           "GET  / HTTP/1.1\r\nHost: x\r\n\r\n",                         // two spaces
           "GET / HTTP/1.1 \r\nHost: x\r\n\r\n",                         // trailing space
           "GET / http/1.1\r\nHost: x\r\n\r\n",                          // HTTP-name is case-sensitive
           "GET / HTTP/1.10\r\nHost: x\r\n\r\n",                         // one digit each
           "GET / HTTP/1\r\nHost: x\r\n\r\n",                            //
           "G@T / HTTP/1.1\r\nHost: x\r\n\r\n",                          // method not a token
           "GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n",                      // control in the target
           "GET foo HTTP/1.1\r\nHost: x\r\n\r\n",                        // neither origin- nor absolute-form
           "GET http:///a HTTP/1.1\r\nHost: x\r\n\r\n",                  // absolute-form without a host
           "GET / HTTP/1.1\r\n\r\n",                                     // RFC 9112 §3.2: Host required
           "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",               // and only one
           "GET / HTTP/1.0\r\nHost: x\r\nHost: y\r\n\r\n",               // also in 1.0
           "GET / HTTP/1.1\r\nHost : x\r\n\r\n",                         // RFC 9112 §5.1
           "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  2\r\n\r\n",         // obs-fold, RFC 9112 §5.2
           "GET / HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n",              //
           "GET / HTTP/1.1\r\nHost: x\r\n: empty name\r\n\r\n",          //
           "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",             // bare CR in a value
           "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01\r\n\r\n",            // control in a value
           "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",   //
           "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",    //
           "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0, 0\r\n\r\n",  // a list is refused
           "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
           "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1234567890123456789\r\n\r\n",  // too many digits
           "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",  // §6.3
           "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",     // RFC 9112 §6.1
           "GET /../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",            // a .. segment
           "GET /a/.. HTTP/1.1\r\nHost: x\r\n\r\n",                     //
           "GET /a/%2e%2E/b HTTP/1.1\r\nHost: x\r\n\r\n",               // also percent-encoded
           "GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n",                     // bad percent-encoding
           "GET /a%2 HTTP/1.1\r\nHost: x\r\n\r\n",                      //
           "GET /a%00 HTTP/1.1\r\nHost: x\r\n\r\n",                     // NUL
       })
    expect_closing(head, 400);
  // Also in files mode (the .. rule is the same).
  expect_closing("GET /dir/../a HTTP/1.1\r\nHost: x\r\n\r\n", 400, files_mode());
}

TEST(HttpSession, TransferEncodingIs501AndClose) {
  expect_closing("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 501);
  expect_closing("GET / HTTP/1.1\r\nHost: x\r\nTRANSFER-ENCODING: gzip\r\n\r\n", 501);
}

TEST(HttpSession, ContentTooLargeIs413AndClose) {
  HttpConfig c = body_mode();
  c.max_discard_bytes = 100;
  expect_closing("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n", 413, c);
  // At the bound it is read and discarded, and the next request answered.
  HttpSession s(c);
  const auto r = parse_all(
      roundtrip(s, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + std::string(100, 'x') +
                       std::string(kGet)));
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].status, 405);
  EXPECT_EQ(r[1].status, 200);
}

TEST(HttpSession, ExpectContinueIsAnsweredAtOnceAndCloses) {
  expect_closing("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n", 405);
}

TEST(HttpSession, ContentOfAGetIsDiscarded) {
  HttpSession s(body_mode(3));
  const auto r =
      parse_all(roundtrip(s, "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nGET " + std::string(kGet)));
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].status, 200);
  EXPECT_EQ(r[1].status, 200);
}

TEST(HttpSession, OversizeHeaderSectionIs431AndClose) {
  HttpConfig c = body_mode();
  c.max_header_bytes = 256;
  const std::string start = "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ";
  const std::string end = "\r\n\r\n";
  const std::string exact = start + std::string(256 - start.size() - end.size(), 'p') + end;
  ASSERT_EQ(exact.size(), 256u);
  {
    HttpSession s(c);  // exactly at the bound: served
    const auto r = parse_all(roundtrip(s, exact));
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].status, 200);
  }
  const std::string over = start + std::string(257 - start.size() - end.size(), 'p') + end;
  expect_closing(over, 431, c);
  {
    // Fed a byte at a time, and a huge line in one piece: the same answer.
    HttpSession s(c);
    for (char ch : over) EXPECT_EQ(s.consume(reinterpret_cast<const uint8_t*>(&ch), 1), 1u);
    const auto r = parse_all(drain(s));
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].status, 431);
    EXPECT_TRUE(s.finished());
  }
  {
    HttpSession s(c);
    const std::string huge = "GET /" + std::string(100000, 'a');
    EXPECT_EQ(s.consume(bytes(huge), huge.size()), huge.size());
    const auto r = parse_all(drain(s));
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].status, 431);
    EXPECT_EQ(r[0].reason, "Request Header Fields Too Large");
  }
  // Default bound: 8192.
  HttpSession s(body_mode());
  const std::string big = start + std::string(8200, 'p') + end;
  const auto r = parse_all(roundtrip(s, big));
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 431);
}

TEST(HttpSession, Http10ClosesUnlessKeepAlive) {
  {
    HttpSession s(body_mode());  // no Host needed in 1.0
    const auto r = parse_all(roundtrip(s, "GET / HTTP/1.0\r\n\r\n"));
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].status, 200);
    EXPECT_EQ(r[0].field("Connection"), "close");
    EXPECT_TRUE(s.finished());
  }
  {
    HttpSession s(body_mode());
    const auto r = parse_all(roundtrip(s,
                                       "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"
                                       "GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n"
                                       "GET / HTTP/1.0\r\n\r\n"));
    ASSERT_EQ(r.size(), 3u);
    EXPECT_EQ(r[0].field("Connection"), "keep-alive");
    EXPECT_EQ(r[1].field("Connection"), "keep-alive");
    EXPECT_EQ(r[2].field("Connection"), "close");
    EXPECT_TRUE(s.finished());
  }
}

TEST(HttpSession, Http11KeepsAliveUnlessClose) {
  HttpSession s(body_mode());
  feed(s, std::string(kGet) + std::string(kGet));
  EXPECT_FALSE(s.finished());
  EXPECT_EQ(parse_all(drain(s)).size(), 2u);
  EXPECT_FALSE(s.finished());
  // Connection is a list of case-insensitive options.
  const auto r = parse_all(roundtrip(s, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade ,  CLOSE\r\n\r\n"));
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].field("Connection"), "close");
  EXPECT_TRUE(s.finished());
}

TEST(HttpSession, FieldNamesAreCaseInsensitive) {
  HttpSession s(body_mode());
  const auto r = parse_all(
      roundtrip(s, "GET / HTTP/1.1\r\nhOsT: x\r\nCONTENT-length: 3\r\n\r\nabc" + std::string(kGet)));
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].status, 200);
  EXPECT_EQ(r[1].status, 200);
}

TEST(HttpSession, TolerantWhereTheRfcAllows) {
  HttpSession s(files_mode());
  const auto r = parse_all(roundtrip(s,
                                     "\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n"                // §2.2 empty lines
                                     "GET /a HTTP/1.1\nHost: x\n\n"                              // §2.2 lone LF
                                     "GET HTTP://example.com/a?q=1 HTTP/1.1\r\nHost: y\r\n\r\n"  // §3.2.2
                                     "GET http://example.com HTTP/1.1\r\nHost: y\r\n\r\n"        // empty path: /
                                     "GET /%61?x#y HTTP/1.1\r\nHost:x\r\nX-E:\r\nX-T:\t v \t\r\n\r\n"));
  ASSERT_EQ(r.size(), 5u);
  EXPECT_EQ(r[0].body, "alpha\n");
  EXPECT_EQ(r[1].body, "alpha\n");
  EXPECT_EQ(r[2].body, "alpha\n");
  EXPECT_EQ(r[3].status, 404);  // "/" is not in the tree
  EXPECT_EQ(r[4].body, "alpha\n");
}

TEST(HttpSession, LargeBodyInSmallPieces) {
  constexpr uint64_t kBody = 10 * 1000 * 1000;
  HttpSession s(body_mode(kBody));
  feed(s, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string head;
  uint64_t body = 0, mismatches = 0;
  // Pieces of odd sizes, so that they start at every phase of the pattern
  // and some are longer than produce()'s internal copies (4 KiB).
  std::mt19937 rng(7);
  uint8_t buf[9000];
  while (s.pending()) {
    const std::size_t n = s.produce(buf, rng() % sizeof(buf) + 1);
    ASSERT_GT(n, 0u);
    std::size_t i = 0;
    for (; i < n && !head.ends_with("\r\n\r\n"); ++i) head += static_cast<char>(buf[i]);
    for (; i < n; ++i, ++body) mismatches += buf[i] != static_cast<uint8_t>("ngstack\n"[body % 8]);
  }
  EXPECT_EQ(body, kBody);
  EXPECT_EQ(mismatches, 0u);
  EXPECT_NE(head.find("\r\nContent-Length: 10000000\r\n"), std::string::npos);
  EXPECT_EQ(s.stats().bytes_out, head.size() + kBody);
  EXPECT_EQ(s.produce(buf, sizeof(buf)), 0u);
  EXPECT_EQ(s.stats().responses[2], 1u);
}

TEST(HttpSession, PipeliningBoundStopsReading) {
  HttpConfig c = files_mode();
  c.max_pipelined = 16;
  std::string in;
  std::vector<std::size_t> ends;
  for (int i = 0; i < 20; ++i) {
    in += "GET /" + std::to_string(i) + " HTTP/1.1\r\nHost: x\r\n\r\n";
    ends.push_back(in.size());
  }
  HttpSession s(c);
  // Takes exactly the 16 requests that fill the queue.
  std::size_t at = s.consume(bytes(in), in.size());
  EXPECT_EQ(at, ends[15]);
  EXPECT_FALSE(s.want_read());
  EXPECT_EQ(s.consume(bytes(in) + at, in.size() - at), 0u);

  // One response out makes room for one request in.
  HttpSession probe(c);
  const std::size_t first_len = roundtrip(probe, in.substr(0, ends[0])).size();
  std::vector<uint8_t> buf(first_len);
  std::string out;
  ASSERT_EQ(s.produce(buf.data(), first_len), first_len);
  out.append(buf.begin(), buf.end());
  EXPECT_TRUE(s.want_read());
  at += s.consume(bytes(in) + at, in.size() - at);
  EXPECT_EQ(at, ends[16]);
  EXPECT_FALSE(s.want_read());

  // Drain and offer the rest as a service would.
  while (at < in.size() || s.pending()) {
    out += drain(s, 100);
    if (s.want_read()) at += s.consume(bytes(in) + at, in.size() - at);
  }
  const auto r = parse_all(out);
  ASSERT_EQ(r.size(), 20u);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(r[i].body, std::to_string(i));
  EXPECT_EQ(s.stats().requests, 20u);
}

TEST(HttpSession, PipeliningBoundStillSkipsContent) {
  HttpConfig c = body_mode();
  c.max_pipelined = 1;
  HttpSession s(c);
  const std::string in = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody" + std::string(kGet);
  // The queue is full after the POST, but its content is still read.
  EXPECT_EQ(s.consume(bytes(in), in.size()), in.size() - kGet.size());
  EXPECT_FALSE(s.want_read());
  const auto r = parse_all(drain(s));
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 405);
  EXPECT_TRUE(s.want_read());
}

TEST(HttpSession, EndOfInput) {
  {
    // A cut-off request is not answered.
    HttpSession s(body_mode());
    feed(s, "GET / HTTP/1.1\r\nHo");
    s.consume_eof();
    EXPECT_FALSE(s.pending());
    EXPECT_TRUE(s.finished());
    EXPECT_EQ(s.stats().bytes_discarded, 18u);
  }
  {
    // Complete requests before the FIN are answered, then the end.
    HttpSession s(body_mode());
    feed(s, std::string(kGet) + std::string(kGet) + "GET");
    s.consume_eof();
    EXPECT_FALSE(s.finished());
    EXPECT_FALSE(s.want_read());
    EXPECT_EQ(parse_all(drain(s)).size(), 2u);
    EXPECT_TRUE(s.finished());
    EXPECT_EQ(s.consume(bytes(kGet), kGet.size()), kGet.size());  // and dropped
    EXPECT_FALSE(s.pending());
  }
}

TEST(HttpSession, ErrorAnswersToHeadHaveNoContent) {
  HttpSession s(files_mode());
  const std::string out = roundtrip(s, "HEAD /nope HTTP/1.1\r\nHost: x\r\n\r\n" + std::string(kGet));
  const auto r = parse_all(out, {true});
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].status, 404);
  EXPECT_EQ(r[0].field("Content-Length"), "10");
  EXPECT_EQ(r[1].status, 404);
  EXPECT_EQ(r[1].body, "Not Found\n");
}

TEST(HttpSession, StatsAndReset) {
  HttpSession s(files_mode());
  const std::string in =
      "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /z HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/3.0\r\n\r\nGET /a";
  const std::string out = roundtrip(s, in);
  EXPECT_EQ(s.stats().requests, 3u);
  EXPECT_EQ(s.stats().responses[2], 1u);
  EXPECT_EQ(s.stats().responses[4], 1u);
  EXPECT_EQ(s.stats().responses[5], 1u);
  EXPECT_EQ(s.stats().responses_total(), 3u);
  EXPECT_EQ(s.stats().bytes_in, in.size());
  EXPECT_EQ(s.stats().bytes_discarded, 6u);  // "GET /a" after the 505
  EXPECT_EQ(s.stats().bytes_out, out.size());
  EXPECT_TRUE(s.finished());

  s.reset();
  EXPECT_FALSE(s.finished());
  EXPECT_TRUE(s.want_read());
  EXPECT_EQ(s.stats().requests, 0u);
  const auto r = parse_all(roundtrip(s, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].body, "alpha\n");
}

TEST(HttpDate, FormatsImfFixdate) {
  HttpDate d;
  d.update(784111777);  // RFC 9110 §5.6.7's example
  EXPECT_EQ(d.text(), "Sun, 06 Nov 1994 08:49:37 GMT");
  d.update(951782400);  // a leap day
  EXPECT_EQ(d.text(), "Tue, 29 Feb 2000 00:00:00 GMT");

  HttpConfig c = body_mode();
  c.date = &d;
  HttpSession s(c);
  const auto r = parse_all(roundtrip(s, kGet));
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].field("Date"), "Tue, 29 Feb 2000 00:00:00 GMT");
}

TEST(HttpFileTree, LoadsADirectory) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("ngstack_http_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "sub");
  std::ofstream(dir / "index.html") << "<h1>hi</h1>\n";
  std::ofstream(dir / "sub" / "style.CSS") << "p{}";
  std::ofstream(dir / "sub" / "blob") << std::string(1000, 'b');

  auto t = FileTree::load(dir.string(), 1 << 20);
  ASSERT_TRUE(t.ok()) << t.error();
  const FileTree& tree = **t;
  EXPECT_EQ(tree.size(), 4u);  // three files and "/" for index.html
  ASSERT_NE(tree.find("/"), nullptr);
  EXPECT_EQ(tree.find("/")->data, "<h1>hi</h1>\n");
  EXPECT_STREQ(tree.find("/index.html")->content_type, "text/html");
  ASSERT_NE(tree.find("/sub/style.CSS"), nullptr);
  EXPECT_STREQ(tree.find("/sub/style.CSS")->content_type, "text/css");
  EXPECT_EQ(tree.find("/sub/blob")->data.size(), 1000u);
  EXPECT_EQ(tree.find("/sub"), nullptr);
  EXPECT_EQ(tree.find("/sub/"), nullptr);  // no index.html there

  HttpConfig c;
  c.files = &tree;
  HttpSession s(c);
  const auto r = parse_all(roundtrip(s, "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /sub/blob HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].body, "<h1>hi</h1>\n");
  EXPECT_EQ(r[0].field("Content-Type"), "text/html");
  EXPECT_EQ(r[1].body, std::string(1000, 'b'));

  auto small = FileTree::load(dir.string(), 1000);
  EXPECT_FALSE(small.ok());
  auto missing = FileTree::load((dir / "nope").string(), 1 << 20);
  EXPECT_FALSE(missing.ok());
  fs::remove_all(dir);
}


// --- the client's response parser (http_response.hpp) -------------------------------------

// Feeds `in` in pieces of `piece` bytes; returns the bytes taken in all.
size_t feed_response(ResponseParser& p, std::string_view in, size_t piece) {
  size_t took = 0;
  for (size_t off = 0; off < in.size() && p.state != ResponseParser::State::done &&
                       p.state != ResponseParser::State::bad;) {
    const size_t n = std::min(piece, in.size() - off);
    const size_t k = p.consume(bytes(in.substr(off)), n);
    took += k;
    off += k;
    if (k < n) break;
  }
  return took;
}

TEST(HttpResponseParser, ReadsStatusFieldsAndALengthDelimitedBodyInAnyPieces) {
  const std::string r = "HTTP/1.1 200 OK\r\nServer: x\r\ncontent-LENGTH:  5 \r\nConnection: keep-alive\r\n\r\nhello";
  for (size_t piece : {1ul, 2ul, 7ul, 1000ul}) {
    ResponseParser p;
    EXPECT_EQ(feed_response(p, r + "HTTP/1.1", piece), r.size()) << "stops at the response's end, piece " << piece;
    EXPECT_EQ(p.state, ResponseParser::State::done);
    EXPECT_EQ(p.status, 200);
    EXPECT_EQ(p.length, 5);
    EXPECT_EQ(p.head_bytes, r.size() - 5);
  }
  // 204 and 304 have no body; an interim 100 is skipped; reset() readies the next one.
  ResponseParser p;
  EXPECT_EQ(feed_response(p, "HTTP/1.1 304 Not Modified\r\n\r\n", 3), 29u);
  EXPECT_EQ(p.state, ResponseParser::State::done);
  p.reset();
  const std::string c = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
  EXPECT_EQ(feed_response(p, c, 5), c.size());
  EXPECT_EQ(p.state, ResponseParser::State::done);
  EXPECT_EQ(p.status, 404);
}

TEST(HttpResponseParser, WhatItCannotDelimitOrReadIsBad) {
  for (const char* r : {"garbage\r\n\r\n", "HTTP/1.1 20 OK\r\n\r\n", "HTTP/2 200 OK\r\n\r\n", "HTTP/1.1 200OK\r\n\r\n",
                        "HTTP/1.1 200 OK\r\n\r\n",  // no length: nothing ends the body on a kept connection
                        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                        "HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\n",
                        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                        "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"}) {
    ResponseParser p;
    feed_response(p, r, 4);
    EXPECT_EQ(p.state, ResponseParser::State::bad) << r;
  }
  // A head without end is bad once it passes kMaxHead.
  ResponseParser p;
  const std::string big = "HTTP/1.1 200 OK\r\nX: " + std::string(ResponseParser::kMaxHead, 'a');
  feed_response(p, big, 4096);
  EXPECT_EQ(p.state, ResponseParser::State::bad);
}

}  // namespace
}  // namespace ngstack::stack::services::http
