// SqliteStore: what only SQLite has (the file, migrations, WAL
// checkpoints, reopening, synchronous modes, the batching of its writer);
// every behaviour all stores share is in the conformance suite
// (store_conformance.cc), instantiated here for SQLite.
#include "server/store/sqlite_store.h"

#include <sqlite3.h>
#include <stdlib.h>

#include <array>
#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/clock.h"
#include "server/common/errors.h"
#include "server/common/metrics.h"
#include "server/common/mutex.h"
#include "server/store/cached_store.h"
#include "tests/server/store/store_conformance.h"
#include "tests/server/store/store_test_util.h"

namespace parley::store {
namespace {

using model::Event;
using model::EventKind;
using model::EventPtr;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

// ---- The conformance suite, on SQLite and on the cache in front of it ----

// A SqliteStore on a database file of its own, removed with the store.
class TempSqliteStore : public ForwardingStore {
 public:
  static std::unique_ptr<Store> Open(bool cached) {
    std::string dir = ::testing::TempDir();
    if (dir.empty() || dir.back() != '/') dir += '/';
    dir += "parley_store_conformance_XXXXXX";
    if (mkdtemp(dir.data()) == nullptr) return nullptr;
    SqliteOptions options;
    options.path = dir + "/parley.db";
    absl::StatusOr<std::unique_ptr<SqliteStore>> opened =
        SqliteStore::Open(options);
    EXPECT_TRUE(opened.ok()) << opened.status();
    if (!opened.ok()) return nullptr;
    std::unique_ptr<Store> store = *std::move(opened);
    if (cached) store = std::make_unique<CachedStore>(std::move(store));
    return std::unique_ptr<Store>(new TempSqliteStore(std::move(store), dir));
  }
  ~TempSqliteStore() override {
    store_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

 private:
  TempSqliteStore(std::unique_ptr<Store> store, std::string dir)
      : ForwardingStore(store.get()),
        store_(std::move(store)),
        dir_(std::move(dir)) {}

  std::unique_ptr<Store> store_;
  const std::string dir_;
};

INSTANTIATE_TEST_SUITE_P(
    Sqlite, StoreConformanceTest,
    ::testing::Values(StoreFactory{"Sqlite",
                                   [] { return TempSqliteStore::Open(false); }},
                      StoreFactory{"CachedSqlite",
                                   [] { return TempSqliteStore::Open(true); }}),
    StoreFactoryName);

// ---- SQLite ----

// One integer from the database file through a connection of the test's own.
int64_t QueryInt(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr),
            SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK)
      << sqlite3_errmsg(db);
  int64_t value = -1;
  if (sqlite3_step(stmt) == SQLITE_ROW) value = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return value;
}

std::string QueryText(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr),
            SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK)
      << sqlite3_errmsg(db);
  std::string value;
  if (sqlite3_step(stmt) == SQLITE_ROW) {
    value = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return value;
}

void ExecSql(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error), SQLITE_OK)
      << (error != nullptr ? error : "");
  sqlite3_free(error);
  sqlite3_close(db);
}

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dir = ::testing::TempDir();
    if (dir.empty() || dir.back() != '/') dir += '/';
    std::string pattern = dir + "parley_sqlite_store_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    Reopen();
  }
  void TearDown() override {
    store_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  std::string Path() const { return dir_ + "/parley.db"; }
  SqliteOptions Options() const {
    SqliteOptions options;
    options.path = Path();
    return options;
  }
  void Reopen() { Reopen(Options()); }
  void Reopen(SqliteOptions options) {
    store_.reset();
    absl::StatusOr<std::unique_ptr<SqliteStore>> store =
        SqliteStore::Open(std::move(options));
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  absl::StatusOr<int64_t> Do(Write write) {
    return Commit(*store_, std::move(write));
  }
  void MustDo(Write write) {
    absl::StatusOr<int64_t> result = Do(std::move(write));
    ASSERT_TRUE(result.ok()) << result.status();
  }
  absl::StatusOr<int64_t> Append(std::shared_ptr<Event> event) {
    return Do(AppendEvent{std::move(event)});
  }
  void MustAppend(std::shared_ptr<Event> event) {
    MustDo(AppendEvent{std::move(event)});
  }

  std::vector<EventPtr> ReadAll(absl::string_view log) {
    absl::StatusOr<std::vector<EventPtr>> events =
        store_->ReadAfter(log, 0, 1000000);
    EXPECT_TRUE(events.ok()) << events.status();
    return events.ok() ? *events : std::vector<EventPtr>();
  }
  PageResult List(absl::string_view log, Page page) {
    absl::StatusOr<PageResult> result = store_->ListMessages(log, page);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : PageResult();
  }

  std::string dir_;
  std::unique_ptr<SqliteStore> store_;
};

// ---- Opening and the schema ----

TEST_F(SqliteStoreTest, OpenCreatesTheSchemaInWalMode) {
  // The first migration creates the lobby (the conformance suite checks
  // it is there).
  EXPECT_EQ(QueryInt(Path(), "SELECT count(*) FROM rooms"), 1);
  EXPECT_EQ(store_->migrations_applied(), SqliteStore::LatestSchemaVersion());
  EXPECT_EQ(QueryText(Path(), "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(QueryInt(Path(), "PRAGMA user_version"),
            SqliteStore::LatestSchemaVersion());
}

TEST_F(SqliteStoreTest, ReopeningAnUpToDateDatabaseAppliesNoMigration) {
  Room lobby = *store_->GetRoom(model::kLobbyId);
  lobby.description = "changed";
  MustDo(PutRoom{lobby, /*create=*/false});
  Reopen();
  EXPECT_EQ(store_->migrations_applied(), 0);
  EXPECT_EQ(store_->GetRoom(model::kLobbyId)->description, "changed");
  EXPECT_EQ(QueryInt(Path(), "SELECT count(*) FROM rooms"), 1);
  Reopen();
  EXPECT_EQ(store_->migrations_applied(), 0);
  EXPECT_EQ(QueryInt(Path(), "PRAGMA user_version"),
            SqliteStore::LatestSchemaVersion());
}

TEST_F(SqliteStoreTest, ADatabaseOfANewerSchemaIsRefused) {
  store_.reset();
  ExecSql(Path(), absl::StrCat("PRAGMA user_version = ",
                               SqliteStore::LatestSchemaVersion() + 1));
  absl::StatusOr<std::unique_ptr<SqliteStore>> store =
      SqliteStore::Open(Options());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ErrorReason(store.status()), "SCHEMA_TOO_NEW");
  EXPECT_THAT(std::string(store.status().message()),
              ::testing::HasSubstr("newer"));
  // Nothing was changed.
  EXPECT_EQ(QueryInt(Path(), "PRAGMA user_version"),
            SqliteStore::LatestSchemaVersion() + 1);
}

TEST_F(SqliteStoreTest, OpenReportsBadPathsAndOptions) {
  SqliteOptions options = Options();
  options.path = dir_ + "/missing/dir/parley.db";
  absl::StatusOr<std::unique_ptr<SqliteStore>> store =
      SqliteStore::Open(options);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ErrorReason(store.status()), "STORE_FAILED");

  options.path = "";
  EXPECT_EQ(SqliteStore::Open(options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options = Options();
  options.max_batch = 0;
  EXPECT_EQ(SqliteStore::Open(options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options = Options();
  options.read_connections = 0;
  EXPECT_EQ(SqliteStore::Open(options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(SqliteStoreTest, FullSynchronousModeWorks) {
  SqliteOptions options = Options();
  options.synchronous = SqliteOptions::Sync::kFull;
  Reopen(options);
  MustAppend(Message(kLobby, 1, "alice", "durable"));
  Reopen(options);
  EXPECT_EQ(*store_->LastSequence(kLobby), 1u);
}

TEST_F(SqliteStoreTest, TheCheckpointThreadCopiesTheWalIntoTheDatabase) {
  SqliteOptions options = Options();
  options.checkpoint_pages = 4;
  Reopen(options);
  const uintmax_t size_before = std::filesystem::file_size(Path());
  constexpr uint64_t kMessages = 200;  // ~100 KB, tens of pages
  for (uint64_t i = 1; i <= kMessages; ++i) {
    MustAppend(Message(kLobby, i, "alice", std::string(500, 'x')));
  }
  // The first checkpoints may have run before most of these commits and
  // rewritten only pages the file had. Wait for one that began after them
  // all (the second to finish from now), appending a little more so that
  // commits keep asking for checkpoints.
  const uint64_t ran = store_->stats().checkpoints;
  uint64_t last = kMessages;
  while (!store_->WaitForCheckpoints(ran + 2, absl::Milliseconds(50))) {
    ASSERT_LT(last, 10 * kMessages) << "no checkpoint ran";
    MustAppend(Message(kLobby, ++last, "alice", "more"));
  }
  // Only a checkpoint writes the database file while the store is open
  // (commits go to the WAL, and SQLite's own checkpoint is replaced), so a
  // larger file is the checkpoint thread's work.
  EXPECT_GT(std::filesystem::file_size(Path()), size_before);
  EXPECT_EQ(ReadAll(kLobby).size(), last);
  Reopen(options);
  EXPECT_EQ(*store_->LastSequence(kLobby), last);
}

TEST_F(SqliteStoreTest, TheWalStartsAgainUnderSteadyWrites) {
  // One write per transaction, queued all at once: the writer commits back
  // to back while checkpoints run, so a PASSIVE checkpoint alone never
  // finds the whole WAL copied and the WAL would only grow (30-50 MB for
  // these 3,000 writes without the writer's restarts).
  SqliteOptions options = Options();
  options.checkpoint_pages = 2;
  options.max_batch = 1;
  Reopen(options);
  constexpr int kWrites = 3000;
  auto done = std::make_shared<Latch>(kWrites);
  auto failures = std::make_shared<std::atomic<int>>(0);
  for (int i = 1; i <= kWrites; ++i) {
    AppendChecked(*store_,
                  Message(kLobby, static_cast<uint64_t>(i), "alice",
                          std::string(500, 'x')),
                  [done, failures](absl::StatusOr<int64_t> result) {
                    if (!result.ok()) failures->fetch_add(1);
                    done->CountDown();
                  });
  }
  ASSERT_TRUE(done->Wait(absl::Minutes(2)));
  EXPECT_EQ(failures->load(), 0);
  // The writer started the WAL again (the WAL file keeps its largest size,
  // so its size says little here).
  EXPECT_GE(store_->stats().checkpoint_restarts, 1u);
  EXPECT_EQ(*store_->LastSequence(kLobby), static_cast<uint64_t>(kWrites));
}

TEST_F(SqliteStoreTest, NoCheckpointThreadWhenCheckpointPagesIsZero) {
  SqliteOptions options = Options();
  options.checkpoint_pages = 0;
  Reopen(options);
  for (uint64_t i = 1; i <= 50; ++i) {
    MustAppend(Message(kLobby, i, "alice", std::string(500, 'x')));
  }
  EXPECT_FALSE(store_->WaitForCheckpoints(1, absl::ZeroDuration()));
  EXPECT_EQ(store_->stats().checkpoints, 0u);
  EXPECT_EQ(*store_->LastSequence(kLobby), 50u);
}

// ---- On disk ----

TEST_F(SqliteStoreTest, ExpiredRevokedTokensArePrunedAtOpen) {
  MustDo(RevokeToken{"live", absl::Now() + absl::Hours(1)});
  MustDo(RevokeToken{"expired", absl::Now() - absl::Seconds(1)});
  EXPECT_EQ(QueryInt(Path(), "SELECT count(*) FROM revoked_tokens"), 2);
  Reopen();
  EXPECT_THAT(*store_->ListRevokedTokens(), ElementsAre("live"));
  EXPECT_EQ(QueryInt(Path(), "SELECT count(*) FROM revoked_tokens"), 1);
}

TEST_F(SqliteStoreTest, EverythingSurvivesReopening) {
  User amy = MakeUser(1, "amy");
  amy.tokens_valid_after = T(7);
  MustDo(PutUser{amy});
  Room room = MakeRoom(1, "club", Visibility::kHidden, amy.id);
  MustDo(PutRoom{room});
  auto kept = Message(room.id, 1, "amy", "original");
  auto gone = Message(room.id, 2, "amy", "to delete");
  auto purged = Message(kLobby, 1, "amy", "to purge");
  MustAppend(kept);
  MustAppend(gone);
  MustAppend(EditOf(*kept, 3, "edited"));
  MustAppend(DeletionOf(*gone, 4));
  MustAppend(purged);
  MustAppend(PurgeThrough(kLobby, 2, 1));
  MustAppend(Message(model::InboxLog(amy.id), 1, "bob", "dm"));
  MustDo(RevokeToken{"jti-1", absl::Now() + absl::Hours(1)});
  EXPECT_EQ(*Do(PutReadMarker{amy.id, room.id, 2}), 2);

  Reopen();

  EXPECT_EQ(store_->GetUserByName("amy")->tokens_valid_after, T(7));
  EXPECT_EQ(store_->GetRoomByName("club")->visibility, Visibility::kHidden);
  EXPECT_EQ((*store_->GetMember(room.id, amy.id))->role, "owner");
  EXPECT_EQ(store_->ListRooms(amy.id, "", 10)->size(), 1u);  // club; no lobby
  EXPECT_EQ(*store_->LastSequence(room.id), 4u);
  EXPECT_EQ(*store_->LastSequence(kLobby), 2u);
  EXPECT_EQ(*store_->LastSequence(model::InboxLog(amy.id)), 1u);
  absl::StatusOr<EventPtr> got = store_->GetMessage(room.id, kept->id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)->text, "edited");
  EXPECT_EQ((*got)->update_time, T(3));
  ASSERT_EQ((*got)->previous_versions.size(), 1u);
  EXPECT_EQ((*got)->previous_versions[0].text, "original");
  EXPECT_TRUE(store_->GetMessage(room.id, gone->id).value()->deleted);
  EXPECT_THAT(List(kLobby, Page{}).messages, IsEmpty());
  EXPECT_THAT(Sequences(ReadAll(kLobby)), ElementsAre(2));
  EXPECT_THAT(*store_->ListRevokedTokens(), ElementsAre("jti-1"));
  EXPECT_THAT(*store_->ListPosters(room.id), ElementsAre("amy"));
  EXPECT_EQ(store_->GetReadState(amy.id, room.id)->sequence, 2u);
  // And writing continues where it stopped.
  MustAppend(Message(room.id, 5, "amy", "back"));
}

// Deleted and purged text leaves the database, not only the reads (the
// conformance suite checks what reads return).
TEST_F(SqliteStoreTest, DeletedAndPurgedTextLeavesTheFile) {
  auto message = Message(kLobby, 1, "alice", "secret");
  MustAppend(message);
  MustAppend(EditOf(*message, 2, "secret v2"));
  MustAppend(DeletionOf(*message, 3));
  auto purged = Message(kLobby, 4, "alice", "classified");
  MustAppend(purged);
  MustAppend(EditOf(*purged, 5, "classified v2"));
  MustAppend(PurgeThrough(kLobby, 6, 4));
  EXPECT_EQ(QueryInt(Path(), "SELECT count(*) FROM message_versions"), 0);
  EXPECT_EQ(QueryInt(Path(),
                     "SELECT count(*) FROM events WHERE text LIKE "
                     "'%secret%' OR text LIKE '%classified%'"),
            0);
}

// Close commits what is queued before it returns (the conformance suite
// checks the callbacks); here, that it is in the file.
TEST_F(SqliteStoreTest, WhatCloseDrainedIsOnDisk) {
  constexpr int kWrites = 300;
  std::vector<std::shared_ptr<Outcome>> outcomes;
  for (int i = 0; i < kWrites; ++i) {
    outcomes.push_back(
        SubmitWrite(*store_, PutUser{MakeUser(i, absl::StrCat("user", i))}));
  }
  store_->Close();
  Reopen();
  EXPECT_EQ(store_->ListUsers("", 1000)->size(), static_cast<size_t>(kWrites));
  for (const auto& outcome : outcomes) EXPECT_TRUE(outcome->Wait().ok());
}

// ---- The writer ----

TEST_F(SqliteStoreTest, GroupCommitBatchesAndKeepsSubmissionOrder) {
  SqliteOptions options = Options();
  options.max_batch = 64;
  Reopen(options);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 250;
  std::vector<Room> rooms;
  for (int t = 0; t < kThreads; ++t) {
    rooms.push_back(MakeRoom(t, absl::StrCat("room-", t)));
    MustDo(PutRoom{rooms.back()});
  }

  struct Record {
    Mutex mu;
    std::vector<std::vector<int>> order ABSL_GUARDED_BY(mu);
    int failures ABSL_GUARDED_BY(mu) = 0;
  };
  auto record = std::make_shared<Record>();
  {
    MutexLock lock(&record->mu);
    record->order.resize(kThreads);
  }
  auto all_done = std::make_shared<Latch>(kThreads * kPerThread);
  const StoreStats before = store_->stats();
  auto gate = std::make_unique<WriterGate>(*store_);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        // Each thread appends to its own log: a commit out of submission
        // order would break the sequence check.
        AppendChecked(*store_,
                      Message(rooms[t].id, static_cast<uint64_t>(i + 1),
                              "sender", "text"),
                      [record, all_done, t, i](absl::StatusOr<int64_t> result) {
                        {
                          MutexLock lock(&record->mu);
                          record->order[t].push_back(i);
                          if (!result.ok()) ++record->failures;
                        }
                        all_done->CountDown();
                      });
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  gate->Release();
  ASSERT_TRUE(all_done->Wait());

  {
    MutexLock lock(&record->mu);
    EXPECT_EQ(record->failures, 0);
    for (int t = 0; t < kThreads; ++t) {
      ASSERT_EQ(record->order[t].size(), static_cast<size_t>(kPerThread));
      for (int i = 0; i < kPerThread; ++i) EXPECT_EQ(record->order[t][i], i);
    }
  }
  for (const Room& room : rooms) {
    EXPECT_EQ(*store_->LastSequence(room.id),
              static_cast<uint64_t>(kPerThread));
  }
  const StoreStats after = store_->stats();
  const uint64_t writes = after.writes - before.writes;
  const uint64_t transactions = after.transactions - before.transactions;
  EXPECT_EQ(writes, kThreads * kPerThread + 1u);  // and the gate's
  EXPECT_LT(transactions, writes);
  EXPECT_LE(transactions, 2 + (kThreads * kPerThread) / 64);
  EXPECT_EQ(after.largest_batch, 64u);
  EXPECT_GT(after.commit_time_total, absl::ZeroDuration());
}

TEST_F(SqliteStoreTest, TheWriteWaitRunsFromSubmitToTheCommit) {
  // The clock moves only by hand, so each write's wait is exactly the time
  // the test moves it while the writer is held.
  ManualClock clock;
  SqliteOptions options = Options();
  options.clock = &clock;
  Reopen(options);
  const StoreStats before = store_->stats();
  auto gate = std::make_unique<WriterGate>(*store_);
  auto early = SubmitWrite(*store_, PutRoom{MakeRoom(1, "early")});
  clock.Advance(absl::Milliseconds(30));
  auto late = SubmitWrite(*store_, PutRoom{MakeRoom(2, "late")});
  clock.Advance(absl::Milliseconds(3));
  gate.reset();
  ASSERT_TRUE(early->Wait().ok());
  ASSERT_TRUE(late->Wait().ok());
  const StoreStats after = store_->stats();

  // One count per write, the gate's own too (it committed before the clock
  // moved: a wait of zero).
  std::array<uint64_t, metrics::kLatencyBuckets> counted{};
  uint64_t total = 0;
  for (size_t i = 0; i < counted.size(); ++i) {
    counted[i] = after.write_wait_buckets[i] - before.write_wait_buckets[i];
    total += counted[i];
  }
  EXPECT_EQ(total, after.writes - before.writes);
  EXPECT_EQ(total, 3u);
  EXPECT_EQ(counted[metrics::LatencyBucketOf(absl::ZeroDuration())], 1u);
  // early waited 33 ms (0.025 < 0.033 <= 0.05), late 3 ms (<= 0.005).
  EXPECT_EQ(counted[metrics::LatencyBucketOf(absl::Milliseconds(33))], 1u);
  EXPECT_EQ(counted[metrics::LatencyBucketOf(absl::Milliseconds(3))], 1u);
  EXPECT_EQ(after.write_wait_total - before.write_wait_total,
            absl::Milliseconds(36));
  EXPECT_EQ(after.longest_write_wait, absl::Milliseconds(33));
}

TEST_F(SqliteStoreTest, ALostTransactionFailsEveryWriteOfTheBatch) {
  SqliteOptions options = Options();
  options.busy_timeout = absl::Milliseconds(20);
  Reopen(options);
  auto gate = std::make_unique<WriterGate>(*store_);
  // Another process takes the write lock.
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(Path().c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr),
            SQLITE_OK);
  auto a = SubmitWrite(*store_, PutUser{MakeUser(1, "a")});
  auto b = SubmitWrite(*store_, PutUser{MakeUser(2, "a")});  // would clash
  auto c = SubmitWrite(*store_, AppendEvent{Message(kLobby, 1, "x", "y")});
  gate.reset();
  for (const auto& outcome : {a, b, c}) {
    absl::StatusOr<int64_t> result = outcome->Wait();
    EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable)
        << result.status();
    EXPECT_EQ(ErrorReason(result.status()), "STORE_FAILED");
  }
  ASSERT_EQ(sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(other);
  EXPECT_EQ(store_->GetUserByName("a").status().code(),
            absl::StatusCode::kNotFound);
  // The store goes on.
  MustDo(PutUser{MakeUser(1, "a")});
  MustAppend(Message(kLobby, 1, "x", "y"));
}

}  // namespace
}  // namespace parley::store
