// The errors of the store layer, with the reasons every implementation
// gives (see store.h), so that callers can tell them apart whichever store
// runs.
#ifndef PARLEY_SERVER_STORE_ERRORS_H_
#define PARLEY_SERVER_STORE_ERRORS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace parley::store {

// UNAVAILABLE (STORE_FAILED): the database failed; `message` says how.
absl::Status StoreFailed(absl::string_view message);
// UNAVAILABLE (SHUTTING_DOWN): a write after Close.
absl::Status ShuttingDown();
// NOT_FOUND (USER_NOT_FOUND, ROOM_NOT_FOUND, MESSAGE_NOT_FOUND).
absl::Status UserNotFound();
absl::Status RoomNotFound();
absl::Status MessageNotFound();

}  // namespace parley::store

#endif  // PARLEY_SERVER_STORE_ERRORS_H_
