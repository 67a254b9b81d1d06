#include "server/api/status.h"

#include <string>

#include "server/common/errors.h"

namespace parley::api {

grpc::Status ToGrpcStatus(const absl::Status& status,
                          grpc::CallbackServerContext* context) {
  if (status.ok()) return grpc::Status::OK;
  if (context != nullptr) {
    const std::string reason = ErrorReason(status);
    const std::string field = ErrorField(status);
    if (!reason.empty()) context->AddTrailingMetadata(kReasonKey, reason);
    if (!field.empty()) context->AddTrailingMetadata(kFieldKey, field);
  }
  // absl::StatusCode and grpc::StatusCode share their numbering.
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

}  // namespace parley::api
