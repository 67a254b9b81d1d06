// SqliteStore's reads: each on a connection of the read pool, several
// statements in one read transaction (one snapshot).
#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/model/ids.h"
#include "server/store/errors.h"
#include "server/store/event_row.h"
#include "server/store/paging.h"
#include "server/store/sqlite_internal.h"
#include "server/store/sqlite_store.h"

namespace parley::store {
namespace sqlite_internal {
namespace {

// Runs `stmt`, expecting at most one row; whether there was one.
absl::StatusOr<bool> Exists(Stmt stmt) { return stmt.Next(); }

}  // namespace

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

}  // namespace sqlite_internal

namespace {

using sqlite_internal::Connection;
using sqlite_internal::LastSequenceOf;
using sqlite_internal::ReadTransaction;
using sqlite_internal::Stmt;
using sqlite_internal::ToSql;

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
  EventRow row;
  row.log = s.Text(0);
  row.sequence = s.Int(1);
  row.kind = s.Int(2);
  row.id = s.Text(3);
  row.room_id = s.Text(4);
  row.room = s.Text(5);
  row.sender = s.Text(6);
  row.sender_id = s.Text(7);
  row.recipient_id = s.Text(8);
  row.recipient = s.Text(9);
  row.text = s.Text(10);
  row.time = s.Time(11);
  row.target_id = s.Text(12);
  row.target_sequence = s.Int(13);
  row.purge_through = s.Int(14);
  row.update_time = s.Time(15);
  row.deleted = s.Int(16) != 0;
  return DecodeEventRow(std::move(row));
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

}  // namespace

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
  const PageRange range = RangeOf(page);
  ReaderLease c(this);
  ReadTransaction txn(*c);
  if (!txn.status().ok()) return txn.status();
  PageResult result;
  {
    Stmt stmt = c->Prepare(range.ascending
                               ? "SELECT " PARLEY_EVENT_COLUMNS
                                 " FROM events WHERE log = ?1 AND kind = 1 AND "
                                 "sequence > ?2 AND sequence < ?3 "
                                 "ORDER BY sequence LIMIT ?4"
                               : "SELECT " PARLEY_EVENT_COLUMNS
                                 " FROM events WHERE log = ?1 AND kind = 1 AND "
                                 "sequence > ?2 AND sequence < ?3 "
                                 "ORDER BY sequence DESC LIMIT ?4");
    stmt.BindText(1, log);
    stmt.BindInt(2, range.after);
    stmt.BindInt(3, range.before);
    stmt.BindInt(4, ToSql(page.limit));
    absl::StatusOr<std::vector<model::EventPtr>> messages =
        ReadEvents(*c, stmt);
    if (!messages.ok()) return messages.status();
    result.messages = *std::move(messages);
  }
  if (!range.ascending) {
    std::reverse(result.messages.begin(), result.messages.end());
  }
  const PageEdges edges = EdgesOf(range, result.messages);
  {
    Stmt older = c->Prepare(
        "SELECT 1 FROM events WHERE log = ?1 AND kind = 1 AND sequence < ?2 "
        "LIMIT 1");
    older.BindText(1, log);
    older.BindInt(2, edges.older_than);
    absl::StatusOr<bool> row = older.Next();
    if (!row.ok()) return row.status();
    result.has_older = *row;
  }
  {
    Stmt newer = c->Prepare(
        "SELECT 1 FROM events WHERE log = ?1 AND kind = 1 AND sequence > ?2 "
        "LIMIT 1");
    newer.BindText(1, log);
    newer.BindInt(2, edges.newer_than);
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
