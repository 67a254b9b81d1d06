#include "server/store/errors.h"

#include "absl/strings/str_cat.h"
#include "server/common/errors.h"

namespace parley::store {

absl::Status StoreFailed(absl::string_view message) {
  return WithReason(absl::UnavailableError(message), "STORE_FAILED");
}
absl::Status ShuttingDown() {
  return WithReason(absl::UnavailableError("the store is closed"),
                    "SHUTTING_DOWN");
}
absl::Status UserNotFound() {
  return WithReason(absl::NotFoundError("no such user"), "USER_NOT_FOUND");
}
absl::Status RoomNotFound() {
  return WithReason(absl::NotFoundError("no such room"), "ROOM_NOT_FOUND");
}
absl::Status MessageNotFound() {
  return WithReason(absl::NotFoundError("no such message"),
                    "MESSAGE_NOT_FOUND");
}
absl::Status MemberNotFound() {
  return WithReason(absl::NotFoundError("the user is not a member"),
                    "MEMBER_NOT_FOUND");
}

absl::Status UsernameTaken() {
  return WithReason(absl::AlreadyExistsError("the username is taken"),
                    "USERNAME_TAKEN", "username");
}
absl::Status UserIdTaken() {
  return WithReason(absl::AlreadyExistsError("a user with this id exists"),
                    "USER_EXISTS", "id");
}
absl::Status RoomNameTaken() {
  return WithReason(absl::AlreadyExistsError("the room name is taken"),
                    "ROOM_NAME_TAKEN", "name");
}
absl::Status RoomIdTaken() {
  return WithReason(absl::AlreadyExistsError("a room with this id exists"),
                    "ROOM_EXISTS", "id");
}
absl::Status EventIdTaken() {
  return WithReason(absl::AlreadyExistsError("the event id is taken"),
                    "EVENT_EXISTS", "id");
}
absl::Status IdempotencyKeyTaken() {
  return WithReason(absl::AlreadyExistsError("the idempotency key is taken by "
                                             "another send"),
                    "IDEMPOTENCY_KEY_TAKEN", "idempotency_key");
}
absl::Status LobbyProtected() {
  return WithReason(
      absl::FailedPreconditionError("the lobby cannot be deleted"),
      "LOBBY_PROTECTED");
}

absl::Status CheckPutUser(const PutUser& write) {
  if (write.user.id.empty()) {
    return InvalidInput("MISSING_ID", "id", "the user has no id");
  }
  return absl::OkStatus();
}

absl::Status CheckPutRoom(const PutRoom& write) {
  if (write.room.id.empty()) {
    return InvalidInput("MISSING_ID", "id", "the room has no id");
  }
  const int visibility = static_cast<int>(write.room.visibility);
  if (visibility < 1 || visibility > 3) {
    return InvalidInput("INVALID_VISIBILITY", "visibility",
                        "unknown room visibility");
  }
  return absl::OkStatus();
}

absl::Status CheckAppend(const AppendEvent& append) {
  if (append.event == nullptr) {
    return absl::InvalidArgumentError("AppendEvent without an event");
  }
  const model::Event& e = *append.event;
  if (e.kind == model::EventKind::kGap || e.kind == model::EventKind::kTyping ||
      e.log.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a log entry: log \"", e.log, "\""));
  }
  if (e.sequence != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("the store numbers appends; got sequence ", e.sequence));
  }
  return absl::OkStatus();
}

}  // namespace parley::store
