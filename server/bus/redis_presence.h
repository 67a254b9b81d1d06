// Presence in Redis (a PresenceDirectory), shared by every server of a
// cluster: a hash per log (`key_prefix` + log id) with one field per
// replica, its list as a PresenceSnapshot that carries its own expiry; the
// hash itself expires when no replica puts for twice the time to live.
// One connection of its own (RedisWorker). Thread-safe; no call waits for
// Redis.
#ifndef PARLEY_SERVER_BUS_REDIS_PRESENCE_H_
#define PARLEY_SERVER_BUS_REDIS_PRESENCE_H_

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "server/bus/presence_directory.h"
#include "server/bus/redis_connection.h"

namespace parley::bus {

struct RedisPresenceOptions {
  RedisWorker::Options redis;
  absl::Duration ttl = absl::Seconds(15);
  std::string key_prefix = "parley:presence:";
};

class RedisPresenceDirectory : public PresenceDirectory {
 public:
  explicit RedisPresenceDirectory(RedisPresenceOptions options);

  void Put(std::string replica, std::string log,
           std::vector<PresentEntry> entries, absl::Time now) override;
  void List(std::string log, std::string except, absl::Time now,
            Listed done) override;

 private:
  const RedisPresenceOptions options_;
  RedisWorker worker_;
};

}  // namespace parley::bus

#endif  // PARLEY_SERVER_BUS_REDIS_PRESENCE_H_
