#include "server/common/rate_limit.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/common/clock.h"

namespace parley {
namespace {

TEST(RateLimiterTest, ABurstPassesThenOneTokenPerInterval) {
  ManualClock clock;
  RateLimiter limiter({/*per_second=*/2, /*burst=*/3}, &clock);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(limiter.Take("a"), absl::ZeroDuration()) << i;
  }
  EXPECT_EQ(limiter.Take("a"), absl::Milliseconds(500));
  // Another key has its own bucket.
  EXPECT_EQ(limiter.Take("b"), absl::ZeroDuration());
  clock.Advance(absl::Milliseconds(250));
  EXPECT_EQ(limiter.Take("a"), absl::Milliseconds(250));
  clock.Advance(absl::Milliseconds(250));
  EXPECT_EQ(limiter.Take("a"), absl::ZeroDuration());
  EXPECT_GT(limiter.Take("a"), absl::ZeroDuration());
}

TEST(RateLimiterTest, ZeroRateLimitsNothing) {
  ManualClock clock;
  RateLimiter limiter({/*per_second=*/0, /*burst=*/1}, &clock);
  EXPECT_FALSE(limiter.enabled());
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(limiter.Take("a"), absl::ZeroDuration());
}

TEST(RateLimiterTest, AFullTableForgetsRefilledKeysAndRefusesWhileAllAreLive) {
  ManualClock clock;
  // One key per shard.
  RateLimiter limiter({/*per_second=*/1, /*burst=*/1, /*max_keys=*/kLimitShards},
                      &clock);
  int refused = 0;
  for (int i = 0; i < 200; ++i) {
    if (limiter.Take("k" + std::to_string(i)) > absl::ZeroDuration()) ++refused;
  }
  EXPECT_GT(refused, 0) << "a table full of live keys takes no new key";
  EXPECT_LE(200 - refused, static_cast<int>(kLimitShards));
  // Once the buckets refill they are forgotten, and new keys fit again.
  clock.Advance(absl::Seconds(1));
  EXPECT_EQ(limiter.Take("fresh"), absl::ZeroDuration());
}

TEST(SlotLimiterTest, HoldsAtMostMaxPerKeyUntilReleased) {
  SlotLimiter slots(2);
  EXPECT_TRUE(slots.Acquire("u"));
  EXPECT_TRUE(slots.Acquire("u"));
  EXPECT_FALSE(slots.Acquire("u"));
  EXPECT_TRUE(slots.Acquire("v"));
  EXPECT_EQ(slots.Held("u"), 2u);
  slots.Release("u");
  EXPECT_TRUE(slots.Acquire("u"));
  slots.Release("u");
  slots.Release("u");
  EXPECT_EQ(slots.Held("u"), 0u);
}

TEST(FailureBackoffTest, WaitsDoubleAfterTheFreeFailuresUpToTheMax) {
  ManualClock clock;
  FailureBackoff backoff({/*free_failures=*/2, absl::Seconds(1),
                          absl::Seconds(5)},
                         &clock);
  backoff.Failed("u");
  backoff.Failed("u");
  EXPECT_EQ(backoff.Wait("u"), absl::ZeroDuration());
  backoff.Failed("u");
  EXPECT_EQ(backoff.Wait("u"), absl::Seconds(1));
  clock.Advance(absl::Seconds(1));
  EXPECT_EQ(backoff.Wait("u"), absl::ZeroDuration());
  backoff.Failed("u");
  EXPECT_EQ(backoff.Wait("u"), absl::Seconds(2));
  backoff.Failed("u");
  EXPECT_EQ(backoff.Wait("u"), absl::Seconds(4));
  backoff.Failed("u");
  EXPECT_EQ(backoff.Wait("u"), absl::Seconds(5)) << "capped at max";
  EXPECT_EQ(backoff.Wait("other"), absl::ZeroDuration());
  backoff.Succeeded("u");
  EXPECT_EQ(backoff.Wait("u"), absl::ZeroDuration());
}

TEST(FailureBackoffTest, AFailureAfterAQuietMaxStartsAfresh) {
  ManualClock clock;
  FailureBackoff backoff({/*free_failures=*/0, absl::Seconds(1),
                          absl::Seconds(4)},
                         &clock);
  for (int i = 0; i < 5; ++i) backoff.Failed("u");
  EXPECT_EQ(backoff.Wait("u"), absl::Seconds(4));
  clock.Advance(absl::Seconds(4));
  backoff.Failed("u");
  EXPECT_EQ(backoff.Wait("u"), absl::Seconds(1));
}

TEST(RateLimiterTest, SharingReportsWhatWasSpentAndRebasesOnTheSharedCount) {
  ManualClock clock;
  RateLimiter limiter({/*per_second=*/1, /*burst=*/5}, &clock);
  EXPECT_EQ(limiter.Take("a"), absl::ZeroDuration());
  EXPECT_TRUE(limiter.DrainTaken().empty()) << "not shared yet";
  limiter.EnableSharing();
  EXPECT_EQ(limiter.Take("a"), absl::ZeroDuration());
  EXPECT_EQ(limiter.Take("a"), absl::ZeroDuration());
  std::vector<RateLimiter::Taken> taken = limiter.DrainTaken();
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].key, "a");
  EXPECT_EQ(taken[0].count, 2u);
  EXPECT_TRUE(limiter.DrainTaken().empty());
  // Spent here after the drain, then the shared count comes back: the
  // others spent everything; the one spent since is owed on top.
  EXPECT_EQ(limiter.Take("a"), absl::ZeroDuration());
  limiter.Rebase("a", 0);
  EXPECT_EQ(limiter.Take("a"), absl::Seconds(2));
  // A key unknown here takes the shared count too.
  limiter.Rebase("b", 0.5);
  EXPECT_EQ(limiter.Take("b"), absl::Milliseconds(500));
}

TEST(SlotLimiterTest, SharingCountsTheOtherServersSlots) {
  SlotLimiter slots(3);
  slots.EnableSharing();
  EXPECT_TRUE(slots.Acquire("u"));
  std::vector<SlotLimiter::Count> changed = slots.DrainChanged();
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].key, "u");
  EXPECT_EQ(changed[0].held, 1u);
  EXPECT_TRUE(slots.DrainChanged().empty());
  slots.SetOthers("u", 2);
  EXPECT_FALSE(slots.Acquire("u")) << "1 here and 2 elsewhere";
  slots.Release("u");
  changed = slots.DrainChanged();
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].held, 0u) << "the release is reported";
  slots.MarkChanged("u");
  ASSERT_EQ(slots.DrainChanged().size(), 1u) << "reported again after a loss";
  EXPECT_TRUE(slots.Acquire("v"));
  slots.DrainChanged();
  slots.MarkAllChanged();
  ASSERT_EQ(slots.DrainChanged().size(), 1u);
}

TEST(FailureBackoffTest, SharingReportsFailuresAndSuccessesAndTakesTheSharedCount) {
  ManualClock clock;
  FailureBackoff backoff({/*free_failures=*/1, absl::Seconds(1),
                          absl::Seconds(8)},
                         &clock);
  backoff.EnableSharing();
  backoff.Failed("u");
  std::vector<FailureBackoff::Change> changes = backoff.DrainChanges();
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].failures, 1);
  EXPECT_FALSE(changes[0].succeeded);
  // Everyone failed 4 times, the last just now: 3 past the free one.
  backoff.Rebase("u", 4, clock.Now());
  EXPECT_EQ(backoff.Wait("u"), absl::Seconds(4));
  // Failures elsewhere reach a key this server never saw.
  backoff.Rebase("w", 2, clock.Now() - absl::Milliseconds(500));
  EXPECT_EQ(backoff.Wait("w"), absl::Milliseconds(500));
  backoff.Succeeded("u");
  EXPECT_EQ(backoff.Wait("u"), absl::ZeroDuration());
  backoff.Rebase("u", 4, clock.Now());
  EXPECT_EQ(backoff.Wait("u"), absl::ZeroDuration())
      << "a success here outranks counts from before it";
  changes = backoff.DrainChanges();
  bool reported = false;
  for (const auto& c : changes) {
    if (c.key == "u") reported = c.succeeded && c.failures == 0;
  }
  EXPECT_TRUE(reported);
}

}  // namespace
}  // namespace parley
