#include "server/common/scheduler.h"

#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/common/mutex.h"

namespace parley {
namespace {

// Collects task runs; Wait blocks until `n` have run or a deadline passes.
class Recorder {
 public:
  void Add(int v) {
    MutexLock lock(&mu_);
    runs_.push_back(v);
    cv_.SignalAll();
  }
  std::vector<int> WaitFor(size_t n, absl::Duration limit = absl::Seconds(10)) {
    const absl::Time deadline = absl::Now() + limit;
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

TEST(SchedulerTest, RunsTasksInDeadlineOrder) {
  Scheduler s;
  Recorder r;
  const absl::Time now = absl::Now();
  s.Schedule(now + absl::Milliseconds(60), [&] { r.Add(3); });
  s.Schedule(now + absl::Milliseconds(20), [&] { r.Add(1); });
  s.Schedule(now + absl::Milliseconds(40), [&] { r.Add(2); });
  EXPECT_EQ(r.WaitFor(3), (std::vector<int>{1, 2, 3}));
}

TEST(SchedulerTest, DoesNotRunBeforeTheDeadline) {
  Scheduler s;
  Recorder r;
  const absl::Time start = absl::Now();
  s.Schedule(start + absl::Milliseconds(100), [&] { r.Add(1); });
  ASSERT_EQ(r.WaitFor(1).size(), 1u);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(100));
}

TEST(SchedulerTest, CancelledTaskNeverRuns) {
  Scheduler s;
  Recorder r;
  const absl::Time now = absl::Now();
  auto id = s.Schedule(now + absl::Milliseconds(20), [&] { r.Add(1); });
  s.Schedule(now + absl::Milliseconds(40), [&] { r.Add(2); });
  EXPECT_TRUE(s.Cancel(id));
  EXPECT_FALSE(s.Cancel(id));
  EXPECT_EQ(r.WaitFor(1), (std::vector<int>{2}));
  EXPECT_EQ(s.Pending(), 0u);
}

TEST(SchedulerTest, ATaskMayScheduleAnother) {
  Scheduler s;
  Recorder r;
  s.Schedule(absl::Now(), [&] {
    r.Add(1);
    s.Schedule(absl::Now(), [&] { r.Add(2); });
  });
  EXPECT_EQ(r.WaitFor(2), (std::vector<int>{1, 2}));
}

}  // namespace
}  // namespace parley
