#include "server/common/worker_pool.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/errors.h"

namespace parley {

WorkerPool::WorkerPool(std::string name, WorkerPoolOptions options)
    : name_(std::move(name)), options_(options) {
  const size_t n = std::max<size_t>(1, options_.threads);
  threads_.reserve(n);
  for (size_t i = 0; i < n; ++i) threads_.emplace_back([this] { Loop(); });
}

WorkerPool::~WorkerPool() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    cv_.SignalAll();
  }
  for (std::thread& t : threads_) t.join();
}

absl::Status WorkerPool::Submit(absl::AnyInvocable<void()> task) {
  MutexLock lock(&mu_);
  if (stopping_) {
    return WithReason(absl::UnavailableError(absl::StrCat(
                          "the server is shutting down (", name_, ")")),
                      "SHUTTING_DOWN");
  }
  // Waiting tasks are those beyond the threads' share: with every thread
  // busy, at most queue_limit more.
  if (running_ + queue_.size() >= threads_.size() + options_.queue_limit) {
    return WithReason(
        absl::ResourceExhaustedError(absl::StrCat(
            "the server is busy (", name_, ": ", running_, " of ",
            threads_.size(), " threads busy, ", queue_.size(), " of ",
            options_.queue_limit, " waiting); retry later")),
        "SERVER_BUSY");
  }
  queue_.push_back(std::move(task));
  cv_.Signal();
  return absl::OkStatus();
}

size_t WorkerPool::InFlight() {
  MutexLock lock(&mu_);
  return running_ + queue_.size();
}

void WorkerPool::Loop() {
  mu_.Lock();
  while (true) {
    if (queue_.empty()) {
      if (stopping_) break;
      cv_.Wait();
      continue;
    }
    absl::AnyInvocable<void()> task = std::move(queue_.front());
    queue_.pop_front();
    ++running_;
    mu_.Unlock();
    task();
    task = nullptr;  // What it holds is released before the count drops.
    mu_.Lock();
    --running_;
  }
  mu_.Unlock();
}

}  // namespace parley
