// One libpq connection of PostgresStore, its results and parameters, and
// the one place where PostgreSQL's errors become absl::Status. A Connection
// is used by one thread at a time; nothing here is otherwise thread-safe.
// The password of a DSN never leaves this file: RedactDsn is what callers
// show.
#ifndef PARLEY_SERVER_STORE_POSTGRES_CONNECTION_H_
#define PARLEY_SERVER_STORE_POSTGRES_CONNECTION_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/store/errors.h"

struct pg_conn;
struct pg_result;

namespace parley::store::pg_internal {

// `dsn` (keyword/value or URI) without its password, as keyword/value; a DSN
// that does not parse is shown as "(unparsable DSN)".
std::string RedactDsn(absl::string_view dsn);

// Times are int64 microseconds since the epoch; INT64_MIN is InfinitePast
// ("never"), INT64_MAX InfiniteFuture.
int64_t ToMicros(absl::Time t);
absl::Time FromMicros(int64_t micros);

// UNAVAILABLE with reason STORE_UNAVAILABLE: the database cannot be reached
// (the other errors are store/errors.h's).
absl::Status StoreUnavailable(absl::string_view message);

// A statement's parameters, all sent as text.
class Params {
 public:
  Params& Text(absl::string_view value);
  Params& Int(int64_t value);
  // Sequence numbers and limits past INT64_MAX mean "no bound".
  Params& Uint(uint64_t value);
  Params& Time(absl::Time t) { return Int(ToMicros(t)); }
  Params& Bool(bool value) { return Text(value ? "t" : "f"); }
  // A text[] of `values`.
  Params& TextArray(const std::vector<std::string>& values);

  int size() const { return static_cast<int>(values_.size()); }
  // Valid until the next Add.
  std::vector<const char*> Pointers() const;
  std::vector<int> Lengths() const;

 private:
  std::vector<std::string> values_;
};

// The result of one statement (PGresult, owned). A failed statement carries
// its error as status().
class Result {
 public:
  Result() = default;
  explicit Result(pg_result* result, absl::Status status);
  Result(Result&& other) noexcept;
  Result& operator=(Result&& other) noexcept;
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;
  ~Result();

  const absl::Status& status() const { return status_; }
  bool ok() const { return status_.ok(); }
  // The SQLSTATE of a failed statement ("" when none) and the constraint it
  // broke ("" when none).
  std::string sqlstate() const;
  std::string constraint() const;

  int rows() const;
  bool IsNull(int row, int column) const;
  std::string Text(int row, int column) const;
  int64_t Int(int row, int column) const;  // 0 for NULL
  uint64_t Uint(int row, int column) const;
  bool Bool(int row, int column) const;
  absl::Time Time(int row, int column) const {
    return FromMicros(Int(row, column));
  }

 private:
  pg_result* result_ = nullptr;
  absl::Status status_;
};

struct ConnectOptions {
  std::string dsn;
  absl::Duration connect_timeout = absl::Seconds(3);
  // SET statement_timeout on the connection; zero: none.
  absl::Duration statement_timeout = absl::ZeroDuration();
};

class Connection {
 public:
  // Connects within options.connect_timeout and sets the statement timeout.
  // UNAVAILABLE (STORE_UNAVAILABLE) when the server cannot be reached or
  // refuses; the message names the DSN without its password.
  static absl::StatusOr<std::unique_ptr<Connection>> Open(
      const ConnectOptions& options);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // Whether the connection is lost (a broken socket, the server gone); a
  // lost connection is dropped and opened again by its owner.
  bool lost() const;

  // One statement, prepared on first use and cached by its text.
  Result Exec(const char* sql, const Params& params = Params());
  // A script of statements without parameters (migrations, transaction
  // control), through the simple query protocol. The last result.
  Result Script(const std::string& sql);

  // Pipeline mode (the writer's): statements are queued and sent together,
  // then their results read in order. Send queues one statement (prepared
  // on first use); Sync ends the batch, after which Next returns one Result
  // per statement sent: a statement after a failed one, up to the Sync, is
  // skipped and gets the failure too.
  absl::Status EnterPipeline();
  void Send(const char* sql, const Params& params = Params());
  // Sends everything queued and reads every result up to the Sync.
  std::vector<Result> Sync();

 private:
  explicit Connection(pg_conn* conn);
  // The prepared statement's name for `sql`, preparing it (in pipeline
  // mode: queueing its preparation) on first use. Empty on failure.
  std::string Prepared(const char* sql, absl::Status* status);
  Result MakeResult(pg_result* result);
  absl::Status ConnectionError(absl::string_view what) const;

  pg_conn* const conn_;
  bool pipeline_ = false;
  // Per statement sent since the last Sync: whether it is a Prepare, whose
  // result Sync reads and drops, or the failure it already had at Send.
  struct Sent {
    bool prepare = false;
    absl::Status failed;
  };
  std::vector<Sent> sent_;
  // The SQL of each Prepare queued since the last Sync, in order.
  std::vector<const char*> prepared_sql_;
  absl::Status send_failed_;
  absl::flat_hash_map<std::string, std::string> prepared_;
};

}  // namespace parley::store::pg_internal

#endif  // PARLEY_SERVER_STORE_POSTGRES_CONNECTION_H_
