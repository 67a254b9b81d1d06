#include "server/store/sqlite_connection.h"

#include "absl/memory/memory.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/common/errors.h"
#include "server/store/errors.h"

namespace parley::store::sqlite_internal {

// ---- Stmt ----

Stmt::~Stmt() {
  if (stmt_ == nullptr) return;
  if (in_use_ != nullptr) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    *in_use_ = false;
  } else {
    sqlite3_finalize(stmt_);
  }
}

void Stmt::BindText(int index, absl::string_view text) {
  if (!status_.ok()) return;
  // An empty view may have a null data(), which SQLite would bind as NULL.
  Check(sqlite3_bind_text64(stmt_, index,
                            text.data() == nullptr ? "" : text.data(),
                            text.size(), SQLITE_STATIC, SQLITE_UTF8));
}

void Stmt::BindTextOrNull(int index, absl::string_view text) {
  if (!status_.ok()) return;
  if (text.empty()) {
    Check(sqlite3_bind_null(stmt_, index));
  } else {
    BindText(index, text);
  }
}

void Stmt::BindInt(int index, int64_t value) {
  if (!status_.ok()) return;
  Check(sqlite3_bind_int64(stmt_, index, value));
}

absl::StatusOr<bool> Stmt::Next() {
  if (!status_.ok()) return status_;
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  error_code_ = rc;
  status_ = ErrorStatus(rc);
  return status_;
}

absl::Status Stmt::Run() {
  while (true) {
    absl::StatusOr<bool> row = Next();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
  }
}

std::string Stmt::Text(int column) const {
  const unsigned char* text = sqlite3_column_text(stmt_, column);
  if (text == nullptr) return std::string();
  const int size = sqlite3_column_bytes(stmt_, column);
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<size_t>(size));
}

bool Stmt::UniqueFailed(absl::string_view table_column) const {
  return (error_code_ == SQLITE_CONSTRAINT_UNIQUE ||
          error_code_ == SQLITE_CONSTRAINT_PRIMARYKEY) &&
         absl::StrContains(status_.message(), table_column);
}

absl::Status Stmt::ErrorStatus(int rc) const {
  std::string message = sqlite3_errmsg(db_);
  if ((rc & 0xff) == SQLITE_CONSTRAINT) {
    return WithReason(absl::FailedPreconditionError(message),
                      "CONSTRAINT_FAILED");
  }
  return StoreFailed(message);
}

// ---- Connection ----

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(
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

Connection::~Connection() {
  for (auto& [sql, cached] : cache_) sqlite3_finalize(cached->stmt);
  sqlite3_close_v2(db_);
}

Stmt Connection::Prepare(absl::string_view sql) {
  auto it = cache_.find(sql);
  if (it != cache_.end() && !it->second->in_use) {
    it->second->in_use = true;
    return Stmt(db_, it->second->stmt, &it->second->in_use, absl::OkStatus());
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

absl::Status Connection::Script(const std::string& sql) {
  char* error = nullptr;
  const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error);
  if (rc == SQLITE_OK) return absl::OkStatus();
  absl::Status status =
      StoreFailed(error != nullptr ? error : sqlite3_errstr(rc));
  sqlite3_free(error);
  return status;
}

absl::StatusOr<std::string> Connection::QueryText(absl::string_view sql) {
  Stmt stmt = Prepare(sql);
  absl::StatusOr<bool> row = stmt.Next();
  if (!row.ok()) return row.status();
  return *row ? stmt.Text(0) : std::string();
}

// ---- ReadTransaction ----

ReadTransaction::ReadTransaction(Connection& connection)
    : connection_(connection) {
  status_ = connection_.Prepare("BEGIN").Run();
}

ReadTransaction::~ReadTransaction() {
  if (!status_.ok()) return;
  if (!connection_.Prepare("COMMIT").Run().ok()) {
    connection_.Prepare("ROLLBACK").Run().IgnoreError();
  }
}

}  // namespace parley::store::sqlite_internal
