// The lobby's sessions in Redis (a SessionDirectory), shared by every
// server of a cluster: a hash per session (`key_prefix` + id, its cursor)
// and one sorted set of when each was last active (`active_key`), changed
// together by Lua scripts, which Redis runs atomically. One connection of
// its own, on one thread that runs the calls in order; while Redis cannot
// be reached, calls fail at once with UNAVAILABLE (RedisWorker).
// Thread-safe; no call waits for Redis.
#ifndef PARLEY_SERVER_BUS_REDIS_SESSIONS_H_
#define PARLEY_SERVER_BUS_REDIS_SESSIONS_H_

#include <cstddef>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "server/bus/redis_connection.h"
#include "server/bus/session_directory.h"
#include "server/common/mutex.h"

struct redisContext;

namespace parley::bus {

struct RedisSessionsOptions {
  // Past its queue, calls answer UNAVAILABLE at once.
  RedisWorker::Options redis;
  std::string key_prefix = "parley:session:";
  std::string active_key = "parley:sessions:active";
  // A hash of how many sessions each owner (client address) has.
  std::string owners_key = "parley:sessions:owners";
};

class RedisSessionDirectory : public SessionDirectory {
 public:
  explicit RedisSessionDirectory(RedisSessionsOptions options);
  // Answers what is still queued with UNAVAILABLE, then stops.
  ~RedisSessionDirectory() override = default;
  RedisSessionDirectory(const RedisSessionDirectory&) = delete;
  RedisSessionDirectory& operator=(const RedisSessionDirectory&) = delete;

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
  void Queue(RedisWorker::Call call);

  const RedisSessionsOptions options_;
  RedisWorker worker_;
};

}  // namespace parley::bus

#endif  // PARLEY_SERVER_BUS_REDIS_SESSIONS_H_
