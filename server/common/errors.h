// Errors that carry a stable machine-readable reason and the offending
// request field alongside the absl::Status code and message. The api layer
// turns them into gRPC trailing metadata, and the gateway into JSON.
#ifndef PARLEY_SERVER_COMMON_ERRORS_H_
#define PARLEY_SERVER_COMMON_ERRORS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace parley {

// Returns `status` with a reason such as "MESSAGE_TOO_LONG" and, when not
// empty, the request field at fault such as "message".
absl::Status WithReason(absl::Status status, absl::string_view reason,
                        absl::string_view field = "");

// Shorthand for bad input: InvalidArgument with a reason and a field.
absl::Status InvalidInput(absl::string_view reason, absl::string_view field,
                          absl::string_view message);

// The reason and field attached by WithReason; empty when there is none.
std::string ErrorReason(const absl::Status& status);
std::string ErrorField(const absl::Status& status);

}  // namespace parley

#endif  // PARLEY_SERVER_COMMON_ERRORS_H_
