// Process-wide counters the chat layer bumps on its hot paths, and what the
// process itself uses (CPU, memory), for StatsService and /metrics.
//
// The counters are relaxed atomics: each is only ever added to, and a reader
// needs no ordering with anything else. Thread-safe. They count for the whole
// process (tests that run several servers in one process compare deltas).
#ifndef PARLEY_SERVER_COMMON_METRICS_H_
#define PARLEY_SERVER_COMMON_METRICS_H_

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>

#include "absl/time/time.h"
#include "server/common/mutex.h"

namespace parley::metrics {

// Upper bounds, in seconds, of every latency histogram the server reports
// (per gRPC method, the store's write wait); one more bucket (+Inf) follows.
inline constexpr std::array<double, 14> kLatencyBucketBounds = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1,    0.25,  0.5,    1,     2.5,  5,     10};
inline constexpr size_t kLatencyBuckets = kLatencyBucketBounds.size() + 1;

// The bucket that counts `elapsed` (the first whose bound it does not pass).
inline size_t LatencyBucketOf(absl::Duration elapsed) {
  const double seconds = absl::ToDoubleSeconds(elapsed);
  return static_cast<size_t>(std::lower_bound(kLatencyBucketBounds.begin(),
                                              kLatencyBucketBounds.end(),
                                              seconds) -
                             kLatencyBucketBounds.begin());
}

struct Counters {
  std::atomic<uint64_t> deliveries{0};   // events queued to a channel
  std::atomic<uint64_t> overflows{0};    // events a full channel dropped
  std::atomic<uint64_t> streams_started{0};
  std::atomic<uint64_t> streams_ended{0};
  // The delivery lag (CountDeliveryLag): a histogram over
  // kLatencyBucketBounds, and the lags summed in nanoseconds. Bumped by the
  // streams' threads, so kept off the cache line of `deliveries`, which the
  // dispatchers bump at every push.
  alignas(64) std::array<std::atomic<uint64_t>, kLatencyBuckets> delivery_lag{};
  std::atomic<uint64_t> delivery_lag_nanos{0};
};

// The process's counters; never destroyed.
inline Counters& Global() {
  static Counters* counters = new Counters;
  return *counters;
}

inline void CountDelivery() {
  Global().deliveries.fetch_add(1, std::memory_order_relaxed);
}
inline void CountOverflow() {
  Global().overflows.fetch_add(1, std::memory_order_relaxed);
}
// A Subscribe stream took a log event from its channel for a write, `lag`
// after the hub queued it for its commit: the server's part of the time
// from a send to its delivery (commit, fan-out, the stream's turn to write).
inline void CountDeliveryLag(absl::Duration lag) {
  if (lag < absl::ZeroDuration()) lag = absl::ZeroDuration();
  Counters& c = Global();
  c.delivery_lag[LatencyBucketOf(lag)].fetch_add(1, std::memory_order_relaxed);
  c.delivery_lag_nanos.fetch_add(
      static_cast<uint64_t>(absl::ToInt64Nanoseconds(lag)),
      std::memory_order_relaxed);
}
inline void StreamStarted() {
  Global().streams_started.fetch_add(1, std::memory_order_relaxed);
}
inline void StreamEnded() {
  Global().streams_ended.fetch_add(1, std::memory_order_relaxed);
}
// Streams started and not ended. Both counters are read separately, so a
// stream that starts and ends meanwhile may be missed, never counted twice
// over: ended is read first.
inline uint64_t OpenStreams() {
  const uint64_t ended = Global().streams_ended.load(std::memory_order_relaxed);
  const uint64_t started =
      Global().streams_started.load(std::memory_order_relaxed);
  return started > ended ? started - ended : 0;
}

// What the process uses, from getrusage and /proc/self.
struct ProcessUsage {
  absl::Duration cpu_user;
  absl::Duration cpu_system;
  uint64_t resident_bytes = 0;       // 0 when /proc cannot be read
  uint64_t peak_resident_bytes = 0;  // ditto
  uint32_t threads = 0;              // ditto
  absl::Duration cpu() const { return cpu_user + cpu_system; }
};
ProcessUsage ReadProcessUsage();

// When the process started (from /proc/self/stat; the first call's time when
// that cannot be read). The same value on every call.
absl::Time ProcessStartTime();

// The cores this process may run on (at least 1).
uint32_t CpuCount();

// CPU use over a sliding window, from samples of the process's cumulative
// CPU time taken every window/kSamplesPerWindow (see StatsService). The first
// sample is the process start with no CPU used, so until a window has passed
// the figure covers the whole uptime. Thread-safe.
class CpuWindow {
 public:
  static constexpr int kSamplesPerWindow = 60;

  CpuWindow(absl::Duration window, absl::Time process_start);

  // Records the cumulative CPU time `cpu` at `now`; drops samples that can
  // no longer be the start of a window.
  void Sample(absl::Time now, absl::Duration cpu);

  struct Usage {
    double percent = 0;     // CPU time / wall time * 100, of one core
    absl::Duration covers;  // the wall time it is over
  };
  // CPU use from the oldest sample within `window` of `now` to (`now`,
  // `cpu`).
  Usage Over(absl::Time now, absl::Duration cpu);

  // How often Sample should be called.
  absl::Duration interval() const { return interval_; }

 private:
  struct Point {
    absl::Time time;
    absl::Duration cpu;
  };
  const absl::Duration window_;
  const absl::Duration interval_;
  Mutex mu_;
  std::deque<Point> samples_ ABSL_GUARDED_BY(mu_);  // oldest first
};

}  // namespace parley::metrics

#endif  // PARLEY_SERVER_COMMON_METRICS_H_
