#include "server/common/rate_limit.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "absl/hash/hash.h"

namespace parley {
namespace {

template <class Shards>
auto& ShardOf(Shards& shards, absl::string_view key) {
  return shards[absl::HashOf(key) % shards.size()];
}

}  // namespace

RateLimiter::RateLimiter(Options options, Clock* clock)
    : options_([&] {
        options.burst = std::max(options.burst, 1.0);
        options.max_keys = std::max<size_t>(options.max_keys, kLimitShards);
        return options;
      }()),
      clock_(clock) {}

void RateLimiter::SweepLocked(Shard& shard, absl::Time now) {
  absl::erase_if(shard.buckets, [&](const auto& entry) {
    const Bucket& b = entry.second;
    return b.tokens + absl::ToDoubleSeconds(now - b.at) * options_.per_second >=
           options_.burst;
  });
}

absl::Duration RateLimiter::Take(absl::string_view key) {
  if (!enabled()) return absl::ZeroDuration();
  const absl::Time now = clock_->Now();
  const absl::Duration one = absl::Seconds(1.0 / options_.per_second);
  Shard& shard = ShardOf(shards_, key);
  MutexLock lock(&shard.mu);
  auto it = shard.buckets.find(key);
  if (it == shard.buckets.end()) {
    const size_t limit = options_.max_keys / kLimitShards;
    if (shard.buckets.size() >= limit) SweepLocked(shard, now);
    if (shard.buckets.size() >= limit) return one;
    it = shard.buckets.emplace(key, Bucket{options_.burst, now}).first;
  }
  Bucket& b = it->second;
  b.tokens = std::min(options_.burst,
                      b.tokens + std::max(0.0, absl::ToDoubleSeconds(now - b.at)) *
                                     options_.per_second);
  b.at = std::max(b.at, now);
  if (b.tokens >= 1) {
    b.tokens -= 1;
    return absl::ZeroDuration();
  }
  return absl::Seconds((1 - b.tokens) / options_.per_second);
}

bool SlotLimiter::Acquire(absl::string_view key) {
  if (!enabled()) return true;
  Shard& shard = ShardOf(shards_, key);
  MutexLock lock(&shard.mu);
  auto it = shard.held.find(key);
  if (it == shard.held.end()) {
    if (shard.held.size() >= std::max<size_t>(max_keys_ / kLimitShards, 1)) {
      return false;
    }
    shard.held.emplace(key, 1);
    return true;
  }
  if (it->second >= max_per_key_) return false;
  ++it->second;
  return true;
}

void SlotLimiter::Release(absl::string_view key) {
  if (!enabled()) return;
  Shard& shard = ShardOf(shards_, key);
  MutexLock lock(&shard.mu);
  auto it = shard.held.find(key);
  if (it == shard.held.end()) return;
  if (--it->second == 0) shard.held.erase(it);
}

size_t SlotLimiter::Held(absl::string_view key) {
  Shard& shard = ShardOf(shards_, key);
  MutexLock lock(&shard.mu);
  auto it = shard.held.find(key);
  return it == shard.held.end() ? 0 : it->second;
}

FailureBackoff::FailureBackoff(Options options, Clock* clock)
    : options_([&] {
        options.max_keys = std::max<size_t>(options.max_keys, kLimitShards);
        options.max = std::max(options.max, options.first);
        return options;
      }()),
      clock_(clock) {}

absl::Duration FailureBackoff::LockoutOf(int failures) const {
  const int over = failures - options_.free_failures;
  if (over <= 0) return absl::ZeroDuration();
  // first * 2^(over - 1), without overflowing past max.
  absl::Duration lockout = options_.first;
  for (int i = 1; i < over && lockout < options_.max; ++i) lockout *= 2;
  return std::min(lockout, options_.max);
}

absl::Duration FailureBackoff::Wait(absl::string_view key) {
  if (!enabled()) return absl::ZeroDuration();
  const absl::Time now = clock_->Now();
  Shard& shard = ShardOf(shards_, key);
  MutexLock lock(&shard.mu);
  auto it = shard.records.find(key);
  if (it == shard.records.end()) return absl::ZeroDuration();
  const absl::Time until = it->second.last + LockoutOf(it->second.failures);
  return std::max(until - now, absl::ZeroDuration());
}

void FailureBackoff::Failed(absl::string_view key) {
  if (!enabled()) return;
  const absl::Time now = clock_->Now();
  Shard& shard = ShardOf(shards_, key);
  MutexLock lock(&shard.mu);
  auto it = shard.records.find(key);
  if (it == shard.records.end()) {
    if (shard.records.size() >= options_.max_keys / kLimitShards) {
      // Forget the keys whose last failure is `max` old.
      absl::erase_if(shard.records, [&](const auto& entry) {
        return now - entry.second.last >= options_.max;
      });
      if (shard.records.size() >= options_.max_keys / kLimitShards) return;
    }
    it = shard.records.emplace(key, Record{}).first;
  } else if (now - it->second.last >= options_.max) {
    it->second.failures = 0;
  }
  it->second.failures = std::min(it->second.failures + 1, 1 << 20);
  it->second.last = now;
}

void FailureBackoff::Succeeded(absl::string_view key) {
  if (!enabled()) return;
  Shard& shard = ShardOf(shards_, key);
  MutexLock lock(&shard.mu);
  shard.records.erase(key);
}

}  // namespace parley
