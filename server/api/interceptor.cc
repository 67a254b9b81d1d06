#include "server/api/interceptor.h"

#include <map>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"
#include "server/api/status.h"
#include "server/common/log.h"

namespace parley::api {
namespace {

using grpc::experimental::InterceptionHookPoints;
using grpc::experimental::ServerRpcInfo;

// Times one call from its creation (when gRPC matches it to a method, before
// the request is read) to the status it sends. A call that ends without
// sending one (the server shut down under it) is counted as an error when
// the interceptor is destroyed.
class StatsInterceptor final : public grpc::experimental::Interceptor {
 public:
  StatsInterceptor(CallStats* stats, CallStats::Method* method,
                   absl::string_view name)
      : stats_(stats),
        method_(method),
        name_(name),
        start_(stats->clock()->Now()) {
    stats_->Started(method_);
  }

  ~StatsInterceptor() override {
    if (!recorded_) {
      stats_->Ended(method_, stats_->clock()->Now() - start_, false);
    }
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (!recorded_ &&
        methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::PRE_SEND_STATUS)) {
      recorded_ = true;
      const absl::Duration elapsed = stats_->clock()->Now() - start_;
      const grpc::Status status = methods->GetSendStatus();
      stats_->Ended(method_, elapsed, status.ok());
      LogCall(status, methods->GetSendTrailingMetadata(), elapsed);
    }
    methods->Proceed();
  }

 private:
  void LogCall(const grpc::Status& status,
               const std::multimap<std::string, std::string>* trailers,
               absl::Duration elapsed) {
    std::string reason;
    if (trailers != nullptr) {
      if (auto it = trailers->find(kReasonKey); it != trailers->end()) {
        reason = it->second;
      }
    }
    const grpc::StatusCode code = status.error_code();
    const bool server_fault = code == grpc::StatusCode::INTERNAL ||
                              code == grpc::StatusCode::UNKNOWN ||
                              code == grpc::StatusCode::DATA_LOSS ||
                              reason == "STORE_FAILED";
    const log::Level level =
        server_fault ? log::Level::kError : log::Level::kDebug;
    if (!log::Enabled(level)) return;
    log::Log(level, server_fault ? "call failed" : "call",
             {{"method", name_},
              {"code", static_cast<int>(code)},
              {"reason", reason},
              {"duration_seconds", elapsed},
              {"message", status.error_message()}});
  }

  CallStats* const stats_;
  CallStats::Method* const method_;
  const absl::string_view name_;  // the method's, which outlives the call
  const absl::Time start_;
  // gRPC runs a call's hooks one batch at a time, never two at once.
  bool recorded_ = false;
};

}  // namespace

StatsInterceptorFactory::StatsInterceptorFactory(
    CallStats* stats, absl::flat_hash_set<std::string> long_polls)
    : stats_(stats), long_polls_(std::move(long_polls)) {}

grpc::experimental::Interceptor*
StatsInterceptorFactory::CreateServerInterceptor(ServerRpcInfo* info) {
  const absl::string_view name =
      info->method() != nullptr ? info->method() : CallStats::kOtherMethod;
  CallStats::Kind kind = CallStats::Kind::kStreaming;
  if (info->type() == ServerRpcInfo::Type::UNARY) {
    kind = long_polls_.contains(name) ? CallStats::Kind::kLongPoll
                                      : CallStats::Kind::kUnary;
  }
  return new StatsInterceptor(stats_, stats_->Find(name, kind), name);
}

}  // namespace parley::api
