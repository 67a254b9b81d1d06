// Per-key limits that keep one client from taking more than its share:
// token buckets (how often), counted slots (how many at once) and failure
// back-off (how soon again after failing). Keys are opaque strings such as
// "user:<id>" or "ip:<addr>". Each table holds at most `max_keys` keys and
// forgets a key once it is back where a new key starts, so an attacker
// spraying keys costs bounded memory; a table full of live keys refuses new
// ones. Thread-safe: a table is sharded by key, each shard under its own
// mutex, and nothing blocks while one is held.
#ifndef PARLEY_SERVER_COMMON_RATE_LIMIT_H_
#define PARLEY_SERVER_COMMON_RATE_LIMIT_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
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

 private:
  struct Bucket {
    double tokens = 0;
    absl::Time at;  // when `tokens` was counted
  };
  struct Shard {
    Mutex mu;
    absl::flat_hash_map<std::string, Bucket> buckets ABSL_GUARDED_BY(mu);
  };
  // Drops the buckets that have filled up again (same as absent).
  void SweepLocked(Shard& shard, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  const Options options_;
  Clock* const clock_;
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
  // Slots `key` holds now.
  size_t Held(absl::string_view key);

 private:
  struct Shard {
    Mutex mu;
    absl::flat_hash_map<std::string, size_t> held ABSL_GUARDED_BY(mu);
  };
  const size_t max_per_key_;  // 0: no limit
  const size_t max_keys_;
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

 private:
  struct Record {
    int failures = 0;
    absl::Time last;  // of the last failure
  };
  struct Shard {
    Mutex mu;
    absl::flat_hash_map<std::string, Record> records ABSL_GUARDED_BY(mu);
  };
  absl::Duration LockoutOf(int failures) const;

  const Options options_;
  Clock* const clock_;
  std::array<Shard, kLimitShards> shards_;
};

}  // namespace parley

#endif  // PARLEY_SERVER_COMMON_RATE_LIMIT_H_
