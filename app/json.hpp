// A minimal streaming JSON writer for the run summary (no dependency needed for
// a few hundred lines of output).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace ngstack::app {

class JsonWriter {
 public:
  JsonWriter& begin_object(std::string_view key = {}) { return open(key, '{'); }
  JsonWriter& end_object() { return close('}'); }
  JsonWriter& begin_array(std::string_view key = {}) { return open(key, '['); }
  JsonWriter& end_array() { return close(']'); }
  JsonWriter& value(std::string_view key, std::string_view s) {
    prefix(key);
    quote(s);
    return *this;
  }
  JsonWriter& value(std::string_view key, const char* s) { return value(key, std::string_view(s)); }
  JsonWriter& value(std::string_view key, const std::string& s) { return value(key, std::string_view(s)); }
  JsonWriter& value(std::string_view key, uint64_t v) {
    prefix(key);
    out_ += std::to_string(v);
    return *this;
  }
  JsonWriter& value(std::string_view key, unsigned v) { return value(key, static_cast<uint64_t>(v)); }
  JsonWriter& value(std::string_view key, int v) {
    prefix(key);
    out_ += std::to_string(v);
    return *this;
  }
  JsonWriter& value(std::string_view key, double v);
  JsonWriter& value(std::string_view key, bool v) {
    prefix(key);
    out_ += v ? "true" : "false";
    return *this;
  }
  const std::string& str() const { return out_; }

 private:
  JsonWriter& open(std::string_view key, char c) {
    prefix(key);
    out_ += c;
    first_ = true;
    return *this;
  }
  JsonWriter& close(char c) {
    out_ += c;
    first_ = false;
    return *this;
  }
  void prefix(std::string_view key) {
    if (!first_) out_ += ',';
    first_ = false;
    if (!key.empty()) {
      quote(key);
      out_ += ':';
    }
  }
  void quote(std::string_view s);
  std::string out_;
  bool first_ = true;
};

}  // namespace ngstack::app
