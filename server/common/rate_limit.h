// Per-key limits that keep one client from taking more than its share:
// token buckets (how often), counted slots (how many at once) and failure
// back-off (how soon again after failing). Keys are opaque strings such as
// "user:<id>" or "ip:<addr>". Each table holds at most `max_keys` keys and
// forgets a key once it is back where a new key starts, so an attacker
// spraying keys costs bounded memory; a table full of live keys refuses new
// ones. Thread-safe: a table is sharded by key, each shard under its own
// mutex, and nothing blocks while one is held.
//
// Shared counts: in a cluster each table also counts what the other servers
// let through (server/bus/redis_limits.h). Once EnableSharing() is called, a
// table records what it changed since the last Drain*(), and a sync brings
// in everyone's count (Rebase, SetOthers). Between syncs a table decides
// alone, so a limit can be passed by what the others let through in one
// sync interval.
#ifndef PARLEY_SERVER_COMMON_RATE_LIMIT_H_
#define PARLEY_SERVER_COMMON_RATE_LIMIT_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/common/clock.h"
#include "server/common/mutex.h"

namespace parley {

// Shards of the tables below: enough that two cores rarely meet on one.
inline constexpr size_t kLimitShards = 16;

// A token bucket per key: `per_second` tokens flow in, up to `burst`; each
// Take spends one.
class RateLimiter {
 public:
  struct Options {
    double per_second = 0;  // 0: no limit (every Take succeeds)
    double burst = 1;       // at least 1
    size_t max_keys = 100000;
  };
  RateLimiter(Options options, Clock* clock);

  bool enabled() const { return options_.per_second > 0; }
  // Spends one of `key`'s tokens: zero when there was one, else how long
  // until there is (nothing spent). A full table answers the time a token
  // of a new key takes to come (1 / per_second).
  absl::Duration Take(absl::string_view key);

  const Options& options() const { return options_; }
  void EnableSharing() { sharing_ = true; }
  struct Taken {
    std::string key;
    uint32_t count;
  };
  // The tokens each key spent since the last call, keys that spent none
  // left out.
  std::vector<Taken> DrainTaken();
  // Sets `key`'s tokens to `tokens`, the count of every server's spending
  // up to the DrainTaken that reported this one's; what this server spent
  // since is taken off again.
  void Rebase(absl::string_view key, double tokens);

 private:
  struct Bucket {
    double tokens = 0;
    absl::Time at;  // when `tokens` was counted
    uint32_t unsynced = 0;  // tokens spent since the last DrainTaken
  };
  // Brings `b` up to `now`.
  void RefillLocked(Bucket& b, absl::Time now) const;
  struct Shard {
    Mutex mu;
    absl::flat_hash_map<std::string, Bucket> buckets ABSL_GUARDED_BY(mu);
  };
  // Drops the buckets that have filled up again (same as absent).
  void SweepLocked(Shard& shard, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  const Options options_;
  Clock* const clock_;
  std::atomic<bool> sharing_{false};
  std::array<Shard, kLimitShards> shards_;
};

// A count of held slots per key, at most `max_per_key` each.
class SlotLimiter {
 public:
  explicit SlotLimiter(size_t max_per_key, size_t max_keys = 100000)
      : max_per_key_(max_per_key), max_keys_(max_keys) {}

  bool enabled() const { return max_per_key_ > 0; }
  size_t max_per_key() const { return max_per_key_; }
  // Takes a slot of `key`: false when it holds max_per_key already, or the
  // table is full. Always true when not enabled.
  bool Acquire(absl::string_view key);
  // Gives back a slot Acquire took.
  void Release(absl::string_view key);
  // Slots `key` holds here now.
  size_t Held(absl::string_view key);

  void EnableSharing() { sharing_ = true; }
  struct Count {
    std::string key;
    size_t held;
  };
  // The keys whose count here changed since the last call, with their
  // counts now.
  std::vector<Count> DrainChanged();
  // Makes the next DrainChanged report every key held.
  void MarkAllChanged();
  // Makes the next DrainChanged report `key` again (its report was lost).
  void MarkChanged(absl::string_view key);
  // Takes a slot of `key` that a shared count granted: no check here.
  void AcquireGranted(absl::string_view key);
  // The slots of `key` the other servers hold, which Acquire counts too.
  // Kept only while this server holds one of `key`.
  void SetOthers(absl::string_view key, size_t others);

 private:
  struct Slots {
    size_t held = 0;
    size_t others = 0;
    bool changed = false;
  };
  struct Shard {
    Mutex mu;
    absl::flat_hash_map<std::string, Slots> slots ABSL_GUARDED_BY(mu);
  };
  const size_t max_per_key_;  // 0: no limit
  const size_t max_keys_;
  std::atomic<bool> sharing_{false};
  std::array<Shard, kLimitShards> shards_;
};

// Exponential back-off after failures: once a key has failed more than
// `free_failures` times in a row, its next attempt must wait `first`, then
// twice that after each further failure, up to `max`. A success forgets
// the key; so does `max` without a failure.
class FailureBackoff {
 public:
  struct Options {
    int free_failures = 5;  // <0: no back-off
    absl::Duration first = absl::Seconds(1);
    absl::Duration max = absl::Minutes(15);
    size_t max_keys = 100000;
  };
  FailureBackoff(Options options, Clock* clock);

  bool enabled() const { return options_.free_failures >= 0; }
  // How long `key` must still wait before its next attempt; zero when it
  // may try now. A full table records no new key (its failures go
  // uncounted), so count only keys an attacker cannot make up.
  absl::Duration Wait(absl::string_view key);
  void Failed(absl::string_view key);
  void Succeeded(absl::string_view key);

  const Options& options() const { return options_; }
  void EnableSharing() { sharing_ = true; }
  struct Change {
    std::string key;
    int failures;  // since the last call, after the success if any
    absl::Time last;  // of those failures
    bool succeeded;  // a success came first
    absl::Time succeeded_at;  // when, if so
  };
  // What happened to each key since the last call.
  std::vector<Change> DrainChanges();
  // `key` failed `failures` times in a row on every server, the last at
  // `last`, as of the DrainChanges that reported this one's; what failed
  // here since is added again. A success here not yet reported holds
  // unless `last` is after it.
  void Rebase(absl::string_view key, int failures, absl::Time last);

 private:
  struct Record {
    int failures = 0;
    absl::Time last;  // of the last failure
    int unsynced = 0;  // failures since the last DrainChanges
    bool succeeded = false;  // a success since the last DrainChanges
    absl::Time succeeded_at;  // its time, if so
  };
  struct Shard {
    Mutex mu;
    absl::flat_hash_map<std::string, Record> records ABSL_GUARDED_BY(mu);
  };
  absl::Duration LockoutOf(int failures) const;

  const Options options_;
  Clock* const clock_;
  std::atomic<bool> sharing_{false};
  std::array<Shard, kLimitShards> shards_;
};

// Slots of several tables taken at once from a count every server shares
// (server/bus/redis_limits.h), so that they hold across a cluster exactly.
class SharedSlots {
 public:
  struct Claim {
    SlotLimiter* table;
    std::string key;
  };
  virtual ~SharedSlots() = default;
  // Takes one slot of each claim's key in its table (AcquireGranted), or
  // none: -1 when all were taken, else the index of the first claim whose
  // key holds its table's most. UNAVAILABLE when the shared count cannot
  // be reached. Blocks until answered: call it where blocking is allowed.
  virtual absl::StatusOr<int> ClaimAll(const std::vector<Claim>& claims) = 0;
};

// Failure counts brought up to date from a count every server shares
// before a decision that must hold across a cluster.
class SharedFailures {
 public:
  struct Key {
    FailureBackoff* table;
    std::string key;
  };
  virtual ~SharedFailures() = default;
  // Rebases each key's count on the shared one. UNAVAILABLE when it cannot
  // be reached. Blocks until answered: call it where blocking is allowed.
  virtual absl::Status Refresh(const std::vector<Key>& keys) = 0;
};

// The tables a cluster shares, each under a name that is the same on every
// server (it is part of the shared count's key).
struct SharedTables {
  std::vector<std::pair<std::string, RateLimiter*>> rates;
  std::vector<std::pair<std::string, SlotLimiter*>> slots;
  std::vector<std::pair<std::string, FailureBackoff*>> failures;
};

}  // namespace parley

#endif  // PARLEY_SERVER_COMMON_RATE_LIMIT_H_
