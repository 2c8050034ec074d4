// YAML -> Config. Every error names file:line:column and the key, e.g.
//   lab.yaml:7:16: ports[0].rx_queues: expected an integer, got "two"
// Unknown keys are errors: nothing the user wrote is silently ignored.
#pragma once

#include <string>

#include "conf/config.hpp"
#include "conf/result.hpp"

namespace ngstack::conf {

Result<Config> load_file(const std::string& path);
Result<Config> load_string(const std::string& yaml_text, const std::string& source_name);

}  // namespace ngstack::conf
