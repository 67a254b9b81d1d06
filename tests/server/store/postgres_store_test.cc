// PostgresStore against a real PostgreSQL server (postgres_fixture.h): what
// the conformance suite cannot see. Migrations, two stores (two servers) on
// one database, the database restarting or stopped under the store, the
// password kept out of errors and logs, statement timeouts.
#include "server/store/postgres_store.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <memory>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/errors.h"
#include "server/common/mutex.h"
#include "server/model/ids.h"
#include "server/store/postgres_connection.h"
#include "tests/server/store/postgres_fixture.h"
#include "tests/server/store/store_conformance.h"

namespace parley::store {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::PostgresServer;

constexpr absl::Duration kWait = absl::Seconds(60);
const std::string kLobby(model::kLobbyId);

absl::StatusOr<std::unique_ptr<PostgresStore>> OpenOn(
    const std::string& dsn, PostgresOptions options = PostgresOptions()) {
  options.dsn = dsn;
  return PostgresStore::Open(std::move(options));
}

std::unique_ptr<PostgresStore> MustOpen(
    const std::string& dsn, PostgresOptions options = PostgresOptions()) {
  absl::StatusOr<std::unique_ptr<PostgresStore>> store =
      OpenOn(dsn, std::move(options));
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? *std::move(store) : nullptr;
}

// The outcome of one write, waited for.
template <typename W>
absl::StatusOr<int64_t> Commit(Store& store, W write) {
  auto promise = std::make_shared<std::promise<absl::StatusOr<int64_t>>>();
  std::future<absl::StatusOr<int64_t>> future = promise->get_future();
  WriteDone done = [promise](absl::StatusOr<int64_t> result) {
    promise->set_value(std::move(result));
  };
  if constexpr (std::is_same_v<W, AppendEvent>) {
    store.Append(std::move(write), std::move(done));
  } else {
    store.Submit(std::move(write), std::move(done));
  }
  if (future.wait_for(absl::ToChronoSeconds(kWait)) !=
      std::future_status::ready) {
    return absl::DeadlineExceededError("the write never finished");
  }
  return future.get();
}

std::shared_ptr<model::Event> Message(const std::string& log,
                                      const std::string& id,
                                      const std::string& text) {
  auto event = std::make_shared<model::Event>();
  event->kind = model::EventKind::kMessage;
  event->log = log;
  event->room_id = log;
  event->room = "lobby";
  event->id = id;
  event->sender = "ann";
  event->text = text;
  event->time = absl::FromUnixMicros(absl::ToUnixMicros(absl::Now()));
  return event;
}

// An admin connection to `dsn`'s database.
std::unique_ptr<pg_internal::Connection> Admin(const std::string& dsn) {
  absl::StatusOr<std::unique_ptr<pg_internal::Connection>> c =
      pg_internal::Connection::Open({dsn, absl::Seconds(10)});
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *std::move(c) : nullptr;
}

// A loopback port nothing listens on.
int ClosedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// Every behaviour store.h promises, each test on a database of its own.
INSTANTIATE_TEST_SUITE_P(
    Postgres, StoreConformanceTest,
    ::testing::Values(StoreFactory{
        "Postgres",
        []() -> std::unique_ptr<Store> {
          return MustOpen(PostgresServer::Get().NewDatabase());
        }}),
    StoreFactoryName);

TEST(PostgresStoreTest, MigrationsAreAppliedOnceAndRecorded) {
  const std::string dsn = PostgresServer::Get().NewDatabase();
  {
    std::unique_ptr<PostgresStore> store = MustOpen(dsn);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->migrations_applied(), PostgresStore::LatestSchemaVersion());
    absl::StatusOr<Room> lobby = store->GetRoom(kLobby);
    ASSERT_TRUE(lobby.ok()) << lobby.status();
    EXPECT_EQ(lobby->name, model::kLobbyName);
  }
  std::unique_ptr<PostgresStore> again = MustOpen(dsn);
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->migrations_applied(), 0);
  pg_internal::Result versions = Admin(dsn)->Script(
      "SELECT count(*), max(version) FROM schema_version");
  ASSERT_TRUE(versions.ok()) << versions.status();
  EXPECT_EQ(versions.Int(0, 0), PostgresStore::LatestSchemaVersion());
  EXPECT_EQ(versions.Int(0, 1), PostgresStore::LatestSchemaVersion());
}

TEST(PostgresStoreTest, TwoServersStartingAtOnceMigrateOnce) {
  const std::string dsn = PostgresServer::Get().NewDatabase();
  absl::StatusOr<std::unique_ptr<PostgresStore>> a, b;
  std::thread other([&] { b = OpenOn(dsn); });
  a = OpenOn(dsn);
  other.join();
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ((*a)->migrations_applied() + (*b)->migrations_applied(),
            PostgresStore::LatestSchemaVersion());
}

TEST(PostgresStoreTest, ADatabaseOfANewerSchemaIsRefused) {
  const std::string dsn = PostgresServer::Get().NewDatabase();
  MustOpen(dsn).reset();
  ASSERT_TRUE(Admin(dsn)
                  ->Script(absl::StrCat(
                      "INSERT INTO schema_version (version) VALUES (",
                      PostgresStore::LatestSchemaVersion() + 1, ")"))
                  .ok());
  absl::StatusOr<std::unique_ptr<PostgresStore>> store = OpenOn(dsn);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ErrorReason(store.status()), "SCHEMA_TOO_NEW");
}

TEST(PostgresStoreTest, TwoStoresAppendingToOneLogGetOneGaplessOrder) {
  const std::string dsn = PostgresServer::Get().NewDatabase();
  std::unique_ptr<PostgresStore> a = MustOpen(dsn);
  std::unique_ptr<PostgresStore> b = MustOpen(dsn);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  // Each store also appends to a log of its own in the same batches, so
  // the two transactions hold several logs' rows at once.
  for (const char* id : {"r-a", "r-b"}) {
    Room room;
    room.id = id;
    room.name = id;
    ASSERT_TRUE(Commit(*a, PutRoom{room}).ok());
  }
  constexpr int kPerStore = 400;
  Mutex mu;
  std::vector<std::shared_ptr<model::Event>> appended;  // under mu
  std::vector<absl::Status> failures;                   // under mu
  auto append_from = [&](PostgresStore* store, const std::string& name,
                         const std::string& own_log) {
    std::vector<std::promise<void>> finished(2 * kPerStore);
    for (int i = 0; i < kPerStore; ++i) {
      for (int j = 0; j < 2; ++j) {
        auto event = Message(j == 0 ? kLobby : own_log,
                             absl::StrCat(name, "-", j, "-", i), "x");
        std::promise<void>* done = &finished[2 * i + j];
        store->Append(AppendEvent{event},
                      [&, event, done](absl::StatusOr<int64_t> result) {
                        {
                          MutexLock lock(&mu);
                          if (result.ok()) {
                            appended.push_back(event);
                          } else {
                            failures.push_back(result.status());
                          }
                        }
                        done->set_value();
                      });
      }
    }
    for (auto& f : finished) f.get_future().wait();
  };
  std::thread other([&] { append_from(b.get(), "b", "r-b"); });
  append_from(a.get(), "a", "r-a");
  other.join();

  MutexLock lock(&mu);
  ASSERT_THAT(failures, ::testing::IsEmpty());
  std::set<uint64_t> lobby_sequences;
  for (const auto& event : appended) {
    if (event->log == kLobby) lobby_sequences.insert(event->sequence);
  }
  ASSERT_EQ(lobby_sequences.size(), 2u * kPerStore);  // no duplicate
  EXPECT_EQ(*lobby_sequences.begin(), 1u);
  EXPECT_EQ(*lobby_sequences.rbegin(), 2u * kPerStore);  // no gap
  // What each store was told is what the log holds.
  absl::StatusOr<std::vector<model::EventPtr>> log =
      a->ReadAfter(kLobby, 0, 10 * kPerStore);
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_EQ(log->size(), 2u * kPerStore);
  std::map<std::string, uint64_t> stored;
  for (const auto& event : *log) stored[event->id] = event->sequence;
  for (const auto& event : appended) {
    if (event->log == kLobby) {
      EXPECT_EQ(stored[event->id], event->sequence);
    }
  }
  absl::StatusOr<uint64_t> last = b->LastSequence(kLobby);
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(*last, 2u * kPerStore);
}

TEST(PostgresStoreTest, WritesFailCleanlyWhileTheDatabaseRestartsThenSucceed) {
  const std::string dsn = PostgresServer::Get().NewDatabase();
  PostgresOptions options;
  options.connect_timeout = absl::Seconds(1);
  std::unique_ptr<PostgresStore> store = MustOpen(dsn, options);
  ASSERT_NE(store, nullptr);

  std::atomic<bool> restarted{false};
  std::atomic<int> ok_after_restart{0};
  Mutex mu;
  std::vector<std::shared_ptr<model::Event>> acknowledged;  // under mu
  std::vector<absl::Status> failures;                       // under mu
  std::thread writer([&] {
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    for (int i = 0; ok_after_restart.load() < 50 && absl::Now() < deadline;
         ++i) {
      auto event = Message(kLobby, absl::StrCat("m", i), "x");
      absl::StatusOr<int64_t> result = Commit(*store, AppendEvent{event});
      MutexLock lock(&mu);
      if (result.ok()) {
        acknowledged.push_back(event);
        if (restarted.load()) ok_after_restart.fetch_add(1);
      } else {
        failures.push_back(result.status());
      }
    }
  });
  absl::SleepFor(absl::Milliseconds(300));
  PostgresServer::Get().Control("restart");
  restarted.store(true);
  writer.join();

  EXPECT_GE(ok_after_restart.load(), 50) << "writes never succeeded again";
  MutexLock lock(&mu);
  for (const absl::Status& failure : failures) {
    EXPECT_EQ(failure.code(), absl::StatusCode::kUnavailable) << failure;
    EXPECT_THAT(ErrorReason(failure),
                ::testing::AnyOf("STORE_UNAVAILABLE", "STORE_FAILED"));
  }
  // Every acknowledged write is there, under the number it was given.
  absl::StatusOr<std::vector<model::EventPtr>> log =
      store->ReadAfter(kLobby, 0, 1 << 20);
  ASSERT_TRUE(log.ok()) << log.status();
  std::map<std::string, uint64_t> stored;
  for (const auto& event : *log) stored[event->id] = event->sequence;
  for (const auto& event : acknowledged) {
    ASSERT_TRUE(stored.count(event->id)) << event->id << " was lost";
    EXPECT_EQ(stored[event->id], event->sequence);
  }
  // And numbered without a gap.
  for (size_t i = 0; i < log->size(); ++i) {
    EXPECT_EQ((*log)[i]->sequence, i + 1);
  }
}

TEST(PostgresStoreTest, WritesAndReadsFailPromptlyWhileTheServerIsDown) {
  const std::string dsn = PostgresServer::Get().NewDatabase();
  PostgresOptions options;
  options.connect_timeout = absl::Seconds(1);
  std::unique_ptr<PostgresStore> store = MustOpen(dsn, options);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(Commit(*store, AppendEvent{Message(kLobby, "before", "x")}).ok());

  PostgresServer::Get().Control("pause");
  for (int i = 0; i < 5; ++i) {
    const absl::Time start = absl::Now();
    absl::StatusOr<int64_t> result =
        Commit(*store, AppendEvent{Message(kLobby, absl::StrCat("down", i), "x")});
    EXPECT_LT(absl::Now() - start, absl::Seconds(3));
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_EQ(ErrorReason(result.status()), "STORE_UNAVAILABLE")
        << result.status();
    const absl::Time read_start = absl::Now();
    absl::StatusOr<uint64_t> last = store->LastSequence(kLobby);
    EXPECT_LT(absl::Now() - read_start, absl::Seconds(3));
    ASSERT_FALSE(last.ok());
    EXPECT_EQ(last.status().code(), absl::StatusCode::kUnavailable);
  }
  PostgresServer::Get().Control("resume");

  // Back without reopening the store (after at most one backoff).
  absl::StatusOr<int64_t> after;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  do {
    after = Commit(*store, AppendEvent{Message(kLobby, absl::StrCat(
                                                        "after", absl::ToUnixNanos(absl::Now())),
                                            "x")});
    if (!after.ok()) absl::SleepFor(absl::Milliseconds(100));
  } while (!after.ok() && absl::Now() < deadline);
  ASSERT_TRUE(after.ok()) << after.status();
  absl::StatusOr<uint64_t> last = store->LastSequence(kLobby);
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(*last, 2u);  // the failed writes took no number
}

TEST(PostgresStoreTest, RedactDsnDropsThePassword) {
  using pg_internal::RedactDsn;
  EXPECT_EQ(RedactDsn("host=db port=5432 user=ann password=hunter2 dbname=p"),
            "user='ann' dbname='p' host='db' port='5432'");
  const std::string uri =
      RedactDsn("postgresql://ann:hunter2@db:5432/p?sslmode=disable");
  EXPECT_THAT(uri, Not(HasSubstr("hunter2")));
  EXPECT_THAT(uri, HasSubstr("host='db'"));
  EXPECT_THAT(uri, HasSubstr("sslmode='disable'"));
  EXPECT_THAT(RedactDsn("password='it''s'  host="), Not(HasSubstr("it")));
  EXPECT_EQ(RedactDsn("host=db password=hunter2 nonsense"),
            "(unparsable DSN)");
}

TEST(PostgresStoreTest, ThePasswordIsNeitherInErrorsNorInLogs) {
  const std::string secret = "hunter2-do-not-show";
  // An unreachable server: Open's error names the server, not the password.
  absl::StatusOr<std::unique_ptr<PostgresStore>> unreachable = OpenOn(
      absl::StrCat("host=127.0.0.1 port=", ClosedPort(),
                   " user=postgres dbname=parley password=", secret));
  ASSERT_FALSE(unreachable.ok());
  EXPECT_EQ(unreachable.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(unreachable.status().message()),
              HasSubstr("host='127.0.0.1'"));
  EXPECT_THAT(unreachable.status().ToString(), Not(HasSubstr(secret)));

  // A store that loses its server logs and returns errors without it (the
  // server trusts loopback, so the password is accepted and ignored).
  const std::string dsn =
      absl::StrCat(PostgresServer::Get().NewDatabase(), " password=", secret);
  PostgresOptions options;
  options.connect_timeout = absl::Seconds(1);
  std::unique_ptr<PostgresStore> store = MustOpen(dsn, options);
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(store->redacted_dsn(), Not(HasSubstr(secret)));
  ::testing::internal::CaptureStderr();
  PostgresServer::Get().Control("pause");
  std::vector<absl::Status> errors;
  for (int i = 0; i < 3; ++i) {
    errors.push_back(
        Commit(*store, AppendEvent{Message(kLobby, absl::StrCat("p", i), "x")})
            .status());
    errors.push_back(store->GetRoom(kLobby).status());
  }
  PostgresServer::Get().Control("resume");
  const std::string logs = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(logs, HasSubstr("cannot connect"));
  EXPECT_THAT(logs, Not(HasSubstr(secret)));
  for (const absl::Status& error : errors) {
    EXPECT_FALSE(error.ok());
    EXPECT_THAT(error.ToString(), Not(HasSubstr(secret)));
  }
}

TEST(PostgresStoreTest, AStatementTimeoutIsAnErrorNotAHang) {
  const std::string dsn = PostgresServer::Get().NewDatabase();
  PostgresOptions options;
  options.statement_timeout = absl::Milliseconds(300);
  std::unique_ptr<PostgresStore> store = MustOpen(dsn, options);
  ASSERT_NE(store, nullptr);

  // Another client holds the tables the store needs.
  std::unique_ptr<pg_internal::Connection> other = Admin(dsn);
  ASSERT_TRUE(other
                  ->Script("BEGIN; LOCK TABLE logs, events IN ACCESS "
                           "EXCLUSIVE MODE")
                  .ok());
  absl::Time start = absl::Now();
  absl::StatusOr<int64_t> write =
      Commit(*store, AppendEvent{Message(kLobby, "blocked", "x")});
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  ASSERT_FALSE(write.ok());
  EXPECT_EQ(write.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ErrorReason(write.status()), "STORE_FAILED");
  EXPECT_THAT(std::string(write.status().message()), HasSubstr("timeout"));
  start = absl::Now();
  absl::StatusOr<uint64_t> read = store->LastSequence(kLobby);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kUnavailable);

  ASSERT_TRUE(other->Script("ROLLBACK").ok());
  EXPECT_TRUE(Commit(*store, AppendEvent{Message(kLobby, "free", "x")}).ok());
  absl::StatusOr<uint64_t> last = store->LastSequence(kLobby);
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(*last, 1u);
}

// Queues every write before waiting, so that they share batches: one
// outcome per write, in order.
std::vector<absl::StatusOr<int64_t>> CommitTogether(
    Store& store, std::vector<std::variant<DirectoryWrite, AppendEvent>> writes) {
  std::vector<std::future<absl::StatusOr<int64_t>>> futures;
  for (auto& write : writes) {
    auto promise = std::make_shared<std::promise<absl::StatusOr<int64_t>>>();
    futures.push_back(promise->get_future());
    WriteDone done = [promise](absl::StatusOr<int64_t> result) {
      promise->set_value(std::move(result));
    };
    if (auto* append = std::get_if<AppendEvent>(&write)) {
      store.Append(std::move(*append), std::move(done));
    } else {
      store.Submit(std::get<DirectoryWrite>(std::move(write)), std::move(done));
    }
  }
  std::vector<absl::StatusOr<int64_t>> results;
  for (auto& f : futures) results.push_back(f.get());
  return results;
}

TEST(PostgresStoreTest, ABatchKeepsItsOrderAndAFailingWriteFailsAlone) {
  std::unique_ptr<PostgresStore> store =
      MustOpen(PostgresServer::Get().NewDatabase());
  ASSERT_NE(store, nullptr);
  Room room;
  room.id = "r1";
  room.name = "r1";
  std::vector<std::shared_ptr<model::Event>> events;
  for (const char* id : {"a", "b", "a", "c", "d", "e"}) {
    events.push_back(Message("r1", id, id));
  }
  auto elsewhere = Message("r2", "x", "x");
  std::vector<absl::StatusOr<int64_t>> results = CommitTogether(
      *store, {PutRoom{room}, AppendEvent{events[0]}, AppendEvent{events[1]},
               AppendEvent{events[2]},  // the id "a" again
               AppendEvent{elsewhere}, AppendEvent{events[3]},
               DeleteRoom{"r1"}, AppendEvent{events[4]}, PutRoom{room},
               AppendEvent{events[5]}});
  ASSERT_EQ(results.size(), 10u);
  EXPECT_TRUE(results[0].ok()) << results[0].status();
  EXPECT_TRUE(results[1].ok());
  EXPECT_TRUE(results[2].ok());
  EXPECT_EQ(ErrorReason(results[3].status()), "EVENT_EXISTS");
  EXPECT_EQ(ErrorReason(results[4].status()), "ROOM_NOT_FOUND");
  EXPECT_TRUE(results[5].ok());
  EXPECT_EQ(events[0]->sequence, 1u);
  EXPECT_EQ(events[1]->sequence, 2u);
  EXPECT_EQ(events[3]->sequence, 3u);  // the failed append took no number
  EXPECT_TRUE(results[6].ok());
  EXPECT_EQ(ErrorReason(results[7].status()), "ROOM_NOT_FOUND");
  EXPECT_TRUE(results[8].ok()) << results[8].status();
  EXPECT_TRUE(results[9].ok()) << results[9].status();
  EXPECT_EQ(events[5]->sequence, 1u);  // a new room's log starts again
  absl::StatusOr<std::vector<model::EventPtr>> log =
      store->ReadAfter("r1", 0, 100);
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_EQ(log->size(), 1u);
  EXPECT_EQ((*log)[0]->id, "e");
}

// A smoke test of the semantics until the conformance suite runs here.
TEST(PostgresStoreTest, WritesAndReadsFollowTheStoreSemantics) {
  std::unique_ptr<PostgresStore> store =
      MustOpen(PostgresServer::Get().NewDatabase());
  ASSERT_NE(store, nullptr);
  User ann;
  ann.id = "u-ann";
  ann.username = "Ann";
  ann.display_name = "Ann";
  ASSERT_TRUE(Commit(*store, PutUser{ann}).ok());
  User other = ann;
  other.id = "u-other";
  other.username = "aNN";
  absl::StatusOr<int64_t> taken = Commit(*store, PutUser{other});
  EXPECT_EQ(ErrorReason(taken.status()), "USERNAME_TAKEN");
  absl::StatusOr<User> found = store->GetUserByName("ANN");
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->id, "u-ann");

  Room room;
  room.id = "r1";
  room.name = "General";
  room.owner_id = "u-ann";
  ASSERT_TRUE(Commit(*store, PutRoom{room}).ok());
  absl::StatusOr<std::optional<Member>> owner =
      store->GetMember("r1", "u-ann");
  ASSERT_TRUE(owner.ok() && owner->has_value());
  EXPECT_EQ((*owner)->role, "owner");

  std::vector<std::shared_ptr<model::Event>> posts;
  for (int i = 0; i < 3; ++i) {
    auto post = Message("r1", absl::StrCat("e", i), absl::StrCat("t", i));
    post->sender_id = "u-other";
    if (i == 0) post->idempotency = {"user:u-other", "k1", "d"};
    ASSERT_TRUE(Commit(*store, AppendEvent{post}).ok());
    EXPECT_EQ(post->sequence, static_cast<uint64_t>(i + 1));
    posts.push_back(post);
  }
  absl::StatusOr<std::optional<IdempotentSend>> sent =
      store->FindIdempotentSend("user:u-other", "k1", absl::InfinitePast());
  ASSERT_TRUE(sent.ok() && sent->has_value());
  EXPECT_EQ((*sent)->sequence, 1u);
  EXPECT_EQ((*sent)->event_id, "e0");

  auto edit = Message("r1", "edit1", "t0 edited");
  edit->kind = model::EventKind::kEdit;
  edit->target_id = "e0";
  ASSERT_TRUE(Commit(*store, AppendEvent{edit}).ok());
  EXPECT_EQ(edit->sequence, 4u);
  EXPECT_EQ(edit->target_sequence, 1u);
  absl::StatusOr<model::EventPtr> edited = store->GetMessage("r1", "e0");
  ASSERT_TRUE(edited.ok()) << edited.status();
  EXPECT_EQ((*edited)->text, "t0 edited");
  ASSERT_EQ((*edited)->previous_versions.size(), 1u);
  EXPECT_EQ((*edited)->previous_versions[0].text, "t0");

  auto missing = Message("r1", "edit2", "x");
  missing->kind = model::EventKind::kEdit;
  missing->target_id = "nope";
  EXPECT_EQ(ErrorReason(Commit(*store, AppendEvent{missing}).status()),
            "MESSAGE_NOT_FOUND");
  EXPECT_EQ(ErrorReason(
                Commit(*store, AppendEvent{Message("gone", "x1", "x")}).status()),
            "ROOM_NOT_FOUND");
  EXPECT_EQ(ErrorReason(Commit(*store, AppendEvent{Message("r1", "e1", "again")})
                            .status()),
            "EVENT_EXISTS");

  auto del = Message("r1", "del1", "");
  del->kind = model::EventKind::kDelete;
  del->target_id = "e0";
  ASSERT_TRUE(Commit(*store, AppendEvent{del}).ok());
  EXPECT_EQ(del->sequence, 5u);  // the failed appends took no number
  absl::StatusOr<model::EventPtr> tombstone = store->GetMessage("r1", "e0");
  ASSERT_TRUE(tombstone.ok());
  EXPECT_TRUE((*tombstone)->deleted);
  EXPECT_EQ((*tombstone)->text, "");
  EXPECT_TRUE((*tombstone)->previous_versions.empty());

  User bob = ann;
  bob.id = "u-bob";
  bob.username = "bob";
  ASSERT_TRUE(Commit(*store, PutUser{bob}).ok());
  ASSERT_TRUE(Commit(*store, PutMember{Member{"r1", "u-bob", "member",
                                           absl::Now(), "", ""}})
                  .ok());
  absl::StatusOr<int64_t> marker =
      Commit(*store, PutReadMarker{"u-ann", "r1", 100});
  ASSERT_TRUE(marker.ok()) << marker.status();
  EXPECT_EQ(*marker, 5);  // capped at the last
  absl::StatusOr<ReadState> state = store->GetReadState("u-ann", "r1");
  ASSERT_TRUE(state.ok());
  EXPECT_TRUE(state->has_marker);
  EXPECT_EQ(state->unread, 0u);

  auto purge = Message("r1", "purge1", "");
  purge->kind = model::EventKind::kPurge;
  purge->purge_through = 2;
  absl::StatusOr<int64_t> purged = Commit(*store, AppendEvent{purge});
  ASSERT_TRUE(purged.ok()) << purged.status();
  EXPECT_EQ(*purged, 2);
  absl::StatusOr<PageResult> page = store->ListMessages("r1", Page());
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->messages.size(), 1u);
  EXPECT_EQ(page->messages[0]->id, "e2");
  EXPECT_FALSE(page->has_older);
  absl::StatusOr<std::vector<model::EventPtr>> all =
      store->ReadAfter("r1", 0, 100);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 4u);  // e2, the edit (its text cleared), del, purge
  EXPECT_EQ((*all)[1]->kind, model::EventKind::kEdit);
  EXPECT_EQ((*all)[1]->text, "");

  EXPECT_EQ(ErrorReason(Commit(*store, DeleteRoom{kLobby}).status()),
            "LOBBY_PROTECTED");
  ASSERT_TRUE(Commit(*store, DeleteRoom{"r1"}).ok());
  absl::StatusOr<uint64_t> last = store->LastSequence("r1");
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(*last, 0u);
  StoreStats stats = store->stats();
  EXPECT_GT(stats.transactions, 0u);
  EXPECT_GT(stats.writes, 0u);
}

}  // namespace
}  // namespace parley::store
