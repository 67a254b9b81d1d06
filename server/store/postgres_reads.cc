// PostgresStore's reads, each on a pooled connection (PostgresStore::Read).
// The queries are SqliteStore's, with names compared by their folded keys.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/common/errors.h"
#include "server/common/log.h"
#include "server/model/ids.h"
#include "server/store/event_row.h"
#include "server/store/postgres_connection.h"
#include "server/store/postgres_sql.h"
#include "server/store/paging.h"
#include "server/store/postgres_store.h"
#include "server/store/sql_columns.h"

namespace parley::store {

using pg_internal::Connection;
using pg_internal::NameKey;
using pg_internal::Params;
using pg_internal::Result;

namespace {


// Runs a read of several statements on one snapshot.
class Snapshot {
 public:
  explicit Snapshot(Connection& c) : c_(c) {
    status_ =
        c_.Script("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").status();
  }
  ~Snapshot() {
    if (status_.ok() && !c_.lost()) c_.Script("COMMIT");
  }
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;

  const absl::Status& status() const { return status_; }

 private:
  Connection& c_;
  absl::Status status_;
};

User ReadUser(const Result& r, int row) {
  User user;
  user.id = r.Text(row, 0);
  user.username = r.Text(row, 1);
  user.display_name = r.Text(row, 2);
  user.password_hash = r.Text(row, 3);
  user.create_time = r.Time(row, 4);
  user.update_time = r.Time(row, 5);
  user.tokens_valid_after = r.Time(row, 6);
  return user;
}

Room ReadRoom(const Result& r, int row) {
  Room room;
  room.id = r.Text(row, 0);
  room.name = r.Text(row, 1);
  room.description = r.Text(row, 2);
  room.visibility = static_cast<Visibility>(r.Int(row, 3));
  room.password_hash = r.Text(row, 4);
  room.owner_id = r.Text(row, 5);
  room.create_time = r.Time(row, 6);
  room.update_time = r.Time(row, 7);
  return room;
}

Member ReadMember(const Result& r, int row) {
  Member member;
  member.room_id = r.Text(row, 0);
  member.user_id = r.Text(row, 1);
  member.role = r.Text(row, 2);
  member.join_time = r.Time(row, 3);
  member.username = r.Text(row, 4);
  member.display_name = r.Text(row, 5);
  return member;
}

// Every row of `r` (selecting PARLEY_EVENT_COLUMNS), with the earlier
// versions of edited messages.
absl::StatusOr<std::vector<model::EventPtr>> ReadEvents(Connection& c,
                                                         const Result& r) {
  if (!r.ok()) return r.status();
  std::vector<std::shared_ptr<model::Event>> events;
  events.reserve(static_cast<size_t>(r.rows()));
  absl::flat_hash_map<std::string, model::Event*> edited;
  for (int row = 0; row < r.rows(); ++row) {
    EventRow fields;
    fields.log = r.Text(row, 0);
    fields.sequence = r.Int(row, 1);
    fields.kind = r.Int(row, 2);
    fields.id = r.Text(row, 3);
    fields.room_id = r.Text(row, 4);
    fields.room = r.Text(row, 5);
    fields.sender = r.Text(row, 6);
    fields.sender_id = r.Text(row, 7);
    fields.recipient_id = r.Text(row, 8);
    fields.recipient = r.Text(row, 9);
    fields.text = r.Text(row, 10);
    fields.time = r.Time(row, 11);
    fields.target_id = r.Text(row, 12);
    fields.target_sequence = r.Int(row, 13);
    fields.purge_through = r.Int(row, 14);
    fields.update_time = r.Time(row, 15);
    fields.deleted = r.Bool(row, 16);
    absl::StatusOr<std::shared_ptr<model::Event>> event =
        DecodeEventRow(std::move(fields));
    if (!event.ok()) return event.status();
    if ((*event)->kind == model::EventKind::kMessage &&
        (*event)->update_time != absl::InfinitePast()) {
      edited.emplace((*event)->id, event->get());
    }
    events.push_back(*std::move(event));
  }
  if (!edited.empty()) {
    std::vector<std::string> ids;
    ids.reserve(edited.size());
    for (const auto& [id, event] : edited) ids.push_back(id);
    Result versions = c.Exec(
        "SELECT message_id, text, time FROM message_versions "
        "WHERE message_id = ANY ($1::text[]) ORDER BY message_id, "
        "replaced_by",
        Params().TextArray(ids));
    if (!versions.ok()) return versions.status();
    for (int row = 0; row < versions.rows(); ++row) {
      edited[versions.Text(row, 0)]->previous_versions.push_back(
          model::MessageVersion{versions.Text(row, 1),
                                versions.Time(row, 2)});
    }
  }
  return std::vector<model::EventPtr>(events.begin(), events.end());
}

absl::StatusOr<User> OneUser(const Result& r) {
  if (!r.ok()) return r.status();
  if (r.rows() == 0) return UserNotFound();
  return ReadUser(r, 0);
}

absl::StatusOr<Room> OneRoom(const Result& r) {
  if (!r.ok()) return r.status();
  if (r.rows() == 0) return RoomNotFound();
  return ReadRoom(r, 0);
}

template <typename T, typename F>
absl::StatusOr<std::vector<T>> All(const Result& r, F read_row) {
  if (!r.ok()) return r.status();
  std::vector<T> out;
  out.reserve(static_cast<size_t>(r.rows()));
  for (int row = 0; row < r.rows(); ++row) out.push_back(read_row(r, row));
  return out;
}

std::string TextOf(const Result& r, int row) { return r.Text(row, 0); }

}  // namespace

template <typename T, typename F>
absl::StatusOr<T> PostgresStore::Read(F read) {
  for (int attempt = 0;; ++attempt) {
    Slot slot;
    {
      MutexLock lock(&readers_mu_);
      while (idle_readers_.empty()) readers_cv_.Wait();
      slot = std::move(idle_readers_.back());
      idle_readers_.pop_back();
    }
    const bool reused = slot.connection != nullptr;
    absl::StatusOr<Connection*> c = Connect(slot, /*pipeline=*/false);
    absl::StatusOr<T> result = c.ok() ? read(**c) : c.status();
    const bool lost = c.ok() && (*c)->lost();
    if (lost) {
      // Opened again at the slot's next use.
      slot.connection.reset();
      log::Warning("postgres: a read connection was lost",
                   {{"error", result.ok() ? "" : result.status().message()}});
    }
    {
      MutexLock lock(&readers_mu_);
      idle_readers_.push_back(std::move(slot));
    }
    readers_cv_.Signal();
    // An idle connection the server dropped (a restart) fails its first
    // read; a read changes nothing, so it runs again on a new connection.
    if (!result.ok() && lost && reused && attempt == 0) continue;
    return result;
  }
}

absl::StatusOr<User> PostgresStore::GetUser(absl::string_view id) {
  return Read<User>([&](Connection& c) {
    return OneUser(c.Exec("SELECT " PARLEY_USER_COLUMNS
                          " FROM users WHERE id = $1::text",
                          Params().Text(id)));
  });
}

absl::StatusOr<User> PostgresStore::GetUserByName(absl::string_view username) {
  return Read<User>([&](Connection& c) {
    return OneUser(c.Exec("SELECT " PARLEY_USER_COLUMNS
                          " FROM users WHERE username_key = $1::text",
                          Params().Text(NameKey(username))));
  });
}

absl::StatusOr<std::vector<User>> PostgresStore::ListUsers(
    absl::string_view after_username, size_t limit) {
  return Read<std::vector<User>>([&](Connection& c) {
    return All<User>(
        c.Exec("SELECT " PARLEY_USER_COLUMNS
               " FROM users WHERE username_key > $1::text "
               "ORDER BY username_key LIMIT $2::bigint",
               Params().Text(NameKey(after_username)).Uint(limit)),
        &ReadUser);
  });
}

absl::StatusOr<Room> PostgresStore::GetRoom(absl::string_view id) {
  return Read<Room>([&](Connection& c) {
    return OneRoom(c.Exec("SELECT " PARLEY_ROOM_COLUMNS
                          " FROM rooms WHERE id = $1::text",
                          Params().Text(id)));
  });
}

absl::StatusOr<Room> PostgresStore::GetRoomByName(absl::string_view name) {
  return Read<Room>([&](Connection& c) {
    return OneRoom(c.Exec("SELECT " PARLEY_ROOM_COLUMNS
                          " FROM rooms WHERE name_key = $1::text",
                          Params().Text(NameKey(name))));
  });
}

absl::StatusOr<std::vector<Room>> PostgresStore::ListRooms(
    absl::string_view viewer_id, absl::string_view after_name, size_t limit) {
  return Read<std::vector<Room>>([&](Connection& c) {
    return All<Room>(
        c.Exec("SELECT " PARLEY_ROOM_COLUMNS
               " FROM rooms r WHERE name_key > $1::text AND id <> $4::text "
               "AND (visibility <> 3 OR EXISTS (SELECT 1 FROM members m "
               "WHERE m.room_id = r.id AND m.user_id = $2::text)) "
               "ORDER BY name_key LIMIT $3::bigint",
               Params()
                   .Text(NameKey(after_name))
                   .Text(viewer_id)
                   .Uint(limit)
                   .Text(model::kLobbyId)),
        &ReadRoom);
  });
}

absl::StatusOr<std::optional<Member>> PostgresStore::GetMember(
    absl::string_view room_id, absl::string_view user_id) {
  return Read<std::optional<Member>>(
      [&](Connection& c) -> absl::StatusOr<std::optional<Member>> {
        Result r = c.Exec("SELECT " PARLEY_MEMBER_COLUMNS
                          " FROM members m JOIN users u ON u.id = m.user_id "
                          "WHERE m.room_id = $1::text AND m.user_id = $2::text",
                          Params().Text(room_id).Text(user_id));
        if (!r.ok()) return r.status();
        if (r.rows() == 0) return std::optional<Member>();
        return std::optional<Member>(ReadMember(r, 0));
      });
}

absl::StatusOr<std::vector<Member>> PostgresStore::ListMembers(
    absl::string_view room_id) {
  return Read<std::vector<Member>>([&](Connection& c) {
    return All<Member>(
        c.Exec("SELECT " PARLEY_MEMBER_COLUMNS
               " FROM members m JOIN users u ON u.id = m.user_id "
               "WHERE m.room_id = $1::text ORDER BY u.username_key",
               Params().Text(room_id)),
        &ReadMember);
  });
}

absl::StatusOr<size_t> PostgresStore::CountMembers(absl::string_view room_id) {
  return Read<size_t>([&](Connection& c) -> absl::StatusOr<size_t> {
    Result r = c.Exec("SELECT count(*) FROM members WHERE room_id = $1::text",
                      Params().Text(room_id));
    if (!r.ok()) return r.status();
    return static_cast<size_t>(r.Uint(0, 0));
  });
}

absl::StatusOr<std::optional<IdempotentSend>>
PostgresStore::FindIdempotentSend(absl::string_view scope,
                                  absl::string_view key,
                                  absl::Time not_before) {
  return Read<std::optional<IdempotentSend>>(
      [&](Connection& c) -> absl::StatusOr<std::optional<IdempotentSend>> {
        Result r = c.Exec(
            "SELECT digest, log, sequence, event_id, time FROM "
            "idempotency_keys WHERE scope = $1::text AND key = $2::text AND "
            "time >= $3::bigint",
            Params().Text(scope).Text(key).Time(not_before));
        if (!r.ok()) return r.status();
        if (r.rows() == 0) return std::optional<IdempotentSend>();
        IdempotentSend found;
        found.digest = r.Text(0, 0);
        found.log = r.Text(0, 1);
        found.sequence = r.Uint(0, 2);
        found.event_id = r.Text(0, 3);
        found.time = r.Time(0, 4);
        return std::optional<IdempotentSend>(std::move(found));
      });
}

absl::StatusOr<ReadState> PostgresStore::GetReadState(
    absl::string_view user_id, absl::string_view room_id) {
  return Read<ReadState>([&](Connection& c) -> absl::StatusOr<ReadState> {
    // One statement, so one snapshot: the marker and what came after it.
    Result r = c.Exec(
        "SELECT m.sequence, (SELECT count(*) FROM events WHERE log = "
        "$2::text AND sequence > m.sequence AND kind = 1 AND NOT deleted AND "
        "sender_id <> $1::text) FROM read_markers m WHERE m.user_id = "
        "$1::text AND m.room_id = $2::text",
        Params().Text(user_id).Text(room_id));
    if (!r.ok()) return r.status();
    ReadState state;
    if (r.rows() == 0) return state;  // never read: nothing counted unread
    state.has_marker = true;
    state.sequence = r.Uint(0, 0);
    state.unread = r.Uint(0, 1);
    return state;
  });
}

absl::StatusOr<std::vector<std::string>> PostgresStore::ListRevokedTokens() {
  return Read<std::vector<std::string>>([&](Connection& c) {
    return All<std::string>(
        c.Exec("SELECT jti FROM revoked_tokens WHERE expire_time > $1::bigint "
               "ORDER BY jti",
               Params().Time(absl::Now())),
        &TextOf);
  });
}

absl::StatusOr<uint64_t> PostgresStore::LastSequence(absl::string_view log) {
  return Read<uint64_t>([&](Connection& c) -> absl::StatusOr<uint64_t> {
    Result r = c.Exec("SELECT last_seq FROM logs WHERE log = $1::text",
                      Params().Text(log));
    if (!r.ok()) return r.status();
    return r.rows() == 0 ? 0 : r.Uint(0, 0);
  });
}

absl::StatusOr<std::vector<model::EventPtr>> PostgresStore::ReadAfter(
    absl::string_view log, uint64_t after, size_t limit) {
  return Read<std::vector<model::EventPtr>>(
      [&](Connection& c) -> absl::StatusOr<std::vector<model::EventPtr>> {
        Snapshot snapshot(c);
        if (!snapshot.status().ok()) return snapshot.status();
        return ReadEvents(
            c, c.Exec("SELECT " PARLEY_EVENT_COLUMNS
                      " FROM events WHERE log = $1::text AND sequence > "
                      "$2::bigint ORDER BY sequence LIMIT $3::bigint",
                      Params().Text(log).Uint(after).Uint(limit)));
      });
}

absl::StatusOr<PageResult> PostgresStore::ListMessages(absl::string_view log,
                                                       const Page& page) {
  const PageRange range = RangeOf(page);
  return Read<PageResult>([&](Connection& c) -> absl::StatusOr<PageResult> {
    Snapshot snapshot(c);
    if (!snapshot.status().ok()) return snapshot.status();
    PageResult result;
    absl::StatusOr<std::vector<model::EventPtr>> messages = ReadEvents(
        c, c.Exec(range.ascending
                      ? "SELECT " PARLEY_EVENT_COLUMNS
                        " FROM events WHERE log = $1::text AND kind = 1 AND "
                        "sequence > $2::bigint AND sequence < $3::bigint "
                        "ORDER BY sequence LIMIT $4::bigint"
                      : "SELECT " PARLEY_EVENT_COLUMNS
                        " FROM events WHERE log = $1::text AND kind = 1 AND "
                        "sequence > $2::bigint AND sequence < $3::bigint "
                        "ORDER BY sequence DESC LIMIT $4::bigint",
                  Params()
                      .Text(log)
                      .Int(range.after)
                      .Int(range.before)
                      .Uint(page.limit)));
    if (!messages.ok()) return messages.status();
    result.messages = *std::move(messages);
    if (!range.ascending) {
      std::reverse(result.messages.begin(), result.messages.end());
    }
    const PageEdges edges = EdgesOf(range, result.messages);
    Result around = c.Exec(
        "SELECT EXISTS (SELECT 1 FROM events WHERE log = $1::text AND "
        "kind = 1 AND sequence < $2::bigint), EXISTS (SELECT 1 FROM events "
        "WHERE log = $1::text AND kind = 1 AND sequence > $3::bigint)",
        Params().Text(log).Int(edges.older_than).Int(edges.newer_than));
    if (!around.ok()) return around.status();
    result.has_older = around.Bool(0, 0);
    result.has_newer = around.Bool(0, 1);
    return result;
  });
}

absl::StatusOr<model::EventPtr> PostgresStore::GetMessage(
    absl::string_view log, absl::string_view id) {
  return Read<model::EventPtr>(
      [&](Connection& c) -> absl::StatusOr<model::EventPtr> {
        Snapshot snapshot(c);
        if (!snapshot.status().ok()) return snapshot.status();
        absl::StatusOr<std::vector<model::EventPtr>> events = ReadEvents(
            c, c.Exec("SELECT " PARLEY_EVENT_COLUMNS
                      " FROM events WHERE id = $1::text AND log = $2::text "
                      "AND kind = 1",
                      Params().Text(id).Text(log)));
        if (!events.ok()) return events.status();
        if (events->empty()) return MessageNotFound();
        return events->front();
      });
}

absl::StatusOr<std::vector<std::string>> PostgresStore::ListPosters(
    absl::string_view log) {
  return Read<std::vector<std::string>>([&](Connection& c) {
    return All<std::string>(
        c.Exec("SELECT sender FROM events WHERE log = $1::text AND kind = 1 "
               "AND sender <> '' GROUP BY sender ORDER BY min(sequence)",
               Params().Text(log)),
        &TextOf);
  });
}

}  // namespace parley::store
