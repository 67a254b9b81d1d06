// Hubs on one store, each with its own RedisBus to a real redis-server
// (Debian's, started by the test on a free loopback port).
#include "server/bus/redis_bus.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/chat/hub.h"
#include "server/common/mutex.h"
#include "server/store/memory_store.h"
#include "tests/server/bus/redis_server.h"
#include "tests/server/chat/channel_collector.h"

namespace parley::bus {
namespace {

using ::testing::ElementsAre;

constexpr absl::Duration kWait = absl::Seconds(20);

class RedisBusTest : public ::testing::Test {
 protected:
  ~RedisBusTest() override { store_.Close(); }

  RedisBusOptions Options() {
    RedisBusOptions o;
    o.port = redis_.port();
    return o;
  }
  chat::HubOptions HubOptionsWith(Bus* bus) {
    chat::HubOptions o;
    o.channel_capacity = 100000;
    o.bus = bus;
    return o;
  }
  void Post(chat::Hub& hub) {
    auto event = chat::NewEvent(model::EventKind::kMessage, model::kLobbyId);
    event->text = "hi";
    Notification done;
    hub.Publish(event, [&](absl::StatusOr<model::EventPtr> r) {
      EXPECT_TRUE(r.ok()) << r.status();
      done.Notify();
    });
    done.WaitForNotification();
  }
  // Waits until `bus` has heard `n` events.
  void WaitReceived(RedisBus& bus, uint64_t n) {
    const absl::Time deadline = absl::Now() + kWait;
    while (bus.stats().received < n && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
    }
  }

  // What b's hub passed on of the directory notices and bus breaks.
  struct Heard {
    Mutex mu;
    std::vector<std::string> revoked ABSL_GUARDED_BY(mu);
    int reconnects ABSL_GUARDED_BY(mu) = 0;
  };
  chat::HubOptions HeardBy(Bus* bus, Heard* heard) {
    chat::HubOptions o = HubOptionsWith(bus);
    o.on_directory_notice = [heard](const Notice& n) {
      MutexLock lock(&heard->mu);
      if (n.op == Notice::Op::kRevokeToken) heard->revoked.push_back(n.token_id);
    };
    o.on_bus_reconnected = [heard] {
      MutexLock lock(&heard->mu);
      ++heard->reconnects;
    };
    return o;
  }
  // Waits until `done` holds for what b heard.
  void WaitHeard(absl::FunctionRef<bool(const Heard&)> done) {
    const absl::Time deadline = absl::Now() + kWait;
    while (absl::Now() < deadline) {
      {
        MutexLock lock(&heard_b_.mu);
        if (done(heard_b_)) return;
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
  }

  // A reader of the lobby on b, once b listens: an event posted on a has
  // reached it (over Redis, or from the store when b's subscription was
  // confirmed after the post).
  struct Reader {
    chat::Subscription sub;
    std::shared_ptr<chat::ChannelCollector> collector =
        std::make_shared<chat::ChannelCollector>();
  };
  Reader ListeningOnB(chat::Subscriber who = {}) {
    Reader r;
    absl::StatusOr<chat::Subscription> sub =
        b_.Subscribe(model::kLobbyId, std::move(who));
    EXPECT_TRUE(sub.ok()) << sub.status();
    if (!sub.ok()) return r;
    r.sub = *std::move(sub);
    r.sub.channel->Attach(r.collector);
    Post(a_);
    EXPECT_THAT(r.collector->WaitFor(*r.sub.channel, 1), ElementsAre(1));
    return r;
  }

  RedisServer redis_;
  ManualClock clock_;
  Heard heard_b_;
  store::MemoryStore store_;
  RedisBus bus_a_{Options()};
  RedisBus bus_b_{Options()};
  chat::Hub a_{HubOptionsWith(&bus_a_), &store_, &clock_};
  chat::Hub b_{HeardBy(&bus_b_, &heard_b_), &store_, &clock_};
};

TEST_F(RedisBusTest, AnEventCommittedOnOneServerReachesReadersOnAnother) {
  Reader r = ListeningOnB();
  const uint64_t before = bus_b_.stats().received;
  for (int i = 0; i < 5; ++i) Post(a_);
  EXPECT_THAT(r.collector->WaitFor(*r.sub.channel, 6),
              ElementsAre(1, 2, 3, 4, 5, 6));
  // The rest came over Redis, not from the store.
  WaitReceived(bus_b_, before + 5);
  EXPECT_GE(bus_b_.stats().received, before + 5);
}

TEST_F(RedisBusTest, WhenRedisDiesAndComesBackNothingIsLostOrReordered) {
  Reader r = ListeningOnB();

  redis_.Kill();
  Post(a_);  // published into nothing
  Post(a_);
  redis_.Start();
  // No further post: b reads what it missed once it is subscribed again.
  EXPECT_THAT(r.collector->WaitFor(*r.sub.channel, 3), ElementsAre(1, 2, 3));
  // And hears live events again.
  const uint64_t before = bus_b_.stats().received;
  Post(a_);
  EXPECT_THAT(r.collector->WaitFor(*r.sub.channel, 4), ElementsAre(1, 2, 3, 4));
  WaitReceived(bus_b_, before + 1);
  EXPECT_GT(bus_b_.stats().received, before);
  EXPECT_GE(bus_b_.stats().reconnects, 1u);
}

TEST_F(RedisBusTest, ClosingAUsersStreamsOnOneServerClosesThemOnAnother) {
  Reader r = ListeningOnB(chat::Subscriber{"u-ann", "", "", ""});
  a_.CloseUserSubscriptions("u-ann", chat::CloseReason::kUserGone);
  EXPECT_EQ(r.collector->WaitClosed(*r.sub.channel),
            chat::CloseReason::kUserGone);
}

TEST_F(RedisBusTest, ARevokedTokenIsToldToEveryServerAndABreakIsToo) {
  Reader r = ListeningOnB();

  Notice revoked;
  revoked.op = Notice::Op::kRevokeToken;
  revoked.token_id = "jti-1";
  bus_a_.Broadcast(revoked);
  WaitHeard([](const Heard& h) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return !h.revoked.empty();
  });
  {
    MutexLock lock(&heard_b_.mu);
    EXPECT_THAT(heard_b_.revoked, ElementsAre("jti-1"));
    EXPECT_EQ(heard_b_.reconnects, 0);
  }

  // Notices broadcast while Redis is away are lost: b is told it was away.
  redis_.Kill();
  redis_.Start();
  WaitHeard([](const Heard& h) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return h.reconnects > 0;
  });
  MutexLock lock(&heard_b_.mu);
  EXPECT_EQ(heard_b_.reconnects, 1);
}

}  // namespace
}  // namespace parley::bus
