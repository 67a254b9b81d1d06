// Who is present on each log, as every server of a cluster sees it: each
// replica puts its own list of who has streams open there, which holds for
// a while (the directory's time to live) unless put again, and a listing
// joins every replica's lists that still hold. Each call answers through
// its callback, once: on the directory's thread (RedisPresenceDirectory) or
// inline (MemoryPresenceDirectory). Thread-safe.
#ifndef PARLEY_SERVER_BUS_PRESENCE_DIRECTORY_H_
#define PARLEY_SERVER_BUS_PRESENCE_DIRECTORY_H_

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/common/clock.h"
#include "server/common/mutex.h"

namespace parley::bus {

struct PresentEntry {
  std::string user_id;  // empty for room-token holders and lobby clients
  std::string name;
  absl::Time since;
};

class PresenceDirectory {
 public:
  using Listed =
      absl::AnyInvocable<void(absl::StatusOr<std::vector<PresentEntry>>)>;
  virtual ~PresenceDirectory() = default;
  // Replaces what `replica` has present on `log` (empty: nobody), holding
  // until `now` plus the time to live. Best effort.
  virtual void Put(std::string replica, std::string log,
                   std::vector<PresentEntry> entries, absl::Time now) = 0;
  // Every replica's entries for `log` that still hold at `now`, but those
  // of `except` (the caller, who knows its own better), in no order; one
  // person may be in several replicas' lists.
  virtual void List(std::string log, std::string except, absl::Time now,
                    Listed done) = 0;
};

// A PresenceDirectory in memory, for several hubs in one process (tests).
class MemoryPresenceDirectory : public PresenceDirectory {
 public:
  explicit MemoryPresenceDirectory(absl::Duration ttl) : ttl_(ttl) {}
  void Put(std::string replica, std::string log,
           std::vector<PresentEntry> entries, absl::Time now) override;
  void List(std::string log, std::string except, absl::Time now,
            Listed done) override;

 private:
  struct Snapshot {
    std::vector<PresentEntry> entries;
    absl::Time expire;
  };
  const absl::Duration ttl_;
  Mutex mu_;
  // By log, then replica.
  std::map<std::string, std::map<std::string, Snapshot>> logs_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace parley::bus

#endif  // PARLEY_SERVER_BUS_PRESENCE_DIRECTORY_H_
