// The one place where absl::Status becomes grpc::Status. The reason and field
// attached by WithReason travel in the status details as a google.rpc.ErrorInfo
// (domain "parley", the field as metadata "field"), which every gRPC client
// and the gateway read. Thread-safe: plain functions.
#ifndef PARLEY_SERVER_API_STATUS_H_
#define PARLEY_SERVER_API_STATUS_H_

#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/status/status.h"

namespace parley::api {

// The ErrorInfo domain of every reason the server gives.
inline constexpr char kErrorDomain[] = "parley";
// The ErrorInfo metadata key of the request field at fault.
inline constexpr char kErrorFieldKey[] = "field";

// Converts `status`; a reason or field becomes an ErrorInfo detail.
grpc::Status ToGrpcStatus(const absl::Status& status);

// The reason and field of a status's ErrorInfo detail; empty when it has none.
struct ErrorInfoFields {
  std::string reason;
  std::string field;
};
ErrorInfoFields ErrorInfoOf(const grpc::Status& status);

}  // namespace parley::api

#endif  // PARLEY_SERVER_API_STATUS_H_
