// The errors of the store layer, with the reasons every implementation
// gives (see store.h), and the checks of a write's own fields that come
// before any implementation looks at its data, so that callers can tell the
// errors apart whichever store runs.
#ifndef PARLEY_SERVER_STORE_ERRORS_H_
#define PARLEY_SERVER_STORE_ERRORS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/store/types.h"

namespace parley::store {

// UNAVAILABLE (STORE_FAILED): the database failed; `message` says how.
absl::Status StoreFailed(absl::string_view message);
// UNAVAILABLE (SHUTTING_DOWN): a write after Close.
absl::Status ShuttingDown();
// NOT_FOUND (USER_NOT_FOUND, ROOM_NOT_FOUND, MESSAGE_NOT_FOUND,
// MEMBER_NOT_FOUND).
absl::Status UserNotFound();
absl::Status RoomNotFound();
absl::Status MessageNotFound();
absl::Status MemberNotFound();
// ALREADY_EXISTS: USERNAME_TAKEN (field username), USER_EXISTS (id),
// ROOM_NAME_TAKEN (name), ROOM_EXISTS (id), EVENT_EXISTS (id).
absl::Status UsernameTaken();
absl::Status UserIdTaken();
absl::Status RoomNameTaken();
absl::Status RoomIdTaken();
absl::Status EventIdTaken();
// ALREADY_EXISTS (IDEMPOTENCY_KEY_TAKEN): an append whose idempotency key is
// stored with another send that has not expired.
absl::Status IdempotencyKeyTaken();
// FAILED_PRECONDITION (LOBBY_PROTECTED): DeleteRoom of the lobby.
absl::Status LobbyProtected();

// INVALID_ARGUMENT (MISSING_ID) for a user without an id; OK otherwise.
absl::Status CheckPutUser(const PutUser& write);
// INVALID_ARGUMENT (MISSING_ID, INVALID_VISIBILITY); OK otherwise.
absl::Status CheckPutRoom(const PutRoom& write);
// INVALID_ARGUMENT for what is not a log entry: no event, a gap or typing
// event, no log, or a sequence number (the store assigns it); OK otherwise.
absl::Status CheckAppend(const AppendEvent& append);

}  // namespace parley::store

#endif  // PARLEY_SERVER_STORE_ERRORS_H_
