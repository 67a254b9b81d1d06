// parley.v1.StatsService: the process's CPU, memory and uptime, the chat
// layer's counters, the store's writer figures and the per-method call
// figures of CallStats, as one GetStats answer (seed 004's figures, and what
// the gateway's /metrics exports). Needs no token. Thread-safe.
#ifndef PARLEY_SERVER_API_STATS_SERVICE_H_
#define PARLEY_SERVER_API_STATS_SERVICE_H_

#include <functional>

#include "absl/time/time.h"
#include "parley/v1/stats.grpc.pb.h"
#include "server/api/call_stats.h"
#include "server/chat/hub.h"
#include "server/common/metrics.h"
#include "server/store/types.h"

namespace parley::api {

// Where the figures come from; each must outlive the service.
struct StatsSources {
  chat::Hub* hub = nullptr;
  CallStats* calls = nullptr;
  // The store writer's figures; empty for a store that keeps none.
  std::function<store::StoreStats()> store;
};

class StatsService final : public parley::v1::StatsService::CallbackService {
 public:
  explicit StatsService(StatsSources sources);

  grpc::ServerUnaryReactor* GetStats(
      grpc::CallbackServerContext* context,
      const parley::v1::GetStatsRequest* request,
      parley::v1::GetStatsResponse* response) override;

  // Records the process's CPU time for the CPU-percent window. Call every
  // cpu_sample_interval().
  void SampleCpu();
  absl::Duration cpu_sample_interval() const { return cpu_.interval(); }

  // GetStats without the gRPC call.
  void Fill(parley::v1::GetStatsResponse* response);

 private:
  const StatsSources sources_;
  const absl::Time start_;
  metrics::CpuWindow cpu_;
};

}  // namespace parley::api

#endif  // PARLEY_SERVER_API_STATS_SERVICE_H_
