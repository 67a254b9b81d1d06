// PostgresStore: Open, the writer thread and its transactions, the
// connection slots, Close. The statements are in postgres_writes.cc and
// postgres_reads.cc, the schema in postgres_schema.cc.
#include "server/store/postgres_store.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/memory/memory.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/common/errors.h"
#include "server/common/log.h"
#include "server/store/errors.h"
#include "server/store/postgres_connection.h"
#include "server/store/postgres_sql.h"

namespace parley::store {

using pg_internal::Assigned;
using pg_internal::Params;
using pg_internal::Planned;
using pg_internal::Result;

namespace {

// Statements sent before their results are read: bounds what the server
// buffers for a client that is still sending.
constexpr size_t kPipelineChunk = 256;
constexpr absl::Duration kFirstBackoff = absl::Milliseconds(50);
constexpr absl::Duration kMaxBackoff = absl::Seconds(1);

// A status of its own with `status`'s code, message and reason: copies of
// one would share a reference-counted payload between the threads the
// callbacks hand them to.
absl::Status Copy(const absl::Status& status) {
  return WithReason(absl::Status(status.code(), status.message()),
                    ErrorReason(status), ErrorField(status));
}

pg_internal::ConnectOptions ConnectOptionsOf(const PostgresOptions& o) {
  return pg_internal::ConnectOptions{o.dsn, o.connect_timeout,
                                     o.statement_timeout};
}

}  // namespace

int PostgresStore::LatestSchemaVersion() {
  return pg_internal::LatestSchemaVersion();
}

absl::StatusOr<std::unique_ptr<PostgresStore>> PostgresStore::Open(
    PostgresOptions options) {
  if (options.dsn.empty()) {
    return absl::InvalidArgumentError("PostgresOptions.dsn is empty");
  }
  if (options.max_batch == 0 || options.read_connections == 0) {
    return absl::InvalidArgumentError(
        "PostgresOptions.max_batch and read_connections must be at least 1");
  }
  if (options.clock == nullptr) {
    return absl::InvalidArgumentError("PostgresOptions.clock is null");
  }
  if (options.connect_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "PostgresOptions.connect_timeout must be positive");
  }
  const pg_internal::ConnectOptions connect = ConnectOptionsOf(options);
  absl::StatusOr<std::unique_ptr<Connection>> writer =
      Connection::Open(connect);
  if (!writer.ok()) return writer.status();
  absl::StatusOr<int> applied = pg_internal::Migrate(**writer);
  if (!applied.ok()) return applied.status();
  if (absl::Status s = pg_internal::PruneRevokedTokens(**writer, absl::Now());
      !s.ok()) {
    return s;
  }
  if (absl::Status s = (*writer)->EnterPipeline(); !s.ok()) return s;
  std::vector<std::unique_ptr<Connection>> readers;
  for (size_t i = 0; i < options.read_connections; ++i) {
    absl::StatusOr<std::unique_ptr<Connection>> reader =
        Connection::Open(connect);
    if (!reader.ok()) return reader.status();
    readers.push_back(*std::move(reader));
  }
  auto store = absl::WrapUnique(new PostgresStore(
      std::move(options), *std::move(writer), std::move(readers), *applied));
  store->queue_.Start(
      [s = store.get()](std::vector<WriteQueue::Pending>& batch) {
        return s->RunBatch(batch);
      });
  return store;
}

PostgresStore::PostgresStore(PostgresOptions options,
                             std::unique_ptr<Connection> writer,
                             std::vector<std::unique_ptr<Connection>> readers,
                             int migrations_applied)
    : options_(std::move(options)),
      redacted_dsn_(pg_internal::RedactDsn(options_.dsn)),
      migrations_applied_(migrations_applied),
      queue_(options_.max_batch, options_.clock) {
  writer_.connection = std::move(writer);
  MutexLock lock(&readers_mu_);
  for (auto& reader : readers) {
    idle_readers_.emplace_back();
    idle_readers_.back().connection = std::move(reader);
  }
}

PostgresStore::~PostgresStore() {
  Close();
  MutexLock lock(&readers_mu_);
  idle_readers_.clear();
}

// ---- Connections ----

absl::StatusOr<pg_internal::Connection*> PostgresStore::Connect(
    Slot& slot, bool pipeline) {
  if (slot.connection != nullptr && !slot.connection->lost()) {
    return slot.connection.get();
  }
  slot.connection.reset();
  const absl::Time now = absl::Now();
  if (now < slot.next_attempt) {
    return pg_internal::StoreUnavailable(
        absl::StrCat("the database is unreachable (next attempt in ",
                     absl::FormatDuration(absl::Trunc(
                         slot.next_attempt - now, absl::Milliseconds(1))),
                     "): ", slot.last_error.message()));
  }
  absl::StatusOr<std::unique_ptr<Connection>> opened =
      Connection::Open(ConnectOptionsOf(options_));
  absl::Status status = opened.status();
  if (status.ok() && pipeline) status = (*opened)->EnterPipeline();
  if (!status.ok()) {
    slot.backoff = std::clamp(slot.backoff * 2, kFirstBackoff, kMaxBackoff);
    slot.next_attempt = absl::Now() + slot.backoff;
    slot.last_error = Copy(status);
    log::Warning("postgres: cannot connect",
                 {{"error", status.message()},
                  {"retry_after", slot.backoff}});
    return status;
  }
  if (slot.backoff > absl::ZeroDuration()) {
    log::Info("postgres: connected again", {{"dsn", redacted_dsn_}});
  }
  slot.backoff = absl::ZeroDuration();
  slot.next_attempt = absl::InfinitePast();
  slot.connection = *std::move(opened);
  return slot.connection.get();
}

// ---- Writes ----

void PostgresStore::Submit(DirectoryWrite write, WriteDone done) {
  queue_.Enqueue(std::move(write), std::move(done));
}

void PostgresStore::Append(AppendEvent append, WriteDone done) {
  queue_.Enqueue(std::move(append), std::move(done));
}

void PostgresStore::Close() { queue_.Close(); }

StoreStats PostgresStore::stats() const { return queue_.stats(); }

std::vector<absl::StatusOr<int64_t>> PostgresStore::RunBatch(
    std::vector<WriteQueue::Pending>& batch) {
  std::vector<absl::StatusOr<int64_t>> results(batch.size(), int64_t{0});
  std::vector<Planned> plans(batch.size());
  std::vector<size_t> to_run;
  for (size_t i = 0; i < batch.size(); ++i) {
    if (batch[i].rejected) continue;  // the queue fails it
    plans[i] = std::visit(
        [](const auto& w) { return pg_internal::Plan(w); }, batch[i].write);
    if (plans[i].sql == nullptr) {
      results[i] = std::move(plans[i].outcome);
    } else {
      to_run.push_back(i);
    }
  }
  if (!to_run.empty()) {
    absl::Status failed;
    std::vector<Assigned> assigned(batch.size());
    absl::StatusOr<Connection*> c = Connect(writer_, /*pipeline=*/true);
    if (!c.ok()) {
      failed = c.status();
    } else if (!RunTransaction(**c, plans, to_run, /*careful=*/false, results,
                               assigned, failed) &&
               failed.ok()) {
      RunTransaction(**c, plans, to_run, /*careful=*/true, results, assigned,
                     failed);
    }
    if (c.ok() && (*c)->lost()) writer_.connection.reset();
    if (!failed.ok()) {
      const absl::Status transaction = WithReason(
          absl::Status(failed.code(),
                       absl::StrCat("the transaction failed: ",
                                    failed.message())),
          ErrorReason(failed));
      for (size_t i : to_run) results[i] = Copy(transaction);
    } else {
      for (size_t i : to_run) {
        auto* append = std::get_if<AppendEvent>(&batch[i].write);
        if (append == nullptr || !results[i].ok()) continue;
        append->event->sequence = assigned[i].sequence;
        if (assigned[i].target_sequence != 0) {
          append->event->target_sequence = assigned[i].target_sequence;
        }
      }
    }
  }

  return results;
}

namespace {

// What the optimistic pass sends: one write, or (`bulk`) the plain appends
// that came one after another, to any logs, taken together.
struct Unit {
  std::vector<size_t> writes;
  pg_internal::PlannedBulk bulk;  // sql null: the one write's own statement
};

std::vector<Unit> Units(const std::vector<Planned>& plans,
                        const std::vector<size_t>& to_run) {
  std::vector<Unit> units;
  Unit run;  // the current run of plain appends
  auto end_run = [&] {
    if (run.writes.empty()) return;
    std::vector<const model::Event*> events;
    events.reserve(run.writes.size());
    for (size_t i : run.writes) events.push_back(plans[i].plain);
    run.bulk = pg_internal::PlanBulk(events);
    units.push_back(std::move(run));
    run = Unit();
  };
  for (size_t i : to_run) {
    if (plans[i].plain == nullptr) {
      end_run();
      units.push_back(Unit{{i}, {}});
      continue;
    }
    run.writes.push_back(i);
  }
  end_run();
  return units;
}

// Ends a transaction that failed (nothing to do on a lost connection).
void RollBack(pg_internal::Connection& c) {
  if (c.lost()) return;
  c.Send("ROLLBACK");
  c.Sync();
}

}  // namespace

bool PostgresStore::RunTransaction(
    Connection& c, std::vector<Planned>& plans,
    const std::vector<size_t>& to_run, bool careful,
    std::vector<absl::StatusOr<int64_t>>& results,
    std::vector<Assigned>& assigned, absl::Status& failed) {
  std::vector<std::string> logs;
  for (size_t i : to_run) {
    if (!plans[i].log.empty()) logs.push_back(plans[i].log);
  }
  std::sort(logs.begin(), logs.end());
  logs.erase(std::unique(logs.begin(), logs.end()), logs.end());
  std::vector<const model::Event*> appended;
  for (size_t i : to_run) {
    if (plans[i].plain != nullptr) appended.push_back(plans[i].plain);
  }
  const Planned expire = pg_internal::ExpireKeys(appended);
  c.Send("BEGIN");
  size_t header = 1;
  if (!logs.empty()) {
    c.Send(pg_internal::kLockLogsSql, Params().TextArray(logs));
    ++header;
  }
  if (expire.sql != nullptr) {
    c.Send(expire.sql, expire.params);
    ++header;
  }
  auto fail = [&](const absl::Status& status) {
    failed = Copy(status);
    RollBack(c);
    return true;
  };

  if (careful) {
    for (const Result& r : c.Sync()) {
      if (!r.ok()) return fail(r.status());
    }
    for (size_t i : to_run) {
      c.Send("SAVEPOINT w");
      c.Send(plans[i].sql, plans[i].params);
      c.Send("RELEASE w");
      std::vector<Result> rs = c.Sync();
      if (!rs[0].ok()) return fail(rs[0].status());
      assigned[i] = Assigned();
      results[i] = plans[i].interpret(rs[1], &assigned[i]);
      if (rs[1].ok()) {
        if (!rs[2].ok()) return fail(rs[2].status());
        continue;
      }
      if (c.lost()) return fail(rs[1].status());
      c.Send("ROLLBACK TO SAVEPOINT w");
      c.Send("RELEASE w");
      for (const Result& r : c.Sync()) {
        if (!r.ok()) return fail(r.status());
      }
    }
    c.Send("COMMIT");
    const std::vector<Result> commit = c.Sync();
    if (!commit[0].ok()) return fail(commit[0].status());
    return true;
  }

  // Optimistic: no savepoints, the whole batch in one round trip per chunk,
  // consecutive plain appends as one statement.
  const std::vector<Unit> units = Units(plans, to_run);
  for (size_t pos = 0; pos < units.size();) {
    const size_t end = std::min(units.size(), pos + kPipelineChunk);
    for (size_t u = pos; u < end; ++u) {
      if (units[u].bulk.sql != nullptr) {
        c.Send(units[u].bulk.sql, units[u].bulk.params);
      } else {
        const Planned& plan = plans[units[u].writes.front()];
        c.Send(plan.sql, plan.params);
      }
    }
    const bool last = end == units.size();
    if (last) c.Send("COMMIT");
    std::vector<Result> rs = c.Sync();
    size_t next = 0;
    for (; next < header; ++next) {
      if (!rs[next].ok()) return fail(rs[next].status());
    }
    header = 0;
    for (size_t u = pos; u < end; ++u) {
      const Result& r = rs[next++];
      if (!r.ok()) {
        if (c.lost()) return fail(r.status());
        // A statement raised an error: the transaction is lost; the batch
        // runs again with savepoints.
        RollBack(c);
        return false;
      }
      const std::vector<size_t>& writes = units[u].writes;
      if (units[u].bulk.sql == nullptr) {
        assigned[writes.front()] = Assigned();
        results[writes.front()] =
            plans[writes.front()].interpret(r, &assigned[writes.front()]);
        continue;
      }
      const std::vector<uint64_t> sequences =
          pg_internal::BulkSequences(r, writes.size());
      for (size_t k = 0; k < writes.size(); ++k) {
        const size_t i = writes[k];
        assigned[i] = Assigned();
        if (sequences[k] == 0) {
          results[i] = pg_internal::LogNotFound(plans[i].log);
        } else {
          assigned[i].sequence = sequences[k];
          results[i] = 0;
        }
      }
    }
    // Never OK without the COMMIT's answer.
    if (last && !rs[next].ok()) return fail(rs[next].status());
    pos = end;
  }
  return true;
}

}  // namespace parley::store
