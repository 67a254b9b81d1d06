#include "server/store/errors.h"

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

}  // namespace parley::store
