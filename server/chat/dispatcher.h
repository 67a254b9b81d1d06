// Owns: the delivery threads and their task queues, a key always on one.
// Promises: a key's tasks run one at a time, in order; Stop runs the rest.
// Does not: know logs, events or subscribers; its tasks must not block.
#ifndef PARLEY_SERVER_CHAT_DISPATCHER_H_
#define PARLEY_SERVER_CHAT_DISPATCHER_H_

#include <cstddef>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/strings/string_view.h"
#include "server/chat/channel.h"
#include "server/common/mutex.h"

namespace parley::chat {

// Different keys (logs) run in parallel on `threads` threads (at least one).
// Thread-safe, but for Stop.
class Dispatcher {
 public:
  explicit Dispatcher(size_t threads);
  ~Dispatcher();  // Stop
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Queues `task` for `key`'s thread.
  void Dispatch(absl::string_view key, absl::AnyInvocable<void()> task);
  // WakeAll for a delivery on `key`'s thread: a large room's wake-ups (each
  // starts a stream write) are shared with the other threads, so the last
  // subscriber is not served a whole room's writes after the first.
  void Wake(absl::string_view key, Wakeups wake);
  // Runs what is queued, stops the threads, then runs on the caller what
  // was queued after they drained. Idempotent; call from one thread.
  void Stop();

 private:
  // A thread and its queue, in order.
  struct Worker {
    Mutex mu;
    CondVar cv{&mu};
    std::deque<absl::AnyInvocable<void()>> queue ABSL_GUARDED_BY(mu);
    bool stop ABSL_GUARDED_BY(mu) = false;
    std::thread thread;
  };

  // The index of `key`'s worker in workers_.
  size_t WorkerOf(absl::string_view key) const;
  // Queues `task` on `w`, at the front when `first`.
  static void Enqueue(Worker* w, absl::AnyInvocable<void()> task, bool first);
  static void Run(Worker* w);

  std::vector<std::unique_ptr<Worker>> workers_;
  bool stopped_ = false;
};

}  // namespace parley::chat

#endif  // PARLEY_SERVER_CHAT_DISPATCHER_H_
