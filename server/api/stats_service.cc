#include "server/api/stats_service.h"

#include <utility>

#include "google/protobuf/util/time_util.h"
#include "server/api/common.h"

namespace parley::api {
namespace {

void FillWindow(const CallStats::Window& window, absl::Duration length,
                parley::v1::WindowStats* out) {
  out->set_window_seconds(absl::ToDoubleSeconds(length));
  out->set_requests(window.requests);
  out->set_errors(window.errors);
  out->set_average_seconds(absl::ToDoubleSeconds(window.average()));
  out->set_peak_seconds(absl::ToDoubleSeconds(window.peak));
}

}  // namespace

StatsService::StatsService(StatsSources sources)
    : sources_(std::move(sources)),
      start_(metrics::ProcessStartTime()),
      cpu_(sources_.calls->window(), start_) {}

void StatsService::SampleCpu() {
  cpu_.Sample(absl::Now(), metrics::ReadProcessUsage().cpu());
}

void StatsService::Fill(parley::v1::GetStatsResponse* response) {
  // The process, on the real clock whatever clock the calls are timed by.
  const absl::Time now = absl::Now();
  const metrics::ProcessUsage usage = metrics::ReadProcessUsage();
  parley::v1::ProcessStats* process = response->mutable_process();
  *process->mutable_start_time() =
      google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
          absl::ToUnixNanos(start_));
  process->set_uptime_seconds(absl::ToDoubleSeconds(now - start_));
  process->set_cpu_seconds(absl::ToDoubleSeconds(usage.cpu()));
  process->set_cpu_user_seconds(absl::ToDoubleSeconds(usage.cpu_user));
  process->set_cpu_system_seconds(absl::ToDoubleSeconds(usage.cpu_system));
  const metrics::CpuWindow::Usage cpu = cpu_.Over(now, usage.cpu());
  process->set_cpu_percent(cpu.percent);
  process->set_cpu_window_seconds(absl::ToDoubleSeconds(cpu.covers));
  process->set_resident_memory_bytes(usage.resident_bytes);
  process->set_peak_resident_memory_bytes(usage.peak_resident_bytes);
  process->set_threads(usage.threads);
  process->set_cpu_count(metrics::CpuCount());

  parley::v1::ChatStats* chat = response->mutable_chat();
  chat->set_lobby_sessions(sources_.hub->SessionCount());
  const metrics::Counters& counters = metrics::Global();
  chat->set_open_streams(metrics::OpenStreams());
  chat->set_streams_total(
      counters.streams_started.load(std::memory_order_relaxed));
  chat->set_deliveries_total(
      counters.deliveries.load(std::memory_order_relaxed));
  chat->set_channel_overflows_total(
      counters.overflows.load(std::memory_order_relaxed));
  for (const auto& count : counters.delivery_lag) {
    chat->add_delivery_lag_bucket_counts(
        count.load(std::memory_order_relaxed));
  }
  chat->set_delivery_lag_seconds_sum(
      static_cast<double>(
          counters.delivery_lag_nanos.load(std::memory_order_relaxed)) /
      1e9);

  if (sources_.store) {
    const store::StoreStats s = sources_.store();
    parley::v1::StoreStats* out = response->mutable_store();
    out->set_commits_total(s.transactions);
    out->set_writes_total(s.writes);
    out->set_largest_batch(s.largest_batch);
    out->set_commit_seconds_total(absl::ToDoubleSeconds(s.commit_time_total));
    out->set_commit_seconds_average(
        s.transactions == 0
            ? 0
            : absl::ToDoubleSeconds(s.commit_time_total) /
                  static_cast<double>(s.transactions));
    out->set_commit_seconds_max(absl::ToDoubleSeconds(s.longest_commit));
    out->set_checkpoints_total(s.checkpoints);
    out->set_checkpoint_restarts_total(s.checkpoint_restarts);
    out->set_checkpoint_seconds_total(
        absl::ToDoubleSeconds(s.checkpoint_time_total));
    for (uint64_t count : s.write_wait_buckets) {
      out->add_write_wait_bucket_counts(count);
    }
    out->set_write_wait_seconds_sum(absl::ToDoubleSeconds(s.write_wait_total));
    out->set_write_wait_seconds_max(
        absl::ToDoubleSeconds(s.longest_write_wait));
  }

  CallStats& calls = *sources_.calls;
  const absl::Duration window = calls.window();
  FillWindow(calls.UnaryWindow(), window, response->mutable_response_time());
  for (const CallStats::MethodFigures& f : calls.Snapshot()) {
    parley::v1::MethodStats* m = response->add_methods();
    m->set_method(f.name);
    m->set_streaming(f.kind == CallStats::Kind::kStreaming);
    m->set_requests_total(f.requests);
    m->set_errors_total(f.errors);
    m->set_in_flight(f.in_flight);
    FillWindow(f.window, window, m->mutable_window());
    for (uint64_t count : f.buckets) m->add_latency_bucket_counts(count);
    m->set_latency_seconds_sum(f.seconds_sum);
  }
  for (double bound : metrics::kLatencyBucketBounds) {
    response->add_latency_bucket_bounds(bound);
  }
}

grpc::ServerUnaryReactor* StatsService::GetStats(
    grpc::CallbackServerContext* context,
    const parley::v1::GetStatsRequest* /*request*/,
    parley::v1::GetStatsResponse* response) {
  Fill(response);
  return FinishNow(context, absl::OkStatus());
}

}  // namespace parley::api
