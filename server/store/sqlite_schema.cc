// SqliteStore's schema: its migrations, in order, and the codes of event
// kinds.
#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server/common/errors.h"
#include "server/store/errors.h"
#include "server/store/sqlite_internal.h"
#include "server/store/sqlite_store.h"

namespace parley::store {
namespace sqlite_internal {

// Times are int64 microseconds since the Unix epoch; INT64_MIN stands for
// absl::InfinitePast() ("never", e.g. a message never edited). Usernames and
// room names compare with NOCASE (ASCII case-insensitive). Event kinds are
// stored as parley.v1.EventKind numbers (see KindCode).
//
//  users            id PK, username UNIQUE, ...
//  rooms            id PK, name UNIQUE, visibility 1..3, owner_id ('' none;
//                   not a foreign key: a room outlives its owner's account)
//  members          (room_id, user_id) PK, role, join_time; cascades from
//                   rooms and users
//  events           (log, sequence) PK, id UNIQUE (NULL when the event has
//                   none), every model::Event field a log entry needs, plus
//                   the message's current state (update_time, deleted).
//                   Purge only removes kind-message rows and the purge event
//                   itself stays, so max(sequence) of a log is always the
//                   last number appended: LastSequence needs no extra table.
//  message_versions (message_id, replaced_by) PK: an edited message's earlier
//                   texts, `replaced_by` being the sequence of the edit that
//                   replaced the text; cascades from events.
//  revoked_tokens   jti PK, expire_time
//  idempotency_keys (scope, key) PK: the message an idempotent send stored
//                   (log, sequence, event_id) and a digest of its request;
//                   rows older than the key lifetime are pruned
//  read_markers     (user_id, room_id) PK, sequence: how far a user has read
//                   a room; cascades from users and rooms
//
// Migrations are append-only: never edit one that has shipped; add the next.
namespace {

constexpr const char* kMigrations[] = {
    // 1: everything, and the lobby.
    R"sql(
CREATE TABLE users (
  id TEXT NOT NULL PRIMARY KEY,
  username TEXT NOT NULL COLLATE NOCASE UNIQUE,
  display_name TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  create_time INTEGER NOT NULL,
  update_time INTEGER NOT NULL,
  tokens_valid_after INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE rooms (
  id TEXT NOT NULL PRIMARY KEY,
  name TEXT NOT NULL COLLATE NOCASE UNIQUE,
  description TEXT NOT NULL,
  visibility INTEGER NOT NULL CHECK (visibility IN (1, 2, 3)),
  password_hash TEXT NOT NULL,
  owner_id TEXT NOT NULL,
  create_time INTEGER NOT NULL,
  update_time INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE members (
  room_id TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
  user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  role TEXT NOT NULL,
  join_time INTEGER NOT NULL,
  PRIMARY KEY (room_id, user_id)
) WITHOUT ROWID;
CREATE INDEX members_by_user ON members (user_id);

CREATE TABLE events (
  log TEXT NOT NULL,
  sequence INTEGER NOT NULL,
  kind INTEGER NOT NULL,
  id TEXT UNIQUE,
  room_id TEXT NOT NULL,
  room TEXT NOT NULL,
  sender TEXT NOT NULL,
  sender_id TEXT NOT NULL,
  recipient_id TEXT NOT NULL,
  recipient TEXT NOT NULL,
  text TEXT NOT NULL,
  time INTEGER NOT NULL,
  target_id TEXT NOT NULL,
  target_sequence INTEGER NOT NULL,
  purge_through INTEGER NOT NULL,
  update_time INTEGER NOT NULL,
  deleted INTEGER NOT NULL,
  PRIMARY KEY (log, sequence)
) WITHOUT ROWID;
-- The edits of a message, to clear their text when it is deleted or purged.
CREATE INDEX events_edits_by_target ON events (target_id) WHERE kind = 5;

CREATE TABLE message_versions (
  message_id TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
  replaced_by INTEGER NOT NULL,
  text TEXT NOT NULL,
  time INTEGER NOT NULL,
  PRIMARY KEY (message_id, replaced_by)
) WITHOUT ROWID;

CREATE TABLE revoked_tokens (
  jti TEXT NOT NULL PRIMARY KEY,
  expire_time INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX revoked_tokens_by_expiry ON revoked_tokens (expire_time);

INSERT INTO rooms VALUES (
  '00000000-0000-4000-8000-000000000000', 'lobby', '', 1, '', '',
  CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER),
  CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER));
)sql",
    // 2: idempotent sends and read markers.
    R"sql(
CREATE TABLE idempotency_keys (
  scope TEXT NOT NULL,
  key TEXT NOT NULL,
  digest TEXT NOT NULL,
  log TEXT NOT NULL,
  sequence INTEGER NOT NULL,
  event_id TEXT NOT NULL,
  time INTEGER NOT NULL,
  PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_by_time ON idempotency_keys (time);

CREATE TABLE read_markers (
  user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  room_id TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
  sequence INTEGER NOT NULL,
  update_time INTEGER NOT NULL,
  PRIMARY KEY (user_id, room_id)
) WITHOUT ROWID;
CREATE INDEX read_markers_by_room ON read_markers (room_id);
)sql",
};
constexpr int kLatestSchemaVersion =
    static_cast<int>(sizeof(kMigrations) / sizeof(kMigrations[0]));

}  // namespace

absl::StatusOr<int> Migrate(Connection& c) {
  int applied = 0;
  while (true) {
    if (absl::Status s = c.Script("BEGIN IMMEDIATE"); !s.ok()) return s;
    int version = 0;
    absl::Status status;
    {
      Stmt stmt = c.Prepare("PRAGMA user_version");
      absl::StatusOr<bool> row = stmt.Next();
      if (!row.ok()) {
        status = row.status();
      } else if (*row) {
        version = static_cast<int>(stmt.Int(0));
      }
    }
    if (status.ok() && version > kLatestSchemaVersion) {
      status = WithReason(
          absl::FailedPreconditionError(absl::StrCat(
              "the database's schema version is ", version,
              ", newer than this server's (", kLatestSchemaVersion,
              "): run a newer server, or restore a backup")),
          "SCHEMA_TOO_NEW");
    }
    if (status.ok() && version == kLatestSchemaVersion) {
      if (status = c.Script("COMMIT"); status.ok()) return applied;
    }
    if (status.ok()) {
      status = c.Script(kMigrations[version]);
      if (status.ok()) {
        status = c.Script(absl::StrCat("PRAGMA user_version = ", version + 1));
      }
      if (status.ok()) status = c.Script("COMMIT");
      if (!status.ok()) {
        status = StoreFailed(absl::StrCat("migration ", version + 1, ": ",
                                          status.message()));
      }
    }
    if (!status.ok()) {
      if (!sqlite3_get_autocommit(c.db())) c.Script("ROLLBACK").IgnoreError();
      return status;
    }
    ++applied;
  }
}

}  // namespace sqlite_internal

int SqliteStore::LatestSchemaVersion() {
  return sqlite_internal::kLatestSchemaVersion;
}

}  // namespace parley::store
