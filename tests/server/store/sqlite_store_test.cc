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
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/clock.h"
#include "server/common/errors.h"
#include "server/common/metrics.h"
#include "server/common/mutex.h"
#include "server/store/cached_store.h"

namespace parley::store {
namespace {

using model::Event;
using model::EventKind;
using model::EventPtr;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr absl::Duration kWait = absl::Seconds(60);
const std::string kLobby(model::kLobbyId);

// ---- Synchronization helpers (parley::Mutex, which TSan sees) ----

// Counts down to zero. Shared by pointer with callbacks, which may still be
// returning from CountDown when the waiter wakes.
class Latch {
 public:
  explicit Latch(int count) : count_(count) {}
  void CountDown() {
    MutexLock lock(&mu_);
    if (--count_ <= 0) cv_.SignalAll();
  }
  // Whether the count reached zero within `timeout`.
  bool Wait(absl::Duration timeout = kWait) {
    const absl::Time deadline = absl::Now() + timeout;
    MutexLock lock(&mu_);
    while (count_ > 0) {
      if (!cv_.WaitWithDeadline(deadline)) return count_ <= 0;
    }
    return true;
  }

 private:
  Mutex mu_;
  CondVar cv_{&mu_};
  int count_ ABSL_GUARDED_BY(mu_);
};

// The result of one write, filled by its callback.
class Outcome {
 public:
  WriteDone Callback(std::shared_ptr<Outcome> self) {
    return [self](absl::StatusOr<int64_t> result) {
      MutexLock lock(&self->mu_);
      self->result_ = std::move(result);
      self->done_ = true;
      self->cv_.SignalAll();
    };
  }
  // Waits for the result; call once.
  absl::StatusOr<int64_t> Wait() {
    const absl::Time deadline = absl::Now() + kWait;
    MutexLock lock(&mu_);
    while (!done_) {
      if (!cv_.WaitWithDeadline(deadline) && !done_) {
        return absl::DeadlineExceededError("the write's callback never ran");
      }
    }
    // Moved, not copied: a copy would share the status's reference-counted
    // payload with the callback's thread, and Debian's Abseil counts
    // references in code ThreadSanitizer does not see.
    return std::move(result_);
  }

 private:
  Mutex mu_;
  CondVar cv_{&mu_};
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  absl::StatusOr<int64_t> result_ ABSL_GUARDED_BY(mu_) = 0;
};

// Any write: the directory's, or an append. An append's event carries the
// number the test expects the store to give it; the write goes to the store
// with sequence 0, as the store wants it, and its callback checks the
// number it got.
using Write = std::variant<DirectoryWrite, AppendEvent>;

// Appends `event`, which carries the number the test expects it to get, as
// the store wants it (sequence 0); `done` runs once the number is checked.
void AppendChecked(Store& store, std::shared_ptr<Event> event, WriteDone done) {
  if (event == nullptr) {
    store.Append(AppendEvent{nullptr}, std::move(done));
    return;
  }
  const uint64_t want = std::exchange(event->sequence, 0);
  store.Append(AppendEvent{event}, [event, want, done = std::move(done)](
                                       absl::StatusOr<int64_t> result) mutable {
    EXPECT_EQ(event->sequence, result.ok() ? want : 0) << event->text;
    done(std::move(result));
  });
}

std::shared_ptr<Outcome> SubmitWrite(Store& store, Write write) {
  auto outcome = std::make_shared<Outcome>();
  if (auto* append = std::get_if<AppendEvent>(&write)) {
    AppendChecked(store, std::move(append->event), outcome->Callback(outcome));
  } else {
    store.Submit(std::get<DirectoryWrite>(std::move(write)),
                 outcome->Callback(outcome));
  }
  return outcome;
}

absl::StatusOr<int64_t> Commit(Store& store, Write write) {
  return SubmitWrite(store, std::move(write))->Wait();
}

// Holds the writer thread inside a callback until released, so that what is
// submitted meanwhile queues up and is committed in as few batches as
// max_batch allows.
class WriterGate {
 public:
  explicit WriterGate(Store& store) {
    std::shared_ptr<Latch> entered = entered_;
    std::shared_ptr<Latch> release = release_;
    store.Submit(RevokeToken{"gate", absl::Now() + absl::Hours(1)},
                 [entered, release](absl::StatusOr<int64_t>) {
                   entered->CountDown();
                   release->Wait();
                 });
    EXPECT_TRUE(entered_->Wait());
  }
  ~WriterGate() { Release(); }
  void Release() { release_->CountDown(); }

 private:
  std::shared_ptr<Latch> entered_ = std::make_shared<Latch>(1);
  std::shared_ptr<Latch> release_ = std::make_shared<Latch>(1);
};

// ---- Data ----

absl::Time T(int seconds) {
  return absl::FromUnixSeconds(1700000000) + absl::Seconds(seconds);
}

std::string Uuid(int n) {
  return absl::StrFormat("00000000-0000-4000-8000-%012d", n);
}

User MakeUser(int n, absl::string_view username) {
  User user;
  user.id = Uuid(1000 + n);
  user.username = std::string(username);
  user.display_name = absl::StrCat(username, " (display)");
  user.password_hash = absl::StrCat("$argon2id$", username);
  user.create_time = T(n);
  user.update_time = T(n);
  return user;
}

Room MakeRoom(int n, absl::string_view name,
              Visibility visibility = Visibility::kPublic,
              absl::string_view owner_id = "") {
  Room room;
  room.id = Uuid(2000 + n);
  room.name = std::string(name);
  room.description = absl::StrCat("about ", name);
  room.visibility = visibility;
  room.owner_id = std::string(owner_id);
  room.create_time = T(n);
  room.update_time = T(n);
  return room;
}

Member MakeMember(absl::string_view room_id, absl::string_view user_id,
                  absl::string_view role, absl::Time join_time) {
  Member member;
  member.room_id = std::string(room_id);
  member.user_id = std::string(user_id);
  member.role = std::string(role);
  member.join_time = join_time;
  return member;
}

std::atomic<int> next_event_id{0};

std::shared_ptr<Event> NewEvent(EventKind kind, absl::string_view log,
                                uint64_t sequence) {
  auto event = std::make_shared<Event>();
  event->kind = kind;
  event->log = std::string(log);
  event->sequence = sequence;
  event->id = Uuid(100000 + ++next_event_id);
  event->time = T(static_cast<int>(sequence));
  if (log == kLobby) {
    event->room_id = kLobby;
    event->room = "lobby";
  }
  return event;
}

std::shared_ptr<Event> Message(absl::string_view log, uint64_t sequence,
                               absl::string_view sender,
                               absl::string_view text) {
  auto event = NewEvent(EventKind::kMessage, log, sequence);
  event->sender = std::string(sender);
  event->sender_id = absl::StrCat("id-of-", sender);
  event->text = std::string(text);
  return event;
}

std::shared_ptr<Event> EditOf(const Event& target, uint64_t sequence,
                              absl::string_view text) {
  auto event = NewEvent(EventKind::kEdit, target.log, sequence);
  event->sender = target.sender;
  event->target_id = target.id;
  event->target_sequence = target.sequence;
  event->text = std::string(text);
  return event;
}

std::shared_ptr<Event> DeletionOf(const Event& target, uint64_t sequence) {
  auto event = NewEvent(EventKind::kDelete, target.log, sequence);
  event->target_id = target.id;
  event->target_sequence = target.sequence;
  return event;
}

std::shared_ptr<Event> PurgeThrough(absl::string_view log, uint64_t sequence,
                                    uint64_t through) {
  auto event = NewEvent(EventKind::kPurge, log, sequence);
  event->purge_through = through;
  return event;
}

void ExpectSameEvent(const Event& got, const Event& want) {
  EXPECT_EQ(got.kind, want.kind);
  EXPECT_EQ(got.log, want.log);
  EXPECT_EQ(got.room_id, want.room_id);
  EXPECT_EQ(got.room, want.room);
  EXPECT_EQ(got.sequence, want.sequence);
  EXPECT_EQ(got.id, want.id);
  EXPECT_EQ(got.sender, want.sender);
  EXPECT_EQ(got.sender_id, want.sender_id);
  EXPECT_EQ(got.recipient_id, want.recipient_id);
  EXPECT_EQ(got.recipient, want.recipient);
  EXPECT_EQ(got.text, want.text);
  EXPECT_EQ(got.time, want.time);
  EXPECT_EQ(got.target_id, want.target_id);
  EXPECT_EQ(got.target_sequence, want.target_sequence);
  EXPECT_EQ(got.purge_through, want.purge_through);
  EXPECT_EQ(got.update_time, want.update_time);
  EXPECT_EQ(got.deleted, want.deleted);
}

std::vector<uint64_t> Sequences(const std::vector<EventPtr>& events) {
  std::vector<uint64_t> out;
  for (const EventPtr& e : events) out.push_back(e->sequence);
  return out;
}

void ExpectError(const absl::StatusOr<int64_t>& result, absl::StatusCode code,
                 absl::string_view reason, absl::string_view field = "") {
  EXPECT_EQ(result.status().code(), code) << result.status();
  EXPECT_EQ(ErrorReason(result.status()), reason) << result.status();
  EXPECT_EQ(ErrorField(result.status()), field) << result.status();
}

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

TEST(InboxLogTest, IsTheUserIdAfterDm) {
  EXPECT_EQ(model::InboxLog("abc"), "dm:abc");
}

TEST_F(SqliteStoreTest, OpenCreatesTheLobby) {
  absl::StatusOr<Room> lobby = store_->GetRoom(model::kLobbyId);
  ASSERT_TRUE(lobby.ok()) << lobby.status();
  EXPECT_EQ(lobby->name, model::kLobbyName);
  EXPECT_EQ(lobby->visibility, Visibility::kPublic);
  EXPECT_EQ(lobby->owner_id, "");
  EXPECT_EQ(lobby->password_hash, "");
  EXPECT_GT(lobby->create_time, T(0) - absl::Hours(24 * 365));
  absl::StatusOr<Room> by_name = store_->GetRoomByName("lobby");
  ASSERT_TRUE(by_name.ok()) << by_name.status();
  EXPECT_EQ(by_name->id, model::kLobbyId);
  EXPECT_EQ(*store_->LastSequence(model::kLobbyId), 0u);
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

// ---- Users ----

TEST_F(SqliteStoreTest, UsersAreCreatedReadReplacedAndDeleted) {
  User alice = MakeUser(1, "alice");
  alice.tokens_valid_after = T(50);
  MustDo(PutUser{alice});
  User bob = MakeUser(2, "bob");  // tokens_valid_after: InfinitePast
  MustDo(PutUser{bob});

  absl::StatusOr<User> got = store_->GetUser(alice.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->id, alice.id);
  EXPECT_EQ(got->username, "alice");
  EXPECT_EQ(got->display_name, alice.display_name);
  EXPECT_EQ(got->password_hash, alice.password_hash);
  EXPECT_EQ(got->create_time, alice.create_time);
  EXPECT_EQ(got->update_time, alice.update_time);
  EXPECT_EQ(got->tokens_valid_after, T(50));
  EXPECT_EQ(store_->GetUserByName("bob")->tokens_valid_after,
            absl::InfinitePast());
  EXPECT_EQ(store_->GetUserByName("BOB")->id, bob.id);  // case-insensitive

  alice.username = "alicia";
  alice.display_name = "Alicia";
  alice.update_time = T(60);
  alice.create_time = T(999);  // a replace keeps the creation time
  MustDo(PutUser{alice, /*create=*/false});
  got = store_->GetUserByName("alicia");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->display_name, "Alicia");
  EXPECT_EQ(got->update_time, T(60));
  EXPECT_EQ(got->create_time, T(1));
  EXPECT_EQ(store_->GetUserByName("alice").status().code(),
            absl::StatusCode::kNotFound);

  MustDo(DeleteUser{alice.id});
  absl::Status missing = store_->GetUser(alice.id).status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ErrorReason(missing), "USER_NOT_FOUND");
}

TEST_F(SqliteStoreTest, UsernamesAreUniqueIgnoringCase) {
  MustDo(PutUser{MakeUser(1, "alice")});
  ExpectError(Do(PutUser{MakeUser(2, "alice")}),
              absl::StatusCode::kAlreadyExists, "USERNAME_TAKEN", "username");
  ExpectError(Do(PutUser{MakeUser(3, "ALICE")}),
              absl::StatusCode::kAlreadyExists, "USERNAME_TAKEN", "username");
  // Renaming onto a taken name.
  User bob = MakeUser(4, "bob");
  MustDo(PutUser{bob});
  bob.username = "Alice";
  ExpectError(Do(PutUser{bob, /*create=*/false}),
              absl::StatusCode::kAlreadyExists, "USERNAME_TAKEN", "username");
  EXPECT_EQ(store_->GetUser(bob.id)->username, "bob");
  // The same id twice.
  User again = MakeUser(1, "other");
  EXPECT_EQ(Do(PutUser{again}).status().code(),
            absl::StatusCode::kAlreadyExists);
}

TEST_F(SqliteStoreTest, ReplacingOrDeletingAMissingUserIsNotFound) {
  ExpectError(Do(PutUser{MakeUser(1, "ghost"), /*create=*/false}),
              absl::StatusCode::kNotFound, "USER_NOT_FOUND");
  ExpectError(Do(DeleteUser{Uuid(1)}), absl::StatusCode::kNotFound,
              "USER_NOT_FOUND");
  EXPECT_EQ(ErrorReason(store_->GetUserByName("ghost").status()),
            "USER_NOT_FOUND");
}

TEST_F(SqliteStoreTest, ListUsersPagesByUsername) {
  int n = 0;
  for (const char* name : {"dave", "alice", "Carol", "bob"}) {
    MustDo(PutUser{MakeUser(++n, name)});
  }
  auto names = [](const std::vector<User>& users) {
    std::vector<std::string> out;
    for (const User& u : users) out.push_back(u.username);
    return out;
  };
  EXPECT_THAT(names(*store_->ListUsers("", 3)),
              ElementsAre("alice", "bob", "Carol"));
  EXPECT_THAT(names(*store_->ListUsers("bob", 3)),
              ElementsAre("Carol", "dave"));
  EXPECT_THAT(names(*store_->ListUsers("dave", 3)), IsEmpty());
  EXPECT_THAT(names(*store_->ListUsers("", 0)), IsEmpty());
}

// ---- Rooms and members ----

TEST_F(SqliteStoreTest, RoomsAreCreatedReadReplacedAndDeleted) {
  User owner = MakeUser(1, "owner");
  MustDo(PutUser{owner});
  Room room = MakeRoom(1, "general", Visibility::kPrivate, owner.id);
  room.password_hash = "$argon2id$secret";
  MustDo(PutRoom{room});

  absl::StatusOr<Room> got = store_->GetRoom(room.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->name, "general");
  EXPECT_EQ(got->description, "about general");
  EXPECT_EQ(got->visibility, Visibility::kPrivate);
  EXPECT_EQ(got->password_hash, "$argon2id$secret");
  EXPECT_EQ(got->owner_id, owner.id);
  EXPECT_EQ(got->create_time, T(1));
  EXPECT_EQ(store_->GetRoomByName("General")->id, room.id);

  // The owner became a member with role "owner".
  absl::StatusOr<std::optional<Member>> member =
      store_->GetMember(room.id, owner.id);
  ASSERT_TRUE(member.ok()) << member.status();
  ASSERT_TRUE(member->has_value());
  EXPECT_EQ((*member)->role, "owner");
  EXPECT_EQ((*member)->join_time, T(1));
  EXPECT_EQ((*member)->username, "owner");

  room.name = "renamed";
  room.visibility = Visibility::kHidden;
  room.password_hash = "";
  room.update_time = T(5);
  MustDo(PutRoom{room, /*create=*/false});
  got = store_->GetRoom(room.id);
  EXPECT_EQ(got->name, "renamed");
  EXPECT_EQ(got->visibility, Visibility::kHidden);
  EXPECT_EQ(got->password_hash, "");
  EXPECT_EQ(got->update_time, T(5));
  EXPECT_EQ(ErrorReason(store_->GetRoomByName("general").status()),
            "ROOM_NOT_FOUND");

  MustAppend(Message(room.id, 1, "owner", "hi"));
  MustDo(DeleteRoom{room.id});
  EXPECT_EQ(ErrorReason(store_->GetRoom(room.id).status()), "ROOM_NOT_FOUND");
  EXPECT_EQ(*store_->CountMembers(room.id), 0u);
  EXPECT_EQ(*store_->LastSequence(room.id), 0u);
  EXPECT_THAT(ReadAll(room.id), IsEmpty());
  // Its log is gone and stays closed.
  ExpectError(Append(Message(room.id, 2, "owner", "late")),
              absl::StatusCode::kNotFound, "ROOM_NOT_FOUND");
}

TEST_F(SqliteStoreTest, RoomWritesReportTheirErrors) {
  MustDo(PutRoom{MakeRoom(1, "general")});
  ExpectError(Do(PutRoom{MakeRoom(2, "general")}),
              absl::StatusCode::kAlreadyExists, "ROOM_NAME_TAKEN", "name");
  ExpectError(Do(PutRoom{MakeRoom(3, "LOBBY")}),
              absl::StatusCode::kAlreadyExists, "ROOM_NAME_TAKEN", "name");
  Room renamed = MakeRoom(1, "lobby");
  ExpectError(Do(PutRoom{renamed, /*create=*/false}),
              absl::StatusCode::kAlreadyExists, "ROOM_NAME_TAKEN", "name");
  ExpectError(Do(PutRoom{MakeRoom(4, "nowhere"), /*create=*/false}),
              absl::StatusCode::kNotFound, "ROOM_NOT_FOUND");
  ExpectError(Do(DeleteRoom{Uuid(4)}), absl::StatusCode::kNotFound,
              "ROOM_NOT_FOUND");
  ExpectError(Do(PutRoom{MakeRoom(5, "orphan", Visibility::kPublic, Uuid(9))}),
              absl::StatusCode::kNotFound, "USER_NOT_FOUND");
  EXPECT_EQ(store_->GetRoomByName("orphan").status().code(),
            absl::StatusCode::kNotFound);
  Room bad = MakeRoom(6, "bad");
  bad.visibility = static_cast<Visibility>(7);
  EXPECT_EQ(Do(PutRoom{bad}).status().code(),
            absl::StatusCode::kInvalidArgument);
  ExpectError(Do(DeleteRoom{kLobby}), absl::StatusCode::kFailedPrecondition,
              "LOBBY_PROTECTED");
  EXPECT_TRUE(store_->GetRoom(model::kLobbyId).ok());
}

TEST_F(SqliteStoreTest, MembersArePutListedCountedAndDeleted) {
  User zed = MakeUser(1, "zed");
  User amy = MakeUser(2, "amy");
  MustDo(PutUser{zed});
  MustDo(PutUser{amy});
  Room room = MakeRoom(1, "club");
  MustDo(PutRoom{room});

  MustDo(PutMember{MakeMember(room.id, zed.id, "member", T(10))});
  MustDo(PutMember{MakeMember(room.id, amy.id, "member", T(11))});
  MustDo(PutMember{MakeMember(room.id, zed.id, "owner", T(12))});  // replaces

  absl::StatusOr<std::vector<Member>> members = store_->ListMembers(room.id);
  ASSERT_TRUE(members.ok()) << members.status();
  ASSERT_EQ(members->size(), 2u);
  EXPECT_EQ((*members)[0].username, "amy");  // by username
  EXPECT_EQ((*members)[0].display_name, amy.display_name);
  EXPECT_EQ((*members)[0].role, "member");
  EXPECT_EQ((*members)[0].join_time, T(11));
  EXPECT_EQ((*members)[1].user_id, zed.id);
  EXPECT_EQ((*members)[1].role, "owner");
  EXPECT_EQ((*members)[1].join_time, T(12));
  EXPECT_EQ((*members)[1].room_id, room.id);
  EXPECT_EQ(*store_->CountMembers(room.id), 2u);

  MustDo(DeleteMember{room.id, amy.id});
  EXPECT_FALSE(store_->GetMember(room.id, amy.id)->has_value());
  EXPECT_EQ(*store_->CountMembers(room.id), 1u);
  ExpectError(Do(DeleteMember{room.id, amy.id}), absl::StatusCode::kNotFound,
              "MEMBER_NOT_FOUND");
  ExpectError(Do(PutMember{MakeMember(Uuid(7), amy.id, "member", T(1))}),
              absl::StatusCode::kNotFound, "ROOM_NOT_FOUND");
  ExpectError(Do(PutMember{MakeMember(room.id, Uuid(7), "member", T(1))}),
              absl::StatusCode::kNotFound, "USER_NOT_FOUND");
  EXPECT_THAT(*store_->ListMembers(Uuid(7)), IsEmpty());
}

TEST_F(SqliteStoreTest, DeletingAUserEndsTheirMembershipsAndDropsTheirInbox) {
  User amy = MakeUser(1, "amy");
  User bob = MakeUser(2, "bob");
  MustDo(PutUser{amy});
  MustDo(PutUser{bob});
  Room room = MakeRoom(1, "amys", Visibility::kPublic, amy.id);
  MustDo(PutRoom{room});
  MustDo(PutMember{MakeMember(room.id, bob.id, "member", T(3))});
  MustAppend(Message(model::InboxLog(amy.id), 1, "bob", "psst"));

  MustDo(DeleteUser{amy.id});
  EXPECT_EQ(*store_->CountMembers(room.id), 1u);
  EXPECT_EQ(store_->GetRoom(room.id)->owner_id, amy.id);  // the room stays
  EXPECT_EQ(*store_->LastSequence(model::InboxLog(amy.id)), 0u);
  ExpectError(Append(Message(model::InboxLog(amy.id), 2, "bob", "hello?")),
              absl::StatusCode::kNotFound, "USER_NOT_FOUND");
}

TEST_F(SqliteStoreTest, ListRoomsShowsHiddenRoomsOnlyToTheirMembers) {
  User amy = MakeUser(1, "amy");
  User bob = MakeUser(2, "bob");
  MustDo(PutUser{amy});
  MustDo(PutUser{bob});
  MustDo(PutRoom{MakeRoom(1, "public", Visibility::kPublic)});
  MustDo(PutRoom{MakeRoom(2, "private", Visibility::kPrivate)});
  MustDo(PutRoom{MakeRoom(3, "hidden-amy", Visibility::kHidden, amy.id)});
  MustDo(PutRoom{MakeRoom(4, "hidden-bob", Visibility::kHidden, bob.id)});
  Room shared = MakeRoom(5, "hidden-both", Visibility::kHidden, amy.id);
  MustDo(PutRoom{shared});
  MustDo(PutMember{MakeMember(shared.id, bob.id, "member", T(1))});

  auto names = [](const absl::StatusOr<std::vector<Room>>& rooms) {
    std::vector<std::string> out;
    EXPECT_TRUE(rooms.ok()) << rooms.status();
    if (rooms.ok()) {
      for (const Room& r : *rooms) out.push_back(r.name);
    }
    return out;
  };
  EXPECT_THAT(names(store_->ListRooms(amy.id, "", 100)),
              ElementsAre("hidden-amy", "hidden-both", "private", "public"));
  EXPECT_THAT(names(store_->ListRooms(bob.id, "", 100)),
              ElementsAre("hidden-bob", "hidden-both", "private", "public"));
  EXPECT_THAT(names(store_->ListRooms("", "", 100)),
              ElementsAre("private", "public"));  // never the lobby
  EXPECT_THAT(names(store_->ListRooms(amy.id, "hidden-both", 2)),
              ElementsAre("private", "public"));
  EXPECT_THAT(names(store_->ListRooms(amy.id, "public", 2)), IsEmpty());
}

// ---- Revoked tokens ----

TEST_F(SqliteStoreTest, RevokedTokensListOnlyUnexpiredAndArePrunedAtOpen) {
  MustDo(RevokeToken{"live", absl::Now() + absl::Hours(1)});
  MustDo(RevokeToken{"expired", absl::Now() - absl::Seconds(1)});
  MustDo(RevokeToken{"live", absl::Now() - absl::Hours(1)});  // keeps later
  EXPECT_THAT(*store_->ListRevokedTokens(), ElementsAre("live"));
  EXPECT_EQ(QueryInt(Path(), "SELECT count(*) FROM revoked_tokens"), 2);
  Reopen();
  EXPECT_THAT(*store_->ListRevokedTokens(), ElementsAre("live"));
  EXPECT_EQ(QueryInt(Path(), "SELECT count(*) FROM revoked_tokens"), 1);
}

// ---- Logs ----

TEST_F(SqliteStoreTest, EventsOfEveryKindReadBackAsAppended) {
  std::vector<EventPtr> appended;
  auto join = NewEvent(EventKind::kJoin, kLobby, 1);
  join->sender = "alice";
  auto message = Message(kLobby, 2, "alice", "hello, world");
  auto added = NewEvent(EventKind::kMemberAdded, kLobby, 3);
  added->sender_id = Uuid(5);
  added->target_id = Uuid(5);
  auto removed = NewEvent(EventKind::kMemberRemoved, kLobby, 4);
  removed->target_id = Uuid(5);
  auto leave = NewEvent(EventKind::kLeave, kLobby, 5);
  leave->sender = "alice";
  leave->id = "";  // an event without an id is kept too
  auto unicode = Message(kLobby, 6, "bob", "héllo \xF0\x9F\x91\x8B");
  for (const auto& e : {join, message, added, removed, leave, unicode}) {
    absl::StatusOr<int64_t> result = Append(e);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(*result, 0);
    appended.push_back(e);
  }
  std::vector<EventPtr> events = ReadAll(kLobby);
  ASSERT_EQ(events.size(), appended.size());
  for (size_t i = 0; i < events.size(); ++i) {
    ExpectSameEvent(*events[i], *appended[i]);
  }
  EXPECT_EQ(*store_->LastSequence(kLobby), 6u);
  EXPECT_THAT(Sequences(*store_->ReadAfter(kLobby, 2, 2)), ElementsAre(3, 4));
  EXPECT_THAT(*store_->ReadAfter(kLobby, 6, 10), IsEmpty());
  EXPECT_THAT(*store_->ReadAfter("no-such-log", 0, 10), IsEmpty());
  EXPECT_EQ(*store_->LastSequence("no-such-log"), 0u);
}

TEST_F(SqliteStoreTest, TimesKeepMicroseconds) {
  auto message = Message(kLobby, 1, "alice", "precise");
  message->time = absl::FromUnixMicros(1700000000123456);
  MustAppend(message);
  EXPECT_EQ(ReadAll(kLobby)[0]->time, message->time);
}

TEST_F(SqliteStoreTest, AppendRefusesWhatIsNotALogEntryAndTakesNoNumber) {
  auto first = Message(kLobby, 1, "alice", "first");
  MustAppend(first);

  EXPECT_EQ(Do(AppendEvent{nullptr}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Append(NewEvent(EventKind::kGap, kLobby, 0)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Append(NewEvent(EventKind::kTyping, kLobby, 0)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Append(Message("", 0, "a", "no log")).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto same_id = Message(kLobby, 2, "alice", "same id");
  same_id->id = first->id;
  ExpectError(Append(same_id), absl::StatusCode::kAlreadyExists,
              "EVENT_EXISTS", "id");
  ExpectError(Append(Message(Uuid(77), 1, "alice", "nowhere")),
              absl::StatusCode::kNotFound, "ROOM_NOT_FOUND");
  ExpectError(Append(Message(model::InboxLog(Uuid(77)), 1, "alice", "nobody")),
              absl::StatusCode::kNotFound, "USER_NOT_FOUND");

  EXPECT_EQ(*store_->LastSequence(kLobby), 1u);
  EXPECT_THAT(Sequences(ReadAll(kLobby)), ElementsAre(1));
  MustAppend(Message(kLobby, 2, "alice", "next"));  // no number was used
}

TEST_F(SqliteStoreTest, AnEventThatComesNumberedIsRefused) {
  auto numbered = Message(kLobby, 0, "alice", "numbered");
  numbered->sequence = 7;
  auto outcome = std::make_shared<Outcome>();
  store_->Append(AppendEvent{numbered}, outcome->Callback(outcome));
  EXPECT_EQ(outcome->Wait().status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*store_->LastSequence(kLobby), 0u);
  MustAppend(Message(kLobby, 1, "alice", "first"));
}

TEST_F(SqliteStoreTest, DirectMessagesGoToTheRecipientsInbox) {
  User amy = MakeUser(1, "amy");
  MustDo(PutUser{amy});
  auto dm = Message(model::InboxLog(amy.id), 1, "bob", "for amy");
  dm->recipient_id = amy.id;
  dm->recipient = "amy";
  MustAppend(dm);
  std::vector<EventPtr> inbox = ReadAll(model::InboxLog(amy.id));
  ASSERT_EQ(inbox.size(), 1u);
  ExpectSameEvent(*inbox[0], *dm);
  EXPECT_EQ(store_->GetMessage(model::InboxLog(amy.id), dm->id).value()->text,
            "for amy");
  EXPECT_EQ(*store_->LastSequence(kLobby), 0u);
}

TEST_F(SqliteStoreTest, GetMessageFindsOnlyMessagesOfTheLog) {
  auto join = NewEvent(EventKind::kJoin, kLobby, 1);
  auto message = Message(kLobby, 2, "alice", "hi");
  MustAppend(join);
  MustAppend(message);
  absl::StatusOr<EventPtr> got = store_->GetMessage(kLobby, message->id);
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectSameEvent(**got, *message);
  const std::vector<std::pair<std::string, std::string>> missing = {
      {kLobby, join->id}, {kLobby, Uuid(999)}, {Uuid(5), message->id}};
  for (const auto& [log, id] : missing) {
    absl::Status status = store_->GetMessage(log, id).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(ErrorReason(status), "MESSAGE_NOT_FOUND");
  }
}

TEST_F(SqliteStoreTest, EditsKeepTheEarlierVersions) {
  auto message = Message(kLobby, 1, "alice", "helo");
  MustAppend(message);
  auto edit1 = EditOf(*message, 2, "hello");
  auto edit2 = EditOf(*message, 3, "hello!");
  absl::StatusOr<int64_t> result = Append(edit1);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(*result, 0);
  MustAppend(edit2);

  absl::StatusOr<EventPtr> got = store_->GetMessage(kLobby, message->id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)->text, "hello!");
  EXPECT_EQ((*got)->update_time, edit2->time);
  EXPECT_FALSE((*got)->deleted);
  ASSERT_EQ((*got)->previous_versions.size(), 2u);
  EXPECT_EQ((*got)->previous_versions[0].text, "helo");
  EXPECT_EQ((*got)->previous_versions[0].time, message->time);
  EXPECT_EQ((*got)->previous_versions[1].text, "hello");
  EXPECT_EQ((*got)->previous_versions[1].time, edit1->time);

  // The edits are in the log too; history lists the message once.
  std::vector<EventPtr> events = ReadAll(kLobby);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0]->text, "hello!");
  EXPECT_EQ(events[0]->previous_versions.size(), 2u);
  ExpectSameEvent(*events[1], *edit1);
  ExpectSameEvent(*events[2], *edit2);
  PageResult page = List(kLobby, Page{});
  ASSERT_EQ(page.messages.size(), 1u);
  EXPECT_EQ(page.messages[0]->text, "hello!");
  EXPECT_EQ(page.messages[0]->previous_versions.size(), 2u);
}

TEST_F(SqliteStoreTest, EditOrDeleteWithoutATargetAppendsNothing) {
  auto message = Message(kLobby, 1, "alice", "hi");
  auto join = NewEvent(EventKind::kJoin, kLobby, 2);
  MustAppend(message);
  MustAppend(join);
  Event missing = *message;
  missing.id = Uuid(4242);
  ExpectError(Append(EditOf(missing, 3, "x")), absl::StatusCode::kNotFound,
              "MESSAGE_NOT_FOUND");
  ExpectError(Append(DeletionOf(missing, 3)), absl::StatusCode::kNotFound,
              "MESSAGE_NOT_FOUND");
  ExpectError(Append(EditOf(*join, 3, "x")), absl::StatusCode::kNotFound,
              "MESSAGE_NOT_FOUND");
  // A message of another log.
  Room other = MakeRoom(1, "other");
  MustDo(PutRoom{other});
  auto elsewhere = EditOf(*message, 1, "x");
  elsewhere->log = other.id;
  ExpectError(Append(elsewhere), absl::StatusCode::kNotFound,
              "MESSAGE_NOT_FOUND");
  EXPECT_EQ(*store_->LastSequence(kLobby), 2u);
  EXPECT_EQ(*store_->LastSequence(other.id), 0u);
  EXPECT_EQ(store_->GetMessage(kLobby, message->id).value()->text, "hi");
}

TEST_F(SqliteStoreTest, DeleteLeavesATombstoneAndForgetsEveryText) {
  auto message = Message(kLobby, 1, "alice", "secret");
  auto other = Message(kLobby, 2, "bob", "stays");
  MustAppend(message);
  MustAppend(other);
  MustAppend(EditOf(*message, 3, "secret v2"));
  auto deletion = DeletionOf(*message, 4);
  absl::StatusOr<int64_t> result = Append(deletion);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(*result, 0);

  absl::StatusOr<EventPtr> got = store_->GetMessage(kLobby, message->id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE((*got)->deleted);
  EXPECT_EQ((*got)->text, "");
  EXPECT_THAT((*got)->previous_versions, IsEmpty());
  std::vector<EventPtr> events = ReadAll(kLobby);
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[2]->kind, EventKind::kEdit);
  EXPECT_EQ(events[2]->text, "");  // the edit's text is gone too
  ExpectSameEvent(*events[3], *deletion);
  EXPECT_EQ(QueryInt(Path(), "SELECT count(*) FROM message_versions"), 0);
  EXPECT_EQ(QueryInt(Path(), "SELECT count(*) FROM events WHERE text LIKE "
                             "'%secret%'"),
            0);

  // The tombstone is listed; it cannot be edited; deleting again is fine.
  PageResult page = List(kLobby, Page{});
  ASSERT_EQ(page.messages.size(), 2u);
  EXPECT_TRUE(page.messages[0]->deleted);
  EXPECT_FALSE(page.messages[1]->deleted);
  ExpectError(Append(EditOf(*message, 5, "resurrected")),
              absl::StatusCode::kNotFound, "MESSAGE_NOT_FOUND");
  MustAppend(DeletionOf(*message, 5));
  EXPECT_EQ(store_->GetMessage(kLobby, other->id).value()->text, "stays");
}

TEST_F(SqliteStoreTest, PurgeRemovesMessagesAndKeepsTheNumbering) {
  std::vector<std::shared_ptr<Event>> messages;
  for (uint64_t seq = 1; seq <= 5; ++seq) {
    messages.push_back(Message(kLobby, seq, "alice", absl::StrCat("m", seq)));
    MustAppend(messages.back());
  }
  MustAppend(EditOf(*messages[1], 6, "m2 edited"));
  MustAppend(NewEvent(EventKind::kJoin, kLobby, 7));
  MustAppend(Message(kLobby, 8, "bob", "after"));
  absl::StatusOr<int64_t> purged = Append(PurgeThrough(kLobby, 9, 5));
  ASSERT_TRUE(purged.ok()) << purged.status();
  EXPECT_EQ(*purged, 5);

  EXPECT_EQ(*store_->LastSequence(kLobby), 9u);
  std::vector<EventPtr> events = ReadAll(kLobby);
  EXPECT_THAT(Sequences(events), ElementsAre(6, 7, 8, 9));
  EXPECT_EQ(events[0]->text, "");  // the edit of a purged message
  EXPECT_EQ(events[3]->kind, EventKind::kPurge);
  EXPECT_EQ(events[3]->purge_through, 5u);
  EXPECT_EQ(QueryInt(Path(), "SELECT count(*) FROM message_versions"), 0);
  PageResult page = List(kLobby, Page{});
  EXPECT_THAT(Sequences(page.messages), ElementsAre(8));
  EXPECT_FALSE(page.has_older);
  EXPECT_EQ(store_->GetMessage(kLobby, messages[0]->id).status().code(),
            absl::StatusCode::kNotFound);

  // Purging again counts only what is left; numbers are never reused.
  EXPECT_EQ(*Append(PurgeThrough(kLobby, 10, 9)), 1);
  EXPECT_EQ(*Append(PurgeThrough(kLobby, 11, 10)), 0);
  MustAppend(Message(kLobby, 12, "bob", "new"));
  Reopen();
  EXPECT_EQ(*store_->LastSequence(kLobby), 12u);
}

TEST_F(SqliteStoreTest, ListMessagesPagesBothWays) {
  // Messages at 2-6 and 8-12; joins at 1 and 7, a leave at 13.
  uint64_t seq = 0;
  MustAppend(NewEvent(EventKind::kJoin, kLobby, ++seq));
  for (int i = 0; i < 5; ++i) MustAppend(Message(kLobby, ++seq, "a", "m"));
  MustAppend(NewEvent(EventKind::kJoin, kLobby, ++seq));
  for (int i = 0; i < 5; ++i) MustAppend(Message(kLobby, ++seq, "b", "m"));
  MustAppend(NewEvent(EventKind::kLeave, kLobby, ++seq));

  struct Case {
    Page page;
    std::vector<uint64_t> sequences;
    bool has_older;
    bool has_newer;
  };
  const Case cases[] = {
      {{3, 0, 0}, {10, 11, 12}, true, false},   // most recent
      {{100, 0, 0}, {2, 3, 4, 5, 6, 8, 9, 10, 11, 12}, false, false},
      {{3, 10, 0}, {6, 8, 9}, true, true},      // before
      {{3, 3, 0}, {2}, false, true},
      {{3, 2, 0}, {}, false, true},
      {{3, 0, 9}, {10, 11, 12}, true, false},   // after
      {{3, 0, 1}, {2, 3, 4}, false, true},
      {{3, 0, 12}, {}, true, false},
      {{3, 0, 13}, {}, true, false},
      {{3, 13, 0}, {10, 11, 12}, true, false},
      {{10, 9, 3}, {4, 5, 6, 8}, true, true},   // both: a window
      {{2, 9, 3}, {4, 5}, true, true},
      {{0, 0, 0}, {}, true, false},              // limit 0
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrCat("limit ", c.page.limit, " before ",
                              c.page.before, " after ", c.page.after));
    PageResult result = List(kLobby, c.page);
    EXPECT_EQ(Sequences(result.messages), c.sequences);
    EXPECT_EQ(result.has_older, c.has_older);
    EXPECT_EQ(result.has_newer, c.has_newer);
  }
  PageResult empty = List(Uuid(3), Page{});
  EXPECT_THAT(empty.messages, IsEmpty());
  EXPECT_FALSE(empty.has_older);
  EXPECT_FALSE(empty.has_newer);
}

TEST_F(SqliteStoreTest, ListPostersInOrderOfFirstPost) {
  auto dave_joins = NewEvent(EventKind::kJoin, kLobby, 1);
  dave_joins->sender = "dave";
  MustAppend(dave_joins);
  MustAppend(Message(kLobby, 2, "bob", "1"));
  MustAppend(Message(kLobby, 3, "alice", "2"));
  MustAppend(Message(kLobby, 4, "bob", "3"));
  MustAppend(Message(kLobby, 5, "carol", "4"));
  MustAppend(Message(kLobby, 6, "alice", "5"));
  EXPECT_THAT(*store_->ListPosters(kLobby),
              ElementsAre("bob", "alice", "carol"));
  EXPECT_THAT(*store_->ListPosters(Uuid(3)), IsEmpty());
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
  // And writing continues where it stopped.
  MustAppend(Message(room.id, 5, "amy", "back"));
}

// ---- Group commit ----

TEST_F(SqliteStoreTest, SameUsernameTwiceInOneBatchOneWins) {
  auto gate = std::make_unique<WriterGate>(*store_);
  auto first = SubmitWrite(*store_, PutUser{MakeUser(1, "dup")});
  auto second = SubmitWrite(*store_, PutUser{MakeUser(2, "DUP")});
  const StoreStats before = store_->stats();
  gate.reset();
  absl::StatusOr<int64_t> r1 = first->Wait();
  absl::StatusOr<int64_t> r2 = second->Wait();
  EXPECT_TRUE(r1.ok()) << r1.status();
  ExpectError(r2, absl::StatusCode::kAlreadyExists, "USERNAME_TAKEN",
              "username");
  const StoreStats after = store_->stats();
  EXPECT_EQ(after.transactions - before.transactions, 1u);
  EXPECT_EQ(after.writes - before.writes, 2u);
  EXPECT_EQ(store_->GetUserByName("dup")->id, Uuid(1001));
}

TEST_F(SqliteStoreTest, AFailingWriteDoesNotFailTheOthersOfItsBatch) {
  MustDo(PutUser{MakeUser(1, "taken")});
  auto gate = std::make_unique<WriterGate>(*store_);
  auto a = SubmitWrite(*store_, PutRoom{MakeRoom(1, "first")});
  auto b = SubmitWrite(*store_, PutUser{MakeUser(2, "taken")});
  auto c = SubmitWrite(*store_, AppendEvent{Message(kLobby, 1, "x", "y")});
  auto d = SubmitWrite(*store_, DeleteRoom{Uuid(99)});
  auto e = SubmitWrite(*store_, PutUser{MakeUser(3, "fresh")});
  gate.reset();
  EXPECT_TRUE(a->Wait().ok());
  EXPECT_EQ(b->Wait().status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(c->Wait().ok());
  EXPECT_EQ(d->Wait().status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(e->Wait().ok());
  EXPECT_TRUE(store_->GetRoomByName("first").ok());
  EXPECT_EQ(store_->GetUserByName("taken")->id, Uuid(1001));
  EXPECT_TRUE(store_->GetUserByName("fresh").ok());
  EXPECT_EQ(*store_->LastSequence(kLobby), 1u);
}

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

TEST_F(SqliteStoreTest, CallbacksMaySubmitAgain) {
  constexpr int kChain = 200;
  auto done = std::make_shared<Latch>(1);
  auto failures = std::make_shared<std::atomic<int>>(0);
  // Each callback submits the next write of the chain.
  struct Chain {
    static void Next(Store* store, int i, std::shared_ptr<Latch> done,
                     std::shared_ptr<std::atomic<int>> failures) {
      if (i == kChain) {
        done->CountDown();
        return;
      }
      store->Submit(
          RevokeToken{absl::StrCat("chain-", i), absl::Now() + absl::Hours(1)},
          [store, i, done, failures](absl::StatusOr<int64_t> result) {
            if (!result.ok()) ++*failures;
            Next(store, i + 1, done, failures);
          });
    }
  };
  Chain::Next(store_.get(), 0, done, failures);
  ASSERT_TRUE(done->Wait());
  EXPECT_EQ(failures->load(), 0);
  EXPECT_EQ(store_->ListRevokedTokens()->size(), static_cast<size_t>(kChain));
}

TEST_F(SqliteStoreTest, SubmitNeverWaitsForTheWriter) {
  // The submitter holds a lock that every callback takes: Submit must not
  // wait for anything the writer does.
  auto mu = std::make_shared<Mutex>();
  constexpr int kWrites = 50;
  auto done = std::make_shared<Latch>(kWrites);
  {
    MutexLock lock(mu.get());
    for (int i = 0; i < kWrites; ++i) {
      store_->Submit(
          RevokeToken{absl::StrCat("t", i), absl::Now() + absl::Hours(1)},
          [mu, done](absl::StatusOr<int64_t>) {
            MutexLock callback_lock(mu.get());
            done->CountDown();
          });
    }
  }
  EXPECT_TRUE(done->Wait());
}

TEST_F(SqliteStoreTest, CloseDrainsTheQueueAndRefusesLaterWrites) {
  constexpr int kWrites = 300;
  auto ok = std::make_shared<std::atomic<int>>(0);
  for (int i = 0; i < kWrites; ++i) {
    store_->Submit(PutUser{MakeUser(i, absl::StrCat("user", i))},
                   [ok](absl::StatusOr<int64_t> result) {
                     if (result.ok()) ++*ok;
                   });
  }
  store_->Close();
  EXPECT_EQ(ok->load(), kWrites);  // every callback ran before Close returned
  store_->Close();                 // idempotent

  bool called = false;
  store_->Submit(RevokeToken{"late", absl::Now() + absl::Hours(1)},
                 [&called](absl::StatusOr<int64_t> result) {
                   called = true;
                   EXPECT_EQ(result.status().code(),
                             absl::StatusCode::kUnavailable);
                   EXPECT_EQ(ErrorReason(result.status()), "SHUTTING_DOWN");
                 });
  EXPECT_TRUE(called);
  // Reads still work.
  EXPECT_EQ(store_->ListUsers("", 1000)->size(), static_cast<size_t>(kWrites));
  Reopen();
  EXPECT_EQ(store_->ListUsers("", 1000)->size(), static_cast<size_t>(kWrites));
  EXPECT_THAT(*store_->ListRevokedTokens(), IsEmpty());
}

TEST_F(SqliteStoreTest, CallbacksSubmittingDuringCloseAreRefusedNotLost) {
  // A chain of writes, each submitted by the previous one's callback, races
  // Close: the chain ends with exactly one SHUTTING_DOWN, and Close returns.
  struct State {
    Mutex mu;
    int ok ABSL_GUARDED_BY(mu) = 0;
    int refused ABSL_GUARDED_BY(mu) = 0;
  };
  auto state = std::make_shared<State>();
  struct Chain {
    static void Next(Store* store, int i, std::shared_ptr<State> state) {
      store->Submit(
          RevokeToken{absl::StrCat("c", i), absl::Now() + absl::Hours(1)},
          [store, i, state](absl::StatusOr<int64_t> result) {
            {
              MutexLock lock(&state->mu);
              if (result.ok()) {
                ++state->ok;
              } else {
                EXPECT_EQ(ErrorReason(result.status()), "SHUTTING_DOWN");
                ++state->refused;
                return;
              }
            }
            if (i < 1000000) Next(store, i + 1, state);
          });
    }
  };
  Chain::Next(store_.get(), 0, state);
  store_->Close();
  MutexLock lock(&state->mu);
  EXPECT_EQ(state->refused, 1);
  EXPECT_EQ(store_->ListRevokedTokens()->size(),
            static_cast<size_t>(state->ok));
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

TEST_F(SqliteStoreTest, ReadsRunWhileWriting) {
  constexpr uint64_t kMessages = 2000;
  auto written = std::make_shared<Latch>(1);
  std::atomic<bool> stop{false};
  std::atomic<int> reads{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&] {
      uint64_t seen = 0;
      while (!stop.load()) {
        absl::StatusOr<uint64_t> last = store_->LastSequence(kLobby);
        ASSERT_TRUE(last.ok()) << last.status();
        EXPECT_GE(*last, seen);  // never goes back
        seen = *last;
        absl::StatusOr<PageResult> page =
            store_->ListMessages(kLobby, Page{20, 0, 0});
        ASSERT_TRUE(page.ok()) << page.status();
        // A page is contiguous and at least as recent as `seen`.
        for (size_t i = 1; i < page->messages.size(); ++i) {
          EXPECT_EQ(page->messages[i]->sequence,
                    page->messages[i - 1]->sequence + 1);
        }
        if (!page->messages.empty()) {
          EXPECT_GE(page->messages.back()->sequence, seen);
        }
        absl::StatusOr<std::vector<EventPtr>> after =
            store_->ReadAfter(kLobby, seen > 5 ? seen - 5 : 0, 100);
        ASSERT_TRUE(after.ok()) << after.status();
        ++reads;
      }
    });
  }
  for (uint64_t seq = 1; seq <= kMessages; ++seq) {
    AppendChecked(*store_, Message(kLobby, seq, "w", "text"),
                  [seq, written](absl::StatusOr<int64_t> result) {
                    EXPECT_TRUE(result.ok()) << result.status();
                    if (seq == kMessages) written->CountDown();
                  });
  }
  EXPECT_TRUE(written->Wait());
  stop = true;
  for (std::thread& reader : readers) reader.join();
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(*store_->LastSequence(kLobby), kMessages);
  EXPECT_EQ(ReadAll(kLobby).size(), kMessages);
}

// ---- Read markers ----

TEST_F(SqliteStoreTest,
       AReadMarkerMovesForwardOnlyAndCountsOthersLiveMessages) {
  User amy = MakeUser(1, "amy");
  User bob = MakeUser(2, "bob");
  MustDo(PutUser{amy});
  MustDo(PutUser{bob});
  auto by = [](uint64_t sequence, const User& who) {
    auto message = Message(kLobby, sequence, who.username, "m");
    message->sender_id = who.id;
    return message;
  };
  // 1 bob, 2 amy, 3 a join, 4 bob, 5 bob (deleted by 6), 7 amy, 8 bob.
  MustAppend(by(1, bob));
  MustAppend(by(2, amy));
  MustAppend(NewEvent(EventKind::kJoin, kLobby, 3));
  MustAppend(by(4, bob));
  auto doomed = by(5, bob);
  MustAppend(doomed);
  MustAppend(DeletionOf(*doomed, 6));
  MustAppend(by(7, amy));
  MustAppend(by(8, bob));

  // Never set: no marker, nothing counted unread.
  absl::StatusOr<ReadState> state = store_->GetReadState(amy.id, kLobby);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_FALSE(state->has_marker);
  EXPECT_EQ(state->sequence, 0u);
  EXPECT_EQ(state->unread, 0u);

  EXPECT_EQ(*Do(PutReadMarker{amy.id, kLobby, 1}), 1);
  state = store_->GetReadState(amy.id, kLobby);
  EXPECT_TRUE(state->has_marker);
  EXPECT_EQ(state->sequence, 1u);
  EXPECT_EQ(state->unread, 2u);  // 4 and 8: not amy's, not deleted, messages
  EXPECT_EQ(*Do(PutReadMarker{amy.id, kLobby, 0}), 1);  // never backward
  EXPECT_EQ(*Do(PutReadMarker{amy.id, kLobby, 4}), 4);
  EXPECT_EQ(store_->GetReadState(amy.id, kLobby)->unread, 1u);
  EXPECT_EQ(*Do(PutReadMarker{amy.id, kLobby, 1000}), 8);  // capped
  EXPECT_EQ(store_->GetReadState(amy.id, kLobby)->unread, 0u);
  EXPECT_FALSE(store_->GetReadState(bob.id, kLobby)->has_marker);

  EXPECT_EQ(Do(PutReadMarker{amy.id, Uuid(2999), 1}).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(Do(PutReadMarker{Uuid(1999), kLobby, 1}).status().code(),
            absl::StatusCode::kNotFound);
  Reopen();
  state = store_->GetReadState(amy.id, kLobby);
  EXPECT_EQ(state->sequence, 8u);
  EXPECT_EQ(state->unread, 0u);
}

// The writer remembers the logs it appended to (their owner exists, their
// last number); a rolled-back append, deleting the owner, or a lost
// transaction must not leave that memory behind.
TEST_F(SqliteStoreTest, AppendsAfterTheOwnerIsDeletedAreRefusedEvenForAKnownLog) {
  User ann = MakeUser(1, "ann");
  MustDo(PutUser{ann});
  Room room = MakeRoom(1, "cafe");
  MustDo(PutRoom{room});
  auto one = Message(room.id, 1, "ann", "one");
  MustDo(AppendEvent{one});
  MustDo(AppendEvent{Message(room.id, 2, "ann", "two")});
  // Known now: a refused append leaves the known last number as it was.
  auto again = Message(room.id, 3, "ann", "again");
  again->id = one->id;
  EXPECT_EQ(Do(AppendEvent{again}).status().code(),
            absl::StatusCode::kAlreadyExists);
  MustDo(AppendEvent{Message(room.id, 3, "ann", "three")});
  MustDo(AppendEvent{Message(model::InboxLog(ann.id), 1, "bob", "psst")});

  MustDo(DeleteRoom{room.id});
  EXPECT_EQ(Do(AppendEvent{Message(room.id, 4, "ann", "gone")}).status().code(),
            absl::StatusCode::kNotFound);
  MustDo(DeleteUser{ann.id});
  EXPECT_EQ(Do(AppendEvent{Message(model::InboxLog(ann.id), 2, "bob", "gone")})
                .status()
                .code(),
            absl::StatusCode::kNotFound);
}

// ---- CachedStore in front of SQLite ----

class CachedStoreTest : public SqliteStoreTest {
 protected:
  void SetUp() override {
    SqliteStoreTest::SetUp();
    cached_ = std::make_unique<CachedStore>(std::move(store_));
  }
  void TearDown() override {
    cached_.reset();
    SqliteStoreTest::TearDown();
  }
  std::unique_ptr<CachedStore> cached_;
};

TEST_F(CachedStoreTest, RepeatedReadsComeFromMemoryAndWritesAreSeenOnceAcknowledged) {
  User ann = MakeUser(1, "ann");
  ASSERT_TRUE(Commit(*cached_, PutUser{ann}).ok());
  Room room = MakeRoom(1, "cafe", Visibility::kPrivate);
  ASSERT_TRUE(Commit(*cached_, PutRoom{room}).ok());

  // Misses, then hits.
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(cached_->GetUser(ann.id)->display_name, ann.display_name);
    ASSERT_EQ(cached_->GetUserByName("ANN")->id, ann.id);
    ASSERT_EQ(cached_->GetRoomByName("Cafe")->id, room.id);
    absl::StatusOr<std::optional<Member>> member =
        cached_->GetMember(room.id, ann.id);
    ASSERT_TRUE(member.ok());
    EXPECT_FALSE(member->has_value());
  }
  EXPECT_EQ(cached_->misses(), 4u);
  EXPECT_EQ(cached_->hits(), 8u);

  // Each acknowledged change is what the next read returns.
  ann.display_name = "Ann the Second";
  ASSERT_TRUE(Commit(*cached_, PutUser{ann, /*create=*/false}).ok());
  EXPECT_EQ(cached_->GetUser(ann.id)->display_name, "Ann the Second");
  EXPECT_EQ(cached_->GetUserByName("ann")->display_name, "Ann the Second");
  ASSERT_TRUE(Commit(*cached_, PutMember{MakeMember(room.id, ann.id, "owner",
                                                    T(5))})
                  .ok());
  absl::StatusOr<std::optional<Member>> member =
      cached_->GetMember(room.id, ann.id);
  ASSERT_TRUE(member.ok());
  ASSERT_TRUE(member->has_value());
  EXPECT_EQ((*member)->role, "owner");
  room.visibility = Visibility::kHidden;
  ASSERT_TRUE(Commit(*cached_, PutRoom{room, /*create=*/false}).ok());
  EXPECT_EQ(cached_->GetRoom(room.id)->visibility, Visibility::kHidden);
  ASSERT_TRUE(Commit(*cached_, DeleteRoom{room.id}).ok());
  EXPECT_TRUE(absl::IsNotFound(cached_->GetRoom(room.id).status()));
  EXPECT_TRUE(absl::IsNotFound(cached_->GetRoomByName("cafe").status()));
  ASSERT_TRUE(Commit(*cached_, DeleteUser{ann.id}).ok());
  EXPECT_TRUE(absl::IsNotFound(cached_->GetUser(ann.id).status()));
}

TEST_F(CachedStoreTest, PostsDoNotEmptyTheCache) {
  User ann = MakeUser(1, "ann");
  ASSERT_TRUE(Commit(*cached_, PutUser{ann}).ok());
  ASSERT_TRUE(cached_->GetUser(ann.id).ok());
  ASSERT_TRUE(
      Commit(*cached_, AppendEvent{Message(kLobby, 1, "ann", "hi")}).ok());
  const uint64_t misses = cached_->misses();
  ASSERT_TRUE(cached_->GetUser(ann.id).ok());
  EXPECT_EQ(cached_->misses(), misses);
}

// A read that fetched a row before a write changed it does not put the old
// row back into the cache the write emptied.
TEST_F(CachedStoreTest, AReadRacingAWriteNeverCachesTheOldRow) {
  User ann = MakeUser(1, "ann");
  ASSERT_TRUE(Commit(*cached_, PutUser{ann}).ok());
  constexpr int kRounds = 200;
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    while (!stop.load()) (void)cached_->GetUser(ann.id);
  });
  for (int i = 0; i < kRounds; ++i) {
    ann.display_name = absl::StrCat("name ", i);
    ASSERT_TRUE(Commit(*cached_, PutUser{ann, /*create=*/false}).ok());
    absl::StatusOr<User> got = cached_->GetUser(ann.id);
    ASSERT_TRUE(got.ok());
    ASSERT_EQ(got->display_name, ann.display_name) << "round " << i;
  }
  stop = true;
  reader.join();
}

}  // namespace
}  // namespace parley::store
