// ChatService over real gRPC on loopback: the reactors' endings (events,
// timeout, leave, takeover, shutdown) and the error contract.
#include "server/api/chat_service.h"

#include <future>
#include <string>

#include <grpcpp/generic/generic_stub.h>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "tests/server/api/test_server.h"

namespace parley::api {
namespace {

using parley::testing::TestServer;
using parley::testing::Reason;
using parley::testing::Field;
using v1::ChatService;

grpc::Status Join(ChatService::Stub* stub, const std::string& id) {
  grpc::ClientContext ctx;
  v1::JoinRequest req;
  req.set_id(id);
  v1::JoinResponse resp;
  return stub->Join(&ctx, req, &resp);
}

v1::SendResponse Send(ChatService::Stub* stub, const std::string& id,
                      const std::string& text) {
  grpc::ClientContext ctx;
  v1::SendRequest req;
  req.set_id(id);
  req.set_message(text);
  v1::SendResponse resp;
  grpc::Status s = stub->Send(&ctx, req, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return resp;
}

// An open Subscribe call of client `id`.
struct Stream {
  Stream(ChatService::Stub* stub, const std::string& id) {
    v1::SubscribeRequest req;
    req.set_id(id);
    reader = stub->Subscribe(&ctx, req);
  }
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReader<v1::SubscribeResponse>> reader;
};

grpc::Status Receive(ChatService::Stub* stub, const std::string& id,
                     double timeout, v1::ReceiveResponse* resp) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::ReceiveRequest req;
  req.set_id(id);
  req.set_timeout(timeout);
  return stub->Receive(&ctx, req, resp);
}

// Joins `id` and takes its own join event, leaving its channel empty.
void JoinAndDrain(ChatService::Stub* stub, const std::string& id) {
  ASSERT_TRUE(Join(stub, id).ok());
  v1::ReceiveResponse drained;
  ASSERT_TRUE(Receive(stub, id, 1, &drained).ok());
  ASSERT_EQ(drained.events_size(), 1);
}

TEST(ChatServiceTest, SendIsReceivedByEveryJoinedClient) {
  TestServer server;
  auto stub = server.NewStub();
  ASSERT_TRUE(Join(stub.get(), "alice").ok());
  ASSERT_TRUE(Join(stub.get(), "bob").ok());
  v1::SendResponse sent = Send(stub.get(), "alice", "hello");
  EXPECT_EQ(sent.event().kind(), v1::EVENT_KIND_MESSAGE);
  EXPECT_EQ(sent.event().sequence(), 3u);
  EXPECT_GT(sent.event().create_time().seconds(), 0);
  EXPECT_EQ(sent.event().id().size(), 36u);

  for (const char* id : {"alice", "bob"}) {
    v1::ReceiveResponse resp;
    ASSERT_TRUE(Receive(stub.get(), id, 1, &resp).ok());
    ASSERT_GE(resp.events_size(), 2);
    const v1::Event& last = resp.events(resp.events_size() - 1);
    EXPECT_EQ(last.id(), sent.event().id()) << id;
    EXPECT_EQ(last.text(), "hello");
    EXPECT_EQ(last.sender(), "alice");
    EXPECT_EQ(last.room(), "lobby");
  }
}

TEST(ChatServiceTest, AnEmptyPollReturnsAnEmptyListAfterItsTimeout) {
  TestServer server;
  auto stub = server.NewStub();
  ASSERT_TRUE(Join(stub.get(), "alice").ok());
  v1::ReceiveResponse first;
  ASSERT_TRUE(Receive(stub.get(), "alice", 1, &first).ok());  // the join
  const absl::Time start = absl::Now();
  v1::ReceiveResponse resp;
  ASSERT_TRUE(Receive(stub.get(), "alice", 0.3, &resp).ok());
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(resp.events_size(), 0);
  EXPECT_GE(took, absl::Milliseconds(300));
  EXPECT_LT(took, absl::Seconds(5));
}

TEST(ChatServiceTest, TheTimeoutIsCappedByTheServerMaximum) {
  ServerOptions options;
  options.read.receive_default_timeout = absl::Milliseconds(200);
  options.read.receive_max_timeout = absl::Milliseconds(300);
  TestServer server(options);
  auto stub = server.NewStub();
  JoinAndDrain(stub.get(), "alice");
  const absl::Time start = absl::Now();
  v1::ReceiveResponse resp;
  ASSERT_TRUE(Receive(stub.get(), "alice", 3600, &resp).ok());
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_EQ(resp.events_size(), 0);
}

TEST(ChatServiceTest, AWaitingPollReturnsAsSoonAsAMessageArrives) {
  TestServer server;
  auto stub = server.NewStub();
  JoinAndDrain(stub.get(), "alice");
  const absl::Time start = absl::Now();
  auto poll = std::async(std::launch::async, [&] {
    v1::ReceiveResponse resp;
    EXPECT_TRUE(Receive(stub.get(), "alice", 25, &resp).ok());
    return resp;
  });
  auto other = server.NewStub();
  Send(other.get(), "alice", "ping");
  v1::ReceiveResponse resp = poll.get();
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
  ASSERT_EQ(resp.events_size(), 1);
  EXPECT_EQ(resp.events(0).text(), "ping");
}

TEST(ChatServiceTest, LeaveEndsAnOpenStreamCleanly) {
  TestServer server;
  auto stub = server.NewStub();
  ASSERT_TRUE(Join(stub.get(), "bob").ok());
  Stream stream(stub.get(), "bob");
  auto& reader = stream.reader;
  v1::SubscribeResponse resp;
  ASSERT_TRUE(reader->Read(&resp));  // bob's own join: the stream is live
  EXPECT_EQ(resp.events(0).kind(), v1::EVENT_KIND_JOIN);

  grpc::ClientContext leave_ctx;
  v1::LeaveRequest leave;
  leave.set_id("bob");
  v1::LeaveResponse left;
  ASSERT_TRUE(stub->Leave(&leave_ctx, leave, &left).ok());
  while (reader->Read(&resp)) {
    for (const auto& e : resp.events()) {
      EXPECT_NE(e.kind(), v1::EVENT_KIND_LEAVE) << "leaver got its own leave";
    }
  }
  EXPECT_TRUE(reader->Finish().ok());
}

TEST(ChatServiceTest, LeaveEndsAWaitingPollWithAnEmptyList) {
  TestServer server;
  auto stub = server.NewStub();
  JoinAndDrain(stub.get(), "bob");
  const absl::Time start = absl::Now();
  auto poll = std::async(std::launch::async, [&] {
    v1::ReceiveResponse resp;
    grpc::Status s = Receive(stub.get(), "bob", 25, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.events_size();
  });
  // Leave only once the poll is waiting, so it is the leave that ends it.
  auto channel = *server.hub().FindChannel("bob");
  const absl::Time attach_deadline = absl::Now() + absl::Seconds(10);
  while (!channel->HasReader()) {
    ASSERT_LT(absl::Now(), attach_deadline) << "the poll never attached";
    std::this_thread::yield();
  }
  auto other = server.NewStub();
  grpc::ClientContext ctx;
  v1::LeaveRequest leave;
  leave.set_id("bob");
  v1::LeaveResponse left;
  ASSERT_TRUE(other->Leave(&ctx, leave, &left).ok());
  EXPECT_EQ(poll.get(), 0);
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
}

TEST(ChatServiceTest, StreamsDeliverLiveEventsInOrder) {
  TestServer server;
  auto stub = server.NewStub();
  ASSERT_TRUE(Join(stub.get(), "bob").ok());
  Stream stream(stub.get(), "bob");
  auto& reader = stream.reader;
  v1::SubscribeResponse resp;
  ASSERT_TRUE(reader->Read(&resp));
  auto sender = server.NewStub();
  for (int i = 0; i < 50; ++i) Send(sender.get(), "bob", std::to_string(i));
  int next = 0;
  uint64_t last_seq = resp.events(0).sequence();
  while (next < 50 && reader->Read(&resp)) {
    for (const auto& e : resp.events()) {
      EXPECT_EQ(e.sequence(), last_seq + 1);
      last_seq = e.sequence();
      EXPECT_EQ(e.text(), std::to_string(next++));
    }
  }
  EXPECT_EQ(next, 50);
  stream.ctx.TryCancel();
  reader->Finish();
}

TEST(ChatServiceTest, ASecondReaderTakesOverAndTheFirstStreamIsAborted) {
  TestServer server;
  auto stub = server.NewStub();
  ASSERT_TRUE(Join(stub.get(), "bob").ok());
  Stream stream(stub.get(), "bob");
  auto& first = stream.reader;
  v1::SubscribeResponse resp;
  ASSERT_TRUE(first->Read(&resp));
  v1::ReceiveResponse polled;
  ASSERT_TRUE(Receive(stub.get(), "bob", 0.2, &polled).ok());
  while (first->Read(&resp)) {
  }
  grpc::Status s = first->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_EQ(Reason(s), "SUPERSEDED");
}

TEST(ChatServiceTest, ShutdownEndsStreamsWithUnavailable) {
  TestServer server;
  auto stub = server.NewStub();
  ASSERT_TRUE(Join(stub.get(), "bob").ok());
  Stream stream(stub.get(), "bob");
  auto& reader = stream.reader;
  v1::SubscribeResponse resp;
  ASSERT_TRUE(reader->Read(&resp));
  server.hub().Shutdown();
  while (reader->Read(&resp)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST(ChatServiceTest, AFullChannelTellsThePollerWhatItMissed) {
  ServerOptions options;
  options.hub.channel_capacity = 3;
  TestServer server(options);
  auto stub = server.NewStub();
  ASSERT_TRUE(Join(stub.get(), "slow").ok());                         // 1 (queued)
  ASSERT_TRUE(Join(stub.get(), "fast").ok());                         // 2 (queued)
  for (int i = 0; i < 5; ++i) Send(stub.get(), "fast", "m");  // 3..7
  v1::ReceiveResponse resp;
  ASSERT_TRUE(Receive(stub.get(), "slow", 1, &resp).ok());
  ASSERT_EQ(resp.events_size(), 4);
  EXPECT_EQ(resp.events(2).sequence(), 3u);
  const v1::Event& gap = resp.events(3);
  EXPECT_EQ(gap.kind(), v1::EVENT_KIND_GAP);
  EXPECT_EQ(gap.gap_first_sequence(), 4u);
  EXPECT_EQ(gap.gap_last_sequence(), 7u);
}

using Call = std::function<grpc::Status(ChatService::Stub*,
                                        grpc::ClientContext*)>;

// A call of unary `method` with `req`, its response thrown away.
template <class Req, class Resp>
Call Unary(grpc::Status (ChatService::Stub::*method)(grpc::ClientContext*,
                                                     const Req&, Resp*),
           Req req) {
  return [method, req](ChatService::Stub* stub, grpc::ClientContext* ctx) {
    Resp resp;
    return (stub->*method)(ctx, req, &resp);
  };
}

struct ErrorCase {
  std::string name;
  Call call;
  grpc::StatusCode code;
  std::string reason;
  std::string field;
};

TEST(ChatServiceTest, BadCallsGetTheRightCodeReasonAndField) {
  TestServer server;
  auto stub = server.NewStub();
  ASSERT_TRUE(Join(stub.get(), "alice").ok());
  using Stub = ChatService::Stub;
  auto send = [](std::string id, std::string text) {
    v1::SendRequest req;
    req.set_id(id);
    req.set_message(text);
    return Unary(&Stub::Send, req);
  };
  v1::JoinRequest join_alice;
  join_alice.set_id("alice");
  v1::ReceiveRequest negative_timeout;
  negative_timeout.set_id("alice");
  negative_timeout.set_timeout(-1);
  v1::ReceiveRequest poll_ghost;
  poll_ghost.set_id("ghost");
  v1::LeaveRequest leave_ghost;
  leave_ghost.set_id("ghost");
  std::vector<ErrorCase> cases = {
      {"empty id", send("", "x"), grpc::StatusCode::INVALID_ARGUMENT,
       "ID_REQUIRED", "id"},
      {"empty message", send("alice", ""), grpc::StatusCode::INVALID_ARGUMENT,
       "MESSAGE_REQUIRED", "message"},
      {"long message", send("alice", std::string(4097, 'x')),
       grpc::StatusCode::INVALID_ARGUMENT, "MESSAGE_TOO_LONG", "message"},
      {"not joined", send("ghost", "x"),
       grpc::StatusCode::FAILED_PRECONDITION, "NOT_JOINED", "id"},
      {"double join", Unary(&Stub::Join, join_alice),
       grpc::StatusCode::ALREADY_EXISTS, "ALREADY_JOINED", "id"},
      {"negative timeout", Unary(&Stub::Receive, negative_timeout),
       grpc::StatusCode::INVALID_ARGUMENT, "INVALID_TIMEOUT", "timeout"},
      {"poll before join", Unary(&Stub::Receive, poll_ghost),
       grpc::StatusCode::FAILED_PRECONDITION, "NOT_JOINED", "id"},
      {"leave before join", Unary(&Stub::Leave, leave_ghost),
       grpc::StatusCode::FAILED_PRECONDITION, "NOT_JOINED", "id"},
  };
  for (const ErrorCase& c : cases) {
    grpc::ClientContext ctx;
    grpc::Status s = c.call(stub.get(), &ctx);
    EXPECT_EQ(s.error_code(), c.code) << c.name << ": " << s.error_message();
    EXPECT_EQ(Reason(s), c.reason) << c.name;
    EXPECT_EQ(Field(s), c.field) << c.name;
  }
}

// The reason and field travel as the standard google.rpc.ErrorInfo detail,
// which any gRPC client can read without knowing Parley.
TEST(ChatServiceTest, AnErrorCarriesItsReasonAndFieldAsAStandardErrorInfo) {
  TestServer server;
  auto stub = server.NewStub();
  grpc::Status s = Join(stub.get(), "");
  ASSERT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(s.error_details()));
  EXPECT_EQ(details.code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_EQ(details.message(), s.error_message());
  ASSERT_EQ(details.details_size(), 1);
  EXPECT_EQ(details.details(0).type_url(),
            "type.googleapis.com/google.rpc.ErrorInfo");
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(details.details(0).UnpackTo(&info));
  EXPECT_EQ(info.reason(), "ID_REQUIRED");
  EXPECT_EQ(info.domain(), "parley");
  EXPECT_EQ(info.metadata().at("field"), "id");
}

TEST(ChatServiceTest, SubscribeBeforeJoinFailsWithFailedPrecondition) {
  TestServer server;
  auto stub = server.NewStub();
  Stream stream(stub.get(), "ghost");
  auto& reader = stream.reader;
  v1::SubscribeResponse resp;
  EXPECT_FALSE(reader->Read(&resp));
  EXPECT_EQ(reader->Finish().error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

// A C++ client can put malformed UTF-8 in a string field (protobuf only logs
// it); the server must answer INVALID_ARGUMENT naming the field, not fail
// the parse with UNIMPLEMENTED.
TEST(ChatServiceTest, MalformedUtf8IsInvalidArgumentNamingTheField) {
  TestServer server;
  auto stub = server.NewStub();
  {
    grpc::ClientContext ctx;
    v1::JoinRequest req;
    req.set_id("bad\xFF");
    v1::JoinResponse resp;
    grpc::Status s = stub->Join(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(Reason(s), "INVALID_UTF8");
    EXPECT_EQ(Field(s), "id");
  }
  {
    grpc::ClientContext ctx;
    v1::JoinRequest req;
    req.set_id("alice");
    v1::JoinResponse resp;
    ASSERT_TRUE(stub->Join(&ctx, req, &resp).ok());
  }
  grpc::ClientContext ctx;
  v1::SendRequest req;
  req.set_id("alice");
  req.set_message("ok \xC3\x28");
  v1::SendResponse resp;
  grpc::Status s = stub->Send(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Field(s), "message");
  EXPECT_EQ(server.hub().SessionCount(), 1u);
}

// Bytes that are no protobuf message at all: INVALID_ARGUMENT with a
// reason and a message, not gRPC's bare UNIMPLEMENTED.
TEST(ChatServiceTest, BytesThatAreNoMessageAreInvalidArgument) {
  TestServer server;
  grpc::GenericStub generic(server.NewChannel());
  // Field 1 as a varint whose continuation bit never ends.
  const std::string garbage = "\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff";
  grpc::Slice slice(garbage);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::ClientContext ctx;
  std::promise<grpc::Status> done;
  generic.UnaryCall(&ctx, "/parley.v1.ChatService/Join", grpc::StubOptions(),
                    &request, &response,
                    [&done](grpc::Status s) { done.set_value(s); });
  const grpc::Status s = done.get_future().get();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Reason(s), "MALFORMED_REQUEST");
  EXPECT_NE(s.error_message(), "");
  EXPECT_EQ(server.hub().SessionCount(), 0u);
}

// U+0000 is valid UTF-8 but no store keeps it alike (PostgreSQL's text
// cannot): refused at the edge, naming the field, and nothing is stored.
TEST(ChatServiceTest, ANulCharacterIsInvalidArgumentNamingTheField) {
  TestServer server;
  auto stub = server.NewStub();
  {
    grpc::ClientContext ctx;
    v1::JoinRequest req;
    req.set_id("alice");
    v1::JoinResponse resp;
    ASSERT_TRUE(stub->Join(&ctx, req, &resp).ok());
  }
  grpc::ClientContext ctx;
  v1::SendRequest req;
  req.set_id("alice");
  req.set_message(std::string("before\0after", 12));
  v1::SendResponse resp;
  grpc::Status s = stub->Send(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Reason(s), "NUL_CHARACTER");
  EXPECT_EQ(Field(s), "message");
  absl::StatusOr<std::vector<model::EventPtr>> events =
      server.store().ReadAfter(model::kLobbyId, 0, 100);
  ASSERT_TRUE(events.ok());
  for (const model::EventPtr& e : *events) {
    EXPECT_NE(e->kind, model::EventKind::kMessage) << e->text;
  }
}

}  // namespace
}  // namespace parley::api
