#include "server/store/write_queue.h"

#include <algorithm>
#include <utility>

#include "server/common/metrics.h"
#include "server/store/errors.h"

namespace parley::store {

WriteQueue::WriteQueue(size_t max_batch, Clock* clock)
    : max_batch_(std::max<size_t>(max_batch, 1)), clock_(clock) {}

WriteQueue::~WriteQueue() { Close(); }

void WriteQueue::Start(Commit commit, absl::AnyInvocable<void()> after_batch) {
  MutexLock close_lock(&close_mu_);
  {
    MutexLock lock(&mu_);
    running_ = true;
  }
  writer_ = std::thread(
      [this, commit = std::move(commit),
       after_batch = std::move(after_batch)]() mutable {
        Run(std::move(commit), std::move(after_batch));
      });
}

void WriteQueue::Enqueue(std::variant<DirectoryWrite, AppendEvent> write,
                         WriteDone done) {
  const absl::Time submitted = clock_->Now();
  {
    MutexLock lock(&mu_);
    if (running_) {
      queue_.push_back(
          Pending{std::move(write), std::move(done), closing_, submitted});
      cv_.Signal();
      return;
    }
  }
  if (done) done(ShuttingDown());
}

void WriteQueue::Close() {
  MutexLock close_lock(&close_mu_);
  {
    MutexLock lock(&mu_);
    closing_ = true;
    cv_.SignalAll();
  }
  if (writer_.joinable()) writer_.join();
}

StoreStats WriteQueue::stats() const {
  MutexLock lock(&stats_mu_);
  return stats_;
}

void WriteQueue::Run(Commit commit, absl::AnyInvocable<void()> after_batch) {
  std::vector<Pending> batch;
  while (true) {
    {
      MutexLock lock(&mu_);
      while (queue_.empty() && !closing_) cv_.Wait();
      if (queue_.empty()) {
        running_ = false;
        return;
      }
      const size_t n = std::min(queue_.size(), max_batch_);
      batch.reserve(n);
      for (size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    std::vector<absl::StatusOr<int64_t>> results = RunBatch(commit, batch);
    for (size_t i = 0; i < batch.size(); ++i) {
      if (batch[i].done) batch[i].done(std::move(results[i]));
    }
    batch.clear();
    if (after_batch) after_batch();
  }
}

std::vector<absl::StatusOr<int64_t>> WriteQueue::RunBatch(
    Commit& commit, std::vector<Pending>& batch) {
  const size_t runnable = static_cast<size_t>(
      std::count_if(batch.begin(), batch.end(),
                    [](const Pending& p) { return !p.rejected; }));
  if (runnable == 0) {
    std::vector<absl::StatusOr<int64_t>> results;
    results.reserve(batch.size());
    for (size_t i = 0; i < batch.size(); ++i) results.push_back(ShuttingDown());
    return results;
  }

  const absl::Time start = clock_->Now();
  std::vector<absl::StatusOr<int64_t>> results = commit(batch);
  const absl::Time committed = clock_->Now();
  for (size_t i = 0; i < batch.size(); ++i) {
    if (batch[i].rejected) results[i] = ShuttingDown();
  }

  const absl::Duration elapsed = committed - start;
  MutexLock lock(&stats_mu_);
  for (const Pending& pending : batch) {
    if (pending.rejected) continue;
    const absl::Duration waited = committed - pending.submitted;
    ++stats_.write_wait_buckets[metrics::LatencyBucketOf(waited)];
    stats_.write_wait_total += waited;
    stats_.longest_write_wait = std::max(stats_.longest_write_wait, waited);
  }
  ++stats_.transactions;
  stats_.writes += runnable;
  stats_.largest_batch = std::max(stats_.largest_batch, runnable);
  stats_.commit_time_total += elapsed;
  stats_.longest_commit = std::max(stats_.longest_commit, elapsed);
  return results;
}

}  // namespace parley::store
