// A fixed set of threads the server owns for work that may block (password
// hashing, store reads), so that gRPC's threads never do it, with a bound on
// what may wait: a task offered while every thread is busy and `queue_limit`
// tasks are already waiting is refused at once, RESOURCE_EXHAUSTED with
// reason SERVER_BUSY, rather than queued behind them (a flood is answered,
// not absorbed as ever-growing latency). Tasks start in the order they were
// accepted. Thread-safe. Destroying the pool refuses new tasks, runs every
// task already accepted, then joins the threads; a task must not destroy its
// own pool.
#ifndef PARLEY_SERVER_COMMON_WORKER_POOL_H_
#define PARLEY_SERVER_COMMON_WORKER_POOL_H_

#include <cstddef>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "server/common/mutex.h"

namespace parley {

struct WorkerPoolOptions {
  size_t threads = 1;      // at least 1
  size_t queue_limit = 0;  // tasks that may wait for a thread; 0: none
};

class WorkerPool {
 public:
  // `name` says what the pool does ("password hashing"), for the refusal's
  // message.
  WorkerPool(std::string name, WorkerPoolOptions options);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Accepts `task` when a thread is free or fewer than queue_limit tasks
  // wait; otherwise drops it unrun and returns RESOURCE_EXHAUSTED (reason
  // SERVER_BUSY), or UNAVAILABLE (SHUTTING_DOWN) once the pool is being
  // destroyed. Never blocks.
  absl::Status Submit(absl::AnyInvocable<void()> task);

  const std::string& name() const { return name_; }
  const WorkerPoolOptions& options() const { return options_; }
  // Tasks accepted and not finished: running plus waiting.
  size_t InFlight();

 private:
  void Loop();

  const std::string name_;
  const WorkerPoolOptions options_;
  Mutex mu_;
  CondVar cv_{&mu_};
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  size_t running_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<absl::AnyInvocable<void()>> queue_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_;
};

}  // namespace parley

#endif  // PARLEY_SERVER_COMMON_WORKER_POOL_H_
