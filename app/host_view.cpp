#include "app/host_view.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;

namespace ngstack::app {

HostView::HostView(std::string root) {
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  root_ = root.empty() ? std::string(1, '/') : std::move(root);
}

std::string HostView::path(std::string_view host_path) const {
  if (is_real_root()) return std::string(host_path);
  return root_ + std::string(host_path);
}

bool HostView::exists(std::string_view host_path) const {
  std::error_code ec;
  return fs::exists(path(host_path), ec);
}

std::optional<std::string> HostView::read(std::string_view host_path) const {
  std::ifstream f(path(host_path));
  if (!f) return std::nullopt;
  std::stringstream ss;
  ss << f.rdbuf();
  if (f.bad()) return std::nullopt;
  return ss.str();
}

std::optional<std::string> HostView::read_line(std::string_view host_path) const {
  auto text = read(host_path);
  if (!text) return std::nullopt;
  std::string line = text->substr(0, text->find('\n'));
  while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) line.pop_back();
  return line;
}

std::optional<std::string> HostView::link_name(std::string_view host_path) const {
  std::error_code ec;
  const fs::path target = fs::read_symlink(path(host_path), ec);
  if (ec) return std::nullopt;
  return target.filename().string();
}

std::vector<std::string> HostView::list(std::string_view host_path) const {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(path(host_path), ec), end; !ec && it != end; it.increment(ec))
    out.push_back(it->path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

bool HostView::writable_or_creatable(std::string_view host_path) const {
  fs::path p = path(host_path);
  std::error_code ec;
  while (!fs::exists(p, ec)) {
    if (!p.has_parent_path() || p.parent_path() == p) return false;
    p = p.parent_path();
  }
  return fs::is_directory(p, ec) && access(p.c_str(), W_OK | X_OK) == 0;
}

std::optional<std::set<unsigned>> parse_cpu_list(std::string_view text) {
  std::set<unsigned> out;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  if (text.empty()) return out;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t comma = text.find(',', pos);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view item = text.substr(pos, comma - pos);
    unsigned lo = 0, hi = 0;
    const std::size_t dash = item.find('-');
    auto num = [](std::string_view s, unsigned& v) {
      auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
      return ec == std::errc{} && p == s.data() + s.size() && !s.empty();
    };
    if (dash == std::string_view::npos) {
      if (!num(item, lo) || lo > 65535) return std::nullopt;  // no CPU numbers that large: also no endless loop
      hi = lo;
    } else if (!num(item.substr(0, dash), lo) || !num(item.substr(dash + 1), hi) || hi < lo || hi > 65535) {
      return std::nullopt;
    }
    for (unsigned c = lo; c <= hi; ++c) out.insert(c);
    pos = comma + 1;
  }
  return out;
}

}  // namespace ngstack::app
