// MessageService and the signed-in side of ChatService over real gRPC on
// loopback: posting, paging, edit/delete/purge, direct messages, seed 004's
// lobby calls, and room / inbox streams resumed by sequence number.
#include "server/api/message_service.h"

#include <algorithm>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "tests/server/api/test_server.h"

namespace parley::api {
namespace {

using parley::testing::Header;
using parley::testing::SignUp;
using parley::testing::TestServer;
using parley::testing::TestUser;
using parley::testing::Reason;
using parley::testing::Field;
using parley::testing::WithToken;

class MessageServiceTest : public ::testing::Test {
 protected:
  MessageServiceTest()
      : channel_(server_.NewChannel()),
        messages_(v1::MessageService::NewStub(channel_)),
        rooms_(v1::RoomService::NewStub(channel_)),
        chat_(v1::ChatService::NewStub(channel_)) {}

  v1::Room CreateRoom(const TestUser& owner, const std::string& name,
                      v1::Visibility visibility = v1::VISIBILITY_PUBLIC,
                      const std::string& password = "") {
    grpc::ClientContext ctx;
    WithToken(&ctx, owner.token);
    v1::CreateRoomRequest req;
    req.set_name(name);
    req.set_visibility(visibility);
    req.set_password(password);
    v1::Room room;
    grpc::Status s = rooms_->CreateRoom(&ctx, req, &room);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return room;
  }

  grpc::Status Post(const TestUser& who, const std::string& room,
                    const std::string& text, v1::Event* out = nullptr) {
    grpc::ClientContext ctx;
    WithToken(&ctx, who.token);
    v1::PostMessageRequest req;
    req.set_room(room);
    req.set_text(text);
    v1::Event event;
    grpc::Status s = messages_->PostMessage(&ctx, req, &event);
    if (out != nullptr) *out = event;
    if (s.ok()) {
      EXPECT_EQ(Header(ctx, "x-http-code"), "201");
      EXPECT_EQ(Header(ctx, "x-location"),
                "/v1/rooms/" + event.room_id() + "/messages/" + event.id());
    }
    return s;
  }

  v1::ListMessagesResponse List(const TestUser& who, const std::string& room,
                                uint32_t n, uint64_t before = 0,
                                uint64_t after = 0) {
    grpc::ClientContext ctx;
    WithToken(&ctx, who.token);
    v1::ListMessagesRequest req;
    req.set_room(room);
    req.set_n(n);
    if (before != 0) req.set_before(before);
    if (after != 0) req.set_after(after);
    v1::ListMessagesResponse resp;
    grpc::Status s = messages_->ListMessages(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  // An open Subscribe call.
  struct Stream {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReader<v1::SubscribeResponse>> reader;
    // Reads writes until `n` events with a sequence number arrived (live-only
    // events are skipped); fails the test if the stream ends first.
    std::vector<v1::Event> Read(size_t n) {
      std::vector<v1::Event> got;
      v1::SubscribeResponse resp;
      while (got.size() < n && reader->Read(&resp)) {
        for (const v1::Event& e : resp.events()) {
          if (e.sequence() != 0) got.push_back(e);
        }
      }
      EXPECT_EQ(got.size(), n);
      return got;
    }
  };
  std::unique_ptr<Stream> Subscribe(const TestUser& who,
                                    const std::string& room,
                                    std::optional<uint64_t> after,
                                    bool direct = false) {
    auto stream = std::make_unique<Stream>();
    WithToken(&stream->ctx, who.token);
    v1::SubscribeRequest req;
    if (direct) {
      req.set_direct_messages(true);
    } else {
      req.set_room(room);
    }
    if (after.has_value()) req.set_after_sequence(*after);
    stream->reader = chat_->Subscribe(&stream->ctx, req);
    // The first write says the subscription is in place.
    v1::SubscribeResponse first;
    EXPECT_TRUE(stream->reader->Read(&first));
    pending_ = first;
    return stream;
  }

  TestServer server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::MessageService::Stub> messages_;
  std::unique_ptr<v1::RoomService::Stub> rooms_;
  std::unique_ptr<v1::ChatService::Stub> chat_;
  v1::SubscribeResponse pending_;  // the first write of the last Subscribe
};

TEST_F(MessageServiceTest, AnyoneSignedInPostsToAPublicRoomWithoutJoining) {
  TestUser ann = SignUp(server_, "ann");
  TestUser bob = SignUp(server_, "bob");
  v1::Room room = CreateRoom(ann, "general");
  v1::Event posted;
  ASSERT_TRUE(Post(bob, "general", "hi from bob", &posted).ok());
  EXPECT_EQ(posted.kind(), v1::EVENT_KIND_MESSAGE);
  EXPECT_EQ(posted.sender_id(), bob.id);
  EXPECT_EQ(posted.room_id(), room.id());
  EXPECT_EQ(posted.sequence(), 1u);
  EXPECT_EQ(posted.id().size(), 36u);
  auto listed = List(ann, room.id(), 10);
  ASSERT_EQ(listed.messages_size(), 1);
  EXPECT_EQ(listed.messages(0).text(), "hi from bob");
}

TEST_F(MessageServiceTest, HistoryPagesBothWays) {
  TestUser ann = SignUp(server_, "ann");
  CreateRoom(ann, "paged");
  for (int i = 1; i <= 10; ++i) {
    ASSERT_TRUE(Post(ann, "paged", "m" + std::to_string(i)).ok());
  }
  auto latest = List(ann, "paged", 3);
  ASSERT_EQ(latest.messages_size(), 3);
  EXPECT_EQ(latest.messages(0).text(), "m8");  // oldest first
  EXPECT_EQ(latest.messages(2).text(), "m10");
  EXPECT_TRUE(latest.has_older());
  EXPECT_FALSE(latest.has_newer());
  auto older = List(ann, "paged", 3, latest.messages(0).sequence());
  ASSERT_EQ(older.messages_size(), 3);
  EXPECT_EQ(older.messages(0).text(), "m5");
  auto forward = List(ann, "paged", 4, 0, /*after=*/2);
  ASSERT_EQ(forward.messages_size(), 4);
  EXPECT_EQ(forward.messages(0).text(), "m3");
  EXPECT_TRUE(forward.has_older());
  EXPECT_TRUE(forward.has_newer());
}

TEST_F(MessageServiceTest, EditKeepsHistoryAndDeleteLeavesATombstone) {
  TestUser ann = SignUp(server_, "ann");
  TestUser bob = SignUp(server_, "bob");
  CreateRoom(ann, "edits");
  v1::Event m;
  ASSERT_TRUE(Post(ann, "edits", "frist", &m).ok());
  {
    grpc::ClientContext ctx;
    WithToken(&ctx, bob.token);
    v1::EditMessageRequest req;
    req.set_room("edits");
    req.set_message(m.id());
    req.set_text("bob was here");
    v1::Event out;
    grpc::Status s = messages_->EditMessage(&ctx, req, &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_EQ(Reason(s), "NOT_AUTHOR");
  }
  {
    grpc::ClientContext ctx;
    WithToken(&ctx, ann.token);
    v1::EditMessageRequest req;
    req.set_room("edits");
    req.set_message(m.id());
    req.set_text("first");
    v1::Event out;
    ASSERT_TRUE(messages_->EditMessage(&ctx, req, &out).ok());
    EXPECT_EQ(out.text(), "first");
    ASSERT_EQ(out.previous_versions_size(), 1);
    EXPECT_EQ(out.previous_versions(0).text(), "frist");
  }
  auto listed = List(ann, "edits", 10);
  ASSERT_EQ(listed.messages_size(), 1);
  EXPECT_EQ(listed.messages(0).text(), "first");
  EXPECT_TRUE(listed.messages(0).has_update_time());
  ASSERT_EQ(listed.messages(0).previous_versions_size(), 1);
  {
    grpc::ClientContext ctx;
    WithToken(&ctx, ann.token);
    v1::DeleteMessageRequest req;
    req.set_room("edits");
    req.set_message(m.id());
    v1::Event out;
    ASSERT_TRUE(messages_->DeleteMessage(&ctx, req, &out).ok());
    EXPECT_TRUE(out.deleted());
    EXPECT_EQ(out.text(), "");
  }
  listed = List(ann, "edits", 10);
  ASSERT_EQ(listed.messages_size(), 1);
  EXPECT_TRUE(listed.messages(0).deleted());
  EXPECT_EQ(listed.messages(0).text(), "");
}

TEST_F(MessageServiceTest, OnlyTheOwnerPurgesAndPurgedMessagesAreGone) {
  TestUser ann = SignUp(server_, "ann");
  TestUser bob = SignUp(server_, "bob");
  CreateRoom(ann, "purge-me");
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(Post(bob, "purge-me", "x").ok());
  v1::PurgeMessagesRequest req;
  req.set_room("purge-me");
  req.set_through_sequence(3);
  {
    grpc::ClientContext ctx;
    WithToken(&ctx, bob.token);
    v1::PurgeMessagesResponse resp;
    EXPECT_EQ(messages_->PurgeMessages(&ctx, req, &resp).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  grpc::ClientContext ctx;
  WithToken(&ctx, ann.token);
  v1::PurgeMessagesResponse resp;
  ASSERT_TRUE(messages_->PurgeMessages(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.purged(), 3u);
  EXPECT_EQ(resp.event().kind(), v1::EVENT_KIND_PURGE);
  auto left = List(ann, "purge-me", 10);
  ASSERT_EQ(left.messages_size(), 2);
  EXPECT_EQ(left.messages(0).sequence(), 4u);
}

TEST_F(MessageServiceTest, APurgeNeverReachesPastTheLastMessage) {
  TestUser ann = SignUp(server_, "ann");
  CreateRoom(ann, "capped");
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Post(ann, "capped", "x").ok());
  grpc::ClientContext ctx;
  WithToken(&ctx, ann.token);
  v1::PurgeMessagesRequest req;
  req.set_room("capped");
  req.set_through_sequence(UINT64_MAX);
  v1::PurgeMessagesResponse resp;
  ASSERT_TRUE(messages_->PurgeMessages(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.purged(), 3u);
  EXPECT_EQ(resp.event().purge_through_sequence(), 3u);
  v1::Event later;
  ASSERT_TRUE(Post(ann, "capped", "after the purge", &later).ok());
  auto left = List(ann, "capped", 10);
  ASSERT_EQ(left.messages_size(), 1);
  EXPECT_EQ(left.messages(0).id(), later.id());
}

TEST_F(MessageServiceTest, DirectMessagesReachOnlyTheRecipient) {
  TestUser ann = SignUp(server_, "ann");
  TestUser bob = SignUp(server_, "bob");
  TestUser eve = SignUp(server_, "eve");
  auto bob_inbox = Subscribe(bob, "", std::nullopt, /*direct=*/true);
  auto eve_inbox = Subscribe(eve, "", std::nullopt, /*direct=*/true);
  for (const std::string& to : {bob.username, bob.id}) {
    grpc::ClientContext ctx;
    WithToken(&ctx, ann.token);
    v1::SendDirectMessageRequest req;
    req.set_user(to);
    req.set_text("psst " + to);
    v1::Event out;
    ASSERT_TRUE(messages_->SendDirectMessage(&ctx, req, &out).ok());
    EXPECT_EQ(out.recipient_id(), bob.id);
    EXPECT_EQ(Header(ctx, "x-http-code"), "201");
  }
  auto got = bob_inbox->Read(2);
  EXPECT_EQ(got[0].text(), "psst bob");
  EXPECT_EQ(got[0].sender_id(), ann.id);
  grpc::ClientContext ctx;
  WithToken(&ctx, bob.token);
  v1::ListDirectMessagesRequest req;
  v1::ListMessagesResponse mine;
  ASSERT_TRUE(messages_->ListDirectMessages(&ctx, req, &mine).ok());
  EXPECT_EQ(mine.messages_size(), 2);
  grpc::ClientContext eve_ctx;
  WithToken(&eve_ctx, eve.token);
  v1::ListMessagesResponse eves;
  ASSERT_TRUE(messages_->ListDirectMessages(&eve_ctx, req, &eves).ok());
  EXPECT_EQ(eves.messages_size(), 0);
  // The sender's inbox holds its copies: the conversation reads back whole,
  // each copy naming the recipient's message.
  grpc::ClientContext ann_ctx;
  WithToken(&ann_ctx, ann.token);
  v1::ListMessagesResponse anns;
  ASSERT_TRUE(messages_->ListDirectMessages(&ann_ctx, req, &anns).ok());
  ASSERT_EQ(anns.messages_size(), 2);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(anns.messages(i).sender_id(), ann.id);
    EXPECT_EQ(anns.messages(i).recipient_id(), bob.id);
    EXPECT_EQ(anns.messages(i).text(), mine.messages(i).text());
    EXPECT_EQ(anns.messages(i).target_id(), mine.messages(i).id());
    EXPECT_NE(anns.messages(i).id(), mine.messages(i).id());
  }
  eve_inbox->ctx.TryCancel();
  bob_inbox->ctx.TryCancel();
}

// The cursor: history after the resume point, then live, with no gap and no
// duplicate, while another user keeps posting.
TEST_F(MessageServiceTest, ARoomStreamResumesWithNoGapAndNoDuplicate) {
  TestUser ann = SignUp(server_, "ann");
  TestUser bob = SignUp(server_, "bob");
  CreateRoom(ann, "resume");
  for (int i = 1; i <= 300; ++i) {
    ASSERT_TRUE(Post(ann, "resume", "h" + std::to_string(i)).ok());
  }
  auto stream = Subscribe(bob, "resume", /*after=*/100);
  std::thread poster([&] {
    for (int i = 1; i <= 200; ++i) {
      EXPECT_TRUE(Post(ann, "resume", "l" + std::to_string(i)).ok());
    }
  });
  std::vector<v1::Event> got;
  for (const v1::Event& e : pending_.events()) {
    if (e.sequence() != 0) got.push_back(e);
  }
  for (const v1::Event& e : stream->Read(400 - got.size())) got.push_back(e);
  poster.join();
  ASSERT_EQ(got.size(), 400u);
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].sequence(), 101 + i) << "at " << i;
  }
  EXPECT_EQ(got.back().text(), "l200");
  stream->ctx.TryCancel();
}

TEST_F(MessageServiceTest, ARemovedMemberStopsReceivingAtOnce) {
  TestUser ann = SignUp(server_, "ann");
  TestUser bob = SignUp(server_, "bob");
  CreateRoom(ann, "secret", v1::VISIBILITY_PRIVATE, "open sesame");
  {
    grpc::ClientContext ctx;
    WithToken(&ctx, bob.token);
    v1::AddMemberRequest req;
    req.set_room("secret");
    req.set_password("open sesame");
    v1::Member m;
    ASSERT_TRUE(rooms_->AddMember(&ctx, req, &m).ok());
  }
  auto stream = Subscribe(bob, "secret", std::nullopt);
  ASSERT_TRUE(Post(ann, "secret", "for members").ok());
  EXPECT_EQ(stream->Read(1)[0].text(), "for members");
  {
    grpc::ClientContext ctx;
    WithToken(&ctx, ann.token);
    v1::RemoveMemberRequest req;
    req.set_room("secret");
    req.set_user("bob");
    v1::RemoveMemberResponse resp;
    ASSERT_TRUE(rooms_->RemoveMember(&ctx, req, &resp).ok());
  }
  v1::SubscribeResponse resp;
  while (stream->reader->Read(&resp)) {
    for (const v1::Event& e : resp.events()) {
      EXPECT_NE(e.kind(), v1::EVENT_KIND_MESSAGE) << e.text();
    }
  }
  grpc::Status ended = stream->reader->Finish();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Reason(ended), "NOT_A_MEMBER");
  EXPECT_EQ(Post(bob, "secret", "let me in").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(MessageServiceTest, PrivateHistoryIsClosedToOutsidersWhateverTheyGuess) {
  TestUser ann = SignUp(server_, "ann");
  TestUser eve = SignUp(server_, "eve");
  v1::Room priv = CreateRoom(ann, "priv", v1::VISIBILITY_PRIVATE, "pw");
  v1::Room hidden = CreateRoom(ann, "hid", v1::VISIBILITY_HIDDEN, "pw");
  v1::Event m;
  ASSERT_TRUE(Post(ann, "priv", "private words", &m).ok());
  struct Case {
    std::string room;
    grpc::StatusCode want;
  };
  for (const Case& c : {Case{priv.id(), grpc::StatusCode::PERMISSION_DENIED},
                        Case{"priv", grpc::StatusCode::PERMISSION_DENIED},
                        Case{hidden.id(), grpc::StatusCode::NOT_FOUND},
                        Case{"hid", grpc::StatusCode::NOT_FOUND}}) {
    grpc::ClientContext ctx;
    WithToken(&ctx, eve.token);
    v1::ListMessagesRequest req;
    req.set_room(c.room);
    v1::ListMessagesResponse resp;
    EXPECT_EQ(messages_->ListMessages(&ctx, req, &resp).error_code(), c.want)
        << c.room;
    EXPECT_EQ(resp.messages_size(), 0);
    grpc::ClientContext get_ctx;
    WithToken(&get_ctx, eve.token);
    v1::GetMessageRequest get;
    get.set_room(c.room);
    get.set_message(m.id());
    v1::Event out;
    EXPECT_EQ(messages_->GetMessage(&get_ctx, get, &out).error_code(), c.want);
  }
  // Without a token: 401 before anything else.
  grpc::ClientContext anon;
  v1::ListMessagesRequest req;
  req.set_room("priv");
  v1::ListMessagesResponse resp;
  EXPECT_EQ(messages_->ListMessages(&anon, req, &resp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(MessageServiceTest, SeedFourPostsListsAndNamesPosters) {
  for (const auto& [user, text] :
       std::vector<std::pair<std::string, std::string>>{
           {"superman", "hello"}, {"batman", "hello"}, {"superman", "bye"}}) {
    grpc::ClientContext ctx;
    v1::PostRecentMessageRequest req;
    req.set_user(user);
    req.set_text(text);
    v1::PostRecentMessageResponse resp;
    ASSERT_TRUE(chat_->PostRecentMessage(&ctx, req, &resp).ok());
    EXPECT_TRUE(resp.ok());
  }
  grpc::ClientContext ctx;
  v1::ListRecentMessagesRequest req;
  req.set_n(2);
  v1::ListRecentMessagesResponse recent;
  ASSERT_TRUE(chat_->ListRecentMessages(&ctx, req, &recent).ok());
  ASSERT_EQ(recent.messages_size(), 2);
  EXPECT_EQ(recent.messages(0).user(), "batman");
  EXPECT_EQ(recent.messages(1).text(), "bye");
  EXPECT_GT(recent.messages(0).timestamp(), 1700000000u);
  grpc::ClientContext posters_ctx;
  v1::ListPostersResponse posters;
  ASSERT_TRUE(
      chat_->ListPosters(&posters_ctx, v1::ListPostersRequest(), &posters).ok());
  ASSERT_EQ(posters.users_size(), 2);
  EXPECT_EQ(posters.users(0), "superman");
  EXPECT_EQ(posters.users(1), "batman");

  grpc::ClientContext bad_ctx;
  v1::PostRecentMessageRequest bad;
  bad.set_text("no user");
  v1::PostRecentMessageResponse out;
  grpc::Status refused = chat_->PostRecentMessage(&bad_ctx, bad, &out);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Field(refused), "user");
}

TEST_F(MessageServiceTest, EverythingAcknowledgedIsThereAfterARestart) {
  TestUser ann = SignUp(server_, "ann");
  CreateRoom(ann, "durable");
  std::set<std::string> ids;
  for (int i = 0; i < 50; ++i) {
    v1::Event m;
    ASSERT_TRUE(Post(ann, "durable", "m", &m).ok());
    ids.insert(m.id());
  }
  server_.Restart();
  channel_ = server_.NewChannel();
  messages_ = v1::MessageService::NewStub(channel_);
  auto listed = List(ann, "durable", 100);
  std::set<std::string> found;
  for (const v1::Event& e : listed.messages()) found.insert(e.id());
  EXPECT_EQ(found, ids);
  v1::Event next;
  ASSERT_TRUE(Post(ann, "durable", "after restart", &next).ok());
  EXPECT_EQ(next.sequence(), 51u);
}

// ---- Idempotent sends ----

TEST_F(MessageServiceTest, ARetriedPostWithTheSameKeyStoresOneMessage) {
  TestUser ann = SignUp(server_, "ann");
  TestUser bob = SignUp(server_, "bob");
  CreateRoom(ann, "once");
  auto post = [&](const TestUser& who, const std::string& text,
                  const std::string& key, v1::Event* out) {
    v1::PostMessageRequest req;
    req.set_room("once");
    req.set_text(text);
    req.set_idempotency_key(key);
    return parley::testing::Call(messages_.get(),
                                 &v1::MessageService::Stub::PostMessage,
                                 who.token, req, out);
  };
  v1::Event first, again, bobs;
  ASSERT_TRUE(parley::testing::Succeeded(post(ann, "hello", "k-1", &first)));
  ASSERT_TRUE(parley::testing::Succeeded(post(ann, "hello", "k-1", &again)));
  EXPECT_EQ(again.id(), first.id());
  EXPECT_EQ(again.sequence(), first.sequence());
  EXPECT_EQ(again.text(), "hello");
  // Another sender's key is another key.
  ASSERT_TRUE(parley::testing::Succeeded(post(bob, "hello", "k-1", &bobs)));
  EXPECT_NE(bobs.id(), first.id());
  // The same key for another text is refused, not silently merged.
  v1::Event reused;
  EXPECT_TRUE(parley::testing::Failed(post(ann, "other", "k-1", &reused),
                                      grpc::StatusCode::ALREADY_EXISTS,
                                      "IDEMPOTENCY_KEY_REUSED",
                                      "idempotency_key"));
  EXPECT_EQ(List(ann, "once", 10).messages_size(), 2);

  // The key also comes as metadata (the gateway's Idempotency-Key header).
  v1::Event by_header_1, by_header_2;
  for (v1::Event* out : {&by_header_1, &by_header_2}) {
    grpc::ClientContext ctx;
    WithToken(&ctx, ann.token);
    ctx.AddMetadata("idempotency-key", "k-2");
    v1::PostMessageRequest req;
    req.set_room("once");
    req.set_text("by header");
    ASSERT_TRUE(messages_->PostMessage(&ctx, req, out).ok());
  }
  EXPECT_EQ(by_header_1.id(), by_header_2.id());
  EXPECT_EQ(List(ann, "once", 10).messages_size(), 3);

  v1::Event bad;
  EXPECT_TRUE(parley::testing::Failed(
      post(ann, "x", std::string(129, 'k'), &bad),
      grpc::StatusCode::INVALID_ARGUMENT, "INVALID_IDEMPOTENCY_KEY",
      "idempotency_key"));
}

TEST_F(MessageServiceTest, ConcurrentRetriesOfOneKeyStoreOneMessage) {
  TestUser ann = SignUp(server_, "ann");
  CreateRoom(ann, "race");
  constexpr int kTries = 8;
  std::vector<v1::Event> got(kTries);
  std::vector<grpc::Status> statuses(kTries);
  std::vector<std::thread> threads;
  for (int i = 0; i < kTries; ++i) {
    threads.emplace_back([&, i] {
      auto channel = server_.NewChannel();
      auto stub = v1::MessageService::NewStub(channel);
      grpc::ClientContext ctx;
      WithToken(&ctx, ann.token);
      v1::PostMessageRequest req;
      req.set_room("race");
      req.set_text("only once");
      req.set_idempotency_key("same");
      statuses[i] = stub->PostMessage(&ctx, req, &got[i]);
    });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < kTries; ++i) {
    ASSERT_TRUE(statuses[i].ok()) << statuses[i].error_message();
    EXPECT_EQ(got[i].id(), got[0].id());
  }
  EXPECT_EQ(List(ann, "race", 10).messages_size(), 1);
}

TEST_F(MessageServiceTest, AnIdempotencyKeyHoldsAcrossARestart) {
  TestUser ann = SignUp(server_, "ann");
  TestUser bob = SignUp(server_, "bob");
  CreateRoom(ann, "durable-keys");
  auto send = [&](v1::Event* room_out, v1::Event* dm_out) {
    v1::PostMessageRequest req;
    req.set_room("durable-keys");
    req.set_text("before the crash");
    req.set_idempotency_key("retry-me");
    ASSERT_TRUE(parley::testing::Succeeded(parley::testing::Call(
        messages_.get(), &v1::MessageService::Stub::PostMessage, ann.token,
        req, room_out)));
    v1::SendDirectMessageRequest dm;
    dm.set_user("bob");
    dm.set_text("psst");
    dm.set_idempotency_key("retry-me-too");
    ASSERT_TRUE(parley::testing::Succeeded(parley::testing::Call(
        messages_.get(), &v1::MessageService::Stub::SendDirectMessage,
        ann.token, dm, dm_out)));
  };
  v1::Event room_first, dm_first;
  send(&room_first, &dm_first);
  server_.Restart();
  channel_ = server_.NewChannel();
  messages_ = v1::MessageService::NewStub(channel_);
  v1::Event room_again, dm_again;
  send(&room_again, &dm_again);
  EXPECT_EQ(room_again.id(), room_first.id());
  EXPECT_EQ(room_again.sequence(), room_first.sequence());
  EXPECT_EQ(room_again.text(), "before the crash");
  EXPECT_EQ(dm_again.id(), dm_first.id());
  EXPECT_EQ(List(ann, "durable-keys", 10).messages_size(), 1);
  grpc::ClientContext ctx;
  WithToken(&ctx, bob.token);
  v1::ListDirectMessagesRequest req;
  v1::ListMessagesResponse inbox;
  ASSERT_TRUE(messages_->ListDirectMessages(&ctx, req, &inbox).ok());
  EXPECT_EQ(inbox.messages_size(), 1);
}

TEST_F(MessageServiceTest, ALobbySendRetriedWithItsKeyIsBroadcastOnce) {
  auto send = [&](const std::string& key, v1::SendResponse* out) {
    grpc::ClientContext ctx;
    v1::SendRequest req;
    req.set_id("carol");
    req.set_message("hi all");
    req.set_idempotency_key(key);
    return chat_->Send(&ctx, req, out);
  };
  {
    grpc::ClientContext ctx;
    v1::JoinRequest req;
    req.set_id("carol");
    v1::JoinResponse resp;
    ASSERT_TRUE(chat_->Join(&ctx, req, &resp).ok());
  }
  v1::SendResponse a, b, c;
  ASSERT_TRUE(send("s-1", &a).ok());
  ASSERT_TRUE(send("s-1", &b).ok());
  ASSERT_TRUE(send("s-2", &c).ok());
  EXPECT_EQ(a.event().id(), b.event().id());
  EXPECT_NE(a.event().id(), c.event().id());
  EXPECT_EQ(c.event().sequence(), a.event().sequence() + 1);
}

// ---- Long poll with a cursor ----

TEST_F(MessageServiceTest, APollReturnsWhatIsStoredThenWaitsForWhatComes) {
  TestUser ann = SignUp(server_, "ann");
  CreateRoom(ann, "polled");
  for (const char* text : {"one", "two", "three"}) {
    ASSERT_TRUE(Post(ann, "polled", text).ok());
  }
  auto poll = [&](std::optional<uint64_t> after, double timeout,
                  v1::PollResponse* out) {
    v1::PollRequest req;
    req.set_room("polled");
    if (after.has_value()) req.set_after_sequence(*after);
    req.set_timeout(timeout);
    return parley::testing::Call(chat_.get(), &v1::ChatService::Stub::Poll,
                                 ann.token, req, out);
  };
  v1::PollResponse stored;
  ASSERT_TRUE(parley::testing::Succeeded(poll(0, 5, &stored)));
  ASSERT_EQ(stored.events_size(), 3);
  EXPECT_EQ(stored.events(0).text(), "one");
  EXPECT_EQ(stored.events(2).text(), "three");
  EXPECT_EQ(stored.next_after_sequence(), stored.events(2).sequence());

  // Resuming in the middle gives exactly the rest.
  v1::PollResponse rest;
  ASSERT_TRUE(parley::testing::Succeeded(
      poll(stored.events(0).sequence(), 5, &rest)));
  ASSERT_EQ(rest.events_size(), 2);
  EXPECT_EQ(rest.events(0).text(), "two");

  // At the end: the poll waits, and whatever is posted meanwhile (before or
  // after it starts waiting) is what it returns.
  v1::PollResponse waited;
  parley::testing::Outcome waited_outcome;
  std::thread poller([&] {
    auto channel = server_.NewChannel();
    auto stub = v1::ChatService::NewStub(channel);
    v1::PollRequest req;
    req.set_room("polled");
    req.set_after_sequence(stored.next_after_sequence());
    req.set_timeout(30);
    waited_outcome = parley::testing::Call(
        stub.get(), &v1::ChatService::Stub::Poll, ann.token, req, &waited);
  });
  v1::Event four;
  ASSERT_TRUE(Post(ann, "polled", "four", &four).ok());
  poller.join();
  ASSERT_TRUE(parley::testing::Succeeded(waited_outcome));
  ASSERT_EQ(waited.events_size(), 1);
  EXPECT_EQ(waited.events(0).id(), four.id());
  EXPECT_EQ(waited.next_after_sequence(), four.sequence());

  // Nothing new: an empty list once the timeout passes, and the same cursor.
  v1::PollResponse empty;
  ASSERT_TRUE(parley::testing::Succeeded(poll(four.sequence(), 0.2, &empty)));
  EXPECT_EQ(empty.events_size(), 0);
  EXPECT_EQ(empty.next_after_sequence(), four.sequence());
  // Without a cursor: from now on only; the cursor is the log's end.
  ASSERT_TRUE(parley::testing::Succeeded(poll(std::nullopt, 0.2, &empty)));
  EXPECT_EQ(empty.events_size(), 0);
  EXPECT_EQ(empty.next_after_sequence(), four.sequence());
}

TEST_F(MessageServiceTest, ADirectMessagePollWakesForTheRecipientOnly) {
  TestUser ann = SignUp(server_, "ann");
  TestUser bob = SignUp(server_, "bob");
  v1::PollResponse got;
  parley::testing::Outcome outcome;
  std::thread poller([&] {
    auto channel = server_.NewChannel();
    auto stub = v1::ChatService::NewStub(channel);
    v1::PollRequest req;
    req.set_direct_messages(true);
    req.set_after_sequence(0);
    req.set_timeout(30);
    outcome = parley::testing::Call(stub.get(), &v1::ChatService::Stub::Poll,
                                    bob.token, req, &got);
  });
  grpc::ClientContext ctx;
  WithToken(&ctx, ann.token);
  v1::SendDirectMessageRequest dm;
  dm.set_user("bob");
  dm.set_text("for bob");
  v1::Event sent;
  ASSERT_TRUE(messages_->SendDirectMessage(&ctx, dm, &sent).ok());
  poller.join();
  ASSERT_TRUE(parley::testing::Succeeded(outcome));
  ASSERT_EQ(got.events_size(), 1);
  EXPECT_EQ(got.events(0).id(), sent.id());
}

TEST_F(MessageServiceTest, APollRefusesWhatItCannotServe) {
  TestUser ann = SignUp(server_, "ann");
  CreateRoom(ann, "p");
  auto poll = [&](const std::string& token, v1::PollRequest req) {
    v1::PollResponse out;
    return parley::testing::Call(chat_.get(), &v1::ChatService::Stub::Poll,
                                 token, req, &out);
  };
  v1::PollRequest both;
  both.set_room("p");
  both.set_direct_messages(true);
  EXPECT_TRUE(parley::testing::Failed(poll(ann.token, both),
                                      grpc::StatusCode::INVALID_ARGUMENT,
                                      "ONE_TARGET", "room"));
  EXPECT_TRUE(parley::testing::Failed(poll(ann.token, v1::PollRequest()),
                                      grpc::StatusCode::INVALID_ARGUMENT,
                                      "ONE_TARGET", "room"));
  v1::PollRequest negative;
  negative.set_room("p");
  negative.set_timeout(-1);
  EXPECT_TRUE(parley::testing::Failed(poll(ann.token, negative),
                                      grpc::StatusCode::INVALID_ARGUMENT,
                                      "INVALID_TIMEOUT", "timeout"));
  v1::PollRequest room;
  room.set_room("p");
  EXPECT_TRUE(parley::testing::Failed(poll("", room),
                                      grpc::StatusCode::UNAUTHENTICATED,
                                      parley::testing::kAny));
  v1::PollRequest missing;
  missing.set_room("no-such-room");
  EXPECT_TRUE(parley::testing::Failed(poll(ann.token, missing),
                                      grpc::StatusCode::NOT_FOUND,
                                      "ROOM_NOT_FOUND"));
}

// ---- Slow consumers ----

// A stream resumed after a point past what this server has delivered (a
// client that read further on another server) never repeats up to it.
TEST_F(MessageServiceTest, AStreamResumedPastTheLiveEndSkipsUpToItsCursor) {
  TestUser alice = SignUp(server_, "alice");
  v1::Room room = CreateRoom(alice, "ahead");
  v1::Event last;
  ASSERT_TRUE(Post(alice, room.id(), "seen", &last).ok());
  auto stream = Subscribe(alice, room.id(), last.sequence() + 2);
  std::vector<v1::Event> posted(3);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(Post(alice, room.id(), "m" + std::to_string(i), &posted[i]).ok());
  }
  std::vector<v1::Event> got = stream->Read(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].sequence(), last.sequence() + 3);
  EXPECT_EQ(got[0].id(), posted[2].id());
}

// A room stream that stops reading overflows its small channel; once it
// reads again, every sequence number is either delivered or named by a gap
// event, and the gaps can be read back from history: nothing is lost in
// silence.
TEST(SlowConsumerTest, AStalledRoomStreamIsToldWhatItMissedAndRecoversIt) {
  ServerOptions options = parley::testing::UnlimitedOptions();
  options.hub.channel_capacity = 4;
  options.hub.max_message_bytes = 64 * 1024;
  TestServer server(options);
  TestUser ann = SignUp(server, "ann");
  auto channel = server.NewChannel();
  auto rooms = v1::RoomService::NewStub(channel);
  auto messages = v1::MessageService::NewStub(channel);
  {
    grpc::ClientContext ctx;
    WithToken(&ctx, ann.token);
    v1::CreateRoomRequest req;
    req.set_name("firehose");
    v1::Room room;
    ASSERT_TRUE(rooms->CreateRoom(&ctx, req, &room).ok());
  }
  // The stream has its own connection, so its unread bytes fill only its
  // own flow-control windows.
  auto stream_channel = server.NewChannel();
  auto chat = v1::ChatService::NewStub(stream_channel);
  grpc::ClientContext stream_ctx;
  WithToken(&stream_ctx, ann.token);
  v1::SubscribeRequest sub;
  sub.set_room("firehose");
  auto reader = chat->Subscribe(&stream_ctx, sub);
  v1::SubscribeResponse first;
  ASSERT_TRUE(reader->Read(&first));

  // Far more than gRPC's flow-control windows hold (a few MiB): the pump's
  // writes stall, and the channel overflows.
  constexpr int kMessages = 400;
  const std::string big(60 * 1024, 'x');
  uint64_t first_seq = 0, last = 0;
  for (int i = 0; i < kMessages; ++i) {
    grpc::ClientContext ctx;
    WithToken(&ctx, ann.token);
    v1::PostMessageRequest req;
    req.set_room("firehose");
    req.set_text(big);
    v1::Event event;
    ASSERT_TRUE(messages->PostMessage(&ctx, req, &event).ok());
    if (first_seq == 0) first_seq = event.sequence();
    last = event.sequence();
  }
  const uint64_t want = last - first_seq + 1;

  std::set<uint64_t> delivered;
  std::vector<std::pair<uint64_t, uint64_t>> gaps;
  v1::SubscribeResponse resp;
  auto covered = [&] {
    uint64_t n = delivered.size();
    for (auto [a, b] : gaps) n += b - a + 1;
    return n;
  };
  while (covered() < want && reader->Read(&resp)) {
    for (const v1::Event& e : resp.events()) {
      if (e.kind() == v1::EVENT_KIND_GAP) {
        gaps.emplace_back(e.gap_first_sequence(), e.gap_last_sequence());
      } else if (e.sequence() >= first_seq) {
        EXPECT_TRUE(delivered.insert(e.sequence()).second) << e.sequence();
      }
    }
  }
  stream_ctx.TryCancel();
  ASSERT_FALSE(gaps.empty()) << "the channel never overflowed";
  // Every gap names numbers that were not delivered; history has them.
  for (auto [a, b] : gaps) {
    ASSERT_LE(a, b);
    for (uint64_t seq = a; seq <= b; ++seq) {
      EXPECT_EQ(delivered.count(seq), 0u) << seq;
    }
    // In pages that stay under gRPC's 4 MiB message limit.
    for (uint64_t from = a; from <= b; from += 32) {
      const uint64_t to = std::min(b, from + 31);
      grpc::ClientContext ctx;
      WithToken(&ctx, ann.token);
      v1::ListMessagesRequest req;
      req.set_room("firehose");
      req.set_after(from - 1);
      req.set_n(static_cast<uint32_t>(to - from + 1));
      v1::ListMessagesResponse page;
      grpc::Status status = messages->ListMessages(&ctx, req, &page);
      ASSERT_TRUE(status.ok()) << status.error_message();
      ASSERT_EQ(page.messages_size(), static_cast<int>(to - from + 1));
      EXPECT_EQ(page.messages(0).sequence(), from);
    }
    for (uint64_t seq = a; seq <= b; ++seq) delivered.insert(seq);
  }
  EXPECT_EQ(delivered.size(), want);
  EXPECT_EQ(*delivered.begin(), first_seq);
  EXPECT_EQ(*delivered.rbegin(), last);
}

}  // namespace
}  // namespace parley::api
