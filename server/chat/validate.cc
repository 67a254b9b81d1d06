#include "server/chat/validate.h"

#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/common/errors.h"

namespace parley::chat {

bool IsValidUtf8(absl::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    const unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int len;
    uint32_t min;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2, min = 0x80, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, min = 0x800, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, min = 0x10000, cp = c & 0x07;
    } else {
      return false;
    }
    if (end - p < len) return false;
    for (int i = 1; i < len; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    p += len;
  }
  return true;
}

absl::Status ValidateClientId(absl::string_view id, size_t max_bytes) {
  if (id.empty()) return InvalidInput("ID_REQUIRED", "id", "id is required");
  if (id.size() > max_bytes) {
    return InvalidInput("ID_TOO_LONG", "id",
                        absl::StrCat("id is longer than ", max_bytes,
                                     " bytes"));
  }
  if (!IsValidUtf8(id)) {
    return InvalidInput("INVALID_UTF8", "id", "id is not valid UTF-8");
  }
  for (unsigned char c : id) {
    if (c < 0x20 || c == 0x7F) {
      return InvalidInput("INVALID_ID", "id",
                          "id must not contain control characters");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateMessageText(absl::string_view text, size_t max_bytes) {
  if (text.size() > max_bytes) {
    return InvalidInput("MESSAGE_TOO_LONG", "message",
                        absl::StrCat("message is longer than ", max_bytes,
                                     " bytes"));
  }
  if (!IsValidUtf8(text)) {
    return InvalidInput("INVALID_UTF8", "message",
                        "message is not valid UTF-8");
  }
  if (absl::StripAsciiWhitespace(text).empty()) {
    return InvalidInput("MESSAGE_REQUIRED", "message",
                        "message must not be empty");
  }
  return absl::OkStatus();
}

}  // namespace parley::chat
