#include "server/common/log.h"

#include <spdlog/logger.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace parley::log {
namespace {

spdlog::level::level_enum ToSpdlog(Level level) {
  switch (level) {
    case Level::kDebug:
      return spdlog::level::debug;
    case Level::kInfo:
      return spdlog::level::info;
    case Level::kWarning:
      return spdlog::level::warn;
    case Level::kError:
      return spdlog::level::err;
  }
  return spdlog::level::info;
}

struct State {
  State()
      : logger("parley",
               std::make_shared<spdlog::sinks::stderr_sink_mt>()) {}
  spdlog::logger logger;
  std::atomic<Format> format{Format::kText};
};

void ApplyPattern(State& state, Format format, absl::string_view name) {
  // Times in UTC with milliseconds; %l is the level's name and %v the
  // record as FormatRecord made it.
  std::string pattern =
      format == Format::kJson
          ? absl::StrCat(R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l",)",
                         R"("logger":")", name, R"(",%v})")
          : absl::StrCat("%Y-%m-%dT%H:%M:%S.%eZ %l ", name, ": %v");
  state.logger.set_formatter(std::make_unique<spdlog::pattern_formatter>(
      pattern, spdlog::pattern_time_type::utc, "\n"));
}

State& GetState() {
  static State* state = [] {
    auto* s = new State;
    ApplyPattern(*s, Format::kText, "parley_server");
    s->logger.set_level(spdlog::level::info);
    s->logger.flush_on(spdlog::level::trace);
    return s;
  }();
  return *state;
}

// `text` as the inside of a JSON string.
void AppendJsonEscaped(std::string* out, absl::string_view text) {
  for (const char c : text) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          absl::StrAppendFormat(out, "\\u%04x", static_cast<unsigned char>(c));
        } else {
          out->push_back(c);
        }
    }
  }
}

void AppendJsonString(std::string* out, absl::string_view text) {
  out->push_back('"');
  AppendJsonEscaped(out, text);
  out->push_back('"');
}

// A text value as it is when it has no space, quote, '=' or control
// character and is not empty; else quoted, with JSON's escapes.
void AppendTextValue(std::string* out, absl::string_view value) {
  bool plain = !value.empty();
  for (const char c : value) {
    if (c == ' ' || c == '"' || c == '=' || c == '\\' ||
        static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      plain = false;
      break;
    }
  }
  if (plain) {
    out->append(value.data(), value.size());
  } else {
    AppendJsonString(out, value);
  }
}

}  // namespace

Field::Field(absl::string_view key, double value) : key_(key), bare_(true) {
  if (std::isfinite(value)) {
    value_ = absl::StrFormat("%.6g", value);
  } else {
    // JSON has no NaN or infinity: keep them as strings.
    value_ = std::isnan(value) ? "NaN" : (value > 0 ? "+Inf" : "-Inf");
    bare_ = false;
  }
}

bool ParseLevel(absl::string_view text, Level* level) {
  const std::string lower = absl::AsciiStrToLower(text);
  if (lower == "debug") {
    *level = Level::kDebug;
  } else if (lower == "info") {
    *level = Level::kInfo;
  } else if (lower == "warning" || lower == "warn") {
    *level = Level::kWarning;
  } else if (lower == "error") {
    *level = Level::kError;
  } else {
    return false;
  }
  return true;
}

bool ParseFormat(absl::string_view text, Format* format) {
  const std::string lower = absl::AsciiStrToLower(text);
  if (lower == "text") {
    *format = Format::kText;
  } else if (lower == "json") {
    *format = Format::kJson;
  } else {
    return false;
  }
  return true;
}

void Configure(Level level, Format format, absl::string_view name) {
  State& state = GetState();
  state.format.store(format, std::memory_order_relaxed);
  ApplyPattern(state, format, name);
  state.logger.set_level(ToSpdlog(level));
}

bool Enabled(Level level) {
  return GetState().logger.should_log(ToSpdlog(level));
}

std::string FormatRecord(Format format, absl::string_view message,
                         Fields fields) {
  std::string out;
  if (format == Format::kJson) {
    out.append(R"("msg":)");
    AppendJsonString(&out, message);
    for (const Field& field : fields) {
      out.push_back(',');
      AppendJsonString(&out, field.key());
      out.push_back(':');
      if (field.bare()) {
        out.append(field.value());
      } else {
        AppendJsonString(&out, field.value());
      }
    }
  } else {
    // The message is free text; only line breaks are escaped, so that a
    // record stays one line.
    for (const char c : message) {
      if (c == '\n') {
        out.append("\\n");
      } else {
        out.push_back(c);
      }
    }
    for (const Field& field : fields) {
      out.push_back(' ');
      out.append(field.key().data(), field.key().size());
      out.push_back('=');
      AppendTextValue(&out, field.value());
    }
  }
  return out;
}

void Log(Level level, absl::string_view message, Fields fields) {
  State& state = GetState();
  const spdlog::level::level_enum spd = ToSpdlog(level);
  if (!state.logger.should_log(spd)) return;
  const std::string record = FormatRecord(
      state.format.load(std::memory_order_relaxed), message, fields);
  state.logger.log(spd, spdlog::string_view_t(record.data(), record.size()));
}

}  // namespace parley::log
