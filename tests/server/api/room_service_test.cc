// RoomService over real gRPC on loopback (a whole server on a fresh SQLite
// directory): rooms, visibility and passwords, membership and its events,
// access checks and room tokens; each error's code, reason and field; and
// what the hub is told (streams closed, logs dropped, member events).
#include "server/api/room_service.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "parley/v1/accounts.grpc.pb.h"
#include "parley/v1/rooms.grpc.pb.h"
#include "server/api/account_service.h"
#include "server/model/ids.h"
#include "server/store/store.h"
#include "tests/server/api/test_server.h"

namespace parley::api {
namespace {

using parley::testing::Call;
using parley::testing::Failed;
using parley::testing::kAny;
using parley::testing::NoHash;
using parley::testing::Outcome;
using parley::testing::Succeeded;
using parley::testing::Header;
using parley::testing::SignUp;
using parley::testing::TestServer;
using parley::testing::TestUser;
using parley::testing::WithToken;
using v1::RoomService;

v1::CreateRoomRequest NewRoom(const std::string& name,
                              v1::Visibility visibility = v1::VISIBILITY_PUBLIC,
                              const std::string& password = "") {
  v1::CreateRoomRequest req;
  req.set_name(name);
  req.set_visibility(visibility);
  req.set_password(password);
  return req;
}

class RoomServiceTest : public ::testing::Test {
 protected:
  explicit RoomServiceTest(ServerOptions options = {})
      : server_(std::move(options)),
        rooms_(RoomService::NewStub(server_.NewChannel())),
        users_(v1::UserService::NewStub(server_.NewChannel())) {}

  // Every call checks its response for password hashes.
  template <class Req, class Resp>
  Outcome Rooms(grpc::Status (RoomService::Stub::*method)(
                    grpc::ClientContext*, const Req&, Resp*),
                const std::string& token, const Req& req, Resp* resp) {
    Outcome o = Call(rooms_.get(), method, token, req, resp);
    EXPECT_TRUE(NoHash(*resp));
    return o;
  }

  Outcome Create(const std::string& token, const v1::CreateRoomRequest& req,
                 v1::Room* room = nullptr) {
    v1::Room local;
    return Rooms(&RoomService::Stub::CreateRoom, token, req,
                 room != nullptr ? room : &local);
  }
  // Creates a room and fails the test unless it worked.
  v1::Room MustCreate(const TestUser& owner, const v1::CreateRoomRequest& req) {
    v1::Room room;
    Outcome o = Create(owner.token, req, &room);
    EXPECT_TRUE(Succeeded(o)) << req.name();
    return room;
  }
  Outcome Get(const std::string& token, const std::string& room,
              v1::Room* out = nullptr) {
    v1::GetRoomRequest req;
    req.set_room(room);
    v1::Room local;
    return Rooms(&RoomService::Stub::GetRoom, token, req,
                 out != nullptr ? out : &local);
  }
  Outcome List(const std::string& token, uint32_t page_size,
               const std::string& page_token, v1::ListRoomsResponse* out) {
    v1::ListRoomsRequest req;
    req.set_page_size(page_size);
    req.set_page_token(page_token);
    return Rooms(&RoomService::Stub::ListRooms, token, req, out);
  }
  // The names of every room `token` lists, page by page.
  std::vector<std::string> ListNames(const std::string& token) {
    std::vector<std::string> names;
    std::string page_token;
    do {
      v1::ListRoomsResponse page;
      EXPECT_TRUE(Succeeded(List(token, 2, page_token, &page)));
      for (const v1::Room& r : page.rooms()) names.push_back(r.name());
      page_token = page.next_page_token();
    } while (!page_token.empty() && names.size() < 100);
    return names;
  }
  Outcome Update(const std::string& token, const v1::UpdateRoomRequest& req,
                 v1::Room* out = nullptr) {
    v1::Room local;
    return Rooms(&RoomService::Stub::UpdateRoom, token, req,
                 out != nullptr ? out : &local);
  }
  Outcome Delete(const std::string& token, const std::string& room) {
    v1::DeleteRoomRequest req;
    req.set_room(room);
    v1::DeleteRoomResponse resp;
    return Rooms(&RoomService::Stub::DeleteRoom, token, req, &resp);
  }
  Outcome Add(const std::string& token, const std::string& room,
              const std::string& user, const std::string& password = "",
              v1::Member* out = nullptr) {
    v1::AddMemberRequest req;
    req.set_room(room);
    req.set_user(user);
    req.set_password(password);
    v1::Member local;
    return Rooms(&RoomService::Stub::AddMember, token, req,
                 out != nullptr ? out : &local);
  }
  Outcome Remove(const std::string& token, const std::string& room,
                 const std::string& user) {
    v1::RemoveMemberRequest req;
    req.set_room(room);
    req.set_user(user);
    v1::RemoveMemberResponse resp;
    return Rooms(&RoomService::Stub::RemoveMember, token, req, &resp);
  }
  Outcome Members(const std::string& token, const std::string& room,
                  v1::ListMembersResponse* out) {
    v1::ListMembersRequest req;
    req.set_room(room);
    return Rooms(&RoomService::Stub::ListMembers, token, req, out);
  }
  Outcome Access(const std::string& token, const std::string& room,
                 const std::string& user, v1::CheckAccessResponse* out) {
    v1::CheckAccessRequest req;
    req.set_room(room);
    req.set_user(user);
    return Rooms(&RoomService::Stub::CheckAccess, token, req, out);
  }
  Outcome RoomToken(const std::string& room, const std::string& secret,
                    const std::string& name, v1::RoomToken* out = nullptr) {
    v1::CreateRoomTokenRequest req;
    req.set_room(room);
    req.set_secret(secret);
    req.set_name(name);
    v1::RoomToken local;
    return Rooms(&RoomService::Stub::CreateRoomToken, "", req,
                 out != nullptr ? out : &local);
  }
  Outcome RenewRoomToken(const std::string& token, const std::string& room,
                         v1::RoomToken* out = nullptr) {
    v1::RenewRoomTokenRequest req;
    req.set_room(room);
    v1::RoomToken local;
    return Rooms(&RoomService::Stub::RenewRoomToken, token, req,
                 out != nullptr ? out : &local);
  }

  // A channel on `room`'s log, as a subscriber `user_id` (no presence).
  std::shared_ptr<chat::Channel> Watch(const std::string& room,
                                       const std::string& user_id = "") {
    chat::Subscriber who;
    who.user_id = user_id;
    auto sub = server_.hub().Subscribe(room, who);
    EXPECT_TRUE(sub.ok()) << sub.status();
    return sub.ok() ? sub->channel : nullptr;
  }

  TestServer server_;
  std::unique_ptr<RoomService::Stub> rooms_;
  std::unique_ptr<v1::UserService::Stub> users_;
};

ServerOptions WithAdmin() {
  ServerOptions options;
  options.admin_users = {"root"};
  return options;
}

class RoomServiceAdminTest : public RoomServiceTest {
 protected:
  RoomServiceAdminTest() : RoomServiceTest(WithAdmin()) {}
};

// ---- CreateRoom ----

TEST_F(RoomServiceTest, CreateRoomReturnsTheRoomWith201AndLocation) {
  TestUser alice = SignUp(server_, "alice");
  v1::CreateRoomRequest req;
  req.set_name("general");
  req.set_description("Talk about\nanything.");
  v1::Room room;
  Outcome o = Create(alice.token, req, &room);
  ASSERT_TRUE(Succeeded(o));
  EXPECT_EQ(o.http_code, "201");
  EXPECT_EQ(o.location, "/v1/rooms/" + room.id());
  EXPECT_EQ(room.id().size(), 36u);
  EXPECT_EQ(room.name(), "general");
  EXPECT_EQ(room.description(), "Talk about\nanything.");
  EXPECT_EQ(room.visibility(), v1::VISIBILITY_PUBLIC);  // Unspecified.
  EXPECT_EQ(room.owner_id(), alice.id);
  EXPECT_FALSE(room.password_protected());
  EXPECT_GT(room.create_time().seconds(), 0);
  EXPECT_EQ(room.member_count(), 1u);
  EXPECT_EQ(room.last_sequence(), 0u);

  v1::Room read;
  ASSERT_TRUE(Succeeded(Get(alice.token, room.id(), &read)));
  EXPECT_EQ(read.create_time().seconds(), room.create_time().seconds());
  EXPECT_EQ(read.create_time().nanos(), room.create_time().nanos());
  EXPECT_EQ(read.member_count(), 1u);

  // The owner is its first member.
  v1::ListMembersResponse members;
  ASSERT_TRUE(Succeeded(Members(alice.token, room.id(), &members)));
  ASSERT_EQ(members.members_size(), 1);
  EXPECT_EQ(members.members(0).user().id(), alice.id);
  EXPECT_EQ(members.members(0).role(), "owner");
}

TEST_F(RoomServiceTest, SeedTwoTitleStandsInForTheName) {
  TestUser alice = SignUp(server_, "alice");
  v1::CreateRoomRequest req;
  req.set_title("Book club");
  req.set_visibility(v1::VISIBILITY_PRIVATE);
  req.set_password("s3cret");
  v1::Room room;
  ASSERT_TRUE(Succeeded(Create(alice.token, req, &room)));
  EXPECT_EQ(room.name(), "Book club");
  EXPECT_EQ(room.visibility(), v1::VISIBILITY_PRIVATE);
  EXPECT_TRUE(room.password_protected());
}

TEST_F(RoomServiceTest, CreateRoomRejectsBadInputNamingTheField) {
  TestUser alice = SignUp(server_, "alice");
  struct Case {
    v1::CreateRoomRequest req;
    std::string reason, field;
  };
  std::vector<Case> cases = {
      {NewRoom(""), "INVALID_ROOM_NAME", "name"},
      {NewRoom(std::string(101, 'r')), "INVALID_ROOM_NAME", "name"},
      {NewRoom("bell\a"), "INVALID_ROOM_NAME", "name"},
      {NewRoom("   "), "INVALID_ROOM_NAME", "name"},
      {NewRoom("123e4567-e89b-42d3-a456-426614174000"), "INVALID_ROOM_NAME",
       "name"},
      {NewRoom("private", v1::VISIBILITY_PRIVATE), "PASSWORD_REQUIRED",
       "password"},
      {NewRoom("hidden", v1::VISIBILITY_HIDDEN), "PASSWORD_REQUIRED",
       "password"},
      {NewRoom("public", v1::VISIBILITY_PUBLIC, "pw"), "PASSWORD_NOT_ALLOWED",
       "password"},
      {NewRoom("long", v1::VISIBILITY_PRIVATE, std::string(257, 'p')),
       "PASSWORD_TOO_LONG", "password"},
      {NewRoom("odd", static_cast<v1::Visibility>(7)), "INVALID_VISIBILITY",
       "visibility"},
      {NewRoom("bad\xFF"), "INVALID_UTF8", "name"},
  };
  // U+0000 in any string: refused by both stores alike (PostgreSQL's text
  // cannot hold it).
  Case nul_description{NewRoom("nul"), "NUL_CHARACTER", "description"};
  nul_description.req.set_description(std::string("a\0b", 3));
  cases.push_back(nul_description);
  cases.push_back({NewRoom(std::string("nul\0name", 8)), "NUL_CHARACTER", "name"});
  Case long_description{NewRoom("described"), "INVALID_DESCRIPTION",
                        "description"};
  long_description.req.set_description(std::string(1001, 'd'));
  cases.push_back(long_description);
  Case bad_title{NewRoom(""), "INVALID_ROOM_NAME", "title"};
  bad_title.req.set_title(std::string(101, 't'));
  cases.push_back(bad_title);

  for (const Case& c : cases) {
    EXPECT_TRUE(Failed(Create(alice.token, c.req),
                       grpc::StatusCode::INVALID_ARGUMENT, c.reason, c.field))
        << c.req.ShortDebugString();
  }
  // At the limits: 100 characters (not bytes) of name, 1000 of description.
  std::string name;
  for (int i = 0; i < 100; ++i) name += "\xC3\xA9";
  v1::CreateRoomRequest longest = NewRoom(name);
  longest.set_description(std::string(1000, 'd'));
  EXPECT_TRUE(Succeeded(Create(alice.token, longest)));
}

TEST_F(RoomServiceTest, CreateRoomNeedsAUserTokenAndAFreeName) {
  TestUser alice = SignUp(server_, "alice");
  EXPECT_TRUE(Failed(Create("", NewRoom("general")),
                     grpc::StatusCode::UNAUTHENTICATED, "TOKEN_MISSING"));
  EXPECT_TRUE(Failed(Create("garbage", NewRoom("general")),
                     grpc::StatusCode::UNAUTHENTICATED, kAny));
  ASSERT_TRUE(Succeeded(Create(alice.token, NewRoom("general"))));
  EXPECT_TRUE(Failed(Create(alice.token, NewRoom("general")),
                     grpc::StatusCode::ALREADY_EXISTS, "ROOM_NAME_TAKEN",
                     "name"));
  EXPECT_TRUE(Failed(Create(alice.token, NewRoom("lobby")),
                     grpc::StatusCode::ALREADY_EXISTS, "ROOM_NAME_TAKEN",
                     "name"));

  v1::RoomToken room_token;
  ASSERT_TRUE(Succeeded(RoomToken("general", "", "guest", &room_token)));
  EXPECT_TRUE(Failed(Create(room_token.token(), NewRoom("other")),
                     grpc::StatusCode::PERMISSION_DENIED,
                     "USER_TOKEN_REQUIRED"));
  v1::ListRoomsResponse listed;
  EXPECT_TRUE(Failed(List(room_token.token(), 0, "", &listed),
                     grpc::StatusCode::PERMISSION_DENIED,
                     "USER_TOKEN_REQUIRED"));
}

// ---- GetRoom / ListRooms: who sees what ----

TEST_F(RoomServiceTest, HiddenRoomsAreNotFoundToNonMembers) {
  TestUser alice = SignUp(server_, "alice");
  TestUser bob = SignUp(server_, "bob");
  v1::Room pub = MustCreate(alice, NewRoom("pub"));
  v1::Room priv = MustCreate(alice, NewRoom("priv", v1::VISIBILITY_PRIVATE,
                                            "priv-pw"));
  v1::Room hid =
      MustCreate(alice, NewRoom("hid", v1::VISIBILITY_HIDDEN, "hid-pw"));

  // Bob sees the public and private ones, by id or name.
  for (const v1::Room& r : {pub, priv}) {
    for (const std::string& name : {r.id(), r.name()}) {
      v1::Room got;
      ASSERT_TRUE(Succeeded(Get(bob.token, name, &got))) << name;
      EXPECT_EQ(got.id(), r.id());
      EXPECT_EQ(got.member_count(), 1u);
    }
  }
  // The hidden one does not exist for him, by id or name, in any call.
  for (const std::string& name : {hid.id(), hid.name()}) {
    EXPECT_TRUE(Failed(Get(bob.token, name), grpc::StatusCode::NOT_FOUND,
                       "ROOM_NOT_FOUND", "room"));
    v1::CheckAccessResponse access;
    EXPECT_TRUE(Failed(Access(bob.token, name, "me", &access),
                       grpc::StatusCode::NOT_FOUND, "ROOM_NOT_FOUND", "room"));
    v1::ListMembersResponse members;
    EXPECT_TRUE(Failed(Members(bob.token, name, &members),
                       grpc::StatusCode::NOT_FOUND, "ROOM_NOT_FOUND", "room"));
  }
  EXPECT_EQ(ListNames(bob.token),
            (std::vector<std::string>{"priv", "pub"}));
  // Its owner sees it everywhere.
  v1::Room got;
  ASSERT_TRUE(Succeeded(Get(alice.token, "hid", &got)));
  EXPECT_EQ(got.visibility(), v1::VISIBILITY_HIDDEN);
  EXPECT_TRUE(got.password_protected());
  EXPECT_EQ(ListNames(alice.token),
            (std::vector<std::string>{"hid", "priv", "pub"}));
  // A missing room looks the same as the hidden one.
  EXPECT_TRUE(Failed(Get(bob.token, "nowhere"), grpc::StatusCode::NOT_FOUND,
                     "ROOM_NOT_FOUND", "room"));
  EXPECT_TRUE(Failed(Get(bob.token, ""), grpc::StatusCode::INVALID_ARGUMENT,
                     kAny, "room"));
}

TEST_F(RoomServiceTest, PrivateRoomsAreClosedToNonMembers) {
  TestUser alice = SignUp(server_, "alice");
  TestUser bob = SignUp(server_, "bob");
  MustCreate(alice, NewRoom("priv", v1::VISIBILITY_PRIVATE, "priv-pw"));
  v1::ListMembersResponse members;
  EXPECT_TRUE(Failed(Members(bob.token, "priv", &members),
                     grpc::StatusCode::PERMISSION_DENIED, "NOT_A_MEMBER"));
  v1::CheckAccessResponse access;
  ASSERT_TRUE(Succeeded(Access(bob.token, "priv", "me", &access)));
  EXPECT_FALSE(access.allowed());
  EXPECT_EQ(access.role(), "");
  EXPECT_EQ(access.reason(), "not a member");
}

TEST_F(RoomServiceTest, ListRoomsPagesByNameAndRefusesBadTokens) {
  TestUser alice = SignUp(server_, "alice");
  for (const char* name : {"e", "c", "a", "d", "b"}) {
    MustCreate(alice, NewRoom(name));
  }
  EXPECT_EQ(ListNames(alice.token),
            (std::vector<std::string>{"a", "b", "c", "d", "e"}));
  v1::ListRoomsResponse page;
  ASSERT_TRUE(Succeeded(List(alice.token, 0, "", &page)));
  EXPECT_EQ(page.rooms_size(), 5);
  EXPECT_TRUE(page.next_page_token().empty());
  EXPECT_EQ(page.rooms(0).member_count(), 1u);

  EXPECT_TRUE(Failed(List(alice.token, 0, "@@", &page),
                     grpc::StatusCode::INVALID_ARGUMENT, "INVALID_PAGE_TOKEN",
                     "page_token"));
  EXPECT_TRUE(Failed(List(alice.token, 0, EncodePageToken("users", "a"),
                          &page),
                     grpc::StatusCode::INVALID_ARGUMENT, "INVALID_PAGE_TOKEN",
                     "page_token"));
  EXPECT_TRUE(Failed(List(alice.token, 5000, "", &page),
                     grpc::StatusCode::INVALID_ARGUMENT, kAny, "page_size"));
  EXPECT_TRUE(Failed(List("", 0, "", &page),
                     grpc::StatusCode::UNAUTHENTICATED, "TOKEN_MISSING"));
}

// ---- UpdateRoom ----

TEST_F(RoomServiceTest, TheOwnerUpdatesARoom) {
  TestUser alice = SignUp(server_, "alice");
  TestUser bob = SignUp(server_, "bob");
  v1::Room room = MustCreate(alice, NewRoom("general"));
  MustCreate(alice, NewRoom("taken"));

  v1::UpdateRoomRequest req;
  req.set_room("general");
  req.set_name("renamed");
  req.set_description("new words");
  v1::Room updated;
  ASSERT_TRUE(Succeeded(Update(alice.token, req, &updated)));
  EXPECT_EQ(updated.id(), room.id());
  EXPECT_EQ(updated.name(), "renamed");
  EXPECT_EQ(updated.description(), "new words");
  EXPECT_EQ(updated.member_count(), 1u);
  v1::Room read;
  ASSERT_TRUE(Succeeded(Get(bob.token, room.id(), &read)));
  EXPECT_EQ(read.name(), "renamed");
  EXPECT_TRUE(Failed(Get(bob.token, "general"), grpc::StatusCode::NOT_FOUND,
                     "ROOM_NOT_FOUND"));

  v1::UpdateRoomRequest bobs;
  bobs.set_room(room.id());
  bobs.set_description("mine now");
  EXPECT_TRUE(Failed(Update(bob.token, bobs),
                     grpc::StatusCode::PERMISSION_DENIED, "NOT_ROOM_OWNER"));

  req.set_room(room.id());
  req.set_name("taken");
  EXPECT_TRUE(Failed(Update(alice.token, req),
                     grpc::StatusCode::ALREADY_EXISTS, "ROOM_NAME_TAKEN",
                     "name"));
  req.set_name("");
  EXPECT_TRUE(Failed(Update(alice.token, req),
                     grpc::StatusCode::INVALID_ARGUMENT, "INVALID_ROOM_NAME",
                     "name"));
  v1::UpdateRoomRequest vis;
  vis.set_room(room.id());
  vis.set_visibility(v1::VISIBILITY_UNSPECIFIED);
  EXPECT_TRUE(Failed(Update(alice.token, vis),
                     grpc::StatusCode::INVALID_ARGUMENT, "INVALID_VISIBILITY",
                     "visibility"));
}

TEST_F(RoomServiceTest, VisibilityAndPasswordChangeTogether) {
  TestUser alice = SignUp(server_, "alice");
  TestUser bob = SignUp(server_, "bob");
  v1::Room room = MustCreate(alice, NewRoom("general"));
  // Bob listens to the public room.
  std::shared_ptr<chat::Channel> bobs_stream = Watch(room.id(), bob.id);
  ASSERT_NE(bobs_stream, nullptr);
  // Alice, the owner and so a member, too.
  std::shared_ptr<chat::Channel> alices_stream = Watch(room.id(), alice.id);
  ASSERT_NE(alices_stream, nullptr);

  v1::UpdateRoomRequest req;
  req.set_room(room.id());
  req.set_visibility(v1::VISIBILITY_PRIVATE);
  EXPECT_TRUE(Failed(Update(alice.token, req),
                     grpc::StatusCode::INVALID_ARGUMENT, "PASSWORD_REQUIRED",
                     "password"));
  EXPECT_EQ(bobs_stream->Take(10).closed, chat::CloseReason::kOpen);

  v1::UpdateRoomRequest pw_on_public;
  pw_on_public.set_room(room.id());
  pw_on_public.set_password("pw");
  EXPECT_TRUE(Failed(Update(alice.token, pw_on_public),
                     grpc::StatusCode::INVALID_ARGUMENT,
                     "PASSWORD_NOT_ALLOWED", "password"));

  req.set_password("now-private");
  v1::Room updated;
  ASSERT_TRUE(Succeeded(Update(alice.token, req, &updated)));
  EXPECT_EQ(updated.visibility(), v1::VISIBILITY_PRIVATE);
  EXPECT_TRUE(updated.password_protected());
  // No longer public: open streams end and must subscribe again.
  EXPECT_EQ(bobs_stream->Take(10).closed, chat::CloseReason::kRemoved);
  EXPECT_EQ(alices_stream->Take(10).closed, chat::CloseReason::kOpen);
  EXPECT_TRUE(Failed(Add(bob.token, room.id(), "me", "wrong"),
                     grpc::StatusCode::PERMISSION_DENIED, "WRONG_PASSWORD",
                     "password"));

  // Private to hidden keeps the password set before.
  v1::UpdateRoomRequest hide;
  hide.set_room(room.id());
  hide.set_visibility(v1::VISIBILITY_HIDDEN);
  ASSERT_TRUE(Succeeded(Update(alice.token, hide, &updated)));
  EXPECT_EQ(updated.visibility(), v1::VISIBILITY_HIDDEN);
  EXPECT_TRUE(Failed(Get(bob.token, room.id()), grpc::StatusCode::NOT_FOUND,
                     "ROOM_NOT_FOUND"));
  // Removing the password of a hidden room is refused.
  v1::UpdateRoomRequest clear;
  clear.set_room(room.id());
  clear.set_password("");
  EXPECT_TRUE(Failed(Update(alice.token, clear),
                     grpc::StatusCode::INVALID_ARGUMENT, "PASSWORD_REQUIRED",
                     "password"));
  ASSERT_TRUE(Succeeded(Add(bob.token, room.id(), "me", "now-private")));

  // Back to public: the password goes.
  v1::UpdateRoomRequest open;
  open.set_room(room.id());
  open.set_visibility(v1::VISIBILITY_PUBLIC);
  ASSERT_TRUE(Succeeded(Update(alice.token, open, &updated)));
  EXPECT_EQ(updated.visibility(), v1::VISIBILITY_PUBLIC);
  EXPECT_FALSE(updated.password_protected());
  v1::Room read;
  ASSERT_TRUE(Succeeded(Get(bob.token, room.id(), &read)));
  EXPECT_FALSE(read.password_protected());
}

TEST_F(RoomServiceTest, TheLobbyIsPermanent) {
  TestUser alice = SignUp(server_, "alice");
  v1::UpdateRoomRequest req;
  req.set_room("lobby");
  req.set_description("mine");
  EXPECT_TRUE(Failed(Update(alice.token, req),
                     grpc::StatusCode::FAILED_PRECONDITION,
                     "LOBBY_IS_PERMANENT"));
  EXPECT_TRUE(Failed(Delete(alice.token, std::string(model::kLobbyId)),
                     grpc::StatusCode::FAILED_PRECONDITION,
                     "LOBBY_IS_PERMANENT"));
  v1::Room lobby;
  ASSERT_TRUE(Succeeded(Get(alice.token, "lobby", &lobby)));
  EXPECT_EQ(lobby.id(), model::kLobbyId);
  EXPECT_EQ(lobby.owner_id(), "");
}

// ---- DeleteRoom ----

TEST_F(RoomServiceTest, TheOwnerDeletesARoomAndItsStreamsEnd) {
  TestUser alice = SignUp(server_, "alice");
  TestUser bob = SignUp(server_, "bob");
  v1::Room room = MustCreate(alice, NewRoom("doomed"));
  std::shared_ptr<chat::Channel> stream = Watch(room.id(), bob.id);
  ASSERT_NE(stream, nullptr);

  EXPECT_TRUE(Failed(Delete(bob.token, "doomed"),
                     grpc::StatusCode::PERMISSION_DENIED, "NOT_ROOM_OWNER"));
  EXPECT_TRUE(Failed(Delete(bob.token, "nowhere"), grpc::StatusCode::NOT_FOUND,
                     "ROOM_NOT_FOUND", "room"));
  ASSERT_TRUE(Succeeded(Delete(alice.token, "doomed")));
  EXPECT_EQ(stream->Take(10).closed, chat::CloseReason::kDeleted);
  EXPECT_TRUE(Failed(Get(alice.token, room.id()), grpc::StatusCode::NOT_FOUND,
                     "ROOM_NOT_FOUND", "room"));
  EXPECT_TRUE(Failed(Delete(alice.token, room.id()),
                     grpc::StatusCode::NOT_FOUND, "ROOM_NOT_FOUND", "room"));
  // The name is free again.
  v1::Room again = MustCreate(alice, NewRoom("doomed"));
  EXPECT_NE(again.id(), room.id());
}

TEST_F(RoomServiceAdminTest, AnAdminManagesEveryRoom) {
  TestUser root = SignUp(server_, "root");
  TestUser alice = SignUp(server_, "alice");
  TestUser bob = SignUp(server_, "bob");
  MustCreate(alice, NewRoom("hid", v1::VISIBILITY_HIDDEN, "hid-pw"));
  v1::Room seen;
  ASSERT_TRUE(Succeeded(Get(root.token, "hid", &seen)));
  // Adds anyone without the password, also to a hidden room.
  ASSERT_TRUE(Succeeded(Add(root.token, "hid", "bob")));
  ASSERT_TRUE(Succeeded(Get(bob.token, "hid")));
  ASSERT_TRUE(Succeeded(Remove(root.token, "hid", "bob")));
  EXPECT_TRUE(Failed(Remove(root.token, "hid", "alice"),
                     grpc::StatusCode::FAILED_PRECONDITION,
                     "OWNER_CANNOT_LEAVE", "user"));
  v1::UpdateRoomRequest req;
  req.set_room("hid");
  req.set_description("admin was here");
  ASSERT_TRUE(Succeeded(Update(root.token, req)));
  ASSERT_TRUE(Succeeded(Delete(root.token, "hid")));
  EXPECT_TRUE(Failed(Get(alice.token, "hid"), grpc::StatusCode::NOT_FOUND,
                     "ROOM_NOT_FOUND"));
}

// ---- Membership ----

TEST_F(RoomServiceTest, JoiningAPublicRoomIsOpenAndIdempotent) {
  TestUser alice = SignUp(server_, "alice");
  TestUser bob = SignUp(server_, "bob");
  v1::Room room = MustCreate(alice, NewRoom("general"));
  std::shared_ptr<chat::Channel> watcher = Watch(room.id());
  ASSERT_NE(watcher, nullptr);

  v1::Member member;
  ASSERT_TRUE(Succeeded(Add(bob.token, "general", "", "", &member)));
  EXPECT_EQ(member.room_id(), room.id());
  EXPECT_EQ(member.user().id(), bob.id);
  EXPECT_EQ(member.user().username(), "bob");
  EXPECT_EQ(member.role(), "member");
  EXPECT_GT(member.join_time().seconds(), 0);

  // The event was delivered before the call returned.
  chat::Channel::TakeResult taken = watcher->Take(10);
  ASSERT_EQ(taken.events.size(), 1u);
  const model::Event& added = *taken.events[0];
  EXPECT_EQ(added.kind, model::EventKind::kMemberAdded);
  EXPECT_EQ(added.sequence, 1u);
  EXPECT_EQ(added.room_id, room.id());
  EXPECT_EQ(added.room, "general");
  EXPECT_EQ(added.sender_id, bob.id);
  EXPECT_EQ(added.target_id, bob.id);
  EXPECT_EQ(added.sender, "bob");

  // Again: the same membership, no new event.
  v1::Member again;
  ASSERT_TRUE(Succeeded(Add(bob.token, room.id(), "me", "", &again)));
  EXPECT_EQ(again.join_time().seconds(), member.join_time().seconds());
  EXPECT_EQ(again.join_time().nanos(), member.join_time().nanos());
  EXPECT_TRUE(watcher->Take(10).events.empty());

  v1::Room read;
  ASSERT_TRUE(Succeeded(Get(bob.token, "general", &read)));
  EXPECT_EQ(read.member_count(), 2u);
  EXPECT_EQ(read.last_sequence(), 1u);

  v1::ListMembersResponse members;
  ASSERT_TRUE(Succeeded(Members(bob.token, "general", &members)));
  ASSERT_EQ(members.members_size(), 2);
  EXPECT_EQ(members.members(0).user().username(), "alice");
  EXPECT_EQ(members.members(0).role(), "owner");
  EXPECT_EQ(members.members(1).user().username(), "bob");
  EXPECT_EQ(members.members(1).role(), "member");
}

TEST_F(RoomServiceTest, APrivateRoomAdmitsWithItsPassword) {
  TestUser alice = SignUp(server_, "alice");
  TestUser bob = SignUp(server_, "bob");
  MustCreate(alice, NewRoom("priv", v1::VISIBILITY_PRIVATE, "priv-pw"));
  EXPECT_TRUE(Failed(Add(bob.token, "priv", "me"),
                     grpc::StatusCode::PERMISSION_DENIED, "WRONG_PASSWORD",
                     "password"));
  EXPECT_TRUE(Failed(Add(bob.token, "priv", "me", "wrong-pw"),
                     grpc::StatusCode::PERMISSION_DENIED, "WRONG_PASSWORD",
                     "password"));
  ASSERT_TRUE(Succeeded(Add(bob.token, "priv", "bob", "priv-pw")));
  v1::ListMembersResponse members;
  ASSERT_TRUE(Succeeded(Members(bob.token, "priv", &members)));
  EXPECT_EQ(members.members_size(), 2);
  // A member needs no password again.
  EXPECT_TRUE(Succeeded(Add(bob.token, "priv", "me")));
}

TEST_F(RoomServiceTest, AHiddenRoomAdmitsWithItsPasswordAndLeaksNothing) {
  TestUser alice = SignUp(server_, "alice");
  TestUser bob = SignUp(server_, "bob");
  TestUser carol = SignUp(server_, "carol");
  v1::Room hid =
      MustCreate(alice, NewRoom("hid", v1::VISIBILITY_HIDDEN, "hid-pw"));
  // Wrong or no password: as if there were no such room.
  EXPECT_TRUE(Failed(Add(bob.token, "hid", "me", "wrong-pw"),
                     grpc::StatusCode::NOT_FOUND, "ROOM_NOT_FOUND", "room"));
  EXPECT_TRUE(Failed(Add(bob.token, hid.id(), "me"),
                     grpc::StatusCode::NOT_FOUND, "ROOM_NOT_FOUND", "room"));
  // Adding someone else to it is not found either.
  EXPECT_TRUE(Failed(Add(bob.token, "hid", "carol"),
                     grpc::StatusCode::NOT_FOUND, "ROOM_NOT_FOUND", "room"));

  v1::Member member;
  ASSERT_TRUE(Succeeded(Add(bob.token, "hid", "me", "hid-pw", &member)));
  EXPECT_EQ(member.room_id(), hid.id());
  v1::Room read;
  ASSERT_TRUE(Succeeded(Get(bob.token, "hid", &read)));
  EXPECT_EQ(read.member_count(), 2u);
  // A member who is not the owner may still not add others.
  EXPECT_TRUE(Failed(Add(bob.token, "hid", "carol"),
                     grpc::StatusCode::PERMISSION_DENIED, "NOT_ROOM_OWNER"));
  EXPECT_TRUE(Failed(Get(carol.token, "hid"), grpc::StatusCode::NOT_FOUND,
                     "ROOM_NOT_FOUND"));
}

TEST_F(RoomServiceTest, OnlyTheOwnerAddsOthers) {
  TestUser alice = SignUp(server_, "alice");
  TestUser bob = SignUp(server_, "bob");
  TestUser carol = SignUp(server_, "carol");
  MustCreate(alice, NewRoom("priv", v1::VISIBILITY_PRIVATE, "priv-pw"));
  MustCreate(alice, NewRoom("pub"));
  EXPECT_TRUE(Failed(Add(bob.token, "pub", "carol"),
                     grpc::StatusCode::PERMISSION_DENIED, "NOT_ROOM_OWNER"));
  EXPECT_TRUE(Failed(Add(bob.token, "priv", carol.id, "priv-pw"),
                     grpc::StatusCode::PERMISSION_DENIED, "NOT_ROOM_OWNER"));
  // The owner adds anyone, by name or id, without a password.
  v1::Member member;
  ASSERT_TRUE(Succeeded(Add(alice.token, "priv", carol.id, "", &member)));
  EXPECT_EQ(member.user().username(), "carol");
  EXPECT_EQ(member.role(), "member");
  ASSERT_TRUE(Succeeded(Add(alice.token, "priv", "bob")));
  EXPECT_TRUE(Failed(Add(alice.token, "priv", "nobody"),
                     grpc::StatusCode::NOT_FOUND, "USER_NOT_FOUND", "user"));
  EXPECT_TRUE(Failed(Add(alice.token, "nowhere", "bob"),
                     grpc::StatusCode::NOT_FOUND, "ROOM_NOT_FOUND", "room"));
  EXPECT_TRUE(Failed(Add(alice.token, "", "bob"),
                     grpc::StatusCode::INVALID_ARGUMENT, kAny, "room"));
  v1::CheckAccessResponse access;
  ASSERT_TRUE(Succeeded(Access(alice.token, "priv", "carol", &access)));
  EXPECT_TRUE(access.allowed());
  EXPECT_EQ(access.role(), "member");
}

TEST_F(RoomServiceTest, MembersLeaveAndOwnersRemove) {
  TestUser alice = SignUp(server_, "alice");
  TestUser bob = SignUp(server_, "bob");
  TestUser carol = SignUp(server_, "carol");
  v1::Room room =
      MustCreate(alice, NewRoom("priv", v1::VISIBILITY_PRIVATE, "priv-pw"));
  ASSERT_TRUE(Succeeded(Add(alice.token, "priv", "bob")));
  ASSERT_TRUE(Succeeded(Add(alice.token, "priv", "carol")));
  std::shared_ptr<chat::Channel> bobs = Watch(room.id(), bob.id);
  std::shared_ptr<chat::Channel> carols = Watch(room.id(), carol.id);
  ASSERT_NE(bobs, nullptr);
  ASSERT_NE(carols, nullptr);

  EXPECT_TRUE(Failed(Remove(bob.token, "priv", "carol"),
                     grpc::StatusCode::PERMISSION_DENIED, "NOT_ROOM_OWNER"));
  EXPECT_TRUE(Failed(Remove(alice.token, "priv", "me"),
                     grpc::StatusCode::FAILED_PRECONDITION,
                     "OWNER_CANNOT_LEAVE", "user"));
  EXPECT_TRUE(Failed(Remove(bob.token, "priv", "alice"),
                     grpc::StatusCode::PERMISSION_DENIED, "NOT_ROOM_OWNER"));

  // The owner removes carol: her stream on the private room ends at once,
  // bob's goes on and carries the event.
  ASSERT_TRUE(Succeeded(Remove(alice.token, "priv", "carol")));
  EXPECT_EQ(carols->Take(10).closed, chat::CloseReason::kRemoved);
  chat::Channel::TakeResult taken = bobs->Take(10);
  EXPECT_EQ(taken.closed, chat::CloseReason::kOpen);
  ASSERT_EQ(taken.events.size(), 1u);
  EXPECT_EQ(taken.events[0]->kind, model::EventKind::kMemberRemoved);
  EXPECT_EQ(taken.events[0]->target_id, carol.id);
  EXPECT_EQ(taken.events[0]->room_id, room.id());
  EXPECT_TRUE(Failed(Remove(alice.token, "priv", "carol"),
                     grpc::StatusCode::NOT_FOUND, "MEMBER_NOT_FOUND", "user"));
  v1::ListMembersResponse members;
  EXPECT_TRUE(Failed(Members(carol.token, "priv", &members),
                     grpc::StatusCode::PERMISSION_DENIED, "NOT_A_MEMBER"));

  // Bob leaves by himself.
  ASSERT_TRUE(Succeeded(Remove(bob.token, room.id(), bob.id)));
  EXPECT_EQ(bobs->Take(10).closed, chat::CloseReason::kRemoved);
  EXPECT_TRUE(Failed(Remove(bob.token, "priv", "me"),
                     grpc::StatusCode::NOT_FOUND, "MEMBER_NOT_FOUND"));
  ASSERT_TRUE(Succeeded(Members(alice.token, "priv", &members)));
  ASSERT_EQ(members.members_size(), 1);
  EXPECT_EQ(members.members(0).user().id(), alice.id);
}

TEST_F(RoomServiceTest, LeavingAPublicRoomKeepsTheStream) {
  TestUser alice = SignUp(server_, "alice");
  TestUser bob = SignUp(server_, "bob");
  v1::Room room = MustCreate(alice, NewRoom("pub"));
  ASSERT_TRUE(Succeeded(Add(bob.token, "pub", "me")));
  std::shared_ptr<chat::Channel> bobs = Watch(room.id(), bob.id);
  ASSERT_NE(bobs, nullptr);
  ASSERT_TRUE(Succeeded(Remove(bob.token, "pub", "me")));
  chat::Channel::TakeResult taken = bobs->Take(10);
  EXPECT_EQ(taken.closed, chat::CloseReason::kOpen);
  ASSERT_EQ(taken.events.size(), 1u);
  EXPECT_EQ(taken.events[0]->kind, model::EventKind::kMemberRemoved);
  EXPECT_EQ(taken.events[0]->target_id, bob.id);
}

// ---- CheckAccess ----

TEST_F(RoomServiceTest, CheckAccessAnswersForAnyUser) {
  TestUser alice = SignUp(server_, "alice");
  TestUser bob = SignUp(server_, "bob");
  MustCreate(alice, NewRoom("pub"));
  MustCreate(alice, NewRoom("priv", v1::VISIBILITY_PRIVATE, "priv-pw"));

  v1::CheckAccessResponse access;
  ASSERT_TRUE(Succeeded(Access(alice.token, "pub", "bob", &access)));
  EXPECT_TRUE(access.allowed());
  EXPECT_EQ(access.role(), "");
  EXPECT_EQ(access.reason(), "public room");

  ASSERT_TRUE(Succeeded(Access(bob.token, "priv", "alice", &access)));
  EXPECT_TRUE(access.allowed());
  EXPECT_EQ(access.role(), "owner");
  EXPECT_EQ(access.reason(), "member");

  ASSERT_TRUE(Succeeded(Access(alice.token, "priv", bob.id, &access)));
  EXPECT_FALSE(access.allowed());
  EXPECT_EQ(access.reason(), "not a member");

  EXPECT_TRUE(Failed(Access(alice.token, "priv", "nobody", &access),
                     grpc::StatusCode::NOT_FOUND, "USER_NOT_FOUND", "user"));
  EXPECT_TRUE(Failed(Access("", "priv", "bob", &access),
                     grpc::StatusCode::UNAUTHENTICATED, "TOKEN_MISSING"));
}

// ---- Room tokens ----

TEST_F(RoomServiceTest, RoomTokensForPublicAndPrivateRooms) {
  TestUser alice = SignUp(server_, "alice");
  v1::Room pub = MustCreate(alice, NewRoom("pub"));
  v1::Room priv =
      MustCreate(alice, NewRoom("priv", v1::VISIBILITY_PRIVATE, "priv-pw"));

  v1::RoomToken token;
  ASSERT_TRUE(Succeeded(RoomToken("pub", "", "Guest", &token)));
  EXPECT_TRUE(token.status());
  EXPECT_EQ(token.name(), "Guest");
  EXPECT_EQ(token.room_id(), pub.id());
  EXPECT_FALSE(token.token().empty());
  EXPECT_GT(token.expire_time().seconds(), absl::ToUnixSeconds(absl::Now()));

  EXPECT_TRUE(Failed(RoomToken("priv", "", "Guest"),
                     grpc::StatusCode::PERMISSION_DENIED, "WRONG_SECRET",
                     "secret"));
  EXPECT_TRUE(Failed(RoomToken(priv.id(), "wrong", "Guest"),
                     grpc::StatusCode::PERMISSION_DENIED, "WRONG_SECRET",
                     "secret"));
  ASSERT_TRUE(Succeeded(RoomToken(priv.id(), "priv-pw", "Guest", &token)));
  EXPECT_EQ(token.room_id(), priv.id());

  EXPECT_TRUE(Failed(RoomToken("pub", "", ""),
                     grpc::StatusCode::INVALID_ARGUMENT, "INVALID_NAME",
                     "name"));
  EXPECT_TRUE(Failed(RoomToken("pub", "", std::string(65, 'n')),
                     grpc::StatusCode::INVALID_ARGUMENT, "INVALID_NAME",
                     "name"));
  EXPECT_TRUE(Failed(RoomToken("pub", "", "new\nline"),
                     grpc::StatusCode::INVALID_ARGUMENT, "INVALID_NAME",
                     "name"));
  EXPECT_TRUE(Failed(RoomToken("", "", "Guest"),
                     grpc::StatusCode::INVALID_ARGUMENT, "ROOM_REQUIRED",
                     "room"));
  EXPECT_TRUE(Failed(RoomToken("nowhere", "", "Guest"),
                     grpc::StatusCode::NOT_FOUND, "ROOM_NOT_FOUND", "room"));
}

// ChitChat's GET /chats/<id> with a room token reads that room, and only it.
TEST_F(RoomServiceTest, ARoomTokenGetsItsOwnRoomAndNoOther) {
  TestUser alice = SignUp(server_, "alice");
  v1::Room priv =
      MustCreate(alice, NewRoom("priv", v1::VISIBILITY_PRIVATE, "priv-pw"));
  MustCreate(alice, NewRoom("other"));
  v1::RoomToken token;
  ASSERT_TRUE(Succeeded(RoomToken("priv", "priv-pw", "Guest", &token)));
  v1::Room got;
  ASSERT_TRUE(Succeeded(Get(token.token(), "priv", &got)));
  EXPECT_EQ(got.id(), priv.id());
  EXPECT_EQ(got.unread_count(), 0u);
  EXPECT_TRUE(NoHash(got));
  EXPECT_TRUE(Failed(Get(token.token(), "other"), grpc::StatusCode::NOT_FOUND,
                     "ROOM_NOT_FOUND", "room"));
  EXPECT_TRUE(Failed(Get("", "priv"), grpc::StatusCode::UNAUTHENTICATED,
                     "TOKEN_MISSING"));
}

TEST_F(RoomServiceTest, AHiddenRoomsTokenNeedsItsSecretOrItIsNotFound) {
  TestUser alice = SignUp(server_, "alice");
  v1::Room hid =
      MustCreate(alice, NewRoom("hid", v1::VISIBILITY_HIDDEN, "hid-pw"));
  EXPECT_TRUE(Failed(RoomToken("hid", "wrong", "Guest"),
                     grpc::StatusCode::NOT_FOUND, "ROOM_NOT_FOUND", "room"));
  EXPECT_TRUE(Failed(RoomToken(hid.id(), "", "Guest"),
                     grpc::StatusCode::NOT_FOUND, "ROOM_NOT_FOUND", "room"));
  v1::RoomToken token;
  ASSERT_TRUE(Succeeded(RoomToken("hid", "hid-pw", "Guest", &token)));
  EXPECT_EQ(token.room_id(), hid.id());
  // A UUID is a UUID in either case.
  ASSERT_TRUE(Succeeded(
      RoomToken(absl::AsciiStrToUpper(hid.id()), "hid-pw", "Guest", &token)));
  EXPECT_EQ(token.room_id(), hid.id());
}

TEST_F(RoomServiceTest, RenewRoomTokenNeedsThatRoomsToken) {
  TestUser alice = SignUp(server_, "alice");
  v1::Room pub = MustCreate(alice, NewRoom("pub"));
  MustCreate(alice, NewRoom("other"));
  MustCreate(alice, NewRoom("hid", v1::VISIBILITY_HIDDEN, "hid-pw"));
  v1::RoomToken token;
  ASSERT_TRUE(Succeeded(RoomToken("pub", "", "Guest", &token)));

  v1::RoomToken renewed;
  ASSERT_TRUE(Succeeded(RenewRoomToken(token.token(), "pub", &renewed)));
  EXPECT_TRUE(renewed.status());
  EXPECT_EQ(renewed.name(), "Guest");
  EXPECT_EQ(renewed.room_id(), pub.id());
  EXPECT_FALSE(renewed.token().empty());
  EXPECT_NE(renewed.token(), token.token());
  // The renewed token renews again; an empty room means the token's own.
  ASSERT_TRUE(Succeeded(RenewRoomToken(renewed.token(), "", &renewed)));
  EXPECT_EQ(renewed.room_id(), pub.id());
  ASSERT_TRUE(Succeeded(RenewRoomToken(token.token(), pub.id())));

  EXPECT_TRUE(Failed(RenewRoomToken(token.token(), "other"),
                     grpc::StatusCode::PERMISSION_DENIED,
                     "ROOM_TOKEN_MISMATCH", "room"));
  EXPECT_TRUE(Failed(RenewRoomToken(token.token(), "hid"),
                     grpc::StatusCode::NOT_FOUND, "ROOM_NOT_FOUND", "room"));
  EXPECT_TRUE(Failed(RenewRoomToken(alice.token, "pub"),
                     grpc::StatusCode::PERMISSION_DENIED,
                     "ROOM_TOKEN_REQUIRED"));
  EXPECT_TRUE(Failed(RenewRoomToken("", "pub"),
                     grpc::StatusCode::UNAUTHENTICATED, "TOKEN_MISSING"));

  // A deleted room's tokens renew no more.
  ASSERT_TRUE(Succeeded(Delete(alice.token, "pub")));
  EXPECT_FALSE(RenewRoomToken(token.token(), "").status.ok());
}

}  // namespace
}  // namespace parley::api
