#include "server/store/sqlite_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <variant>

#include "absl/memory/memory.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/common/log.h"
#include "server/store/errors.h"
#include "server/store/sqlite_connection.h"
#include "server/store/sqlite_internal.h"

namespace parley::store {

using sqlite_internal::ApplyAppend;
using sqlite_internal::ApplyWrite;
using sqlite_internal::Migrate;
using sqlite_internal::Stmt;
using sqlite_internal::WriterLogs;

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(
    SqliteOptions options) {
  if (options.path.empty()) {
    return absl::InvalidArgumentError("SqliteOptions.path is empty");
  }
  if (options.max_batch == 0 || options.read_connections == 0) {
    return absl::InvalidArgumentError(
        "SqliteOptions.max_batch and read_connections must be at least 1");
  }
  if (options.clock == nullptr) {
    return absl::InvalidArgumentError("SqliteOptions.clock is null");
  }
  absl::StatusOr<std::unique_ptr<Connection>> writer =
      Connection::Open(options.path, /*read_only=*/false, options.busy_timeout);
  if (!writer.ok()) return writer.status();
  Connection& c = **writer;
  absl::StatusOr<std::string> mode = c.QueryText("PRAGMA journal_mode = WAL");
  if (!mode.ok()) return mode.status();
  if (*mode != "wal") {
    return StoreFailed(absl::StrCat(options.path,
                                    ": cannot use WAL journal mode (got \"",
                                    *mode, "\")"));
  }
  const std::string synchronous = absl::StrCat(
      "PRAGMA synchronous = ",
      options.synchronous == SqliteOptions::Sync::kFull ? "FULL" : "NORMAL");
  absl::Status status = c.Script(absl::StrCat(
      synchronous,
      "; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;"
      " PRAGMA cache_size = -32768;"));
  if (!status.ok()) return status;
  absl::StatusOr<int> applied = Migrate(c);
  if (!applied.ok()) return applied.status();
  {
    Stmt prune =
        c.Prepare("DELETE FROM revoked_tokens WHERE expire_time <= ?1");
    prune.BindTime(1, absl::Now());
    if (absl::Status s = prune.Run(); !s.ok()) return s;
  }
  std::vector<std::unique_ptr<Connection>> readers;
  for (size_t i = 0; i < options.read_connections; ++i) {
    absl::StatusOr<std::unique_ptr<Connection>> reader =
        Connection::Open(options.path, /*read_only=*/true,
                         options.busy_timeout);
    if (!reader.ok()) return reader.status();
    readers.push_back(*std::move(reader));
  }
  std::unique_ptr<Connection> checkpoint_db;
  if (options.checkpoint_pages > 0) {
    absl::StatusOr<std::unique_ptr<Connection>> opened = Connection::Open(
        options.path, /*read_only=*/false, options.busy_timeout);
    if (!opened.ok()) return opened.status();
    // A checkpoint syncs as its own connection's setting says.
    if (absl::Status s = (*opened)->Script(synchronous); !s.ok()) return s;
    checkpoint_db = *std::move(opened);
  }
  auto store = absl::WrapUnique(new SqliteStore(
      std::move(options), *std::move(writer), std::move(readers), *applied));
  MutexLock lock(&store->close_mu_);
  if (checkpoint_db != nullptr) {
    store->checkpoint_db_ = std::move(checkpoint_db);
    // Replaces SQLite's automatic checkpoint on the writer's connection.
    sqlite3_wal_hook(store->writer_db_->db(), &SqliteStore::OnWalCommit,
                     store.get());
    store->checkpointer_ =
        std::thread([s = store.get()] { s->CheckpointLoop(); });
  }
  store->queue_.Start(
      [s = store.get()](std::vector<WriteQueue::Pending>& batch) {
        return s->RunBatch(batch);
      },
      [s = store.get()] {
        if (s->restart_due_.exchange(false, std::memory_order_relaxed)) {
          s->RestartWal();
        }
      });
  return store;
}

// How far past checkpoint_pages the WAL may grow before a checkpoint makes
// the writer start it again (CheckpointLoop).
constexpr uint64_t kRestartFactor = 16;

int SqliteStore::OnWalCommit(void* store, sqlite3* /*db*/,
                             const char* /*name*/, int pages) {
  auto* self = static_cast<SqliteStore*>(store);
  const uint64_t now = pages > 0 ? static_cast<uint64_t>(pages) : 0;
  // Once per checkpoint_pages new pages: the WAL only starts again from its
  // beginning at a write after a checkpoint copied all of it, so until then
  // every commit reports a WAL still past the mark.
  if (now < self->wal_pages_at_request_) self->wal_pages_at_request_ = 0;
  if (now - self->wal_pages_at_request_ >= self->options_.checkpoint_pages) {
    self->wal_pages_at_request_ = now;
    MutexLock lock(&self->checkpoint_mu_);
    self->checkpoint_due_ = true;
    self->checkpoint_cv_.Signal();
  }
  return SQLITE_OK;
}

void SqliteStore::CheckpointLoop() {
  while (true) {
    {
      MutexLock lock(&checkpoint_mu_);
      while (!checkpoint_due_ && !checkpoint_stop_) checkpoint_cv_.Wait();
      if (checkpoint_stop_) return;
      checkpoint_due_ = false;
    }
    // PASSIVE: copies what no reader still needs, never blocks the writer
    // or the readers (and never waits for them).
    int wal_pages = -1;
    const int rc =
        Checkpoint(*checkpoint_db_, SQLITE_CHECKPOINT_PASSIVE, &wal_pages);
    // A PASSIVE checkpoint never catches up with a writer that keeps
    // committing, and the WAL only starts again from its beginning at a
    // write that finds all of it copied, so under steady load it would grow
    // without end. Past kRestartFactor x checkpoint_pages the writer itself
    // makes that moment, between two batches (RestartWal): a checkpoint
    // from here would wait for the writer's lock, which a busy writer
    // takes again at once.
    if (rc == SQLITE_OK && wal_pages >= 0 &&
        static_cast<uint64_t>(wal_pages) >=
            kRestartFactor * uint64_t{options_.checkpoint_pages}) {
      restart_due_.store(true, std::memory_order_relaxed);
    }
    MutexLock lock(&checkpoint_mu_);
    ++checkpoints_run_;
    checkpoint_done_cv_.SignalAll();
  }
}

bool SqliteStore::WaitForCheckpoints(uint64_t n, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  MutexLock lock(&checkpoint_mu_);
  while (checkpoints_run_ < n) {
    if (!checkpoint_done_cv_.WaitWithDeadline(deadline)) {
      return checkpoints_run_ >= n;
    }
  }
  return true;
}

SqliteStore::SqliteStore(SqliteOptions options,
                         std::unique_ptr<Connection> writer_db,
                         std::vector<std::unique_ptr<Connection>> readers,
                         int migrations_applied)
    : options_(std::move(options)),
      migrations_applied_(migrations_applied),
      writer_db_(std::move(writer_db)),
      idle_readers_(std::move(readers)),
      queue_(options_.max_batch, options_.clock) {}

SqliteStore::~SqliteStore() {
  Close();
  MutexLock lock(&readers_mu_);
  idle_readers_.clear();
}

void SqliteStore::Submit(DirectoryWrite write, WriteDone done) {
  queue_.Enqueue(std::move(write), std::move(done));
}

void SqliteStore::Append(AppendEvent append, WriteDone done) {
  queue_.Enqueue(std::move(append), std::move(done));
}

void SqliteStore::Close() {
  MutexLock close_lock(&close_mu_);
  queue_.Close();
  {
    MutexLock lock(&checkpoint_mu_);
    checkpoint_stop_ = true;
    checkpoint_cv_.SignalAll();
  }
  if (checkpointer_.joinable()) checkpointer_.join();
}

StoreStats SqliteStore::stats() const {
  StoreStats stats = queue_.stats();
  {
    MutexLock lock(&stats_mu_);
    stats.checkpoint_restarts = checkpoint_restarts_;
    stats.checkpoint_time_total = checkpoint_time_total_;
  }
  MutexLock lock(&checkpoint_mu_);
  stats.checkpoints = checkpoints_run_;
  return stats;
}

void SqliteStore::RestartWal() {
  // The checkpoint thread has copied most of the WAL; this copies the rest
  // (and syncs), after which the next write starts the WAL from its
  // beginning. It waits (busy timeout) for readers still on old pages.
  Checkpoint(*writer_db_, SQLITE_CHECKPOINT_RESTART, nullptr);
}

int SqliteStore::Checkpoint(Connection& c, int mode, int* wal_pages) {
  const absl::Time start = absl::Now();
  const int rc =
      sqlite3_wal_checkpoint_v2(c.db(), nullptr, mode, wal_pages, nullptr);
  const absl::Duration took = absl::Now() - start;
  const bool restart = mode == SQLITE_CHECKPOINT_RESTART;
  if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
    log::Warning("WAL checkpoint failed",
                 {{"mode", restart ? "restart" : "passive"},
                  {"error", sqlite3_errmsg(c.db())}});
  }
  MutexLock lock(&stats_mu_);
  if (restart) ++checkpoint_restarts_;  // PASSIVE: checkpoints_run_
  checkpoint_time_total_ += took;
  return rc;
}

std::vector<absl::StatusOr<int64_t>> SqliteStore::RunBatch(
    std::vector<WriteQueue::Pending>& batch) {
  std::vector<absl::StatusOr<int64_t>> results;
  results.reserve(batch.size());
  Connection& c = *writer_db_;
  // `failed`: the transaction is lost; every write of the batch fails.
  absl::Status failed = c.Prepare("BEGIN IMMEDIATE").Run();
  for (WriteQueue::Pending& pending : batch) {
    if (pending.rejected) {
      results.push_back(0);  // the queue fails it
      continue;
    }
    if (!failed.ok()) {
      results.push_back(0);  // replaced below
      continue;
    }
    if (failed = c.Prepare("SAVEPOINT w").Run(); !failed.ok()) {
      results.push_back(0);  // replaced below
      continue;
    }
    const AppendEvent* append = std::get_if<AppendEvent>(&pending.write);
    absl::StatusOr<int64_t> result;
    if (append != nullptr) {
      result = ApplyAppend(c, *append, writer_logs_);
    } else {
      const DirectoryWrite& write = std::get<DirectoryWrite>(pending.write);
      // A deleted room or user takes its log with it.
      if (std::holds_alternative<DeleteRoom>(write) ||
          std::holds_alternative<DeleteUser>(write)) {
        writer_logs_.last.clear();
      }
      result = ApplyWrite(c, write);
    }
    if (result.ok()) {
      failed = c.Prepare("RELEASE w").Run();
      if (failed.ok() && append != nullptr) {
        auto& last = writer_logs_.last;
        if (last.size() >= WriterLogs::kMaxLogs) last.clear();
        last.insert_or_assign(append->event->log, append->event->sequence);
      }
    } else if (sqlite3_get_autocommit(c.db())) {
      // SQLite rolled the whole transaction back (I/O error, disk full).
      failed = result.status();
    } else {
      failed = c.Prepare("ROLLBACK TO w").Run();
      if (failed.ok()) failed = c.Prepare("RELEASE w").Run();
    }
    results.push_back(std::move(result));
  }
  if (failed.ok()) failed = c.Prepare("COMMIT").Run();
  if (!failed.ok()) {
    // What the lost transaction taught about logs may not be true, and its
    // appends took no number.
    writer_logs_.last.clear();
    for (size_t i = 0; i < results.size(); ++i) {
      auto* append = std::get_if<AppendEvent>(&batch[i].write);
      if (append != nullptr && !batch[i].rejected && results[i].ok()) {
        append->event->sequence = 0;
      }
    }
    if (!sqlite3_get_autocommit(c.db())) {
      c.Prepare("ROLLBACK").Run().IgnoreError();
    }
    // One status per write, not copies of one: copies would share a
    // reference-counted payload between the threads the callbacks hand them
    // to.
    const std::string message =
        absl::StrCat("the transaction failed: ", failed.message());
    for (size_t i = 0; i < batch.size(); ++i) {
      if (!batch[i].rejected) results[i] = StoreFailed(message);
    }
  }

  return results;
}

}  // namespace parley::store
