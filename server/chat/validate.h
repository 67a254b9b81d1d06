// Input rules for what clients send: ids and message texts. Each failure is
// InvalidArgument with a stable reason and the field (see common/errors.h).
#ifndef PARLEY_SERVER_CHAT_VALIDATE_H_
#define PARLEY_SERVER_CHAT_VALIDATE_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace parley::chat {

// Whether `s` is well-formed UTF-8 (RFC 3629: shortest form, no surrogates,
// nothing above U+10FFFF).
bool IsValidUtf8(absl::string_view s);

// A client id: 1..max_bytes bytes of UTF-8 without control characters.
absl::Status ValidateClientId(absl::string_view id, size_t max_bytes);

// A message text: UTF-8 with something other than white space, at most
// max_bytes bytes.
absl::Status ValidateMessageText(absl::string_view text, size_t max_bytes);

}  // namespace parley::chat

#endif  // PARLEY_SERVER_CHAT_VALIDATE_H_
