// The Store on a PostgreSQL server, which several Parley servers may share.
// Semantics are every store's (store.h); what is PostgreSQL's is below.
// Thread-safe.
//
// Writes: Submit and Append only queue, into one WriteQueue (group commit,
// write_queue.h). Its writer thread takes up to `max_batch` queued writes,
// which the store runs in one transaction on the writer's connection in
// libpq's pipeline mode: BEGIN, a lock on the logs the batch appends to (in
// one order), every write as one statement (consecutive plain appends to
// one log as one statement), COMMIT, sent together and answered together.
// A write that fails on its own terms (a missing room, a taken name)
// changes nothing and gets its own error; when a statement raises an error
// instead (a race on a constraint with another server, a statement
// timeout), the transaction is rolled back and the batch runs again with
// each write in its own SAVEPOINT, rolled back to alone when it fails.
// After the COMMIT the queue calls every `done` in submission order.
//
// Sequence numbers come from the database: each log has a row in `logs`
// whose counter an append increments inside its transaction, so numbers are
// gapless and one order holds however many servers append to the log (the
// row's lock orders them); a write rolled back takes no number.
//
// Reads run on a pool of `read_connections` connections; a caller waits for
// a free one. A read of several statements runs them in one READ ONLY
// REPEATABLE READ transaction (one snapshot).
//
// Failures: a lost connection (the server restarted or gone) fails the
// batch on it with UNAVAILABLE, reason STORE_UNAVAILABLE, and the reads on
// it likewise (a read that found its idle connection dead is tried once
// more on a new one); the connection is opened again at its next use, at
// most once per backoff (doubling up to 1 s), and while the server cannot
// be reached a write fails within about `connect_timeout`. A write is never
// acknowledged without its COMMIT's answer: a COMMIT whose outcome is
// unknown fails the batch with UNAVAILABLE. Other database errors are
// UNAVAILABLE, reason STORE_FAILED. The DSN is shown only without its
// password.
#ifndef PARLEY_SERVER_STORE_POSTGRES_STORE_H_
#define PARLEY_SERVER_STORE_POSTGRES_STORE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/common/clock.h"
#include "server/common/mutex.h"
#include "server/store/store.h"
#include "server/store/write_queue.h"

namespace parley::store {

namespace pg_internal {
class Connection;
struct Planned;
struct Assigned;
}  // namespace pg_internal

struct PostgresOptions {
  // libpq keyword/value ("host=... dbname=...") or URI.
  std::string dsn;
  // The most writes one transaction takes from the queue (at least 1).
  size_t max_batch = 1024;
  // The size of the read connection pool (at least 1).
  size_t read_connections = 8;
  // Every statement's limit (SET statement_timeout); zero: none.
  absl::Duration statement_timeout = absl::Seconds(5);
  // How long opening a connection may take.
  absl::Duration connect_timeout = absl::Seconds(3);
  // The time source of StoreStats' commit and write-wait times.
  Clock* clock = Clock::Real();
};

class PostgresStore : public Store {
 public:
  // Connects, migrates the database, prunes expired revoked tokens, opens
  // the read pool and starts the writer thread. FAILED_PRECONDITION (reason
  // SCHEMA_TOO_NEW) for a database of a newer schema version; UNAVAILABLE
  // when the server cannot be reached or fails; INVALID_ARGUMENT for bad
  // options.
  static absl::StatusOr<std::unique_ptr<PostgresStore>> Open(
      PostgresOptions options);

  // The schema version this build writes (the number of migrations).
  static int LatestSchemaVersion();

  PostgresStore(const PostgresStore&) = delete;
  PostgresStore& operator=(const PostgresStore&) = delete;
  ~PostgresStore() override;

  void Submit(DirectoryWrite write, WriteDone done) override;
  void Append(AppendEvent append, WriteDone done) override;
  void Close() override;
  StoreStats stats() const override;

  absl::StatusOr<User> GetUser(absl::string_view id) override;
  absl::StatusOr<User> GetUserByName(absl::string_view username) override;
  absl::StatusOr<std::vector<User>> ListUsers(absl::string_view after_username,
                                              size_t limit) override;
  absl::StatusOr<Room> GetRoom(absl::string_view id) override;
  absl::StatusOr<Room> GetRoomByName(absl::string_view name) override;
  absl::StatusOr<std::vector<Room>> ListRooms(absl::string_view viewer_id,
                                              absl::string_view after_name,
                                              size_t limit) override;
  absl::StatusOr<std::optional<Member>> GetMember(
      absl::string_view room_id, absl::string_view user_id) override;
  absl::StatusOr<std::vector<Member>> ListMembers(
      absl::string_view room_id) override;
  absl::StatusOr<size_t> CountMembers(absl::string_view room_id) override;
  absl::StatusOr<std::optional<IdempotentSend>> FindIdempotentSend(
      absl::string_view scope, absl::string_view key,
      absl::Time not_before) override;
  absl::StatusOr<ReadState> GetReadState(absl::string_view user_id,
                                         absl::string_view room_id) override;
  absl::StatusOr<std::vector<std::string>> ListRevokedTokens() override;

  absl::StatusOr<uint64_t> LastSequence(absl::string_view log) override;
  absl::StatusOr<std::vector<model::EventPtr>> ReadAfter(
      absl::string_view log, uint64_t after, size_t limit) override;
  absl::StatusOr<PageResult> ListMessages(absl::string_view log,
                                          const Page& page) override;
  absl::StatusOr<model::EventPtr> GetMessage(absl::string_view log,
                                             absl::string_view id) override;
  absl::StatusOr<std::vector<std::string>> ListPosters(
      absl::string_view log) override;

  // How many migrations Open applied (0 when the database was up to date).
  int migrations_applied() const { return migrations_applied_; }
  // The DSN without its password, as logs and errors show it.
  const std::string& redacted_dsn() const { return redacted_dsn_; }

 private:
  using Connection = pg_internal::Connection;
  // A connection opened again when it is lost, at most once per backoff.
  struct Slot {
    std::unique_ptr<Connection> connection;
    absl::Time next_attempt = absl::InfinitePast();
    absl::Duration backoff = absl::ZeroDuration();
    absl::Status last_error;
  };

  PostgresStore(PostgresOptions options, std::unique_ptr<Connection> writer,
                std::vector<std::unique_ptr<Connection>> readers,
                int migrations_applied);

  // Runs one batch in one transaction (WriteQueue::Commit).
  std::vector<absl::StatusOr<int64_t>> RunBatch(
      std::vector<WriteQueue::Pending>& batch);
  // One attempt at the batch's transaction on `c`: every write as planned
  // (`careful`: each in its own savepoint). False when a statement raised
  // an error outside a savepoint (the transaction is rolled back; run it
  // again carefully). `results` and `assigned` get one entry per planned
  // write; `failed` the transaction's own failure.
  bool RunTransaction(Connection& c, std::vector<pg_internal::Planned>& plans,
                      const std::vector<size_t>& to_run, bool careful,
                      std::vector<absl::StatusOr<int64_t>>& results,
                      std::vector<pg_internal::Assigned>& assigned,
                      absl::Status& failed);
  // Opens `slot`'s connection when it has none (and its backoff allows);
  // the connection, or why not.
  absl::StatusOr<Connection*> Connect(Slot& slot, bool pipeline);
  // Runs `read` on a pooled connection; once more on a new connection when
  // the one it had turns out lost before it answered anything.
  template <typename T, typename F>
  absl::StatusOr<T> Read(F read);

  const PostgresOptions options_;
  const std::string redacted_dsn_;
  const int migrations_applied_;

  // The writer thread's only (after Open).
  Slot writer_;

  Mutex readers_mu_;
  CondVar readers_cv_{&readers_mu_};
  std::vector<Slot> idle_readers_ ABSL_GUARDED_BY(readers_mu_);

  // The writes' queue and the writer thread (RunBatch); closed (by the
  // destructor) before the connections go.
  WriteQueue queue_;
};

}  // namespace parley::store

#endif  // PARLEY_SERVER_STORE_POSTGRES_STORE_H_
