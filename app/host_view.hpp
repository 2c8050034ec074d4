// A read-only view of the machine through its kernel files (/sys, /proc,
// /dev, /var/run), rooted at a directory: "/" for this machine, or a fake tree
// built by a test. `ngstack doctor` reads the host only through this, so its
// checks are pure functions of the files found under the root and run (and are
// tested) without DPDK.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "conf/host_check.hpp"

namespace ngstack::app {

class HostView {
 public:
  explicit HostView(std::string root = "/");

  const std::string& root() const { return root_; }
  bool is_real_root() const { return root_ == "/"; }
  // `path` is absolute on the host ("/proc/cmdline"); the result is under root.
  std::string path(std::string_view host_path) const;

  bool exists(std::string_view host_path) const;
  // The whole file; nullopt when it is missing or unreadable.
  std::optional<std::string> read(std::string_view host_path) const;
  // The first line, without trailing whitespace.
  std::optional<std::string> read_line(std::string_view host_path) const;
  // The last component of a symlink's target ("vfio-pci" for .../driver).
  std::optional<std::string> link_name(std::string_view host_path) const;
  // Entry names of a directory, sorted; empty when it is missing.
  std::vector<std::string> list(std::string_view host_path) const;
  // Whether this process could write there, or create it (its nearest existing
  // ancestor is writable).
  bool writable_or_creatable(std::string_view host_path) const;

 private:
  std::string root_;
};

// "0-3,8,10-11" -> {0,1,2,3,8,10,11}; nullopt on a malformed list.
std::optional<std::set<unsigned>> parse_cpu_list(std::string_view text);
// The other direction is conf::format_cpu_list (conf/host_check.hpp).
using conf::format_cpu_list;

}  // namespace ngstack::app
