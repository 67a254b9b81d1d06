// Group commit, for every store: the queue that Directory::Submit and
// EventLog::Append add to, and the writer thread that takes everything
// queued (up to `max_batch` writes) as one batch, hands it to the store to
// commit in one transaction, and then calls every `done` in submission
// order, on the writer thread, holding no lock: a callback may write again,
// and writes may be queued while holding locks the callbacks take. It also
// keeps the writer's counters (StoreStats).
//
// Close stops accepting writes, commits what is queued and stops the
// thread. A write queued while the writer drains fails with UNAVAILABLE
// (SHUTTING_DOWN) on the writer thread, one queued once Close has returned
// fails the same way inline. Thread-safe.
#ifndef PARLEY_SERVER_STORE_WRITE_QUEUE_H_
#define PARLEY_SERVER_STORE_WRITE_QUEUE_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <thread>
#include <variant>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/common/clock.h"
#include "server/common/mutex.h"
#include "server/store/types.h"

namespace parley::store {

class WriteQueue {
 public:
  // A queued write. `rejected`: queued while closing; fails without running.
  struct Pending {
    std::variant<DirectoryWrite, AppendEvent> write;
    WriteDone done;
    bool rejected = false;
    absl::Time submitted;  // for StoreStats' write wait
  };
  // Commits the writes of `batch` that are not rejected in one transaction
  // and returns one result per write of `batch` (those of rejected ones are
  // ignored). Runs on the writer thread.
  using Commit = absl::AnyInvocable<std::vector<absl::StatusOr<int64_t>>(
      std::vector<Pending>& batch)>;

  // `clock` times the commits and write waits; it must outlive the queue.
  WriteQueue(size_t max_batch, Clock* clock);
  WriteQueue(const WriteQueue&) = delete;
  WriteQueue& operator=(const WriteQueue&) = delete;
  // Closes.
  ~WriteQueue();

  // Starts the writer thread, which commits each batch with `commit` and,
  // after its callbacks, runs `after_batch` (when set). Call once.
  void Start(Commit commit, absl::AnyInvocable<void()> after_batch = nullptr);
  // Queues `write`; `done` runs after it is committed or failed.
  void Enqueue(std::variant<DirectoryWrite, AppendEvent> write,
               WriteDone done);
  // Idempotent; must not be called from a `done` callback.
  void Close();

  // The counters of transactions, writes, batches, commit times and write
  // waits (the checkpoint fields are 0).
  StoreStats stats() const;

 private:
  void Run(Commit commit, absl::AnyInvocable<void()> after_batch);
  // Runs one batch through `commit` and counts it.
  std::vector<absl::StatusOr<int64_t>> RunBatch(Commit& commit,
                                                std::vector<Pending>& batch);

  const size_t max_batch_;
  Clock* const clock_;

  Mutex mu_;
  CondVar cv_{&mu_};
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  // False once the writer thread has drained the queue and stopped (or
  // before Start).
  bool running_ ABSL_GUARDED_BY(mu_) = false;

  mutable Mutex stats_mu_;
  StoreStats stats_ ABSL_GUARDED_BY(stats_mu_);

  Mutex close_mu_;  // serializes Close
  std::thread writer_ ABSL_GUARDED_BY(close_mu_);
};

}  // namespace parley::store

#endif  // PARLEY_SERVER_STORE_WRITE_QUEUE_H_
