// What SqliteStore's files share (sqlite_schema.cc, sqlite_writes.cc,
// sqlite_reads.cc, sqlite_store.cc): the schema, the rows' columns, the
// checks that a log's owner exists, and the writes. Internal.
#ifndef PARLEY_SERVER_STORE_SQLITE_INTERNAL_H_
#define PARLEY_SERVER_STORE_SQLITE_INTERNAL_H_

#include <cstdint>
#include <optional>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/model/event.h"
#include "server/store/event_codes.h"
#include "server/store/sqlite_connection.h"
#include "server/store/sql_columns.h"
#include "server/store/sqlite_store.h"
#include "server/store/types.h"

namespace parley::store::sqlite_internal {

// ---- Schema (sqlite_schema.cc) ----

// Applies the migrations `c`'s database lacks, each in its own transaction;
// returns how many. FAILED_PRECONDITION (SCHEMA_TOO_NEW) for a database of a
// newer version.
absl::StatusOr<int> Migrate(Connection& c);

// ---- Lookups (sqlite_reads.cc) ----

absl::StatusOr<bool> UserExists(Connection& c, absl::string_view id);
absl::StatusOr<bool> RoomExists(Connection& c, absl::string_view id);
// The highest sequence number of `log`, 0 when it has none.
absl::StatusOr<uint64_t> LastSequenceOf(Connection& c, absl::string_view log);

// ---- Writes (sqlite_writes.cc), each in the writer's open savepoint ----

absl::StatusOr<int64_t> ApplyWrite(Connection& c, const DirectoryWrite& write);
// Numbers `append.event` one past its log's last (known to `logs`, else
// read) and applies it. On failure the event's number is 0 again; on
// success the caller records it in `logs` once the write's savepoint is
// released.
absl::StatusOr<int64_t> ApplyAppend(Connection& c, const AppendEvent& append,
                                    const WriterLogs& logs);

}  // namespace parley::store::sqlite_internal

#endif  // PARLEY_SERVER_STORE_SQLITE_INTERNAL_H_
