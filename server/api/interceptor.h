// The gRPC server interceptor that feeds CallStats: every call of every
// method (health and reflection included) is counted from its creation to
// its status, and unary ones are timed. It also logs each call at debug
// level, and calls that fail on the server's side (INTERNAL, UNKNOWN,
// DATA_LOSS, or reason STORE_FAILED or STORE_UNAVAILABLE) as errors.
// Methods that keep their own CallRecord (ChatService.Subscribe) get no
// interceptor.
#ifndef PARLEY_SERVER_API_INTERCEPTOR_H_
#define PARLEY_SERVER_API_INTERCEPTOR_H_

#include <grpcpp/support/server_interceptor.h>

#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/api/call_stats.h"

namespace parley::api {

// One call's entry in CallStats, from its creation to its status, and its
// log line. The interceptor keeps one per call; methods it leaves alone
// (see StatsInterceptorFactory) keep their own.
class CallRecord {
 public:
  // `name` must outlive the record (a method name gRPC or a constant owns).
  CallRecord(CallStats* stats, absl::string_view name, CallStats::Kind kind);
  CallRecord(const CallRecord&) = delete;
  CallRecord& operator=(const CallRecord&) = delete;
  // A call that never sent a status (the server shut down under it) counts
  // as failed.
  ~CallRecord();

  // Records the status the call sends; `reason` is its ErrorInfo reason
  // (empty if none). Only the first call counts.
  void End(grpc::StatusCode code, absl::string_view message,
           absl::string_view reason);

 private:
  CallStats* const stats_;
  CallStats::Method* const method_;
  const absl::string_view name_;
  const absl::Time start_;
  bool ended_ = false;
};

class StatsInterceptorFactory
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  // `stats` must outlive the server. `long_polls` names the unary methods
  // that wait on purpose (CallStats::Kind::kLongPoll). `self_recorded`
  // names methods that get no interceptor and keep a CallRecord themselves:
  // gRPC runs a call's interceptors at every batch, so on a server stream
  // they cost something at each write (~5% of the server's CPU in fan-out).
  StatsInterceptorFactory(CallStats* stats,
                          absl::flat_hash_set<std::string> long_polls,
                          absl::flat_hash_set<std::string> self_recorded = {});

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  CallStats* const stats_;
  const absl::flat_hash_set<std::string> long_polls_;
  const absl::flat_hash_set<std::string> self_recorded_;
};

}  // namespace parley::api

#endif  // PARLEY_SERVER_API_INTERCEPTOR_H_
