// The seed-000 lobby's sessions as every server of a cluster sees them, so
// that a client may join on one server, send on a second and poll on a
// third: which client ids are joined, how far each one's readers have read
// the lobby's log (its cursor), and when each was last active (for the idle
// reaper). Each call answers through its callback, once: on the directory's
// own thread (RedisSessionDirectory) or inline (MemorySessionDirectory);
// UNAVAILABLE when the directory cannot be reached. Callbacks must not
// block. Thread-safe.
#ifndef PARLEY_SERVER_BUS_SESSION_DIRECTORY_H_
#define PARLEY_SERVER_BUS_SESSION_DIRECTORY_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/common/mutex.h"

namespace parley::bus {

// How many sessions there may be, in all and per owner (a client address);
// 0: no limit.
struct SessionLimits {
  size_t total = 0;
  size_t per_owner = 0;
};

// The refusals of Create past its limits: RESOURCE_EXHAUSTED, reason
// LOBBY_FULL or TOO_MANY_SESSIONS, with a retry delay.
absl::Status LobbyFull();
absl::Status TooManySessions();

class SessionDirectory {
 public:
  using Done = absl::AnyInvocable<void(absl::Status)>;
  virtual ~SessionDirectory() = default;

  // Adds `id` for `owner` (empty: counted in no owner's share), active at
  // `now`, with no cursor until SetCursor (Get answers NOT_FOUND
  // meanwhile). ALREADY_EXISTS when it is there; LobbyFull() or
  // TooManySessions() past `limits`.
  virtual void Create(std::string id, std::string owner, absl::Time now,
                      SessionLimits limits, Done done) = 0;
  // Moves `id`'s cursor to `cursor` unless it is past it already (a cursor
  // never goes back), and marks it active. NOT_FOUND when it is not there.
  virtual void SetCursor(std::string id, uint64_t cursor, absl::Time now,
                         Done done) = 0;
  // `id`'s cursor; marks it active. NOT_FOUND when it is not there or has
  // no cursor yet.
  virtual void Get(std::string id, absl::Time now,
                   absl::AnyInvocable<void(absl::StatusOr<uint64_t>)> done) = 0;
  // Removes `id`: true when this call removed it, false when it was not
  // there (another server removed it first).
  virtual void Remove(std::string id,
                      absl::AnyInvocable<void(absl::StatusOr<bool>)> done) = 0;
  // Marks those of `ids` that are there active at `now`. Best effort.
  virtual void Touch(std::vector<std::string> ids, absl::Time now) = 0;
  // Removes the sessions last active before `before` and answers their
  // ids; each removed id is answered to one caller only.
  virtual void RemoveIdle(
      absl::Time before,
      absl::AnyInvocable<void(absl::StatusOr<std::vector<std::string>>)>
          done) = 0;
};

// A SessionDirectory in memory, for several hubs in one process (tests).
class MemorySessionDirectory : public SessionDirectory {
 public:
  void Create(std::string id, std::string owner, absl::Time now,
              SessionLimits limits, Done done) override;
  void SetCursor(std::string id, uint64_t cursor, absl::Time now,
                 Done done) override;
  void Get(std::string id, absl::Time now,
           absl::AnyInvocable<void(absl::StatusOr<uint64_t>)> done) override;
  void Remove(std::string id,
              absl::AnyInvocable<void(absl::StatusOr<bool>)> done) override;
  void Touch(std::vector<std::string> ids, absl::Time now) override;
  void RemoveIdle(
      absl::Time before,
      absl::AnyInvocable<void(absl::StatusOr<std::vector<std::string>>)> done)
      override;

 private:
  struct Session {
    std::optional<uint64_t> cursor;
    absl::Time active;
    std::string owner;
  };
  // Removes `it`, and its count from its owner's.
  std::map<std::string, Session>::iterator EraseLocked(
      std::map<std::string, Session>::iterator it)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Mutex mu_;
  std::map<std::string, Session> sessions_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, size_t> owned_ ABSL_GUARDED_BY(mu_);
};

}  // namespace parley::bus

#endif  // PARLEY_SERVER_BUS_SESSION_DIRECTORY_H_
