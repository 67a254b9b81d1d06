// SqliteStore's writes: each runs in the writer's open savepoint (see
// SqliteStore::RunBatch), which rolls it back whole when it fails.
#include <algorithm>
#include <cstdint>
#include <string>
#include <variant>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/model/ids.h"
#include "server/store/errors.h"
#include "server/store/sqlite_internal.h"

namespace parley::store::sqlite_internal {
namespace {

absl::StatusOr<int64_t> Apply(Connection& c, const PutUser& w) {
  const User& user = w.user;
  if (absl::Status s = CheckPutUser(w); !s.ok()) return s;
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
  if (stmt.UniqueFailed("users.username")) return UsernameTaken();
  if (stmt.UniqueFailed("users.id")) return UserIdTaken();
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
  if (absl::Status s = CheckPutRoom(w); !s.ok()) return s;
  const int64_t visibility = static_cast<int64_t>(room.visibility);
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
    if (stmt.UniqueFailed("rooms.name")) return RoomNameTaken();
    if (stmt.UniqueFailed("rooms.id")) return RoomIdTaken();
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
  if (w.id == model::kLobbyId) return LobbyProtected();
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
  if (stmt.changes() == 0) return MemberNotFound();
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

// Whether `key` is stored with a send that has not expired.
absl::StatusOr<bool> KeyTaken(Connection& c, const model::IdempotencyKey& key) {
  Stmt stmt = c.Prepare(
      "SELECT 1 FROM idempotency_keys WHERE scope = ?1 AND key = ?2 AND "
      "time >= ?3");
  stmt.BindText(1, key.scope);
  stmt.BindText(2, key.key);
  stmt.BindTime(3, key.expired_before);
  return stmt.Next();
}

absl::Status InsertIdempotencyKey(Connection& c, const model::Event& e) {
  // Only an expired key is there to be replaced (KeyTaken came first).
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
  if (stmt.UniqueFailed("events.id")) return EventIdTaken();
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

}  // namespace

absl::StatusOr<int64_t> ApplyWrite(Connection& c, const DirectoryWrite& write) {
  return std::visit(
      [&c](const auto& w) -> absl::StatusOr<int64_t> { return Apply(c, w); },
      write);
}

absl::StatusOr<int64_t> ApplyAppend(Connection& c, const AppendEvent& w,
                                    const WriterLogs& logs) {
  if (absl::Status s = CheckAppend(w); !s.ok()) return s;
  model::Event& e = *w.event;
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
      if (!e.idempotency.key.empty()) {
        absl::StatusOr<bool> taken = KeyTaken(c, e.idempotency);
        if (!taken.ok() || *taken) {
          applied = taken.ok() ? IdempotencyKeyTaken() : taken.status();
          break;
        }
      }
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

}  // namespace parley::store::sqlite_internal
