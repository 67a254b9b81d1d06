#include "server/auth/access.h"

#include "server/common/errors.h"
#include "server/model/ids.h"

namespace parley::auth {
namespace {

absl::Status RoomNotFound() {
  return WithReason(absl::NotFoundError("room not found"), "ROOM_NOT_FOUND",
                    "room");
}

}  // namespace

RoomRights Evaluate(const store::Room& room,
                    const std::optional<store::Member>& member,
                    const Principal& who) {
  RoomRights rights;
  if (who.kind == TokenKind::kRoom) {
    // A room token opens its one room, and never to manage it.
    if (!who.room_id.empty() && who.room_id == room.id) {
      rights.visible = rights.read = true;
    }
    return rights;
  }
  if (who.admin) {
    rights.visible = rights.read = rights.manage = true;
    return rights;
  }

  const bool lobby = room.id == model::kLobbyId;
  // Only a membership of this user in this room counts.
  const bool is_member = member.has_value() && !who.user_id.empty() &&
                         member->user_id == who.user_id &&
                         member->room_id == room.id;
  // The lobby is everyone's and has no owner.
  const bool owner =
      !lobby && !who.user_id.empty() &&
      ((is_member && member->role == "owner") || room.owner_id == who.user_id);
  const bool insider = is_member || owner;

  const store::Visibility visibility =
      lobby ? store::Visibility::kPublic : room.visibility;
  switch (visibility) {
    case store::Visibility::kPublic:
      rights.visible = rights.read = true;
      break;
    case store::Visibility::kPrivate:
      rights.visible = true;
      rights.read = insider;
      break;
    case store::Visibility::kHidden:
      rights.visible = rights.read = insider;
      break;
  }
  rights.manage = owner;
  return rights;
}

absl::Status RequireRead(const RoomRights& rights) {
  if (rights.read) return absl::OkStatus();
  if (!rights.visible) return RoomNotFound();
  return WithReason(
      absl::PermissionDeniedError("only members of this room may do this"),
      "NOT_A_MEMBER");
}

absl::Status RequireManage(const RoomRights& rights) {
  if (rights.manage) return absl::OkStatus();
  if (!rights.visible) return RoomNotFound();
  return WithReason(absl::PermissionDeniedError(
                        "only the room's owner or an admin may do this"),
                    "NOT_ROOM_OWNER");
}

}  // namespace parley::auth
