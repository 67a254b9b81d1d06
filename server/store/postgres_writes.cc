// Every write of PostgresStore as one statement (see Planned in
// postgres_sql.h). The checks a write makes (a room exists, a name is free)
// are part of its statement, so a failing write changes nothing and the
// transaction goes on; the semantics are SqliteStore's (sqlite_store.h).
#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <variant>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/common/errors.h"
#include "server/model/ids.h"
#include "server/store/postgres_sql.h"

namespace parley::store::pg_internal {
namespace {


// A constraint the statement broke, as the write's error: `taken` for a
// unique constraint named `constraint` (others pass through), a foreign key
// on room_id / user_id as the missing room or user.
absl::Status Broken(const Result& r,
                    std::initializer_list<std::pair<const char*, absl::Status>>
                        taken = {}) {
  const std::string constraint = r.constraint();
  if (r.sqlstate() == "23505") {
    for (const auto& [name, status] : taken) {
      if (constraint == name) return status;
    }
  }
  if (r.sqlstate() == "23503") {
    if (absl::StrContains(constraint, "room_id")) return RoomNotFound();
    if (absl::StrContains(constraint, "user_id")) return UserNotFound();
  }
  return r.status();
}

// One row whose first column counts the rows the write changed: 0 is
// `missing`.
Planned Changed(const char* sql, Params params, absl::Status (*missing)()) {
  Planned p;
  p.sql = sql;
  p.params = std::move(params);
  p.interpret = [missing](const Result& r,
                          Assigned*) -> absl::StatusOr<int64_t> {
    if (!r.ok()) return Broken(r);
    if (r.rows() == 0 || r.Int(0, 0) == 0) return missing();
    return 0;
  };
  return p;
}

Planned Done(absl::StatusOr<int64_t> outcome) {
  Planned p;
  p.outcome = std::move(outcome);
  return p;
}

// ---- Directory ----

Planned PlanWrite(const PutUser& w) {
  const User& u = w.user;
  if (u.id.empty()) {
    return Done(InvalidInput("MISSING_ID", "id", "the user has no id"));
  }
  Planned p;
  p.params.Text(u.id).Text(u.username).Text(u.display_name)
      .Text(u.password_hash);
  if (w.create) {
    p.sql =
        "WITH u AS (INSERT INTO users (id, username, display_name, "
        "password_hash, create_time, update_time, tokens_valid_after) "
        "VALUES ($1::text, $2::text, $3::text, $4::text, $5::bigint, "
        "$6::bigint, $7::bigint) RETURNING id) "
        "INSERT INTO logs (log, last_seq) SELECT 'dm:' || id, 0 FROM u "
        "ON CONFLICT (log) DO NOTHING";
    p.params.Time(u.create_time).Time(u.update_time)
        .Time(u.tokens_valid_after);
  } else {
    p.sql =
        "UPDATE users SET username = $2::text, display_name = $3::text, "
        "password_hash = $4::text, update_time = $5::bigint, "
        "tokens_valid_after = $6::bigint WHERE id = $1::text RETURNING 1";
    p.params.Time(u.update_time).Time(u.tokens_valid_after);
  }
  const bool create = w.create;
  p.interpret = [create](const Result& r,
                         Assigned*) -> absl::StatusOr<int64_t> {
    if (!r.ok()) {
      return Broken(
          r, {{"users_username_unique",
               WithReason(absl::AlreadyExistsError("the username is taken"),
                          "USERNAME_TAKEN", "username")},
              {"users_pkey",
               WithReason(absl::AlreadyExistsError("a user with this id exists"),
                          "USER_EXISTS", "id")}});
    }
    if (!create && r.rows() == 0) return UserNotFound();
    return 0;
  };
  return p;
}

// Deletes `id` from `table` with its log (and so its events and versions).
#define PARLEY_DELETE_WITH_LOG(table)                                   \
  "WITH d AS (DELETE FROM " table " WHERE id = $1::text RETURNING id), " \
  "e AS (DELETE FROM events WHERE log = $2::text AND "                  \
  "EXISTS (SELECT 1 FROM d)), "                                         \
  "l AS (DELETE FROM logs WHERE log = $2::text AND "                    \
  "EXISTS (SELECT 1 FROM d)) "                                          \
  "SELECT count(*) FROM d"

Planned PlanWrite(const DeleteUser& w) {
  return Changed(PARLEY_DELETE_WITH_LOG("users"),
                 Params().Text(w.id).Text(model::InboxLog(w.id)),
                 &UserNotFound);
}

Planned PlanWrite(const PutRoom& w) {
  const Room& room = w.room;
  if (room.id.empty()) {
    return Done(InvalidInput("MISSING_ID", "id", "the room has no id"));
  }
  const int64_t visibility = static_cast<int64_t>(room.visibility);
  if (visibility < 1 || visibility > 3) {
    return Done(InvalidInput("INVALID_VISIBILITY", "visibility",
                             "unknown room visibility"));
  }
  Planned p;
  p.params.Text(room.id).Text(room.name).Text(room.description)
      .Int(visibility).Text(room.password_hash).Text(room.owner_id);
  if (w.create) {
    // The owner must exist; the room comes with its log and the owner's
    // membership.
    p.sql =
        "WITH ok AS (SELECT $6::text = '' OR EXISTS (SELECT 1 FROM users "
        "WHERE id = $6::text) AS ok), "
        "r AS (INSERT INTO rooms (id, name, description, visibility, "
        "password_hash, owner_id, create_time, update_time) SELECT $1::text, "
        "$2::text, $3::text, $4::smallint, $5::text, $6::text, $7::bigint, "
        "$8::bigint FROM ok WHERE ok.ok RETURNING id), "
        "l AS (INSERT INTO logs (log, last_seq) SELECT id, 0 FROM r "
        "ON CONFLICT (log) DO NOTHING), "
        "m AS (INSERT INTO members (room_id, user_id, role, join_time) "
        "SELECT id, $6::text, 'owner', $7::bigint FROM r WHERE $6::text <> '' "
        "ON CONFLICT (room_id, user_id) DO UPDATE SET role = excluded.role, "
        "join_time = excluded.join_time) "
        "SELECT ok FROM ok";
    p.params.Time(room.create_time).Time(room.update_time);
  } else {
    p.sql =
        "UPDATE rooms SET name = $2::text, description = $3::text, "
        "visibility = $4::smallint, password_hash = $5::text, "
        "owner_id = $6::text, update_time = $7::bigint WHERE id = $1::text "
        "RETURNING true";
    p.params.Time(room.update_time);
  }
  p.interpret = [](const Result& r, Assigned*) -> absl::StatusOr<int64_t> {
    if (!r.ok()) {
      return Broken(
          r, {{"rooms_name_unique",
               WithReason(absl::AlreadyExistsError("the room name is taken"),
                          "ROOM_NAME_TAKEN", "name")},
              {"rooms_pkey",
               WithReason(absl::AlreadyExistsError("a room with this id exists"),
                          "ROOM_EXISTS", "id")}});
    }
    // Create: false when the owner is missing. Update: no row when the
    // room is.
    if (r.rows() == 0) return RoomNotFound();
    if (!r.Bool(0, 0)) return UserNotFound();
    return 0;
  };
  return p;
}

Planned PlanWrite(const DeleteRoom& w) {
  if (w.id == model::kLobbyId) {
    return Done(WithReason(
        absl::FailedPreconditionError("the lobby cannot be deleted"),
        "LOBBY_PROTECTED"));
  }
  return Changed(PARLEY_DELETE_WITH_LOG("rooms"),
                 Params().Text(w.id).Text(w.id), &RoomNotFound);
}

Planned PlanWrite(const PutMember& w) {
  const Member& m = w.member;
  Planned p;
  p.sql =
      "WITH c AS (SELECT EXISTS (SELECT 1 FROM rooms WHERE id = $1::text) "
      "AS room, EXISTS (SELECT 1 FROM users WHERE id = $2::text) AS usr), "
      "m AS (INSERT INTO members (room_id, user_id, role, join_time) "
      "SELECT $1::text, $2::text, $3::text, $4::bigint FROM c "
      "WHERE c.room AND c.usr ON CONFLICT (room_id, user_id) DO UPDATE SET "
      "role = excluded.role, join_time = excluded.join_time) "
      "SELECT room, usr FROM c";
  p.params.Text(m.room_id).Text(m.user_id).Text(m.role).Time(m.join_time);
  p.interpret = [](const Result& r, Assigned*) -> absl::StatusOr<int64_t> {
    if (!r.ok()) return Broken(r);
    if (!r.Bool(0, 0)) return RoomNotFound();
    if (!r.Bool(0, 1)) return UserNotFound();
    return 0;
  };
  return p;
}

absl::Status MemberNotFound() {
  return WithReason(absl::NotFoundError("the user is not a member"),
                    "MEMBER_NOT_FOUND");
}

Planned PlanWrite(const DeleteMember& w) {
  return Changed(
      "WITH d AS (DELETE FROM members WHERE room_id = $1::text AND "
      "user_id = $2::text RETURNING 1) SELECT count(*) FROM d",
      Params().Text(w.room_id).Text(w.user_id), &MemberNotFound);
}

Planned PlanWrite(const RevokeToken& w) {
  Planned p;
  p.sql =
      "INSERT INTO revoked_tokens (jti, expire_time) VALUES ($1::text, "
      "$2::bigint) ON CONFLICT (jti) DO UPDATE SET expire_time = "
      "greatest(revoked_tokens.expire_time, excluded.expire_time)";
  p.params.Text(w.jti).Time(w.expire_time);
  p.interpret = [](const Result& r, Assigned*) -> absl::StatusOr<int64_t> {
    if (!r.ok()) return Broken(r);
    return 0;
  };
  return p;
}

Planned PlanWrite(const PutReadMarker& w) {
  Planned p;
  // Capped at the room's last number; never backward.
  p.sql =
      "WITH c AS (SELECT EXISTS (SELECT 1 FROM users WHERE id = $1::text) "
      "AND EXISTS (SELECT 1 FROM rooms WHERE id = $2::text) AS ok, "
      "coalesce((SELECT last_seq FROM logs WHERE log = $2::text), 0) AS last), "
      "m AS (INSERT INTO read_markers (user_id, room_id, sequence, "
      "update_time) SELECT $1::text, $2::text, least($3::bigint, c.last), "
      "$4::bigint FROM c WHERE c.ok ON CONFLICT (user_id, room_id) DO UPDATE "
      "SET sequence = greatest(read_markers.sequence, excluded.sequence), "
      "update_time = excluded.update_time RETURNING sequence) "
      "SELECT sequence FROM m";
  p.params.Text(w.user_id).Text(w.room_id).Uint(w.sequence)
      .Time(absl::Now());
  p.interpret = [](const Result& r, Assigned*) -> absl::StatusOr<int64_t> {
    if (!r.ok()) return Broken(r);
    if (r.rows() == 0) return RoomNotFound();
    return r.Int(0, 0);
  };
  return p;
}

Planned PlanWrite(const PruneIdempotencyKeys& w) {
  Planned p;
  p.sql =
      "WITH d AS (DELETE FROM idempotency_keys WHERE time < $1::bigint "
      "RETURNING 1) SELECT count(*) FROM d";
  p.params.Time(w.before);
  p.interpret = [](const Result& r, Assigned*) -> absl::StatusOr<int64_t> {
    if (!r.ok()) return Broken(r);
    return r.Int(0, 0);
  };
  return p;
}

// ---- Appends ----

// The events row of an append: $1 log, the sequence `seq`, $2 kind, $3 id,
// $4 room_id, $5 room, $6 sender, $7 sender_id, $8 recipient_id,
// $9 recipient, $10 text, $11 time, $12 target_id, the target's sequence
// `target`, $13 purge_through, $14 update_time, $15 deleted.
#define PARLEY_INSERT_EVENT(seq, target, from)                               \
  "INSERT INTO events (log, sequence, kind, id, room_id, room, sender, "     \
  "sender_id, recipient_id, recipient, text, time, target_id, "              \
  "target_sequence, purge_through, update_time, deleted) SELECT $1::text, " \
  seq ", $2::smallint, nullif($3::text, ''), $4::text, $5::text, $6::text, " \
  "$7::text, $8::text, $9::text, $10::text, $11::bigint, $12::text, " target \
  ", $13::bigint, $14::bigint, $15::boolean FROM " from " RETURNING sequence"

// The next number of log $1, taken only `when`.
#define PARLEY_NEXT_SEQUENCE(when)                                  \
  "s AS (UPDATE logs SET last_seq = last_seq + 1 WHERE log = $1::text" \
  when " RETURNING last_seq)"

Params EventParams(const model::Event& e) {
  Params params;
  params.Text(e.log).Int(KindCode(e.kind)).Text(e.id).Text(e.room_id)
      .Text(e.room).Text(e.sender).Text(e.sender_id).Text(e.recipient_id)
      .Text(e.recipient).Text(e.text).Time(e.time).Text(e.target_id)
      .Uint(e.purge_through).Time(e.update_time).Bool(e.deleted);
  return params;
}

absl::Status EventExists(const Result& r) {
  return Broken(r, {{"events_id_unique",
                     WithReason(absl::AlreadyExistsError("the event id is "
                                                         "taken"),
                                "EVENT_EXISTS", "id")},
                    {"idempotency_keys_pkey", IdempotencyKeyTaken()}});
}

// Message, join, leave, member added/removed: the row, and the send's
// idempotency key ($16 scope, $17 key, $18 digest) in the same statement.
// A key stored by another send that has not expired breaks the primary
// key (kExpireKeysSql removed the expired ones first): the append fails,
// IDEMPOTENCY_KEY_TAKEN, and only the first of two servers racing with one
// key stores its send.
constexpr const char* kAppendSql =
    "WITH " PARLEY_NEXT_SEQUENCE("") ", "
    "e AS (" PARLEY_INSERT_EVENT("s.last_seq", "0", "s") "), "
    "k AS (INSERT INTO idempotency_keys (scope, key, digest, log, sequence, "
    "event_id, time) SELECT $16::text, $17::text, $18::text, $1::text, "
    "e.sequence, $3::text, $11::bigint FROM e WHERE $17::text <> '') "
    "SELECT sequence FROM e";

// An edit ($12 the message): keeps the old text as a version and updates
// the message. Answers whether the log exists, the edit's sequence and the
// target's.
constexpr const char* kEditSql =
    "WITH t AS (SELECT sequence, text, CASE WHEN update_time > "
    "(-9223372036854775807 - 1) THEN update_time ELSE time END AS old_time "
    "FROM events WHERE id = $12::text AND log = $1::text AND kind = 1 AND "
    "NOT deleted), " PARLEY_NEXT_SEQUENCE(" AND EXISTS (SELECT 1 FROM t)") ", "
    "e AS (" PARLEY_INSERT_EVENT("s.last_seq", "t.sequence", "s, t") "), "
    "v AS (INSERT INTO message_versions (message_id, replaced_by, text, time) "
    "SELECT $12::text, e.sequence, t.text, t.old_time FROM e, t), "
    "u AS (UPDATE events SET text = $10::text, update_time = $11::bigint "
    "FROM t WHERE events.log = $1::text AND events.sequence = t.sequence AND "
    "EXISTS (SELECT 1 FROM e)) "
    "SELECT EXISTS (SELECT 1 FROM logs WHERE log = $1::text), "
    "(SELECT sequence FROM e), (SELECT sequence FROM t)";

// A delete: the message becomes a tombstone; its versions and the text of
// the edits that targeted it go.
constexpr const char* kDeleteSql =
    "WITH t AS (UPDATE events SET deleted = true, text = '' WHERE "
    "id = $12::text AND log = $1::text AND kind = 1 RETURNING sequence), "
    PARLEY_NEXT_SEQUENCE(" AND EXISTS (SELECT 1 FROM t)") ", "
    "e AS (" PARLEY_INSERT_EVENT("s.last_seq", "t.sequence", "s, t") "), "
    "v AS (DELETE FROM message_versions WHERE message_id = $12::text AND "
    "EXISTS (SELECT 1 FROM e)), "
    "c AS (UPDATE events SET text = '' WHERE target_id = $12::text AND "
    "kind = 5 AND log = $1::text AND EXISTS (SELECT 1 FROM e)) "
    "SELECT EXISTS (SELECT 1 FROM logs WHERE log = $1::text), "
    "(SELECT sequence FROM e), (SELECT sequence FROM t)";

// A purge: the messages through $13 go (their versions cascade), the text
// of their edits too; the purge event stays. Answers the purge's sequence
// and how many messages went.
constexpr const char* kPurgeSql =
    "WITH " PARLEY_NEXT_SEQUENCE("") ", "
    "e AS (" PARLEY_INSERT_EVENT("s.last_seq", "0", "s") "), "
    "c AS (UPDATE events SET text = '' WHERE kind = 5 AND log = $1::text AND "
    "EXISTS (SELECT 1 FROM e) AND target_id IN (SELECT id FROM events WHERE "
    "log = $1::text AND kind = 1 AND sequence <= $13::bigint)), "
    "d AS (DELETE FROM events WHERE log = $1::text AND kind = 1 AND "
    "sequence <= $13::bigint AND EXISTS (SELECT 1 FROM e) RETURNING 1) "
    "SELECT (SELECT sequence FROM e), (SELECT count(*) FROM d)";

// PlanBulk's statement: one array per column, $1 the logs (ordinality
// gives each row its place). Each log's counter moves once, by its count;
// a row's number is its place among its log's rows. Answers (place,
// sequence) for the rows whose log exists.
constexpr const char* kBulkAppendSql =
    "WITH r AS (SELECT * FROM unnest($1::text[], $2::smallint[], "
    "$3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], "
    "$9::text[], $10::text[], $11::bigint[], $12::text[], $13::bigint[], "
    "$14::bigint[], $15::boolean[], $16::text[], $17::text[], $18::text[]) "
    "WITH ORDINALITY AS r(log, kind, id, room_id, room, sender, sender_id, "
    "recipient_id, recipient, text, time, target_id, purge_through, "
    "update_time, deleted, scope, key, digest, ord)), "
    "c AS (SELECT log, count(*) AS n FROM r GROUP BY log), "
    "s AS (UPDATE logs SET last_seq = logs.last_seq + c.n FROM c "
    "WHERE logs.log = c.log RETURNING logs.log, logs.last_seq - c.n AS base), "
    "q AS (SELECT r.*, s.base + row_number() OVER (PARTITION BY r.log "
    "ORDER BY r.ord) AS seq FROM r JOIN s ON s.log = r.log), "
    "e AS (INSERT INTO events (log, sequence, kind, id, room_id, room, "
    "sender, sender_id, recipient_id, recipient, text, time, target_id, "
    "target_sequence, purge_through, update_time, deleted) SELECT q.log, "
    "q.seq, q.kind, nullif(q.id, ''), q.room_id, q.room, q.sender, "
    "q.sender_id, q.recipient_id, q.recipient, q.text, q.time, q.target_id, "
    "0, q.purge_through, q.update_time, q.deleted FROM q), "
    "k AS (INSERT INTO idempotency_keys (scope, key, digest, log, sequence, "
    "event_id, time) SELECT q.scope, q.key, q.digest, q.log, q.seq, q.id, "
    "q.time FROM q WHERE q.key <> '') "
    "SELECT ord, seq FROM q";

}  // namespace

const char* const kExpireKeysSql =
    "DELETE FROM idempotency_keys k USING unnest($1::text[], $2::text[], "
    "$3::text[]::bigint[]) AS d(scope, key, before) WHERE k.scope = d.scope "
    "AND k.key = d.key AND k.time < d.before";

Planned ExpireKeys(const std::vector<const model::Event*>& events) {
  std::vector<std::string> scope, key, before;
  for (const model::Event* e : events) {
    if (e->idempotency.key.empty()) continue;
    scope.push_back(e->idempotency.scope);
    key.push_back(e->idempotency.key);
    before.push_back(absl::StrCat(ToMicros(e->idempotency.expired_before)));
  }
  Planned p;
  if (key.empty()) return p;
  p.sql = kExpireKeysSql;
  p.params.TextArray(scope).TextArray(key).TextArray(before);
  return p;
}

absl::Status LogNotFound(absl::string_view log) {
  return absl::StartsWith(log, "dm:") ? UserNotFound() : RoomNotFound();
}

PlannedBulk PlanBulk(const std::vector<const model::Event*>& events) {
  PlannedBulk bulk;
  bulk.sql = kBulkAppendSql;
  const size_t n = events.size();
  std::vector<std::string> log(n), kind(n), id(n), room_id(n), room(n),
      sender(n), sender_id(n), recipient_id(n), recipient(n), text(n),
      time(n), target_id(n), purge_through(n), update_time(n), deleted(n),
      scope(n), key(n), digest(n);
  for (size_t i = 0; i < n; ++i) {
    const model::Event& e = *events[i];
    log[i] = e.log;
    kind[i] = absl::StrCat(KindCode(e.kind));
    id[i] = e.id;
    room_id[i] = e.room_id;
    room[i] = e.room;
    sender[i] = e.sender;
    sender_id[i] = e.sender_id;
    recipient_id[i] = e.recipient_id;
    recipient[i] = e.recipient;
    text[i] = e.text;
    time[i] = absl::StrCat(ToMicros(e.time));
    target_id[i] = e.target_id;
    purge_through[i] = absl::StrCat(std::min<uint64_t>(
        e.purge_through, std::numeric_limits<int64_t>::max()));
    update_time[i] = absl::StrCat(ToMicros(e.update_time));
    deleted[i] = e.deleted ? "t" : "f";
    scope[i] = e.idempotency.scope;
    key[i] = e.idempotency.key;
    digest[i] = e.idempotency.digest;
  }
  for (const std::vector<std::string>* column :
       {&log, &kind, &id, &room_id, &room, &sender, &sender_id, &recipient_id,
        &recipient, &text, &time, &target_id, &purge_through, &update_time,
        &deleted, &scope, &key, &digest}) {
    bulk.params.TextArray(*column);
  }
  return bulk;
}

std::vector<uint64_t> BulkSequences(const Result& result, size_t n) {
  std::vector<uint64_t> sequences(n, 0);
  for (int row = 0; row < result.rows(); ++row) {
    const uint64_t place = result.Uint(row, 0);
    if (place >= 1 && place <= n) sequences[place - 1] = result.Uint(row, 1);
  }
  return sequences;
}

const char* const kLockLogsSql =
    "SELECT 1 FROM logs WHERE log = ANY ($1::text[]) ORDER BY log FOR UPDATE";

Planned Plan(const DirectoryWrite& write) {
  return std::visit([](const auto& w) { return PlanWrite(w); }, write);
}

Planned Plan(const AppendEvent& append) {
  if (append.event == nullptr) {
    return Done(absl::InvalidArgumentError("AppendEvent without an event"));
  }
  const model::Event& e = *append.event;
  if (e.kind == model::EventKind::kGap ||
      e.kind == model::EventKind::kTyping || e.log.empty() ||
      e.sequence != 0) {
    return Done(absl::InvalidArgumentError(
        absl::StrCat("not an append: log \"", e.log, "\", kind ",
                     KindCode(e.kind), ", sequence ", e.sequence,
                     " (the store numbers appends)")));
  }
  Planned p;
  p.log = e.log;
  p.params = EventParams(e);
  const std::string log = e.log;
  switch (e.kind) {
    case model::EventKind::kEdit:
    case model::EventKind::kDelete:
      p.sql = e.kind == model::EventKind::kEdit ? kEditSql : kDeleteSql;
      p.interpret = [log](const Result& r,
                          Assigned* assigned) -> absl::StatusOr<int64_t> {
        if (!r.ok()) return EventExists(r);
        if (!r.Bool(0, 0)) return LogNotFound(log);
        if (r.IsNull(0, 1)) return MessageNotFound();
        assigned->sequence = r.Uint(0, 1);
        assigned->target_sequence = r.Uint(0, 2);
        return 0;
      };
      break;
    case model::EventKind::kPurge:
      p.sql = kPurgeSql;
      p.interpret = [log](const Result& r,
                          Assigned* assigned) -> absl::StatusOr<int64_t> {
        if (!r.ok()) return EventExists(r);
        if (r.IsNull(0, 0)) return LogNotFound(log);
        assigned->sequence = r.Uint(0, 0);
        return r.Int(0, 1);
      };
      break;
    default:
      p.sql = kAppendSql;
      p.plain = append.event.get();
      p.params.Text(e.idempotency.scope).Text(e.idempotency.key)
          .Text(e.idempotency.digest);
      p.interpret = [log](const Result& r,
                          Assigned* assigned) -> absl::StatusOr<int64_t> {
        if (!r.ok()) return EventExists(r);
        if (r.rows() == 0) return LogNotFound(log);
        assigned->sequence = r.Uint(0, 0);
        return 0;
      };
      break;
  }
  return p;
}

}  // namespace parley::store::pg_internal
