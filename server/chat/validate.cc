#include "server/chat/validate.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/common/errors.h"

namespace parley::chat {

absl::Status ValidateClientId(absl::string_view id, size_t max_bytes) {
  if (id.empty()) return InvalidInput("ID_REQUIRED", "id", "id is required");
  if (id.size() > max_bytes) {
    return InvalidInput("ID_TOO_LONG", "id",
                        absl::StrCat("id is longer than ", max_bytes,
                                     " bytes"));
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
  if (absl::StripAsciiWhitespace(text).empty()) {
    return InvalidInput("MESSAGE_REQUIRED", "message",
                        "message must not be empty");
  }
  return absl::OkStatus();
}

}  // namespace parley::chat
