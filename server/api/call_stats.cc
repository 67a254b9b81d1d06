#include "server/api/call_stats.h"

#include <algorithm>
#include <utility>

namespace parley::api {
namespace {

// How many whole `d`s fit in `n`.
int64_t Quotient(absl::Duration n, absl::Duration d) {
  absl::Duration remainder;
  return absl::IDivDuration(n, d, &remainder);
}

}  // namespace

// One method's figures. The totals are atomics; the window is a ring of
// buckets, one per bucket_width_, each tagged with its bucket number so that
// a stale one is recognized and reset.
class CallStats::Method {
 public:
  Method(std::string name, Kind kind, int64_t ring_size)
      : name(std::move(name)), kind(kind), ring(ring_size) {}

  struct Slot {
    int64_t bucket = -1;
    uint64_t requests = 0;
    uint64_t errors = 0;
    uint64_t timed = 0;
    absl::Duration total;
    absl::Duration peak;
  };

  const std::string name;
  const Kind kind;
  std::atomic<uint64_t> started{0};
  std::atomic<uint64_t> ended{0};
  std::atomic<uint64_t> errors{0};
  std::atomic<int64_t> nanos_sum{0};
  std::array<std::atomic<uint64_t>, metrics::kLatencyBuckets> histogram{};

  Mutex mu;
  std::vector<Slot> ring ABSL_GUARDED_BY(mu);
};

CallStats::CallStats(Clock* clock, absl::Duration window)
    : clock_(clock),
      epoch_(clock->Now()),
      bucket_width_(std::max(absl::Seconds(1),
                             absl::Ceil(window / 600, absl::Seconds(1)))),
      buckets_(std::max<int64_t>(
          1, Quotient(window + bucket_width_ - absl::Nanoseconds(1),
                              bucket_width_))) {}

CallStats::~CallStats() = default;

int64_t CallStats::BucketOf(absl::Time t) const {
  // Times before the epoch (a clock that went back) count in bucket 0.
  if (t <= epoch_) return 0;
  return Quotient(t - epoch_, bucket_width_);
}

CallStats::Method* CallStats::Find(absl::string_view name, Kind kind) {
  MutexLock lock(&mu_);
  auto it = methods_.find(name);
  if (it != methods_.end()) return it->second.get();
  if (methods_.size() >= kMaxMethods) {
    name = kOtherMethod;
    it = methods_.find(name);
    if (it != methods_.end()) return it->second.get();
    // Unknown calls of any shape: counted, never timed.
    kind = Kind::kStreaming;
  }
  auto method = std::make_unique<Method>(std::string(name), kind, buckets_);
  Method* found = method.get();
  methods_.emplace(std::string(name), std::move(method));
  return found;
}

void CallStats::Started(Method* method) {
  method->started.fetch_add(1, std::memory_order_relaxed);
}

void CallStats::Ended(Method* method, absl::Duration elapsed, bool ok) {
  const bool timed = method->kind != Kind::kStreaming;
  elapsed = std::max(elapsed, absl::ZeroDuration());
  if (!ok) method->errors.fetch_add(1, std::memory_order_relaxed);
  if (timed) {
    method->histogram[metrics::LatencyBucketOf(elapsed)].fetch_add(
        1, std::memory_order_relaxed);
    method->nanos_sum.fetch_add(absl::ToInt64Nanoseconds(elapsed),
                                std::memory_order_relaxed);
  }
  const int64_t now = BucketOf(clock_->Now());
  {
    MutexLock lock(&method->mu);
    Method::Slot& slot = method->ring[now % buckets_];
    if (slot.bucket != now) {
      slot = Method::Slot();
      slot.bucket = now;
    }
    ++slot.requests;
    if (!ok) ++slot.errors;
    if (timed) {
      ++slot.timed;
      slot.total += elapsed;
      slot.peak = std::max(slot.peak, elapsed);
    }
  }
  // Last, so that a reader never sees more ended calls than started ones.
  method->ended.fetch_add(1, std::memory_order_release);
}

CallStats::Window CallStats::WindowOf(Method* method, int64_t now_bucket) {
  Window window;
  MutexLock lock(&method->mu);
  for (const Method::Slot& slot : method->ring) {
    // The current bucket and the buckets_ - 1 before it.
    if (slot.bucket < 0 || slot.bucket > now_bucket ||
        slot.bucket <= now_bucket - buckets_) {
      continue;
    }
    window.requests += slot.requests;
    window.errors += slot.errors;
    window.timed += slot.timed;
    window.total += slot.total;
    window.peak = std::max(window.peak, slot.peak);
  }
  return window;
}

std::vector<CallStats::MethodFigures> CallStats::Snapshot() {
  std::vector<Method*> methods;
  {
    MutexLock lock(&mu_);
    methods.reserve(methods_.size());
    for (const auto& [name, method] : methods_) methods.push_back(method.get());
  }
  const int64_t now = BucketOf(clock_->Now());
  std::vector<MethodFigures> out;
  out.reserve(methods.size());
  for (Method* method : methods) {
    MethodFigures f;
    f.name = method->name;
    f.kind = method->kind;
    f.requests = method->ended.load(std::memory_order_acquire);
    const uint64_t started = method->started.load(std::memory_order_relaxed);
    f.in_flight = started > f.requests ? started - f.requests : 0;
    f.errors = method->errors.load(std::memory_order_relaxed);
    f.window = WindowOf(method, now);
    if (method->kind != Kind::kStreaming) {
      f.buckets.reserve(method->histogram.size());
      for (const auto& count : method->histogram) {
        f.buckets.push_back(count.load(std::memory_order_relaxed));
      }
      f.seconds_sum =
          static_cast<double>(method->nanos_sum.load(std::memory_order_relaxed)) /
          1e9;
    }
    out.push_back(std::move(f));
  }
  return out;
}

CallStats::Window CallStats::UnaryWindow() {
  std::vector<Method*> methods;
  {
    MutexLock lock(&mu_);
    for (const auto& [name, method] : methods_) {
      if (method->kind == Kind::kUnary) methods.push_back(method.get());
    }
  }
  const int64_t now = BucketOf(clock_->Now());
  Window all;
  for (Method* method : methods) {
    const Window w = WindowOf(method, now);
    all.requests += w.requests;
    all.errors += w.errors;
    all.timed += w.timed;
    all.total += w.total;
    all.peak = std::max(all.peak, w.peak);
  }
  return all;
}

}  // namespace parley::api
