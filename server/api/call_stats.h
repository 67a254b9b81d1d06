// Per-method call figures of the gRPC server, filled by the stats
// interceptor (server/api/interceptor.h) and read by StatsService: calls and
// errors since start, calls in flight, a response-time histogram, and
// requests, errors, average and peak response time over a sliding window.
//
// Recording a call costs a few relaxed atomic adds and one short critical
// section on the method's own mutex (its ring of window buckets); methods are
// found once per call under a mutex of the registry. Only unary calls are
// timed: a stream's length says nothing about the server's speed, so streams
// count as calls and errors only. Thread-safe.
#ifndef PARLEY_SERVER_API_CALL_STATS_H_
#define PARLEY_SERVER_API_CALL_STATS_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/common/clock.h"
#include "server/common/metrics.h"
#include "server/common/mutex.h"

namespace parley::api {

class CallStats {
 public:
  enum class Kind {
    kUnary,      // timed, in the overall response time
    kLongPoll,   // timed per method, left out of the overall response time
    kStreaming,  // not timed
  };

  // Methods beyond this many share one entry, kOtherMethod, so that calls to
  // made-up names cannot grow the registry without bound.
  static constexpr size_t kMaxMethods = 256;
  static constexpr char kOtherMethod[] = "(other)";

  // `window` is rounded up to whole buckets of one second (or, for windows
  // over 10 minutes, of window/600).
  CallStats(Clock* clock, absl::Duration window);
  CallStats(const CallStats&) = delete;
  CallStats& operator=(const CallStats&) = delete;
  ~CallStats();

  class Method;
  // The entry of `name`, created on first use with `kind`. Never null; valid
  // as long as this CallStats.
  Method* Find(absl::string_view name, Kind kind);

  // A call of `method` started / ended after `elapsed` (ignored unless the
  // method is timed), `ok` when its status was OK.
  void Started(Method* method);
  void Ended(Method* method, absl::Duration elapsed, bool ok);

  Clock* clock() const { return clock_; }
  absl::Duration window() const { return bucket_width_ * buckets_; }

  struct Window {
    uint64_t requests = 0;
    uint64_t errors = 0;
    uint64_t timed = 0;  // the calls that were timed
    absl::Duration total;
    absl::Duration peak;
    absl::Duration average() const {
      return timed == 0 ? absl::ZeroDuration()
                        : total / static_cast<int64_t>(timed);
    }
  };
  struct MethodFigures {
    std::string name;
    Kind kind = Kind::kUnary;
    uint64_t requests = 0;
    uint64_t errors = 0;
    uint64_t in_flight = 0;
    Window window;
    // metrics::kLatencyBuckets counts (empty for streaming methods).
    std::vector<uint64_t> buckets;
    double seconds_sum = 0;
  };
  // Every method, by name, as of now.
  std::vector<MethodFigures> Snapshot();
  // Seed 004's figure: the window over every kUnary method.
  Window UnaryWindow();

 private:
  // The bucket number of `t`.
  int64_t BucketOf(absl::Time t) const;
  Window WindowOf(Method* method, int64_t now_bucket);

  Clock* const clock_;
  const absl::Time epoch_;
  const absl::Duration bucket_width_;
  const int64_t buckets_;

  Mutex mu_;  // guards the map, not the entries
  std::map<std::string, std::unique_ptr<Method>, std::less<>> methods_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace parley::api

#endif  // PARLEY_SERVER_API_CALL_STATS_H_
