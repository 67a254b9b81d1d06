#include "server/common/metrics.h"

#include <cstdint>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace parley::metrics {
namespace {

TEST(MetricsTest, ReadsWhatTheProcessUses) {
  // Burn a little CPU so that the figure cannot be zero.
  volatile uint64_t x = 0;
  const absl::Time until = absl::Now() + absl::Milliseconds(20);
  while (absl::Now() < until) x = x + 1;
  const ProcessUsage usage = ReadProcessUsage();
  EXPECT_GT(usage.cpu(), absl::ZeroDuration());
  EXPECT_GT(usage.resident_bytes, 1u << 20);
  EXPECT_GE(usage.peak_resident_bytes, usage.resident_bytes);
  EXPECT_GE(usage.threads, 1u);
  EXPECT_GE(CpuCount(), 1u);
  const absl::Time start = ProcessStartTime();
  EXPECT_LE(start, absl::Now());
  EXPECT_GT(start, absl::Now() - absl::Hours(1));
  EXPECT_EQ(ProcessStartTime(), start);
}

TEST(MetricsTest, OpenStreamsAreStartedLessEnded) {
  const uint64_t before = OpenStreams();
  StreamStarted();
  StreamStarted();
  StreamEnded();
  EXPECT_EQ(OpenStreams(), before + 1);
  StreamEnded();
  EXPECT_EQ(OpenStreams(), before);
}

TEST(CpuWindowTest, CoversTheUptimeUntilAWindowHasPassed) {
  const absl::Time start = absl::FromUnixSeconds(1000);
  CpuWindow cpu(absl::Seconds(60), start);
  EXPECT_EQ(cpu.interval(), absl::Seconds(1));
  // 5 s of CPU in 10 s: 50%.
  CpuWindow::Usage u = cpu.Over(start + absl::Seconds(10), absl::Seconds(5));
  EXPECT_DOUBLE_EQ(u.percent, 50);
  EXPECT_EQ(u.covers, absl::Seconds(10));
}

TEST(CpuWindowTest, SlidesWithTheSamples) {
  const absl::Time start = absl::FromUnixSeconds(1000);
  CpuWindow cpu(absl::Seconds(60), start);
  // Idle for the first 60 s, then two cores busy.
  for (int s = 1; s <= 120; ++s) {
    const absl::Duration used = s <= 60 ? absl::ZeroDuration()
                                        : absl::Seconds(2 * (s - 60));
    cpu.Sample(start + absl::Seconds(s), used);
  }
  CpuWindow::Usage u =
      cpu.Over(start + absl::Seconds(120), absl::Seconds(120));
  EXPECT_EQ(u.covers, absl::Seconds(60));
  EXPECT_DOUBLE_EQ(u.percent, 200);
  // Half a window later with no CPU used since: two cores busy for half of
  // the window, one core's worth on average.
  u = cpu.Over(start + absl::Seconds(150), absl::Seconds(120));
  EXPECT_EQ(u.covers, absl::Seconds(60));
  EXPECT_DOUBLE_EQ(u.percent, 100);
}

}  // namespace
}  // namespace parley::metrics
