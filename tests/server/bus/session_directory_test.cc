// Every SessionDirectory behaves alike: the in-memory one that tests use
// for several hubs in one process, and the Redis one that servers share.
#include "server/bus/session_directory.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/bus/redis_presence.h"
#include "server/bus/redis_sessions.h"
#include "server/common/errors.h"
#include "server/common/mutex.h"
#include "tests/server/bus/redis_server.h"
#include "tests/server/common/answer.h"

namespace parley::bus {
namespace {

using ::testing::UnorderedElementsAre;

const absl::Time kStart = absl::FromUnixSeconds(1700000000);

class SessionDirectoryTest : public ::testing::TestWithParam<bool> {
 protected:
  SessionDirectoryTest() {
    if (GetParam()) {
      redis_ = std::make_unique<RedisServer>();
      RedisSessionsOptions o;
      o.redis.port = redis_->port();
      dir_ = std::make_unique<RedisSessionDirectory>(o);
    } else {
      dir_ = std::make_unique<MemorySessionDirectory>();
    }
  }

  absl::Status Create(const std::string& id, absl::Time at = kStart,
                      const std::string& owner = "",
                      SessionLimits limits = {}) {
    Answer<absl::Status> a;
    dir_->Create(id, owner, at, limits, a.Callback());
    return a.Get();
  }
  absl::Status SetCursor(const std::string& id, uint64_t c,
                         absl::Time at = kStart) {
    Answer<absl::Status> a;
    dir_->SetCursor(id, c, at, a.Callback());
    return a.Get();
  }
  absl::StatusOr<uint64_t> Get(const std::string& id, absl::Time at = kStart) {
    Answer<absl::StatusOr<uint64_t>> a;
    dir_->Get(id, at, a.Callback());
    return a.Get();
  }
  absl::StatusOr<bool> Remove(const std::string& id) {
    Answer<absl::StatusOr<bool>> a;
    dir_->Remove(id, a.Callback());
    return a.Get();
  }
  absl::StatusOr<std::vector<std::string>> RemoveIdle(absl::Time before) {
    Answer<absl::StatusOr<std::vector<std::string>>> a;
    dir_->RemoveIdle(before, a.Callback());
    return a.Get();
  }

  std::unique_ptr<RedisServer> redis_;
  std::unique_ptr<SessionDirectory> dir_;
};

TEST_P(SessionDirectoryTest, ASessionIsCreatedOnceAndReadOnceItHasACursor) {
  ASSERT_TRUE(Create("ann").ok());
  EXPECT_EQ(Create("ann").code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(Get("ann").status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(SetCursor("ann", 0).ok());
  EXPECT_EQ(Get("ann").value_or(99), 0u);
  EXPECT_EQ(Get("bob").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(SetCursor("bob", 1).code(), absl::StatusCode::kNotFound);
}

TEST_P(SessionDirectoryTest, SessionsPastTheLimitsAreRefusedUntilOnesEnd) {
  const SessionLimits limits{/*total=*/3, /*per_owner=*/2};
  ASSERT_TRUE(Create("a1", kStart, "10.0.0.1", limits).ok());
  ASSERT_TRUE(Create("a2", kStart, "10.0.0.1", limits).ok());
  absl::Status over = Create("a3", kStart, "10.0.0.1", limits);
  EXPECT_EQ(over.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ErrorReason(over), "TOO_MANY_SESSIONS");
  ASSERT_TRUE(Create("b1", kStart, "10.0.0.2", limits).ok());
  absl::Status full = Create("b2", kStart, "10.0.0.2", limits);
  EXPECT_EQ(ErrorReason(full), "LOBBY_FULL");
  EXPECT_GT(RetryAfter(full), absl::ZeroDuration());
  // A leave and a reaping each give the owner's place back.
  ASSERT_TRUE(Remove("a1").value_or(false));
  ASSERT_TRUE(SetCursor("b1", 0, kStart + absl::Seconds(10)).ok());
  ASSERT_TRUE(RemoveIdle(kStart + absl::Seconds(5)).ok());  // reaps a2
  EXPECT_TRUE(Create("a3", kStart, "10.0.0.1", limits).ok());
  EXPECT_TRUE(Create("a4", kStart, "10.0.0.1", limits).ok());
  EXPECT_EQ(ErrorReason(Create("a5", kStart, "10.0.0.1", limits)),
            "LOBBY_FULL");
}

TEST_P(SessionDirectoryTest, ACursorNeverGoesBack) {
  ASSERT_TRUE(Create("ann").ok());
  ASSERT_TRUE(SetCursor("ann", 7).ok());
  ASSERT_TRUE(SetCursor("ann", 3).ok());
  EXPECT_EQ(Get("ann").value_or(0), 7u);
  ASSERT_TRUE(SetCursor("ann", 9000000000).ok());
  EXPECT_EQ(Get("ann").value_or(0), 9000000000u);
}

TEST_P(SessionDirectoryTest, OnlyOneRemoverWins) {
  ASSERT_TRUE(Create("ann").ok());
  EXPECT_EQ(Remove("ann").value_or(false), true);
  EXPECT_EQ(Remove("ann").value_or(true), false);
  EXPECT_TRUE(Create("ann").ok());
}

TEST_P(SessionDirectoryTest, IdleSessionsAreRemovedOnceAndActiveOnesKept) {
  ASSERT_TRUE(Create("idle").ok());
  ASSERT_TRUE(Create("sent").ok());
  ASSERT_TRUE(Create("read").ok());
  ASSERT_TRUE(SetCursor("sent", 0).ok());
  const absl::Time later = kStart + absl::Minutes(4);
  ASSERT_TRUE(Get("sent", later).ok());  // a send or a poll
  dir_->Touch({"read", "gone"}, later);  // a reader attached somewhere
  const absl::Time cutoff = kStart + absl::Minutes(1);
  absl::StatusOr<std::vector<std::string>> first = RemoveIdle(cutoff);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_THAT(*first, UnorderedElementsAre("idle"));
  absl::StatusOr<std::vector<std::string>> second = RemoveIdle(cutoff);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_THAT(*second, ::testing::IsEmpty());
  EXPECT_EQ(Create("idle").code(), absl::StatusCode::kOk);
  EXPECT_EQ(Create("read").code(), absl::StatusCode::kAlreadyExists);
}

INSTANTIATE_TEST_SUITE_P(Directories, SessionDirectoryTest,
                         ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Redis" : "Memory";
                         });

// Redis away: calls fail at once, and work again when it is back.
TEST(RedisSessionDirectoryTest, WhileRedisIsAwayCallsFailPromptly) {
  RedisServer redis;
  RedisSessionsOptions o;
  o.redis.port = redis.port();
  RedisSessionDirectory dir(o);
  Answer<absl::Status> created;
  dir.Create("ann", "", kStart, {}, created.Callback());
  ASSERT_TRUE(created.Get().ok());

  redis.Kill();
  const absl::Time start = absl::Now();
  Answer<absl::StatusOr<uint64_t>> got;
  dir.Get("ann", kStart, got.Callback());
  EXPECT_EQ(got.Get().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_LT(absl::Now() - start, o.redis.timeout + absl::Seconds(1));

  redis.Start();  // empty: nothing persisted
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  absl::Status again;
  do {
    Answer<absl::Status> a;
    dir.Create("ann", "", kStart, {}, a.Callback());
    again = a.Get();
  } while (absl::IsUnavailable(again) && absl::Now() < deadline);
  EXPECT_TRUE(again.ok()) << again;
}

// Presence lists in Redis: each replica's own, joined, expiring.
TEST(RedisPresenceDirectoryTest, ListsJoinOtherReplicasUntilTheyExpire) {
  RedisServer redis;
  RedisPresenceOptions o;
  o.redis.port = redis.port();
  o.ttl = absl::Seconds(5);
  RedisPresenceDirectory dir(o);
  auto names = [&](const std::string& except, absl::Time at) {
    Answer<absl::StatusOr<std::vector<PresentEntry>>> a;
    dir.List("room-1", except, at, a.Callback());
    absl::StatusOr<std::vector<PresentEntry>> listed = a.Get();
    EXPECT_TRUE(listed.ok()) << listed.status();
    std::vector<std::string> out;
    for (const PresentEntry& e : listed.value_or(std::vector<PresentEntry>{})) {
      out.push_back(e.name);
      EXPECT_EQ(e.since, kStart);
    }
    return out;
  };
  dir.Put("r1", "room-1", {{"u-ann", "Ann", kStart}}, kStart);
  dir.Put("r2", "room-1", {{"u-bob", "Bob", kStart}, {"", "Cat", kStart}},
          kStart + absl::Seconds(2));
  EXPECT_THAT(names("r1", kStart), UnorderedElementsAre("Bob", "Cat"));
  EXPECT_THAT(names("r3", kStart), UnorderedElementsAre("Ann", "Bob", "Cat"));
  // r1's list has run out; r2's has not.
  EXPECT_THAT(names("r3", kStart + absl::Seconds(6)),
              UnorderedElementsAre("Bob", "Cat"));
  dir.Put("r2", "room-1", {}, kStart);
  EXPECT_THAT(names("r3", kStart), UnorderedElementsAre("Ann"));
}

}  // namespace
}  // namespace parley::bus
