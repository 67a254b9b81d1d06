// What the store tests share: waiting for writes without sleeping, holding
// a store's writer, and the rows and events they write.
#ifndef PARLEY_TESTS_SERVER_STORE_STORE_TEST_UTIL_H_
#define PARLEY_TESTS_SERVER_STORE_STORE_TEST_UTIL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/common/mutex.h"
#include "server/model/event.h"
#include "server/model/ids.h"
#include "server/store/store.h"

namespace parley::store {

// How long a test waits for a store's callback before it fails.
inline constexpr absl::Duration kWait = absl::Seconds(60);
inline const std::string kLobby(model::kLobbyId);

// ---- Synchronization (parley::Mutex, which TSan sees) ----

// Counts down to zero. Shared by pointer with callbacks, which may still be
// returning from CountDown when the waiter wakes.
class Latch {
 public:
  explicit Latch(int count) : count_(count) {}
  void CountDown();
  // Whether the count reached zero within `timeout`.
  bool Wait(absl::Duration timeout = kWait);

 private:
  Mutex mu_;
  CondVar cv_{&mu_};
  int count_ ABSL_GUARDED_BY(mu_);
};

// The result of one write, filled by its callback.
class Outcome {
 public:
  WriteDone Callback(std::shared_ptr<Outcome> self);
  // Waits for the result; call once.
  absl::StatusOr<int64_t> Wait();

 private:
  Mutex mu_;
  CondVar cv_{&mu_};
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  absl::StatusOr<int64_t> result_ ABSL_GUARDED_BY(mu_) = 0;
};

// Any write: the directory's, or an append. An append's event carries the
// number the test expects the store to give it (see AppendChecked).
using Write = std::variant<DirectoryWrite, AppendEvent>;

// Appends `event`, which carries the number the test expects it to get, as
// the store wants it (sequence 0); `done` runs once the callback has checked
// that the event got that number (0 when the append failed).
void AppendChecked(Store& store, std::shared_ptr<model::Event> event,
                   WriteDone done);
// Queues `write` (an append through AppendChecked); its outcome follows.
std::shared_ptr<Outcome> SubmitWrite(Store& store, Write write);
// Queues `write` and waits for its outcome.
absl::StatusOr<int64_t> Commit(Store& store, Write write);

// Holds the store's writer inside a callback until released, so that what
// is queued meanwhile is committed in as few batches as the store allows.
class WriterGate {
 public:
  explicit WriterGate(Store& store);
  ~WriterGate() { Release(); }
  void Release();

 private:
  std::shared_ptr<Latch> entered_ = std::make_shared<Latch>(1);
  std::shared_ptr<Latch> release_ = std::make_shared<Latch>(1);
};

// ---- Data ----

// A fixed instant plus `seconds`.
absl::Time T(int seconds);
// A UUID-shaped id numbered `n`.
std::string Uuid(int n);

// User `n` (id Uuid(1000 + n)), created at T(n).
User MakeUser(int n, absl::string_view username);
// Room `n` (id Uuid(2000 + n)), created at T(n).
Room MakeRoom(int n, absl::string_view name,
              Visibility visibility = Visibility::kPublic,
              absl::string_view owner_id = "");
Member MakeMember(absl::string_view room_id, absl::string_view user_id,
                  absl::string_view role, absl::Time join_time);

// An event of `log` with a fresh id, at T(sequence); `sequence` is the
// number the test expects the store to give it.
std::shared_ptr<model::Event> NewEvent(model::EventKind kind,
                                       absl::string_view log,
                                       uint64_t sequence);
std::shared_ptr<model::Event> Message(absl::string_view log, uint64_t sequence,
                                      absl::string_view sender,
                                      absl::string_view text);
std::shared_ptr<model::Event> EditOf(const model::Event& target,
                                     uint64_t sequence, absl::string_view text);
std::shared_ptr<model::Event> DeletionOf(const model::Event& target,
                                         uint64_t sequence);
std::shared_ptr<model::Event> PurgeThrough(absl::string_view log,
                                           uint64_t sequence, uint64_t through);

// Every field a log entry keeps.
void ExpectSameEvent(const model::Event& got, const model::Event& want);
std::vector<uint64_t> Sequences(const std::vector<model::EventPtr>& events);
void ExpectError(const absl::StatusOr<int64_t>& result, absl::StatusCode code,
                 absl::string_view reason, absl::string_view field = "");

}  // namespace parley::store

#endif  // PARLEY_TESTS_SERVER_STORE_STORE_TEST_UTIL_H_
