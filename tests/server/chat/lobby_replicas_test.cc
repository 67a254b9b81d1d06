// The seed-000 lobby on several hubs sharing one store, one bus and one
// session directory: a client joins on one replica, sends on a second and
// reads on a third, as on a single server.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/bus/in_process_bus.h"
#include "server/bus/session_directory.h"
#include "server/chat/hub.h"
#include "server/common/mutex.h"
#include "server/model/ids.h"
#include "server/store/memory_store.h"
#include "tests/server/chat/channel_collector.h"
#include "tests/server/common/answer.h"

namespace parley::chat {
namespace {

using ::testing::ElementsAre;

constexpr size_t kCapacity = 4;

using EventAnswer = Answer<absl::StatusOr<model::EventPtr>>;

absl::StatusOr<model::EventPtr> Join(Hub& hub, absl::string_view id) {
  EventAnswer o;
  hub.Join(id, o.Callback());
  return o.Get();
}

absl::StatusOr<model::EventPtr> Send(Hub& hub, absl::string_view id,
                                     absl::string_view text) {
  EventAnswer o;
  hub.Send(id, text, o.Callback());
  return o.Get();
}

absl::StatusOr<model::EventPtr> Leave(Hub& hub, absl::string_view id) {
  EventAnswer o;
  hub.Leave(id, o.Callback());
  return o.Get();
}

// A reader of a client's session on one hub.
struct SessionReader {
  std::shared_ptr<SessionLease> lease;
  std::shared_ptr<ChannelCollector> collector =
      std::make_shared<ChannelCollector>();
};

absl::StatusOr<SessionReader> Open(Hub& hub, absl::string_view id) {
  Answer<absl::StatusOr<std::shared_ptr<SessionLease>>> o;
  hub.OpenSession(id, o.Callback());
  absl::StatusOr<std::shared_ptr<SessionLease>> lease = o.Get();
  if (!lease.ok()) return lease.status();
  SessionReader r;
  r.lease = *std::move(lease);
  r.lease->channel()->Attach(r.collector);
  return r;
}

// Reads `n` events as a poll would, records them as consumed and lets go.
std::vector<uint64_t> Poll(Hub& hub, absl::string_view id, size_t n) {
  absl::StatusOr<SessionReader> r = Open(hub, id);
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r.ok()) return {};
  std::vector<uint64_t> got = r->collector->WaitFor(*r->lease->channel(), n);
  Notification consumed;
  r->lease->Consumed(got.empty() ? 0 : got.back(),
                     [&consumed] { consumed.Notify(); });
  consumed.WaitForNotification();
  r->lease->Release();
  return got;
}

class LobbyReplicasTest : public ::testing::Test {
 protected:
  ~LobbyReplicasTest() override { store_.Close(); }

  HubOptions Options(bus::Bus* bus) {
    HubOptions o;
    o.channel_capacity = kCapacity;
    o.bus = bus;
    o.sessions = &sessions_;
    return o;
  }
  // The lobby's events of `kind` sent by `id`, as stored.
  int Stored(model::EventKind kind, absl::string_view id) {
    absl::StatusOr<std::vector<model::EventPtr>> all =
        store_.ReadAfter(model::kLobbyId, 0, 1000);
    EXPECT_TRUE(all.ok()) << all.status();
    if (!all.ok()) return -1;
    int n = 0;
    for (const model::EventPtr& e : *all) {
      n += e->kind == kind && e->sender == id;
    }
    return n;
  }

  ManualClock clock_;
  store::MemoryStore store_;
  bus::InProcessNetwork network_;
  bus::MemorySessionDirectory sessions_;
  std::unique_ptr<bus::Bus> bus_a_ = network_.Connect();
  std::unique_ptr<bus::Bus> bus_b_ = network_.Connect();
  std::unique_ptr<bus::Bus> bus_c_ = network_.Connect();
  Hub a_{Options(bus_a_.get()), &store_, &clock_};
  Hub b_{Options(bus_b_.get()), &store_, &clock_};
  Hub c_{Options(bus_c_.get()), &store_, &clock_};
};

TEST_F(LobbyReplicasTest, JoinOnOneSendOnASecondReadOnAThirdOnceInOrder) {
  ASSERT_TRUE(Join(a_, "ann").ok());
  ASSERT_TRUE(Send(b_, "ann", "one").ok());
  // The join and the message, in order, though neither was made on c.
  EXPECT_THAT(Poll(c_, "ann", 2), ElementsAre(1, 2));
  ASSERT_TRUE(Send(c_, "ann", "two").ok());
  // What c handed out is not handed out again on a.
  EXPECT_THAT(Poll(a_, "ann", 1), ElementsAre(3));
  ASSERT_TRUE(Send(a_, "ann", "three").ok());
  EXPECT_THAT(Poll(b_, "ann", 1), ElementsAre(4));
}

TEST_F(LobbyReplicasTest, SessionsAreOneAcrossReplicas) {
  ASSERT_TRUE(Join(a_, "ann").ok());
  EXPECT_EQ(Join(b_, "ann").status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(Send(c_, "bob", "hi").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Open(c_, "bob").status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(Leave(c_, "ann").ok());
  EXPECT_EQ(Leave(a_, "ann").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Send(b_, "ann", "hi").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Stored(model::EventKind::kLeave, "ann"), 1);
}

TEST_F(LobbyReplicasTest, ALeaveOnOneReplicaEndsTheReaderWaitingOnAnother) {
  ASSERT_TRUE(Join(a_, "ann").ok());
  absl::StatusOr<SessionReader> reader = Open(c_, "ann");
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_THAT(reader->collector->WaitFor(*reader->lease->channel(), 1),
              ElementsAre(1));
  ASSERT_TRUE(Leave(b_, "ann").ok());
  EXPECT_EQ(reader->collector->WaitClosed(*reader->lease->channel()),
            CloseReason::kLeft);
  reader->lease->Release();
}

TEST_F(LobbyReplicasTest, WhatDidNotFitTheChannelIsOneGapAtTheBound) {
  ASSERT_TRUE(Join(a_, "ann").ok());
  ASSERT_TRUE(Join(a_, "bob").ok());
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(Send(b_, "bob", absl::StrCat("m", i)).ok());
  }
  network_.Flush();
  // Events 1..12 waited for ann: the first kCapacity, then one gap marker.
  absl::StatusOr<SessionReader> reader = Open(c_, "ann");
  ASSERT_TRUE(reader.ok()) << reader.status();
  Channel::TakeResult taken = reader->lease->channel()->Take(100);
  ASSERT_EQ(taken.events.size(), kCapacity + 1);
  for (size_t i = 0; i < kCapacity; ++i) {
    EXPECT_EQ(taken.events[i]->sequence, i + 1);
  }
  EXPECT_EQ(taken.events.back()->kind, model::EventKind::kGap);
  EXPECT_EQ(taken.events.back()->gap_first, kCapacity + 1);
  EXPECT_EQ(taken.events.back()->gap_last, 12u);
  reader->lease->Release();
}

TEST_F(LobbyReplicasTest, AnIdleSessionIsReapedOnceWhileOneBeingReadIsKept) {
  ASSERT_TRUE(Join(a_, "idle").ok());
  ASSERT_TRUE(Join(a_, "reading").ok());
  absl::StatusOr<SessionReader> reader = Open(c_, "reading");
  ASSERT_TRUE(reader.ok()) << reader.status();
  clock_.Advance(absl::Minutes(3));
  c_.ReapIdle();  // c's reader keeps "reading" active
  clock_.Advance(absl::Minutes(3));
  a_.ReapIdle();
  b_.ReapIdle();
  c_.ReapIdle();
  EXPECT_EQ(Send(b_, "idle", "hi").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Send(b_, "reading", "hi").ok());
  EXPECT_EQ(Stored(model::EventKind::kLeave, "idle"), 1);
  EXPECT_EQ(Stored(model::EventKind::kLeave, "reading"), 0);
  reader->lease->Release();
}

}  // namespace
}  // namespace parley::chat
