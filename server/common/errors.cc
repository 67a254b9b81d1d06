#include "server/common/errors.h"

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace parley {
namespace {
constexpr absl::string_view kReasonUrl = "type.parley.dev/reason";
constexpr absl::string_view kFieldUrl = "type.parley.dev/field";
constexpr absl::string_view kRetryAfterUrl = "type.parley.dev/retry-after";

std::string Payload(const absl::Status& status, absl::string_view url) {
  auto payload = status.GetPayload(url);
  return payload.has_value() ? std::string(*payload) : std::string();
}
}  // namespace

absl::Status WithReason(absl::Status status, absl::string_view reason,
                        absl::string_view field) {
  status.SetPayload(kReasonUrl, absl::Cord(reason));
  if (!field.empty()) status.SetPayload(kFieldUrl, absl::Cord(field));
  return status;
}

absl::Status InvalidInput(absl::string_view reason, absl::string_view field,
                          absl::string_view message) {
  return WithReason(absl::InvalidArgumentError(message), reason, field);
}

std::string ErrorReason(const absl::Status& status) {
  return Payload(status, kReasonUrl);
}

std::string ErrorField(const absl::Status& status) {
  return Payload(status, kFieldUrl);
}

absl::Status WithRetryAfter(absl::Status status, absl::Duration after) {
  status.SetPayload(kRetryAfterUrl,
                    absl::Cord(absl::StrCat(absl::ToInt64Microseconds(after))));
  return status;
}

absl::Duration RetryAfter(const absl::Status& status) {
  int64_t micros = 0;
  if (!absl::SimpleAtoi(Payload(status, kRetryAfterUrl), &micros) ||
      micros <= 0) {
    return absl::ZeroDuration();
  }
  return absl::Microseconds(micros);
}

absl::Status OverLimit(absl::string_view reason, absl::string_view message,
                       absl::Duration retry_after) {
  return WithRetryAfter(
      WithReason(absl::ResourceExhaustedError(message), reason), retry_after);
}

}  // namespace parley
