// The one place where absl::Status becomes grpc::Status. The reason and field
// attached by WithReason travel as trailing metadata (parley-error-reason,
// parley-error-field), which the gateway turns into its JSON error body.
#ifndef PARLEY_SERVER_API_STATUS_H_
#define PARLEY_SERVER_API_STATUS_H_

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"

namespace parley::api {

inline constexpr char kReasonKey[] = "parley-error-reason";
inline constexpr char kFieldKey[] = "parley-error-field";

// Converts `status`; when `context` is not null and the status carries a
// reason or field, adds them to the call's trailing metadata.
grpc::Status ToGrpcStatus(const absl::Status& status,
                          grpc::CallbackServerContext* context);

}  // namespace parley::api

#endif  // PARLEY_SERVER_API_STATUS_H_
