#include "stack/services/http.hpp"

#include <algorithm>
#include <array>
#include <cassert>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>

namespace ngstack::stack::services::http {

namespace {

// Body mode's content: kBodyPattern repeated. A block of it, a few bytes
// longer than the longest copy, lets produce() copy any run from any phase
// of the pattern with one memcpy.
constexpr std::string_view kBodyPattern = "ngstack\n";
constexpr std::size_t kPatternRun = 4096;
constexpr auto kPatternBlock = [] {
  std::array<char, kPatternRun + kBodyPattern.size()> a{};
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = kBodyPattern[i % kBodyPattern.size()];
  return a;
}();

constexpr const char* kTextPlain = "text/plain";

struct StatusText {
  uint16_t code;
  std::string_view reason;
  std::string_view body;  // the content of an error response
};
// RFC 9110 §15 (413 renamed "Content Too Large" there), RFC 6585 §5 (431).
constexpr StatusText kStatuses[] = {
    {200, "OK", ""},
    {400, "Bad Request", "Bad Request\n"},
    {404, "Not Found", "Not Found\n"},
    {405, "Method Not Allowed", "Method Not Allowed\n"},
    {413, "Content Too Large", "Content Too Large\n"},
    {431, "Request Header Fields Too Large", "Request Header Fields Too Large\n"},
    {501, "Not Implemented", "Not Implemented\n"},
    {505, "HTTP Version Not Supported", "HTTP Version Not Supported\n"},
};

const StatusText& status_text(uint16_t code) {
  for (const auto& s : kStatuses)
    if (s.code == code) return s;
  assert(false && "a status without a reason phrase");
  return kStatuses[0];
}

// RFC 9110 §5.6.2: tchar.
bool is_tchar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s)
    if (!is_tchar(c)) return false;
  return true;
}

bool is_ows(char c) { return c == ' ' || c == '\t'; }

std::string_view trim_ows(std::string_view v) {
  while (!v.empty() && is_ows(v.front())) v.remove_prefix(1);
  while (!v.empty() && is_ows(v.back())) v.remove_suffix(1);
  return v;
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// `lower_case` is already lower case.
bool iequals(std::string_view s, std::string_view lower_case) {
  if (s.size() != lower_case.size()) return false;
  for (std::size_t i = 0; i < s.size(); ++i)
    if (lower(s[i]) != lower_case[i]) return false;
  return true;
}

bool istarts_with(std::string_view s, std::string_view lower_case) {
  return s.size() >= lower_case.size() && iequals(s.substr(0, lower_case.size()), lower_case);
}

// RFC 9110 §5.5: field-value is VCHAR, obs-text, SP and HTAB; CR, LF and NUL
// (and the other controls) make the message invalid.
bool is_field_value(std::string_view v) {
  for (unsigned char c : v)
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

enum class Method : uint8_t { get, head, not_allowed, unknown };

Method method_of(std::string_view m) {
  // RFC 9110 §9.1: method names are case-sensitive.
  if (m == "GET") return Method::get;
  if (m == "HEAD") return Method::head;
  for (std::string_view known : {"POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT"})
    if (m == known) return Method::not_allowed;
  return Method::unknown;
}

// The path of a GET/HEAD request target, without query, percent-decoded in
// place (decoding only shortens), or an empty view when the target is not
// acceptable.
std::string_view target_path(char* target, std::size_t len) {
  std::string_view t(target, len);
  std::size_t start;
  if (t[0] == '/') {
    start = 0;  // origin-form, RFC 9112 §3.2.1
  } else {
    // absolute-form, RFC 9112 §3.2.2: a server MUST accept it. The authority
    // (non-empty for http and https, RFC 9110 §4.2) is not used: any host
    // is ours.
    std::size_t scheme = istarts_with(t, "http://") ? 7 : istarts_with(t, "https://") ? 8 : 0;
    if (scheme == 0) return {};
    std::size_t end = t.find_first_of("/?#", scheme);
    if (end == scheme) return {};
    if (end == std::string_view::npos || t[end] != '/') return "/";
    start = end;
  }
  std::size_t end = t.find_first_of("?#", start);
  if (end == std::string_view::npos) end = len;

  char* w = target + start;
  for (std::size_t i = start; i < end; ++i) {
    char c = target[i];
    if (c == '%') {
      // RFC 3986 §2.1: "%" HEXDIG HEXDIG.
      if (i + 2 >= end) return {};
      int hi = hex_value(target[i + 1]), lo = hex_value(target[i + 2]);
      if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) return {};
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    *w++ = c;
  }
  std::string_view path(target + start, static_cast<std::size_t>(w - (target + start)));

  // No `..` segment, even in body mode where the path names nothing: one
  // rule for both modes (RFC 3986 §5.2.4 would resolve them; a server that
  // maps paths to files should not have to).
  std::size_t pos = 0;
  while (pos <= path.size()) {
    std::size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    if (path.substr(pos, slash - pos) == "..") return {};
    pos = slash + 1;
  }
  return path;
}

char* append(char* p, std::string_view s) {
  std::memcpy(p, s.data(), s.size());
  return p + s.size();
}

char* append_number(char* p, uint64_t v) { return std::to_chars(p, p + 20, v).ptr; }

}  // namespace

// --- FileTree ----------------------------------------------------------------------

const char* FileTree::content_type_of(std::string_view path) {
  static constexpr std::pair<std::string_view, const char*> kTypes[] = {
      {".html", "text/html"},        {".htm", "text/html"},        {".txt", "text/plain"},
      {".css", "text/css"},          {".js", "text/javascript"},   {".json", "application/json"},
      {".xml", "application/xml"},   {".pdf", "application/pdf"},  {".wasm", "application/wasm"},
      {".png", "image/png"},         {".jpg", "image/jpeg"},       {".jpeg", "image/jpeg"},
      {".gif", "image/gif"},         {".svg", "image/svg+xml"},    {".ico", "image/vnd.microsoft.icon"},
  };
  std::size_t dot = path.rfind('.');
  std::size_t slash = path.rfind('/');
  if (dot != std::string_view::npos && (slash == std::string_view::npos || dot > slash)) {
    std::string_view ext = path.substr(dot);
    for (const auto& [e, type] : kTypes)
      if (iequals(ext, e)) return type;
  }
  return "application/octet-stream";
}

void FileTree::add(std::string path, std::string content) {
  contents_.push_back(std::make_unique<std::string>(std::move(content)));
  const char* type = content_type_of(path);
  entries_.push_back({std::move(path), {*contents_.back(), type}});
}

void FileTree::seal() {
  // A directory's index.html is served at the directory's path too.
  constexpr std::string_view kIndex = "index.html";
  std::size_t n = entries_.size();
  for (std::size_t i = 0; i < n; ++i) {
    std::string_view p = entries_[i].path;
    if (p.size() >= kIndex.size() + 1 && p.ends_with(kIndex) && p[p.size() - kIndex.size() - 1] == '/')
      entries_.push_back({std::string(p.substr(0, p.size() - kIndex.size())), entries_[i].file});
  }
  // Stable: of a path added twice, the first is served.
  std::stable_sort(entries_.begin(), entries_.end(),
                   [](const Entry& a, const Entry& b) { return a.path < b.path; });
}

const FileTree::File* FileTree::find(std::string_view path) const {
  auto it = std::lower_bound(entries_.begin(), entries_.end(), path,
                             [](const Entry& e, std::string_view p) { return std::string_view(e.path) < p; });
  if (it == entries_.end() || it->path != path) return nullptr;
  return &it->file;
}

Result<std::shared_ptr<const FileTree>> FileTree::load(const std::string& dir, uint64_t max_total_bytes) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path root(dir);
  if (!fs::is_directory(root, ec)) return Error{dir + ": not a directory"};
  auto tree = std::make_shared<FileTree>();
  uint64_t total = 0;
  fs::recursive_directory_iterator it(root, fs::directory_options::none, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    const fs::directory_entry& e = *it;
    std::error_code fec;
    if (!e.is_regular_file(fec)) continue;
    const uint64_t size = e.file_size(fec);
    if (fec) return Error{e.path().string() + ": " + fec.message()};
    total += size;
    if (total > max_total_bytes)
      return Error{dir + ": more than " + std::to_string(max_total_bytes) + " bytes of files"};
    std::string content(size, '\0');
    std::ifstream in(e.path(), std::ios::binary);
    if (!in.read(content.data(), static_cast<std::streamsize>(size)))
      return Error{e.path().string() + ": cannot read"};
    // Appended, not "/" + string: GCC 12 warns falsely on that (-Wrestrict, GCC PR 105329).
    std::string path = "/";
    path += e.path().lexically_relative(root).generic_string();
    tree->add(std::move(path), std::move(content));
  }
  if (ec) return Error{dir + ": " + ec.message()};
  tree->seal();
  return std::shared_ptr<const FileTree>(std::move(tree));
}

// --- HttpDate ----------------------------------------------------------------------

void HttpDate::update(std::time_t now) {
  if (now == second_) return;
  second_ = now;
  // Formatted by hand: strftime's %a and %b follow the locale, IMF-fixdate
  // is always English (RFC 9110 §5.6.7).
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::tm tm{};
  gmtime_r(&now, &tm);
  auto two = [](char* p, int v) {
    p[0] = static_cast<char>('0' + v / 10);
    p[1] = static_cast<char>('0' + v % 10);
  };
  char* p = text_;
  std::memcpy(p, kDays[tm.tm_wday], 3);
  p[3] = ',';
  p[4] = ' ';
  two(p + 5, tm.tm_mday);
  p[7] = ' ';
  std::memcpy(p + 8, kMonths[tm.tm_mon], 3);
  p[11] = ' ';
  const int year = (tm.tm_year + 1900) % 10000;
  two(p + 12, year / 100);
  two(p + 14, year % 100);
  p[16] = ' ';
  two(p + 17, tm.tm_hour);
  p[19] = ':';
  two(p + 20, tm.tm_min);
  p[22] = ':';
  two(p + 23, tm.tm_sec);
  std::memcpy(p + 25, " GMT", 4);
  text_[kLength] = '\0';
}

// --- HttpSession -------------------------------------------------------------------

HttpSession::HttpSession(const HttpConfig& cfg)
    : body_bytes_(cfg.body_bytes),
      max_discard_bytes_(cfg.max_discard_bytes),
      // conf validates the ranges; clamping keeps a bad value harmless here.
      max_header_bytes_(std::clamp<uint32_t>(cfg.max_header_bytes, 64, 1 << 20)),
      max_pipelined_(std::clamp<uint32_t>(cfg.max_pipelined, 1, 1024)),
      files_(cfg.files),
      date_(cfg.date),
      head_(std::make_unique<char[]>(max_header_bytes_)),
      queue_(std::make_unique<Response[]>(max_pipelined_)) {}

void HttpSession::reset() {
  head_len_ = line_start_ = 0;
  body_left_ = 0;
  closing_ = false;
  first_ = count_ = 0;
  started_ = false;
  stage_len_ = stage_off_ = 0;
  body_off_ = 0;
  stats_ = {};
}

std::size_t HttpSession::consume(const uint8_t* data, std::size_t len) {
  std::size_t taken = 0;
  while (taken < len) {
    if (closing_) {
      // RFC 9112 §9.6: no request after a closing response is processed;
      // reading on (and dropping) lets the service close in stages.
      stats_.bytes_discarded += len - taken;
      taken = len;
      break;
    }
    if (body_left_ > 0) {
      const std::size_t n = static_cast<std::size_t>(std::min<uint64_t>(body_left_, len - taken));
      body_left_ -= n;
      taken += n;
      stats_.bytes_discarded += n;
      continue;
    }
    if (count_ >= max_pipelined_) break;  // backpressure: the queue is full

    // Copy up to the end of the current line (or of the data).
    const uint8_t* p = data + taken;
    const std::size_t avail = len - taken;
    const void* nl = std::memchr(p, '\n', avail);
    const std::size_t n = nl ? static_cast<std::size_t>(static_cast<const uint8_t*>(nl) - p) + 1 : avail;
    if (n > max_header_bytes_ - head_len_) {
      // RFC 6585 §5: the head is larger than we are willing to process.
      ++stats_.requests;
      stats_.bytes_discarded += head_len_;
      head_len_ = line_start_ = 0;
      push(error_response(431, false));
      closing_ = true;
      continue;  // the rest is discarded above
    }
    std::memcpy(head_.get() + head_len_, p, n);
    head_len_ += static_cast<uint32_t>(n);
    taken += n;
    if (!nl) break;

    // A line [line_start_, head_len_) ended, LF included; RFC 9112 §2.2: a
    // recipient MAY take a lone LF as the line terminator, so CR is optional.
    std::size_t line_len = head_len_ - line_start_ - 1;
    if (line_len > 0 && head_[head_len_ - 2] == '\r') --line_len;
    if (line_len > 0) {
      line_start_ = head_len_;
    } else if (line_start_ == 0) {
      head_len_ = 0;  // RFC 9112 §2.2: empty lines before a request line are ignored
    } else {
      end_of_head();
    }
  }
  stats_.bytes_in += taken;
  return taken;
}

void HttpSession::consume_eof() {
  if (closing_) return;
  // An incomplete request is not answered (nor its content waited for).
  stats_.bytes_discarded += head_len_;
  head_len_ = line_start_ = 0;
  body_left_ = 0;
  closing_ = true;
}

// An error response: its reason phrase as content, and the connection closes.
HttpSession::Response HttpSession::error_response(uint16_t status, bool head_only) {
  const StatusText& s = status_text(status);
  return Response{reinterpret_cast<const uint8_t*>(s.body.data()), s.body.size(), kTextPlain, status, head_only,
                  true, false, false};
}

void HttpSession::end_of_head() {
  ++stats_.requests;
  uint64_t content = 0;
  const Response r = parse_head(head_.get(), head_len_, &content);
  head_len_ = line_start_ = 0;
  push(r);
  if (r.close)
    closing_ = true;
  else
    body_left_ = content;
}

void HttpSession::push(const Response& r) {
  assert(count_ < max_pipelined_ && !closing_);
  queue_[(first_ + count_) % max_pipelined_] = r;
  ++count_;
}

// Parses a complete head (request line, field lines, the empty line; each
// line ends with LF). `*content` is set to the length of request content to
// read and discard after it.
HttpSession::Response HttpSession::parse_head(char* head, std::size_t len, uint64_t* content) {
  *content = 0;
  auto error = [](uint16_t status, bool head_only = false) { return error_response(status, head_only); };

  std::size_t pos = 0;
  auto next_line = [&](std::size_t* start) {
    const char* nl = static_cast<const char*>(std::memchr(head + pos, '\n', len - pos));
    assert(nl);  // the head ends with an empty line
    *start = pos;
    std::size_t end = static_cast<std::size_t>(nl - head);
    pos = end + 1;
    if (end > *start && head[end - 1] == '\r') --end;
    return std::string_view(head + *start, end - *start);
  };

  // RFC 9112 §3: request-line = method SP request-target SP HTTP-version.
  // Exactly one SP each: the lenient whitespace parsing that §3 allows is
  // what request smuggling feeds on.
  std::size_t line_at;
  const std::string_view line = next_line(&line_at);
  const std::size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return error(400);
  const std::size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return error(400);
  const std::string_view method_name = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!is_token(method_name) || target.empty()) return error(400);
  for (unsigned char c : target)
    if (c <= 0x20 || c >= 0x7f) return error(400);
  const Method method = method_of(method_name);
  const bool head_only = method == Method::head;
  // RFC 9112 §2.3: HTTP-version = "HTTP" "/" DIGIT "." DIGIT, case-sensitive.
  if (version.size() != 8 || !version.starts_with("HTTP/") || version[5] < '0' || version[5] > '9' ||
      version[6] != '.' || version[7] < '0' || version[7] > '9')
    return error(400, head_only);
  // RFC 9110 §6.2: a higher minor version of a major version we implement is
  // processed as the highest minor version we implement (1.1).
  if (version[5] != '1') return error(505, head_only);
  const bool http10 = version[7] == '0';

  // RFC 9112 §5: field-line = field-name ":" OWS field-value OWS.
  unsigned hosts = 0;
  bool have_length = false, chunked = false, conn_close = false, conn_keep_alive = false, expect_continue = false;
  uint64_t length = 0;
  for (;;) {
    std::size_t at;
    const std::string_view fl = next_line(&at);
    if (fl.empty()) break;
    // RFC 9112 §5.2: obs-fold; a server MAY reject it with 400.
    if (is_ows(fl[0])) return error(400, head_only);
    const std::size_t colon = fl.find(':');
    // RFC 9112 §5.1: whitespace between name and colon MUST get a 400
    // (is_token refuses it).
    if (colon == std::string_view::npos || !is_token(fl.substr(0, colon))) return error(400, head_only);
    const std::string_view name = fl.substr(0, colon);
    const std::string_view value = trim_ows(fl.substr(colon + 1));
    if (!is_field_value(value)) return error(400, head_only);

    if (iequals(name, "host")) {
      ++hosts;
    } else if (iequals(name, "content-length")) {
      // RFC 9110 §8.6: 1*DIGIT. A list ("5, 5") is refused rather than
      // collapsed; repeated field lines must agree (RFC 9112 §6.3 item 5).
      uint64_t v = 0;
      if (value.empty() || value.size() > 18) return error(400, head_only);
      for (char c : value) {
        if (c < '0' || c > '9') return error(400, head_only);
        v = v * 10 + static_cast<uint64_t>(c - '0');
      }
      if (have_length && v != length) return error(400, head_only);
      have_length = true;
      length = v;
    } else if (iequals(name, "transfer-encoding")) {
      chunked = true;  // whatever the coding: we decode none
    } else if (iequals(name, "connection")) {
      // RFC 9110 §7.6.1: a list of case-insensitive connection options.
      std::string_view rest = value;
      while (!rest.empty()) {
        const std::size_t comma = rest.find(',');
        const std::string_view option = trim_ows(rest.substr(0, comma));
        if (iequals(option, "close")) conn_close = true;
        if (iequals(option, "keep-alive")) conn_keep_alive = true;
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      }
    } else if (iequals(name, "expect")) {
      expect_continue = iequals(value, "100-continue");
    }
  }

  // RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host, and for any
  // request with more than one.
  if (hosts > 1 || (!http10 && hosts == 0)) return error(400, head_only);
  if (chunked) {
    // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing, and
    // with Content-Length (§6.3 item 3) a smuggling attempt: 400. Otherwise
    // it is a coding we do not decode: 501. Either way the content's end is
    // unknown, so the connection closes.
    return error(have_length || http10 ? 400 : 501, head_only);
  }
  if (length > max_discard_bytes_) return error(413, head_only);

  // RFC 9112 §9.3: persistent by default in 1.1; in 1.0 only on request.
  bool close = conn_close || (http10 && !conn_keep_alive);
  if (length > 0) {
    // RFC 9110 §10.1.1: with 100-continue the client may wait for us before
    // sending the content; we answer at once and close rather than read it.
    if (expect_continue)
      close = true;
    else
      *content = length;
  }
  Response r{nullptr, 0, kTextPlain, 200, head_only, close, http10 && !close, false};
  auto with_status = [&](uint16_t status) {
    const StatusText& s = status_text(status);
    r.status = status;
    r.body = reinterpret_cast<const uint8_t*>(s.body.data());
    r.body_len = s.body.size();
    return r;
  };

  if (method == Method::unknown) return with_status(501);  // RFC 9110 §9.1
  if (method == Method::not_allowed) {
    r.allow = true;  // RFC 9110 §15.5.6: a 405 MUST carry Allow
    return with_status(405);
  }

  const std::string_view path = target_path(head + line_at + sp1 + 1, target.size());
  if (path.empty()) {
    *content = 0;
    return error(400, head_only);
  }
  if (files_ == nullptr) {
    r.body_len = body_bytes_;
    return r;
  }
  const FileTree::File* f = files_->find(path);
  if (f == nullptr) return with_status(404);
  r.body = reinterpret_cast<const uint8_t*>(f->data.data());
  r.body_len = f->data.size();
  r.content_type = f->content_type;
  return r;
}

std::size_t HttpSession::format_header(const Response& r) {
  const StatusText& s = status_text(r.status);
  char* p = stage_;
  p = append(p, "HTTP/1.1 ");
  p = append_number(p, r.status);
  *p++ = ' ';
  p = append(p, s.reason);
  p = append(p, "\r\nServer: ngstack\r\n");
  if (date_) {
    p = append(p, "Date: ");
    p = append(p, date_->text());
    p = append(p, "\r\n");
  }
  p = append(p, "Content-Type: ");
  p = append(p, r.content_type);
  p = append(p, "\r\nContent-Length: ");
  p = append_number(p, r.body_len);
  p = append(p, "\r\n");
  if (r.allow) p = append(p, "Allow: GET, HEAD\r\n");
  if (r.close)
    p = append(p, "Connection: close\r\n");
  else if (r.keep_alive_field)
    p = append(p, "Connection: keep-alive\r\n");
  p = append(p, "\r\n");
  const std::size_t n = static_cast<std::size_t>(p - stage_);
  assert(n <= sizeof(stage_));
  return n;
}

std::size_t HttpSession::produce(uint8_t* out, std::size_t room) {
  std::size_t w = 0;
  while (count_ > 0) {
    const Response& r = queue_[first_];
    if (!started_) {
      stage_len_ = static_cast<uint16_t>(format_header(r));
      stage_off_ = 0;
      body_off_ = 0;
      started_ = true;
    }
    if (stage_off_ < stage_len_) {
      const std::size_t n = std::min<std::size_t>(room - w, stage_len_ - stage_off_);
      std::memcpy(out + w, stage_ + stage_off_, n);
      stage_off_ += static_cast<uint16_t>(n);
      w += n;
    }
    // RFC 9110 §9.3.2: a response to HEAD has the fields of a GET, no content.
    const uint64_t content = r.head_only ? 0 : r.body_len;
    if (stage_off_ == stage_len_) {
      while (body_off_ < content && w < room) {
        std::size_t n = static_cast<std::size_t>(std::min<uint64_t>(room - w, content - body_off_));
        if (r.body) {
          std::memcpy(out + w, r.body + body_off_, n);
        } else {
          n = std::min(n, kPatternRun);
          std::memcpy(out + w, kPatternBlock.data() + body_off_ % kBodyPattern.size(), n);
        }
        body_off_ += n;
        w += n;
      }
    }
    if (stage_off_ < stage_len_ || body_off_ < content) break;  // out of room

    ++stats_.responses[r.status / 100];
    const bool close = r.close;
    first_ = (first_ + 1) % max_pipelined_;
    --count_;
    started_ = false;
    if (close) {
      assert(count_ == 0);  // nothing is parsed after a closing response
      break;
    }
  }
  stats_.bytes_out += w;
  return w;
}

}  // namespace ngstack::stack::services::http
