#include "server/chat/hub.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "server/common/errors.h"
#include "server/store/memory_store.h"

namespace parley::chat {
namespace {

class RecordingReader : public ChannelReader {
 public:
  void OnReadable() override { ++readable; }
  void OnSuperseded() override {}
  std::atomic<int> readable{0};
};

class HubTest : public ::testing::Test {
 protected:
  HubOptions Options() {
    HubOptions o;
    o.channel_capacity = 100000;
    o.session_idle_timeout = absl::Minutes(1);
    return o;
  }
  std::vector<EventPtr> Drain(absl::string_view id) {
    auto ch = hub_.FindChannel(id);
    EXPECT_TRUE(ch.ok()) << ch.status();
    return ch.ok() ? (*ch)->Take(100000).events : std::vector<EventPtr>{};
  }

  ManualClock clock_;
  store::MemoryStore store_{100000};
  Hub hub_{Options(), &store_, &clock_};
};

TEST_F(HubTest, JoinIsBroadcastToEveryoneIncludingTheJoiner) {
  ASSERT_TRUE(hub_.Join("alice").ok());
  auto bob = hub_.Join("bob");
  ASSERT_TRUE(bob.ok());
  EXPECT_EQ((*bob)->kind, EventKind::kJoin);
  EXPECT_EQ((*bob)->sequence, 2u);
  EXPECT_EQ((*bob)->room, "lobby");
  EXPECT_EQ((*bob)->id.size(), 36u);  // a UUID

  auto alice_sees = Drain("alice");
  ASSERT_EQ(alice_sees.size(), 2u);
  EXPECT_EQ(alice_sees[1]->sender, "bob");
  auto bob_sees = Drain("bob");
  ASSERT_EQ(bob_sees.size(), 1u);
  EXPECT_EQ(bob_sees[0]->sender, "bob");
}

TEST_F(HubTest, SendReachesEveryJoinedClientTheSenderIncluded) {
  ASSERT_TRUE(hub_.Join("alice").ok());
  ASSERT_TRUE(hub_.Join("bob").ok());
  Drain("alice");
  Drain("bob");
  auto sent = hub_.Send("alice", "hello");
  ASSERT_TRUE(sent.ok()) << sent.status();
  for (const char* id : {"alice", "bob"}) {
    auto got = Drain(id);
    ASSERT_EQ(got.size(), 1u) << id;
    EXPECT_EQ(got[0], *sent);  // one shared event, not a copy per reader
    EXPECT_EQ(got[0]->text, "hello");
    EXPECT_EQ(got[0]->sender, "alice");
    EXPECT_EQ(got[0]->kind, EventKind::kMessage);
  }
}

TEST_F(HubTest, ConcurrentSendersProduceOneOrderThatEveryClientSees) {
  constexpr int kClients = 8;
  constexpr int kPerClient = 200;
  for (int i = 0; i < kClients; ++i) {
    ASSERT_TRUE(hub_.Join("c" + std::to_string(i)).ok());
  }
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([this, i] {
      for (int j = 0; j < kPerClient; ++j) {
        EXPECT_TRUE(hub_.Send("c" + std::to_string(i), std::to_string(j)).ok());
      }
    });
  }
  for (auto& t : threads) t.join();

  std::vector<std::string> reference;
  for (int i = 0; i < kClients; ++i) {
    std::vector<std::string> seen;
    uint64_t last = 0;
    for (const EventPtr& e : Drain("c" + std::to_string(i))) {
      EXPECT_GT(e->sequence, last);
      last = e->sequence;
      if (e->kind == EventKind::kMessage) seen.push_back(e->id);
    }
    ASSERT_EQ(seen.size(), size_t{kClients * kPerClient});
    if (i == 0) reference = seen;
    EXPECT_EQ(seen, reference) << "client c" << i << " saw another order";
  }
}

TEST_F(HubTest, SendBeforeJoinFailsWithFailedPrecondition) {
  auto s = hub_.Send("ghost", "boo");
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ErrorReason(s.status()), "NOT_JOINED");
  EXPECT_EQ(ErrorField(s.status()), "id");
  EXPECT_EQ(hub_.FindChannel("ghost").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(HubTest, SecondJoinOfAJoinedIdIsAlreadyExists) {
  ASSERT_TRUE(hub_.Join("alice").ok());
  auto again = hub_.Join("alice");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ErrorReason(again.status()), "ALREADY_JOINED");
  EXPECT_EQ(hub_.SessionCount(), 1u);
}

TEST_F(HubTest, BadInputIsInvalidArgumentNamingTheField) {
  EXPECT_EQ(ErrorField(hub_.Join("").status()), "id");
  ASSERT_TRUE(hub_.Join("alice").ok());
  auto empty = hub_.Send("alice", "");
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ErrorField(empty.status()), "message");
  auto huge = hub_.Send("alice", std::string(4097, 'x'));
  EXPECT_EQ(ErrorReason(huge.status()), "MESSAGE_TOO_LONG");
}

TEST_F(HubTest, AClientThatLeftReceivesNothingMore) {
  ASSERT_TRUE(hub_.Join("alice").ok());
  ASSERT_TRUE(hub_.Join("bob").ok());
  auto bob_channel = *hub_.FindChannel("bob");
  ASSERT_TRUE(hub_.Send("alice", "before").ok());
  auto left = hub_.Leave("bob");
  ASSERT_TRUE(left.ok());
  EXPECT_EQ((*left)->kind, EventKind::kLeave);
  ASSERT_TRUE(hub_.Send("alice", "after").ok());

  auto taken = bob_channel->Take(100);
  EXPECT_TRUE(taken.events.empty());  // even what was queued is gone
  EXPECT_EQ(taken.closed, CloseReason::kLeft);
  EXPECT_EQ(hub_.FindChannel("bob").status().code(),
            absl::StatusCode::kFailedPrecondition);

  auto alice = Drain("alice");
  ASSERT_EQ(alice.size(), 5u);  // join, join, before, leave, after
  EXPECT_EQ(alice[3]->kind, EventKind::kLeave);
  EXPECT_EQ(alice[3]->sender, "bob");
  EXPECT_EQ(alice[4]->text, "after");
}

TEST_F(HubTest, LeaveWakesTheWaitingReader) {
  ASSERT_TRUE(hub_.Join("bob").ok());
  auto ch = *hub_.FindChannel("bob");
  ch->Take(100);
  auto reader = std::make_shared<RecordingReader>();
  ch->Attach(reader);
  ASSERT_TRUE(hub_.Leave("bob").ok());
  EXPECT_EQ(reader->readable, 1);
  EXPECT_EQ(ch->Take(100).closed, CloseReason::kLeft);
}

// Readers attach, take and detach on one thread while another thread sends
// and wakes them: every event arrives once, in order.
TEST_F(HubTest, ReadersComingAndGoingWhileOthersSendLoseNothing) {
  constexpr int kMessages = 3000;
  ASSERT_TRUE(hub_.Join("reader").ok());
  ASSERT_TRUE(hub_.Join("sender").ok());
  auto ch = *hub_.FindChannel("reader");
  std::atomic<bool> done{false};
  std::thread sender([&] {
    for (int i = 0; i < kMessages; ++i) {
      EXPECT_TRUE(hub_.Send("sender", std::to_string(i)).ok());
    }
    done = true;
  });
  std::vector<uint64_t> seqs;
  auto take = [&] {
    for (const EventPtr& e : ch->Take(64).events) seqs.push_back(e->sequence);
  };
  while (!done) {
    auto reader = std::make_shared<RecordingReader>();
    ch->Attach(reader);
    take();
    ch->Detach(reader.get(), clock_.Now());
  }
  sender.join();
  while (ch->Size() > 0) take();
  ASSERT_EQ(seqs.size(), size_t{kMessages + 2});
  for (size_t i = 0; i < seqs.size(); ++i) EXPECT_EQ(seqs[i], i + 1);
}

TEST_F(HubTest, AStalledReaderNeverSlowsTheSenderOrOthers) {
  HubOptions o = Options();
  o.channel_capacity = 4;
  Hub hub(o, &store_, &clock_);
  ASSERT_TRUE(hub.Join("stalled").ok());
  ASSERT_TRUE(hub.Join("reader").ok());
  auto reader = *hub.FindChannel("reader");
  std::vector<EventPtr> got;
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(hub.Send("reader", "m" + std::to_string(i)).ok());
    for (auto& e : reader->Take(100).events) got.push_back(e);
  }
  EXPECT_EQ(got.size(), 1001u);  // stalled's join + 1000 messages
  auto stalled = *hub.FindChannel("stalled");
  EXPECT_LE(stalled->Size(), 4u);
  auto taken = stalled->Take(100).events;
  ASSERT_EQ(taken.back()->kind, EventKind::kGap);
  EXPECT_EQ(taken.back()->gap_last, 1002u);
}

TEST_F(HubTest, IdleSessionsAreReapedAndAnnouncedAsLeaves) {
  ASSERT_TRUE(hub_.Join("idle").ok());
  ASSERT_TRUE(hub_.Join("talker").ok());
  ASSERT_TRUE(hub_.Join("listener").ok());
  auto listener = *hub_.FindChannel("listener");
  listener->Attach(std::make_shared<RecordingReader>());
  clock_.Advance(absl::Seconds(50));
  ASSERT_TRUE(hub_.Send("talker", "still here").ok());
  clock_.Advance(absl::Seconds(20));  // idle: 70s; talker: 20s

  EXPECT_EQ(hub_.ReapIdle(), 1);
  EXPECT_EQ(hub_.FindChannel("idle").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(hub_.FindChannel("talker").ok());
  EXPECT_TRUE(hub_.FindChannel("listener").ok());
  auto events = listener->Take(100).events;
  EXPECT_EQ(events.back()->kind, EventKind::kLeave);
  EXPECT_EQ(events.back()->sender, "idle");
}

TEST_F(HubTest, ShutdownClosesChannelsAndRefusesNewCalls) {
  ASSERT_TRUE(hub_.Join("alice").ok());
  auto ch = *hub_.FindChannel("alice");
  hub_.Shutdown();
  EXPECT_EQ(ch->Take(10).closed, CloseReason::kShutdown);
  EXPECT_EQ(hub_.Join("bob").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(hub_.Send("alice", "x").status().code(),
            absl::StatusCode::kUnavailable);
}

// A store that refuses every append: the hub must not deliver what it could
// not commit.
class FailingStore : public store::MemoryStore {
 public:
  FailingStore() : MemoryStore(10) {}
  absl::Status Append(const EventPtr&) override {
    return absl::UnavailableError("disk on fire");
  }
};

TEST_F(HubTest, NothingIsDeliveredOrAcknowledgedWithoutACommit) {
  FailingStore failing;
  Hub hub(Options(), &failing, &clock_);
  EXPECT_EQ(hub.Join("alice").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(hub.SessionCount(), 0u);
}

TEST_F(HubTest, SequenceNumbersContinueFromTheStore) {
  ASSERT_TRUE(hub_.Join("alice").ok());
  ASSERT_TRUE(hub_.Send("alice", "one").ok());
  Hub restarted(Options(), &store_, &clock_);
  auto joined = restarted.Join("bob");
  ASSERT_TRUE(joined.ok());
  EXPECT_EQ((*joined)->sequence, 3u);
}

}  // namespace
}  // namespace parley::chat
