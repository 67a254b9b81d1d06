// Input rules for what clients send: ids and message texts. Each failure is
// InvalidArgument with a stable reason and the field (see common/errors.h).
// Strings arrive here already checked as UTF-8: protobuf verifies every
// proto3 string when it parses a request, and proto/request_traits.h turns a
// failure into INVALID_UTF8 at the edge, so these rules do not check again.
#ifndef PARLEY_SERVER_CHAT_VALIDATE_H_
#define PARLEY_SERVER_CHAT_VALIDATE_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace parley::chat {

// A client id (or another name, given as `field`): 1..max_bytes bytes
// without control characters. Reasons <FIELD>_REQUIRED, <FIELD>_TOO_LONG,
// INVALID_<FIELD>.
absl::Status ValidateClientId(absl::string_view id, size_t max_bytes,
                              absl::string_view field = "id");

// A message text with something other than white space, at most max_bytes
// bytes.
// Reasons MESSAGE_TOO_LONG, MESSAGE_REQUIRED; the field is `field`.
absl::Status ValidateMessageText(absl::string_view text, size_t max_bytes,
                                 absl::string_view field = "message");

}  // namespace parley::chat

#endif  // PARLEY_SERVER_CHAT_VALIDATE_H_
