// Blocking work off gRPC's threads (docs/security.md, "Blocking work"), over
// real gRPC: calls whose work waits (a password check, a history read) hold
// a worker of the server's pools, never a gRPC thread nor the hub's
// dispatcher. The waiting is made with a store that holds chosen reads until
// the test lets them go, so nothing here sleeps or races a clock.
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "server/common/mutex.h"
#include "server/store/store.h"
#include "tests/server/api/test_server.h"

namespace parley::api {
namespace {

using parley::testing::Call;
using parley::testing::Reason;
using parley::testing::SignUp;
using parley::testing::Succeeded;
using parley::testing::TestServer;
using parley::testing::TestUser;
using parley::testing::WithToken;

constexpr absl::Duration kLimit = absl::Seconds(30);

// Where a HoldingStore holds reads: GetUserByName of `user`, ReadAfter of
// `log`, each until Open.
class Gate {
 public:
  void HoldUser(const std::string& user) {
    MutexLock lock(&mu_);
    user_ = user;
  }
  void HoldLog(const std::string& log) {
    MutexLock lock(&mu_);
    log_ = log;
  }
  bool Holds(absl::string_view user, absl::string_view log) {
    MutexLock lock(&mu_);
    return !open_ &&
           ((!user.empty() && user == user_) || (!log.empty() && log == log_));
  }
  // Called by a held read: counts it, then waits for Open.
  void Pass() {
    MutexLock lock(&mu_);
    ++entered_;
    cv_.SignalAll();
    while (!open_) cv_.Wait();
  }
  // Whether `n` reads are held (waits for them up to kLimit).
  bool WaitEntered(int n) {
    const absl::Time deadline = absl::Now() + kLimit;
    MutexLock lock(&mu_);
    while (entered_ < n && cv_.WaitWithDeadline(deadline)) {
    }
    return entered_ >= n;
  }
  void Open() {
    MutexLock lock(&mu_);
    open_ = true;
    cv_.SignalAll();
  }

 private:
  Mutex mu_;
  CondVar cv_{&mu_};
  std::string user_ ABSL_GUARDED_BY(mu_);
  std::string log_ ABSL_GUARDED_BY(mu_);
  int entered_ ABSL_GUARDED_BY(mu_) = 0;
  bool open_ ABSL_GUARDED_BY(mu_) = false;
};

// The server's store, with the reads its gate names held.
class HoldingStore : public store::ForwardingStore {
 public:
  HoldingStore(std::unique_ptr<store::Store> inner, std::shared_ptr<Gate> gate)
      : ForwardingStore(inner.get()),
        inner_(std::move(inner)),
        gate_(std::move(gate)) {}

  absl::StatusOr<store::User> GetUserByName(
      absl::string_view username) override {
    if (gate_->Holds(username, "")) gate_->Pass();
    return ForwardingStore::GetUserByName(username);
  }
  absl::StatusOr<std::vector<model::EventPtr>> ReadAfter(
      absl::string_view log, uint64_t after, size_t limit) override {
    if (gate_->Holds("", log)) gate_->Pass();
    return ForwardingStore::ReadAfter(log, after, limit);
  }

 private:
  std::unique_ptr<store::Store> inner_;
  std::shared_ptr<Gate> gate_;
};

// A test server whose store reads pass `gate`, with Ann signed up and
// stubs on a channel of its own. `tune` sets the options (the pools' sizes)
// first. The gate opens when the test ends, however it ends, before the
// server stops: a held read would hold its call, and so the shutdown.
class GatedServer {
 public:
  explicit GatedServer(const std::function<void(ServerOptions*)>& tune =
                           [](ServerOptions*) {})
      : gate(std::make_shared<Gate>()),
        server(Options(gate, tune)),
        ann(SignUp(server, "ann")),
        channel(server.NewChannel()),
        auth(v1::AuthService::NewStub(channel)),
        rooms(v1::RoomService::NewStub(channel)),
        messages(v1::MessageService::NewStub(channel)),
        chat(v1::ChatService::NewStub(channel)) {}
  ~GatedServer() { gate->Open(); }

  const std::shared_ptr<Gate> gate;
  TestServer server;
  const TestUser ann;
  const std::shared_ptr<grpc::Channel> channel;
  const std::unique_ptr<v1::AuthService::Stub> auth;
  const std::unique_ptr<v1::RoomService::Stub> rooms;
  const std::unique_ptr<v1::MessageService::Stub> messages;
  const std::unique_ptr<v1::ChatService::Stub> chat;

 private:
  static ServerOptions Options(
      std::shared_ptr<Gate> gate,
      const std::function<void(ServerOptions*)>& tune) {
    ServerOptions options = parley::testing::UnlimitedOptions();
    options.wrap_store = [gate](std::unique_ptr<store::Store> inner) {
      return std::unique_ptr<store::Store>(
          std::make_unique<HoldingStore>(std::move(inner), gate));
    };
    tune(&options);
    return options;
  }
};

// Options of one store-read thread, for which `waiting` calls may wait.
std::function<void(ServerOptions*)> OneReadWorker(size_t waiting) {
  return [waiting](ServerOptions* options) {
    options->store_reads.threads = 1;
    options->store_reads.queue_limit = waiting;
  };
}

// Outcomes of calls made with the callback API, waited for by count.
class Outcomes {
 public:
  void Add(const grpc::Status& status) {
    MutexLock lock(&mu_);
    statuses_.push_back(status);
    cv_.SignalAll();
  }
  std::vector<grpc::Status> WaitFor(size_t n) {
    const absl::Time deadline = absl::Now() + kLimit;
    MutexLock lock(&mu_);
    while (statuses_.size() < n && cv_.WaitWithDeadline(deadline)) {
    }
    return statuses_;
  }

 private:
  Mutex mu_;
  CondVar cv_{&mu_};
  std::vector<grpc::Status> statuses_;
};

// At the end of a test, however it ends: opens the gate and waits for the
// `n` calls still in flight, whose contexts must outlive them.
struct DrainAtExit {
  std::shared_ptr<Gate> gate;
  Outcomes* outcomes;
  size_t n;
  ~DrainAtExit() {
    gate->Open();
    outcomes->WaitFor(n);
  }
};

// The probe of issue 19: concurrent sign-ins with wrong passwords, each
// hashing on the thread that took it, made every other call wait. Here each
// sign-in's work is held while it runs, and there are more of them than
// gRPC has threads: with the work on gRPC's threads, the calls below would
// wait for them. On a hashing pool of one thread and one waiting place, one
// sign-in holds the thread, one waits, the others are refused at once, and
// the other calls are served.
TEST(BlockingWorkTest, SignInsThatHoldTheHashingPoolDelayNoOtherCall) {
  GatedServer gated([](ServerOptions* options) {
    options->password_hashing.threads = 1;
    // One waiting place, not none: a client's next call may come before the
    // worker that answered its last one is free again.
    options->password_hashing.queue_limit = 1;
  });
  SignUp(gated.server, "eve");
  gated.gate->HoldUser("eve");

  constexpr int kSignIns = 32;
  struct SignIn {
    grpc::ClientContext ctx;
    v1::SignInRequest req;
    v1::SignInResponse resp;
  };
  std::vector<std::unique_ptr<SignIn>> calls;
  Outcomes outcomes;
  DrainAtExit drain{gated.gate, &outcomes, kSignIns};
  for (int i = 0; i < kSignIns; ++i) {
    auto call = std::make_unique<SignIn>();
    call->ctx.set_deadline(absl::ToChronoTime(absl::Now() + kLimit));
    call->req.set_username("eve");
    call->req.set_password("not eve's password");
    gated.auth->async()->SignIn(
        &call->ctx, &call->req, &call->resp,
        [&outcomes](grpc::Status s) { outcomes.Add(s); });
    calls.push_back(std::move(call));
  }
  // One sign-in holds the pool's thread. Other calls are served meanwhile:
  // a room list (a store read) and a token renewal.
  ASSERT_TRUE(gated.gate->WaitEntered(1));
  v1::ListRoomsResponse listed;
  EXPECT_TRUE(
      Succeeded(Call(gated.rooms.get(), &v1::RoomService::Stub::ListRooms,
                     gated.ann.token, v1::ListRoomsRequest(), &listed)));
  v1::RenewTokenResponse renewed;
  EXPECT_TRUE(
      Succeeded(Call(gated.auth.get(), &v1::AuthService::Stub::RenewToken,
                     gated.ann.token, v1::RenewTokenRequest(), &renewed)));

  // One sign-in waits for the thread; every other was refused at once.
  const std::vector<grpc::Status> refused = outcomes.WaitFor(kSignIns - 2);
  ASSERT_EQ(refused.size(), static_cast<size_t>(kSignIns - 2));
  for (const grpc::Status& s : refused) {
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
        << s.error_message();
    EXPECT_EQ(Reason(s), "SERVER_BUSY");
    EXPECT_NE(s.error_message().find("password hashing"), std::string::npos)
        << s.error_message();
  }

  // Let the held sign-in go: it and the waiting one end as a wrong
  // password does.
  gated.gate->Open();
  const std::vector<grpc::Status> all = outcomes.WaitFor(kSignIns);
  ASSERT_EQ(all.size(), static_cast<size_t>(kSignIns));
  for (size_t i = kSignIns - 2; i < all.size(); ++i) {
    EXPECT_EQ(all[i].error_code(), grpc::StatusCode::UNAUTHENTICATED)
        << all[i].error_message();
    EXPECT_EQ(Reason(all[i]), "BAD_CREDENTIALS");
  }
}

// Creates Ann's room `name` on `gated` and posts `text` to it.
void RoomWithAPost(GatedServer& gated, const std::string& name,
                   const std::string& text, v1::Room* room, v1::Event* posted) {
  v1::CreateRoomRequest create;
  create.set_name(name);
  ASSERT_TRUE(
      Succeeded(Call(gated.rooms.get(), &v1::RoomService::Stub::CreateRoom,
                     gated.ann.token, create, room)));
  v1::PostMessageRequest post;
  post.set_room(name);
  post.set_text(text);
  ASSERT_TRUE(Succeeded(Call(gated.messages.get(),
                             &v1::MessageService::Stub::PostMessage,
                             gated.ann.token, post, posted)));
}

// Every call that reads the store runs on the store-read pool; a full pool
// turns the next one away at once, naming what is busy.
TEST(BlockingWorkTest, AFullStoreReadPoolRefusesWithResourceExhausted) {
  GatedServer gated(OneReadWorker(1));
  v1::Room room;
  v1::Event posted;
  ASSERT_NO_FATAL_FAILURE(
      RoomWithAPost(gated, "busy", "hello", &room, &posted));

  // A poll's history read holds the pool's one thread.
  gated.gate->HoldLog(room.id());
  struct Async {
    grpc::ClientContext ctx;
    v1::PollRequest poll;
    v1::PollResponse polled;
    v1::ListRoomsRequest list;
    v1::ListRoomsResponse listed;
  };
  Async held, first, second;
  Outcomes outcomes;
  DrainAtExit drain{gated.gate, &outcomes, 3};
  for (Async* a : {&held, &first, &second}) {
    WithToken(&a->ctx, gated.ann.token);
    a->ctx.set_deadline(absl::ToChronoTime(absl::Now() + kLimit));
  }
  held.poll.set_room("busy");
  held.poll.set_after_sequence(0);
  gated.chat->async()->Poll(&held.ctx, &held.poll, &held.polled,
                            [&outcomes](grpc::Status s) { outcomes.Add(s); });
  ASSERT_TRUE(gated.gate->WaitEntered(1));

  // Two room lists: one takes the waiting place, the other is refused.
  for (Async* a : {&first, &second}) {
    gated.rooms->async()->ListRooms(
        &a->ctx, &a->list, &a->listed,
        [&outcomes](grpc::Status s) { outcomes.Add(s); });
  }
  std::vector<grpc::Status> done = outcomes.WaitFor(1);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << done[0].error_message();
  EXPECT_EQ(Reason(done[0]), "SERVER_BUSY");
  EXPECT_NE(done[0].error_message().find("store reads"), std::string::npos)
      << done[0].error_message();

  // Once the read returns, the poll and the waiting list are served.
  gated.gate->Open();
  done = outcomes.WaitFor(3);
  ASSERT_EQ(done.size(), 3u);
  EXPECT_TRUE(done[1].ok()) << done[1].error_message();
  EXPECT_TRUE(done[2].ok()) << done[2].error_message();
  ASSERT_EQ(held.polled.events_size(), 1);
  EXPECT_EQ(held.polled.events(0).text(), "hello");
}

// A post whose checks the store's cache answers (the token's user, the
// room, the membership) runs on gRPC's thread and needs no read worker: it
// is served while the one worker is held, with no waiting place. A
// keyed post, which looks for an earlier send in the store, still goes to
// the pool, and is refused while it is full.
TEST(BlockingWorkTest, PostsToACachedRoomNeedNoReadWorker) {
  GatedServer gated(OneReadWorker(0));
  v1::Room room;
  v1::Event posted;
  ASSERT_NO_FATAL_FAILURE(
      RoomWithAPost(gated, "quick", "first", &room, &posted));
  v1::PostMessageRequest post;
  post.set_room("quick");
  const uint64_t first_sequence = posted.sequence();

  // A poll's history read holds the worker.
  gated.gate->HoldLog(room.id());
  struct Async {
    grpc::ClientContext ctx;
    v1::PollRequest poll;
    v1::PollResponse polled;
  };
  Async held;
  Outcomes outcomes;
  DrainAtExit drain{gated.gate, &outcomes, 1};
  WithToken(&held.ctx, gated.ann.token);
  held.ctx.set_deadline(absl::ToChronoTime(absl::Now() + kLimit));
  held.poll.set_room("quick");
  held.poll.set_after_sequence(0);
  gated.chat->async()->Poll(&held.ctx, &held.poll, &held.polled,
                            [&outcomes](grpc::Status s) { outcomes.Add(s); });
  ASSERT_TRUE(gated.gate->WaitEntered(1));
  // The pool is full: a room list is refused.
  v1::ListRoomsResponse listed;
  const parley::testing::Outcome full =
      Call(gated.rooms.get(), &v1::RoomService::Stub::ListRooms,
           gated.ann.token, v1::ListRoomsRequest(), &listed);
  ASSERT_EQ(full.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << full.status.error_message();

  post.set_text("second");
  ASSERT_TRUE(Succeeded(Call(gated.messages.get(),
                             &v1::MessageService::Stub::PostMessage,
                             gated.ann.token, post, &posted)));
  EXPECT_EQ(posted.text(), "second");
  EXPECT_EQ(posted.sequence(), first_sequence + 1);

  post.set_text("keyed");
  post.set_idempotency_key("k1");
  const parley::testing::Outcome keyed =
      Call(gated.messages.get(), &v1::MessageService::Stub::PostMessage,
           gated.ann.token, post, &posted);
  EXPECT_EQ(keyed.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << keyed.status.error_message();
  EXPECT_EQ(keyed.reason, "SERVER_BUSY");

  gated.gate->Open();
  const std::vector<grpc::Status> done = outcomes.WaitFor(1);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_TRUE(done[0].ok()) << done[0].error_message();
  // The poll's answer can reach us before its worker is free again: retry
  // while the server says so, as a client would.
  const absl::Time deadline = absl::Now() + kLimit;
  parley::testing::Outcome retried;
  do {
    retried = Call(gated.messages.get(), &v1::MessageService::Stub::PostMessage,
                   gated.ann.token, post, &posted);
  } while (retried.reason == "SERVER_BUSY" && absl::Now() < deadline);
  ASSERT_TRUE(retried.status.ok()) << retried.status.error_message();
  EXPECT_EQ(posted.text(), "keyed");
}

// A resuming stream reads its history with no lock held: while its read
// waits, the room's dispatcher, which wakes the stream for each new event,
// goes on delivering and acknowledging the room's posts (before, it waited
// for the stream's lock, and so did every later post of the room). Once the
// read returns, the stream gets history and live events in order, with no
// gap and no duplicate.
TEST(BlockingWorkTest, AStreamsHistoryReadDoesNotHoldUpTheRoomsDeliveries) {
  GatedServer gated;
  const TestUser bob = SignUp(gated.server, "bob");

  v1::CreateRoomRequest create;
  create.set_name("history");
  v1::Room room;
  ASSERT_TRUE(
      Succeeded(Call(gated.rooms.get(), &v1::RoomService::Stub::CreateRoom,
                     gated.ann.token, create, &room)));
  auto post = [&](const std::string& text, v1::Event* out) {
    v1::PostMessageRequest req;
    req.set_room("history");
    req.set_text(text);
    return Call(gated.messages.get(), &v1::MessageService::Stub::PostMessage,
                gated.ann.token, req, out);
  };
  std::vector<uint64_t> sequences;
  for (int i = 1; i <= 5; ++i) {
    v1::Event e;
    ASSERT_TRUE(Succeeded(post("old " + std::to_string(i), &e)));
    sequences.push_back(e.sequence());
  }

  // Bob resumes from the start; his first history read is held.
  gated.gate->HoldLog(room.id());
  grpc::ClientContext stream_ctx;
  WithToken(&stream_ctx, bob.token);
  stream_ctx.set_deadline(absl::ToChronoTime(absl::Now() + kLimit));
  v1::SubscribeRequest sub;
  sub.set_room("history");
  sub.set_after_sequence(0);
  auto reader = gated.chat->Subscribe(&stream_ctx, sub);
  ASSERT_TRUE(gated.gate->WaitEntered(1));

  // The room's posts are delivered (to Bob's channel too) and acknowledged
  // meanwhile, the second one after the dispatcher woke Bob's stream for
  // the first.
  for (int i = 1; i <= 3; ++i) {
    v1::Event e;
    ASSERT_TRUE(Succeeded(post("new " + std::to_string(i), &e)));
    sequences.push_back(e.sequence());
  }

  gated.gate->Open();
  std::vector<v1::Event> got;
  v1::SubscribeResponse resp;
  while (got.size() < sequences.size() && reader->Read(&resp)) {
    for (const v1::Event& e : resp.events()) {
      if (e.sequence() != 0) got.push_back(e);
    }
  }
  ASSERT_EQ(got.size(), sequences.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].sequence(), sequences[i]) << "at " << i;
  }
  EXPECT_EQ(got.front().text(), "old 1");
  EXPECT_EQ(got.back().text(), "new 3");
  stream_ctx.TryCancel();
  reader->Finish();
}

}  // namespace
}  // namespace parley::api
