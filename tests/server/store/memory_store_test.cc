#include "server/store/memory_store.h"

#include <memory>

#include "gtest/gtest.h"

namespace parley::store {
namespace {

chat::EventPtr At(const std::string& room, uint64_t seq) {
  auto e = std::make_shared<chat::Event>();
  e->room = room;
  e->sequence = seq;
  return e;
}

TEST(MemoryStoreTest, ReadsAfterASequenceNumberOldestFirstUpToALimit) {
  MemoryStore store(100);
  for (uint64_t i = 1; i <= 10; ++i) ASSERT_TRUE(store.Append(At("a", i)).ok());
  ASSERT_TRUE(store.Append(At("b", 1)).ok());
  auto got = store.ReadAfter("a", 4, 3);
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 3u);
  EXPECT_EQ((*got)[0]->sequence, 5u);
  EXPECT_EQ((*got)[2]->sequence, 7u);
  EXPECT_TRUE(store.ReadAfter("a", 10, 5)->empty());
  EXPECT_TRUE(store.ReadAfter("nowhere", 0, 5)->empty());
  EXPECT_EQ(*store.LastSequence("a"), 10u);
  EXPECT_EQ(*store.LastSequence("b"), 1u);
  EXPECT_EQ(*store.LastSequence("nowhere"), 0u);
}

TEST(MemoryStoreTest, KeepsOnlyTheMostRecentEventsOfARoom) {
  MemoryStore store(3);
  for (uint64_t i = 1; i <= 10; ++i) ASSERT_TRUE(store.Append(At("a", i)).ok());
  auto got = store.ReadAfter("a", 0, 100);
  ASSERT_EQ(got->size(), 3u);
  EXPECT_EQ((*got)[0]->sequence, 8u);
  EXPECT_EQ(*store.LastSequence("a"), 10u);
}

TEST(MemoryStoreTest, RefusesAnEventOutOfSequence) {
  MemoryStore store(10);
  ASSERT_TRUE(store.Append(At("a", 1)).ok());
  EXPECT_EQ(store.Append(At("a", 3)).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store.Append(At("a", 1)).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(store.Append(At("a", 2)).ok());
}

}  // namespace
}  // namespace parley::store
