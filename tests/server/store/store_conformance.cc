// The store conformance suite (see store_conformance.h): every behaviour
// of store.h, for any implementation.
#include "tests/server/store/store_conformance.h"

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/errors.h"
#include "server/common/mutex.h"
#include "server/model/ids.h"

namespace parley::store {

std::string StoreFactoryName(
    const ::testing::TestParamInfo<StoreFactory>& info) {
  return info.param.name;
}

void PrintTo(const StoreFactory& factory, std::ostream* out) {
  *out << factory.name;
}

void StoreConformanceTest::SetUp() {
  store_ = GetParam().open();
  ASSERT_NE(store_, nullptr);
}

void StoreConformanceTest::TearDown() { store_.reset(); }

absl::StatusOr<int64_t> StoreConformanceTest::Do(Write write) {
  return Commit(*store_, std::move(write));
}

void StoreConformanceTest::MustDo(Write write) {
  absl::StatusOr<int64_t> result = Do(std::move(write));
  ASSERT_TRUE(result.ok()) << result.status();
}

absl::StatusOr<int64_t> StoreConformanceTest::Append(
    std::shared_ptr<model::Event> event) {
  return Do(AppendEvent{std::move(event)});
}

void StoreConformanceTest::MustAppend(std::shared_ptr<model::Event> event) {
  MustDo(AppendEvent{std::move(event)});
}

std::vector<model::EventPtr> StoreConformanceTest::ReadAll(
    absl::string_view log) {
  absl::StatusOr<std::vector<model::EventPtr>> events =
      store_->ReadAfter(log, 0, 1000000);
  EXPECT_TRUE(events.ok()) << events.status();
  return events.ok() ? *events : std::vector<model::EventPtr>();
}

PageResult StoreConformanceTest::List(absl::string_view log, Page page) {
  absl::StatusOr<PageResult> result = store_->ListMessages(log, page);
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? *result : PageResult();
}

namespace {

using model::Event;
using model::EventKind;
using model::EventPtr;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

// ---- Users ----

TEST_P(StoreConformanceTest, TheLobbyExistsFromTheStart) {
  absl::StatusOr<Room> lobby = store_->GetRoom(model::kLobbyId);
  ASSERT_TRUE(lobby.ok()) << lobby.status();
  EXPECT_EQ(lobby->name, model::kLobbyName);
  EXPECT_EQ(lobby->visibility, Visibility::kPublic);
  EXPECT_EQ(lobby->owner_id, "");
  EXPECT_EQ(lobby->password_hash, "");
  EXPECT_GT(lobby->create_time, T(0) - absl::Hours(24 * 365));
  absl::StatusOr<Room> by_name = store_->GetRoomByName("LOBBY");
  ASSERT_TRUE(by_name.ok()) << by_name.status();
  EXPECT_EQ(by_name->id, model::kLobbyId);
  EXPECT_EQ(*store_->LastSequence(model::kLobbyId), 0u);
  EXPECT_THAT(*store_->ListRooms("", "", 10), IsEmpty());  // never listed
}

TEST_P(StoreConformanceTest, UsersAreCreatedReadReplacedAndDeleted) {
  User alice = MakeUser(1, "alice");
  alice.tokens_valid_after = T(50);
  MustDo(PutUser{alice});
  User bob = MakeUser(2, "bob");  // tokens_valid_after: InfinitePast
  MustDo(PutUser{bob});

  absl::StatusOr<User> got = store_->GetUser(alice.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->id, alice.id);
  EXPECT_EQ(got->username, "alice");
  EXPECT_EQ(got->display_name, alice.display_name);
  EXPECT_EQ(got->password_hash, alice.password_hash);
  EXPECT_EQ(got->create_time, alice.create_time);
  EXPECT_EQ(got->update_time, alice.update_time);
  EXPECT_EQ(got->tokens_valid_after, T(50));
  EXPECT_EQ(store_->GetUserByName("bob")->tokens_valid_after,
            absl::InfinitePast());
  EXPECT_EQ(store_->GetUserByName("BOB")->id, bob.id);  // case-insensitive

  alice.username = "alicia";
  alice.display_name = "Alicia";
  alice.update_time = T(60);
  alice.create_time = T(999);  // a replace keeps the creation time
  MustDo(PutUser{alice, /*create=*/false});
  got = store_->GetUserByName("alicia");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->display_name, "Alicia");
  EXPECT_EQ(got->update_time, T(60));
  EXPECT_EQ(got->create_time, T(1));
  EXPECT_EQ(store_->GetUserByName("alice").status().code(),
            absl::StatusCode::kNotFound);

  MustDo(DeleteUser{alice.id});
  absl::Status missing = store_->GetUser(alice.id).status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ErrorReason(missing), "USER_NOT_FOUND");
}

TEST_P(StoreConformanceTest, UsernamesAreUniqueIgnoringCase) {
  MustDo(PutUser{MakeUser(1, "alice")});
  ExpectError(Do(PutUser{MakeUser(2, "alice")}),
              absl::StatusCode::kAlreadyExists, "USERNAME_TAKEN", "username");
  ExpectError(Do(PutUser{MakeUser(3, "ALICE")}),
              absl::StatusCode::kAlreadyExists, "USERNAME_TAKEN", "username");
  // Renaming onto a taken name.
  User bob = MakeUser(4, "bob");
  MustDo(PutUser{bob});
  bob.username = "Alice";
  ExpectError(Do(PutUser{bob, /*create=*/false}),
              absl::StatusCode::kAlreadyExists, "USERNAME_TAKEN", "username");
  EXPECT_EQ(store_->GetUser(bob.id)->username, "bob");
  // The same id twice.
  User again = MakeUser(1, "other");
  EXPECT_EQ(Do(PutUser{again}).status().code(),
            absl::StatusCode::kAlreadyExists);
}

TEST_P(StoreConformanceTest, ReplacingOrDeletingAMissingUserIsNotFound) {
  ExpectError(Do(PutUser{MakeUser(1, "ghost"), /*create=*/false}),
              absl::StatusCode::kNotFound, "USER_NOT_FOUND");
  ExpectError(Do(DeleteUser{Uuid(1)}), absl::StatusCode::kNotFound,
              "USER_NOT_FOUND");
  EXPECT_EQ(ErrorReason(store_->GetUserByName("ghost").status()),
            "USER_NOT_FOUND");
}

TEST_P(StoreConformanceTest, ListUsersPagesByUsername) {
  int n = 0;
  for (const char* name : {"dave", "alice", "Carol", "bob"}) {
    MustDo(PutUser{MakeUser(++n, name)});
  }
  auto names = [](const std::vector<User>& users) {
    std::vector<std::string> out;
    for (const User& u : users) out.push_back(u.username);
    return out;
  };
  EXPECT_THAT(names(*store_->ListUsers("", 3)),
              ElementsAre("alice", "bob", "Carol"));
  EXPECT_THAT(names(*store_->ListUsers("bob", 3)),
              ElementsAre("Carol", "dave"));
  EXPECT_THAT(names(*store_->ListUsers("dave", 3)), IsEmpty());
  EXPECT_THAT(names(*store_->ListUsers("", 0)), IsEmpty());
}

// ---- Rooms and members ----

TEST_P(StoreConformanceTest, RoomsAreCreatedReadReplacedAndDeleted) {
  User owner = MakeUser(1, "owner");
  MustDo(PutUser{owner});
  Room room = MakeRoom(1, "general", Visibility::kPrivate, owner.id);
  room.password_hash = "$argon2id$secret";
  MustDo(PutRoom{room});

  absl::StatusOr<Room> got = store_->GetRoom(room.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->name, "general");
  EXPECT_EQ(got->description, "about general");
  EXPECT_EQ(got->visibility, Visibility::kPrivate);
  EXPECT_EQ(got->password_hash, "$argon2id$secret");
  EXPECT_EQ(got->owner_id, owner.id);
  EXPECT_EQ(got->create_time, T(1));
  EXPECT_EQ(store_->GetRoomByName("General")->id, room.id);

  // The owner became a member with role "owner".
  absl::StatusOr<std::optional<Member>> member =
      store_->GetMember(room.id, owner.id);
  ASSERT_TRUE(member.ok()) << member.status();
  ASSERT_TRUE(member->has_value());
  EXPECT_EQ((*member)->role, "owner");
  EXPECT_EQ((*member)->join_time, T(1));
  EXPECT_EQ((*member)->username, "owner");

  room.name = "renamed";
  room.visibility = Visibility::kHidden;
  room.password_hash = "";
  room.update_time = T(5);
  MustDo(PutRoom{room, /*create=*/false});
  got = store_->GetRoom(room.id);
  EXPECT_EQ(got->name, "renamed");
  EXPECT_EQ(got->visibility, Visibility::kHidden);
  EXPECT_EQ(got->password_hash, "");
  EXPECT_EQ(got->update_time, T(5));
  EXPECT_EQ(ErrorReason(store_->GetRoomByName("general").status()),
            "ROOM_NOT_FOUND");

  MustAppend(Message(room.id, 1, "owner", "hi"));
  MustDo(DeleteRoom{room.id});
  EXPECT_EQ(ErrorReason(store_->GetRoom(room.id).status()), "ROOM_NOT_FOUND");
  EXPECT_EQ(*store_->CountMembers(room.id), 0u);
  EXPECT_EQ(*store_->LastSequence(room.id), 0u);
  EXPECT_THAT(ReadAll(room.id), IsEmpty());
  // Its log is gone and stays closed.
  ExpectError(Append(Message(room.id, 2, "owner", "late")),
              absl::StatusCode::kNotFound, "ROOM_NOT_FOUND");
}

TEST_P(StoreConformanceTest, RoomWritesReportTheirErrors) {
  MustDo(PutRoom{MakeRoom(1, "general")});
  ExpectError(Do(PutRoom{MakeRoom(2, "general")}),
              absl::StatusCode::kAlreadyExists, "ROOM_NAME_TAKEN", "name");
  ExpectError(Do(PutRoom{MakeRoom(3, "LOBBY")}),
              absl::StatusCode::kAlreadyExists, "ROOM_NAME_TAKEN", "name");
  Room renamed = MakeRoom(1, "lobby");
  ExpectError(Do(PutRoom{renamed, /*create=*/false}),
              absl::StatusCode::kAlreadyExists, "ROOM_NAME_TAKEN", "name");
  ExpectError(Do(PutRoom{MakeRoom(4, "nowhere"), /*create=*/false}),
              absl::StatusCode::kNotFound, "ROOM_NOT_FOUND");
  ExpectError(Do(DeleteRoom{Uuid(4)}), absl::StatusCode::kNotFound,
              "ROOM_NOT_FOUND");
  ExpectError(Do(PutRoom{MakeRoom(5, "orphan", Visibility::kPublic, Uuid(9))}),
              absl::StatusCode::kNotFound, "USER_NOT_FOUND");
  EXPECT_EQ(store_->GetRoomByName("orphan").status().code(),
            absl::StatusCode::kNotFound);
  Room bad = MakeRoom(6, "bad");
  bad.visibility = static_cast<Visibility>(7);
  EXPECT_EQ(Do(PutRoom{bad}).status().code(),
            absl::StatusCode::kInvalidArgument);
  ExpectError(Do(DeleteRoom{kLobby}), absl::StatusCode::kFailedPrecondition,
              "LOBBY_PROTECTED");
  EXPECT_TRUE(store_->GetRoom(model::kLobbyId).ok());
}

TEST_P(StoreConformanceTest, MembersArePutListedCountedAndDeleted) {
  User zed = MakeUser(1, "zed");
  User amy = MakeUser(2, "amy");
  MustDo(PutUser{zed});
  MustDo(PutUser{amy});
  Room room = MakeRoom(1, "club");
  MustDo(PutRoom{room});

  MustDo(PutMember{MakeMember(room.id, zed.id, "member", T(10))});
  MustDo(PutMember{MakeMember(room.id, amy.id, "member", T(11))});
  MustDo(PutMember{MakeMember(room.id, zed.id, "owner", T(12))});  // replaces

  absl::StatusOr<std::vector<Member>> members = store_->ListMembers(room.id);
  ASSERT_TRUE(members.ok()) << members.status();
  ASSERT_EQ(members->size(), 2u);
  EXPECT_EQ((*members)[0].username, "amy");  // by username
  EXPECT_EQ((*members)[0].display_name, amy.display_name);
  EXPECT_EQ((*members)[0].role, "member");
  EXPECT_EQ((*members)[0].join_time, T(11));
  EXPECT_EQ((*members)[1].user_id, zed.id);
  EXPECT_EQ((*members)[1].role, "owner");
  EXPECT_EQ((*members)[1].join_time, T(12));
  EXPECT_EQ((*members)[1].room_id, room.id);
  EXPECT_EQ(*store_->CountMembers(room.id), 2u);

  MustDo(DeleteMember{room.id, amy.id});
  EXPECT_FALSE(store_->GetMember(room.id, amy.id)->has_value());
  EXPECT_EQ(*store_->CountMembers(room.id), 1u);
  ExpectError(Do(DeleteMember{room.id, amy.id}), absl::StatusCode::kNotFound,
              "MEMBER_NOT_FOUND");
  ExpectError(Do(PutMember{MakeMember(Uuid(7), amy.id, "member", T(1))}),
              absl::StatusCode::kNotFound, "ROOM_NOT_FOUND");
  ExpectError(Do(PutMember{MakeMember(room.id, Uuid(7), "member", T(1))}),
              absl::StatusCode::kNotFound, "USER_NOT_FOUND");
  EXPECT_THAT(*store_->ListMembers(Uuid(7)), IsEmpty());
}

TEST_P(StoreConformanceTest,
       DeletingAUserEndsTheirMembershipsAndDropsTheirInbox) {
  User amy = MakeUser(1, "amy");
  User bob = MakeUser(2, "bob");
  MustDo(PutUser{amy});
  MustDo(PutUser{bob});
  Room room = MakeRoom(1, "amys", Visibility::kPublic, amy.id);
  MustDo(PutRoom{room});
  MustDo(PutMember{MakeMember(room.id, bob.id, "member", T(3))});
  MustAppend(Message(model::InboxLog(amy.id), 1, "bob", "psst"));

  MustDo(DeleteUser{amy.id});
  EXPECT_EQ(*store_->CountMembers(room.id), 1u);
  EXPECT_EQ(store_->GetRoom(room.id)->owner_id, amy.id);  // the room stays
  EXPECT_EQ(*store_->LastSequence(model::InboxLog(amy.id)), 0u);
  ExpectError(Append(Message(model::InboxLog(amy.id), 2, "bob", "hello?")),
              absl::StatusCode::kNotFound, "USER_NOT_FOUND");
}

TEST_P(StoreConformanceTest, ListRoomsShowsHiddenRoomsOnlyToTheirMembers) {
  User amy = MakeUser(1, "amy");
  User bob = MakeUser(2, "bob");
  MustDo(PutUser{amy});
  MustDo(PutUser{bob});
  MustDo(PutRoom{MakeRoom(1, "public", Visibility::kPublic)});
  MustDo(PutRoom{MakeRoom(2, "private", Visibility::kPrivate)});
  MustDo(PutRoom{MakeRoom(3, "hidden-amy", Visibility::kHidden, amy.id)});
  MustDo(PutRoom{MakeRoom(4, "hidden-bob", Visibility::kHidden, bob.id)});
  Room shared = MakeRoom(5, "hidden-both", Visibility::kHidden, amy.id);
  MustDo(PutRoom{shared});
  MustDo(PutMember{MakeMember(shared.id, bob.id, "member", T(1))});

  auto names = [](const absl::StatusOr<std::vector<Room>>& rooms) {
    std::vector<std::string> out;
    EXPECT_TRUE(rooms.ok()) << rooms.status();
    if (rooms.ok()) {
      for (const Room& r : *rooms) out.push_back(r.name);
    }
    return out;
  };
  EXPECT_THAT(names(store_->ListRooms(amy.id, "", 100)),
              ElementsAre("hidden-amy", "hidden-both", "private", "public"));
  EXPECT_THAT(names(store_->ListRooms(bob.id, "", 100)),
              ElementsAre("hidden-bob", "hidden-both", "private", "public"));
  EXPECT_THAT(names(store_->ListRooms("", "", 100)),
              ElementsAre("private", "public"));  // never the lobby
  EXPECT_THAT(names(store_->ListRooms(amy.id, "hidden-both", 2)),
              ElementsAre("private", "public"));
  EXPECT_THAT(names(store_->ListRooms(amy.id, "public", 2)), IsEmpty());
}

// ---- Revoked tokens ----

TEST_P(StoreConformanceTest, RevokedTokensListOnlyTheUnexpired) {
  MustDo(RevokeToken{"live", absl::Now() + absl::Hours(1)});
  MustDo(RevokeToken{"expired", absl::Now() - absl::Seconds(1)});
  MustDo(RevokeToken{"live", absl::Now() - absl::Hours(1)});  // keeps later
  EXPECT_THAT(*store_->ListRevokedTokens(), ElementsAre("live"));
}

// ---- Logs ----

TEST_P(StoreConformanceTest, EventsOfEveryKindReadBackAsAppended) {
  std::vector<EventPtr> appended;
  auto join = NewEvent(EventKind::kJoin, kLobby, 1);
  join->sender = "alice";
  auto message = Message(kLobby, 2, "alice", "hello, world");
  auto added = NewEvent(EventKind::kMemberAdded, kLobby, 3);
  added->sender_id = Uuid(5);
  added->target_id = Uuid(5);
  auto removed = NewEvent(EventKind::kMemberRemoved, kLobby, 4);
  removed->target_id = Uuid(5);
  auto leave = NewEvent(EventKind::kLeave, kLobby, 5);
  leave->sender = "alice";
  leave->id = "";  // an event without an id is kept too
  auto unicode = Message(kLobby, 6, "bob", "héllo \xF0\x9F\x91\x8B");
  for (const auto& e : {join, message, added, removed, leave, unicode}) {
    absl::StatusOr<int64_t> result = Append(e);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(*result, 0);
    appended.push_back(e);
  }
  std::vector<EventPtr> events = ReadAll(kLobby);
  ASSERT_EQ(events.size(), appended.size());
  for (size_t i = 0; i < events.size(); ++i) {
    ExpectSameEvent(*events[i], *appended[i]);
  }
  EXPECT_EQ(*store_->LastSequence(kLobby), 6u);
  EXPECT_THAT(Sequences(*store_->ReadAfter(kLobby, 2, 2)), ElementsAre(3, 4));
  EXPECT_THAT(*store_->ReadAfter(kLobby, 6, 10), IsEmpty());
  EXPECT_THAT(*store_->ReadAfter("no-such-log", 0, 10), IsEmpty());
  EXPECT_EQ(*store_->LastSequence("no-such-log"), 0u);
}

TEST_P(StoreConformanceTest, TimesKeepMicroseconds) {
  auto message = Message(kLobby, 1, "alice", "precise");
  message->time = absl::FromUnixMicros(1700000000123456);
  MustAppend(message);
  EXPECT_EQ(ReadAll(kLobby)[0]->time, message->time);
}

TEST_P(StoreConformanceTest, EachLogIsNumberedFromOneWithoutGaps) {
  User amy = MakeUser(1, "amy");
  MustDo(PutUser{amy});
  Room room = MakeRoom(1, "cafe");
  MustDo(PutRoom{room});
  const std::string inbox = model::InboxLog(amy.id);
  // Interleaved: each log counts its own events (MustAppend checks each
  // event's number).
  MustAppend(Message(kLobby, 1, "ann", "lobby 1"));
  MustAppend(Message(room.id, 1, "ann", "room 1"));
  MustAppend(Message(kLobby, 2, "ann", "lobby 2"));
  MustAppend(NewEvent(EventKind::kJoin, room.id, 2));
  MustAppend(Message(inbox, 1, "bob", "inbox 1"));
  MustAppend(Message(room.id, 3, "ann", "room 3"));
  EXPECT_THAT(Sequences(ReadAll(kLobby)), ElementsAre(1, 2));
  EXPECT_THAT(Sequences(ReadAll(room.id)), ElementsAre(1, 2, 3));
  EXPECT_THAT(Sequences(ReadAll(inbox)), ElementsAre(1));
  EXPECT_EQ(*store_->LastSequence(room.id), 3u);
  EXPECT_EQ(*store_->LastSequence(inbox), 1u);
}

TEST_P(StoreConformanceTest, ARefusedAppendInABatchTakesNoNumber) {
  auto first = Message(kLobby, 1, "ann", "first");
  MustAppend(first);
  auto duplicate = Message(kLobby, 0, "ann", "same id");
  duplicate->id = first->id;
  Event missing = *first;
  missing.id = Uuid(4242);
  auto gate = std::make_unique<WriterGate>(*store_);
  // One batch: the refused appends are rolled back with their numbers.
  auto second = SubmitWrite(*store_, AppendEvent{Message(kLobby, 2, "a", "2")});
  auto taken = SubmitWrite(*store_, AppendEvent{duplicate});
  auto edit = SubmitWrite(*store_, AppendEvent{EditOf(missing, 0, "x")});
  auto third = SubmitWrite(*store_, AppendEvent{Message(kLobby, 3, "a", "3")});
  auto nowhere =
      SubmitWrite(*store_, AppendEvent{Message(Uuid(77), 0, "a", "none")});
  auto fourth = SubmitWrite(*store_, AppendEvent{Message(kLobby, 4, "a", "4")});
  gate.reset();
  EXPECT_TRUE(second->Wait().ok());
  ExpectError(taken->Wait(), absl::StatusCode::kAlreadyExists, "EVENT_EXISTS",
              "id");
  ExpectError(edit->Wait(), absl::StatusCode::kNotFound, "MESSAGE_NOT_FOUND");
  EXPECT_TRUE(third->Wait().ok());
  ExpectError(nowhere->Wait(), absl::StatusCode::kNotFound, "ROOM_NOT_FOUND");
  EXPECT_TRUE(fourth->Wait().ok());
  EXPECT_THAT(Sequences(ReadAll(kLobby)), ElementsAre(1, 2, 3, 4));
  EXPECT_EQ(*store_->LastSequence(Uuid(77)), 0u);
}

TEST_P(StoreConformanceTest, OneBatchNumbersEachOfItsLogsOnItsOwn) {
  const Room one = MakeRoom(1, "one");
  const Room two = MakeRoom(2, "two");
  MustDo(PutRoom{one});
  MustDo(PutRoom{two});
  auto gate = std::make_unique<WriterGate>(*store_);
  // Appends to two rooms interleaved with one to a room that is not there.
  std::vector<std::shared_ptr<Outcome>> writes;
  for (int i = 0; i < 3; ++i) {
    writes.push_back(SubmitWrite(
        *store_, AppendEvent{Message(one.id, i + 1, "a", absl::StrCat("1-", i))}));
    writes.push_back(SubmitWrite(
        *store_, AppendEvent{Message(two.id, i + 1, "a", absl::StrCat("2-", i))}));
  }
  auto nowhere =
      SubmitWrite(*store_, AppendEvent{Message(Uuid(77), 0, "a", "none")});
  writes.push_back(SubmitWrite(
      *store_, AppendEvent{Message(one.id, 4, "a", "1-3")}));
  gate.reset();
  for (auto& write : writes) {
    const absl::StatusOr<int64_t> result = write->Wait();
    EXPECT_TRUE(result.ok()) << result.status();
  }
  ExpectError(nowhere->Wait(), absl::StatusCode::kNotFound, "ROOM_NOT_FOUND");
  const std::vector<EventPtr> first = ReadAll(one.id);
  EXPECT_THAT(Sequences(first), ElementsAre(1, 2, 3, 4));
  EXPECT_THAT(Sequences(ReadAll(two.id)), ElementsAre(1, 2, 3));
  ASSERT_EQ(first.size(), 4u);
  EXPECT_EQ(first[3]->text, "1-3");
  EXPECT_EQ(*store_->LastSequence(Uuid(77)), 0u);
}

TEST_P(StoreConformanceTest, AppendRefusesWhatIsNotALogEntryAndTakesNoNumber) {
  auto first = Message(kLobby, 1, "alice", "first");
  MustAppend(first);

  EXPECT_EQ(Do(AppendEvent{nullptr}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Append(NewEvent(EventKind::kGap, kLobby, 0)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Append(NewEvent(EventKind::kTyping, kLobby, 0)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Append(Message("", 0, "a", "no log")).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto same_id = Message(kLobby, 2, "alice", "same id");
  same_id->id = first->id;
  ExpectError(Append(same_id), absl::StatusCode::kAlreadyExists, "EVENT_EXISTS",
              "id");
  ExpectError(Append(Message(Uuid(77), 1, "alice", "nowhere")),
              absl::StatusCode::kNotFound, "ROOM_NOT_FOUND");
  ExpectError(Append(Message(model::InboxLog(Uuid(77)), 1, "alice", "nobody")),
              absl::StatusCode::kNotFound, "USER_NOT_FOUND");

  EXPECT_EQ(*store_->LastSequence(kLobby), 1u);
  EXPECT_THAT(Sequences(ReadAll(kLobby)), ElementsAre(1));
  MustAppend(Message(kLobby, 2, "alice", "next"));  // no number was used
}

TEST_P(StoreConformanceTest, AnEventThatComesNumberedIsRefused) {
  auto numbered = Message(kLobby, 0, "alice", "numbered");
  numbered->sequence = 7;
  auto outcome = std::make_shared<Outcome>();
  store_->Append(AppendEvent{numbered}, outcome->Callback(outcome));
  EXPECT_EQ(outcome->Wait().status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*store_->LastSequence(kLobby), 0u);
  MustAppend(Message(kLobby, 1, "alice", "first"));
}

TEST_P(StoreConformanceTest, DirectMessagesGoToTheRecipientsInbox) {
  User amy = MakeUser(1, "amy");
  MustDo(PutUser{amy});
  auto dm = Message(model::InboxLog(amy.id), 1, "bob", "for amy");
  dm->recipient_id = amy.id;
  dm->recipient = "amy";
  MustAppend(dm);
  std::vector<EventPtr> inbox = ReadAll(model::InboxLog(amy.id));
  ASSERT_EQ(inbox.size(), 1u);
  ExpectSameEvent(*inbox[0], *dm);
  EXPECT_EQ(store_->GetMessage(model::InboxLog(amy.id), dm->id).value()->text,
            "for amy");
  EXPECT_EQ(*store_->LastSequence(kLobby), 0u);
}

TEST_P(StoreConformanceTest, GetMessageFindsOnlyMessagesOfTheLog) {
  auto join = NewEvent(EventKind::kJoin, kLobby, 1);
  auto message = Message(kLobby, 2, "alice", "hi");
  MustAppend(join);
  MustAppend(message);
  absl::StatusOr<EventPtr> got = store_->GetMessage(kLobby, message->id);
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectSameEvent(**got, *message);
  const std::vector<std::pair<std::string, std::string>> missing = {
      {kLobby, join->id}, {kLobby, Uuid(999)}, {Uuid(5), message->id}};
  for (const auto& [log, id] : missing) {
    absl::Status status = store_->GetMessage(log, id).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(ErrorReason(status), "MESSAGE_NOT_FOUND");
  }
}

TEST_P(StoreConformanceTest, EditsKeepTheEarlierVersions) {
  auto message = Message(kLobby, 1, "alice", "helo");
  MustAppend(message);
  auto edit1 = EditOf(*message, 2, "hello");
  auto edit2 = EditOf(*message, 3, "hello!");
  absl::StatusOr<int64_t> result = Append(edit1);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(*result, 0);
  MustAppend(edit2);

  absl::StatusOr<EventPtr> got = store_->GetMessage(kLobby, message->id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)->text, "hello!");
  EXPECT_EQ((*got)->update_time, edit2->time);
  EXPECT_FALSE((*got)->deleted);
  ASSERT_EQ((*got)->previous_versions.size(), 2u);
  EXPECT_EQ((*got)->previous_versions[0].text, "helo");
  EXPECT_EQ((*got)->previous_versions[0].time, message->time);
  EXPECT_EQ((*got)->previous_versions[1].text, "hello");
  EXPECT_EQ((*got)->previous_versions[1].time, edit1->time);

  // The edits are in the log too; history lists the message once.
  std::vector<EventPtr> events = ReadAll(kLobby);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0]->text, "hello!");
  EXPECT_EQ(events[0]->previous_versions.size(), 2u);
  ExpectSameEvent(*events[1], *edit1);
  ExpectSameEvent(*events[2], *edit2);
  PageResult page = List(kLobby, Page{});
  ASSERT_EQ(page.messages.size(), 1u);
  EXPECT_EQ(page.messages[0]->text, "hello!");
  EXPECT_EQ(page.messages[0]->previous_versions.size(), 2u);
}

TEST_P(StoreConformanceTest, EditOrDeleteWithoutATargetAppendsNothing) {
  auto message = Message(kLobby, 1, "alice", "hi");
  auto join = NewEvent(EventKind::kJoin, kLobby, 2);
  MustAppend(message);
  MustAppend(join);
  Event missing = *message;
  missing.id = Uuid(4242);
  ExpectError(Append(EditOf(missing, 3, "x")), absl::StatusCode::kNotFound,
              "MESSAGE_NOT_FOUND");
  ExpectError(Append(DeletionOf(missing, 3)), absl::StatusCode::kNotFound,
              "MESSAGE_NOT_FOUND");
  ExpectError(Append(EditOf(*join, 3, "x")), absl::StatusCode::kNotFound,
              "MESSAGE_NOT_FOUND");
  // A message of another log.
  Room other = MakeRoom(1, "other");
  MustDo(PutRoom{other});
  auto elsewhere = EditOf(*message, 1, "x");
  elsewhere->log = other.id;
  ExpectError(Append(elsewhere), absl::StatusCode::kNotFound,
              "MESSAGE_NOT_FOUND");
  EXPECT_EQ(*store_->LastSequence(kLobby), 2u);
  EXPECT_EQ(*store_->LastSequence(other.id), 0u);
  EXPECT_EQ(store_->GetMessage(kLobby, message->id).value()->text, "hi");
}

TEST_P(StoreConformanceTest, DeleteLeavesATombstoneAndForgetsEveryText) {
  auto message = Message(kLobby, 1, "alice", "secret");
  auto other = Message(kLobby, 2, "bob", "stays");
  MustAppend(message);
  MustAppend(other);
  MustAppend(EditOf(*message, 3, "secret v2"));
  auto deletion = DeletionOf(*message, 4);
  absl::StatusOr<int64_t> result = Append(deletion);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(*result, 0);

  absl::StatusOr<EventPtr> got = store_->GetMessage(kLobby, message->id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE((*got)->deleted);
  EXPECT_EQ((*got)->text, "");
  EXPECT_THAT((*got)->previous_versions, IsEmpty());
  std::vector<EventPtr> events = ReadAll(kLobby);
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[2]->kind, EventKind::kEdit);
  EXPECT_EQ(events[2]->text, "");  // the edit's text is gone too
  ExpectSameEvent(*events[3], *deletion);

  // The tombstone is listed; it cannot be edited; deleting again is fine.
  PageResult page = List(kLobby, Page{});
  ASSERT_EQ(page.messages.size(), 2u);
  EXPECT_TRUE(page.messages[0]->deleted);
  EXPECT_FALSE(page.messages[1]->deleted);
  ExpectError(Append(EditOf(*message, 5, "resurrected")),
              absl::StatusCode::kNotFound, "MESSAGE_NOT_FOUND");
  MustAppend(DeletionOf(*message, 5));
  EXPECT_EQ(store_->GetMessage(kLobby, other->id).value()->text, "stays");
}

TEST_P(StoreConformanceTest, PurgeRemovesMessagesAndKeepsTheNumbering) {
  std::vector<std::shared_ptr<Event>> messages;
  for (uint64_t seq = 1; seq <= 5; ++seq) {
    messages.push_back(Message(kLobby, seq, "alice", absl::StrCat("m", seq)));
    MustAppend(messages.back());
  }
  MustAppend(EditOf(*messages[1], 6, "m2 edited"));
  MustAppend(NewEvent(EventKind::kJoin, kLobby, 7));
  MustAppend(Message(kLobby, 8, "bob", "after"));
  absl::StatusOr<int64_t> purged = Append(PurgeThrough(kLobby, 9, 5));
  ASSERT_TRUE(purged.ok()) << purged.status();
  EXPECT_EQ(*purged, 5);

  EXPECT_EQ(*store_->LastSequence(kLobby), 9u);
  std::vector<EventPtr> events = ReadAll(kLobby);
  EXPECT_THAT(Sequences(events), ElementsAre(6, 7, 8, 9));
  EXPECT_EQ(events[0]->text, "");  // the edit of a purged message
  EXPECT_EQ(events[3]->kind, EventKind::kPurge);
  EXPECT_EQ(events[3]->purge_through, 5u);
  PageResult page = List(kLobby, Page{});
  EXPECT_THAT(Sequences(page.messages), ElementsAre(8));
  EXPECT_FALSE(page.has_older);
  EXPECT_EQ(store_->GetMessage(kLobby, messages[0]->id).status().code(),
            absl::StatusCode::kNotFound);

  // Purging again counts only what is left; numbers are never reused.
  EXPECT_EQ(*Append(PurgeThrough(kLobby, 10, 9)), 1);
  EXPECT_EQ(*Append(PurgeThrough(kLobby, 11, 10)), 0);
  MustAppend(Message(kLobby, 12, "bob", "new"));
  EXPECT_EQ(*store_->LastSequence(kLobby), 12u);
}

TEST_P(StoreConformanceTest, ListMessagesPagesBothWays) {
  // Messages at 2-6 and 8-12; joins at 1 and 7, a leave at 13.
  uint64_t seq = 0;
  MustAppend(NewEvent(EventKind::kJoin, kLobby, ++seq));
  for (int i = 0; i < 5; ++i) MustAppend(Message(kLobby, ++seq, "a", "m"));
  MustAppend(NewEvent(EventKind::kJoin, kLobby, ++seq));
  for (int i = 0; i < 5; ++i) MustAppend(Message(kLobby, ++seq, "b", "m"));
  MustAppend(NewEvent(EventKind::kLeave, kLobby, ++seq));

  struct Case {
    Page page;
    std::vector<uint64_t> sequences;
    bool has_older;
    bool has_newer;
  };
  const Case cases[] = {
      {{3, 0, 0}, {10, 11, 12}, true, false},  // most recent
      {{100, 0, 0}, {2, 3, 4, 5, 6, 8, 9, 10, 11, 12}, false, false},
      {{3, 10, 0}, {6, 8, 9}, true, true},  // before
      {{3, 3, 0}, {2}, false, true},
      {{3, 2, 0}, {}, false, true},
      {{3, 0, 9}, {10, 11, 12}, true, false},  // after
      {{3, 0, 1}, {2, 3, 4}, false, true},
      {{3, 0, 12}, {}, true, false},
      {{3, 0, 13}, {}, true, false},
      {{3, 13, 0}, {10, 11, 12}, true, false},
      {{10, 9, 3}, {4, 5, 6, 8}, true, true},  // both: a window
      {{2, 9, 3}, {4, 5}, true, true},
      {{0, 0, 0}, {}, true, false},  // limit 0
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrCat("limit ", c.page.limit, " before ", c.page.before,
                              " after ", c.page.after));
    PageResult result = List(kLobby, c.page);
    EXPECT_EQ(Sequences(result.messages), c.sequences);
    EXPECT_EQ(result.has_older, c.has_older);
    EXPECT_EQ(result.has_newer, c.has_newer);
  }
  PageResult empty = List(Uuid(3), Page{});
  EXPECT_THAT(empty.messages, IsEmpty());
  EXPECT_FALSE(empty.has_older);
  EXPECT_FALSE(empty.has_newer);
}

TEST_P(StoreConformanceTest, ListPostersInOrderOfFirstPost) {
  auto dave_joins = NewEvent(EventKind::kJoin, kLobby, 1);
  dave_joins->sender = "dave";
  MustAppend(dave_joins);
  MustAppend(Message(kLobby, 2, "bob", "1"));
  MustAppend(Message(kLobby, 3, "alice", "2"));
  MustAppend(Message(kLobby, 4, "bob", "3"));
  MustAppend(Message(kLobby, 5, "carol", "4"));
  MustAppend(Message(kLobby, 6, "alice", "5"));
  EXPECT_THAT(*store_->ListPosters(kLobby),
              ElementsAre("bob", "alice", "carol"));
  EXPECT_THAT(*store_->ListPosters(Uuid(3)), IsEmpty());
}

// ---- Read markers ----

TEST_P(StoreConformanceTest,
       AReadMarkerMovesForwardOnlyAndCountsOthersLiveMessages) {
  User amy = MakeUser(1, "amy");
  User bob = MakeUser(2, "bob");
  MustDo(PutUser{amy});
  MustDo(PutUser{bob});
  auto by = [](uint64_t sequence, const User& who) {
    auto message = Message(kLobby, sequence, who.username, "m");
    message->sender_id = who.id;
    return message;
  };
  // 1 bob, 2 amy, 3 a join, 4 bob, 5 bob (deleted by 6), 7 amy, 8 bob.
  MustAppend(by(1, bob));
  MustAppend(by(2, amy));
  MustAppend(NewEvent(EventKind::kJoin, kLobby, 3));
  MustAppend(by(4, bob));
  auto doomed = by(5, bob);
  MustAppend(doomed);
  MustAppend(DeletionOf(*doomed, 6));
  MustAppend(by(7, amy));
  MustAppend(by(8, bob));

  // Never set: no marker, nothing counted unread.
  absl::StatusOr<ReadState> state = store_->GetReadState(amy.id, kLobby);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_FALSE(state->has_marker);
  EXPECT_EQ(state->sequence, 0u);
  EXPECT_EQ(state->unread, 0u);

  EXPECT_EQ(*Do(PutReadMarker{amy.id, kLobby, 1}), 1);
  state = store_->GetReadState(amy.id, kLobby);
  EXPECT_TRUE(state->has_marker);
  EXPECT_EQ(state->sequence, 1u);
  EXPECT_EQ(state->unread, 2u);  // 4 and 8: not amy's, not deleted, messages
  EXPECT_EQ(*Do(PutReadMarker{amy.id, kLobby, 0}), 1);  // never backward
  EXPECT_EQ(*Do(PutReadMarker{amy.id, kLobby, 4}), 4);
  EXPECT_EQ(store_->GetReadState(amy.id, kLobby)->unread, 1u);
  EXPECT_EQ(*Do(PutReadMarker{amy.id, kLobby, 1000}), 8);  // capped
  EXPECT_EQ(store_->GetReadState(amy.id, kLobby)->unread, 0u);
  EXPECT_FALSE(store_->GetReadState(bob.id, kLobby)->has_marker);

  EXPECT_EQ(Do(PutReadMarker{amy.id, Uuid(2999), 1}).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(Do(PutReadMarker{Uuid(1999), kLobby, 1}).status().code(),
            absl::StatusCode::kNotFound);
  state = store_->GetReadState(amy.id, kLobby);
  EXPECT_EQ(state->sequence, 8u);
  EXPECT_EQ(state->unread, 0u);
}

// ---- Idempotency keys ----

TEST_P(StoreConformanceTest, AnIdempotencyKeyIsStoredWithItsMessage) {
  auto find = [this](absl::string_view scope, absl::string_view key,
                     absl::Time not_before = absl::InfinitePast()) {
    absl::StatusOr<std::optional<IdempotentSend>> found =
        store_->FindIdempotentSend(scope, key, not_before);
    EXPECT_TRUE(found.ok()) << found.status();
    return found.ok() ? *found : std::nullopt;
  };
  auto sent = Message(kLobby, 1, "ann", "hello");
  sent->idempotency = model::IdempotencyKey{"user:ann", "k1", "digest-1"};
  MustAppend(sent);
  std::optional<IdempotentSend> found = find("user:ann", "k1");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->digest, "digest-1");
  EXPECT_EQ(found->log, kLobby);
  EXPECT_EQ(found->sequence, 1u);
  EXPECT_EQ(found->event_id, sent->id);
  EXPECT_EQ(found->time, sent->time);
  EXPECT_TRUE(ReadAll(kLobby).at(0)->idempotency.key.empty());  // not read
  EXPECT_FALSE(find("user:bob", "k1").has_value());
  EXPECT_FALSE(find("user:ann", "k2").has_value());
  EXPECT_FALSE(
      find("user:ann", "k1", sent->time + absl::Microseconds(1)).has_value());
  EXPECT_TRUE(find("user:ann", "k1", sent->time).has_value());

  // A refused send keeps no key.
  auto refused = Message(Uuid(77), 0, "ann", "nowhere");
  refused->idempotency = model::IdempotencyKey{"user:ann", "k3", "digest-3"};
  EXPECT_FALSE(Append(refused).ok());
  EXPECT_FALSE(find("user:ann", "k3").has_value());
  // The key outlives its message's purge: a retry is still answered.
  MustAppend(PurgeThrough(kLobby, 2, 1));
  EXPECT_TRUE(find("user:ann", "k1").has_value());
  // While the key lives, another send with it (another server's, racing)
  // is refused and takes no number.
  auto racing = Message(kLobby, 0, "ann", "hello");
  racing->idempotency = model::IdempotencyKey{"user:ann", "k1", "digest-1",
                                              sent->time};
  absl::StatusOr<int64_t> taken = Append(racing);
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ErrorReason(taken.status()), "IDEMPOTENCY_KEY_TAKEN");
  EXPECT_EQ(find("user:ann", "k1")->event_id, sent->id);
  // A key taken again after its lifetime names the new send.
  auto again = Message(kLobby, 3, "ann", "hello again");
  again->idempotency = model::IdempotencyKey{
      "user:ann", "k1", "digest-2", sent->time + absl::Microseconds(1)};
  MustAppend(again);
  EXPECT_EQ(find("user:ann", "k1")->digest, "digest-2");
  EXPECT_EQ(find("user:ann", "k1")->sequence, 3u);

  // Pruning forgets the keys of sends committed before `before`.
  auto later = Message(kLobby, 4, "ann", "later");
  later->idempotency = model::IdempotencyKey{"user:ann", "k4", "digest-4"};
  MustAppend(later);
  EXPECT_EQ(*Do(PruneIdempotencyKeys{later->time}), 1);
  EXPECT_FALSE(find("user:ann", "k1").has_value());
  EXPECT_TRUE(find("user:ann", "k4").has_value());
}

// Also for a log the store appended to before (SqliteStore's writer
// remembers such logs: their owner exists, their last number; a rolled-back
// append or deleting the owner must not leave that memory behind).
TEST_P(StoreConformanceTest, AppendsAfterTheOwnerIsDeletedAreRefused) {
  User ann = MakeUser(1, "ann");
  MustDo(PutUser{ann});
  Room room = MakeRoom(1, "cafe");
  MustDo(PutRoom{room});
  auto one = Message(room.id, 1, "ann", "one");
  MustDo(AppendEvent{one});
  MustDo(AppendEvent{Message(room.id, 2, "ann", "two")});
  // Known now: a refused append leaves the known last number as it was.
  auto again = Message(room.id, 3, "ann", "again");
  again->id = one->id;
  EXPECT_EQ(Do(AppendEvent{again}).status().code(),
            absl::StatusCode::kAlreadyExists);
  MustDo(AppendEvent{Message(room.id, 3, "ann", "three")});
  MustDo(AppendEvent{Message(model::InboxLog(ann.id), 1, "bob", "psst")});

  MustDo(DeleteRoom{room.id});
  EXPECT_EQ(Do(AppendEvent{Message(room.id, 4, "ann", "gone")}).status().code(),
            absl::StatusCode::kNotFound);
  MustDo(DeleteUser{ann.id});
  EXPECT_EQ(Do(AppendEvent{Message(model::InboxLog(ann.id), 2, "bob", "gone")})
                .status()
                .code(),
            absl::StatusCode::kNotFound);
}

// ---- Group commit ----

TEST_P(StoreConformanceTest, SameUsernameTwiceInOneBatchOneWins) {
  auto gate = std::make_unique<WriterGate>(*store_);
  auto first = SubmitWrite(*store_, PutUser{MakeUser(1, "dup")});
  auto second = SubmitWrite(*store_, PutUser{MakeUser(2, "DUP")});
  const StoreStats before = store_->stats();
  gate.reset();
  absl::StatusOr<int64_t> r1 = first->Wait();
  absl::StatusOr<int64_t> r2 = second->Wait();
  EXPECT_TRUE(r1.ok()) << r1.status();
  ExpectError(r2, absl::StatusCode::kAlreadyExists, "USERNAME_TAKEN",
              "username");
  const StoreStats after = store_->stats();
  EXPECT_EQ(after.transactions - before.transactions, 1u);
  EXPECT_EQ(after.writes - before.writes, 2u);
  EXPECT_EQ(store_->GetUserByName("dup")->id, Uuid(1001));
}

TEST_P(StoreConformanceTest, AFailingWriteDoesNotFailTheOthersOfItsBatch) {
  MustDo(PutUser{MakeUser(1, "taken")});
  auto gate = std::make_unique<WriterGate>(*store_);
  auto a = SubmitWrite(*store_, PutRoom{MakeRoom(1, "first")});
  auto b = SubmitWrite(*store_, PutUser{MakeUser(2, "taken")});
  auto c = SubmitWrite(*store_, AppendEvent{Message(kLobby, 1, "x", "y")});
  auto d = SubmitWrite(*store_, DeleteRoom{Uuid(99)});
  auto e = SubmitWrite(*store_, PutUser{MakeUser(3, "fresh")});
  gate.reset();
  EXPECT_TRUE(a->Wait().ok());
  EXPECT_EQ(b->Wait().status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(c->Wait().ok());
  EXPECT_EQ(d->Wait().status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(e->Wait().ok());
  EXPECT_TRUE(store_->GetRoomByName("first").ok());
  EXPECT_EQ(store_->GetUserByName("taken")->id, Uuid(1001));
  EXPECT_TRUE(store_->GetUserByName("fresh").ok());
  EXPECT_EQ(*store_->LastSequence(kLobby), 1u);
}

// As the hub appends: from many threads, each append queued under a lock
// of the caller's. The store numbers a log's events in the order they were
// queued, and calls back in that order too.
TEST_P(StoreConformanceTest, AppendsToOneLogCommitAndCallBackInOrder) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 100;
  struct Record {
    Mutex mu;  // the caller's lock
    std::vector<std::string> queued ABSL_GUARDED_BY(mu);
    Mutex called_mu;
    // Each callback's event: its text and the number it got.
    std::vector<std::pair<std::string, uint64_t>> called
        ABSL_GUARDED_BY(called_mu);
  };
  auto record = std::make_shared<Record>();
  auto all_done = std::make_shared<Latch>(kThreads * kPerThread);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, record, all_done, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto event = Message(kLobby, 0, "writer", absl::StrCat(t, "-", i));
        MutexLock lock(&record->mu);
        record->queued.push_back(event->text);
        store_->Append(AppendEvent{event}, [record, all_done, event](
                                               absl::StatusOr<int64_t> result) {
          EXPECT_TRUE(result.ok()) << result.status();
          {
            MutexLock called(&record->called_mu);
            record->called.emplace_back(event->text, event->sequence);
          }
          all_done->CountDown();
        });
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  ASSERT_TRUE(all_done->Wait());

  MutexLock lock(&record->mu);
  MutexLock called(&record->called_mu);
  ASSERT_EQ(record->called.size(), record->queued.size());
  for (size_t i = 0; i < record->called.size(); ++i) {
    EXPECT_EQ(record->called[i].first, record->queued[i]) << i;
    EXPECT_EQ(record->called[i].second, i + 1) << i;
  }
  std::vector<EventPtr> events = ReadAll(kLobby);
  ASSERT_EQ(events.size(), record->queued.size());
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i]->text, record->queued[i]) << i;
  }
}

TEST_P(StoreConformanceTest, CallbacksMaySubmitAgain) {
  constexpr int kChain = 200;
  auto done = std::make_shared<Latch>(1);
  auto failures = std::make_shared<std::atomic<int>>(0);
  // Each callback submits the next write of the chain.
  struct Chain {
    static void Next(Store* store, int i, std::shared_ptr<Latch> done,
                     std::shared_ptr<std::atomic<int>> failures) {
      if (i == kChain) {
        done->CountDown();
        return;
      }
      store->Submit(
          RevokeToken{absl::StrCat("chain-", i), absl::Now() + absl::Hours(1)},
          [store, i, done, failures](absl::StatusOr<int64_t> result) {
            if (!result.ok()) ++*failures;
            Next(store, i + 1, done, failures);
          });
    }
  };
  Chain::Next(store_.get(), 0, done, failures);
  ASSERT_TRUE(done->Wait());
  EXPECT_EQ(failures->load(), 0);
  EXPECT_EQ(store_->ListRevokedTokens()->size(), static_cast<size_t>(kChain));
}

TEST_P(StoreConformanceTest, SubmitNeverWaitsForTheWriter) {
  // The submitter holds a lock that every callback takes: Submit must not
  // wait for anything the writer does.
  auto mu = std::make_shared<Mutex>();
  constexpr int kWrites = 50;
  auto done = std::make_shared<Latch>(kWrites);
  {
    MutexLock lock(mu.get());
    for (int i = 0; i < kWrites; ++i) {
      store_->Submit(
          RevokeToken{absl::StrCat("t", i), absl::Now() + absl::Hours(1)},
          [mu, done](absl::StatusOr<int64_t>) {
            MutexLock callback_lock(mu.get());
            done->CountDown();
          });
    }
  }
  EXPECT_TRUE(done->Wait());
}

TEST_P(StoreConformanceTest, CloseDrainsTheQueueAndRefusesLaterWrites) {
  constexpr int kWrites = 300;
  auto ok = std::make_shared<std::atomic<int>>(0);
  for (int i = 0; i < kWrites; ++i) {
    store_->Submit(PutUser{MakeUser(i, absl::StrCat("user", i))},
                   [ok](absl::StatusOr<int64_t> result) {
                     if (result.ok()) ++*ok;
                   });
  }
  store_->Close();
  EXPECT_EQ(ok->load(), kWrites);  // every callback ran before Close returned
  store_->Close();                 // idempotent

  ExpectError(
      Commit(*store_, RevokeToken{"late", absl::Now() + absl::Hours(1)}),
      absl::StatusCode::kUnavailable, "SHUTTING_DOWN");
  ExpectError(Commit(*store_, AppendEvent{Message(kLobby, 1, "a", "late")}),
              absl::StatusCode::kUnavailable, "SHUTTING_DOWN");
  // Reads still work.
  EXPECT_EQ(store_->ListUsers("", 1000)->size(), static_cast<size_t>(kWrites));
  EXPECT_THAT(*store_->ListRevokedTokens(), IsEmpty());
}

TEST_P(StoreConformanceTest, CallbacksSubmittingDuringCloseAreRefusedNotLost) {
  // A chain of writes, each submitted by the previous one's callback, races
  // Close: the chain ends with exactly one SHUTTING_DOWN, and Close returns.
  struct State {
    Mutex mu;
    int ok ABSL_GUARDED_BY(mu) = 0;
    int refused ABSL_GUARDED_BY(mu) = 0;
  };
  auto state = std::make_shared<State>();
  struct Chain {
    static void Next(Store* store, int i, std::shared_ptr<State> state) {
      store->Submit(
          RevokeToken{absl::StrCat("c", i), absl::Now() + absl::Hours(1)},
          [store, i, state](absl::StatusOr<int64_t> result) {
            {
              MutexLock lock(&state->mu);
              if (result.ok()) {
                ++state->ok;
              } else {
                EXPECT_EQ(ErrorReason(result.status()), "SHUTTING_DOWN");
                ++state->refused;
                return;
              }
            }
            if (i < 1000000) Next(store, i + 1, state);
          });
    }
  };
  Chain::Next(store_.get(), 0, state);
  store_->Close();
  MutexLock lock(&state->mu);
  EXPECT_EQ(state->refused, 1);
  EXPECT_EQ(store_->ListRevokedTokens()->size(),
            static_cast<size_t>(state->ok));
}

TEST_P(StoreConformanceTest, ReadsRunWhileWriting) {
  constexpr uint64_t kMessages = 2000;
  auto written = std::make_shared<Latch>(1);
  std::atomic<bool> stop{false};
  std::atomic<int> reads{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&] {
      uint64_t seen = 0;
      while (!stop.load()) {
        absl::StatusOr<uint64_t> last = store_->LastSequence(kLobby);
        ASSERT_TRUE(last.ok()) << last.status();
        EXPECT_GE(*last, seen);  // never goes back
        seen = *last;
        absl::StatusOr<PageResult> page =
            store_->ListMessages(kLobby, Page{20, 0, 0});
        ASSERT_TRUE(page.ok()) << page.status();
        // A page is contiguous and at least as recent as `seen`.
        for (size_t i = 1; i < page->messages.size(); ++i) {
          EXPECT_EQ(page->messages[i]->sequence,
                    page->messages[i - 1]->sequence + 1);
        }
        if (!page->messages.empty()) {
          EXPECT_GE(page->messages.back()->sequence, seen);
        }
        absl::StatusOr<std::vector<EventPtr>> after =
            store_->ReadAfter(kLobby, seen > 5 ? seen - 5 : 0, 100);
        ASSERT_TRUE(after.ok()) << after.status();
        ++reads;
      }
    });
  }
  for (uint64_t seq = 1; seq <= kMessages; ++seq) {
    AppendChecked(*store_, Message(kLobby, seq, "w", "text"),
                  [seq, written](absl::StatusOr<int64_t> result) {
                    EXPECT_TRUE(result.ok()) << result.status();
                    if (seq == kMessages) written->CountDown();
                  });
  }
  EXPECT_TRUE(written->Wait());
  stop = true;
  for (std::thread& reader : readers) reader.join();
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(*store_->LastSequence(kLobby), kMessages);
  EXPECT_EQ(ReadAll(kLobby).size(), kMessages);
}

}  // namespace
}  // namespace parley::store
