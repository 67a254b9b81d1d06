// The durable Store of the embedded deployment: one SQLite database file
// (the server uses <data_dir>/parley.db) in WAL mode, foreign keys on.
//
// Writes: Submit and Append only queue, into one WriteQueue. Its writer
// thread takes everything queued (up to `max_batch` writes), runs it in one
// BEGIN IMMEDIATE transaction with each write in its own SAVEPOINT (a
// failing write is rolled back to its savepoint and gets its own error; the
// others commit), commits, and then calls every `done` in submission order,
// on the writer thread, holding no lock of the store's (see write_queue.h).
// If the transaction itself fails (BEGIN or COMMIT), every write of the
// batch fails with UNAVAILABLE, reason STORE_FAILED, and its appends take no
// number.
//
// Reads run on a pool of `read_connections` read-only connections, alongside
// the writer (WAL), from any number of threads; a caller waits for a free
// connection when all are busy. A read that runs several statements runs
// them in one read transaction, so it sees one snapshot.
//
// Schema: an ordered list of migrations, each applied in its own transaction,
// the version recorded in PRAGMA user_version. Opening an up-to-date database
// applies nothing; a database written by a newer version is refused.
//
// Semantics: those of store.h. Beyond them: expired revoked tokens are
// deleted at Open; a write queued after Close gets UNAVAILABLE
// (SHUTTING_DOWN) on the writer thread while it is still draining, or inline
// once Close has returned.
//
// Thread-safe.
#ifndef PARLEY_SERVER_STORE_SQLITE_STORE_H_
#define PARLEY_SERVER_STORE_SQLITE_STORE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/common/clock.h"
#include "server/common/mutex.h"
#include "server/store/store.h"
#include "server/store/write_queue.h"

struct sqlite3;

namespace parley::store {

namespace sqlite_internal {
class Connection;

// What the writer thread has learnt about the logs it appended to: each
// log's owner (room or user) exists and its last sequence number. Appends to
// a known log skip the two reads that check both. Only the writer changes
// rooms, users and logs, so this stays true until the writer itself deletes
// a room or a user, or loses a transaction; then it forgets everything. An
// append's number is learnt only once its savepoint is released, so one
// rolled back leaves the log's last as it was.
struct WriterLogs {
  static constexpr size_t kMaxLogs = 100000;  // then it starts afresh
  absl::flat_hash_map<std::string, uint64_t> last;
};
}  // namespace sqlite_internal

struct SqliteOptions {
  // The database file; created (with its schema) when missing. Its directory
  // must exist.
  std::string path;
  // kNormal: a commit is durable once the OS has it (survives a crash of the
  // process, not necessarily of the machine); kFull: fsync on every commit.
  enum class Sync { kNormal, kFull };
  Sync synchronous = Sync::kNormal;
  // The most writes one transaction takes from the queue (at least 1).
  size_t max_batch = 1024;
  // The size of the read connection pool (at least 1).
  size_t read_connections = 4;
  // How long a statement waits for a lock held by another process.
  absl::Duration busy_timeout = absl::Seconds(5);
  // WAL checkpoints: each time commits add this many pages to the WAL, a
  // thread of the store's own copies them into the database file (a PASSIVE
  // checkpoint on its own connection, with its own syncs), so the writer
  // does not wait for those fsyncs; once the WAL is 16 times this long the
  // writer runs a short RESTART checkpoint between two batches so that the
  // WAL starts again. 0: SQLite's automatic checkpoint at 1,000 pages, run
  // by the committing writer itself.
  uint32_t checkpoint_pages = 1000;
  // The time source of StoreStats' commit and write-wait times (one clock,
  // so a write's wait always covers its transaction; tests move it by
  // hand).
  Clock* clock = Clock::Real();
};

class SqliteStore : public Store {
 public:
  // Opens (creating when missing) and migrates the database, prunes expired
  // revoked tokens and starts the writer thread. FAILED_PRECONDITION (reason
  // SCHEMA_TOO_NEW) for a database of a newer schema version; UNAVAILABLE
  // (reason STORE_FAILED) when SQLite fails; INVALID_ARGUMENT for bad options.
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(
      SqliteOptions options);

  // The schema version this build writes (the number of migrations).
  static int LatestSchemaVersion();

  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;
  ~SqliteStore() override;

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
  absl::StatusOr<uint64_t> LastSequence(absl::string_view log) override;
  absl::StatusOr<std::vector<model::EventPtr>> ReadAfter(absl::string_view log,
                                                         uint64_t after,
                                                         size_t limit) override;
  absl::StatusOr<PageResult> ListMessages(absl::string_view log,
                                          const Page& page) override;
  absl::StatusOr<model::EventPtr> GetMessage(absl::string_view log,
                                             absl::string_view id) override;
  absl::StatusOr<std::vector<std::string>> ListPosters(
      absl::string_view log) override;
  absl::StatusOr<std::optional<IdempotentSend>> FindIdempotentSend(
      absl::string_view scope, absl::string_view key,
      absl::Time not_before) override;
  absl::StatusOr<ReadState> GetReadState(absl::string_view user_id,
                                         absl::string_view room_id) override;
  absl::StatusOr<std::vector<std::string>> ListRevokedTokens() override;

  // Waits until the checkpoint thread has run `n` checkpoints in all, or
  // `timeout` passes; true if it has. For tests.
  bool WaitForCheckpoints(uint64_t n, absl::Duration timeout);
  // How many migrations Open applied (0 when the database was up to date).
  int migrations_applied() const { return migrations_applied_; }

 private:
  using Connection = sqlite_internal::Connection;
  class ReaderLease;

  SqliteStore(SqliteOptions options, std::unique_ptr<Connection> writer_db,
              std::vector<std::unique_ptr<Connection>> readers,
              int migrations_applied);

  // The checkpoint thread: a PASSIVE checkpoint each time a commit asks.
  void CheckpointLoop();
  // On the writer thread between batches: a RESTART checkpoint, when the
  // checkpoint thread found the WAL long (restart_due_).
  void RestartWal();
  // One checkpoint of `mode` on `c`: logs a failure, counts it and its time
  // (a RESTART as a restart). Returns SQLite's result; `wal_pages` (may be
  // null) gets the WAL's length.
  int Checkpoint(Connection& c, int mode, int* wal_pages);
  // SQLite's WAL hook on the writer's connection, after every commit.
  static int OnWalCommit(void* store, sqlite3* db, const char* name,
                         int pages);
  // Runs one batch in one transaction (WriteQueue::Commit).
  std::vector<absl::StatusOr<int64_t>> RunBatch(
      std::vector<WriteQueue::Pending>& batch);

  const SqliteOptions options_;
  const int migrations_applied_;

  // Used by Open, then only by the writer thread. Destroyed last, so that
  // closing it checkpoints the WAL into the database file.
  std::unique_ptr<Connection> writer_db_;
  // The writer thread's only.
  sqlite_internal::WriterLogs writer_logs_;
  // The WAL's size when a commit last asked for a checkpoint (0 after the WAL
  // started again). The writer thread's only (OnWalCommit).
  uint64_t wal_pages_at_request_ = 0;
  // Set by the checkpoint thread, taken by the writer (RestartWal).
  std::atomic<bool> restart_due_{false};
  // The checkpoint thread's connection (null when checkpoint_pages is 0);
  // closed before the writer's.
  std::unique_ptr<Connection> checkpoint_db_;

  mutable Mutex checkpoint_mu_;
  CondVar checkpoint_cv_{&checkpoint_mu_};       // one is due, or stop
  CondVar checkpoint_done_cv_{&checkpoint_mu_};  // checkpoints_run_ grew
  bool checkpoint_due_ ABSL_GUARDED_BY(checkpoint_mu_) = false;
  bool checkpoint_stop_ ABSL_GUARDED_BY(checkpoint_mu_) = false;
  // PASSIVE checkpoints run; stats() reports it as StoreStats::checkpoints.
  uint64_t checkpoints_run_ ABSL_GUARDED_BY(checkpoint_mu_) = 0;

  Mutex readers_mu_;
  CondVar readers_cv_{&readers_mu_};
  std::vector<std::unique_ptr<Connection>> idle_readers_
      ABSL_GUARDED_BY(readers_mu_);

  // The writes' queue and the writer thread (RunBatch).
  WriteQueue queue_;

  mutable Mutex stats_mu_;
  uint64_t checkpoint_restarts_ ABSL_GUARDED_BY(stats_mu_) = 0;
  absl::Duration checkpoint_time_total_ ABSL_GUARDED_BY(stats_mu_);

  Mutex close_mu_;  // serializes Close
  std::thread checkpointer_ ABSL_GUARDED_BY(close_mu_);
};

}  // namespace parley::store

#endif  // PARLEY_SERVER_STORE_SQLITE_STORE_H_
