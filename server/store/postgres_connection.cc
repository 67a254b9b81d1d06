#include "server/store/postgres_connection.h"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <limits>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "server/common/errors.h"

namespace parley::store::pg_internal {
namespace {

constexpr int64_t kNever = std::numeric_limits<int64_t>::min();
constexpr int64_t kForever = std::numeric_limits<int64_t>::max();

// A keyword/value DSN value, quoted as libpq reads it.
std::string Quote(absl::string_view value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

// libpq's messages end with a newline; logs and statuses want one line.
std::string OneLine(const char* message) {
  std::string text = message != nullptr ? message : "";
  absl::StripTrailingAsciiWhitespace(&text);
  std::replace(text.begin(), text.end(), '\n', ' ');
  return text;
}

// Connection-level SQLSTATEs: the connection is gone or going
// (connection_exception, admin/crash shutdown, cannot connect now).
bool ConnectionState(absl::string_view sqlstate) {
  return absl::StartsWith(sqlstate, "08") || sqlstate == "57P01" ||
         sqlstate == "57P02" || sqlstate == "57P03";
}

}  // namespace

std::string RedactDsn(absl::string_view dsn) {
  char* error = nullptr;
  const std::string text(dsn);
  PQconninfoOption* options = PQconninfoParse(text.c_str(), &error);
  if (options == nullptr) {
    if (error != nullptr) PQfreemem(error);
    return "(unparsable DSN)";
  }
  std::string out;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr || absl::string_view(o->keyword) == "password") {
      continue;
    }
    absl::StrAppend(&out, out.empty() ? "" : " ", o->keyword, "=",
                    Quote(o->val));
  }
  PQconninfoFree(options);
  return out;
}

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

absl::Status StoreUnavailable(absl::string_view message) {
  return WithReason(absl::UnavailableError(message), "STORE_UNAVAILABLE");
}

// ---- Params ----

Params& Params::Text(absl::string_view value) {
  values_.emplace_back(value);
  return *this;
}

Params& Params::Int(int64_t value) {
  values_.push_back(absl::StrCat(value));
  return *this;
}

Params& Params::Uint(uint64_t value) {
  return Int(static_cast<int64_t>(
      std::min<uint64_t>(value, std::numeric_limits<int64_t>::max())));
}

Params& Params::TextArray(const std::vector<std::string>& values) {
  std::string array = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) array.push_back(',');
    array.push_back('"');
    for (char c : values[i]) {
      if (c == '"' || c == '\\') array.push_back('\\');
      array.push_back(c);
    }
    array.push_back('"');
  }
  array.push_back('}');
  values_.push_back(std::move(array));
  return *this;
}

std::vector<const char*> Params::Pointers() const {
  std::vector<const char*> pointers;
  pointers.reserve(values_.size());
  for (const std::string& v : values_) pointers.push_back(v.c_str());
  return pointers;
}

std::vector<int> Params::Lengths() const {
  std::vector<int> lengths;
  lengths.reserve(values_.size());
  for (const std::string& v : values_) {
    lengths.push_back(static_cast<int>(v.size()));
  }
  return lengths;
}

// ---- Result ----

Result::Result(pg_result* result, absl::Status status)
    : result_(result), status_(std::move(status)) {}

Result::Result(Result&& other) noexcept
    : result_(std::exchange(other.result_, nullptr)),
      status_(std::move(other.status_)) {}

Result& Result::operator=(Result&& other) noexcept {
  if (this != &other) {
    if (result_ != nullptr) PQclear(result_);
    result_ = std::exchange(other.result_, nullptr);
    status_ = std::move(other.status_);
  }
  return *this;
}

Result::~Result() {
  if (result_ != nullptr) PQclear(result_);
}

std::string Result::sqlstate() const {
  if (result_ == nullptr) return "";
  const char* s = PQresultErrorField(result_, PG_DIAG_SQLSTATE);
  return s != nullptr ? s : "";
}

std::string Result::constraint() const {
  if (result_ == nullptr) return "";
  const char* s = PQresultErrorField(result_, PG_DIAG_CONSTRAINT_NAME);
  return s != nullptr ? s : "";
}

int Result::rows() const {
  return result_ != nullptr && status_.ok() ? PQntuples(result_) : 0;
}

bool Result::IsNull(int row, int column) const {
  return row >= rows() || PQgetisnull(result_, row, column) != 0;
}

std::string Result::Text(int row, int column) const {
  if (IsNull(row, column)) return std::string();
  return std::string(PQgetvalue(result_, row, column),
                     static_cast<size_t>(PQgetlength(result_, row, column)));
}

int64_t Result::Int(int row, int column) const {
  if (IsNull(row, column)) return 0;
  int64_t value = 0;
  if (!absl::SimpleAtoi(PQgetvalue(result_, row, column), &value)) return 0;
  return value;
}

uint64_t Result::Uint(int row, int column) const {
  return static_cast<uint64_t>(std::max<int64_t>(0, Int(row, column)));
}

bool Result::Bool(int row, int column) const {
  return !IsNull(row, column) && PQgetvalue(result_, row, column)[0] == 't';
}

// ---- Connection ----

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(
    const ConnectOptions& options) {
  const std::string where = RedactDsn(options.dsn);
  // expand_dbname: the "dbname" value is the whole DSN (keywords or URI).
  const char* keywords[] = {"dbname", "fallback_application_name", nullptr};
  const char* values[] = {options.dsn.c_str(), "parley_server", nullptr};
  PGconn* conn = PQconnectStartParams(keywords, values, /*expand_dbname=*/1);
  if (conn == nullptr) {
    return StoreUnavailable("postgres: out of memory connecting");
  }
  std::unique_ptr<Connection> connection(new Connection(conn));
  // NOTICEs ("relation already exists, skipping") are not for the logs.
  PQsetNoticeProcessor(conn, [](void*, const char*) {}, nullptr);
  auto failed = [&](absl::string_view why) {
    return StoreUnavailable(
        absl::StrCat("postgres (", where, "): cannot connect: ", why));
  };
  if (PQstatus(conn) == CONNECTION_BAD) {
    return failed(OneLine(PQerrorMessage(conn)));
  }
  // libpq's own connect_timeout counts whole seconds (at least 2); this
  // polls with the store's deadline instead.
  const absl::Time deadline = absl::Now() + options.connect_timeout;
  PostgresPollingStatusType state = PGRES_POLLING_WRITING;
  while (state != PGRES_POLLING_OK) {
    if (state == PGRES_POLLING_FAILED) {
      return failed(OneLine(PQerrorMessage(conn)));
    }
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return failed(absl::StrCat("no answer within ",
                                 absl::FormatDuration(options.connect_timeout)));
    }
    pollfd fd{PQsocket(conn),
              static_cast<short>(state == PGRES_POLLING_READING ? POLLIN
                                                                : POLLOUT),
              0};
    const int ready = poll(
        &fd, 1,
        static_cast<int>(std::clamp<int64_t>(
            absl::ToInt64Milliseconds(left) + 1, 1, 60 * 60 * 1000)));
    if (ready < 0 && errno != EINTR) {
      return failed(absl::StrCat("poll: ", errno));
    }
    if (ready == 0) continue;  // the deadline check above ends it
    state = PQconnectPoll(conn);
  }
  if (options.statement_timeout > absl::ZeroDuration()) {
    Result set = connection->Script(absl::StrCat(
        "SET statement_timeout = ",
        std::max<int64_t>(1,
                          absl::ToInt64Milliseconds(options.statement_timeout))));
    if (!set.ok()) return set.status();
  }
  return connection;
}

Connection::Connection(pg_conn* conn) : conn_(conn) {}

Connection::~Connection() { PQfinish(conn_); }

bool Connection::lost() const {
  return !send_failed_.ok() || PQstatus(conn_) != CONNECTION_OK;
}

absl::Status Connection::ConnectionError(absl::string_view what) const {
  return StoreUnavailable(absl::StrCat("postgres: ", what, ": ",
                                       OneLine(PQerrorMessage(conn_))));
}

Result Connection::MakeResult(pg_result* result) {
  if (result == nullptr) {
    return Result(nullptr, ConnectionError("no result"));
  }
  switch (PQresultStatus(result)) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
    case PGRES_PIPELINE_SYNC:
      return Result(result, absl::OkStatus());
    case PGRES_PIPELINE_ABORTED:
      return Result(result,
                    StoreFailed("skipped: an earlier statement failed"));
    default:
      break;
  }
  const char* state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
  const std::string sqlstate = state != nullptr ? state : "";
  std::string message = OneLine(PQresultErrorMessage(result));
  if (message.empty()) message = OneLine(PQerrorMessage(conn_));
  absl::Status status;
  if (PQstatus(conn_) != CONNECTION_OK || ConnectionState(sqlstate) ||
      sqlstate.empty()) {
    status = StoreUnavailable(absl::StrCat("postgres: ", message));
  } else if (sqlstate == "57014") {
    status = StoreFailed(absl::StrCat("postgres: statement timeout or "
                                      "cancelled: ", message));
  } else if (absl::StartsWith(sqlstate, "23")) {
    // Integrity constraints: the write decides what its constraint means.
    status = WithReason(absl::FailedPreconditionError(message),
                        "CONSTRAINT_FAILED");
  } else {
    status = StoreFailed(absl::StrCat("postgres: ", message));
  }
  return Result(result, std::move(status));
}

std::string Connection::Prepared(const char* sql, absl::Status* status) {
  auto it = prepared_.find(sql);
  if (it != prepared_.end()) return it->second;
  std::string name = absl::StrCat("p", prepared_.size() + 1);
  if (pipeline_) {
    if (PQsendPrepare(conn_, name.c_str(), sql, 0, nullptr) == 0) {
      *status = ConnectionError("sending a statement");
      return "";
    }
    sent_.push_back(Sent{true, absl::OkStatus()});
    // Forgotten again in Sync if the preparation fails.
    prepared_sql_.push_back(sql);
  } else {
    Result prepared = MakeResult(PQprepare(conn_, name.c_str(), sql, 0,
                                           nullptr));
    if (!prepared.ok()) {
      *status = prepared.status();
      return "";
    }
  }
  prepared_.emplace(sql, name);
  return name;
}

Result Connection::Exec(const char* sql, const Params& params) {
  absl::Status status;
  const std::string name = Prepared(sql, &status);
  if (name.empty()) return Result(nullptr, std::move(status));
  const std::vector<const char*> values = params.Pointers();
  const std::vector<int> lengths = params.Lengths();
  return MakeResult(PQexecPrepared(conn_, name.c_str(), params.size(),
                                   values.data(), lengths.data(), nullptr, 0));
}

Result Connection::Script(const std::string& sql) {
  pg_result* last = nullptr;
  if (PQsendQuery(conn_, sql.c_str()) == 0) {
    return Result(nullptr, ConnectionError("sending a statement"));
  }
  // Every statement's result; the first failure, else the last.
  Result first_failure;
  bool failed = false;
  while (pg_result* r = PQgetResult(conn_)) {
    if (last != nullptr) PQclear(last);
    last = r;
    const ExecStatusType s = PQresultStatus(r);
    if (!failed && s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
      failed = true;
      first_failure = MakeResult(r);
      last = nullptr;
    }
  }
  if (failed) {
    if (last != nullptr) PQclear(last);
    return first_failure;
  }
  return MakeResult(last);
}

absl::Status Connection::EnterPipeline() {
  if (PQenterPipelineMode(conn_) != 1) {
    return ConnectionError("entering pipeline mode");
  }
  pipeline_ = true;
  return absl::OkStatus();
}

void Connection::Send(const char* sql, const Params& params) {
  if (!send_failed_.ok()) {
    sent_.push_back(Sent{false, send_failed_});
    return;
  }
  absl::Status status;
  const std::string name = Prepared(sql, &status);
  if (name.empty()) {
    send_failed_ = status;
    sent_.push_back(Sent{false, std::move(status)});
    return;
  }
  const std::vector<const char*> values = params.Pointers();
  const std::vector<int> lengths = params.Lengths();
  if (PQsendQueryPrepared(conn_, name.c_str(), params.size(), values.data(),
                          lengths.data(), nullptr, 0) == 0) {
    send_failed_ = ConnectionError("sending a statement");
    sent_.push_back(Sent{false, send_failed_});
    return;
  }
  sent_.push_back(Sent{false, absl::OkStatus()});
}

std::vector<Result> Connection::Sync() {
  std::vector<Sent> sent = std::move(sent_);
  sent_.clear();
  std::vector<const char*> prepared_sql = std::move(prepared_sql_);
  prepared_sql_.clear();
  std::vector<Result> results;
  results.reserve(sent.size());
  if (send_failed_.ok() && PQpipelineSync(conn_) != 1) {
    send_failed_ = ConnectionError("sending a batch");
  }
  size_t prepare_index = 0;
  absl::Status prepare_failure;
  for (const Sent& s : sent) {
    if (!send_failed_.ok()) {
      if (!s.prepare) results.emplace_back(nullptr, send_failed_);
      continue;
    }
    // One statement's results end with a null.
    Result result;
    bool got = false;
    while (pg_result* r = PQgetResult(conn_)) {
      result = MakeResult(r);
      got = true;
    }
    if (!got) {
      result = Result(nullptr, ConnectionError("the connection was lost"));
      send_failed_ = result.status();
    }
    if (s.prepare) {
      const char* sql = prepared_sql[prepare_index++];
      if (!result.ok()) {
        prepared_.erase(sql);
        // Its statement is skipped; the preparation's error (a statement
        // timeout waiting for a table lock, say) is the one to report.
        prepare_failure = result.status();
      }
      continue;
    }
    if (!result.ok() && !prepare_failure.ok()) {
      result = Result(nullptr, prepare_failure);
    }
    prepare_failure = absl::OkStatus();
    results.push_back(std::move(result));
  }
  if (send_failed_.ok()) {
    // The Sync's own result closes the batch.
    pg_result* r = PQgetResult(conn_);
    if (r == nullptr || PQresultStatus(r) != PGRES_PIPELINE_SYNC) {
      send_failed_ = ConnectionError("the batch did not end");
    }
    if (r != nullptr) PQclear(r);
  }
  return results;
}

}  // namespace parley::store::pg_internal
