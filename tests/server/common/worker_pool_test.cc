#include "server/common/worker_pool.h"

#include <algorithm>
#include <memory>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/common/errors.h"
#include "server/common/mutex.h"

namespace parley {
namespace {

constexpr absl::Duration kLimit = absl::Seconds(30);

WorkerPoolOptions Options(size_t threads, size_t queue_limit) {
  WorkerPoolOptions options;
  options.threads = threads;
  options.queue_limit = queue_limit;
  return options;
}

// Records which tasks ran, in order; WaitFor blocks until `n` have.
class Recorder {
 public:
  void Add(int v) {
    MutexLock lock(&mu_);
    runs_.push_back(v);
    cv_.SignalAll();
  }
  std::vector<int> WaitFor(size_t n) {
    const absl::Time deadline = absl::Now() + kLimit;
    MutexLock lock(&mu_);
    while (runs_.size() < n && cv_.WaitWithDeadline(deadline)) {
    }
    return runs_;
  }

 private:
  Mutex mu_;
  CondVar cv_{&mu_};
  std::vector<int> runs_;
};

// A task that holds its thread until released, and says when it started.
struct Blocker {
  Notification started;
  Notification release;
  absl::AnyInvocable<void()> Task() {
    return [this] {
      started.Notify();
      release.WaitForNotification();
    };
  }
};

TEST(WorkerPoolTest, RunsTasksOffTheCallersThread) {
  WorkerPool pool("test", Options(2, 4));
  const std::thread::id caller = std::this_thread::get_id();
  Mutex mu;
  std::vector<std::thread::id> ran_on;
  Recorder r;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(pool.Submit([&, i] {
                      {
                        MutexLock lock(&mu);
                        ran_on.push_back(std::this_thread::get_id());
                      }
                      r.Add(i);
                    })
                    .ok());
  }
  ASSERT_EQ(r.WaitFor(3).size(), 3u);
  MutexLock lock(&mu);
  for (const std::thread::id& id : ran_on) EXPECT_NE(id, caller);
}

TEST(WorkerPoolTest, AFullQueueRefusesAtOnceWithResourceExhausted) {
  WorkerPool pool("password hashing", Options(2, 3));
  Blocker a, b;
  ASSERT_TRUE(pool.Submit(a.Task()).ok());
  ASSERT_TRUE(pool.Submit(b.Task()).ok());
  ASSERT_TRUE(a.started.WaitForNotificationWithTimeout(kLimit));
  ASSERT_TRUE(b.started.WaitForNotificationWithTimeout(kLimit));
  // Both threads are held: three may wait, the fourth is refused unrun.
  Recorder r;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(pool.Submit([&r, i] { r.Add(i); }).ok()) << i;
  }
  EXPECT_EQ(pool.InFlight(), 5u);
  bool refused_ran = false;
  const absl::Status refused =
      pool.Submit([&refused_ran] { refused_ran = true; });
  EXPECT_TRUE(absl::IsResourceExhausted(refused)) << refused;
  EXPECT_EQ(ErrorReason(refused), "SERVER_BUSY");
  EXPECT_NE(refused.message().find("password hashing"), absl::string_view::npos)
      << refused.message();

  a.release.Notify();
  b.release.Notify();
  // Two threads: they start in order but may record in any.
  std::vector<int> ran = r.WaitFor(3);
  std::sort(ran.begin(), ran.end());
  EXPECT_EQ(ran, (std::vector<int>{0, 1, 2}));
  EXPECT_FALSE(refused_ran);
}

TEST(WorkerPoolTest, QueueLimitZeroTakesOnlyWhatAFreeThreadCanStart) {
  WorkerPool pool("test", Options(1, 0));
  Blocker a;
  ASSERT_TRUE(pool.Submit(a.Task()).ok());
  ASSERT_TRUE(a.started.WaitForNotificationWithTimeout(kLimit));
  EXPECT_TRUE(absl::IsResourceExhausted(pool.Submit([] {})));
  a.release.Notify();
}

TEST(WorkerPoolTest, WaitingTasksStartInTheOrderTheyWereAccepted) {
  WorkerPool pool("test", Options(1, 10));
  Blocker a;
  ASSERT_TRUE(pool.Submit(a.Task()).ok());
  ASSERT_TRUE(a.started.WaitForNotificationWithTimeout(kLimit));
  Recorder r;
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(pool.Submit([&r, i] { r.Add(i); }).ok());
  }
  a.release.Notify();
  EXPECT_EQ(r.WaitFor(10), (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
}

TEST(WorkerPoolTest, DestructionRunsEveryAcceptedTask) {
  auto pool = std::make_unique<WorkerPool>("test", Options(1, 10));
  Blocker a;
  ASSERT_TRUE(pool->Submit(a.Task()).ok());
  Recorder r;
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(pool->Submit([&r, i] { r.Add(i); }).ok());
  }
  std::thread releaser([&a] { a.release.Notify(); });
  pool.reset();  // Returns only once everything accepted has run.
  releaser.join();
  EXPECT_EQ(r.WaitFor(0), (std::vector<int>{0, 1, 2, 3, 4}));
}

}  // namespace
}  // namespace parley
