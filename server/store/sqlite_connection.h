// SqliteStore's connections and statements: a SQLite connection with its
// cache of prepared statements, the binding of values and the reading of
// columns, read transactions, and how Parley's values are kept in SQLite's
// integers. Internal to the SQLite store (sqlite_*.cc).
#ifndef PARLEY_SERVER_STORE_SQLITE_CONNECTION_H_
#define PARLEY_SERVER_STORE_SQLITE_CONNECTION_H_

#include <sqlite3.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace parley::store::sqlite_internal {

// Times are int64 microseconds since the Unix epoch; kNever stands for
// absl::InfinitePast() ("never", e.g. a message never edited), kForever for
// absl::InfiniteFuture().
inline constexpr int64_t kNever = std::numeric_limits<int64_t>::min();
inline constexpr int64_t kForever = std::numeric_limits<int64_t>::max();

inline int64_t ToMicros(absl::Time t) {
  if (t == absl::InfinitePast()) return kNever;
  if (t == absl::InfiniteFuture()) return kForever;
  return absl::ToUnixMicros(t);
}

inline absl::Time FromMicros(int64_t micros) {
  if (micros == kNever) return absl::InfinitePast();
  if (micros == kForever) return absl::InfiniteFuture();
  return absl::FromUnixMicros(micros);
}

// SQLite integers are signed; sequence numbers and limits beyond INT64_MAX
// mean "no bound".
inline int64_t ToSql(uint64_t n) {
  return static_cast<int64_t>(
      std::min<uint64_t>(n, std::numeric_limits<int64_t>::max()));
}

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
  ~Stmt();

  void BindText(int index, absl::string_view text);
  // Binds NULL for an empty text.
  void BindTextOrNull(int index, absl::string_view text);
  void BindInt(int index, int64_t value);
  void BindTime(int index, absl::Time t) { BindInt(index, ToMicros(t)); }

  // Steps to the next row: true on a row, false when done.
  absl::StatusOr<bool> Next();
  // Steps until done, ignoring rows.
  absl::Status Run();

  int64_t Int(int column) const {
    return sqlite3_column_int64(stmt_, column);
  }
  bool IsNull(int column) const {
    return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
  }
  std::string Text(int column) const;
  absl::Time Time(int column) const { return FromMicros(Int(column)); }

  // Whether the last step failed on a UNIQUE or PRIMARY KEY constraint of
  // `table_column` (as SQLite names it, e.g. "users.username").
  bool UniqueFailed(absl::string_view table_column) const;
  // Rows changed by the connection's last INSERT, UPDATE or DELETE.
  int64_t changes() const { return sqlite3_changes64(db_); }

 private:
  void Check(int rc) {
    if (rc != SQLITE_OK) status_ = ErrorStatus(rc);
  }
  absl::Status ErrorStatus(int rc) const;

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
      const std::string& path, bool read_only, absl::Duration busy_timeout);

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // The prepared statement for `sql` (one statement), from the cache when it
  // is not already in use.
  Stmt Prepare(absl::string_view sql);
  // Runs a script of statements (migrations, pragmas), uncached.
  absl::Status Script(const std::string& sql);
  // The single text value `sql` returns (e.g. a PRAGMA), or "".
  absl::StatusOr<std::string> QueryText(absl::string_view sql);

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

// Runs a read of several statements on one snapshot.
class ReadTransaction {
 public:
  explicit ReadTransaction(Connection& connection);
  ~ReadTransaction();
  ReadTransaction(const ReadTransaction&) = delete;
  ReadTransaction& operator=(const ReadTransaction&) = delete;

  const absl::Status& status() const { return status_; }

 private:
  Connection& connection_;
  absl::Status status_;
};

}  // namespace parley::store::sqlite_internal

#endif  // PARLEY_SERVER_STORE_SQLITE_CONNECTION_H_
