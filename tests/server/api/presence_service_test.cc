// PresenceService over real gRPC on loopback: who is online in a room (and
// how that changes as streams open and end), typing notices to rooms and to
// users' inboxes, read markers and the unread counts RoomService shows, and
// each error's code, reason and field.
#include "server/api/presence_service.h"

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "parley/v1/chat.grpc.pb.h"
#include "parley/v1/messages.grpc.pb.h"
#include "parley/v1/presence.grpc.pb.h"
#include "parley/v1/rooms.grpc.pb.h"
#include "tests/server/api/test_server.h"

namespace parley::api {
namespace {

using parley::testing::Call;
using parley::testing::Failed;
using parley::testing::Outcome;
using parley::testing::SignUp;
using parley::testing::Succeeded;
using parley::testing::TestServer;
using parley::testing::TestUser;
using parley::testing::WithToken;
using v1::PresenceService;

// An open Subscribe call.
struct Stream {
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReader<v1::SubscribeResponse>> reader;

  // Reads until an event for which `match` is true arrives and returns it;
  // fails the test if the stream ends first (its deadline bounds the wait).
  v1::Event ReadUntil(const std::function<bool(const v1::Event&)>& match) {
    v1::SubscribeResponse resp;
    while (reader->Read(&resp)) {
      for (const v1::Event& e : resp.events()) {
        if (match(e)) return e;
      }
    }
    ADD_FAILURE() << "the stream ended before the awaited event";
    return v1::Event();
  }
  ~Stream() { ctx.TryCancel(); }
};

bool IsKind(const v1::Event& e, v1::EventKind kind, const std::string& who) {
  return e.kind() == kind && e.sender() == who;
}

class PresenceServiceTest : public ::testing::Test {
 protected:
  explicit PresenceServiceTest(ServerOptions options = {})
      : server_(std::move(options)),
        channel_(server_.NewChannel()),
        presence_(PresenceService::NewStub(channel_)),
        rooms_(v1::RoomService::NewStub(channel_)),
        messages_(v1::MessageService::NewStub(channel_)),
        chat_(v1::ChatService::NewStub(channel_)) {}

  v1::Room CreateRoom(const TestUser& owner, const std::string& name,
                      v1::Visibility visibility = v1::VISIBILITY_PUBLIC,
                      const std::string& password = "") {
    v1::CreateRoomRequest req;
    req.set_name(name);
    req.set_visibility(visibility);
    req.set_password(password);
    v1::Room room;
    EXPECT_TRUE(Succeeded(Call(rooms_.get(), &v1::RoomService::Stub::CreateRoom,
                               owner.token, req, &room)));
    return room;
  }

  // A room token named `name` for public room `room`.
  std::string RoomToken(const std::string& room, const std::string& name) {
    v1::CreateRoomTokenRequest req;
    req.set_room(room);
    req.set_name(name);
    v1::RoomToken token;
    EXPECT_TRUE(Succeeded(Call(rooms_.get(),
                               &v1::RoomService::Stub::CreateRoomToken, "",
                               req, &token)));
    return token.token();
  }

  v1::Event Post(const TestUser& who, const std::string& room,
                 const std::string& text) {
    v1::PostMessageRequest req;
    req.set_room(room);
    req.set_text(text);
    v1::Event event;
    EXPECT_TRUE(Succeeded(Call(messages_.get(),
                               &v1::MessageService::Stub::PostMessage,
                               who.token, req, &event)));
    return event;
  }

  // A stream on `room` (or, when empty, the caller's inbox), in place once
  // this returns: its first write says so.
  std::unique_ptr<Stream> Subscribe(const std::string& token,
                                    const std::string& room) {
    auto stream = std::make_unique<Stream>();
    stream->ctx.set_deadline(std::chrono::system_clock::now() +
                             std::chrono::seconds(30));
    WithToken(&stream->ctx, token);
    v1::SubscribeRequest req;
    if (room.empty()) {
      req.set_direct_messages(true);
    } else {
      req.set_room(room);
    }
    stream->reader = chat_->Subscribe(&stream->ctx, req);
    v1::SubscribeResponse first;
    EXPECT_TRUE(stream->reader->Read(&first));
    return stream;
  }

  Outcome ListPresence(const std::string& token, const std::string& room,
                       v1::ListPresenceResponse* out) {
    v1::ListPresenceRequest req;
    req.set_room(room);
    return Call(presence_.get(), &PresenceService::Stub::ListPresence, token,
                req, out);
  }
  // The names ListPresence lists, in its order.
  std::vector<std::string> PresentNames(const std::string& token,
                                        const std::string& room) {
    v1::ListPresenceResponse resp;
    EXPECT_TRUE(Succeeded(ListPresence(token, room, &resp)));
    std::vector<std::string> names;
    for (const v1::PresentUser& u : resp.users()) names.push_back(u.name());
    return names;
  }

  Outcome Typing(const std::string& token, const std::string& room,
                 const std::string& user,
                 v1::SendTypingResponse* out = nullptr) {
    v1::SendTypingRequest req;
    req.set_room(room);
    req.set_user(user);
    v1::SendTypingResponse local;
    return Call(presence_.get(), &PresenceService::Stub::SendTyping, token,
                req, out != nullptr ? out : &local);
  }

  Outcome Mark(const std::string& token, const std::string& room,
               uint64_t sequence, v1::ReadMarker* out = nullptr) {
    v1::SetReadMarkerRequest req;
    req.set_room(room);
    req.set_sequence(sequence);
    v1::ReadMarker local;
    return Call(presence_.get(), &PresenceService::Stub::SetReadMarker, token,
                req, out != nullptr ? out : &local);
  }

  v1::Room GetRoom(const TestUser& who, const std::string& room) {
    v1::GetRoomRequest req;
    req.set_room(room);
    v1::Room out;
    EXPECT_TRUE(Succeeded(Call(rooms_.get(), &v1::RoomService::Stub::GetRoom,
                               who.token, req, &out)));
    return out;
  }
  // `room` as ListRooms shows it to `who`.
  v1::Room ListedRoom(const TestUser& who, const std::string& room_id) {
    v1::ListRoomsResponse resp;
    EXPECT_TRUE(Succeeded(Call(rooms_.get(),
                               &v1::RoomService::Stub::ListRooms, who.token,
                               v1::ListRoomsRequest(), &resp)));
    for (const v1::Room& r : resp.rooms()) {
      if (r.id() == room_id) return r;
    }
    ADD_FAILURE() << "room " << room_id << " not listed";
    return v1::Room();
  }

  TestServer server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<PresenceService::Stub> presence_;
  std::unique_ptr<v1::RoomService::Stub> rooms_;
  std::unique_ptr<v1::MessageService::Stub> messages_;
  std::unique_ptr<v1::ChatService::Stub> chat_;
};

// ---- ListPresence ----

TEST_F(PresenceServiceTest,
       ListsEveryoneWithAnOpenStreamOnceUntilTheirLastEnds) {
  TestUser ann = SignUp(server_, "ann");
  TestUser bob = SignUp(server_, "bob");
  CreateRoom(ann, "hall");
  const std::string guest = RoomToken("hall", "guest");
  EXPECT_TRUE(PresentNames(ann.token, "hall").empty());

  auto ann_first = Subscribe(ann.token, "hall");
  auto ann_second = Subscribe(ann.token, "hall");
  auto bobs = Subscribe(bob.token, "hall");
  auto guests = Subscribe(guest, "hall");
  v1::ListPresenceResponse resp;
  ASSERT_TRUE(Succeeded(ListPresence(guest, "hall", &resp)));  // a room token
  ASSERT_EQ(resp.users_size(), 3);  // ann once, however many streams
  EXPECT_EQ(resp.users(0).name(), "ann");
  EXPECT_EQ(resp.users(0).user_id(), ann.id);
  EXPECT_GT(resp.users(0).since_time().seconds(), 0);
  EXPECT_EQ(resp.users(1).name(), "bob");
  EXPECT_EQ(resp.users(2).name(), "guest");
  EXPECT_EQ(resp.users(2).user_id(), "");
  EXPECT_FALSE(resp.truncated());

  // One of ann's two streams ends: she is still there, and the others are
  // told she left only when her last stream ends (one leave, not two).
  int ann_leaves = 0;
  auto count_until = [&](const std::string& who) {
    return [&ann_leaves, who](const v1::Event& e) {
      if (IsKind(e, v1::EVENT_KIND_LEAVE, "ann")) ++ann_leaves;
      return IsKind(e, v1::EVENT_KIND_LEAVE, who);
    };
  };
  ann_second->ctx.TryCancel();
  EXPECT_EQ(PresentNames(ann.token, "hall"),
            (std::vector<std::string>{"ann", "bob", "guest"}));
  ann_first->ctx.TryCancel();
  bobs->ReadUntil(count_until("ann"));
  EXPECT_EQ(PresentNames(bob.token, "hall"),
            (std::vector<std::string>{"bob", "guest"}));
  // The guest leaves after both of ann's streams were gone: whatever the
  // server had to say about ann came before.
  guests->ctx.TryCancel();
  bobs->ReadUntil(count_until("guest"));
  EXPECT_EQ(ann_leaves, 1);
  EXPECT_EQ(PresentNames(bob.token, "hall"), (std::vector<std::string>{"bob"}));
}

TEST_F(PresenceServiceTest, JoinedLobbyClientsArePresentInTheLobby) {
  TestUser ann = SignUp(server_, "ann");
  {
    grpc::ClientContext ctx;
    v1::JoinRequest req;
    req.set_id("zed");
    v1::JoinResponse resp;
    ASSERT_TRUE(chat_->Join(&ctx, req, &resp).ok());
  }
  auto anns = Subscribe(ann.token, "lobby");
  v1::ListPresenceResponse resp;
  ASSERT_TRUE(Succeeded(ListPresence(ann.token, "lobby", &resp)));
  ASSERT_EQ(resp.users_size(), 2);
  EXPECT_EQ(resp.users(0).name(), "ann");
  EXPECT_EQ(resp.users(1).name(), "zed");
  EXPECT_EQ(resp.users(1).user_id(), "");
}

class SmallPresenceTest : public PresenceServiceTest {
 protected:
  static ServerOptions Options() {
    ServerOptions options;
    options.hub.presence_max_subscribers = 2;
    return options;
  }
  SmallPresenceTest() : PresenceServiceTest(Options()) {}
};

TEST_F(SmallPresenceTest, ListsAtMostPresenceMaxSubscribersAndSaysSo) {
  TestUser ann = SignUp(server_, "ann");
  TestUser bob = SignUp(server_, "bob");
  TestUser cat = SignUp(server_, "cat");
  CreateRoom(ann, "busy");
  auto a = Subscribe(ann.token, "busy");
  auto b = Subscribe(bob.token, "busy");
  auto c = Subscribe(cat.token, "busy");
  v1::ListPresenceResponse resp;
  ASSERT_TRUE(Succeeded(ListPresence(ann.token, "busy", &resp)));
  ASSERT_EQ(resp.users_size(), 2);
  EXPECT_EQ(resp.users(0).name(), "ann");
  EXPECT_EQ(resp.users(1).name(), "bob");
  EXPECT_TRUE(resp.truncated());
}

// ---- SendTyping ----

TEST_F(PresenceServiceTest, TypingReachesTheRoomsStreamsLiveAndIsNeverStored) {
  TestUser ann = SignUp(server_, "ann");
  TestUser bob = SignUp(server_, "bob");
  v1::Room room = CreateRoom(ann, "talk");
  auto bobs = Subscribe(bob.token, "talk");

  v1::SendTypingResponse sent;
  ASSERT_TRUE(Succeeded(Typing(ann.token, "talk", "", &sent)));
  v1::Event typing = bobs->ReadUntil([](const v1::Event& e) {
    return e.kind() == v1::EVENT_KIND_TYPING;
  });
  EXPECT_EQ(typing.sequence(), 0u);
  EXPECT_EQ(typing.sender(), "ann");
  EXPECT_EQ(typing.sender_id(), ann.id);
  EXPECT_EQ(typing.room_id(), room.id());
  EXPECT_EQ(typing.room(), "talk");
  EXPECT_EQ(typing.typing_expire_time().seconds(),
            sent.expire_time().seconds());
  EXPECT_EQ(typing.typing_expire_time().nanos(), sent.expire_time().nanos());
  // --typing_ttl (6 s by default) after the notice.
  EXPECT_EQ(typing.typing_expire_time().seconds() -
                typing.create_time().seconds(),
            6);

  // Not in history, and it took no sequence number.
  v1::ListMessagesRequest list;
  list.set_room("talk");
  v1::ListMessagesResponse history;
  ASSERT_TRUE(Succeeded(Call(messages_.get(),
                             &v1::MessageService::Stub::ListMessages,
                             bob.token, list, &history)));
  EXPECT_EQ(history.messages_size(), 0);
  EXPECT_EQ(Post(ann, "talk", "hi").sequence(), 1u);
}

TEST_F(PresenceServiceTest, ARoomTokenHolderTypesUnderTheTokensName) {
  TestUser bob = SignUp(server_, "bob");
  CreateRoom(bob, "open");
  auto bobs = Subscribe(bob.token, "open");
  ASSERT_TRUE(Succeeded(Typing(RoomToken("open", "visitor"), "open", "")));
  v1::Event typing = bobs->ReadUntil([](const v1::Event& e) {
    return e.kind() == v1::EVENT_KIND_TYPING;
  });
  EXPECT_EQ(typing.sender(), "visitor");
  EXPECT_EQ(typing.sender_id(), "");
}

TEST_F(PresenceServiceTest, TypingToAUserReachesOnlyTheirInbox) {
  TestUser ann = SignUp(server_, "ann");
  TestUser bob = SignUp(server_, "bob");
  TestUser eve = SignUp(server_, "eve");
  auto bob_inbox = Subscribe(bob.token, "");
  auto eve_inbox = Subscribe(eve.token, "");
  ASSERT_TRUE(Succeeded(Typing(ann.token, "", "bob")));
  v1::Event typing = bob_inbox->ReadUntil([](const v1::Event& e) {
    return e.kind() == v1::EVENT_KIND_TYPING;
  });
  EXPECT_EQ(typing.sequence(), 0u);
  EXPECT_EQ(typing.sender_id(), ann.id);
  EXPECT_EQ(typing.recipient_id(), bob.id);
  EXPECT_EQ(typing.recipient(), "bob");
  EXPECT_TRUE(typing.has_typing_expire_time());

  // Had eve's inbox got the notice, it would come before this message.
  v1::SendDirectMessageRequest dm;
  dm.set_user("eve");
  dm.set_text("hello eve");
  v1::Event sent;
  ASSERT_TRUE(Succeeded(Call(messages_.get(),
                             &v1::MessageService::Stub::SendDirectMessage,
                             ann.token, dm, &sent)));
  v1::Event first = eve_inbox->ReadUntil([](const v1::Event&) { return true; });
  EXPECT_EQ(first.kind(), v1::EVENT_KIND_MESSAGE);
  EXPECT_EQ(first.text(), "hello eve");
}

// ---- SetReadMarker and the unread counts ----

TEST_F(PresenceServiceTest,
       TheReadMarkerMovesForwardOnlyAndCountsOthersLiveMessages) {
  TestUser ann = SignUp(server_, "ann");
  TestUser bob = SignUp(server_, "bob");
  v1::Room room = CreateRoom(ann, "news");
  Post(bob, "news", "1");
  Post(bob, "news", "2");
  Post(ann, "news", "3 (ann's own)");
  Post(bob, "news", "4");
  v1::Event doomed = Post(bob, "news", "5 (deleted)");
  {
    v1::DeleteMessageRequest req;
    req.set_room("news");
    req.set_message(doomed.id());
    v1::Event out;
    ASSERT_TRUE(Succeeded(Call(messages_.get(),
                               &v1::MessageService::Stub::DeleteMessage,
                               bob.token, req, &out)));
  }
  // Never opened: nothing counted unread.
  v1::Room before = GetRoom(ann, "news");
  EXPECT_EQ(before.read_sequence(), 0u);
  EXPECT_EQ(before.unread_count(), 0u);

  v1::ReadMarker marker;
  ASSERT_TRUE(Succeeded(Mark(ann.token, "news", 1, &marker)));
  EXPECT_EQ(marker.room_id(), room.id());
  EXPECT_EQ(marker.sequence(), 1u);
  EXPECT_EQ(marker.unread_count(), 2u);  // 2 and 4
  ASSERT_TRUE(Succeeded(Mark(ann.token, room.id(), 0, &marker)));
  EXPECT_EQ(marker.sequence(), 1u);  // never backward
  EXPECT_EQ(marker.unread_count(), 2u);

  v1::Room got = GetRoom(ann, "news");
  EXPECT_EQ(got.read_sequence(), 1u);
  EXPECT_EQ(got.unread_count(), 2u);
  v1::Room listed = ListedRoom(ann, room.id());
  EXPECT_EQ(listed.read_sequence(), 1u);
  EXPECT_EQ(listed.unread_count(), 2u);
  // Markers are per user.
  EXPECT_EQ(GetRoom(bob, "news").read_sequence(), 0u);

  // Past the end: the last sequence number (the deletion's, 6).
  ASSERT_TRUE(Succeeded(Mark(ann.token, "news", 1000, &marker)));
  EXPECT_EQ(marker.sequence(), 6u);
  EXPECT_EQ(marker.unread_count(), 0u);
  Post(bob, "news", "7");
  got = GetRoom(ann, "news");
  EXPECT_EQ(got.read_sequence(), 6u);
  EXPECT_EQ(got.unread_count(), 1u);
}

TEST_F(PresenceServiceTest, OnlySignedInUsersKeepReadMarkers) {
  TestUser ann = SignUp(server_, "ann");
  CreateRoom(ann, "kept");
  EXPECT_TRUE(Failed(Mark(RoomToken("kept", "guest"), "kept", 1),
                     grpc::StatusCode::PERMISSION_DENIED,
                     "USER_TOKEN_REQUIRED"));
  EXPECT_TRUE(Failed(Mark("", "kept", 1), grpc::StatusCode::UNAUTHENTICATED,
                     "TOKEN_MISSING"));
}

// ---- Errors ----

TEST_F(PresenceServiceTest, SendTypingNeedsExactlyOneOfRoomAndUser) {
  TestUser ann = SignUp(server_, "ann");
  CreateRoom(ann, "either");
  EXPECT_TRUE(Failed(Typing(ann.token, "", ""),
                     grpc::StatusCode::INVALID_ARGUMENT, "ONE_TARGET",
                     "room"));
  EXPECT_TRUE(Failed(Typing(ann.token, "either", "ann"),
                     grpc::StatusCode::INVALID_ARGUMENT, "ONE_TARGET",
                     "user"));
  EXPECT_TRUE(Failed(Typing("", "", ""), grpc::StatusCode::UNAUTHENTICATED,
                     "TOKEN_MISSING"));
  EXPECT_TRUE(Failed(Typing(ann.token, "", "nobody"),
                     grpc::StatusCode::NOT_FOUND, "USER_NOT_FOUND", "user"));
  EXPECT_TRUE(Failed(Typing(RoomToken("either", "guest"), "", "ann"),
                     grpc::StatusCode::PERMISSION_DENIED,
                     "USER_TOKEN_REQUIRED"));
}

TEST_F(PresenceServiceTest, EveryMethodNeedsReadAccessToTheRoom) {
  TestUser ann = SignUp(server_, "ann");
  TestUser eve = SignUp(server_, "eve");
  CreateRoom(ann, "priv", v1::VISIBILITY_PRIVATE, "pw");
  CreateRoom(ann, "hid", v1::VISIBILITY_HIDDEN, "pw");
  CreateRoom(ann, "pub");
  const std::string pub_token = RoomToken("pub", "guest");
  v1::ListPresenceResponse presence;
  using Method = std::function<Outcome(const std::string&, const std::string&)>;
  const std::vector<std::pair<std::string, Method>> methods = {
      {"ListPresence",
       [&](const std::string& token, const std::string& room) {
         return ListPresence(token, room, &presence);
       }},
      {"SendTyping",
       [&](const std::string& token, const std::string& room) {
         return Typing(token, room, "");
       }},
      {"SetReadMarker",
       [&](const std::string& token, const std::string& room) {
         return Mark(token, room, 1);
       }},
  };
  for (const auto& [name, call] : methods) {
    SCOPED_TRACE(name);
    EXPECT_TRUE(Failed(call(eve.token, "priv"),
                       grpc::StatusCode::PERMISSION_DENIED, "NOT_A_MEMBER"));
    EXPECT_TRUE(Failed(call(eve.token, "hid"), grpc::StatusCode::NOT_FOUND,
                       "ROOM_NOT_FOUND", "room"));
    EXPECT_TRUE(Failed(call(eve.token, "no-such-room"),
                       grpc::StatusCode::NOT_FOUND, "ROOM_NOT_FOUND", "room"));
    EXPECT_TRUE(Failed(call("", "pub"), grpc::StatusCode::UNAUTHENTICATED,
                       "TOKEN_MISSING"));
    EXPECT_TRUE(Succeeded(call(ann.token, "priv")));  // the owner may
  }
  // A room token opens its own room only.
  EXPECT_TRUE(Failed(ListPresence(pub_token, "priv", &presence),
                     grpc::StatusCode::NOT_FOUND, "ROOM_NOT_FOUND", "room"));
  EXPECT_TRUE(Failed(ListPresence(ann.token, "", &presence),
                     grpc::StatusCode::INVALID_ARGUMENT, "ROOM_REQUIRED",
                     "room"));
}

// With a leave grace, the server's own timer announces the leave once the
// grace has run out.
class GracePresenceTest : public PresenceServiceTest {
 protected:
  static ServerOptions Options() {
    ServerOptions options;
    options.hub.presence_leave_grace = absl::Milliseconds(200);
    return options;
  }
  GracePresenceTest() : PresenceServiceTest(Options()) {}
};

TEST_F(GracePresenceTest, TheLeaveComesAfterTheGrace) {
  TestUser ann = SignUp(server_, "ann");
  TestUser bob = SignUp(server_, "bob");
  CreateRoom(ann, "hall");
  auto anns = Subscribe(ann.token, "hall");
  auto bobs = Subscribe(bob.token, "hall");
  const absl::Time ended = absl::Now();
  bobs->ctx.TryCancel();
  anns->ReadUntil([](const v1::Event& e) {
    return IsKind(e, v1::EVENT_KIND_LEAVE, "bob");
  });
  EXPECT_GE(absl::Now() - ended, absl::Milliseconds(200));
  EXPECT_EQ(PresentNames(ann.token, "hall"), (std::vector<std::string>{"ann"}));
}

}  // namespace
}  // namespace parley::api
