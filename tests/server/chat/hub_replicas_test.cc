// Several hubs on one store, joined by a bus: what readers on each replica
// see of events committed on any of them.
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/bus/in_process_bus.h"
#include "server/bus/presence_directory.h"
#include "server/chat/hub.h"
#include "server/common/mutex.h"
#include "server/model/ids.h"
#include "server/store/memory_store.h"
#include "tests/server/chat/channel_collector.h"

namespace parley::chat {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

struct Reader {
  Subscription subscription;
  std::shared_ptr<ChannelCollector> collector =
      std::make_shared<ChannelCollector>();
};

Reader Subscribe(Hub& hub, absl::string_view log,
                 absl::string_view user_id = "",
                 absl::string_view token_id = "") {
  Reader r;
  absl::StatusOr<Subscription> s = hub.Subscribe(
      log, Subscriber{std::string(user_id), "", "", std::string(token_id)});
  EXPECT_TRUE(s.ok()) << s.status();
  if (s.ok()) {
    r.subscription = *s;
    r.subscription.channel->Attach(r.collector);
  }
  return r;
}

absl::StatusOr<model::EventPtr> Post(Hub& hub, absl::string_view log,
                                     absl::string_view text) {
  auto event = NewEvent(model::EventKind::kMessage, log);
  event->room_id = std::string(log);
  event->text = std::string(text);
  Notification done;
  absl::StatusOr<model::EventPtr> result;
  hub.Publish(event, [&](absl::StatusOr<model::EventPtr> r) {
    result = std::move(r);
    done.Notify();
  });
  done.WaitForNotification();
  return result;
}

// A memory store whose reads of a log can be made to fail, as a database
// that went away does.
class FlakyStore : public store::MemoryStore {
 public:
  void FailReads(bool fail) {
    MutexLock lock(&mu_);
    fail_ = fail;
  }
  // Waits until a read failed; false if none did within 20 s.
  bool WaitForAFailedRead() {
    return failed_.WaitForNotificationWithTimeout(absl::Seconds(20));
  }

  absl::StatusOr<std::vector<model::EventPtr>> ReadAfter(
      absl::string_view log, uint64_t after, size_t limit) override {
    {
      MutexLock lock(&mu_);
      if (fail_) {
        if (!failed_.HasBeenNotified()) failed_.Notify();
        return absl::UnavailableError("the database is away");
      }
    }
    return MemoryStore::ReadAfter(log, after, limit);
  }

 private:
  Mutex mu_;
  bool fail_ ABSL_GUARDED_BY(mu_) = false;
  Notification failed_;
};

std::vector<uint64_t> OneTo(uint64_t n) {
  std::vector<uint64_t> all;
  for (uint64_t i = 1; i <= n; ++i) all.push_back(i);
  return all;
}

class HubReplicasTest : public ::testing::Test {
 protected:
  HubReplicasTest() {
    store::Room room;
    room.id = kRoom;
    room.name = "general";
    room.visibility = store::Visibility::kPublic;
    Notification created;
    store_.Submit(store::PutRoom{room}, [&](absl::StatusOr<int64_t> r) {
      EXPECT_TRUE(r.ok()) << r.status();
      created.Notify();
    });
    created.WaitForNotification();
  }
  // The store's last callbacks run before any hub goes.
  ~HubReplicasTest() override { store_.Close(); }

  HubOptions Options(bus::Bus* bus) {
    HubOptions o;
    o.channel_capacity = 100000;
    o.fanout_threads = 2;
    o.bus = bus;
    o.presence = &presence_;
    return o;
  }
  // Who a replica lists as present on the room, by name.
  std::vector<std::string> Everywhere(Hub& hub) {
    std::vector<std::string> names;
    Notification listed;
    hub.ListPresentEverywhere(kRoom, 100,
                              [&](std::vector<Present> present, bool) {
                                for (const Present& p : present) {
                                  names.push_back(p.name);
                                }
                                listed.Notify();
                              });
    listed.WaitForNotification();
    return names;
  }

  const std::string kRoom = "room-1";
  ManualClock clock_;
  FlakyStore store_;
  bus::InProcessNetwork network_;
  bus::MemoryPresenceDirectory presence_{absl::Seconds(5)};
  std::unique_ptr<bus::Bus> bus_a_ = network_.Connect();
  std::unique_ptr<bus::Bus> bus_b_ = network_.Connect();
  std::unique_ptr<bus::Bus> bus_c_ = network_.Connect();
  Hub a_{Options(bus_a_.get()), &store_, &clock_};
  Hub b_{Options(bus_b_.get()), &store_, &clock_};
  Hub c_{Options(bus_c_.get()), &store_, &clock_};
};

TEST_F(HubReplicasTest, AnEventCommittedOnOneReplicaReachesReadersOnAll) {
  Reader on_a = Subscribe(a_, kRoom);
  Reader on_b = Subscribe(b_, kRoom);
  Reader on_c = Subscribe(c_, kRoom);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(Post(a_, kRoom, absl::StrCat("m", i)).ok());
  }
  for (Reader* r : {&on_a, &on_b, &on_c}) {
    EXPECT_THAT(r->collector->WaitFor(*r->subscription.channel, 5),
                ElementsAreArray(OneTo(5)));
  }
}

TEST_F(HubReplicasTest, PostersOnEveryReplicaGiveEveryReaderOneGaplessOrder) {
  Reader on_a = Subscribe(a_, kRoom);
  Reader on_b = Subscribe(b_, kRoom);
  Reader on_c = Subscribe(c_, kRoom);
  constexpr int kPerReplica = 200;
  std::vector<std::thread> posters;
  for (Hub* hub : {&a_, &b_, &c_}) {
    posters.emplace_back([this, hub] {
      for (int i = 0; i < kPerReplica; ++i) {
        EXPECT_TRUE(Post(*hub, kRoom, absl::StrCat("m", i)).ok());
      }
    });
  }
  for (std::thread& t : posters) t.join();
  for (Reader* r : {&on_a, &on_b, &on_c}) {
    EXPECT_THAT(r->collector->WaitFor(*r->subscription.channel,
                                      3 * kPerReplica),
                ElementsAreArray(OneTo(3 * kPerReplica)));
  }
}

TEST_F(HubReplicasTest, EventsTheBusLostAreReadFromTheStoreAtTheNextOne) {
  Reader on_b = Subscribe(b_, kRoom);
  network_.Flush();  // b hears the room from here on
  network_.LoseMessages(true);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Post(a_, kRoom, "lost").ok());
  network_.Flush();
  network_.LoseMessages(false);
  ASSERT_TRUE(Post(a_, kRoom, "heard").ok());
  EXPECT_THAT(on_b.collector->WaitFor(*on_b.subscription.channel, 4),
              ElementsAreArray(OneTo(4)));
}

TEST_F(HubReplicasTest, AGapTheStoreCannotFillIsNotSkipped) {
  Reader on_b = Subscribe(b_, kRoom);
  // b has read the store since it subscribed once it has a first message.
  ASSERT_TRUE(Post(a_, kRoom, "first").ok());
  ASSERT_THAT(on_b.collector->WaitFor(*on_b.subscription.channel, 1),
              ElementsAreArray(OneTo(1)));
  network_.LoseMessages(true);
  ASSERT_TRUE(Post(a_, kRoom, "lost").ok());
  network_.Flush();
  network_.LoseMessages(false);
  // b hears 3 while the store cannot tell it 2: it delivers neither yet.
  store_.FailReads(true);
  ASSERT_TRUE(Post(a_, kRoom, "heard while the store is away").ok());
  ASSERT_TRUE(store_.WaitForAFailedRead());
  store_.FailReads(false);
  ASSERT_TRUE(Post(a_, kRoom, "heard with the store back").ok());
  EXPECT_THAT(on_b.collector->WaitFor(*on_b.subscription.channel, 4),
              ElementsAreArray(OneTo(4)));
}

TEST_F(HubReplicasTest, AfterAReconnectionEveryHeardLogIsReadAgain) {
  Reader on_b = Subscribe(b_, kRoom);
  network_.Flush();
  network_.LoseMessages(true);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Post(a_, kRoom, "lost").ok());
  network_.Flush();
  network_.LoseMessages(false);
  // Nothing else is posted: only the reconnection brings them.
  network_.Reconnect();
  EXPECT_THAT(on_b.collector->WaitFor(*on_b.subscription.channel, 3),
              ElementsAreArray(OneTo(3)));
}

TEST_F(HubReplicasTest, AReplicaHearsARoomOnlyWhileItHasReaders) {
  Reader on_b = Subscribe(b_, kRoom);
  ASSERT_TRUE(Post(a_, kRoom, "1").ok());
  EXPECT_THAT(on_b.collector->WaitFor(*on_b.subscription.channel, 1),
              ElementsAreArray(OneTo(1)));
  b_.Unsubscribe(on_b.subscription);
  network_.Flush();
  ASSERT_TRUE(Post(a_, kRoom, "2").ok());
  ASSERT_TRUE(Post(a_, kRoom, "3").ok());
  // A new reader reads history through live_after, then its channel has
  // everything after that: what b did not hear while it had no reader,
  // then what follows.
  Reader again = Subscribe(b_, kRoom);
  const uint64_t live_after = again.subscription.live_after;
  ASSERT_LE(live_after, 3u);
  ASSERT_TRUE(Post(a_, kRoom, "4").ok());
  std::vector<uint64_t> expected;
  for (uint64_t i = live_after + 1; i <= 4; ++i) expected.push_back(i);
  EXPECT_THAT(again.collector->WaitFor(*again.subscription.channel,
                                       expected.size()),
              ElementsAreArray(expected));
}

TEST_F(HubReplicasTest, ATypingNoticeReachesReadersOnEveryReplicaOnce) {
  Reader on_a = Subscribe(a_, kRoom);
  Reader on_b = Subscribe(b_, kRoom);
  // Each replica has caught up with the room once a first message is in.
  ASSERT_TRUE(Post(a_, kRoom, "before").ok());
  for (Reader* r : {&on_a, &on_b}) {
    ASSERT_THAT(r->collector->WaitFor(*r->subscription.channel, 1),
                ElementsAreArray(OneTo(1)));
  }
  auto typing = NewEvent(model::EventKind::kTyping, kRoom);
  typing->sender = "Ann";
  typing->typing_expire = clock_.Now() + absl::Seconds(5);
  a_.PushLive(typing);
  network_.Flush();
  // A message after it: each reader has the notice, once, between them.
  ASSERT_TRUE(Post(a_, kRoom, "after").ok());
  for (Reader* r : {&on_a, &on_b}) {
    EXPECT_THAT(r->collector->WaitFor(*r->subscription.channel, 3),
                ElementsAreArray(std::vector<uint64_t>{1, 0, 2}));
  }
}

TEST_F(HubReplicasTest, PresenceIsListedFromEveryReplica) {
  auto open = [&](Hub& hub, const char* user, const char* name) {
    absl::StatusOr<Subscription> s =
        hub.Subscribe(kRoom, Subscriber{user, name, "general", ""});
    EXPECT_TRUE(s.ok()) << s.status();
    return *s;
  };
  Subscription ann_b = open(b_, "u-ann", "Ann");
  Subscription ann_c = open(c_, "u-ann", "Ann");
  Subscription bob_c = open(c_, "u-bob", "Bob");
  // a has nobody of its own; b and c have not shared yet.
  EXPECT_THAT(Everywhere(a_), ::testing::IsEmpty());
  b_.SharePresence();
  c_.SharePresence();
  // Ann once, though on two replicas; c lists its own at once.
  EXPECT_THAT(Everywhere(a_), ElementsAre("Ann", "Bob"));
  c_.Unsubscribe(bob_c);
  EXPECT_THAT(Everywhere(c_), ElementsAre("Ann"));
  c_.SharePresence();
  EXPECT_THAT(Everywhere(a_), ElementsAre("Ann"));
  // A replica that stops sharing (it died) drops out after the time to
  // live.
  clock_.Advance(absl::Seconds(6));
  EXPECT_THAT(Everywhere(a_), ::testing::IsEmpty());
  b_.Unsubscribe(ann_b);
  c_.Unsubscribe(ann_c);
}

TEST_F(HubReplicasTest, ASignOutEndsTheStreamsOfThatTokenOnEveryReplica) {
  Reader phone = Subscribe(b_, kRoom, "u-ann", "token-phone");
  Reader inbox = Subscribe(c_, "dm:u-ann", "u-ann", "token-phone");
  Reader laptop = Subscribe(c_, kRoom, "u-ann", "token-laptop");
  a_.RevokeToken("token-phone");
  EXPECT_EQ(phone.collector->WaitClosed(*phone.subscription.channel),
            CloseReason::kSignedOut);
  EXPECT_EQ(inbox.collector->WaitClosed(*inbox.subscription.channel),
            CloseReason::kSignedOut);
  // Her other token's stream carries on.
  ASSERT_TRUE(Post(a_, kRoom, "after").ok());
  EXPECT_THAT(laptop.collector->WaitFor(*laptop.subscription.channel, 1),
              ElementsAreArray(OneTo(1)));
}

TEST_F(HubReplicasTest, ClosingStreamsOnOneReplicaClosesThemOnAll) {
  Reader ann_b = Subscribe(b_, kRoom, "u-ann");
  Reader ann_c = Subscribe(c_, kRoom, "u-ann");
  Reader bob_b = Subscribe(b_, kRoom, "u-bob");
  Reader cat_c = Subscribe(c_, kRoom, "u-cat");
  // A removal of Ann, decided on a, a replica where she has no stream.
  a_.CloseSubscriptions(kRoom, "u-ann", CloseReason::kRemoved);
  EXPECT_EQ(ann_b.collector->WaitClosed(*ann_b.subscription.channel),
            CloseReason::kRemoved);
  EXPECT_EQ(ann_c.collector->WaitClosed(*ann_c.subscription.channel),
            CloseReason::kRemoved);
  // The room turned private: only Bob stays a member.
  a_.CloseSubscriptionsExcept(kRoom, {"u-bob"}, CloseReason::kRemoved);
  EXPECT_EQ(cat_c.collector->WaitClosed(*cat_c.subscription.channel),
            CloseReason::kRemoved);
  // Deleted: everyone goes, and no replica publishes to it any more.
  a_.DropLog(kRoom);
  EXPECT_EQ(bob_b.collector->WaitClosed(*bob_b.subscription.channel),
            CloseReason::kDeleted);
  network_.Flush();
  EXPECT_EQ(Post(b_, kRoom, "late").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(HubReplicasTest, ASignOutOnOneReplicaClosesTheUsersStreamsEverywhere) {
  Reader in_room = Subscribe(b_, kRoom, "u-ann");
  Reader in_lobby = Subscribe(c_, model::kLobbyId, "u-ann");
  a_.CloseUserSubscriptions("u-ann", CloseReason::kUserGone);
  EXPECT_EQ(in_room.collector->WaitClosed(*in_room.subscription.channel),
            CloseReason::kUserGone);
  EXPECT_EQ(in_lobby.collector->WaitClosed(*in_lobby.subscription.channel),
            CloseReason::kUserGone);
}

}  // namespace
}  // namespace parley::chat
