#include "server/chat/channel.h"

#include <atomic>
#include <memory>

#include "gtest/gtest.h"

namespace parley::chat {
namespace {

model::EventPtr Message(uint64_t seq) {
  auto e = std::make_shared<model::Event>();
  e->kind = model::EventKind::kMessage;
  e->room = "lobby";
  e->sequence = seq;
  e->text = "m" + std::to_string(seq);
  return e;
}

class CountingReader : public ChannelReader {
 public:
  void OnReadable() override { ++readable; }
  void OnSuperseded() override { ++superseded; }
  std::atomic<int> readable{0};
  std::atomic<int> superseded{0};
};

const absl::Time kT0 = absl::FromUnixSeconds(1000);

TEST(ChannelTest, DeliversEventsInPushOrder) {
  Channel ch(10, kT0);
  for (uint64_t i = 1; i <= 5; ++i) ch.Push(Message(i));
  auto taken = ch.Take(100);
  ASSERT_EQ(taken.events.size(), 5u);
  for (uint64_t i = 0; i < 5; ++i) EXPECT_EQ(taken.events[i]->sequence, i + 1);
  EXPECT_EQ(taken.closed, CloseReason::kOpen);
}

TEST(ChannelTest, TakeReturnsAtMostMaxEventsAndKeepsTheRest) {
  Channel ch(10, kT0);
  for (uint64_t i = 1; i <= 5; ++i) ch.Push(Message(i));
  EXPECT_EQ(ch.Take(2).events.size(), 2u);
  auto rest = ch.Take(100);
  ASSERT_EQ(rest.events.size(), 3u);
  EXPECT_EQ(rest.events[0]->sequence, 3u);
}

TEST(ChannelTest, OverflowQueuesOneGapNamingEveryMissedSequence) {
  Channel ch(3, kT0);
  for (uint64_t i = 1; i <= 10; ++i) ch.Push(Message(i));
  EXPECT_EQ(ch.Size(), 3u);
  EXPECT_EQ(ch.Dropped(), 7u);
  auto taken = ch.Take(100);
  ASSERT_EQ(taken.events.size(), 4u);
  EXPECT_EQ(taken.events[2]->sequence, 3u);
  EXPECT_EQ(taken.events[3]->kind, model::EventKind::kGap);
  EXPECT_EQ(taken.events[3]->gap_first, 4u);
  EXPECT_EQ(taken.events[3]->gap_last, 10u);
  EXPECT_EQ(taken.events[3]->room, "lobby");
}

TEST(ChannelTest, EventsAfterAGapKeepTheirOrderOnceThereIsRoom) {
  Channel ch(2, kT0);
  for (uint64_t i = 1; i <= 4; ++i) ch.Push(Message(i));  // 1 2 [3..4]
  ASSERT_EQ(ch.Take(1).events[0]->sequence, 1u);           // 2 [3..4]
  ch.Push(Message(5));                                     // 2 [3..4] 5
  auto taken = ch.Take(100);
  ASSERT_EQ(taken.events.size(), 3u);
  EXPECT_EQ(taken.events[0]->sequence, 2u);
  EXPECT_EQ(taken.events[1]->kind, model::EventKind::kGap);
  EXPECT_EQ(taken.events[1]->gap_first, 3u);
  EXPECT_EQ(taken.events[1]->gap_last, 4u);
  EXPECT_EQ(taken.events[2]->sequence, 5u);
}

TEST(ChannelTest, AStalledReaderNeverHoldsMoreThanCapacity) {
  Channel ch(8, kT0);
  for (uint64_t i = 1; i <= 100000; ++i) ch.Push(Message(i));
  EXPECT_EQ(ch.Size(), 8u);
  EXPECT_EQ(ch.Dropped(), 100000u - 8u);
}

TEST(ChannelTest, WakesTheReaderOncePerTake) {
  Channel ch(10, kT0);
  auto reader = std::make_shared<CountingReader>();
  EXPECT_EQ(ch.Attach(reader), nullptr);
  EXPECT_EQ(ch.Push(Message(1)), reader);
  EXPECT_EQ(ch.Push(Message(2)), nullptr);
  ch.Take(100);
  EXPECT_EQ(ch.Push(Message(3)), reader);
}

TEST(ChannelTest, CloseDropsQueuedEventsAndWakesTheReader) {
  Channel ch(10, kT0);
  auto reader = std::make_shared<CountingReader>();
  ch.Attach(reader);
  ch.Push(Message(1));
  ch.Take(100);
  ch.Push(Message(2));
  EXPECT_EQ(ch.Close(CloseReason::kLeft), nullptr);  // already woken
  auto taken = ch.Take(100);
  EXPECT_TRUE(taken.events.empty());
  EXPECT_EQ(taken.closed, CloseReason::kLeft);
  EXPECT_EQ(ch.Push(Message(3)), nullptr);
  EXPECT_TRUE(ch.Take(100).events.empty());
}

TEST(ChannelTest, AttachingASecondReaderReturnsTheFirst) {
  Channel ch(10, kT0);
  auto first = std::make_shared<CountingReader>();
  auto second = std::make_shared<CountingReader>();
  ch.Attach(first);
  EXPECT_EQ(ch.Attach(second), first);
  ch.Detach(first.get(), kT0);  // stale detach leaves the new reader
  EXPECT_EQ(ch.Push(Message(1)), second);
}

TEST(ChannelTest, IsIdleOnlyWithoutReaderAndAfterTheTimeout) {
  Channel ch(10, kT0);
  EXPECT_FALSE(ch.IdleLongerThan(absl::Seconds(10), kT0 + absl::Seconds(5)));
  EXPECT_TRUE(ch.IdleLongerThan(absl::Seconds(10), kT0 + absl::Seconds(11)));
  auto reader = std::make_shared<CountingReader>();
  ch.Attach(reader);
  EXPECT_FALSE(ch.IdleLongerThan(absl::Seconds(10), kT0 + absl::Hours(1)));
  ch.Detach(reader.get(), kT0 + absl::Hours(1));
  EXPECT_FALSE(ch.IdleLongerThan(absl::Seconds(10),
                                 kT0 + absl::Hours(1) + absl::Seconds(5)));
  ch.Touch(kT0 + absl::Hours(2));
  EXPECT_FALSE(ch.IdleLongerThan(absl::Seconds(10),
                                 kT0 + absl::Hours(2) + absl::Seconds(5)));
}

}  // namespace
}  // namespace parley::chat
