// Errors that carry a stable machine-readable reason and the offending
// request field alongside the absl::Status code and message. The api layer
// turns them into gRPC trailing metadata, and the gateway into JSON.
#ifndef PARLEY_SERVER_COMMON_ERRORS_H_
#define PARLEY_SERVER_COMMON_ERRORS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

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

// Returns `status` telling the client when to try again (a refusal by a
// limit): google.rpc.RetryInfo over gRPC, Retry-After over REST.
absl::Status WithRetryAfter(absl::Status status, absl::Duration after);
// What WithRetryAfter attached; zero when nothing.
absl::Duration RetryAfter(const absl::Status& status);

// RESOURCE_EXHAUSTED with `reason` and a retry delay: a client over one of
// its limits.
absl::Status OverLimit(absl::string_view reason, absl::string_view message,
                       absl::Duration retry_after);

}  // namespace parley

#endif  // PARLEY_SERVER_COMMON_ERRORS_H_
