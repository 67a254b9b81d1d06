// The gRPC server interceptor that feeds CallStats: every call of every
// method (health and reflection included) is counted from its creation to
// its status, and unary ones are timed. It also logs each call at debug
// level, and calls that fail on the server's side (INTERNAL, UNKNOWN,
// DATA_LOSS, or reason STORE_FAILED) as errors.
#ifndef PARLEY_SERVER_API_INTERCEPTOR_H_
#define PARLEY_SERVER_API_INTERCEPTOR_H_

#include <grpcpp/support/server_interceptor.h>

#include <string>

#include "absl/container/flat_hash_set.h"
#include "server/api/call_stats.h"

namespace parley::api {

class StatsInterceptorFactory
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  // `stats` must outlive the server. `long_polls` names the unary methods
  // that wait on purpose (CallStats::Kind::kLongPoll).
  StatsInterceptorFactory(CallStats* stats,
                          absl::flat_hash_set<std::string> long_polls);

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  CallStats* const stats_;
  const absl::flat_hash_set<std::string> long_polls_;
};

}  // namespace parley::api

#endif  // PARLEY_SERVER_API_INTERCEPTOR_H_
