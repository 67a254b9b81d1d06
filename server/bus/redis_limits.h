// The per-client limits counted across a cluster (docs/security.md,
// "Limits"): every server keeps deciding alone, from its own tables, and
// every `interval` tells Redis what it let through and takes in what all
// servers did. Rates are one token bucket per key in Redis (its theoretical
// arrival time, as in GCRA); sign-in failures one count per key; held
// streams one count per key and server, the servers alive known by their
// syncs. A rate or back-off can be passed by what the other servers let
// through within one interval; held streams are claimed in Redis itself
// (ClaimAll), so their limits hold exactly. While Redis cannot be reached
// each server limits alone.
// Thread-safe; nothing waits for Redis but the worker's own thread.
#ifndef PARLEY_SERVER_BUS_REDIS_LIMITS_H_
#define PARLEY_SERVER_BUS_REDIS_LIMITS_H_

#include <string>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/bus/redis_connection.h"
#include "server/common/clock.h"
#include "server/common/mutex.h"
#include "server/common/rate_limit.h"

struct redisContext;

namespace parley::bus {

struct RedisLimitsOptions {
  RedisWorker::Options redis;
  std::string key_prefix = "parley:limits:";
  // How often a server syncs (--limit_sync_interval); 0: only SyncNow.
  absl::Duration interval = absl::Milliseconds(100);
  // A server that has not synced for this long holds no stream any more.
  absl::Duration server_lease = absl::Seconds(10);
  // How often every held count is sent again (each expires after 3 times
  // this without being sent).
  absl::Duration refresh_every = absl::Minutes(1);
  // How long a key's sign-in failures are kept after its last one (the
  // longest back-off).
  absl::Duration failure_ttl = absl::Minutes(15);
  // This server's name among those of the cluster; unique per process.
  std::string server_id;
};

class RedisLimits : public SharedSlots, public SharedFailures {
 public:
  // `tables` must outlive this; their sharing is enabled here.
  RedisLimits(RedisLimitsOptions options, SharedTables tables, Clock* clock);
  // Stops syncing; what is queued is answered UNAVAILABLE.
  ~RedisLimits();
  RedisLimits(const RedisLimits&) = delete;
  RedisLimits& operator=(const RedisLimits&) = delete;

  // Syncs once, soon, and answers when done: UNAVAILABLE when Redis could
  // not be reached (each table goes on alone).
  void SyncNow(absl::AnyInvocable<void(absl::Status)> done);

  // Claims in Redis, on the worker's thread, and waits for it. The tables
  // must be among the shared ones.
  absl::StatusOr<int> ClaimAll(const std::vector<Claim>& claims) override;
  // Reads in Redis, on the worker's thread, and waits for it.
  absl::Status Refresh(const std::vector<SharedFailures::Key>& keys) override;

 private:
  void Tick();
  absl::Status Sync(redisContext* c);
  absl::Status SyncRates(redisContext* c);
  absl::Status SyncFailures(redisContext* c);
  absl::Status SyncSlots(redisContext* c);
  // Runs `call` on the worker's thread and waits for its answer.
  template <class T>
  T OnWorker(absl::AnyInvocable<T(redisContext*)> call);
  std::string FailureKey(const FailureBackoff* table,
                         absl::string_view key) const;
  std::string SlotKey(const SlotLimiter* table, absl::string_view key) const;
  // KEYS[1] and ARGV[1..3] of the slot scripts.
  std::vector<std::string> SlotHead() const;

  const RedisLimitsOptions options_;
  const SharedTables tables_;
  Clock* const clock_;
  absl::Time next_refresh_;  // the worker's thread only
  Mutex mu_;
  CondVar cv_{&mu_};
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool in_flight_ ABSL_GUARDED_BY(mu_) = false;
  RedisWorker worker_;
  std::thread ticker_;
};

}  // namespace parley::bus

#endif  // PARLEY_SERVER_BUS_REDIS_LIMITS_H_
