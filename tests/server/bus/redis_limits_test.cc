// Two servers' limit tables sharing their counts through a real Redis.
#include "server/bus/redis_limits.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "server/common/clock.h"
#include "server/common/rate_limit.h"
#include "tests/server/bus/redis_server.h"
#include "tests/server/common/answer.h"

namespace parley::bus {
namespace {

// One server's tables and their sync, synced only when the test says.
struct Replica {
  Replica(int port, const std::string& id, const std::string& prefix,
          Clock* clock = Clock::Real())
      : sends({/*per_second=*/0.01, /*burst=*/5}, clock),
        streams(/*max_per_key=*/3),
        address_streams(/*max_per_key=*/3),
        failures({/*free_failures=*/2, absl::Seconds(30), absl::Minutes(1)},
                 clock) {
    RedisLimitsOptions o;
    o.redis.port = port;
    o.redis.retry_after = absl::ZeroDuration();  // Redis is back at once
    o.key_prefix = prefix;
    o.interval = absl::ZeroDuration();
    o.server_id = id;
    SharedTables tables;
    tables.rates = {{"sends", &sends}};
    tables.slots = {{"streams", &streams}, {"address", &address_streams}};
    tables.failures = {{"failures", &failures}};
    limits = std::make_unique<RedisLimits>(o, tables, clock);
  }
  absl::Status Sync() {
    Answer<absl::Status> done;
    limits->SyncNow(done.Callback());
    return done.Get();
  }
  // -1 when a stream slot of `user` was taken, else the index of the claim
  // over its limit; -2 when Redis answered no.
  int Claim(const std::string& user) {
    absl::StatusOr<int> r = limits->ClaimAll({{&streams, user}});
    return r.ok() ? *r : -2;
  }
  int ClaimBoth(const std::string& user, const std::string& address) {
    absl::StatusOr<int> r =
        limits->ClaimAll({{&streams, user}, {&address_streams, address}});
    return r.ok() ? *r : -2;
  }
  int Sends(int n) {
    int passed = 0;
    for (int i = 0; i < n; ++i) {
      if (sends.Take("alice") == absl::ZeroDuration()) ++passed;
    }
    return passed;
  }

  RateLimiter sends;
  SlotLimiter streams;
  SlotLimiter address_streams;
  FailureBackoff failures;
  std::unique_ptr<RedisLimits> limits;
};

class RedisLimitsTest : public ::testing::Test {
 protected:
  RedisServer redis_;
  const std::string prefix_ = "test:limits:";
};

TEST_F(RedisLimitsTest, ARateSpentOnOneServerIsSpentOnTheOthers) {
  Replica a(redis_.port(), "a", prefix_), b(redis_.port(), "b", prefix_);
  EXPECT_EQ(a.Sends(5), 5);
  ASSERT_TRUE(a.Sync().ok());
  // b learns of alice with its first send; past the sync, it is in debt.
  EXPECT_EQ(b.Sends(1), 1);
  ASSERT_TRUE(b.Sync().ok());
  EXPECT_EQ(b.Sends(10), 0);
  ASSERT_TRUE(a.Sync().ok());
  EXPECT_EQ(a.Sends(10), 0);
  EXPECT_GT(b.sends.Take("alice"), absl::Seconds(100))
      << "one token per 100 s, and one owed";
  // Another user is untouched.
  EXPECT_EQ(b.sends.Take("bob"), absl::ZeroDuration());
}

TEST_F(RedisLimitsTest, StreamsHeldOnOneServerCountOnTheOthersUntilReleased) {
  Replica a(redis_.port(), "a", prefix_), b(redis_.port(), "b", prefix_);
  EXPECT_EQ(a.Claim("alice"), -1);
  EXPECT_EQ(a.Claim("alice"), -1);
  EXPECT_EQ(b.Claim("alice"), -1);
  EXPECT_EQ(b.Claim("alice"), 0) << "2 on a, 1 on b, at most 3";
  EXPECT_EQ(a.Claim("alice"), 0);
  EXPECT_EQ(b.streams.Held("alice"), 1u);
  // Claims of two tables are all or nothing.
  EXPECT_EQ(b.ClaimBoth("alice", "10.0.0.1"), 0);
  EXPECT_EQ(b.streams.Held("10.0.0.1"), 0u);
  EXPECT_EQ(b.ClaimBoth("bob", "10.0.0.1"), -1);
  // A release counts once the releasing server has synced.
  a.streams.Release("alice");
  EXPECT_EQ(b.Claim("alice"), 0);
  ASSERT_TRUE(a.Sync().ok());
  EXPECT_EQ(b.Claim("alice"), -1);
  EXPECT_EQ(b.Claim("alice"), 0);
}

TEST_F(RedisLimitsTest, AServerThatStopsSyncingHoldsNoStreamsAfterItsLease) {
  Replica b(redis_.port(), "b", prefix_);
  {
    Replica a(redis_.port(), "a", prefix_);
    EXPECT_EQ(a.Claim("alice"), -1);
    EXPECT_EQ(a.Claim("alice"), -1);
  }  // a dies without releasing
  EXPECT_EQ(b.Claim("alice"), -1);
  EXPECT_EQ(b.Claim("alice"), 0) << "a's lease still runs";
  // Expire a's lease by hand, as its absence for server_lease would.
  Context c(redisConnect("127.0.0.1", redis_.port()));
  ASSERT_NE(c, nullptr);
  Reply r = Command(c.get(), {"ZREM", prefix_ + "servers", "a"});
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(b.Claim("alice"), -1);
  EXPECT_EQ(b.Claim("alice"), -1);
  EXPECT_EQ(b.Claim("alice"), 0);
}

TEST_F(RedisLimitsTest, SignInFailuresAddUpAcrossServersAndASuccessClearsThem) {
  Replica a(redis_.port(), "a", prefix_), b(redis_.port(), "b", prefix_);
  a.failures.Failed("alice");
  a.failures.Failed("alice");
  ASSERT_TRUE(a.Sync().ok());
  EXPECT_EQ(b.failures.Wait("alice"), absl::ZeroDuration());
  b.failures.Failed("alice");
  ASSERT_TRUE(b.Sync().ok());
  // Three in a row, two free: b waits the first back-off.
  EXPECT_GT(b.failures.Wait("alice"), absl::Seconds(29));
  ASSERT_TRUE(a.Sync().ok());
  a.failures.Succeeded("alice");
  ASSERT_TRUE(a.Sync().ok());
  b.failures.Failed("alice");
  ASSERT_TRUE(b.Sync().ok());
  EXPECT_EQ(b.failures.Wait("alice"), absl::ZeroDuration())
      << "a's success cleared the count; one failure since";
}

// A success reaches Redis at its server's next sync, possibly after another
// server's later failures did: those still count.
TEST_F(RedisLimitsTest, AnEarlierSuccessSyncedLateLeavesTheLaterFailures) {
  ManualClock clock;
  Replica a(redis_.port(), "a", prefix_, &clock),
      b(redis_.port(), "b", prefix_, &clock);
  b.failures.Succeeded("alice");  // b has not synced yet
  clock.Advance(absl::Seconds(1));
  for (int i = 0; i < 3; ++i) a.failures.Failed("alice");
  ASSERT_TRUE(a.Sync().ok());
  ASSERT_TRUE(b.Sync().ok());
  EXPECT_GT(b.failures.Wait("alice"), absl::Seconds(29))
      << "b's success came before a's three failures";
  ASSERT_TRUE(a.Sync().ok());
  EXPECT_GT(a.failures.Wait("alice"), absl::Seconds(29));
}

// A sign-in reads the shared count before this server has told Redis of
// its own earlier success: the failures elsewhere since still count.
TEST_F(RedisLimitsTest, ARefreshAfterAnUnsyncedSuccessKeepsLaterFailures) {
  ManualClock clock;
  Replica a(redis_.port(), "a", prefix_, &clock),
      b(redis_.port(), "b", prefix_, &clock);
  b.failures.Succeeded("alice");
  clock.Advance(absl::Seconds(1));
  for (int i = 0; i < 3; ++i) a.failures.Failed("alice");
  ASSERT_TRUE(a.Sync().ok());
  ASSERT_TRUE(b.limits->Refresh({{&b.failures, "alice"}}).ok());
  EXPECT_GT(b.failures.Wait("alice"), absl::Seconds(29))
      << "a's three failures came after b's success";
}

TEST_F(RedisLimitsTest, ARefreshBringsInFailuresThisServerNeverSaw) {
  Replica a(redis_.port(), "a", prefix_), b(redis_.port(), "b", prefix_);
  for (int i = 0; i < 3; ++i) a.failures.Failed("alice");
  ASSERT_TRUE(a.Sync().ok());
  EXPECT_EQ(b.failures.Wait("alice"), absl::ZeroDuration());
  ASSERT_TRUE(b.limits->Refresh({{&b.failures, "alice"}}).ok());
  EXPECT_GT(b.failures.Wait("alice"), absl::Seconds(29));
  EXPECT_EQ(b.failures.Wait("bob"), absl::ZeroDuration());
}

TEST_F(RedisLimitsTest, WithoutRedisEachServerLimitsAlone) {
  Replica a(redis_.port(), "a", prefix_);
  redis_.Kill();
  EXPECT_EQ(a.Sync().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(a.Sends(10), 5);
  EXPECT_EQ(a.Claim("alice"), -2);
  EXPECT_EQ(a.limits->Refresh({{&a.failures, "alice"}}).code(),
            absl::StatusCode::kUnavailable);
  ASSERT_TRUE(a.streams.Acquire("alice")) << "counted here alone";
  EXPECT_EQ(a.Sync().code(), absl::StatusCode::kUnavailable);
  // Redis back: the held count is sent again in full.
  redis_.Start();
  Replica b(redis_.port(), "b", prefix_);
  absl::Status synced = a.Sync();
  ASSERT_TRUE(synced.ok()) << synced;
  EXPECT_EQ(b.Claim("alice"), -1);
  EXPECT_EQ(b.Claim("alice"), -1);
  EXPECT_EQ(b.Claim("alice"), 0) << "1 on a, 2 on b";
}

}  // namespace
}  // namespace parley::bus
