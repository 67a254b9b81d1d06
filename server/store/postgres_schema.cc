// PostgresStore's schema. The same tables as SqliteStore's (see
// sqlite_store.cc), plus `logs`, the counter each log's sequence numbers
// come from. Times are bigint microseconds since the Unix epoch (INT64_MIN:
// never). Text that is compared or ordered is COLLATE "C" (byte order, as
// SQLite's), whatever the database's locale.
//
//  users, rooms     username_key / name_key: the name folded to ASCII lower
//                   case (a generated column), UNIQUE: "Alice" takes
//                   "alice"; lookups and listings go by the key
//  members          cascade from rooms and users
//  logs             log PK, last_seq: the last number appended. A room's
//                   row is made with the room, an inbox's with its user;
//                   both go with them. Appends take the next number with
//                   UPDATE ... RETURNING, whose row lock orders every
//                   server's appends to one log, inside the commit
//  events           (log, sequence) PK, id UNIQUE (NULL when none), the
//                   message's current state (update_time, deleted)
//  message_versions an edited message's earlier texts; cascade from events
//  revoked_tokens, idempotency_keys, read_markers: as in SQLite
//  schema_version   one row per migration applied, with its time
//
// Migrations are append-only: never edit one that has shipped; add the next.
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/common/errors.h"
#include "server/store/postgres_sql.h"

namespace parley::store::pg_internal {
namespace {

constexpr const char* kMigrations[] = {
    // 1: everything, and the lobby.
    R"sql(
CREATE TABLE users (
  id text COLLATE "C" NOT NULL PRIMARY KEY,
  username text COLLATE "C" NOT NULL,
  username_key text COLLATE "C" NOT NULL GENERATED ALWAYS AS
    (translate(username, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ',
               'abcdefghijklmnopqrstuvwxyz')) STORED,
  display_name text NOT NULL,
  password_hash text NOT NULL,
  create_time bigint NOT NULL,
  update_time bigint NOT NULL,
  tokens_valid_after bigint NOT NULL,
  CONSTRAINT users_username_unique UNIQUE (username_key)
);

CREATE TABLE rooms (
  id text COLLATE "C" NOT NULL PRIMARY KEY,
  name text COLLATE "C" NOT NULL,
  name_key text COLLATE "C" NOT NULL GENERATED ALWAYS AS
    (translate(name, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ',
               'abcdefghijklmnopqrstuvwxyz')) STORED,
  description text NOT NULL,
  visibility smallint NOT NULL CHECK (visibility IN (1, 2, 3)),
  password_hash text NOT NULL,
  owner_id text COLLATE "C" NOT NULL,
  create_time bigint NOT NULL,
  update_time bigint NOT NULL,
  CONSTRAINT rooms_name_unique UNIQUE (name_key)
);

CREATE TABLE members (
  room_id text COLLATE "C" NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
  user_id text COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  role text NOT NULL,
  join_time bigint NOT NULL,
  PRIMARY KEY (room_id, user_id)
);
CREATE INDEX members_by_user ON members (user_id);

CREATE TABLE logs (
  log text COLLATE "C" NOT NULL PRIMARY KEY,
  last_seq bigint NOT NULL
);

CREATE TABLE events (
  log text COLLATE "C" NOT NULL,
  sequence bigint NOT NULL,
  kind smallint NOT NULL,
  id text COLLATE "C",
  room_id text NOT NULL,
  room text NOT NULL,
  sender text COLLATE "C" NOT NULL,
  sender_id text COLLATE "C" NOT NULL,
  recipient_id text NOT NULL,
  recipient text NOT NULL,
  text text NOT NULL,
  time bigint NOT NULL,
  target_id text COLLATE "C" NOT NULL,
  target_sequence bigint NOT NULL,
  purge_through bigint NOT NULL,
  update_time bigint NOT NULL,
  deleted boolean NOT NULL,
  PRIMARY KEY (log, sequence),
  CONSTRAINT events_id_unique UNIQUE (id)
);
-- The edits of a message, to clear their text when it is deleted or purged.
CREATE INDEX events_edits_by_target ON events (target_id) WHERE kind = 5;

CREATE TABLE message_versions (
  message_id text COLLATE "C" NOT NULL
    REFERENCES events (id) ON DELETE CASCADE,
  replaced_by bigint NOT NULL,
  text text NOT NULL,
  time bigint NOT NULL,
  PRIMARY KEY (message_id, replaced_by)
);

CREATE TABLE revoked_tokens (
  jti text COLLATE "C" NOT NULL PRIMARY KEY,
  expire_time bigint NOT NULL
);
CREATE INDEX revoked_tokens_by_expiry ON revoked_tokens (expire_time);

CREATE TABLE idempotency_keys (
  scope text COLLATE "C" NOT NULL,
  key text COLLATE "C" NOT NULL,
  digest text NOT NULL,
  log text NOT NULL,
  sequence bigint NOT NULL,
  event_id text NOT NULL,
  time bigint NOT NULL,
  PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_by_time ON idempotency_keys (time);

CREATE TABLE read_markers (
  user_id text COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  room_id text COLLATE "C" NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
  sequence bigint NOT NULL,
  update_time bigint NOT NULL,
  PRIMARY KEY (user_id, room_id)
);
CREATE INDEX read_markers_by_room ON read_markers (room_id);

INSERT INTO rooms (id, name, description, visibility, password_hash,
                   owner_id, create_time, update_time)
VALUES ('00000000-0000-4000-8000-000000000000', 'lobby', '', 1, '', '',
        (extract(epoch FROM clock_timestamp()) * 1000000)::bigint,
        (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
INSERT INTO logs (log, last_seq)
VALUES ('00000000-0000-4000-8000-000000000000', 0);
)sql",
};
constexpr int kLatestSchemaVersion =
    static_cast<int>(sizeof(kMigrations) / sizeof(kMigrations[0]));

// pg_advisory_xact_lock's key for migrations: "parley" in ASCII.
constexpr const char* kLockSql = "SELECT pg_advisory_xact_lock(112097114108101)";

}  // namespace

int LatestSchemaVersion() { return kLatestSchemaVersion; }

std::string NameKey(absl::string_view name) {
  return absl::AsciiStrToLower(name);
}

absl::StatusOr<int> Migrate(Connection& c) {
  int applied = 0;
  while (true) {
    Result begin = c.Script(absl::StrCat(
        "BEGIN; ", kLockSql,
        "; CREATE TABLE IF NOT EXISTS schema_version ("
        "version integer NOT NULL PRIMARY KEY, "
        "applied_time timestamptz NOT NULL DEFAULT now())"));
    if (!begin.ok()) {
      c.Script("ROLLBACK");
      return begin.status();
    }
    Result current =
        c.Script("SELECT coalesce(max(version), 0) FROM schema_version");
    absl::Status status = current.status();
    const int64_t version = current.Int(0, 0);
    if (status.ok() && version > kLatestSchemaVersion) {
      status = WithReason(
          absl::FailedPreconditionError(absl::StrCat(
              "the database's schema version is ", version,
              ", newer than this server's (", kLatestSchemaVersion,
              "): run a newer server, or restore a backup")),
          "SCHEMA_TOO_NEW");
    }
    if (status.ok() && version == kLatestSchemaVersion) {
      Result commit = c.Script("COMMIT");
      if (commit.ok()) return applied;
      status = commit.status();
    }
    if (status.ok()) {
      Result migration = c.Script(absl::StrCat(
          kMigrations[version],
          "; INSERT INTO schema_version (version) VALUES (", version + 1,
          "); COMMIT"));
      if (!migration.ok()) {
        status = StoreFailed(absl::StrCat("migration ", version + 1, ": ",
                                          migration.status().message()));
      }
    }
    if (!status.ok()) {
      c.Script("ROLLBACK");
      return status;
    }
    ++applied;
  }
}

absl::Status PruneRevokedTokens(Connection& c, absl::Time now) {
  return c.Exec("DELETE FROM revoked_tokens WHERE expire_time <= $1",
                Params().Time(now))
      .status();
}

}  // namespace parley::store::pg_internal
