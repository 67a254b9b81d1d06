#include "server/api/status.h"

#include <string>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "server/common/errors.h"

namespace parley::api {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // absl::StatusCode and grpc::StatusCode share their numbering.
  const auto code = static_cast<grpc::StatusCode>(status.code());
  const std::string message(status.message());
  const std::string reason = ErrorReason(status);
  const std::string field = ErrorField(status);
  const absl::Duration retry_after = RetryAfter(status);
  if (reason.empty() && field.empty() && retry_after == absl::ZeroDuration()) {
    return grpc::Status(code, message);
  }

  google::rpc::ErrorInfo info;
  info.set_reason(reason);
  info.set_domain(kErrorDomain);
  if (!field.empty()) (*info.mutable_metadata())[kErrorFieldKey] = field;
  google::rpc::Status details;
  details.set_code(static_cast<int>(code));
  details.set_message(message);
  if (!reason.empty() || !field.empty()) details.add_details()->PackFrom(info);
  if (retry_after > absl::ZeroDuration()) {
    google::rpc::RetryInfo retry;
    const int64_t micros = absl::ToInt64Microseconds(retry_after);
    retry.mutable_retry_delay()->set_seconds(micros / 1000000);
    retry.mutable_retry_delay()->set_nanos(
        static_cast<int32_t>(micros % 1000000 * 1000));
    details.add_details()->PackFrom(retry);
  }
  return grpc::Status(code, message, details.SerializeAsString());
}

ErrorInfoFields ErrorInfoOf(const grpc::Status& status) {
  google::rpc::Status details;
  if (status.error_details().empty() ||
      !details.ParseFromString(status.error_details())) {
    return {};
  }
  for (const google::protobuf::Any& any : details.details()) {
    google::rpc::ErrorInfo info;
    if (any.UnpackTo(&info)) {
      auto field = info.metadata().find(kErrorFieldKey);
      return {info.reason(),
              field == info.metadata().end() ? "" : field->second};
    }
  }
  return {};
}

}  // namespace parley::api
