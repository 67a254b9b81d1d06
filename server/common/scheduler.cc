#include "server/common/scheduler.h"

#include "absl/time/clock.h"

namespace parley {

Scheduler::Scheduler() : thread_([this] { Loop(); }) {}

Scheduler::~Scheduler() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    cv_.SignalAll();
  }
  thread_.join();
}

Scheduler::TaskId Scheduler::Schedule(absl::Time deadline,
                                      std::function<void()> fn) {
  MutexLock lock(&mu_);
  const TaskId id = next_id_++;
  const bool earliest = tasks_.empty() || deadline < tasks_.begin()->first.first;
  tasks_.emplace(std::make_pair(deadline, id), std::move(fn));
  deadlines_.emplace(id, deadline);
  if (earliest) cv_.Signal();
  return id;
}

bool Scheduler::Cancel(TaskId id) {
  MutexLock lock(&mu_);
  auto it = deadlines_.find(id);
  if (it == deadlines_.end()) return false;
  tasks_.erase(std::make_pair(it->second, id));
  deadlines_.erase(it);
  return true;
}

size_t Scheduler::Pending() {
  MutexLock lock(&mu_);
  return tasks_.size();
}

void Scheduler::Loop() {
  mu_.Lock();
  while (!stopping_) {
    if (tasks_.empty()) {
      cv_.Wait();
      continue;
    }
    auto first = tasks_.begin();
    if (first->first.first > absl::Now()) {
      cv_.WaitWithDeadline(first->first.first);
      continue;
    }
    std::function<void()> fn = std::move(first->second);
    deadlines_.erase(first->first.second);
    tasks_.erase(first);
    mu_.Unlock();
    fn();
    mu_.Lock();
  }
  mu_.Unlock();
}

}  // namespace parley
