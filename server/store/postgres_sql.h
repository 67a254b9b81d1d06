// PostgresStore's pieces below the store itself: the schema and its
// migrations (postgres_schema.cc) and every write as one statement
// (postgres_writes.cc). Internal to the store; not thread-safe on their own
// (each runs on the one Connection it is given).
#ifndef PARLEY_SERVER_STORE_POSTGRES_SQL_H_
#define PARLEY_SERVER_STORE_POSTGRES_SQL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/model/event.h"
#include "server/store/event_codes.h"
#include "server/store/postgres_connection.h"
#include "server/store/types.h"

namespace parley::store::pg_internal {

// ---- Schema (postgres_schema.cc) ----

// The number of migrations this build knows.
int LatestSchemaVersion();
// Applies the migrations the database lacks, each in its own transaction
// under an advisory lock (two servers starting at once apply each once),
// recording each in schema_version; returns how many. FAILED_PRECONDITION
// (SCHEMA_TOO_NEW) when the database is newer than this build.
absl::StatusOr<int> Migrate(Connection& c);
// Deletes the revoked tokens that have expired.
absl::Status PruneRevokedTokens(Connection& c, absl::Time now);

// Usernames and room names are unique and looked up ignoring ASCII case:
// the key columns hold this folding.
std::string NameKey(absl::string_view name);

// ---- Writes (postgres_writes.cc) ----

// What an append's statement numbered: the event's sequence and, for an
// edit or delete, its target's.
struct Assigned {
  uint64_t sequence = 0;
  uint64_t target_sequence = 0;
};

// A write as one statement (data-modifying CTEs), so that a batch of writes
// goes to the server in one round trip and no write needs another's result
// before it is sent. A write that fails on its own conditions (a missing
// room, a taken name) is a statement that changes nothing and says why in
// its row; only constraint races and the database failing raise errors.
struct Planned {
  // Null: nothing to run, the write's outcome is `outcome` already (bad
  // input, the lobby).
  const char* sql = nullptr;
  Params params;
  absl::StatusOr<int64_t> outcome = 0;
  // The log an append numbers (its row is locked first), else empty.
  std::string log;
  // A plain append (message, join, leave, member added or removed): its
  // event, which PlanBulk may take together with others.
  const model::Event* plain = nullptr;
  // The write's outcome from its statement's result (failed or not); for an
  // append, `*assigned` gets what the commit will make true of its event.
  absl::AnyInvocable<absl::StatusOr<int64_t>(const Result&, Assigned* assigned)>
      interpret;
};

Planned Plan(const DirectoryWrite& write);
Planned Plan(const AppendEvent& append);

// Plain appends (Planned::plain, at least one, to any logs), in order, as
// one statement: each log's counter moves once, the rows go in together.
struct PlannedBulk {
  const char* sql = nullptr;
  Params params;
};
PlannedBulk PlanBulk(const std::vector<const model::Event*>& events);
// The numbers PlanBulk's statement gave its `n` appends, in order; 0 for
// an append whose log does not exist (it fails with LogNotFound).
std::vector<uint64_t> BulkSequences(const Result& result, size_t n);
// NOT_FOUND for an append to a log that is not there: ROOM_NOT_FOUND, or
// USER_NOT_FOUND for an inbox.
absl::Status LogNotFound(absl::string_view log);

// Before appends with idempotency keys: removes the stored keys among
// theirs that have expired (IdempotencyKey::expired_before), so that the
// appends may take them. sql null when none of `events` has a key.
Planned ExpireKeys(const std::vector<const model::Event*>& events);

// Locks the logs rows of `logs` in one order, so that two servers'
// transactions appending to the same logs never deadlock (one waits).
extern const char* const kLockLogsSql;

}  // namespace parley::store::pg_internal

#endif  // PARLEY_SERVER_STORE_POSTGRES_SQL_H_
