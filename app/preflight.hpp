// Checks made before DPDK starts, so that the common mistakes get one clear
// line instead of a page of EAL output.
#pragma once

#include <string>
#include <sys/types.h>

#include "conf/result.hpp"

namespace ngstack::app {

Status check_root(uid_t euid);

// `meminfo` is the text of /proc/meminfo, `mounts` that of /proc/mounts.
Status check_hugepages(const std::string& meminfo, const std::string& mounts);

std::string read_text_file(const std::string& path);

}  // namespace ngstack::app
