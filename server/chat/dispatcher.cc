#include "server/chat/dispatcher.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/hash/hash.h"

namespace parley::chat {

Dispatcher::Dispatcher(size_t threads) {
  for (size_t i = 0; i < std::max<size_t>(threads, 1); ++i) {
    auto w = std::make_unique<Worker>();
    w->thread = std::thread([w = w.get()] { Run(w); });
    workers_.push_back(std::move(w));
  }
}

Dispatcher::~Dispatcher() { Stop(); }

void Dispatcher::Stop() {
  if (stopped_) return;
  stopped_ = true;
  for (auto& w : workers_) {
    MutexLock lock(&w->mu);
    w->stop = true;
    w->cv.Signal();
  }
  for (auto& w : workers_) w->thread.join();
  // A worker that had stopped may have been handed part of another's
  // wake-ups (Wake) after it drained: run them here.
  for (auto& w : workers_) {
    std::deque<absl::AnyInvocable<void()>> left;
    {
      MutexLock lock(&w->mu);
      left.swap(w->queue);
    }
    for (auto& task : left) task();
  }
}

size_t Dispatcher::WorkerOf(absl::string_view key) const {
  return absl::Hash<absl::string_view>()(key) % workers_.size();
}

void Dispatcher::Dispatch(absl::string_view key,
                          absl::AnyInvocable<void()> task) {
  Enqueue(workers_[WorkerOf(key)].get(), std::move(task), /*first=*/false);
}

void Dispatcher::Enqueue(Worker* w, absl::AnyInvocable<void()> task,
                         bool first) {
  MutexLock lock(&w->mu);
  if (first) {
    w->queue.push_front(std::move(task));
  } else {
    w->queue.push_back(std::move(task));
  }
  if (w->queue.size() == 1) w->cv.Signal();
}

void Dispatcher::Run(Worker* w) {
  std::deque<absl::AnyInvocable<void()>> batch;
  for (;;) {
    {
      MutexLock lock(&w->mu);
      while (w->queue.empty() && !w->stop) w->cv.Wait();
      if (w->queue.empty()) return;  // stopping, and drained
      batch.swap(w->queue);
    }
    for (auto& task : batch) task();
    batch.clear();
  }
}

// Below this many wake-ups a delivery stays on its own thread: handing a
// part to another costs about as much as a few stream writes.
constexpr size_t kSplitWakeups = 32;

void Dispatcher::Wake(absl::string_view key, Wakeups wake) {
  const size_t n = workers_.size();
  if (n < 2 || wake.size() < kSplitWakeups) {
    WakeAll(wake);
    return;
  }
  // Every event is in its channels already, in order; a reader takes what
  // its channel holds whenever it is woken, so the order of wake-ups across
  // readers does not matter. The other parts go to the front of the other
  // workers' queues: they are this event's deliveries, due now.
  const size_t self = WorkerOf(key);
  const size_t per = (wake.size() + n - 1) / n;
  for (size_t i = 1; i < n; ++i) {
    const size_t begin = std::min(wake.size(), i * per);
    const size_t end = std::min(wake.size(), begin + per);
    if (begin == end) break;
    Wakeups part(std::make_move_iterator(wake.begin() + begin),
                 std::make_move_iterator(wake.begin() + end));
    Enqueue(
        workers_[(self + i) % n].get(),
        [part = std::move(part)] { WakeAll(part); }, /*first=*/true);
  }
  wake.resize(std::min(wake.size(), per));
  WakeAll(wake);
}

}  // namespace parley::chat
