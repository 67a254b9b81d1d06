#include "server/store/sqlite_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <variant>

#include "absl/container/flat_hash_map.h"
#include "absl/memory/memory.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/common/errors.h"
#include "server/common/log.h"

namespace parley::store {

// ---- Schema ----
//
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

// The codes the events table stores; the SQL below spells 1 (message) and
// 5 (edit) literally.
constexpr int64_t kMessageCode = 1;
constexpr int64_t kEditCode = 5;

int64_t KindCode(model::EventKind kind) {
  switch (kind) {
    case model::EventKind::kMessage:
      return kMessageCode;
    case model::EventKind::kJoin:
      return 2;
    case model::EventKind::kLeave:
      return 3;
    case model::EventKind::kGap:
      return 4;
    case model::EventKind::kEdit:
      return kEditCode;
    case model::EventKind::kDelete:
      return 6;
    case model::EventKind::kPurge:
      return 7;
    case model::EventKind::kMemberAdded:
      return 8;
    case model::EventKind::kMemberRemoved:
      return 9;
    case model::EventKind::kTyping:
      return 10;
  }
  return 0;
}

std::optional<model::EventKind> KindFromCode(int64_t code) {
  switch (code) {
    case 1:
      return model::EventKind::kMessage;
    case 2:
      return model::EventKind::kJoin;
    case 3:
      return model::EventKind::kLeave;
    case 5:
      return model::EventKind::kEdit;
    case 6:
      return model::EventKind::kDelete;
    case 7:
      return model::EventKind::kPurge;
    case 8:
      return model::EventKind::kMemberAdded;
    case 9:
      return model::EventKind::kMemberRemoved;
    default:
      return std::nullopt;
  }
}

constexpr int64_t kNever = std::numeric_limits<int64_t>::min();
constexpr int64_t kForever = std::numeric_limits<int64_t>::max();

int64_t ToMicros(absl::Time t) {
  if (t == absl::InfinitePast()) return kNever;
  if (t == absl::InfiniteFuture()) return kForever;
  return absl::ToUnixMicros(t);
}

absl::Time FromMicros(int64_t micros) {
  if (micros == kNever) return absl::InfinitePast();
  if (micros == kForever) return absl::InfiniteFuture();
  return absl::FromUnixMicros(micros);
}

// SQLite integers are signed; sequence numbers and limits beyond INT64_MAX
// mean "no bound".
int64_t ToSql(uint64_t n) {
  return static_cast<int64_t>(
      std::min<uint64_t>(n, std::numeric_limits<int64_t>::max()));
}

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

}  // namespace

int SqliteStore::LatestSchemaVersion() { return kLatestSchemaVersion; }

// ---- Connections and statements ----

namespace sqlite_internal {

// A statement of a Connection. A cached statement is reset and handed back
// to its connection's cache when the Stmt goes away; an uncached one is
// finalized. A statement that failed to prepare or bind carries the error,
// which Next and Run report. Text is bound without copying: what is bound
// must outlive the Stmt's use.
class Stmt {
 public:
  Stmt(sqlite3* db, sqlite3_stmt* stmt, bool* in_use, absl::Status status)
      : db_(db), stmt_(stmt), in_use_(in_use), status_(std::move(status)) {}
  Stmt(Stmt&& other) noexcept
      : db_(other.db_),
        stmt_(std::exchange(other.stmt_, nullptr)),
        in_use_(std::exchange(other.in_use_, nullptr)),
        status_(std::move(other.status_)),
        error_code_(other.error_code_) {}
  Stmt& operator=(Stmt&&) = delete;
  ~Stmt() {
    if (stmt_ == nullptr) return;
    if (in_use_ != nullptr) {
      sqlite3_reset(stmt_);
      sqlite3_clear_bindings(stmt_);
      *in_use_ = false;
    } else {
      sqlite3_finalize(stmt_);
    }
  }

  void BindText(int index, absl::string_view text) {
    if (!status_.ok()) return;
    // An empty view may have a null data(), which SQLite would bind as NULL.
    Check(sqlite3_bind_text64(stmt_, index,
                              text.data() == nullptr ? "" : text.data(),
                              text.size(), SQLITE_STATIC, SQLITE_UTF8));
  }
  // Binds NULL for an empty text.
  void BindTextOrNull(int index, absl::string_view text) {
    if (!status_.ok()) return;
    if (text.empty()) {
      Check(sqlite3_bind_null(stmt_, index));
    } else {
      BindText(index, text);
    }
  }
  void BindInt(int index, int64_t value) {
    if (!status_.ok()) return;
    Check(sqlite3_bind_int64(stmt_, index, value));
  }
  void BindTime(int index, absl::Time t) { BindInt(index, ToMicros(t)); }

  // Steps to the next row: true on a row, false when done.
  absl::StatusOr<bool> Next() {
    if (!status_.ok()) return status_;
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    error_code_ = rc;
    status_ = ErrorStatus(rc);
    return status_;
  }
  // Steps until done, ignoring rows.
  absl::Status Run() {
    while (true) {
      absl::StatusOr<bool> row = Next();
      if (!row.ok()) return row.status();
      if (!*row) return absl::OkStatus();
    }
  }

  int64_t Int(int column) const {
    return sqlite3_column_int64(stmt_, column);
  }
  bool IsNull(int column) const {
    return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
  }
  std::string Text(int column) const {
    const unsigned char* text = sqlite3_column_text(stmt_, column);
    if (text == nullptr) return std::string();
    const int size = sqlite3_column_bytes(stmt_, column);
    return std::string(reinterpret_cast<const char*>(text),
                       static_cast<size_t>(size));
  }
  absl::Time Time(int column) const { return FromMicros(Int(column)); }

  // Whether the last step failed on a UNIQUE or PRIMARY KEY constraint of
  // `table_column` (as SQLite names it, e.g. "users.username").
  bool UniqueFailed(absl::string_view table_column) const {
    return (error_code_ == SQLITE_CONSTRAINT_UNIQUE ||
            error_code_ == SQLITE_CONSTRAINT_PRIMARYKEY) &&
           absl::StrContains(status_.message(), table_column);
  }
  // Rows changed by the connection's last INSERT, UPDATE or DELETE.
  int64_t changes() const { return sqlite3_changes64(db_); }

 private:
  void Check(int rc) {
    if (rc != SQLITE_OK) status_ = ErrorStatus(rc);
  }
  absl::Status ErrorStatus(int rc) const {
    std::string message = sqlite3_errmsg(db_);
    if ((rc & 0xff) == SQLITE_CONSTRAINT) {
      return WithReason(absl::FailedPreconditionError(message),
                        "CONSTRAINT_FAILED");
    }
    return StoreFailed(message);
  }

  sqlite3* const db_;
  sqlite3_stmt* stmt_;
  bool* in_use_;  // null: not cached
  absl::Status status_;
  int error_code_ = SQLITE_OK;
};

// One SQLite connection and its prepared statements. Used by one thread at a
// time.
class Connection {
 public:
  static absl::StatusOr<std::unique_ptr<Connection>> Open(
      const std::string& path, bool read_only, absl::Duration busy_timeout) {
    sqlite3* db = nullptr;
    const int flags = (read_only ? SQLITE_OPEN_READONLY
                                 : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                      SQLITE_OPEN_NOMUTEX;
    const int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
    auto connection = absl::WrapUnique(new Connection(db));
    if (rc != SQLITE_OK) {
      return StoreFailed(absl::StrCat(
          "opening ", path, ": ",
          db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(
        db, static_cast<int>(std::clamp<int64_t>(
                absl::ToInt64Milliseconds(busy_timeout), 0,
                std::numeric_limits<int>::max())));
    return connection;
  }

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() {
    for (auto& [sql, cached] : cache_) sqlite3_finalize(cached->stmt);
    sqlite3_close_v2(db_);
  }

  // The prepared statement for `sql` (one statement), from the cache when it
  // is not already in use.
  Stmt Prepare(absl::string_view sql) {
    auto it = cache_.find(sql);
    if (it != cache_.end() && !it->second->in_use) {
      it->second->in_use = true;
      return Stmt(db_, it->second->stmt, &it->second->in_use,
                  absl::OkStatus());
    }
    const bool cache = it == cache_.end();
    sqlite3_stmt* stmt = nullptr;
    const int rc = sqlite3_prepare_v3(
        db_, sql.data(), static_cast<int>(sql.size()),
        cache ? SQLITE_PREPARE_PERSISTENT : 0, &stmt, nullptr);
    if (rc != SQLITE_OK || stmt == nullptr) {
      sqlite3_finalize(stmt);
      return Stmt(db_, nullptr, nullptr,
                  StoreFailed(absl::StrCat("preparing \"", sql,
                                           "\": ", sqlite3_errmsg(db_))));
    }
    if (!cache) return Stmt(db_, stmt, nullptr, absl::OkStatus());
    auto& cached = cache_[sql];
    cached = std::make_unique<Cached>(Cached{stmt, true});
    return Stmt(db_, stmt, &cached->in_use, absl::OkStatus());
  }

  // Runs a script of statements (migrations, pragmas), uncached.
  absl::Status Script(const std::string& sql) {
    char* error = nullptr;
    const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error);
    if (rc == SQLITE_OK) return absl::OkStatus();
    absl::Status status = StoreFailed(error != nullptr ? error
                                                       : sqlite3_errstr(rc));
    sqlite3_free(error);
    return status;
  }

  // The single text value `sql` returns (e.g. a PRAGMA), or "".
  absl::StatusOr<std::string> QueryText(absl::string_view sql) {
    Stmt stmt = Prepare(sql);
    absl::StatusOr<bool> row = stmt.Next();
    if (!row.ok()) return row.status();
    return *row ? stmt.Text(0) : std::string();
  }

  sqlite3* db() const { return db_; }

 private:
  struct Cached {
    sqlite3_stmt* stmt;
    bool in_use;
  };

  explicit Connection(sqlite3* db) : db_(db) {}

  sqlite3* const db_;
  absl::flat_hash_map<std::string, std::unique_ptr<Cached>> cache_;
};

}  // namespace sqlite_internal

namespace {

using sqlite_internal::Connection;
using sqlite_internal::Stmt;
using sqlite_internal::WriterLogs;

// Runs a read of several statements on one snapshot.
class ReadTransaction {
 public:
  explicit ReadTransaction(Connection& connection) : connection_(connection) {
    status_ = connection_.Prepare("BEGIN").Run();
  }
  ~ReadTransaction() {
    if (!status_.ok()) return;
    if (!connection_.Prepare("COMMIT").Run().ok()) {
      connection_.Prepare("ROLLBACK").Run().IgnoreError();
    }
  }
  ReadTransaction(const ReadTransaction&) = delete;
  ReadTransaction& operator=(const ReadTransaction&) = delete;

  const absl::Status& status() const { return status_; }

 private:
  Connection& connection_;
  absl::Status status_;
};

// Runs `stmt`, expecting at most one row; whether there was one.
absl::StatusOr<bool> Exists(Stmt stmt) { return stmt.Next(); }

absl::StatusOr<bool> UserExists(Connection& c, absl::string_view id) {
  Stmt stmt = c.Prepare("SELECT 1 FROM users WHERE id = ?1");
  stmt.BindText(1, id);
  return Exists(std::move(stmt));
}

absl::StatusOr<bool> RoomExists(Connection& c, absl::string_view id) {
  Stmt stmt = c.Prepare("SELECT 1 FROM rooms WHERE id = ?1");
  stmt.BindText(1, id);
  return Exists(std::move(stmt));
}

absl::StatusOr<uint64_t> LastSequenceOf(Connection& c, absl::string_view log) {
  Stmt stmt = c.Prepare("SELECT max(sequence) FROM events WHERE log = ?1");
  stmt.BindText(1, log);
  absl::StatusOr<bool> row = stmt.Next();
  if (!row.ok()) return row.status();
  if (!*row || stmt.IsNull(0)) return 0;
  return static_cast<uint64_t>(stmt.Int(0));
}

// ---- Rows ----

#define PARLEY_USER_COLUMNS                                                 \
  "id, username, display_name, password_hash, create_time, update_time, " \
  "tokens_valid_after"
#define PARLEY_ROOM_COLUMNS                                                \
  "id, name, description, visibility, password_hash, owner_id, create_time, " \
  "update_time"
#define PARLEY_MEMBER_COLUMNS                                             \
  "m.room_id, m.user_id, m.role, m.join_time, u.username, u.display_name"
#define PARLEY_EVENT_COLUMNS                                                  \
  "log, sequence, kind, id, room_id, room, sender, sender_id, recipient_id, " \
  "recipient, text, time, target_id, target_sequence, purge_through, "       \
  "update_time, deleted"

User ReadUser(const Stmt& s) {
  User user;
  user.id = s.Text(0);
  user.username = s.Text(1);
  user.display_name = s.Text(2);
  user.password_hash = s.Text(3);
  user.create_time = s.Time(4);
  user.update_time = s.Time(5);
  user.tokens_valid_after = s.Time(6);
  return user;
}

Room ReadRoom(const Stmt& s) {
  Room room;
  room.id = s.Text(0);
  room.name = s.Text(1);
  room.description = s.Text(2);
  room.visibility = static_cast<Visibility>(s.Int(3));
  room.password_hash = s.Text(4);
  room.owner_id = s.Text(5);
  room.create_time = s.Time(6);
  room.update_time = s.Time(7);
  return room;
}

Member ReadMember(const Stmt& s) {
  Member member;
  member.room_id = s.Text(0);
  member.user_id = s.Text(1);
  member.role = s.Text(2);
  member.join_time = s.Time(3);
  member.username = s.Text(4);
  member.display_name = s.Text(5);
  return member;
}

absl::StatusOr<std::shared_ptr<model::Event>> ReadEvent(const Stmt& s) {
  std::optional<model::EventKind> kind = KindFromCode(s.Int(2));
  if (!kind.has_value()) {
    return StoreFailed(absl::StrCat("unknown event kind ", s.Int(2)));
  }
  auto event = std::make_shared<model::Event>();
  event->kind = *kind;
  event->log = s.Text(0);
  event->sequence = static_cast<uint64_t>(s.Int(1));
  event->id = s.Text(3);
  event->room_id = s.Text(4);
  event->room = s.Text(5);
  event->sender = s.Text(6);
  event->sender_id = s.Text(7);
  event->recipient_id = s.Text(8);
  event->recipient = s.Text(9);
  event->text = s.Text(10);
  event->time = s.Time(11);
  event->target_id = s.Text(12);
  event->target_sequence = static_cast<uint64_t>(s.Int(13));
  event->purge_through = static_cast<uint64_t>(s.Int(14));
  event->update_time = s.Time(15);
  event->deleted = s.Int(16) != 0;
  return event;
}

// Reads every row of `stmt` (selecting PARLEY_EVENT_COLUMNS) and fills the
// earlier versions of edited messages.
absl::StatusOr<std::vector<model::EventPtr>> ReadEvents(Connection& c,
                                                        Stmt& stmt) {
  std::vector<std::shared_ptr<model::Event>> events;
  while (true) {
    absl::StatusOr<bool> row = stmt.Next();
    if (!row.ok()) return row.status();
    if (!*row) break;
    absl::StatusOr<std::shared_ptr<model::Event>> event = ReadEvent(stmt);
    if (!event.ok()) return event.status();
    events.push_back(*std::move(event));
  }
  for (const std::shared_ptr<model::Event>& event : events) {
    if (event->kind != model::EventKind::kMessage ||
        event->update_time == absl::InfinitePast()) {
      continue;
    }
    Stmt versions = c.Prepare(
        "SELECT text, time FROM message_versions WHERE message_id = ?1 "
        "ORDER BY replaced_by");
    versions.BindText(1, event->id);
    while (true) {
      absl::StatusOr<bool> row = versions.Next();
      if (!row.ok()) return row.status();
      if (!*row) break;
      event->previous_versions.push_back(
          model::MessageVersion{versions.Text(0), versions.Time(1)});
    }
  }
  return std::vector<model::EventPtr>(events.begin(), events.end());
}

// ---- Writes ----

absl::StatusOr<int64_t> Apply(Connection& c, const PutUser& w) {
  const User& user = w.user;
  if (user.id.empty()) {
    return InvalidInput("MISSING_ID", "id", "the user has no id");
  }
  Stmt stmt = c.Prepare(
      w.create ? "INSERT INTO users (" PARLEY_USER_COLUMNS
                 ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
               : "UPDATE users SET username = ?2, display_name = ?3, "
                 "password_hash = ?4, update_time = ?6, "
                 "tokens_valid_after = ?7 WHERE id = ?1");
  stmt.BindText(1, user.id);
  stmt.BindText(2, user.username);
  stmt.BindText(3, user.display_name);
  stmt.BindText(4, user.password_hash);
  stmt.BindTime(5, user.create_time);
  stmt.BindTime(6, user.update_time);
  stmt.BindTime(7, user.tokens_valid_after);
  const absl::Status status = stmt.Run();
  if (stmt.UniqueFailed("users.username")) {
    return WithReason(absl::AlreadyExistsError("the username is taken"),
                      "USERNAME_TAKEN", "username");
  }
  if (stmt.UniqueFailed("users.id")) {
    return WithReason(absl::AlreadyExistsError("a user with this id exists"),
                      "USER_EXISTS", "id");
  }
  if (!status.ok()) return status;
  if (!w.create && stmt.changes() == 0) return UserNotFound();
  return 0;
}

absl::StatusOr<int64_t> Apply(Connection& c, const DeleteUser& w) {
  {
    Stmt stmt = c.Prepare("DELETE FROM users WHERE id = ?1");
    stmt.BindText(1, w.id);
    if (absl::Status s = stmt.Run(); !s.ok()) return s;
    if (stmt.changes() == 0) return UserNotFound();
  }
  const std::string inbox = model::InboxLog(w.id);
  Stmt stmt = c.Prepare("DELETE FROM events WHERE log = ?1");
  stmt.BindText(1, inbox);
  if (absl::Status s = stmt.Run(); !s.ok()) return s;
  return 0;
}

absl::Status UpsertMember(Connection& c, absl::string_view room_id,
                          absl::string_view user_id, absl::string_view role,
                          absl::Time join_time) {
  Stmt stmt = c.Prepare(
      "INSERT INTO members (room_id, user_id, role, join_time) "
      "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (room_id, user_id) DO UPDATE SET "
      "role = excluded.role, join_time = excluded.join_time");
  stmt.BindText(1, room_id);
  stmt.BindText(2, user_id);
  stmt.BindText(3, role);
  stmt.BindTime(4, join_time);
  return stmt.Run();
}

absl::StatusOr<int64_t> Apply(Connection& c, const PutRoom& w) {
  const Room& room = w.room;
  if (room.id.empty()) {
    return InvalidInput("MISSING_ID", "id", "the room has no id");
  }
  const int64_t visibility = static_cast<int64_t>(room.visibility);
  if (visibility < 1 || visibility > 3) {
    return InvalidInput("INVALID_VISIBILITY", "visibility",
                        "unknown room visibility");
  }
  if (w.create && !room.owner_id.empty()) {
    absl::StatusOr<bool> owner = UserExists(c, room.owner_id);
    if (!owner.ok()) return owner.status();
    if (!*owner) return UserNotFound();
  }
  {
    Stmt stmt = c.Prepare(
        w.create ? "INSERT INTO rooms (" PARLEY_ROOM_COLUMNS
                   ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                 : "UPDATE rooms SET name = ?2, description = ?3, "
                   "visibility = ?4, password_hash = ?5, owner_id = ?6, "
                   "update_time = ?8 WHERE id = ?1");
    stmt.BindText(1, room.id);
    stmt.BindText(2, room.name);
    stmt.BindText(3, room.description);
    stmt.BindInt(4, visibility);
    stmt.BindText(5, room.password_hash);
    stmt.BindText(6, room.owner_id);
    stmt.BindTime(7, room.create_time);
    stmt.BindTime(8, room.update_time);
    const absl::Status status = stmt.Run();
    if (stmt.UniqueFailed("rooms.name")) {
      return WithReason(absl::AlreadyExistsError("the room name is taken"),
                        "ROOM_NAME_TAKEN", "name");
    }
    if (stmt.UniqueFailed("rooms.id")) {
      return WithReason(absl::AlreadyExistsError("a room with this id exists"),
                        "ROOM_EXISTS", "id");
    }
    if (!status.ok()) return status;
    if (!w.create && stmt.changes() == 0) return RoomNotFound();
  }
  if (w.create && !room.owner_id.empty()) {
    absl::Status status =
        UpsertMember(c, room.id, room.owner_id, "owner", room.create_time);
    if (!status.ok()) return status;
  }
  return 0;
}

absl::StatusOr<int64_t> Apply(Connection& c, const DeleteRoom& w) {
  if (w.id == model::kLobbyId) {
    return WithReason(
        absl::FailedPreconditionError("the lobby cannot be deleted"),
        "LOBBY_PROTECTED");
  }
  {
    Stmt stmt = c.Prepare("DELETE FROM rooms WHERE id = ?1");
    stmt.BindText(1, w.id);
    if (absl::Status s = stmt.Run(); !s.ok()) return s;
    if (stmt.changes() == 0) return RoomNotFound();
  }
  Stmt stmt = c.Prepare("DELETE FROM events WHERE log = ?1");
  stmt.BindText(1, w.id);
  if (absl::Status s = stmt.Run(); !s.ok()) return s;
  return 0;
}

absl::StatusOr<int64_t> Apply(Connection& c, const PutMember& w) {
  const Member& member = w.member;
  absl::StatusOr<bool> room = RoomExists(c, member.room_id);
  if (!room.ok()) return room.status();
  if (!*room) return RoomNotFound();
  absl::StatusOr<bool> user = UserExists(c, member.user_id);
  if (!user.ok()) return user.status();
  if (!*user) return UserNotFound();
  absl::Status status = UpsertMember(c, member.room_id, member.user_id,
                                     member.role, member.join_time);
  if (!status.ok()) return status;
  return 0;
}

absl::StatusOr<int64_t> Apply(Connection& c, const DeleteMember& w) {
  Stmt stmt =
      c.Prepare("DELETE FROM members WHERE room_id = ?1 AND user_id = ?2");
  stmt.BindText(1, w.room_id);
  stmt.BindText(2, w.user_id);
  if (absl::Status s = stmt.Run(); !s.ok()) return s;
  if (stmt.changes() == 0) {
    return WithReason(absl::NotFoundError("the user is not a member"),
                      "MEMBER_NOT_FOUND");
  }
  return 0;
}

absl::StatusOr<int64_t> Apply(Connection& c, const RevokeToken& w) {
  Stmt stmt = c.Prepare(
      "INSERT INTO revoked_tokens (jti, expire_time) VALUES (?1, ?2) "
      "ON CONFLICT (jti) DO UPDATE SET "
      "expire_time = max(expire_time, excluded.expire_time)");
  stmt.BindText(1, w.jti);
  stmt.BindTime(2, w.expire_time);
  if (absl::Status s = stmt.Run(); !s.ok()) return s;
  return 0;
}

absl::Status InsertIdempotencyKey(Connection& c, const model::Event& e) {
  // A key older than its lifetime may be taken again (OR REPLACE); a live
  // one never reaches here twice (api::IdempotentSends).
  Stmt stmt = c.Prepare(
      "INSERT OR REPLACE INTO idempotency_keys "
      "(scope, key, digest, log, sequence, event_id, time) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
  stmt.BindText(1, e.idempotency.scope);
  stmt.BindText(2, e.idempotency.key);
  stmt.BindText(3, e.idempotency.digest);
  stmt.BindText(4, e.log);
  stmt.BindInt(5, ToSql(e.sequence));
  stmt.BindText(6, e.id);
  stmt.BindTime(7, e.time);
  return stmt.Run();
}

absl::Status InsertEvent(Connection& c, const model::Event& e) {
  Stmt stmt = c.Prepare(
      "INSERT INTO events (" PARLEY_EVENT_COLUMNS
      ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, "
      "?15, ?16, ?17)");
  stmt.BindText(1, e.log);
  stmt.BindInt(2, ToSql(e.sequence));
  stmt.BindInt(3, KindCode(e.kind));
  stmt.BindTextOrNull(4, e.id);
  stmt.BindText(5, e.room_id);
  stmt.BindText(6, e.room);
  stmt.BindText(7, e.sender);
  stmt.BindText(8, e.sender_id);
  stmt.BindText(9, e.recipient_id);
  stmt.BindText(10, e.recipient);
  stmt.BindText(11, e.text);
  stmt.BindTime(12, e.time);
  stmt.BindText(13, e.target_id);
  stmt.BindInt(14, ToSql(e.target_sequence));
  stmt.BindInt(15, ToSql(e.purge_through));
  stmt.BindTime(16, e.update_time);
  stmt.BindInt(17, e.deleted ? 1 : 0);
  const absl::Status status = stmt.Run();
  if (stmt.UniqueFailed("events.id")) {
    return WithReason(absl::AlreadyExistsError("the event id is taken"),
                      "EVENT_EXISTS", "id");
  }
  return status;
}

// Clears the text of the edit events of `log` that targeted message `id`.
absl::Status ClearEditTexts(Connection& c, absl::string_view log,
                            absl::string_view id) {
  Stmt stmt = c.Prepare(
      "UPDATE events SET text = '' WHERE target_id = ?1 AND kind = 5 "
      "AND log = ?2");
  stmt.BindText(1, id);
  stmt.BindText(2, log);
  return stmt.Run();
}

absl::StatusOr<int64_t> Edit(Connection& c, const model::Event& e) {
  std::string old_text;
  absl::Time old_time;
  uint64_t target_sequence = 0;
  {
    Stmt target = c.Prepare(
        "SELECT sequence, text, time, update_time FROM events "
        "WHERE id = ?1 AND log = ?2 AND kind = 1 AND deleted = 0");
    target.BindText(1, e.target_id);
    target.BindText(2, e.log);
    absl::StatusOr<bool> row = target.Next();
    if (!row.ok()) return row.status();
    if (!*row) return MessageNotFound();
    target_sequence = static_cast<uint64_t>(target.Int(0));
    old_text = target.Text(1);
    // When the old text was written: the last edit, or the post itself.
    old_time = target.Int(3) != kNever ? target.Time(3) : target.Time(2);
  }
  if (absl::Status s = InsertEvent(c, e); !s.ok()) return s;
  {
    Stmt version = c.Prepare(
        "INSERT INTO message_versions (message_id, replaced_by, text, time) "
        "VALUES (?1, ?2, ?3, ?4)");
    version.BindText(1, e.target_id);
    version.BindInt(2, ToSql(e.sequence));
    version.BindText(3, old_text);
    version.BindTime(4, old_time);
    if (absl::Status s = version.Run(); !s.ok()) return s;
  }
  Stmt update = c.Prepare(
      "UPDATE events SET text = ?3, update_time = ?4 "
      "WHERE log = ?1 AND sequence = ?2");
  update.BindText(1, e.log);
  update.BindInt(2, ToSql(target_sequence));
  update.BindText(3, e.text);
  update.BindTime(4, e.time);
  if (absl::Status s = update.Run(); !s.ok()) return s;
  return 0;
}

absl::StatusOr<int64_t> Delete(Connection& c, const model::Event& e) {
  {
    Stmt tombstone = c.Prepare(
        "UPDATE events SET deleted = 1, text = '' "
        "WHERE id = ?1 AND log = ?2 AND kind = 1");
    tombstone.BindText(1, e.target_id);
    tombstone.BindText(2, e.log);
    if (absl::Status s = tombstone.Run(); !s.ok()) return s;
    if (tombstone.changes() == 0) return MessageNotFound();
  }
  if (absl::Status s = InsertEvent(c, e); !s.ok()) return s;
  {
    Stmt versions =
        c.Prepare("DELETE FROM message_versions WHERE message_id = ?1");
    versions.BindText(1, e.target_id);
    if (absl::Status s = versions.Run(); !s.ok()) return s;
  }
  if (absl::Status s = ClearEditTexts(c, e.log, e.target_id); !s.ok()) {
    return s;
  }
  return 0;
}

absl::StatusOr<int64_t> Purge(Connection& c, const model::Event& e) {
  if (absl::Status s = InsertEvent(c, e); !s.ok()) return s;
  {
    Stmt edits = c.Prepare(
        "UPDATE events SET text = '' WHERE kind = 5 AND log = ?1 AND "
        "target_id IN (SELECT id FROM events WHERE log = ?1 AND kind = 1 AND "
        "sequence <= ?2)");
    edits.BindText(1, e.log);
    edits.BindInt(2, ToSql(e.purge_through));
    if (absl::Status s = edits.Run(); !s.ok()) return s;
  }
  // Their versions go with them (ON DELETE CASCADE).
  Stmt purge = c.Prepare(
      "DELETE FROM events WHERE log = ?1 AND kind = 1 AND sequence <= ?2");
  purge.BindText(1, e.log);
  purge.BindInt(2, ToSql(e.purge_through));
  if (absl::Status s = purge.Run(); !s.ok()) return s;
  return purge.changes();
}

// Numbers `w.event` one past its log's last (known to `logs`, else read)
// and applies it. On failure the event's number is 0 again; on success the
// caller records it in `logs` once the write's savepoint is released.
absl::StatusOr<int64_t> Apply(Connection& c, const AppendEvent& w,
                              const WriterLogs& logs) {
  if (w.event == nullptr) {
    return absl::InvalidArgumentError("AppendEvent without an event");
  }
  model::Event& e = *w.event;
  if (e.kind == model::EventKind::kGap || e.kind == model::EventKind::kTyping ||
      e.log.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a log entry: log \"", e.log, "\""));
  }
  if (e.sequence != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("the store numbers appends; got sequence ", e.sequence));
  }
  // The log belongs to a room or, for an inbox, a user that exists. Known
  // logs skip that read and the read of their last number (see WriterLogs).
  uint64_t last;
  auto known = logs.last.find(e.log);
  if (known != logs.last.end()) {
    last = known->second;
  } else {
    if (absl::StartsWith(e.log, "dm:")) {
      absl::StatusOr<bool> user =
          UserExists(c, absl::string_view(e.log).substr(3));
      if (!user.ok()) return user.status();
      if (!*user) return UserNotFound();
    } else {
      absl::StatusOr<bool> room = RoomExists(c, e.log);
      if (!room.ok()) return room.status();
      if (!*room) return RoomNotFound();
    }
    absl::StatusOr<uint64_t> stored = LastSequenceOf(c, e.log);
    if (!stored.ok()) return stored.status();
    last = *stored;
  }
  e.sequence = last + 1;
  absl::StatusOr<int64_t> applied;
  switch (e.kind) {
    case model::EventKind::kEdit:
      applied = Edit(c, e);
      break;
    case model::EventKind::kDelete:
      applied = Delete(c, e);
      break;
    case model::EventKind::kPurge:
      applied = Purge(c, e);
      break;
    default: {
      absl::Status s = InsertEvent(c, e);
      if (s.ok() && !e.idempotency.key.empty()) {
        s = InsertIdempotencyKey(c, e);
      }
      if (s.ok()) {
        applied = 0;
      } else {
        applied = s;
      }
      break;
    }
  }
  if (!applied.ok()) e.sequence = 0;
  return applied;
}

absl::StatusOr<int64_t> Apply(Connection& c, const PutReadMarker& w) {
  absl::StatusOr<uint64_t> last = LastSequenceOf(c, w.room_id);
  if (!last.ok()) return last.status();
  Stmt stmt = c.Prepare(
      "INSERT INTO read_markers (user_id, room_id, sequence, update_time) "
      "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (user_id, room_id) DO UPDATE SET "
      "sequence = max(sequence, excluded.sequence), "
      "update_time = excluded.update_time "
      "RETURNING sequence");
  stmt.BindText(1, w.user_id);
  stmt.BindText(2, w.room_id);
  stmt.BindInt(3, ToSql(std::min(w.sequence, *last)));
  stmt.BindTime(4, absl::Now());
  absl::StatusOr<bool> row = stmt.Next();
  if (!row.ok()) {
    // The user or the room is gone (foreign keys).
    if (absl::IsFailedPrecondition(row.status())) return RoomNotFound();
    return row.status();
  }
  const int64_t sequence = *row ? stmt.Int(0) : 0;
  if (absl::Status s = stmt.Run(); !s.ok()) return s;
  return sequence;
}

absl::StatusOr<int64_t> Apply(Connection& c, const PruneIdempotencyKeys& w) {
  Stmt stmt = c.Prepare("DELETE FROM idempotency_keys WHERE time < ?1");
  stmt.BindTime(1, w.before);
  if (absl::Status s = stmt.Run(); !s.ok()) return s;
  return stmt.changes();
}

// Applies the migrations `c`'s database lacks, each in its own transaction;
// returns how many.
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

}  // namespace

// ---- The store ----

class SqliteStore::ReaderLease {
 public:
  explicit ReaderLease(SqliteStore* store) : store_(store) {
    MutexLock lock(&store_->readers_mu_);
    while (store_->idle_readers_.empty()) store_->readers_cv_.Wait();
    connection_ = std::move(store_->idle_readers_.back());
    store_->idle_readers_.pop_back();
  }
  ~ReaderLease() {
    {
      MutexLock lock(&store_->readers_mu_);
      store_->idle_readers_.push_back(std::move(connection_));
    }
    store_->readers_cv_.Signal();
  }
  ReaderLease(const ReaderLease&) = delete;
  ReaderLease& operator=(const ReaderLease&) = delete;

  Connection& operator*() { return *connection_; }
  Connection* operator->() { return connection_.get(); }

 private:
  SqliteStore* const store_;
  std::unique_ptr<Connection> connection_;
};

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(
    SqliteOptions options) {
  if (options.path.empty()) {
    return absl::InvalidArgumentError("SqliteOptions.path is empty");
  }
  if (options.max_batch == 0 || options.read_connections == 0) {
    return absl::InvalidArgumentError(
        "SqliteOptions.max_batch and read_connections must be at least 1");
  }
  if (options.clock == nullptr) {
    return absl::InvalidArgumentError("SqliteOptions.clock is null");
  }
  absl::StatusOr<std::unique_ptr<Connection>> writer =
      Connection::Open(options.path, /*read_only=*/false, options.busy_timeout);
  if (!writer.ok()) return writer.status();
  Connection& c = **writer;
  absl::StatusOr<std::string> mode = c.QueryText("PRAGMA journal_mode = WAL");
  if (!mode.ok()) return mode.status();
  if (*mode != "wal") {
    return StoreFailed(absl::StrCat(options.path,
                                    ": cannot use WAL journal mode (got \"",
                                    *mode, "\")"));
  }
  const std::string synchronous = absl::StrCat(
      "PRAGMA synchronous = ",
      options.synchronous == SqliteOptions::Sync::kFull ? "FULL" : "NORMAL");
  absl::Status status = c.Script(absl::StrCat(
      synchronous,
      "; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;"
      " PRAGMA cache_size = -32768;"));
  if (!status.ok()) return status;
  absl::StatusOr<int> applied = Migrate(c);
  if (!applied.ok()) return applied.status();
  {
    Stmt prune =
        c.Prepare("DELETE FROM revoked_tokens WHERE expire_time <= ?1");
    prune.BindTime(1, absl::Now());
    if (absl::Status s = prune.Run(); !s.ok()) return s;
  }
  std::vector<std::unique_ptr<Connection>> readers;
  for (size_t i = 0; i < options.read_connections; ++i) {
    absl::StatusOr<std::unique_ptr<Connection>> reader =
        Connection::Open(options.path, /*read_only=*/true,
                         options.busy_timeout);
    if (!reader.ok()) return reader.status();
    readers.push_back(*std::move(reader));
  }
  std::unique_ptr<Connection> checkpoint_db;
  if (options.checkpoint_pages > 0) {
    absl::StatusOr<std::unique_ptr<Connection>> opened = Connection::Open(
        options.path, /*read_only=*/false, options.busy_timeout);
    if (!opened.ok()) return opened.status();
    // A checkpoint syncs as its own connection's setting says.
    if (absl::Status s = (*opened)->Script(synchronous); !s.ok()) return s;
    checkpoint_db = *std::move(opened);
  }
  auto store = absl::WrapUnique(new SqliteStore(
      std::move(options), *std::move(writer), std::move(readers), *applied));
  MutexLock lock(&store->close_mu_);
  if (checkpoint_db != nullptr) {
    store->checkpoint_db_ = std::move(checkpoint_db);
    // Replaces SQLite's automatic checkpoint on the writer's connection.
    sqlite3_wal_hook(store->writer_db_->db(), &SqliteStore::OnWalCommit,
                     store.get());
    store->checkpointer_ =
        std::thread([s = store.get()] { s->CheckpointLoop(); });
  }
  store->writer_ = std::thread([s = store.get()] { s->WriterLoop(); });
  return store;
}

// How far past checkpoint_pages the WAL may grow before a checkpoint makes
// the writer start it again (CheckpointLoop).
constexpr uint64_t kRestartFactor = 16;

int SqliteStore::OnWalCommit(void* store, sqlite3* /*db*/,
                             const char* /*name*/, int pages) {
  auto* self = static_cast<SqliteStore*>(store);
  const uint64_t now = pages > 0 ? static_cast<uint64_t>(pages) : 0;
  // Once per checkpoint_pages new pages: the WAL only starts again from its
  // beginning at a write after a checkpoint copied all of it, so until then
  // every commit reports a WAL still past the mark.
  if (now < self->wal_pages_at_request_) self->wal_pages_at_request_ = 0;
  if (now - self->wal_pages_at_request_ >= self->options_.checkpoint_pages) {
    self->wal_pages_at_request_ = now;
    MutexLock lock(&self->checkpoint_mu_);
    self->checkpoint_due_ = true;
    self->checkpoint_cv_.Signal();
  }
  return SQLITE_OK;
}

void SqliteStore::CheckpointLoop() {
  while (true) {
    {
      MutexLock lock(&checkpoint_mu_);
      while (!checkpoint_due_ && !checkpoint_stop_) checkpoint_cv_.Wait();
      if (checkpoint_stop_) return;
      checkpoint_due_ = false;
    }
    // PASSIVE: copies what no reader still needs, never blocks the writer
    // or the readers (and never waits for them).
    int wal_pages = -1;
    const int rc =
        Checkpoint(*checkpoint_db_, SQLITE_CHECKPOINT_PASSIVE, &wal_pages);
    // A PASSIVE checkpoint never catches up with a writer that keeps
    // committing, and the WAL only starts again from its beginning at a
    // write that finds all of it copied, so under steady load it would grow
    // without end. Past kRestartFactor x checkpoint_pages the writer itself
    // makes that moment, between two batches (RestartWal): a checkpoint
    // from here would wait for the writer's lock, which a busy writer
    // takes again at once.
    if (rc == SQLITE_OK && wal_pages >= 0 &&
        static_cast<uint64_t>(wal_pages) >=
            kRestartFactor * uint64_t{options_.checkpoint_pages}) {
      restart_due_.store(true, std::memory_order_relaxed);
    }
    MutexLock lock(&checkpoint_mu_);
    ++checkpoints_run_;
    checkpoint_done_cv_.SignalAll();
  }
}

bool SqliteStore::WaitForCheckpoints(uint64_t n, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  MutexLock lock(&checkpoint_mu_);
  while (checkpoints_run_ < n) {
    if (!checkpoint_done_cv_.WaitWithDeadline(deadline)) {
      return checkpoints_run_ >= n;
    }
  }
  return true;
}

SqliteStore::SqliteStore(SqliteOptions options,
                         std::unique_ptr<Connection> writer_db,
                         std::vector<std::unique_ptr<Connection>> readers,
                         int migrations_applied)
    : options_(std::move(options)),
      migrations_applied_(migrations_applied),
      writer_db_(std::move(writer_db)),
      idle_readers_(std::move(readers)) {}

SqliteStore::~SqliteStore() {
  Close();
  MutexLock lock(&readers_mu_);
  idle_readers_.clear();
}

void SqliteStore::Submit(DirectoryWrite write, WriteDone done) {
  Enqueue(std::move(write), std::move(done));
}

void SqliteStore::Append(AppendEvent append, WriteDone done) {
  Enqueue(std::move(append), std::move(done));
}

void SqliteStore::Enqueue(std::variant<DirectoryWrite, AppendEvent> write,
                          WriteDone done) {
  const absl::Time submitted = options_.clock->Now();
  {
    MutexLock lock(&queue_mu_);
    if (writer_running_) {
      queue_.push_back(
          Pending{std::move(write), std::move(done), closing_, submitted});
      queue_cv_.Signal();
      return;
    }
  }
  if (done) done(ShuttingDown());
}

void SqliteStore::Close() {
  MutexLock close_lock(&close_mu_);
  {
    MutexLock lock(&queue_mu_);
    closing_ = true;
    queue_cv_.SignalAll();
  }
  if (writer_.joinable()) writer_.join();
  {
    MutexLock lock(&checkpoint_mu_);
    checkpoint_stop_ = true;
    checkpoint_cv_.SignalAll();
  }
  if (checkpointer_.joinable()) checkpointer_.join();
}

StoreStats SqliteStore::stats() const {
  StoreStats stats;
  {
    MutexLock lock(&stats_mu_);
    stats = stats_;
  }
  MutexLock lock(&checkpoint_mu_);
  stats.checkpoints = checkpoints_run_;
  return stats;
}

void SqliteStore::WriterLoop() {
  std::vector<Pending> batch;
  while (true) {
    {
      MutexLock lock(&queue_mu_);
      while (queue_.empty() && !closing_) queue_cv_.Wait();
      if (queue_.empty()) {
        writer_running_ = false;
        return;
      }
      const size_t n = std::min(queue_.size(), options_.max_batch);
      batch.reserve(n);
      for (size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    std::vector<absl::StatusOr<int64_t>> results = RunBatch(batch);
    for (size_t i = 0; i < batch.size(); ++i) {
      if (batch[i].done) batch[i].done(std::move(results[i]));
    }
    batch.clear();
    if (restart_due_.exchange(false, std::memory_order_relaxed)) RestartWal();
  }
}

void SqliteStore::RestartWal() {
  // The checkpoint thread has copied most of the WAL; this copies the rest
  // (and syncs), after which the next write starts the WAL from its
  // beginning. It waits (busy timeout) for readers still on old pages.
  Checkpoint(*writer_db_, SQLITE_CHECKPOINT_RESTART, nullptr);
}

int SqliteStore::Checkpoint(Connection& c, int mode, int* wal_pages) {
  const absl::Time start = absl::Now();
  const int rc =
      sqlite3_wal_checkpoint_v2(c.db(), nullptr, mode, wal_pages, nullptr);
  const absl::Duration took = absl::Now() - start;
  const bool restart = mode == SQLITE_CHECKPOINT_RESTART;
  if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
    log::Warning("WAL checkpoint failed",
                 {{"mode", restart ? "restart" : "passive"},
                  {"error", sqlite3_errmsg(c.db())}});
  }
  MutexLock lock(&stats_mu_);
  if (restart) ++stats_.checkpoint_restarts;  // PASSIVE: checkpoints_run_
  stats_.checkpoint_time_total += took;
  return rc;
}

std::vector<absl::StatusOr<int64_t>> SqliteStore::RunBatch(
    std::vector<Pending>& batch) {
  std::vector<absl::StatusOr<int64_t>> results;
  results.reserve(batch.size());
  const size_t runnable = static_cast<size_t>(
      std::count_if(batch.begin(), batch.end(),
                    [](const Pending& p) { return !p.rejected; }));
  if (runnable == 0) {
    for (size_t i = 0; i < batch.size(); ++i) results.push_back(ShuttingDown());
    return results;
  }

  Connection& c = *writer_db_;
  const absl::Time start = options_.clock->Now();
  // `failed`: the transaction is lost; every write of the batch fails.
  absl::Status failed = c.Prepare("BEGIN IMMEDIATE").Run();
  for (Pending& pending : batch) {
    if (pending.rejected) {
      results.push_back(ShuttingDown());
      continue;
    }
    if (!failed.ok()) {
      results.push_back(0);  // replaced below
      continue;
    }
    if (failed = c.Prepare("SAVEPOINT w").Run(); !failed.ok()) {
      results.push_back(0);  // replaced below
      continue;
    }
    const AppendEvent* append = std::get_if<AppendEvent>(&pending.write);
    absl::StatusOr<int64_t> result;
    if (append != nullptr) {
      result = Apply(c, *append, writer_logs_);
    } else {
      const DirectoryWrite& write = std::get<DirectoryWrite>(pending.write);
      // A deleted room or user takes its log with it.
      if (std::holds_alternative<DeleteRoom>(write) ||
          std::holds_alternative<DeleteUser>(write)) {
        writer_logs_.last.clear();
      }
      result = std::visit(
          [&c](const auto& w) -> absl::StatusOr<int64_t> {
            return Apply(c, w);
          },
          write);
    }
    if (result.ok()) {
      failed = c.Prepare("RELEASE w").Run();
      if (failed.ok() && append != nullptr) {
        auto& last = writer_logs_.last;
        if (last.size() >= WriterLogs::kMaxLogs) last.clear();
        last.insert_or_assign(append->event->log, append->event->sequence);
      }
    } else if (sqlite3_get_autocommit(c.db())) {
      // SQLite rolled the whole transaction back (I/O error, disk full).
      failed = result.status();
    } else {
      failed = c.Prepare("ROLLBACK TO w").Run();
      if (failed.ok()) failed = c.Prepare("RELEASE w").Run();
    }
    results.push_back(std::move(result));
  }
  if (failed.ok()) failed = c.Prepare("COMMIT").Run();
  if (!failed.ok()) {
    // What the lost transaction taught about logs may not be true, and its
    // appends took no number.
    writer_logs_.last.clear();
    for (size_t i = 0; i < results.size(); ++i) {
      auto* append = std::get_if<AppendEvent>(&batch[i].write);
      if (append != nullptr && results[i].ok()) append->event->sequence = 0;
    }
    if (!sqlite3_get_autocommit(c.db())) {
      c.Prepare("ROLLBACK").Run().IgnoreError();
    }
    // One status per write, not copies of one: copies would share a
    // reference-counted payload between the threads the callbacks hand them
    // to.
    const std::string message =
        absl::StrCat("the transaction failed: ", failed.message());
    for (size_t i = 0; i < batch.size(); ++i) {
      if (!batch[i].rejected) results[i] = StoreFailed(message);
    }
  }

  const absl::Time committed = options_.clock->Now();
  const absl::Duration elapsed = committed - start;
  MutexLock lock(&stats_mu_);
  for (const Pending& pending : batch) {
    if (pending.rejected) continue;
    const absl::Duration waited = committed - pending.submitted;
    ++stats_.write_wait_buckets[metrics::LatencyBucketOf(waited)];
    stats_.write_wait_total += waited;
    stats_.longest_write_wait = std::max(stats_.longest_write_wait, waited);
  }
  ++stats_.transactions;
  stats_.writes += runnable;
  stats_.largest_batch = std::max(stats_.largest_batch, runnable);
  stats_.commit_time_total += elapsed;
  stats_.longest_commit = std::max(stats_.longest_commit, elapsed);
  return results;
}

// ---- Reads ----

absl::StatusOr<User> SqliteStore::GetUser(absl::string_view id) {
  ReaderLease c(this);
  Stmt stmt = c->Prepare("SELECT " PARLEY_USER_COLUMNS
                           " FROM users WHERE id = ?1");
  stmt.BindText(1, id);
  absl::StatusOr<bool> row = stmt.Next();
  if (!row.ok()) return row.status();
  if (!*row) return UserNotFound();
  return ReadUser(stmt);
}

absl::StatusOr<User> SqliteStore::GetUserByName(absl::string_view username) {
  ReaderLease c(this);
  Stmt stmt = c->Prepare("SELECT " PARLEY_USER_COLUMNS
                           " FROM users WHERE username = ?1");
  stmt.BindText(1, username);
  absl::StatusOr<bool> row = stmt.Next();
  if (!row.ok()) return row.status();
  if (!*row) return UserNotFound();
  return ReadUser(stmt);
}

absl::StatusOr<std::vector<User>> SqliteStore::ListUsers(
    absl::string_view after_username, size_t limit) {
  ReaderLease c(this);
  Stmt stmt = c->Prepare("SELECT " PARLEY_USER_COLUMNS
                           " FROM users WHERE username > ?1 "
                           "ORDER BY username LIMIT ?2");
  stmt.BindText(1, after_username);
  stmt.BindInt(2, ToSql(limit));
  std::vector<User> users;
  while (true) {
    absl::StatusOr<bool> row = stmt.Next();
    if (!row.ok()) return row.status();
    if (!*row) return users;
    users.push_back(ReadUser(stmt));
  }
}

absl::StatusOr<Room> SqliteStore::GetRoom(absl::string_view id) {
  ReaderLease c(this);
  Stmt stmt = c->Prepare("SELECT " PARLEY_ROOM_COLUMNS
                           " FROM rooms WHERE id = ?1");
  stmt.BindText(1, id);
  absl::StatusOr<bool> row = stmt.Next();
  if (!row.ok()) return row.status();
  if (!*row) return RoomNotFound();
  return ReadRoom(stmt);
}

absl::StatusOr<Room> SqliteStore::GetRoomByName(absl::string_view name) {
  ReaderLease c(this);
  Stmt stmt = c->Prepare("SELECT " PARLEY_ROOM_COLUMNS
                           " FROM rooms WHERE name = ?1");
  stmt.BindText(1, name);
  absl::StatusOr<bool> row = stmt.Next();
  if (!row.ok()) return row.status();
  if (!*row) return RoomNotFound();
  return ReadRoom(stmt);
}

absl::StatusOr<std::vector<Room>> SqliteStore::ListRooms(
    absl::string_view viewer_id, absl::string_view after_name, size_t limit) {
  ReaderLease c(this);
  Stmt stmt = c->Prepare(
      "SELECT " PARLEY_ROOM_COLUMNS
      " FROM rooms r WHERE name > ?1 AND id <> ?4 AND (visibility <> 3 OR "
      "EXISTS (SELECT 1 FROM members m WHERE m.room_id = r.id AND "
      "m.user_id = ?2)) ORDER BY name LIMIT ?3");
  stmt.BindText(1, after_name);
  stmt.BindText(2, viewer_id);
  stmt.BindInt(3, ToSql(limit));
  stmt.BindText(4, model::kLobbyId);
  std::vector<Room> rooms;
  while (true) {
    absl::StatusOr<bool> row = stmt.Next();
    if (!row.ok()) return row.status();
    if (!*row) return rooms;
    rooms.push_back(ReadRoom(stmt));
  }
}

absl::StatusOr<std::optional<Member>> SqliteStore::GetMember(
    absl::string_view room_id, absl::string_view user_id) {
  ReaderLease c(this);
  Stmt stmt = c->Prepare(
      "SELECT " PARLEY_MEMBER_COLUMNS
      " FROM members m JOIN users u ON u.id = m.user_id "
      "WHERE m.room_id = ?1 AND m.user_id = ?2");
  stmt.BindText(1, room_id);
  stmt.BindText(2, user_id);
  absl::StatusOr<bool> row = stmt.Next();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<Member>();
  return std::optional<Member>(ReadMember(stmt));
}

absl::StatusOr<std::vector<Member>> SqliteStore::ListMembers(
    absl::string_view room_id) {
  ReaderLease c(this);
  Stmt stmt = c->Prepare(
      "SELECT " PARLEY_MEMBER_COLUMNS
      " FROM members m JOIN users u ON u.id = m.user_id "
      "WHERE m.room_id = ?1 ORDER BY u.username");
  stmt.BindText(1, room_id);
  std::vector<Member> members;
  while (true) {
    absl::StatusOr<bool> row = stmt.Next();
    if (!row.ok()) return row.status();
    if (!*row) return members;
    members.push_back(ReadMember(stmt));
  }
}

absl::StatusOr<size_t> SqliteStore::CountMembers(absl::string_view room_id) {
  ReaderLease c(this);
  Stmt stmt =
      c->Prepare("SELECT count(*) FROM members WHERE room_id = ?1");
  stmt.BindText(1, room_id);
  absl::StatusOr<bool> row = stmt.Next();
  if (!row.ok()) return row.status();
  return *row ? static_cast<size_t>(stmt.Int(0)) : 0;
}

absl::StatusOr<uint64_t> SqliteStore::LastSequence(absl::string_view log) {
  ReaderLease c(this);
  return LastSequenceOf(*c, log);
}

absl::StatusOr<std::vector<model::EventPtr>> SqliteStore::ReadAfter(
    absl::string_view log, uint64_t after, size_t limit) {
  ReaderLease c(this);
  ReadTransaction txn(*c);
  if (!txn.status().ok()) return txn.status();
  Stmt stmt = c->Prepare("SELECT " PARLEY_EVENT_COLUMNS
                           " FROM events WHERE log = ?1 AND sequence > ?2 "
                           "ORDER BY sequence LIMIT ?3");
  stmt.BindText(1, log);
  stmt.BindInt(2, ToSql(after));
  stmt.BindInt(3, ToSql(limit));
  return ReadEvents(*c, stmt);
}

absl::StatusOr<PageResult> SqliteStore::ListMessages(absl::string_view log,
                                                     const Page& page) {
  // Messages strictly between `after` and `before`: the first `limit` after
  // `after` when it is set, else the last `limit` before `before`.
  const bool ascending = page.after != 0 || page.oldest_first;
  const int64_t after = std::min(ToSql(page.after), kForever - 1);
  const int64_t before = page.before == 0 ? kForever : ToSql(page.before);

  ReaderLease c(this);
  ReadTransaction txn(*c);
  if (!txn.status().ok()) return txn.status();
  PageResult result;
  {
    Stmt stmt = c->Prepare(
        ascending ? "SELECT " PARLEY_EVENT_COLUMNS
                    " FROM events WHERE log = ?1 AND kind = 1 AND "
                    "sequence > ?2 AND sequence < ?3 "
                    "ORDER BY sequence LIMIT ?4"
                  : "SELECT " PARLEY_EVENT_COLUMNS
                    " FROM events WHERE log = ?1 AND kind = 1 AND "
                    "sequence > ?2 AND sequence < ?3 "
                    "ORDER BY sequence DESC LIMIT ?4");
    stmt.BindText(1, log);
    stmt.BindInt(2, after);
    stmt.BindInt(3, before);
    stmt.BindInt(4, ToSql(page.limit));
    absl::StatusOr<std::vector<model::EventPtr>> messages =
        ReadEvents(*c, stmt);
    if (!messages.ok()) return messages.status();
    result.messages = *std::move(messages);
  }
  if (!ascending) {
    std::reverse(result.messages.begin(), result.messages.end());
  }

  // Older: any message before the first listed (or, when none was, at or
  // before `after` / before `before`). Newer: any after the last listed (or
  // after `after` / at or after `before`).
  int64_t older_than = 0;
  int64_t newer_than = 0;
  if (!result.messages.empty()) {
    older_than = static_cast<int64_t>(result.messages.front()->sequence);
    newer_than = static_cast<int64_t>(result.messages.back()->sequence);
  } else if (ascending) {
    older_than = after + 1;
    newer_than = after;
  } else {
    older_than = before;
    newer_than = before - 1;
  }
  {
    Stmt older = c->Prepare(
        "SELECT 1 FROM events WHERE log = ?1 AND kind = 1 AND sequence < ?2 "
        "LIMIT 1");
    older.BindText(1, log);
    older.BindInt(2, older_than);
    absl::StatusOr<bool> row = older.Next();
    if (!row.ok()) return row.status();
    result.has_older = *row;
  }
  {
    Stmt newer = c->Prepare(
        "SELECT 1 FROM events WHERE log = ?1 AND kind = 1 AND sequence > ?2 "
        "LIMIT 1");
    newer.BindText(1, log);
    newer.BindInt(2, newer_than);
    absl::StatusOr<bool> row = newer.Next();
    if (!row.ok()) return row.status();
    result.has_newer = *row;
  }
  return result;
}

absl::StatusOr<model::EventPtr> SqliteStore::GetMessage(absl::string_view log,
                                                        absl::string_view id) {
  ReaderLease c(this);
  ReadTransaction txn(*c);
  if (!txn.status().ok()) return txn.status();
  Stmt stmt = c->Prepare("SELECT " PARLEY_EVENT_COLUMNS
                           " FROM events WHERE id = ?1 AND log = ?2 AND "
                           "kind = 1");
  stmt.BindText(1, id);
  stmt.BindText(2, log);
  absl::StatusOr<std::vector<model::EventPtr>> events = ReadEvents(*c, stmt);
  if (!events.ok()) return events.status();
  if (events->empty()) return MessageNotFound();
  return events->front();
}

absl::StatusOr<std::vector<std::string>> SqliteStore::ListPosters(
    absl::string_view log) {
  ReaderLease c(this);
  Stmt stmt = c->Prepare(
      "SELECT sender FROM events WHERE log = ?1 AND kind = 1 AND sender <> '' "
      "GROUP BY sender ORDER BY min(sequence)");
  stmt.BindText(1, log);
  std::vector<std::string> posters;
  while (true) {
    absl::StatusOr<bool> row = stmt.Next();
    if (!row.ok()) return row.status();
    if (!*row) return posters;
    posters.push_back(stmt.Text(0));
  }
}

absl::StatusOr<std::optional<IdempotentSend>> SqliteStore::FindIdempotentSend(
    absl::string_view scope, absl::string_view key, absl::Time not_before) {
  ReaderLease c(this);
  Stmt stmt = c->Prepare(
      "SELECT digest, log, sequence, event_id, time FROM idempotency_keys "
      "WHERE scope = ?1 AND key = ?2 AND time >= ?3");
  stmt.BindText(1, scope);
  stmt.BindText(2, key);
  stmt.BindTime(3, not_before);
  absl::StatusOr<bool> row = stmt.Next();
  if (!row.ok()) return row.status();
  if (!*row) return std::nullopt;
  IdempotentSend found;
  found.digest = stmt.Text(0);
  found.log = stmt.Text(1);
  found.sequence = static_cast<uint64_t>(stmt.Int(2));
  found.event_id = stmt.Text(3);
  found.time = stmt.Time(4);
  return found;
}

absl::StatusOr<ReadState> SqliteStore::GetReadState(
    absl::string_view user_id, absl::string_view room_id) {
  ReaderLease c(this);
  ReadTransaction txn(*c);
  if (!txn.status().ok()) return txn.status();
  Stmt marker = c->Prepare(
      "SELECT sequence FROM read_markers WHERE user_id = ?1 AND room_id = ?2");
  marker.BindText(1, user_id);
  marker.BindText(2, room_id);
  absl::StatusOr<bool> row = marker.Next();
  if (!row.ok()) return row.status();
  ReadState state;
  if (!*row) return state;  // never read: no marker, nothing counted unread
  state.has_marker = true;
  state.sequence = static_cast<uint64_t>(marker.Int(0));
  Stmt unread = c->Prepare(
      "SELECT count(*) FROM events WHERE log = ?1 AND sequence > ?2 "
      "AND kind = 1 AND deleted = 0 AND sender_id <> ?3");
  unread.BindText(1, room_id);
  unread.BindInt(2, ToSql(state.sequence));
  unread.BindText(3, user_id);
  row = unread.Next();
  if (!row.ok()) return row.status();
  state.unread = *row ? static_cast<uint64_t>(unread.Int(0)) : 0;
  return state;
}

absl::StatusOr<std::vector<std::string>> SqliteStore::ListRevokedTokens() {
  ReaderLease c(this);
  Stmt stmt = c->Prepare(
      "SELECT jti FROM revoked_tokens WHERE expire_time > ?1 ORDER BY jti");
  stmt.BindTime(1, absl::Now());
  std::vector<std::string> tokens;
  while (true) {
    absl::StatusOr<bool> row = stmt.Next();
    if (!row.ok()) return row.status();
    if (!*row) return tokens;
    tokens.push_back(stmt.Text(0));
  }
}

}  // namespace parley::store
