// Durable state: users, rooms, memberships, every room's ordered log of
// events (messages with their edits and tombstones), direct-message inboxes
// and revoked tokens.
//
// Writes are asynchronous and group-committed: Submit queues a write for the
// store's writer thread, which applies many queued writes in one transaction
// (each in its own savepoint, so one failing write does not fail the others)
// and calls every `done` after the commit, in submission order, on the writer
// thread. Nothing is acknowledged before it is durable. Reads are synchronous
// and may run on any thread concurrently with the writer. Implementations are
// thread-safe.
#ifndef PARLEY_SERVER_STORE_STORE_H_
#define PARLEY_SERVER_STORE_STORE_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/chat/event.h"

namespace parley::store {

// The lobby (seed 000/004's central room) is a public room that always
// exists: the first migration creates it with this id and name.
inline constexpr absl::string_view kLobbyId =
    "00000000-0000-4000-8000-000000000000";
inline constexpr absl::string_view kLobbyName = "lobby";

// The log a user's direct messages are appended to.
std::string InboxLog(absl::string_view user_id);  // "dm:<user_id>"

struct User {
  std::string id;  // UUID
  std::string username;
  std::string display_name;
  std::string password_hash;  // argon2id, libsodium's encoded form
  absl::Time create_time;
  absl::Time update_time;
  // Tokens issued before this instant are refused (set on password change).
  absl::Time tokens_valid_after = absl::InfinitePast();
};

enum class Visibility { kPublic = 1, kPrivate = 2, kHidden = 3 };

struct Room {
  std::string id;  // UUID; also the id of the room's log
  std::string name;
  std::string description;
  Visibility visibility = Visibility::kPublic;
  std::string password_hash;  // empty when none
  std::string owner_id;       // empty for the lobby
  absl::Time create_time;
  absl::Time update_time;
};

struct Member {
  std::string room_id;
  std::string user_id;
  std::string role;  // "owner" or "member"
  absl::Time join_time;
  // Filled by reads from the users table.
  std::string username;
  std::string display_name;
};

// ---- Writes ----

// Creates (`create`) or replaces (by id) a user. ALREADY_EXISTS (reason
// USERNAME_TAKEN, field username) when the username is taken; NOT_FOUND when
// replacing a user that does not exist.
struct PutUser {
  User user;
  bool create = true;
};
// Deletes a user and their memberships. NOT_FOUND when missing.
struct DeleteUser {
  std::string id;
};
// Creates (`create`) or replaces (by id) a room. ALREADY_EXISTS (reason
// ROOM_NAME_TAKEN, field name) when the name is taken. Creating a room whose
// owner_id is set also makes the owner a member with role "owner".
struct PutRoom {
  Room room;
  bool create = true;
};
// Deletes a room, its memberships and its log. NOT_FOUND when missing.
struct DeleteRoom {
  std::string id;
};
// Adds or replaces a membership (join_time, role).
struct PutMember {
  Member member;
};
// Ends a membership. NOT_FOUND when the user is not a member.
struct DeleteMember {
  std::string room_id;
  std::string user_id;
};
// Remembers a revoked token id until it would have expired anyway.
struct RevokeToken {
  std::string jti;
  absl::Time expire_time;
};
// Appends `event` to its log (event->log) at event->sequence, which the hub
// assigned (one more than the log's last). Effects by kind:
//  message, join, leave, member_added, member_removed: the row itself.
//  edit:   also sets the target message's text to event->text and its
//          update_time to event->time, keeping the old text as a version.
//  delete: also makes the target message a tombstone (deleted, text "").
//  purge:  also removes every message of the log with sequence <=
//          event->purge_through (the purge event itself stays).
// The done value is the number of messages purged (0 for other kinds).
struct AppendEvent {
  chat::EventPtr event;
};

// Moves `user_id`'s read marker in a room forward to `sequence` (capped at
// the room's last sequence number; never backward). The done value is the
// marker after the write. NOT_FOUND when the room or user is gone.
struct PutReadMarker {
  std::string user_id;
  std::string room_id;
  uint64_t sequence = 0;
};
// Forgets the idempotency keys of sends committed before `before`.
struct PruneIdempotencyKeys {
  absl::Time before;
};

using Write =
    std::variant<PutUser, DeleteUser, PutRoom, DeleteRoom, PutMember,
                 DeleteMember, RevokeToken, AppendEvent, PutReadMarker,
                 PruneIdempotencyKeys>;
// Called once per write with OK and a count (see AppendEvent), or the
// write's error. Runs on the writer thread: it must not block.
using WriteDone = absl::AnyInvocable<void(absl::StatusOr<int64_t>)>;

// ---- Reads ----

// Which messages of a log to list. Neither `before` nor `after`: the `limit`
// most recent; `before`: the `limit` just before that sequence; `after`: the
// `limit` just after it. Results are always oldest first.
struct Page {
  size_t limit = 100;
  uint64_t before = 0;  // 0: not set
  uint64_t after = 0;   // 0: not set, unless oldest_first
  // With after == 0: the first `limit` messages of the log.
  bool oldest_first = false;
};
struct PageResult {
  std::vector<chat::EventPtr> messages;  // kind message only, tombstones too
  bool has_older = false;
  bool has_newer = false;
};

// The message an idempotent send stored (see chat::IdempotencyKey).
struct IdempotentSend {
  std::string digest;
  std::string log;
  uint64_t sequence = 0;
  std::string event_id;
  absl::Time time;
};

// How far a user has read a room.
struct ReadState {
  bool has_marker = false;
  uint64_t sequence = 0;  // the marker
  uint64_t unread = 0;    // messages after it, by others, not deleted
};

class Store {
 public:
  virtual ~Store() = default;

  // Queues `write`; `done` runs after it is committed or failed.
  virtual void Submit(Write write, WriteDone done) = 0;

  // Stops accepting writes, commits what is queued (running its callbacks)
  // and stops the writer thread. Submit after Close fails with UNAVAILABLE
  // (reason SHUTTING_DOWN). Idempotent; the destructor calls it.
  virtual void Close() = 0;

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
  // the rooms people created (seed 003: "an empty array when none").
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

  // The highest sequence number appended to `log`, 0 when none (also after a
  // purge: purged numbers are never reused).
  virtual absl::StatusOr<uint64_t> LastSequence(absl::string_view log) = 0;
  // Every event of `log` (all kinds, in their current state) with sequence
  // > `after`, oldest first, at most `limit`.
  virtual absl::StatusOr<std::vector<chat::EventPtr>> ReadAfter(
      absl::string_view log, uint64_t after, size_t limit) = 0;
  // A page of the log's message events, each in its current state
  // (update_time, deleted, previous_versions filled).
  virtual absl::StatusOr<PageResult> ListMessages(absl::string_view log,
                                                  const Page& page) = 0;
  // One message event of `log` by id, in its current state. NOT_FOUND
  // (reason MESSAGE_NOT_FOUND) when missing or not a message.
  virtual absl::StatusOr<chat::EventPtr> GetMessage(absl::string_view log,
                                                    absl::string_view id) = 0;
  // The distinct senders of the log's messages, in order of first post.
  virtual absl::StatusOr<std::vector<std::string>> ListPosters(
      absl::string_view log) = 0;

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

#endif  // PARLEY_SERVER_STORE_STORE_H_
