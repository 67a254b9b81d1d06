#include "server/auth/access.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/common/errors.h"
#include "server/model/ids.h"

namespace parley::auth {
namespace {

constexpr char kOwnerId[] = "user-owner";
constexpr char kMemberId[] = "user-member";
constexpr char kOutsiderId[] = "user-outsider";
constexpr char kAdminId[] = "user-admin";

enum class RoomKind { kPublic, kPrivate, kHidden, kLobby };
enum class Who {
  kNonMember,
  kMember,
  kOwner,
  kAdmin,
  kRoomTokenHere,
  kRoomTokenElsewhere
};

std::string Name(RoomKind r) {
  switch (r) {
    case RoomKind::kPublic: return "public";
    case RoomKind::kPrivate: return "private";
    case RoomKind::kHidden: return "hidden";
    case RoomKind::kLobby: return "lobby";
  }
  return "?";
}

std::string Name(Who w) {
  switch (w) {
    case Who::kNonMember: return "non-member";
    case Who::kMember: return "member";
    case Who::kOwner: return "owner";
    case Who::kAdmin: return "admin";
    case Who::kRoomTokenHere: return "room token for this room";
    case Who::kRoomTokenElsewhere: return "room token for another room";
  }
  return "?";
}

store::Room MakeRoom(RoomKind kind) {
  store::Room room;
  if (kind == RoomKind::kLobby) {
    room.id = std::string(model::kLobbyId);
    room.name = std::string(model::kLobbyName);
    room.visibility = store::Visibility::kPublic;
    return room;  // no owner
  }
  room.id = "room-" + Name(kind);
  room.name = Name(kind);
  room.owner_id = kOwnerId;
  room.visibility = kind == RoomKind::kPublic    ? store::Visibility::kPublic
                    : kind == RoomKind::kPrivate ? store::Visibility::kPrivate
                                                 : store::Visibility::kHidden;
  return room;
}

Principal User(const std::string& id, bool admin = false) {
  Principal p;
  p.kind = TokenKind::kUser;
  p.user_id = id;
  p.username = id;
  p.display_name = id;
  p.admin = admin;
  return p;
}

Principal RoomToken(const std::string& room_id) {
  Principal p;
  p.kind = TokenKind::kRoom;
  p.room_id = room_id;
  p.display_name = "guest";
  return p;
}

std::optional<store::Member> Membership(const store::Room& room,
                                        const std::string& user_id,
                                        const std::string& role) {
  store::Member m;
  m.room_id = room.id;
  m.user_id = user_id;
  m.role = role;
  return m;
}

struct Case {
  RoomKind room;
  Who who;
  bool visible, read, manage;
};

// The rules of access.h, written out in full.
const std::vector<Case>& Matrix() {
  static const auto* cases = new std::vector<Case>{
      // room              who                        visible read  manage
      {RoomKind::kPublic, Who::kNonMember, true, true, false},
      {RoomKind::kPublic, Who::kMember, true, true, false},
      {RoomKind::kPublic, Who::kOwner, true, true, true},
      {RoomKind::kPublic, Who::kAdmin, true, true, true},
      {RoomKind::kPublic, Who::kRoomTokenHere, true, true, false},
      {RoomKind::kPublic, Who::kRoomTokenElsewhere, false, false, false},

      {RoomKind::kPrivate, Who::kNonMember, true, false, false},
      {RoomKind::kPrivate, Who::kMember, true, true, false},
      {RoomKind::kPrivate, Who::kOwner, true, true, true},
      {RoomKind::kPrivate, Who::kAdmin, true, true, true},
      {RoomKind::kPrivate, Who::kRoomTokenHere, true, true, false},
      {RoomKind::kPrivate, Who::kRoomTokenElsewhere, false, false, false},

      {RoomKind::kHidden, Who::kNonMember, false, false, false},
      {RoomKind::kHidden, Who::kMember, true, true, false},
      {RoomKind::kHidden, Who::kOwner, true, true, true},
      {RoomKind::kHidden, Who::kAdmin, true, true, true},
      {RoomKind::kHidden, Who::kRoomTokenHere, true, true, false},
      {RoomKind::kHidden, Who::kRoomTokenElsewhere, false, false, false},

      // The lobby has no owner: even a membership with role "owner" does
      // not manage it.
      {RoomKind::kLobby, Who::kNonMember, true, true, false},
      {RoomKind::kLobby, Who::kMember, true, true, false},
      {RoomKind::kLobby, Who::kOwner, true, true, false},
      {RoomKind::kLobby, Who::kAdmin, true, true, true},
      {RoomKind::kLobby, Who::kRoomTokenHere, true, true, false},
      {RoomKind::kLobby, Who::kRoomTokenElsewhere, false, false, false},
  };
  return *cases;
}

RoomRights EvaluateCase(const Case& c) {
  const store::Room room = MakeRoom(c.room);
  switch (c.who) {
    case Who::kNonMember:
      return Evaluate(room, std::nullopt, User(kOutsiderId));
    case Who::kMember:
      return Evaluate(room, Membership(room, kMemberId, "member"),
                      User(kMemberId));
    case Who::kOwner:
      return Evaluate(room, Membership(room, kOwnerId, "owner"),
                      User(kOwnerId));
    case Who::kAdmin:
      return Evaluate(room, std::nullopt, User(kAdminId, /*admin=*/true));
    case Who::kRoomTokenHere:
      return Evaluate(room, std::nullopt, RoomToken(room.id));
    case Who::kRoomTokenElsewhere:
      return Evaluate(room, std::nullopt, RoomToken("room-elsewhere"));
  }
  return {};
}

TEST(AccessTest, MatrixCoversEveryRoomAndPrincipal) {
  EXPECT_EQ(Matrix().size(), 4u * 6u);
}

TEST(AccessTest, EvaluateFollowsTheMatrix) {
  for (const Case& c : Matrix()) {
    SCOPED_TRACE(absl::StrCat(Name(c.room), " room, ", Name(c.who)));
    const RoomRights rights = EvaluateCase(c);
    EXPECT_EQ(rights.visible, c.visible);
    EXPECT_EQ(rights.read, c.read);
    EXPECT_EQ(rights.manage, c.manage);
  }
}

TEST(AccessTest, RequireReadAndManageFollowTheMatrix) {
  for (const Case& c : Matrix()) {
    SCOPED_TRACE(absl::StrCat(Name(c.room), " room, ", Name(c.who)));
    const RoomRights rights = EvaluateCase(c);

    const absl::Status read = RequireRead(rights);
    if (c.read) {
      EXPECT_TRUE(read.ok()) << read;
    } else if (!c.visible) {
      EXPECT_EQ(read.code(), absl::StatusCode::kNotFound);
      EXPECT_EQ(ErrorReason(read), "ROOM_NOT_FOUND");
      EXPECT_EQ(ErrorField(read), "room");
    } else {
      EXPECT_EQ(read.code(), absl::StatusCode::kPermissionDenied);
      EXPECT_EQ(ErrorReason(read), "NOT_A_MEMBER");
    }

    const absl::Status manage = RequireManage(rights);
    if (c.manage) {
      EXPECT_TRUE(manage.ok()) << manage;
    } else if (!c.visible) {
      EXPECT_EQ(manage.code(), absl::StatusCode::kNotFound);
      EXPECT_EQ(ErrorReason(manage), "ROOM_NOT_FOUND");
      EXPECT_EQ(ErrorField(manage), "room");
    } else {
      EXPECT_EQ(manage.code(), absl::StatusCode::kPermissionDenied);
      EXPECT_EQ(ErrorReason(manage), "NOT_ROOM_OWNER");
    }
  }
}

TEST(AccessTest, OwnershipByOwnerIdAlone) {
  const store::Room room = MakeRoom(RoomKind::kHidden);
  const RoomRights rights = Evaluate(room, std::nullopt, User(kOwnerId));
  EXPECT_TRUE(rights.visible);
  EXPECT_TRUE(rights.read);
  EXPECT_TRUE(rights.manage);
}

TEST(AccessTest, OwnershipByRoleAlone) {
  store::Room room = MakeRoom(RoomKind::kHidden);
  room.owner_id = kOutsiderId;  // e.g. ownership handed over by role
  const RoomRights rights = Evaluate(
      room, Membership(room, kMemberId, "owner"), User(kMemberId));
  EXPECT_TRUE(rights.manage);
}

TEST(AccessTest, SomeoneElsesMembershipDoesNotCount) {
  const store::Room room = MakeRoom(RoomKind::kHidden);
  RoomRights rights =
      Evaluate(room, Membership(room, kOwnerId, "owner"), User(kOutsiderId));
  EXPECT_FALSE(rights.visible);
  EXPECT_FALSE(rights.manage);
  // Nor a membership of another room.
  store::Member elsewhere = *Membership(room, kMemberId, "member");
  elsewhere.room_id = "room-elsewhere";
  rights = Evaluate(room, elsewhere, User(kMemberId));
  EXPECT_FALSE(rights.visible);
}

TEST(AccessTest, RoomTokenNeverManagesEvenIfMarkedAdmin) {
  const store::Room room = MakeRoom(RoomKind::kPublic);
  Principal token = RoomToken(room.id);
  token.admin = true;
  const RoomRights rights = Evaluate(room, std::nullopt, token);
  EXPECT_TRUE(rights.read);
  EXPECT_FALSE(rights.manage);
}

TEST(AccessTest, LobbyIsPublicWhateverItsStoredVisibility) {
  store::Room lobby = MakeRoom(RoomKind::kLobby);
  lobby.visibility = store::Visibility::kHidden;
  const RoomRights rights = Evaluate(lobby, std::nullopt, User(kOutsiderId));
  EXPECT_TRUE(rights.visible);
  EXPECT_TRUE(rights.read);
  EXPECT_FALSE(rights.manage);
}

}  // namespace
}  // namespace parley::auth
