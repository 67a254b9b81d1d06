// Structured logs: one line per record on stderr, a message and key-value
// fields, as text (`time level name: message key=value ...`) or as one JSON
// object per line, filtered by level. spdlog does the writing (one lock per
// line, so lines never interleave). Thread-safe; Configure is meant to run
// once, early in main.
//
//   log::Info("listening", {{"addr", addr}, {"port", port}});
#ifndef PARLEY_SERVER_COMMON_LOG_H_
#define PARLEY_SERVER_COMMON_LOG_H_

#include <cstdint>
#include <initializer_list>
#include <string>
#include <type_traits>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace parley::log {

enum class Level { kDebug, kInfo, kWarning, kError };
enum class Format { kText, kJson };

// One key and its value, kept as text; numbers and booleans are written bare
// in JSON, everything else as a string.
class Field {
 public:
  Field(absl::string_view key, absl::string_view value)
      : key_(key), value_(value) {}
  Field(absl::string_view key, const char* value)
      : Field(key, absl::string_view(value)) {}
  Field(absl::string_view key, const std::string& value)
      : Field(key, absl::string_view(value)) {}
  Field(absl::string_view key, bool value)
      : key_(key), value_(value ? "true" : "false"), bare_(true) {}
  template <typename T, typename = std::enable_if_t<std::is_integral_v<T>>>
  Field(absl::string_view key, T value)
      : key_(key), value_(std::to_string(value)), bare_(true) {}
  Field(absl::string_view key, double value);
  // As seconds, e.g. 0.0125.
  Field(absl::string_view key, absl::Duration value)
      : Field(key, absl::ToDoubleSeconds(value)) {}

  absl::string_view key() const { return key_; }
  const std::string& value() const { return value_; }
  bool bare() const { return bare_; }

 private:
  absl::string_view key_;
  std::string value_;
  bool bare_ = false;
};

using Fields = std::initializer_list<Field>;

// "debug", "info", "warning" (or "warn"), "error"; false for anything else.
bool ParseLevel(absl::string_view text, Level* level);
// "text" or "json".
bool ParseFormat(absl::string_view text, Format* format);

// Sets the level below which records are dropped, the format, and the name
// that text lines carry (the program). Until called: info, text,
// "parley_server".
void Configure(Level level, Format format,
               absl::string_view name = "parley_server");

// Whether a record at `level` would be written; check it before building
// costly fields.
bool Enabled(Level level);

void Log(Level level, absl::string_view message, Fields fields = {});

inline void Debug(absl::string_view message, Fields fields = {}) {
  Log(Level::kDebug, message, fields);
}
inline void Info(absl::string_view message, Fields fields = {}) {
  Log(Level::kInfo, message, fields);
}
inline void Warning(absl::string_view message, Fields fields = {}) {
  Log(Level::kWarning, message, fields);
}
inline void Error(absl::string_view message, Fields fields = {}) {
  Log(Level::kError, message, fields);
}

// The text after the level and name of a record: `message key=value ...`
// (Format::kText) or the JSON members `"msg":...,"key":value` (kJson). For
// tests.
std::string FormatRecord(Format format, absl::string_view message,
                         Fields fields);

}  // namespace parley::log

#endif  // PARLEY_SERVER_COMMON_LOG_H_
