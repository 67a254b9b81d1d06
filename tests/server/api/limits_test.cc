// Every client's fair share (docs/security.md, "Limits"), over real gRPC:
// sends per user and per room, sign-ins per name and per address with
// back-off, open streams per user and per address, and the client address
// taken from x-forwarded-for only when the peer is a trusted proxy.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "parley/v1/accounts.grpc.pb.h"
#include "parley/v1/chat.grpc.pb.h"
#include "parley/v1/messages.grpc.pb.h"
#include "parley/v1/rooms.grpc.pb.h"
#include "tests/server/api/test_server.h"

namespace parley::api {
namespace {

namespace v1 = parley::v1;
using parley::testing::Reason;
using parley::testing::SignUp;
using parley::testing::TestServer;
using parley::testing::TestUser;
using parley::testing::Unlimited;
using parley::testing::WithToken;

// The RetryInfo delay of a failed call; zero when it has none.
absl::Duration RetryDelay(const grpc::Status& status) {
  google::rpc::Status details;
  if (!details.ParseFromString(status.error_details())) {
    return absl::ZeroDuration();
  }
  for (const google::protobuf::Any& any : details.details()) {
    google::rpc::RetryInfo info;
    if (any.UnpackTo(&info)) {
      return absl::Seconds(info.retry_delay().seconds()) +
             absl::Nanoseconds(info.retry_delay().nanos());
    }
  }
  return absl::ZeroDuration();
}

ServerOptions With(QuotaOptions quotas,
                   std::vector<std::string> trusted_proxies = {}) {
  ServerOptions options;
  options.quotas = quotas;
  options.trusted_proxies = std::move(trusted_proxies);
  return options;
}

class Client {
 public:
  explicit Client(TestServer& server)
      : channel_(server.NewChannel()),
        messages_(v1::MessageService::NewStub(channel_)),
        rooms_(v1::RoomService::NewStub(channel_)),
        chat_(v1::ChatService::NewStub(channel_)),
        auth_(v1::AuthService::NewStub(channel_)) {}

  std::string CreateRoom(const TestUser& owner, const std::string& name) {
    grpc::ClientContext ctx;
    WithToken(&ctx, owner.token);
    v1::CreateRoomRequest req;
    req.set_name(name);
    req.set_visibility(v1::VISIBILITY_PUBLIC);
    v1::Room room;
    grpc::Status s = rooms_->CreateRoom(&ctx, req, &room);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return room.id();
  }

  grpc::Status Post(const TestUser& who, const std::string& room) {
    grpc::ClientContext ctx;
    WithToken(&ctx, who.token);
    v1::PostMessageRequest req;
    req.set_room(room);
    req.set_text("hello");
    v1::Event event;
    return messages_->PostMessage(&ctx, req, &event);
  }

  grpc::Status SignIn(const std::string& username, const std::string& password,
                      const std::string& forwarded_for = "") {
    grpc::ClientContext ctx;
    if (!forwarded_for.empty()) ctx.AddMetadata("x-forwarded-for", forwarded_for);
    v1::SignInRequest req;
    req.set_username(username);
    req.set_password(password);
    v1::SignInResponse resp;
    return auth_->SignIn(&ctx, req, &resp);
  }

  // An open room stream, or the status that refused it.
  struct Stream {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReader<v1::SubscribeResponse>> reader;
    grpc::Status refused;
  };
  std::unique_ptr<Stream> Subscribe(const TestUser& who,
                                    const std::string& room,
                                    const std::string& forwarded_for = "") {
    auto stream = std::make_unique<Stream>();
    WithToken(&stream->ctx, who.token);
    if (!forwarded_for.empty()) {
      stream->ctx.AddMetadata("x-forwarded-for", forwarded_for);
    }
    v1::SubscribeRequest req;
    req.set_room(room);
    stream->reader = chat_->Subscribe(&stream->ctx, req);
    // The first write says the subscription is in place; a refusal ends
    // the stream instead.
    v1::SubscribeResponse first;
    if (!stream->reader->Read(&first)) stream->refused = stream->reader->Finish();
    return stream;
  }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::MessageService::Stub> messages_;
  std::unique_ptr<v1::RoomService::Stub> rooms_;
  std::unique_ptr<v1::ChatService::Stub> chat_;
  std::unique_ptr<v1::AuthService::Stub> auth_;
};

bool RateLimited(const grpc::Status& s, const std::string& reason) {
  return s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
         Reason(s) == reason && RetryDelay(s) > absl::ZeroDuration();
}

TEST(LimitsTest, AUserOverItsSendRateIsRefusedWithWhenToRetry) {
  QuotaOptions q = Unlimited();
  q.sends_per_user_per_second = 0.01;  // nothing refills during the test
  q.send_burst_per_user = 3;
  TestServer server(With(q));
  Client client(server);
  TestUser alice = SignUp(server, "alice");
  TestUser bob = SignUp(server, "bob");
  const std::string room = client.CreateRoom(alice, "general");
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(client.Post(alice, room).ok()) << i;
  }
  grpc::Status over = client.Post(alice, room);
  EXPECT_TRUE(RateLimited(over, "RATE_LIMITED"))
      << over.error_code() << " " << Reason(over) << " " << over.error_message();
  EXPECT_GE(RetryDelay(over), absl::Seconds(1));
  // Another user has a share of their own.
  EXPECT_TRUE(client.Post(bob, room).ok());
}

TEST(LimitsTest, ARoomOverItsSendRateRefusesEverySender) {
  QuotaOptions q = Unlimited();
  q.sends_per_room_per_second = 0.01;
  q.send_burst_per_room = 2;
  TestServer server(With(q));
  Client client(server);
  TestUser alice = SignUp(server, "alice");
  TestUser bob = SignUp(server, "bob");
  const std::string busy = client.CreateRoom(alice, "busy");
  const std::string quiet = client.CreateRoom(alice, "quiet");
  ASSERT_TRUE(client.Post(alice, busy).ok());
  ASSERT_TRUE(client.Post(bob, busy).ok());
  EXPECT_TRUE(RateLimited(client.Post(bob, busy), "RATE_LIMITED"));
  EXPECT_TRUE(client.Post(bob, quiet).ok());
}

TEST(LimitsTest, FailedSignInsBackOffTheNameWhileOthersSignIn) {
  QuotaOptions q = Unlimited();
  q.sign_in_free_failures_per_user = 2;
  q.sign_in_backoff = absl::Minutes(1);
  q.sign_in_backoff_max = absl::Minutes(10);
  TestServer server(With(q));
  Client client(server);
  TestUser alice = SignUp(server, "alice");
  TestUser bob = SignUp(server, "bob");
  for (int i = 0; i < 3; ++i) {
    grpc::Status wrong = client.SignIn("alice", "wrong password");
    ASSERT_EQ(wrong.error_code(), grpc::StatusCode::UNAUTHENTICATED) << i;
  }
  // Now even the right password waits out the back-off.
  grpc::Status waiting = client.SignIn("Alice", alice.password);
  EXPECT_TRUE(RateLimited(waiting, "SIGN_IN_BACKOFF"))
      << waiting.error_code() << " " << Reason(waiting);
  EXPECT_GT(RetryDelay(waiting), absl::Seconds(50));
  EXPECT_TRUE(client.SignIn("bob", bob.password).ok());
}

TEST(LimitsTest, SignInsPerAddressCountTheForwardedAddressOfATrustedProxy) {
  QuotaOptions q = Unlimited();
  q.sign_ins_per_address_per_minute = 0.01;
  q.sign_in_burst_per_address = 2;
  TestServer server(With(q, {"127.0.0.1", "::1"}));
  Client client(server);
  TestUser alice = SignUp(server, "alice");
  ASSERT_TRUE(client.SignIn("alice", alice.password, "203.0.113.1").ok());
  ASSERT_TRUE(client.SignIn("alice", alice.password, "203.0.113.1").ok());
  EXPECT_TRUE(RateLimited(client.SignIn("alice", alice.password, "203.0.113.1"),
                          "RATE_LIMITED"));
  // A client's forged entry left of the proxy's changes nothing.
  EXPECT_TRUE(RateLimited(
      client.SignIn("alice", alice.password, "198.51.100.7, 203.0.113.1"),
      "RATE_LIMITED"));
  EXPECT_TRUE(client.SignIn("alice", alice.password, "203.0.113.2").ok());
}

TEST(LimitsTest, ForwardedForFromAnUntrustedPeerIsIgnored) {
  QuotaOptions q = Unlimited();
  q.sign_ins_per_address_per_minute = 0.01;
  q.sign_in_burst_per_address = 2;
  TestServer server(With(q));  // trusts no proxy
  Client client(server);
  TestUser alice = SignUp(server, "alice");  // signs in: one of the two
  ASSERT_TRUE(client.SignIn("alice", alice.password, "203.0.113.1").ok());
  EXPECT_TRUE(RateLimited(client.SignIn("alice", alice.password, "203.0.113.2"),
                          "RATE_LIMITED"));
}

TEST(LimitsTest, AUserHoldsAtMostItsStreamsUntilOneCloses) {
  QuotaOptions q = Unlimited();
  q.streams_per_user = 2;
  TestServer server(With(q));
  Client client(server);
  TestUser alice = SignUp(server, "alice");
  TestUser bob = SignUp(server, "bob");
  const std::string room = client.CreateRoom(alice, "general");
  auto first = client.Subscribe(alice, room);
  auto second = client.Subscribe(alice, room);
  ASSERT_TRUE(first->refused.ok());
  ASSERT_TRUE(second->refused.ok());
  auto third = client.Subscribe(alice, room);
  EXPECT_TRUE(RateLimited(third->refused, "TOO_MANY_STREAMS"))
      << third->refused.error_code() << " " << Reason(third->refused);
  EXPECT_TRUE(client.Subscribe(bob, room)->refused.ok());
  // Closing one frees its slot once the server has seen it end.
  first->ctx.TryCancel();
  first->reader->Finish();
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  bool reopened = false;
  while (!reopened && absl::Now() < deadline) {
    auto again = client.Subscribe(alice, room);
    reopened = again->refused.ok();
    if (!reopened) {
      ASSERT_TRUE(RateLimited(again->refused, "TOO_MANY_STREAMS"));
    }
  }
  EXPECT_TRUE(reopened);
}

TEST(LimitsTest, StreamsPerAddressCountEveryUserBehindIt) {
  QuotaOptions q = Unlimited();
  q.streams_per_address = 1;
  TestServer server(With(q, {"127.0.0.1", "::1"}));
  Client client(server);
  TestUser alice = SignUp(server, "alice");
  TestUser bob = SignUp(server, "bob");
  const std::string room = client.CreateRoom(alice, "general");
  auto held = client.Subscribe(alice, room, "203.0.113.1");
  ASSERT_TRUE(held->refused.ok());
  EXPECT_TRUE(RateLimited(client.Subscribe(bob, room, "203.0.113.1")->refused,
                          "TOO_MANY_STREAMS"));
  EXPECT_TRUE(client.Subscribe(bob, room, "203.0.113.2")->refused.ok());
}

}  // namespace
}  // namespace parley::api
