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
    return b.unsynced == 0 &&
           b.tokens + absl::ToDoubleSeconds(now - b.at) * options_.per_second >=
               options_.burst;
  });
}

void RateLimiter::RefillLocked(Bucket& b, absl::Time now) const {
  b.tokens = std::min(
      options_.burst,
      b.tokens + std::max(0.0, absl::ToDoubleSeconds(now - b.at)) *
                     options_.per_second);
  b.at = std::max(b.at, now);
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
  RefillLocked(b, now);
  if (b.tokens >= 1) {
    b.tokens -= 1;
    if (sharing_) ++b.unsynced;
    return absl::ZeroDuration();
  }
  return absl::Seconds((1 - b.tokens) / options_.per_second);
}

std::vector<RateLimiter::Taken> RateLimiter::DrainTaken() {
  std::vector<Taken> taken;
  for (Shard& shard : shards_) {
    MutexLock lock(&shard.mu);
    for (auto& [key, b] : shard.buckets) {
      if (b.unsynced == 0) continue;
      taken.push_back(Taken{key, b.unsynced});
      b.unsynced = 0;
    }
  }
  return taken;
}

void RateLimiter::Rebase(absl::string_view key, double tokens) {
  if (!enabled()) return;
  const absl::Time now = clock_->Now();
  Shard& shard = ShardOf(shards_, key);
  MutexLock lock(&shard.mu);
  auto it = shard.buckets.find(key);
  if (it == shard.buckets.end()) {
    if (tokens >= options_.burst) return;  // as good as absent
    if (shard.buckets.size() >= options_.max_keys / kLimitShards) return;
    it = shard.buckets.emplace(key, Bucket{options_.burst, now}).first;
  }
  Bucket& b = it->second;
  b.tokens = std::min(options_.burst, tokens) - b.unsynced;
  b.at = now;
}

bool SlotLimiter::Acquire(absl::string_view key) {
  if (!enabled()) return true;
  Shard& shard = ShardOf(shards_, key);
  MutexLock lock(&shard.mu);
  auto it = shard.slots.find(key);
  if (it == shard.slots.end()) {
    if (shard.slots.size() >= std::max<size_t>(max_keys_ / kLimitShards, 1)) {
      return false;
    }
    it = shard.slots.emplace(key, Slots{}).first;
  }
  Slots& s = it->second;
  if (s.held + s.others >= max_per_key_) return false;
  ++s.held;
  s.changed = sharing_;
  return true;
}

void SlotLimiter::AcquireGranted(absl::string_view key) {
  if (!enabled()) return;
  Shard& shard = ShardOf(shards_, key);
  MutexLock lock(&shard.mu);
  Slots& s = shard.slots[key];
  ++s.held;
  s.changed = sharing_;
}

void SlotLimiter::Release(absl::string_view key) {
  if (!enabled()) return;
  Shard& shard = ShardOf(shards_, key);
  MutexLock lock(&shard.mu);
  auto it = shard.slots.find(key);
  if (it == shard.slots.end() || it->second.held == 0) return;
  Slots& s = it->second;
  --s.held;
  s.changed = sharing_;
  if (s.held == 0 && !s.changed) shard.slots.erase(it);
}

size_t SlotLimiter::Held(absl::string_view key) {
  Shard& shard = ShardOf(shards_, key);
  MutexLock lock(&shard.mu);
  auto it = shard.slots.find(key);
  return it == shard.slots.end() ? 0 : it->second.held;
}

std::vector<SlotLimiter::Count> SlotLimiter::DrainChanged() {
  std::vector<Count> changed;
  for (Shard& shard : shards_) {
    MutexLock lock(&shard.mu);
    for (auto it = shard.slots.begin(); it != shard.slots.end();) {
      Slots& s = it->second;
      if (s.changed) {
        changed.push_back(Count{it->first, s.held});
        s.changed = false;
      }
      if (s.held == 0) {
        shard.slots.erase(it++);
      } else {
        ++it;
      }
    }
  }
  return changed;
}

void SlotLimiter::MarkAllChanged() {
  for (Shard& shard : shards_) {
    MutexLock lock(&shard.mu);
    for (auto& [key, s] : shard.slots) s.changed = true;
  }
}

void SlotLimiter::MarkChanged(absl::string_view key) {
  Shard& shard = ShardOf(shards_, key);
  MutexLock lock(&shard.mu);
  shard.slots[key].changed = true;
}

void SlotLimiter::SetOthers(absl::string_view key, size_t others) {
  Shard& shard = ShardOf(shards_, key);
  MutexLock lock(&shard.mu);
  auto it = shard.slots.find(key);
  if (it != shard.slots.end()) it->second.others = others;
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
        const Record& r = entry.second;
        return now - r.last >= options_.max && r.unsynced == 0 &&
               !r.succeeded;
      });
      if (shard.records.size() >= options_.max_keys / kLimitShards) return;
    }
    it = shard.records.emplace(key, Record{}).first;
  } else if (now - it->second.last >= options_.max) {
    it->second.failures = 0;
  }
  Record& r = it->second;
  r.failures = std::min(r.failures + 1, 1 << 20);
  r.last = now;
  if (sharing_) ++r.unsynced;
}

void FailureBackoff::Succeeded(absl::string_view key) {
  if (!enabled()) return;
  const absl::Time now = clock_->Now();
  Shard& shard = ShardOf(shards_, key);
  MutexLock lock(&shard.mu);
  if (!sharing_) {
    shard.records.erase(key);
    return;
  }
  // Kept until the next sync has told the other servers.
  auto it = shard.records.find(key);
  if (it == shard.records.end()) {
    if (shard.records.size() >= options_.max_keys / kLimitShards) return;
    it = shard.records.emplace(key, Record{}).first;
  }
  it->second = Record{};
  it->second.last = absl::InfinitePast();
  it->second.succeeded = true;
  it->second.succeeded_at = now;
}

std::vector<FailureBackoff::Change> FailureBackoff::DrainChanges() {
  std::vector<Change> changes;
  for (Shard& shard : shards_) {
    MutexLock lock(&shard.mu);
    for (auto it = shard.records.begin(); it != shard.records.end();) {
      Record& r = it->second;
      if (r.unsynced > 0 || r.succeeded) {
        changes.push_back(
            Change{it->first, r.unsynced, r.last, r.succeeded, r.succeeded_at});
        r.unsynced = 0;
        r.succeeded = false;
      }
      if (r.failures == 0) {
        shard.records.erase(it++);
      } else {
        ++it;
      }
    }
  }
  return changes;
}

void FailureBackoff::Rebase(absl::string_view key, int failures,
                            absl::Time last) {
  if (!enabled()) return;
  Shard& shard = ShardOf(shards_, key);
  MutexLock lock(&shard.mu);
  auto it = shard.records.find(key);
  if (it == shard.records.end()) {
    if (failures <= 0) return;
    if (shard.records.size() >= options_.max_keys / kLimitShards) return;
    it = shard.records.emplace(key, Record{}).first;
    it->second.last = absl::InfinitePast();
  }
  Record& r = it->second;
  // A success here since, not synced yet: the next sync says so. Failures
  // elsewhere after it still count, with those before it (Redis cannot
  // tell them apart), erring towards the back-off.
  if (r.succeeded && last <= r.succeeded_at) return;
  r.failures = std::min(std::max(failures, 0) + r.unsynced, 1 << 20);
  r.last = std::max(r.last, last);
}

}  // namespace parley
