// CachedStore in front of a MemoryStore: what it caches, and that an
// acknowledged change is what the next read returns. (The conformance suite
// also runs on the cache in front of SQLite: sqlite_store_test.cc.)
#include "server/store/cached_store.h"

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/common/errors.h"
#include "server/store/memory_only.h"
#include "server/store/memory_store.h"
#include "tests/server/store/store_test_util.h"

namespace parley::store {
namespace {

class CachedStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<CachedStore> cached_ =
      std::make_unique<CachedStore>(std::make_unique<MemoryStore>());
};

TEST_F(CachedStoreTest,
       RepeatedReadsComeFromMemoryAndWritesAreSeenOnceAcknowledged) {
  User ann = MakeUser(1, "ann");
  ASSERT_TRUE(Commit(*cached_, PutUser{ann}).ok());
  Room room = MakeRoom(1, "cafe", Visibility::kPrivate);
  ASSERT_TRUE(Commit(*cached_, PutRoom{room}).ok());

  // Misses, then hits.
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(cached_->GetUser(ann.id)->display_name, ann.display_name);
    ASSERT_EQ(cached_->GetUserByName("ANN")->id, ann.id);
    ASSERT_EQ(cached_->GetRoomByName("Cafe")->id, room.id);
    absl::StatusOr<std::optional<Member>> member =
        cached_->GetMember(room.id, ann.id);
    ASSERT_TRUE(member.ok());
    EXPECT_FALSE(member->has_value());
  }
  EXPECT_EQ(cached_->misses(), 4u);
  EXPECT_EQ(cached_->hits(), 8u);

  // Each acknowledged change is what the next read returns.
  ann.display_name = "Ann the Second";
  ASSERT_TRUE(Commit(*cached_, PutUser{ann, /*create=*/false}).ok());
  EXPECT_EQ(cached_->GetUser(ann.id)->display_name, "Ann the Second");
  EXPECT_EQ(cached_->GetUserByName("ann")->display_name, "Ann the Second");
  ASSERT_TRUE(
      Commit(*cached_, PutMember{MakeMember(room.id, ann.id, "owner", T(5))})
          .ok());
  absl::StatusOr<std::optional<Member>> member =
      cached_->GetMember(room.id, ann.id);
  ASSERT_TRUE(member.ok());
  ASSERT_TRUE(member->has_value());
  EXPECT_EQ((*member)->role, "owner");
  room.visibility = Visibility::kHidden;
  ASSERT_TRUE(Commit(*cached_, PutRoom{room, /*create=*/false}).ok());
  EXPECT_EQ(cached_->GetRoom(room.id)->visibility, Visibility::kHidden);
  ASSERT_TRUE(Commit(*cached_, DeleteRoom{room.id}).ok());
  EXPECT_TRUE(absl::IsNotFound(cached_->GetRoom(room.id).status()));
  EXPECT_TRUE(absl::IsNotFound(cached_->GetRoomByName("cafe").status()));
  ASSERT_TRUE(Commit(*cached_, DeleteUser{ann.id}).ok());
  EXPECT_TRUE(absl::IsNotFound(cached_->GetUser(ann.id).status()));
}

// In a MemoryOnlyScope the cache answers what it holds and refuses, at
// once, every read it would pass on; the scope records that it missed.
TEST_F(CachedStoreTest, AMemoryOnlyScopeGetsCachedRowsAndRefusesTheRest) {
  User ann = MakeUser(1, "ann");
  ASSERT_TRUE(Commit(*cached_, PutUser{ann}).ok());
  Room room = MakeRoom(1, "cafe", Visibility::kPublic);
  ASSERT_TRUE(Commit(*cached_, PutRoom{room}).ok());
  ASSERT_TRUE(cached_->GetUser(ann.id).ok());
  {
    MemoryOnlyScope scope;
    EXPECT_EQ(cached_->GetUser(ann.id)->id, ann.id);
    EXPECT_FALSE(scope.missed());
  }
  auto refused = [](const absl::Status& s) {
    return absl::IsUnavailable(s) && ErrorReason(s) == "NOT_IN_MEMORY";
  };
  {
    MemoryOnlyScope scope;
    EXPECT_TRUE(refused(cached_->GetRoom(room.id).status()));
    EXPECT_TRUE(scope.missed());
  }
  {
    MemoryOnlyScope scope;
    EXPECT_TRUE(refused(cached_->LastSequence(room.id).status()));
    EXPECT_TRUE(refused(cached_->ListRooms("", "", 10).status()));
    EXPECT_TRUE(scope.missed());
  }
  {
    // A miss in an inner scope is the outer one's too.
    MemoryOnlyScope outer;
    {
      MemoryOnlyScope inner;
      EXPECT_TRUE(refused(cached_->GetUserByName("ann").status()));
    }
    EXPECT_TRUE(outer.missed());
  }
  // Outside a scope: read through, and cached from then on.
  EXPECT_TRUE(MemoryOnlyScope::Refuse().ok());
  EXPECT_EQ(cached_->GetRoom(room.id)->id, room.id);
  MemoryOnlyScope scope;
  EXPECT_EQ(cached_->GetRoom(room.id)->id, room.id);
  EXPECT_FALSE(scope.missed());
}

TEST_F(CachedStoreTest, PostsDoNotEmptyTheCache) {
  User ann = MakeUser(1, "ann");
  ASSERT_TRUE(Commit(*cached_, PutUser{ann}).ok());
  ASSERT_TRUE(cached_->GetUser(ann.id).ok());
  ASSERT_TRUE(
      Commit(*cached_, AppendEvent{Message(kLobby, 1, "ann", "hi")}).ok());
  const uint64_t misses = cached_->misses();
  ASSERT_TRUE(cached_->GetUser(ann.id).ok());
  EXPECT_EQ(cached_->misses(), misses);
}

// A read that fetched a row before a write changed it does not put the old
// row back into the cache the write emptied.
TEST_F(CachedStoreTest, AReadRacingAWriteNeverCachesTheOldRow) {
  User ann = MakeUser(1, "ann");
  ASSERT_TRUE(Commit(*cached_, PutUser{ann}).ok());
  constexpr int kRounds = 200;
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    while (!stop.load()) (void)cached_->GetUser(ann.id);
  });
  for (int i = 0; i < kRounds; ++i) {
    ann.display_name = absl::StrCat("name ", i);
    ASSERT_TRUE(Commit(*cached_, PutUser{ann, /*create=*/false}).ok());
    absl::StatusOr<User> got = cached_->GetUser(ann.id);
    ASSERT_TRUE(got.ok());
    ASSERT_EQ(got->display_name, ann.display_name) << "round " << i;
  }
  stop = true;
  reader.join();
}

}  // namespace
}  // namespace parley::store
