#include "server/common/errors.h"

#include "absl/strings/cord.h"

namespace parley {
namespace {
constexpr absl::string_view kReasonUrl = "type.parley.dev/reason";
constexpr absl::string_view kFieldUrl = "type.parley.dev/field";

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

}  // namespace parley
