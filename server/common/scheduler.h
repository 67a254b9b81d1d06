// Runs callbacks at deadlines on one thread the server owns: long-poll
// timeouts and the idle-session reaper. Callbacks must be short and must not
// block; they run without the scheduler's lock held, so they may call
// Schedule and Cancel. Thread-safe. Destroying the scheduler stops the
// thread and drops callbacks that have not run.
#ifndef PARLEY_SERVER_COMMON_SCHEDULER_H_
#define PARLEY_SERVER_COMMON_SCHEDULER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <thread>
#include <utility>

#include "absl/time/time.h"
#include "server/common/mutex.h"

namespace parley {

class Scheduler {
 public:
  using TaskId = uint64_t;

  Scheduler();
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Runs `fn` once, at or soon after `deadline`. Returns an id for Cancel.
  TaskId Schedule(absl::Time deadline, std::function<void()> fn);

  // Removes a task that has not started; returns whether it was removed.
  // A task that is running or done is not waited for.
  bool Cancel(TaskId id);

  // The number of tasks waiting to run.
  size_t Pending();

 private:
  void Loop();

  Mutex mu_;
  CondVar cv_{&mu_};
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  TaskId next_id_ ABSL_GUARDED_BY(mu_) = 1;
  // Ordered by (deadline, id) so equal deadlines run in scheduling order.
  std::map<std::pair<absl::Time, TaskId>, std::function<void()>> tasks_
      ABSL_GUARDED_BY(mu_);
  std::map<TaskId, absl::Time> deadlines_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace parley

#endif  // PARLEY_SERVER_COMMON_SCHEDULER_H_
