// The directory: users, rooms, memberships, revoked tokens, read markers and
// idempotency keys. Writes are asynchronous and group-committed (see
// store.h); reads are synchronous and may run on any thread. Thread-safe.
#ifndef PARLEY_SERVER_STORE_DIRECTORY_H_
#define PARLEY_SERVER_STORE_DIRECTORY_H_

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/store/types.h"

namespace parley::store {

class Directory {
 public:
  virtual ~Directory() = default;

  // Queues `write`; `done` runs after it is committed or failed.
  virtual void Submit(DirectoryWrite write, WriteDone done) = 0;

  // NOT_FOUND (reason USER_NOT_FOUND) when missing.
  virtual absl::StatusOr<User> GetUser(absl::string_view id) = 0;
  virtual absl::StatusOr<User> GetUserByName(absl::string_view username) = 0;
  // Users with username > `after_username`, by username, at most `limit`.
  virtual absl::StatusOr<std::vector<User>> ListUsers(
      absl::string_view after_username, size_t limit) = 0;

  // NOT_FOUND (reason ROOM_NOT_FOUND) when missing.
  virtual absl::StatusOr<Room> GetRoom(absl::string_view id) = 0;
  virtual absl::StatusOr<Room> GetRoomByName(absl::string_view name) = 0;
  // Rooms with name > `after_name`, by name, at most `limit`: every public
  // and private room, and the hidden rooms `viewer_id` is a member of. The
  // lobby, which every client reaches by name, is not listed: the list shows
  // the rooms people created ("an empty array when none").
  virtual absl::StatusOr<std::vector<Room>> ListRooms(
      absl::string_view viewer_id, absl::string_view after_name,
      size_t limit) = 0;

  // The membership, or nullopt when `user_id` is not a member.
  virtual absl::StatusOr<std::optional<Member>> GetMember(
      absl::string_view room_id, absl::string_view user_id) = 0;
  // A room's members by username.
  virtual absl::StatusOr<std::vector<Member>> ListMembers(
      absl::string_view room_id) = 0;
  virtual absl::StatusOr<size_t> CountMembers(absl::string_view room_id) = 0;

  // The send stored under (`scope`, `key`) at or after `not_before`, or
  // nullopt.
  virtual absl::StatusOr<std::optional<IdempotentSend>> FindIdempotentSend(
      absl::string_view scope, absl::string_view key,
      absl::Time not_before) = 0;
  // `user_id`'s read marker in the room and the messages counted unread
  // after it; nothing unread when the user never set a marker there.
  virtual absl::StatusOr<ReadState> GetReadState(absl::string_view user_id,
                                                 absl::string_view room_id) = 0;

  // Every revoked token id that has not expired yet.
  virtual absl::StatusOr<std::vector<std::string>> ListRevokedTokens() = 0;
};

}  // namespace parley::store

#endif  // PARLEY_SERVER_STORE_DIRECTORY_H_
