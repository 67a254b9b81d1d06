// parley.internal.EdgeService (server/api/edge_service.h): the secret, the
// admission of a gateway's clients with their own tokens, the log's events
// on the shared stream, and the ends of clients whose access ended.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "parley/internal/edge.grpc.pb.h"
#include "parley/v1/accounts.grpc.pb.h"
#include "parley/v1/messages.grpc.pb.h"
#include "parley/v1/rooms.grpc.pb.h"
#include "server/api/edge_service.h"
#include "server/model/ids.h"
#include "test_server.h"

namespace parley::testing {
namespace {

namespace v1 = parley::v1;
using parley::internal::EdgeService;
using parley::internal::FollowRequest;
using parley::internal::FollowResponse;

constexpr char kSecret[] = "edge-test-secret";

api::ServerOptions EdgeOptions() {
  api::ServerOptions options = UnlimitedOptions();
  options.edge_secret = kSecret;
  return options;
}

void WithDeadline(grpc::ClientContext* ctx) {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::seconds(30));
}

class EdgeServiceTest : public ::testing::Test {
 protected:
  EdgeServiceTest()
      : server_(EdgeOptions()),
        edge_(EdgeService::NewStub(server_.NewChannel())),
        rooms_(v1::RoomService::NewStub(server_.NewChannel())),
        messages_(v1::MessageService::NewStub(server_.NewChannel())),
        auth_(v1::AuthService::NewStub(server_.NewChannel())) {}

  // A private room of `owner`'s with `members` added.
  v1::Room PrivateRoom(const TestUser& owner, const std::string& name) {
    v1::CreateRoomRequest req;
    req.set_name(name);
    req.set_visibility(v1::VISIBILITY_PRIVATE);
    req.set_password("room-password");
    v1::Room room;
    EXPECT_TRUE(Succeeded(Call(rooms_.get(), &v1::RoomService::Stub::CreateRoom,
                               owner.token, req, &room)));
    return room;
  }
  void AddMember(const TestUser& owner, const v1::Room& room,
                 const TestUser& member) {
    v1::AddMemberRequest req;
    req.set_room(room.id());
    req.set_user(member.id);
    v1::Member out;
    ASSERT_TRUE(Succeeded(Call(rooms_.get(), &v1::RoomService::Stub::AddMember,
                               owner.token, req, &out)));
  }
  uint64_t Post(const TestUser& user, const v1::Room& room,
                const std::string& text) {
    v1::PostMessageRequest req;
    req.set_room(room.id());
    req.set_text(text);
    v1::Event event;
    EXPECT_TRUE(Succeeded(Call(messages_.get(),
                               &v1::MessageService::Stub::PostMessage,
                               user.token, req, &event)));
    return event.sequence();
  }
  Outcome Resolve(const std::string& secret, const std::string& token,
                  const std::string& room,
                  parley::internal::ResolveResponse* out) {
    grpc::ClientContext ctx;
    WithDeadline(&ctx);
    if (!secret.empty()) ctx.AddMetadata(api::kEdgeSecretKey, secret);
    if (!token.empty()) WithToken(&ctx, token);
    parley::internal::ResolveRequest req;
    req.set_room(room);
    Outcome o;
    o.status = edge_->Resolve(&ctx, req, out);
    o.reason = Reason(o.status);
    o.field = Field(o.status);
    return o;
  }

  // An open Follow stream.
  struct Follow {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReaderWriter<FollowRequest, FollowResponse>>
        stream;
  };
  std::unique_ptr<Follow> OpenFollow(const std::string& secret) {
    auto f = std::make_unique<Follow>();
    WithDeadline(&f->ctx);
    f->ctx.AddMetadata(api::kEdgeSecretKey, secret);
    f->stream = edge_->Follow(&f->ctx);
    return f;
  }
  static void Start(Follow* f, const std::string& log,
                    std::optional<uint64_t> after = std::nullopt) {
    FollowRequest req;
    req.mutable_start()->set_log(log);
    if (after.has_value()) req.mutable_start()->set_after_sequence(*after);
    ASSERT_TRUE(f->stream->Write(req));
  }
  static void Attach(Follow* f, uint64_t client, const std::string& token) {
    FollowRequest req;
    req.mutable_attach()->set_client(client);
    req.mutable_attach()->set_authorization("Bearer " + token);
    ASSERT_TRUE(f->stream->Write(req));
  }
  // Reads until `done` says so; false if the stream ended first.
  template <class Done>
  static bool ReadUntil(Follow* f, FollowResponse* all, Done done) {
    FollowResponse resp;
    while (!done(*all)) {
      if (!f->stream->Read(&resp)) return false;
      all->MergeFrom(resp);
    }
    return true;
  }

  TestServer server_;
  std::unique_ptr<EdgeService::Stub> edge_;
  std::unique_ptr<v1::RoomService::Stub> rooms_;
  std::unique_ptr<v1::MessageService::Stub> messages_;
  std::unique_ptr<v1::AuthService::Stub> auth_;
};

TEST_F(EdgeServiceTest, EveryCallNeedsTheSecret) {
  TestUser ann = SignUp(server_, "ann");
  parley::internal::ResolveResponse out;
  EXPECT_TRUE(Failed(Resolve("", ann.token, "lobby", &out),
                     grpc::StatusCode::PERMISSION_DENIED,
                     "EDGE_SECRET_MISMATCH"));
  EXPECT_TRUE(Failed(Resolve("not-the-secret", ann.token, "lobby", &out),
                     grpc::StatusCode::PERMISSION_DENIED,
                     "EDGE_SECRET_MISMATCH"));

  auto follow = OpenFollow("wrong-secret-of-the-same-len");
  FollowResponse resp;
  EXPECT_FALSE(follow->stream->Read(&resp));
  grpc::Status status = follow->stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Reason(status), "EDGE_SECRET_MISMATCH");
}

TEST(EdgeServiceWithoutSecretTest, RefusesEverything) {
  TestServer server;  // no --edge_secret
  auto edge = EdgeService::NewStub(server.NewChannel());
  TestUser ann = SignUp(server, "ann");
  grpc::ClientContext ctx;
  WithDeadline(&ctx);
  ctx.AddMetadata(api::kEdgeSecretKey, "anything");
  WithToken(&ctx, ann.token);
  parley::internal::ResolveRequest req;
  req.set_direct_messages(true);
  parley::internal::ResolveResponse out;
  grpc::Status status = edge->Resolve(&ctx, req, &out);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(Reason(status), "EDGE_DISABLED");
}

TEST_F(EdgeServiceTest, AdmissionIsRefusedWithoutAccess) {
  TestUser owner = SignUp(server_, "owner");
  TestUser bob = SignUp(server_, "bob");
  v1::Room room = PrivateRoom(owner, "private");

  parley::internal::ResolveResponse resolved;
  EXPECT_TRUE(Failed(Resolve(kSecret, bob.token, room.id(), &resolved),
                     grpc::StatusCode::PERMISSION_DENIED, kAny));
  EXPECT_TRUE(Failed(Resolve(kSecret, "", room.id(), &resolved),
                     grpc::StatusCode::UNAUTHENTICATED, "TOKEN_MISSING"));
  ASSERT_TRUE(Succeeded(Resolve(kSecret, owner.token, room.name(), &resolved)));
  EXPECT_EQ(resolved.log(), room.id());
  EXPECT_EQ(resolved.user_id(), owner.id);
  EXPECT_FALSE(resolved.token_id().empty());

  // On the shared stream: the owner is admitted, bob and a bad token not.
  auto follow = OpenFollow(kSecret);
  Start(follow.get(), room.id());
  Attach(follow.get(), 1, owner.token);
  Attach(follow.get(), 2, bob.token);
  Attach(follow.get(), 3, "not-a-token");
  FollowResponse all;
  ASSERT_TRUE(ReadUntil(follow.get(), &all, [](const FollowResponse& r) {
    return r.admitted_size() + r.ended_size() == 3;
  }));
  ASSERT_EQ(all.admitted_size(), 1);
  EXPECT_EQ(all.admitted(0), 1u);
  for (const auto& end : all.ended()) {
    if (end.client() == 2) {
      EXPECT_EQ(end.status().code(), grpc::StatusCode::PERMISSION_DENIED);
    } else {
      EXPECT_EQ(end.client(), 3u);
      EXPECT_EQ(end.status().code(), grpc::StatusCode::UNAUTHENTICATED);
    }
  }
  follow->ctx.TryCancel();
}

TEST_F(EdgeServiceTest, EventsFlowAndClosesAreForwarded) {
  TestUser owner = SignUp(server_, "owner");
  TestUser bob = SignUp(server_, "bob");
  TestUser carol = SignUp(server_, "carol");
  v1::Room room = PrivateRoom(owner, "closing");
  AddMember(owner, room, bob);
  AddMember(owner, room, carol);
  const uint64_t before = Post(owner, room, "before the stream");

  // Resumed from the start: the history first.
  auto follow = OpenFollow(kSecret);
  Start(follow.get(), room.id(), 0);
  FollowResponse all;
  ASSERT_TRUE(ReadUntil(follow.get(), &all, [&](const FollowResponse& r) {
    for (const auto& e : r.events()) {
      if (e.sequence() == before) return true;
    }
    return false;
  }));
  EXPECT_GE(all.position(), before);

  Attach(follow.get(), 1, owner.token);
  Attach(follow.get(), 2, bob.token);
  Attach(follow.get(), 3, carol.token);
  all.Clear();
  ASSERT_TRUE(ReadUntil(follow.get(), &all, [](const FollowResponse& r) {
    return r.admitted_size() == 3;
  }));
  // Attached clients count as present, as their streams would.
  bool truncated = false;
  EXPECT_EQ(server_.hub().ListPresent(room.id(), 10, &truncated).size(), 3u);

  const uint64_t live = Post(owner, room, "live");
  all.Clear();
  ASSERT_TRUE(ReadUntil(follow.get(), &all, [&](const FollowResponse& r) {
    for (const auto& e : r.events()) {
      if (e.sequence() == live && e.text() == "live") return true;
    }
    return false;
  }));

  // Bob removed: his client ends as his stream would.
  {
    v1::RemoveMemberRequest req;
    req.set_room(room.id());
    req.set_user(bob.id);
    v1::RemoveMemberResponse out;
    ASSERT_TRUE(Succeeded(Call(rooms_.get(),
                               &v1::RoomService::Stub::RemoveMember,
                               owner.token, req, &out)));
  }
  all.Clear();
  ASSERT_TRUE(ReadUntil(follow.get(), &all, [](const FollowResponse& r) {
    return r.ended_size() > 0;
  }));
  ASSERT_EQ(all.ended_size(), 1);
  EXPECT_EQ(all.ended(0).client(), 2u);
  EXPECT_EQ(all.ended(0).status().code(), grpc::StatusCode::PERMISSION_DENIED);

  // Carol signs out: her client ends UNAUTHENTICATED.
  {
    v1::SignOutRequest req;
    v1::SignOutResponse out;
    ASSERT_TRUE(Succeeded(Call(auth_.get(), &v1::AuthService::Stub::SignOut,
                               carol.token, req, &out)));
  }
  all.Clear();
  ASSERT_TRUE(ReadUntil(follow.get(), &all, [](const FollowResponse& r) {
    return r.ended_size() > 0;
  }));
  ASSERT_EQ(all.ended_size(), 1);
  EXPECT_EQ(all.ended(0).client(), 3u);
  EXPECT_EQ(all.ended(0).status().code(), grpc::StatusCode::UNAUTHENTICATED);

  // The owner stays; the room deleted ends the whole stream NOT_FOUND.
  {
    v1::DeleteRoomRequest req;
    req.set_room(room.id());
    v1::DeleteRoomResponse out;
    ASSERT_TRUE(Succeeded(Call(rooms_.get(), &v1::RoomService::Stub::DeleteRoom,
                               owner.token, req, &out)));
  }
  FollowResponse resp;
  while (follow->stream->Read(&resp)) {
  }
  EXPECT_EQ(follow->stream->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
}

// At shutdown the whole stream ends UNAVAILABLE, for the gateway to take
// it and its clients to another server; no client is ended on its own.
TEST_F(EdgeServiceTest, ShutdownEndsTheStreamNotItsClients) {
  TestUser owner = SignUp(server_, "owner");
  v1::Room room = PrivateRoom(owner, "stopping");
  // Another gateway's stream first, then gone: the hub then holds the
  // client's registration before this stream's subscription, and closes
  // (and wakes) it first.
  auto gone = OpenFollow(kSecret);
  Start(gone.get(), room.id());
  FollowResponse resp;
  ASSERT_TRUE(gone->stream->Read(&resp));
  auto follow = OpenFollow(kSecret);
  Start(follow.get(), room.id());
  Attach(follow.get(), 1, owner.token);
  FollowResponse all;
  ASSERT_TRUE(ReadUntil(follow.get(), &all, [](const FollowResponse& r) {
    return r.admitted_size() == 1;
  }));
  Start(gone.get(), room.id());  // a second start ends it, unsubscribed
  while (gone->stream->Read(&resp)) {
  }
  EXPECT_EQ(gone->stream->Finish().error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  all.Clear();
  std::thread stop([this] { server_.server().Shutdown(); });
  while (follow->stream->Read(&resp)) all.MergeFrom(resp);
  const grpc::Status status = follow->stream->Finish();
  stop.join();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(all.ended_size(), 0) << all.DebugString();
}

// A gateway's Follow stream of `log` on `server`: attaches clients with
// their addresses and tells what became of each.
class LimitedFollow {
 public:
  LimitedFollow(TestServer& server, const std::string& log)
      : edge_(EdgeService::NewStub(server.NewChannel())) {
    WithDeadline(&ctx_);
    ctx_.AddMetadata(api::kEdgeSecretKey, kSecret);
    stream_ = edge_->Follow(&ctx_);
    FollowRequest req;
    req.mutable_start()->set_log(log);
    EXPECT_TRUE(stream_->Write(req));
  }
  ~LimitedFollow() { ctx_.TryCancel(); }

  // Attaches `client` with `token`, from `address` ("" sends none), and
  // returns what became of it, read in order: OK when admitted, else the
  // code it ended with; -1 if the stream ended first.
  int Admit(uint64_t client, const std::string& token,
            const std::string& address) {
    FollowRequest a;
    a.mutable_attach()->set_client(client);
    a.mutable_attach()->set_authorization("Bearer " + token);
    a.mutable_attach()->set_address(address);
    if (!stream_->Write(a)) return -1;
    FollowResponse resp;
    while (stream_->Read(&resp)) {
      for (uint64_t id : resp.admitted()) {
        if (id == client) return grpc::StatusCode::OK;
      }
      for (const auto& end : resp.ended()) {
        if (end.client() == client) return end.status().code();
      }
    }
    return -1;
  }
  bool Detach(uint64_t client) {
    FollowRequest d;
    d.mutable_detach()->set_client(client);
    return stream_->Write(d);
  }

 private:
  std::unique_ptr<EdgeService::Stub> edge_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<FollowRequest, FollowResponse>>
      stream_;
};

// A server with these stream limits per user and per address.
api::ServerOptions EdgeLimits(size_t per_user, size_t per_address) {
  api::ServerOptions options = EdgeOptions();
  options.quotas.streams_per_user = per_user;
  options.quotas.streams_per_address = per_address;
  return options;
}

// An attached client holds one of its user's stream slots, as its own
// stream would, until it is detached.
TEST(EdgeServiceLimitsTest, AttachedClientsHoldTheirUsersStreamSlots) {
  TestServer server(EdgeLimits(1, 0));
  TestUser ann = SignUp(server, "ann");
  LimitedFollow follow(server, std::string(model::kLobbyId));
  EXPECT_EQ(follow.Admit(1, ann.token, "10.0.0.1"), grpc::StatusCode::OK);
  EXPECT_EQ(follow.Admit(2, ann.token, "10.0.0.1"),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  ASSERT_TRUE(follow.Detach(1));
  EXPECT_EQ(follow.Admit(3, ann.token, "10.0.0.1"), grpc::StatusCode::OK);
}

// A gateway older than the attach's address field (during a rolling
// upgrade) sends none. Its clients count against their users' limits only:
// not all together under one empty address, where the first would take the
// whole address's budget.
TEST(EdgeServiceLimitsTest, ClientsAttachedWithoutAnAddressCountPerUserOnly) {
  TestServer server(EdgeLimits(1, 1));
  const TestUser users[] = {SignUp(server, "ann"), SignUp(server, "bob"),
                            SignUp(server, "cat"), SignUp(server, "dan")};
  LimitedFollow follow(server, std::string(model::kLobbyId));
  EXPECT_EQ(follow.Admit(1, users[0].token, ""), grpc::StatusCode::OK);
  EXPECT_EQ(follow.Admit(2, users[1].token, ""), grpc::StatusCode::OK);
  // The user's limit still holds,
  EXPECT_EQ(follow.Admit(3, users[0].token, ""),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  // and so does a known address's.
  EXPECT_EQ(follow.Admit(4, users[2].token, "10.0.0.2"), grpc::StatusCode::OK);
  EXPECT_EQ(follow.Admit(5, users[3].token, "10.0.0.2"),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
}

}  // namespace
}  // namespace parley::testing
