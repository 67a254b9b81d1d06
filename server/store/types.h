// The records and operations of Parley's durable state, shared by every
// store implementation (see directory.h, event_log.h and store.h).
#ifndef PARLEY_SERVER_STORE_TYPES_H_
#define PARLEY_SERVER_STORE_TYPES_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/common/metrics.h"
#include "server/model/event.h"

namespace parley::store {

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
// Deletes a room, its memberships, read markers and its log. NOT_FOUND when
// missing.
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

// Every write of the directory.
using DirectoryWrite =
    std::variant<PutUser, DeleteUser, PutRoom, DeleteRoom, PutMember,
                 DeleteMember, RevokeToken, PutReadMarker,
                 PruneIdempotencyKeys>;
// Called once per write with OK and a count (see AppendEvent), or the
// write's error. Runs on a thread of the store's: it must not block.
using WriteDone = absl::AnyInvocable<void(absl::StatusOr<int64_t>)>;

// Appends `event` to its log (event->log). The store assigns
// event->sequence inside the transaction that commits the event: one more
// than the log's last, so a log's numbers are gapless and one order holds
// however many servers append to it (the caller leaves it 0; the store sets
// it before `done` runs, and the caller must not read it before). Effects by
// kind:
//  message, join, leave, member_added, member_removed: the row itself.
//  edit:   also sets the target message's text to event->text and its
//          update_time to event->time, keeping the old text as a version.
//  delete: also makes the target message a tombstone (deleted, text "").
//  purge:  also removes every message of the log with sequence <=
//          event->purge_through (the purge event itself stays).
// An event with an idempotency key stores the key in the same transaction.
// The done value is the number of messages purged (0 for other kinds).
struct AppendEvent {
  std::shared_ptr<model::Event> event;
};

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
  std::vector<model::EventPtr> messages;  // kind message only, tombstones too
  bool has_older = false;
  bool has_newer = false;
};

// The message an idempotent send stored (see model::IdempotencyKey).
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

// Counters of the writer, for metrics. Monotonic.
struct StoreStats {
  uint64_t transactions = 0;  // transactions begun (one per batch)
  uint64_t writes = 0;        // writes run in them (failed ones included)
  size_t largest_batch = 0;
  absl::Duration commit_time_total;  // BEGIN to end of COMMIT, summed
  absl::Duration longest_commit;     // the longest of them
  // SQLite's WAL checkpoints (0 for stores without them).
  uint64_t checkpoints = 0;  // by the checkpoint thread (checkpoint_pages)
  uint64_t checkpoint_restarts = 0;  // by the writer, to start the WAL again
  absl::Duration checkpoint_time_total;
  // What group commit adds to a write: from Submit to the end of the COMMIT
  // of the transaction it ran in (its wait in the writer's queue, then its
  // batch), one count per write run, in metrics::kLatencyBucketBounds.
  std::array<uint64_t, metrics::kLatencyBuckets> write_wait_buckets{};
  absl::Duration write_wait_total;
  absl::Duration longest_write_wait;
};

}  // namespace parley::store

#endif  // PARLEY_SERVER_STORE_TYPES_H_
