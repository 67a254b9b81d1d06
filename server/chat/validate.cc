#include "server/chat/validate.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/common/errors.h"

namespace parley::chat {

absl::Status ValidateClientId(absl::string_view id, size_t max_bytes,
                              absl::string_view field) {
  const std::string upper = absl::AsciiStrToUpper(field);
  if (id.empty()) {
    return InvalidInput(absl::StrCat(upper, "_REQUIRED"), field,
                        absl::StrCat(field, " is required"));
  }
  if (id.size() > max_bytes) {
    return InvalidInput(absl::StrCat(upper, "_TOO_LONG"), field,
                        absl::StrCat(field, " is longer than ", max_bytes,
                                     " bytes"));
  }
  for (unsigned char c : id) {
    if (c < 0x20 || c == 0x7F) {
      return InvalidInput(absl::StrCat("INVALID_", upper), field,
                          absl::StrCat(field,
                                       " must not contain control "
                                       "characters"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateMessageText(absl::string_view text, size_t max_bytes,
                                 absl::string_view field) {
  if (text.size() > max_bytes) {
    return InvalidInput("MESSAGE_TOO_LONG", field,
                        absl::StrCat(field, " is longer than ", max_bytes,
                                     " bytes"));
  }
  if (absl::StripAsciiWhitespace(text).empty()) {
    return InvalidInput("MESSAGE_REQUIRED", field,
                        absl::StrCat(field, " must not be empty"));
  }
  return absl::OkStatus();
}

}  // namespace parley::chat
