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
#include "tests/server/chat/channel_collector.h"

extern char** environ;

namespace parley::bus {
namespace {

using ::testing::ElementsAre;

constexpr absl::Duration kWait = absl::Seconds(20);

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

bool Accepts(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok =
      connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

// A redis-server of the test's own, without persistence.
class RedisServer {
 public:
  RedisServer() : port_(FreePort()) { Start(); }
  ~RedisServer() { Kill(); }
  int port() const { return port_; }

  void Start() {
    const std::string port = absl::StrCat(port_);
    std::vector<std::string> args = {"redis-server", "--port", port,
                                     "--bind", "127.0.0.1", "--save", "",
                                     "--appendonly", "no", "--dir", "/tmp"};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    // Its log would interleave with the test's.
    posix_spawn_file_actions_t quiet;
    posix_spawn_file_actions_init(&quiet);
    posix_spawn_file_actions_addopen(&quiet, STDOUT_FILENO, "/dev/null",
                                     O_WRONLY, 0);
    const int spawned = posix_spawnp(&pid_, "redis-server", &quiet, nullptr,
                                     argv.data(), environ);
    posix_spawn_file_actions_destroy(&quiet);
    ASSERT_EQ(spawned, 0)
        << "redis-server is not installed (scripts/deps.sh test)";
    const absl::Time deadline = absl::Now() + kWait;
    while (!Accepts(port_)) {
      ASSERT_LT(absl::Now(), deadline) << "redis-server did not start";
      absl::SleepFor(absl::Milliseconds(10));
    }
  }
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  const int port_;
  pid_t pid_ = -1;
};

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
  auto sub = b_.Subscribe(model::kLobbyId, chat::Subscriber{});
  ASSERT_TRUE(sub.ok()) << sub.status();
  auto collector = std::make_shared<chat::ChannelCollector>();
  sub->channel->Attach(collector);
  for (int i = 0; i < 5; ++i) Post(a_);
  EXPECT_THAT(collector->WaitFor(*sub->channel, 5),
              ElementsAre(1, 2, 3, 4, 5));
  // It came over Redis, not from the store.
  EXPECT_GE(bus_b_.stats().received, 5u);
}

TEST_F(RedisBusTest, WhenRedisDiesAndComesBackNothingIsLostOrReordered) {
  auto sub = b_.Subscribe(model::kLobbyId, chat::Subscriber{});
  ASSERT_TRUE(sub.ok()) << sub.status();
  auto collector = std::make_shared<chat::ChannelCollector>();
  sub->channel->Attach(collector);
  Post(a_);
  EXPECT_THAT(collector->WaitFor(*sub->channel, 1), ElementsAre(1));

  redis_.Kill();
  Post(a_);  // published into nothing
  Post(a_);
  redis_.Start();
  // No further post: b reads what it missed once it is subscribed again.
  EXPECT_THAT(collector->WaitFor(*sub->channel, 3), ElementsAre(1, 2, 3));
  // And hears live events again.
  const uint64_t before = bus_b_.stats().received;
  Post(a_);
  EXPECT_THAT(collector->WaitFor(*sub->channel, 4), ElementsAre(1, 2, 3, 4));
  WaitReceived(bus_b_, before + 1);
  EXPECT_GT(bus_b_.stats().received, before);
  EXPECT_GE(bus_b_.stats().reconnects, 1u);
}

TEST_F(RedisBusTest, ASignOutOnOneServerClosesTheUsersStreamsOnAnother) {
  auto sub = b_.Subscribe(model::kLobbyId, chat::Subscriber{"u-ann", "", ""});
  ASSERT_TRUE(sub.ok()) << sub.status();
  auto collector = std::make_shared<chat::ChannelCollector>();
  sub->channel->Attach(collector);
  // b is listening once an event posted on a reaches it.
  Post(a_);
  EXPECT_THAT(collector->WaitFor(*sub->channel, 1), ElementsAre(1));
  a_.CloseUserSubscriptions("u-ann", chat::CloseReason::kUserGone);
  EXPECT_EQ(collector->WaitClosed(*sub->channel),
            chat::CloseReason::kUserGone);
}

TEST_F(RedisBusTest, ARevokedTokenIsToldToEveryServerAndABreakIsToo) {
  // b is listening once an event posted on a reaches it.
  auto sub = b_.Subscribe(model::kLobbyId, chat::Subscriber{});
  ASSERT_TRUE(sub.ok()) << sub.status();
  auto collector = std::make_shared<chat::ChannelCollector>();
  sub->channel->Attach(collector);
  Post(a_);
  EXPECT_THAT(collector->WaitFor(*sub->channel, 1), ElementsAre(1));

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
