// CallStats on a manual clock: totals, the histogram, the sliding window and
// what is left out of it (streams, long polls, old buckets).
#include "server/api/call_stats.h"

#include <string>

#include "gtest/gtest.h"

namespace parley::api {
namespace {

const CallStats::MethodFigures* Figures(
    const std::vector<CallStats::MethodFigures>& all, const std::string& name) {
  for (const auto& f : all) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

void Call(CallStats& stats, CallStats::Method* method, absl::Duration took,
          bool ok = true) {
  stats.Started(method);
  stats.Ended(method, took, ok);
}

TEST(CallStatsTest, CountsAndTimesUnaryCalls) {
  ManualClock clock;
  CallStats stats(&clock, absl::Minutes(1));
  auto* send = stats.Find("/p.S/Send", CallStats::Kind::kUnary);
  EXPECT_EQ(stats.Find("/p.S/Send", CallStats::Kind::kUnary), send);
  Call(stats, send, absl::Milliseconds(3));
  Call(stats, send, absl::Milliseconds(9), /*ok=*/false);
  stats.Started(send);  // still running

  const auto all = stats.Snapshot();
  const auto* f = Figures(all, "/p.S/Send");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->requests, 2u);
  EXPECT_EQ(f->errors, 1u);
  EXPECT_EQ(f->in_flight, 1u);
  EXPECT_EQ(f->window.requests, 2u);
  EXPECT_EQ(f->window.errors, 1u);
  EXPECT_EQ(f->window.average(), absl::Milliseconds(6));
  EXPECT_EQ(f->window.peak, absl::Milliseconds(9));
  EXPECT_DOUBLE_EQ(f->seconds_sum, 0.012);
  // 3 ms falls in (0.0025, 0.005], 9 ms in (0.005, 0.01].
  ASSERT_EQ(f->buckets.size(), metrics::kLatencyBuckets);
  EXPECT_EQ(f->buckets[3], 1u);
  EXPECT_EQ(f->buckets[4], 1u);
  uint64_t total = 0;
  for (uint64_t b : f->buckets) total += b;
  EXPECT_EQ(total, 2u);

  const CallStats::Window all_unary = stats.UnaryWindow();
  EXPECT_EQ(all_unary.requests, 2u);
  EXPECT_EQ(all_unary.peak, absl::Milliseconds(9));
}

TEST(CallStatsTest, StreamsAreCountedButNotTimed) {
  ManualClock clock;
  CallStats stats(&clock, absl::Minutes(1));
  auto* subscribe = stats.Find("/p.S/Subscribe", CallStats::Kind::kStreaming);
  auto* send = stats.Find("/p.S/Send", CallStats::Kind::kUnary);
  Call(stats, subscribe, absl::Hours(1));
  Call(stats, send, absl::Milliseconds(2));

  const auto all = stats.Snapshot();
  const auto* f = Figures(all, "/p.S/Subscribe");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->requests, 1u);
  EXPECT_EQ(f->window.requests, 1u);
  EXPECT_EQ(f->window.timed, 0u);
  EXPECT_EQ(f->window.peak, absl::ZeroDuration());
  EXPECT_TRUE(f->buckets.empty());
  EXPECT_EQ(f->seconds_sum, 0);
  // The hour-long stream is nowhere in the response time.
  const CallStats::Window unary = stats.UnaryWindow();
  EXPECT_EQ(unary.requests, 1u);
  EXPECT_EQ(unary.peak, absl::Milliseconds(2));
}

TEST(CallStatsTest, LongPollsAreTimedPerMethodOnly) {
  ManualClock clock;
  CallStats stats(&clock, absl::Minutes(1));
  auto* receive = stats.Find("/p.S/Receive", CallStats::Kind::kLongPoll);
  Call(stats, receive, absl::Seconds(30));
  const auto all = stats.Snapshot();
  const auto* f = Figures(all, "/p.S/Receive");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->window.peak, absl::Seconds(30));
  EXPECT_EQ(f->buckets.back(), 1u);  // above the last bound (10 s)
  EXPECT_EQ(stats.UnaryWindow().requests, 0u);
}

TEST(CallStatsTest, TheWindowDropsOldBuckets) {
  ManualClock clock;
  CallStats stats(&clock, absl::Seconds(60));
  EXPECT_EQ(stats.window(), absl::Seconds(60));
  auto* send = stats.Find("/p.S/Send", CallStats::Kind::kUnary);
  Call(stats, send, absl::Milliseconds(100));
  clock.Advance(absl::Seconds(10));
  Call(stats, send, absl::Milliseconds(300));

  CallStats::Window w = stats.UnaryWindow();
  EXPECT_EQ(w.requests, 2u);
  EXPECT_EQ(w.average(), absl::Milliseconds(200));
  EXPECT_EQ(w.peak, absl::Milliseconds(300));

  // 50 s on, the first call is 60 s old: out of the window.
  clock.Advance(absl::Seconds(50));
  w = stats.UnaryWindow();
  EXPECT_EQ(w.requests, 1u);
  EXPECT_EQ(w.average(), absl::Milliseconds(300));
  EXPECT_EQ(w.peak, absl::Milliseconds(300));

  // A new call reuses the first call's slot of the ring.
  Call(stats, send, absl::Milliseconds(50));
  w = stats.UnaryWindow();
  EXPECT_EQ(w.requests, 2u);
  EXPECT_EQ(w.peak, absl::Milliseconds(300));

  // Past the window of both: only the newest remains, then nothing; the
  // totals keep everything.
  clock.Advance(absl::Seconds(10));
  w = stats.UnaryWindow();
  EXPECT_EQ(w.requests, 1u);
  EXPECT_EQ(w.peak, absl::Milliseconds(50));
  clock.Advance(absl::Minutes(2));
  w = stats.UnaryWindow();
  EXPECT_EQ(w.requests, 0u);
  EXPECT_EQ(w.average(), absl::ZeroDuration());
  EXPECT_EQ(w.peak, absl::ZeroDuration());
  EXPECT_EQ(stats.Snapshot()[0].requests, 3u);
}

TEST(CallStatsTest, LongWindowsUseWiderBuckets) {
  ManualClock clock;
  CallStats stats(&clock, absl::Hours(2));
  EXPECT_EQ(stats.window(), absl::Hours(2));
  auto* send = stats.Find("/p.S/Send", CallStats::Kind::kUnary);
  Call(stats, send, absl::Milliseconds(1));
  clock.Advance(absl::Minutes(119));
  EXPECT_EQ(stats.UnaryWindow().requests, 1u);
  clock.Advance(absl::Minutes(2));
  EXPECT_EQ(stats.UnaryWindow().requests, 0u);
}

TEST(CallStatsTest, MadeUpMethodNamesShareOneEntryBeyondTheCap) {
  ManualClock clock;
  CallStats stats(&clock, absl::Minutes(1));
  for (size_t i = 0; i < CallStats::kMaxMethods + 10; ++i) {
    Call(stats, stats.Find("/x/" + std::to_string(i), CallStats::Kind::kUnary),
         absl::Milliseconds(1));
  }
  const auto all = stats.Snapshot();
  EXPECT_EQ(all.size(), CallStats::kMaxMethods + 1);
  const auto* other = Figures(all, CallStats::kOtherMethod);
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(other->requests, 10u);
}

}  // namespace
}  // namespace parley::api
