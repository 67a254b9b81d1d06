#include "server/chat/hub.h"

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/common/errors.h"
#include "server/common/mutex.h"
#include "server/model/ids.h"
#include "server/store/memory_store.h"

namespace parley::chat {
namespace {

class RecordingReader : public ChannelReader {
 public:
  void OnReadable() override { ++readable; }
  void OnSuperseded() override {}
  std::atomic<int> readable{0};
};

// Runs an asynchronous hub call and waits for its acknowledgement.
absl::StatusOr<model::EventPtr> Await(
    absl::AnyInvocable<void(EventDone)> call) {
  Notification done;
  absl::StatusOr<model::EventPtr> result;
  call([&](absl::StatusOr<model::EventPtr> r) {
    result = std::move(r);
    done.Notify();
  });
  done.WaitForNotification();
  return result;
}

absl::StatusOr<model::EventPtr> Join(Hub& hub, absl::string_view id) {
  return Await([&](EventDone d) { hub.Join(id, std::move(d)); });
}
absl::StatusOr<model::EventPtr> Send(Hub& hub, absl::string_view id,
                                     absl::string_view text) {
  return Await([&](EventDone d) { hub.Send(id, text, std::move(d)); });
}
absl::StatusOr<model::EventPtr> Leave(Hub& hub, absl::string_view id) {
  return Await([&](EventDone d) { hub.Leave(id, std::move(d)); });
}
absl::StatusOr<model::EventPtr> Publish(Hub& hub,
                                        std::shared_ptr<model::Event> event) {
  return Await([&](EventDone d) { hub.Publish(std::move(event), std::move(d)); });
}

class HubTest : public ::testing::Test {
 protected:
  // The store's last callbacks run before any hub goes.
  void TearDown() override { store_.Close(); }
  HubOptions Options() {
    HubOptions o;
    o.channel_capacity = 100000;
    o.session_idle_timeout = absl::Minutes(1);
    return o;
  }
  std::vector<model::EventPtr> Drain(absl::string_view id) {
    auto ch = hub_.FindChannel(id);
    EXPECT_TRUE(ch.ok()) << ch.status();
    return ch.ok() ? (*ch)->Take(100000).events
                   : std::vector<model::EventPtr>{};
  }

  ManualClock clock_;
  store::MemoryStore store_;
  Hub hub_{Options(), &store_, &clock_};
};

TEST_F(HubTest, JoinIsBroadcastToEveryoneIncludingTheJoiner) {
  ASSERT_TRUE(Join(hub_, "alice").ok());
  auto bob = Join(hub_, "bob");
  ASSERT_TRUE(bob.ok());
  EXPECT_EQ((*bob)->kind, model::EventKind::kJoin);
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
  ASSERT_TRUE(Join(hub_, "alice").ok());
  ASSERT_TRUE(Join(hub_, "bob").ok());
  Drain("alice");
  Drain("bob");
  auto sent = Send(hub_, "alice", "hello");
  ASSERT_TRUE(sent.ok()) << sent.status();
  for (const char* id : {"alice", "bob"}) {
    auto got = Drain(id);
    ASSERT_EQ(got.size(), 1u) << id;
    EXPECT_EQ(got[0], *sent);  // one shared event, not a copy per reader
    EXPECT_EQ(got[0]->text, "hello");
    EXPECT_EQ(got[0]->sender, "alice");
    EXPECT_EQ(got[0]->kind, model::EventKind::kMessage);
  }
}

TEST_F(HubTest, ConcurrentSendersProduceOneOrderThatEveryClientSees) {
  constexpr int kClients = 8;
  constexpr int kPerClient = 200;
  for (int i = 0; i < kClients; ++i) {
    ASSERT_TRUE(Join(hub_, "c" + std::to_string(i)).ok());
  }
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([this, i] {
      for (int j = 0; j < kPerClient; ++j) {
        EXPECT_TRUE(Send(hub_, "c" + std::to_string(i), std::to_string(j)).ok());
      }
    });
  }
  for (auto& t : threads) t.join();

  std::vector<std::string> reference;
  for (int i = 0; i < kClients; ++i) {
    std::vector<std::string> seen;
    uint64_t last = 0;
    for (const model::EventPtr& e : Drain("c" + std::to_string(i))) {
      EXPECT_GT(e->sequence, last);
      last = e->sequence;
      if (e->kind == model::EventKind::kMessage) seen.push_back(e->id);
    }
    ASSERT_EQ(seen.size(), size_t{kClients * kPerClient});
    if (i == 0) reference = seen;
    EXPECT_EQ(seen, reference) << "client c" << i << " saw another order";
  }
}

TEST_F(HubTest, JoinsPastTheSessionLimitsAreRefusedUntilOneLeaves) {
  HubOptions o = Options();
  o.session_limits = {/*total=*/3, /*per_owner=*/2};
  Hub hub(o, &store_, &clock_);
  auto join = [&](absl::string_view id, absl::string_view owner) {
    return Await([&](EventDone d) { hub.Join(id, owner, std::move(d)); });
  };
  ASSERT_TRUE(join("a1", "10.0.0.1").ok());
  ASSERT_TRUE(join("a2", "10.0.0.1").ok());
  absl::StatusOr<model::EventPtr> over = join("a3", "10.0.0.1");
  EXPECT_EQ(over.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ErrorReason(over.status()), "TOO_MANY_SESSIONS");
  ASSERT_TRUE(join("b1", "10.0.0.2").ok());
  EXPECT_EQ(ErrorReason(join("b2", "10.0.0.2").status()), "LOBBY_FULL");
  ASSERT_TRUE(Leave(hub, "a1").ok());
  EXPECT_TRUE(join("a3", "10.0.0.1").ok());
  EXPECT_EQ(hub.SessionCount(), 3u);
}

TEST_F(HubTest, SendBeforeJoinFailsWithFailedPrecondition) {
  auto s = Send(hub_, "ghost", "boo");
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ErrorReason(s.status()), "NOT_JOINED");
  EXPECT_EQ(ErrorField(s.status()), "id");
  EXPECT_EQ(hub_.FindChannel("ghost").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(HubTest, SecondJoinOfAJoinedIdIsAlreadyExists) {
  ASSERT_TRUE(Join(hub_, "alice").ok());
  auto again = Join(hub_, "alice");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ErrorReason(again.status()), "ALREADY_JOINED");
  EXPECT_EQ(hub_.SessionCount(), 1u);
}

TEST_F(HubTest, BadInputIsInvalidArgumentNamingTheField) {
  EXPECT_EQ(ErrorField(Join(hub_, "").status()), "id");
  ASSERT_TRUE(Join(hub_, "alice").ok());
  auto empty = Send(hub_, "alice", "");
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ErrorField(empty.status()), "message");
  auto huge = Send(hub_, "alice", std::string(4097, 'x'));
  EXPECT_EQ(ErrorReason(huge.status()), "MESSAGE_TOO_LONG");
}

TEST_F(HubTest, AClientThatLeftReceivesNothingMore) {
  ASSERT_TRUE(Join(hub_, "alice").ok());
  ASSERT_TRUE(Join(hub_, "bob").ok());
  auto bob_channel = *hub_.FindChannel("bob");
  ASSERT_TRUE(Send(hub_, "alice", "before").ok());
  auto left = Leave(hub_, "bob");
  ASSERT_TRUE(left.ok());
  EXPECT_EQ((*left)->kind, model::EventKind::kLeave);
  ASSERT_TRUE(Send(hub_, "alice", "after").ok());

  auto taken = bob_channel->Take(100);
  EXPECT_TRUE(taken.events.empty());  // even what was queued is gone
  EXPECT_EQ(taken.closed, CloseReason::kLeft);
  EXPECT_EQ(hub_.FindChannel("bob").status().code(),
            absl::StatusCode::kFailedPrecondition);

  auto alice = Drain("alice");
  ASSERT_EQ(alice.size(), 5u);  // join, join, before, leave, after
  EXPECT_EQ(alice[3]->kind, model::EventKind::kLeave);
  EXPECT_EQ(alice[3]->sender, "bob");
  EXPECT_EQ(alice[4]->text, "after");
}

TEST_F(HubTest, LeaveWakesTheWaitingReader) {
  ASSERT_TRUE(Join(hub_, "bob").ok());
  auto ch = *hub_.FindChannel("bob");
  ch->Take(100);
  auto reader = std::make_shared<RecordingReader>();
  ch->Attach(reader);
  ASSERT_TRUE(Leave(hub_, "bob").ok());
  EXPECT_EQ(reader->readable, 1);
  EXPECT_EQ(ch->Take(100).closed, CloseReason::kLeft);
}

// Readers attach, take and detach on one thread while another thread sends
// and wakes them: every event arrives once, in order.
TEST_F(HubTest, ReadersComingAndGoingWhileOthersSendLoseNothing) {
  constexpr int kMessages = 3000;
  ASSERT_TRUE(Join(hub_, "reader").ok());
  ASSERT_TRUE(Join(hub_, "sender").ok());
  auto ch = *hub_.FindChannel("reader");
  std::atomic<bool> done{false};
  std::thread sender([&] {
    for (int i = 0; i < kMessages; ++i) {
      EXPECT_TRUE(Send(hub_, "sender", std::to_string(i)).ok());
    }
    done = true;
  });
  std::vector<uint64_t> seqs;
  auto take = [&] {
    for (const model::EventPtr& e : ch->Take(64).events)
      seqs.push_back(e->sequence);
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
  ASSERT_TRUE(Join(hub, "stalled").ok());
  ASSERT_TRUE(Join(hub, "reader").ok());
  auto reader = *hub.FindChannel("reader");
  std::vector<model::EventPtr> got;
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(Send(hub, "reader", "m" + std::to_string(i)).ok());
    for (auto& e : reader->Take(100).events) got.push_back(e);
  }
  EXPECT_EQ(got.size(), 1001u);  // stalled's join + 1000 messages
  auto stalled = *hub.FindChannel("stalled");
  EXPECT_LE(stalled->Size(), 4u);
  auto taken = stalled->Take(100).events;
  ASSERT_EQ(taken.back()->kind, model::EventKind::kGap);
  EXPECT_EQ(taken.back()->gap_last, 1002u);
}

TEST_F(HubTest, IdleSessionsAreReapedAndAnnouncedAsLeaves) {
  ASSERT_TRUE(Join(hub_, "idle").ok());
  ASSERT_TRUE(Join(hub_, "talker").ok());
  ASSERT_TRUE(Join(hub_, "listener").ok());
  auto listener = *hub_.FindChannel("listener");
  listener->Attach(std::make_shared<RecordingReader>());
  clock_.Advance(absl::Seconds(50));
  ASSERT_TRUE(Send(hub_, "talker", "still here").ok());
  clock_.Advance(absl::Seconds(20));  // idle: 70s; talker: 20s

  EXPECT_EQ(hub_.ReapIdle(), 1);
  EXPECT_EQ(hub_.FindChannel("idle").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(hub_.FindChannel("talker").ok());
  EXPECT_TRUE(hub_.FindChannel("listener").ok());
  // The leave is committed and delivered asynchronously; a later send that
  // has been acknowledged was delivered after it.
  ASSERT_TRUE(Send(hub_, "talker", "marker").ok());
  auto events = listener->Take(100).events;
  ASSERT_GE(events.size(), 2u);
  const model::EventPtr& leave = events[events.size() - 2];
  EXPECT_EQ(leave->kind, model::EventKind::kLeave);
  EXPECT_EQ(leave->sender, "idle");
}

TEST_F(HubTest, ShutdownClosesChannelsAndRefusesNewCalls) {
  ASSERT_TRUE(Join(hub_, "alice").ok());
  auto ch = *hub_.FindChannel("alice");
  hub_.Shutdown();
  EXPECT_EQ(ch->Take(10).closed, CloseReason::kShutdown);
  EXPECT_EQ(Join(hub_, "bob").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Send(hub_, "alice", "x").status().code(),
            absl::StatusCode::kUnavailable);
}

// A store whose writes all fail (reads go to a real one): the hub must not
// deliver or acknowledge what it could not commit.
class FailingStore : public store::ForwardingStore {
 public:
  explicit FailingStore(store::Store* reads) : ForwardingStore(reads) {}
  ~FailingStore() override {
    for (std::thread& t : writers_) t.join();
  }
  // Like a real store, answers on a thread of its own, never inside the
  // call.
  void Submit(store::DirectoryWrite, store::WriteDone done) override {
    Fail(std::move(done));
  }
  void Append(store::AppendEvent, store::WriteDone done) override {
    Fail(std::move(done));
  }
  void Close() override {}

 private:
  void Fail(store::WriteDone done) {
    writers_.emplace_back([done = std::move(done)]() mutable {
      done(absl::UnavailableError("disk on fire"));
    });
  }

  std::vector<std::thread> writers_;
};

TEST_F(HubTest, NothingIsDeliveredOrAcknowledgedWithoutACommit) {
  FailingStore failing(&store_);
  Hub hub(Options(), &failing, &clock_);
  EXPECT_EQ(Join(hub, "alice").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(hub.SessionCount(), 0u);
}

TEST_F(HubTest, SequenceNumbersContinueFromTheStore) {
  ASSERT_TRUE(Join(hub_, "alice").ok());
  ASSERT_TRUE(Send(hub_, "alice", "one").ok());
  Hub restarted(Options(), &store_, &clock_);
  auto joined = Join(restarted, "bob");
  ASSERT_TRUE(joined.ok());
  EXPECT_EQ((*joined)->sequence, 3u);
}

// An event for the lobby's log posted by a signed-in user.
std::shared_ptr<model::Event> RoomMessage(absl::string_view log,
                                          absl::string_view text) {
  auto e = NewEvent(model::EventKind::kMessage, log);
  e->room_id = std::string(log);
  e->sender = "ann";
  e->sender_id = "u-ann";
  e->text = std::string(text);
  return e;
}

TEST_F(HubTest, TheEncodingCarriesTheNumberTheStoreGave) {
  HubOptions o = Options();
  o.encoder = [](const model::Event& e) {
    return absl::StrCat(e.sequence, ":", e.text);
  };
  Hub hub(o, &store_, &clock_);
  auto sub = hub.Subscribe(model::kLobbyId, Subscriber{});
  ASSERT_TRUE(sub.ok());
  auto first = Publish(hub, RoomMessage(model::kLobbyId, "one"));
  auto second = Publish(hub, RoomMessage(model::kLobbyId, "two"));
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ((*first)->wire, "1:one");
  EXPECT_EQ((*second)->wire, "2:two");
  auto live = sub->channel->Take(10).events;
  ASSERT_EQ(live.size(), 2u);
  EXPECT_EQ(live[0], *first);  // the acknowledged event itself
  EXPECT_EQ(live[1]->wire, "2:two");
  hub.Unsubscribe(*sub);
}

TEST_F(HubTest, AnEventTheStoreRefusesTakesNoNumberAndReachesNobody) {
  auto sub = hub_.Subscribe(model::kLobbyId, Subscriber{});
  ASSERT_TRUE(sub.ok());
  ASSERT_TRUE(Publish(hub_, RoomMessage(model::kLobbyId, "one")).ok());
  auto edit = NewEvent(model::EventKind::kEdit, model::kLobbyId);
  edit->target_id = "no-such-message";
  edit->text = "changed";
  EXPECT_EQ(Publish(hub_, std::move(edit)).status().code(),
            absl::StatusCode::kNotFound);
  auto two = Publish(hub_, RoomMessage(model::kLobbyId, "two"));
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ((*two)->sequence, 2u);  // no hole where the edit failed
  auto live = sub->channel->Take(10).events;
  ASSERT_EQ(live.size(), 2u);
  EXPECT_EQ(live[0]->text, "one");
  EXPECT_EQ(live[1]->text, "two");
  hub_.Unsubscribe(*sub);
}

TEST_F(HubTest, ASubscriptionGetsWhatFollowsItsLivePointAndHistoryHasTheRest) {
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(Publish(hub_, RoomMessage(model::kLobbyId, "old")).ok());
  }
  auto sub = hub_.Subscribe(model::kLobbyId, Subscriber{"u-bob", "", "", ""});
  ASSERT_TRUE(sub.ok()) << sub.status();
  EXPECT_EQ(sub->live_after, 3u);
  ASSERT_TRUE(Publish(hub_, RoomMessage(model::kLobbyId, "new1")).ok());
  ASSERT_TRUE(Publish(hub_, RoomMessage(model::kLobbyId, "new2")).ok());

  auto live = sub->channel->Take(100).events;
  ASSERT_EQ(live.size(), 2u);
  EXPECT_EQ(live[0]->sequence, 4u);
  EXPECT_EQ(live[1]->sequence, 5u);
  auto history = store_.ReadAfter(model::kLobbyId, 0, sub->live_after);
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 3u);
  EXPECT_EQ(history->back()->sequence, 3u);
  hub_.Unsubscribe(*sub);
  ASSERT_TRUE(Publish(hub_, RoomMessage(model::kLobbyId, "after")).ok());
  EXPECT_EQ(sub->channel->Size(), 0u);
}

TEST_F(HubTest, RoomSubscribersSeeOthersComeAndGoAsLiveOnlyEvents) {
  auto ann =
      hub_.Subscribe(model::kLobbyId, Subscriber{"u-ann", "Ann", "lobby", ""});
  ASSERT_TRUE(ann.ok());
  auto bob =
      hub_.Subscribe(model::kLobbyId, Subscriber{"u-bob", "Bob", "lobby", ""});
  ASSERT_TRUE(bob.ok());
  hub_.Unsubscribe(*bob);
  auto seen = ann->channel->Take(100).events;
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0]->kind, model::EventKind::kJoin);
  EXPECT_EQ(seen[0]->sender, "Bob");
  EXPECT_EQ(seen[0]->sequence, 0u);  // not in the log
  EXPECT_EQ(seen[1]->kind, model::EventKind::kLeave);
  EXPECT_EQ(bob->channel->Size(), 0u);  // nobody announces you to yourself
  EXPECT_EQ(*store_.LastSequence(model::kLobbyId), 0u);
}

// A gateway's client (docs/fanout.md): present, closed like a stream, and
// given no events, which the gateway's own subscription carries.
TEST_F(HubTest, ARegistrationWithoutEventsIsPresentAndClosedButFedNothing) {
  auto gateway = hub_.Subscribe(model::kLobbyId, Subscriber{});
  ASSERT_TRUE(gateway.ok());
  Subscriber who{"u-bob", "Bob", "lobby", "token-1"};
  who.receives_events = false;
  auto bob = hub_.Subscribe(model::kLobbyId, who);
  ASSERT_TRUE(bob.ok());
  bool truncated = false;
  ASSERT_EQ(hub_.ListPresent(model::kLobbyId, 10, &truncated).size(), 1u);
  ASSERT_TRUE(Publish(hub_, RoomMessage(model::kLobbyId, "hello")).ok());
  hub_.PushLive(NewEvent(model::EventKind::kTyping, model::kLobbyId));
  EXPECT_EQ(bob->channel->Size(), 0u);
  auto seen = gateway->channel->Take(100).events;
  ASSERT_EQ(seen.size(), 3u);  // Bob's join, the message, the typing
  EXPECT_EQ(seen[0]->kind, model::EventKind::kJoin);

  hub_.RevokeToken("token-1");
  EXPECT_EQ(bob->channel->Take(1).closed, CloseReason::kSignedOut);
  EXPECT_EQ(gateway->channel->Take(1).closed, CloseReason::kOpen);
}

TEST_F(HubTest, CrowdedRoomsCarryNoPresence) {
  HubOptions o = Options();
  o.presence_max_subscribers = 2;
  Hub hub(o, &store_, &clock_);
  auto ann =
      hub.Subscribe(model::kLobbyId, Subscriber{"u-ann", "Ann", "lobby", ""});
  auto bob =
      hub.Subscribe(model::kLobbyId, Subscriber{"u-bob", "Bob", "lobby", ""});
  auto cat =
      hub.Subscribe(model::kLobbyId, Subscriber{"u-cat", "Cat", "lobby", ""});
  ASSERT_TRUE(ann.ok() && bob.ok() && cat.ok());
  auto seen = ann->channel->Take(100).events;
  ASSERT_EQ(seen.size(), 1u);  // Bob's join; Cat came with the room full
  EXPECT_EQ(seen[0]->sender, "Bob");
  hub.Unsubscribe(*cat);
  EXPECT_EQ(ann->channel->Size(), 0u);  // still crowded when Cat left
}

// The kinds and senders of what `sub` got, e.g. "join Bob".
std::vector<std::string> Seen(const absl::StatusOr<Subscription>& sub) {
  std::vector<std::string> seen;
  for (const model::EventPtr& e : sub->channel->Take(100).events) {
    seen.push_back(absl::StrCat(e->kind == model::EventKind::kJoin ? "join "
                                : e->kind == model::EventKind::kLeave
                                    ? "leave "
                                    : "other ",
                                e->sender));
  }
  return seen;
}

TEST_F(HubTest, PresenceIsPerUserNotPerStream) {
  auto ann =
      hub_.Subscribe(model::kLobbyId, Subscriber{"u-ann", "Ann", "lobby", ""});
  auto bob1 =
      hub_.Subscribe(model::kLobbyId, Subscriber{"u-bob", "Bob", "lobby", ""});
  auto bob2 =
      hub_.Subscribe(model::kLobbyId, Subscriber{"u-bob", "Bob", "lobby", ""});
  ASSERT_TRUE(ann.ok() && bob1.ok() && bob2.ok());
  EXPECT_EQ(Seen(ann), std::vector<std::string>{"join Bob"});  // one join
  hub_.Unsubscribe(*bob1);
  EXPECT_TRUE(Seen(ann).empty()) << "Bob still has a stream open";
  hub_.Unsubscribe(*bob2);
  EXPECT_EQ(Seen(ann), std::vector<std::string>{"leave Bob"});
}

// A hub whose leaves wait 5 s, with Ann and Bob on a room's log; Ann has
// seen Bob's join.
class GraceHubTest : public HubTest {
 protected:
  static HubOptions GraceOptions() {
    HubOptions o;
    o.channel_capacity = 1000;
    o.presence_leave_grace = absl::Seconds(5);
    return o;
  }
  void SetUp() override {
    ASSERT_TRUE(ann.ok() && bob.ok());
    ASSERT_EQ(Seen(ann), std::vector<std::string>{"join Bob"});
  }
  Hub hub{GraceOptions(), &store_, &clock_};
  absl::StatusOr<Subscription> ann =
      hub.Subscribe(model::kLobbyId, Subscriber{"u-ann", "Ann", "lobby", ""});
  absl::StatusOr<Subscription> bob =
      hub.Subscribe(model::kLobbyId, Subscriber{"u-bob", "Bob", "lobby", ""});
};

TEST_F(GraceHubTest, AReconnectWithinTheGraceAnnouncesNothing) {

  // Bob's stream drops and comes back 4 s later: nobody hears of it.
  hub.Unsubscribe(*bob);
  clock_.Advance(absl::Seconds(4));
  EXPECT_EQ(hub.AnnounceLeaves(), 0);
  bool truncated = false;
  EXPECT_EQ(hub.ListPresent(model::kLobbyId, 10, &truncated).size(), 2u)
      << "Bob is not gone until his leave is announced";
  bob = hub.Subscribe(model::kLobbyId, Subscriber{"u-bob", "Bob", "lobby", ""});
  ASSERT_TRUE(bob.ok());
  clock_.Advance(absl::Seconds(10));
  EXPECT_EQ(hub.AnnounceLeaves(), 0);
  EXPECT_TRUE(Seen(ann).empty());

  // Now he goes for good: the leave comes once the grace has run out.
  hub.Unsubscribe(*bob);
  clock_.Advance(absl::Seconds(4));
  EXPECT_EQ(hub.AnnounceLeaves(), 0);
  EXPECT_TRUE(Seen(ann).empty());
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(hub.AnnounceLeaves(), 1);
  EXPECT_EQ(Seen(ann), std::vector<std::string>{"leave Bob"});
  EXPECT_EQ(hub.ListPresent(model::kLobbyId, 10, &truncated).size(), 1u);
  EXPECT_EQ(hub.AnnounceLeaves(), 0) << "announced once";

  // Back after the leave: a join again.
  bob = hub.Subscribe(model::kLobbyId, Subscriber{"u-bob", "Bob", "lobby", ""});
  ASSERT_TRUE(bob.ok());
  EXPECT_EQ(Seen(ann), std::vector<std::string>{"join Bob"});
}

TEST_F(GraceHubTest, AStreamTheServerEndsLeavesAtOnce) {
  hub.CloseUserSubscriptions("u-bob", CloseReason::kUserGone);
  EXPECT_EQ(Seen(ann), std::vector<std::string>{"leave Bob"});
  hub.Unsubscribe(*bob);  // the stream ends afterwards: nothing more
  clock_.Advance(absl::Seconds(10));
  EXPECT_EQ(hub.AnnounceLeaves(), 0);
  EXPECT_TRUE(Seen(ann).empty());
}

TEST_F(HubTest, InboxesCarryNoPresence) {
  store::User ann;
  ann.id = "u-ann";
  ann.username = "ann";
  ann.display_name = "Ann";
  Notification created;
  store_.Submit(store::PutUser{ann, true}, [&](absl::StatusOr<int64_t> r) {
    EXPECT_TRUE(r.ok()) << r.status();
    created.Notify();
  });
  created.WaitForNotification();
  const std::string inbox = model::InboxLog("u-ann");
  auto a = hub_.Subscribe(inbox, Subscriber{"u-ann", "Ann", "", ""});
  auto b = hub_.Subscribe(inbox, Subscriber{"u-ann", "Ann", "", ""});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->channel->Size(), 0u);
  auto dm = RoomMessage(inbox, "psst");
  dm->room_id.clear();
  ASSERT_TRUE(Publish(hub_, dm).ok());
  EXPECT_EQ(a->channel->Take(10).events.at(0)->text, "psst");
  EXPECT_EQ(b->channel->Take(10).events.at(0)->text, "psst");
}

TEST_F(HubTest, ClosingOneUsersSubscriptionsLeavesTheOthersOpen) {
  auto ann = hub_.Subscribe(model::kLobbyId, Subscriber{"u-ann", "", "", ""});
  auto bob = hub_.Subscribe(model::kLobbyId, Subscriber{"u-bob", "", "", ""});
  ASSERT_TRUE(ann.ok() && bob.ok());
  auto reader = std::make_shared<RecordingReader>();
  bob->channel->Attach(reader);
  hub_.CloseSubscriptions(model::kLobbyId, "u-bob", CloseReason::kRemoved);
  EXPECT_EQ(reader->readable, 1);
  EXPECT_EQ(bob->channel->Take(10).closed, CloseReason::kRemoved);
  ASSERT_TRUE(Publish(hub_, RoomMessage(model::kLobbyId, "hi")).ok());
  EXPECT_EQ(ann->channel->Take(10).events.size(), 1u);
  EXPECT_EQ(bob->channel->Take(10).events.size(), 0u);
}

TEST_F(HubTest, ADroppedLogClosesItsStreamsAndRefusesPublishing) {
  const std::string log = model::InboxLog("u-gone");
  auto sub = hub_.Subscribe(log, Subscriber{"u-gone", "", "", ""});
  ASSERT_TRUE(sub.ok());
  hub_.DropLog(log);
  EXPECT_EQ(sub->channel->Take(10).closed, CloseReason::kDeleted);
  auto refused = Publish(hub_, RoomMessage(log, "late"));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(hub_.Subscribe(log, Subscriber{}).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(HubTest, APurgeReportsHowManyMessagesItRemoved) {
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(Publish(hub_, RoomMessage(model::kLobbyId, "m")).ok());
  }
  auto purge = NewEvent(model::EventKind::kPurge, model::kLobbyId);
  purge->purge_through = 3;
  Notification done;
  int64_t purged = -1;
  hub_.PublishPurge(std::move(purge),
                    [&](absl::StatusOr<model::EventPtr> e, int64_t n) {
                      EXPECT_TRUE(e.ok());
                      purged = n;
                      done.Notify();
                    });
  done.WaitForNotification();
  EXPECT_EQ(purged, 3);
  auto left = store_.ListMessages(model::kLobbyId, store::Page{});
  ASSERT_TRUE(left.ok());
  ASSERT_EQ(left->messages.size(), 1u);
  EXPECT_EQ(left->messages[0]->sequence, 4u);
}

// Takes what its channel holds whenever it is woken, and notes the thread.
class TakingReader : public ChannelReader {
 public:
  TakingReader(std::shared_ptr<Channel> channel, std::atomic<int>* left,
               Notification* all)
      : channel_(std::move(channel)), left_(left), all_(all) {}
  void OnReadable() override {
    // Taken and noted under one lock, as a stream's pump does: two threads
    // may wake the same reader at once.
    MutexLock lock(&mu_);
    std::vector<model::EventPtr> taken = channel_->Take(1000).events;
    threads_.insert(std::this_thread::get_id());
    for (const model::EventPtr& e : taken) {
      sequences_.push_back(e->sequence);
      if (left_->fetch_sub(1) == 1) all_->Notify();
    }
  }
  void OnSuperseded() override {}
  std::vector<uint64_t> sequences() {
    MutexLock lock(&mu_);
    return sequences_;
  }
  std::set<std::thread::id> threads() {
    MutexLock lock(&mu_);
    return threads_;
  }

 private:
  const std::shared_ptr<Channel> channel_;
  std::atomic<int>* const left_;
  Notification* const all_;
  Mutex mu_;
  std::vector<uint64_t> sequences_;
  std::set<std::thread::id> threads_;
};

TEST_F(HubTest, ALargeRoomsWakeUpsAreSharedAmongDispatchersInOrder) {
  HubOptions o = Options();
  o.fanout_threads = 2;
  Hub hub(o, &store_, &clock_);
  constexpr int kReaders = 200, kMessages = 20;
  std::atomic<int> left{kReaders * kMessages};
  Notification all;
  std::vector<Subscription> subs;
  std::vector<std::shared_ptr<TakingReader>> readers;
  for (int i = 0; i < kReaders; ++i) {
    auto sub = hub.Subscribe(model::kLobbyId, Subscriber{});  // no presence
    ASSERT_TRUE(sub.ok());
    readers.push_back(
        std::make_shared<TakingReader>(sub->channel, &left, &all));
    sub->channel->Attach(readers.back());
    subs.push_back(*sub);
  }
  std::vector<uint64_t> sent;
  for (int k = 0; k < kMessages; ++k) {
    auto event = Publish(hub, RoomMessage(model::kLobbyId, absl::StrCat(k)));
    ASSERT_TRUE(event.ok());
    sent.push_back((*event)->sequence);
  }
  all.WaitForNotification();
  std::set<std::thread::id> threads;
  for (auto& reader : readers) {
    EXPECT_EQ(reader->sequences(), sent);  // all of them, in order
    for (const auto& t : reader->threads()) threads.insert(t);
  }
  // One room, yet both dispatchers woke its readers.
  EXPECT_EQ(threads.size(), 2u);
  // Each reader holds its channel and the channel its reader: detach.
  for (int i = 0; i < kReaders; ++i) {
    subs[i].channel->Detach(readers[i].get(), clock_.Now());
    hub.Unsubscribe(subs[i]);
  }
}

// A reader whose wake-up does not return until released: a stream whose
// write is slow.
class BlockedReader : public ChannelReader {
 public:
  explicit BlockedReader(Notification* release) : release_(release) {}
  void OnReadable() override {
    woken_.Notify();
    release_->WaitForNotification();
  }
  void OnSuperseded() override {}
  Notification& woken() { return woken_; }

 private:
  Notification* const release_;
  Notification woken_;
};

TEST_F(HubTest, TheSenderIsAnsweredBeforeTheReadersAreWoken) {
  HubOptions o = Options();
  o.fanout_threads = 1;
  Hub hub(o, &store_, &clock_);
  auto sub = hub.Subscribe(model::kLobbyId, Subscriber{});
  ASSERT_TRUE(sub.ok());
  Notification release;
  auto reader = std::make_shared<BlockedReader>(&release);
  sub->channel->Attach(reader);
  Notification acked;
  size_t queued_at_ack = 0;
  bool woken_at_ack = true;
  hub.Publish(RoomMessage(model::kLobbyId, "hello"),
              [&](absl::StatusOr<model::EventPtr> event) {
                EXPECT_TRUE(event.ok()) << event.status();
                // Already in the reader's channel, not yet handed to it.
                queued_at_ack = sub->channel->Size();
                woken_at_ack = reader->woken().HasBeenNotified();
                acked.Notify();
              });
  // With the wake-up first, the only dispatcher would be held by the
  // blocked reader and the answer would not come until it is released.
  const bool answered = acked.WaitForNotificationWithTimeout(absl::Seconds(30));
  release.Notify();
  acked.WaitForNotification();  // in the old order, right after the release
  EXPECT_TRUE(answered);
  EXPECT_EQ(queued_at_ack, 1u);
  EXPECT_FALSE(woken_at_ack);
  // The reader is still woken, after the answer.
  EXPECT_TRUE(reader->woken().WaitForNotificationWithTimeout(absl::Seconds(30)));
  sub->channel->Detach(reader.get(), clock_.Now());
  hub.Unsubscribe(*sub);
}

}  // namespace
}  // namespace parley::chat
