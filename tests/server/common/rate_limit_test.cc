#include "server/common/rate_limit.h"

#include <string>

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

}  // namespace
}  // namespace parley
