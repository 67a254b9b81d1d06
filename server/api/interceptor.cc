#include "server/api/interceptor.h"

#include <string>
#include <utility>

#include "absl/strings/string_view.h"
#include "server/api/status.h"
#include "server/common/log.h"

namespace parley::api {
namespace {

using grpc::experimental::InterceptionHookPoints;
using grpc::experimental::ServerRpcInfo;

// Hands each call's status to its CallRecord.
class StatsInterceptor final : public grpc::experimental::Interceptor {
 public:
  StatsInterceptor(CallStats* stats, absl::string_view name,
                   CallStats::Kind kind)
      : record_(stats, name, kind) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (!recorded_ &&
        methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::PRE_SEND_STATUS)) {
      recorded_ = true;
      const grpc::Status status = methods->GetSendStatus();
      record_.End(status.error_code(), status.error_message(),
                  ErrorInfoOf(status).reason);
    }
    methods->Proceed();
  }

 private:
  CallRecord record_;
  // gRPC runs a call's hooks one batch at a time, never two at once.
  bool recorded_ = false;
};

}  // namespace

CallRecord::CallRecord(CallStats* stats, absl::string_view name,
                       CallStats::Kind kind)
    : stats_(stats),
      method_(stats->Find(name, kind)),
      name_(name),
      start_(stats->clock()->Now()) {
  stats_->Started(method_);
}

CallRecord::~CallRecord() {
  if (!ended_) stats_->Ended(method_, stats_->clock()->Now() - start_, false);
}

void CallRecord::End(grpc::StatusCode code, absl::string_view message,
                     absl::string_view reason) {
  if (ended_) return;
  ended_ = true;
  const absl::Duration elapsed = stats_->clock()->Now() - start_;
  stats_->Ended(method_, elapsed, code == grpc::StatusCode::OK);
  const bool server_fault = code == grpc::StatusCode::INTERNAL ||
                            code == grpc::StatusCode::UNKNOWN ||
                            code == grpc::StatusCode::DATA_LOSS ||
                            reason == "STORE_FAILED" ||
                            reason == "STORE_UNAVAILABLE";
  const log::Level level =
      server_fault ? log::Level::kError : log::Level::kDebug;
  if (!log::Enabled(level)) return;
  log::Log(level, server_fault ? "call failed" : "call",
           {{"method", name_},
            {"code", static_cast<int>(code)},
            {"reason", reason},
            {"duration_seconds", elapsed},
            {"message", message}});
}

StatsInterceptorFactory::StatsInterceptorFactory(
    CallStats* stats, absl::flat_hash_set<std::string> long_polls,
    absl::flat_hash_set<std::string> self_recorded)
    : stats_(stats),
      long_polls_(std::move(long_polls)),
      self_recorded_(std::move(self_recorded)) {}

grpc::experimental::Interceptor*
StatsInterceptorFactory::CreateServerInterceptor(ServerRpcInfo* info) {
  const absl::string_view name =
      info->method() != nullptr ? info->method() : CallStats::kOtherMethod;
  if (self_recorded_.contains(name)) return nullptr;
  CallStats::Kind kind = CallStats::Kind::kStreaming;
  if (info->type() == ServerRpcInfo::Type::UNARY) {
    kind = long_polls_.contains(name) ? CallStats::Kind::kLongPoll
                                      : CallStats::Kind::kUnary;
  }
  return new StatsInterceptor(stats_, name, kind);
}

}  // namespace parley::api
