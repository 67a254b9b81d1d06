#include "server/bus/redis_limits.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace parley::bus {
namespace {

// Keys one script call carries at most.
constexpr size_t kKeysPerCall = 500;

// Token buckets. KEYS: one per key spent on. ARGV: for each, the tokens
// spent and the microseconds one token takes to come. Each key holds when
// its bucket would be full again (its theoretical arrival time, µs of
// Redis's clock) and answers how far that is from now (the backlog).
constexpr const char* kRates = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
for i, key in ipairs(KEYS) do
  local spent, per = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  tat = tat + spent * per
  local backlog = tat - now
  if backlog > 0 then
    redis.call('SET', key, string.format('%.0f', tat), 'PX',
               math.ceil(backlog / 1000))
  end
  out[i] = string.format('%.0f', backlog)
end
return out)lua";

// Failures in a row. KEYS: one per key that changed (or is read). ARGV[1]:
// how long a count is kept after its last failure (ms); then for each key,
// how long ago (µs) a success came first (-1: none), the failures since and
// how long ago (µs) the last of them was (-1, 0, 0 only read it). A success
// forgets the count only when no failure it holds came after it: another
// server's failures may reach Redis before an earlier success does; the
// count then keeps the failures before that success too, erring towards
// the back-off. Answers each key's count and how long ago (ms) its last
// failure was.
constexpr const char* kFailures = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ttl = tonumber(ARGV[1])
local out = {}
for i, key in ipairs(KEYS) do
  local last = tonumber(redis.call('HGET', key, 'last_us') or '-1')
  local success_age = tonumber(ARGV[3 * i - 1])
  if success_age >= 0 and last <= now - success_age then
    redis.call('DEL', key)
    last = -1
  end
  local failed = tonumber(ARGV[3 * i])
  if failed > 0 then
    local at = now - tonumber(ARGV[3 * i + 1])
    redis.call('HINCRBY', key, 'n', failed)
    if at > last then
      last = at
      redis.call('HSET', key, 'last_us', string.format('%.0f', at))
    end
    redis.call('PEXPIRE', key, ttl)
  end
  local n = tonumber(redis.call('HGET', key, 'n') or '0')
  if last < 0 then last = now end
  out[i] = {n, math.floor((now - last) / 1000)}
end
return out)lua";

// What the scripts on held slots (kSlots, kClaim) run after. KEYS[1]: the
// servers alive, by their last sync. ARGV: this server, its lease (ms), how
// long a count lives unsent (ms). Renews this server's place among the live
// ones, and defines others(key, prune): what the live servers other than
// this one hold of `key`, a hash of each server's count; with `prune`, the
// counts of servers no longer alive are removed from it.
constexpr const char* kSlotsPrelude = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local me, lease, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now, me)
local function others(key, prune)
  local sum = 0
  local all = redis.call('HGETALL', key)
  for j = 1, #all, 2 do
    if all[j] ~= me then
      if redis.call('ZSCORE', KEYS[1], all[j]) then
        sum = sum + tonumber(all[j + 1])
      elseif prune then
        redis.call('HDEL', key, all[j])
      end
    end
  end
  return sum
end
)lua";

// Held slots, after kSlotsPrelude. KEYS[1] and ARGV[1..3] as there, then
// one hash per key, of each server's count, and this server's count of each
// key. Answers what the other live servers hold of each key, forgetting the
// servers whose lease ran out.
constexpr const char* kSlots = R"lua(
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - lease)
local out = {}
for i = 2, #KEYS do
  local key, held = KEYS[i], tonumber(ARGV[i + 2])
  if held > 0 then
    redis.call('HSET', key, me, held)
    redis.call('PEXPIRE', key, ttl)
  else
    redis.call('HDEL', key, me)
  end
  out[i - 1] = others(key, true)
end
return out)lua";

// Claims a slot of each key at once, after kSlotsPrelude. KEYS and
// ARGV[1..3] as kSlots, then for each key this server's count and the most.
// Answers -1 when all were taken, else the (0-based) index of the first key
// at its most.
constexpr const char* kClaim = R"lua(
for i = 2, #KEYS do
  local held, most = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  if others(KEYS[i], false) + held + 1 > most then return i - 2 end
end
for i = 2, #KEYS do
  redis.call('HSET', KEYS[i], me, tonumber(ARGV[2 * i]) + 1)
  redis.call('PEXPIRE', KEYS[i], ttl)
end
return -1)lua";

absl::Status Unavailable(const redisContext* c) {
  return absl::UnavailableError(absl::StrCat(
      "the shared limits (Redis) cannot be reached",
      c != nullptr && c->err != 0 ? absl::StrCat(": ", c->errstr) : ""));
}

// Runs `script` with `keys` and `args` (after the keys' count): its reply;
// UNAVAILABLE when Redis cannot be reached, INTERNAL when the script failed.
absl::StatusOr<Reply> RunScript(redisContext* c, absl::string_view script,
                                const std::vector<std::string>& keys,
                                const std::vector<std::string>& args) {
  std::vector<std::string> cmd = {"EVAL", std::string(script),
                                  absl::StrCat(keys.size())};
  cmd.insert(cmd.end(), keys.begin(), keys.end());
  cmd.insert(cmd.end(), args.begin(), args.end());
  Reply r = Command(c, cmd);
  if (r == nullptr) return Unavailable(c);
  if (r->type == REDIS_REPLY_ERROR) {
    return absl::InternalError(
        absl::StrCat("shared limits: ", std::string(r->str, r->len)));
  }
  return r;
}

// RunScript for a reply that must be an array of `keys.size() - skip_keys`
// elements.
absl::StatusOr<Reply> Eval(redisContext* c, absl::string_view script,
                           const std::vector<std::string>& keys,
                           const std::vector<std::string>& args,
                           size_t skip_keys) {
  absl::StatusOr<Reply> r = RunScript(c, script, keys, args);
  if (r.ok() && ((*r)->type != REDIS_REPLY_ARRAY ||
                 (*r)->elements != keys.size() - skip_keys)) {
    return absl::InternalError("shared limits: unexpected reply");
  }
  return r;
}

long long IntegerOf(const redisReply* r) {
  if (r->type == REDIS_REPLY_INTEGER) return r->integer;
  long long n = 0;
  if (r->type == REDIS_REPLY_STRING) {
    (void)absl::SimpleAtoi(absl::string_view(r->str, r->len), &n);
  }
  return n;
}

// Sets `table`'s count of `key` to `e`, kFailures' answer for it (at
// `now`): the count and how long ago its last failure was.
absl::Status RebaseFailures(FailureBackoff* table, absl::string_view key,
                            const redisReply* e, absl::Time now) {
  if (e->type != REDIS_REPLY_ARRAY || e->elements != 2) {
    return absl::InternalError("shared limits: unexpected reply");
  }
  const long long failures = IntegerOf(e->element[0]);
  const long long age_ms = IntegerOf(e->element[1]);
  table->Rebase(key, static_cast<int>(std::min<long long>(failures, 1 << 20)),
                now - absl::Milliseconds(age_ms));
  return absl::OkStatus();
}

}  // namespace

RedisLimits::RedisLimits(RedisLimitsOptions options, SharedTables tables,
                         Clock* clock)
    : options_(std::move(options)),
      tables_(std::move(tables)),
      clock_(clock),
      next_refresh_(clock->Now() + options_.refresh_every),
      worker_("redis limits", options_.redis) {
  for (auto& [name, t] : tables_.rates) t->EnableSharing();
  for (auto& [name, t] : tables_.slots) t->EnableSharing();
  for (auto& [name, t] : tables_.failures) t->EnableSharing();
  if (options_.interval > absl::ZeroDuration()) {
    ticker_ = std::thread([this] { Tick(); });
  }
}

RedisLimits::~RedisLimits() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
    cv_.SignalAll();
  }
  if (ticker_.joinable()) ticker_.join();
}

void RedisLimits::Tick() {
  MutexLock lock(&mu_);
  while (!stop_) {
    cv_.WaitWithDeadline(absl::Now() + options_.interval);
    if (stop_ || in_flight_) continue;
    in_flight_ = true;
    worker_.Queue([this](redisContext* c) {
      (void)Sync(c);
      MutexLock lock(&mu_);
      in_flight_ = false;
    });
  }
}

void RedisLimits::SyncNow(absl::AnyInvocable<void(absl::Status)> done) {
  worker_.Queue([this, done = std::move(done)](redisContext* c) mutable {
    done(Sync(c));
  });
}

std::string RedisLimits::FailureKey(const FailureBackoff* table,
                                    absl::string_view key) const {
  for (const auto& [name, t] : tables_.failures) {
    if (t == table) {
      return absl::StrCat(options_.key_prefix, "failures:", name, ":", key);
    }
  }
  return absl::StrCat(options_.key_prefix, "failures:?:", key);
}

std::string RedisLimits::SlotKey(const SlotLimiter* table,
                                 absl::string_view key) const {
  for (const auto& [name, t] : tables_.slots) {
    if (t == table) return absl::StrCat(options_.key_prefix, "slots:", name, ":", key);
  }
  return absl::StrCat(options_.key_prefix, "slots:?:", key);
}

std::vector<std::string> RedisLimits::SlotHead() const {
  return {options_.server_id,
          absl::StrCat(absl::ToInt64Milliseconds(options_.server_lease)),
          absl::StrCat(absl::ToInt64Milliseconds(3 * options_.refresh_every))};
}

template <class T>
T RedisLimits::OnWorker(absl::AnyInvocable<T(redisContext*)> call) {
  Mutex mu;
  CondVar cv(&mu);
  bool done = false;
  std::optional<T> result;
  worker_.Queue([&](redisContext* c) {
    T answer = call(c);
    MutexLock lock(&mu);
    result.emplace(std::move(answer));
    done = true;
    cv.SignalAll();
  });
  MutexLock lock(&mu);
  while (!done) cv.Wait();
  return *std::move(result);
}

absl::StatusOr<int> RedisLimits::ClaimAll(const std::vector<Claim>& claims) {
  return OnWorker<absl::StatusOr<int>>(
      [&](redisContext* c) -> absl::StatusOr<int> {
        if (c == nullptr) return Unavailable(c);
        std::vector<std::string> keys = {
            absl::StrCat(options_.key_prefix, "servers")};
        std::vector<std::string> args = SlotHead();
        for (const Claim& claim : claims) {
          keys.push_back(SlotKey(claim.table, claim.key));
          args.push_back(absl::StrCat(claim.table->Held(claim.key)));
          args.push_back(absl::StrCat(claim.table->max_per_key()));
        }
        absl::StatusOr<Reply> r = RunScript(c, absl::StrCat(kSlotsPrelude, kClaim), keys, args);
        if (!r.ok()) return r.status();
        if ((*r)->type != REDIS_REPLY_INTEGER) {
          return absl::InternalError("shared limits: unexpected reply");
        }
        const long long first_full = (*r)->integer;
        // Here, before the worker's next call reads the counts again.
        if (first_full < 0) {
          for (const Claim& claim : claims) {
            claim.table->AcquireGranted(claim.key);
          }
        }
        return static_cast<int>(first_full);
      });
}

absl::Status RedisLimits::Refresh(
    const std::vector<SharedFailures::Key>& keys) {
  return OnWorker<absl::Status>([&](redisContext* c) -> absl::Status {
    if (c == nullptr) return Unavailable(c);
    // No success and no failure: kFailures only reads each key.
    std::vector<std::string> names, args = {"0"};
    for (const SharedFailures::Key& k : keys) {
      names.push_back(FailureKey(k.table, k.key));
      args.push_back("-1");
      args.push_back("0");
      args.push_back("0");
    }
    absl::StatusOr<Reply> r = Eval(c, kFailures, names, args, 0);
    if (!r.ok()) return r.status();
    const absl::Time now = clock_->Now();
    for (size_t i = 0; i < keys.size(); ++i) {
      absl::Status s =
          RebaseFailures(keys[i].table, keys[i].key, (*r)->element[i], now);
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  });
}

absl::Status RedisLimits::Sync(redisContext* c) {
  absl::Status status = c == nullptr ? Unavailable(c) : absl::OkStatus();
  if (status.ok()) status = SyncRates(c);
  if (status.ok()) status = SyncFailures(c);
  // Even after a failure: it renews this server's lease, and when it fails
  // too, what it drained is drained again next time.
  absl::Status slots = c == nullptr ? status : SyncSlots(c);
  return status.ok() ? slots : status;
}

absl::Status RedisLimits::SyncRates(redisContext* c) {
  for (auto& [name, table] : tables_.rates) {
    const RateLimiter::Options& o = table->options();
    if (o.per_second <= 0) continue;
    const double per_token_us = 1e6 / o.per_second;
    const std::string per = absl::StrCat(std::llround(per_token_us));
    std::vector<RateLimiter::Taken> taken = table->DrainTaken();
    for (size_t from = 0; from < taken.size(); from += kKeysPerCall) {
      const size_t to = std::min(taken.size(), from + kKeysPerCall);
      std::vector<std::string> keys, args;
      for (size_t i = from; i < to; ++i) {
        keys.push_back(
            absl::StrCat(options_.key_prefix, "rate:", name, ":", taken[i].key));
        args.push_back(absl::StrCat(taken[i].count));
        args.push_back(per);
      }
      absl::StatusOr<Reply> r = Eval(c, kRates, keys, args, 0);
      if (!r.ok()) return r.status();
      for (size_t i = from; i < to; ++i) {
        const double backlog_us =
            static_cast<double>(IntegerOf((*r)->element[i - from]));
        table->Rebase(taken[i].key, o.burst - backlog_us / per_token_us);
      }
    }
  }
  return absl::OkStatus();
}

absl::Status RedisLimits::SyncFailures(redisContext* c) {
  const std::string ttl =
      absl::StrCat(absl::ToInt64Milliseconds(options_.failure_ttl));
  for (auto& [name, table] : tables_.failures) {
    if (!table->enabled()) continue;
    std::vector<FailureBackoff::Change> changes = table->DrainChanges();
    for (size_t from = 0; from < changes.size(); from += kKeysPerCall) {
      const size_t to = std::min(changes.size(), from + kKeysPerCall);
      std::vector<std::string> keys, args = {ttl};
      // Times go as ages: Redis's clock places them.
      const absl::Time sent = clock_->Now();
      const auto age_us = [sent](absl::Time t) {
        return absl::StrCat(
            std::max<int64_t>(absl::ToInt64Microseconds(sent - t), 0));
      };
      for (size_t i = from; i < to; ++i) {
        const FailureBackoff::Change& change = changes[i];
        keys.push_back(FailureKey(table, change.key));
        args.push_back(change.succeeded ? age_us(change.succeeded_at) : "-1");
        args.push_back(absl::StrCat(change.failures));
        args.push_back(change.failures > 0 ? age_us(change.last) : "0");
      }
      absl::StatusOr<Reply> r = Eval(c, kFailures, keys, args, 0);
      if (!r.ok()) return r.status();
      const absl::Time now = clock_->Now();
      for (size_t i = from; i < to; ++i) {
        absl::Status s = RebaseFailures(table, changes[i].key,
                                        (*r)->element[i - from], now);
        if (!s.ok()) return s;
      }
    }
  }
  return absl::OkStatus();
}

absl::Status RedisLimits::SyncSlots(redisContext* c) {
  if (clock_->Now() >= next_refresh_) {
    for (auto& [name, t] : tables_.slots) t->MarkAllChanged();
    next_refresh_ = clock_->Now() + options_.refresh_every;
  }
  struct Changed {
    SlotLimiter* table;
    SlotLimiter::Count count;
    std::string key;
  };
  std::vector<Changed> changed;
  for (auto& [name, table] : tables_.slots) {
    if (!table->enabled()) continue;
    for (SlotLimiter::Count& count : table->DrainChanged()) {
      std::string key = SlotKey(table, count.key);
      changed.push_back(Changed{table, std::move(count), std::move(key)});
    }
  }
  const std::string servers = absl::StrCat(options_.key_prefix, "servers");
  const std::vector<std::string> head = SlotHead();
  // One call at least: it renews this server's lease.
  size_t from = 0;
  do {
    const size_t to = std::min(changed.size(), from + kKeysPerCall);
    std::vector<std::string> keys = {servers}, args = head;
    for (size_t i = from; i < to; ++i) {
      keys.push_back(changed[i].key);
      args.push_back(absl::StrCat(changed[i].count.held));
    }
    absl::StatusOr<Reply> r =
        Eval(c, absl::StrCat(kSlotsPrelude, kSlots), keys, args, 1);
    if (!r.ok()) {
      // Counts are absolute: sending them again is harmless.
      for (size_t i = from; i < changed.size(); ++i) {
        changed[i].table->MarkChanged(changed[i].count.key);
      }
      return r.status();
    }
    for (size_t i = from; i < to; ++i) {
      const long long others = IntegerOf((*r)->element[i - from]);
      changed[i].table->SetOthers(changed[i].count.key,
                                  static_cast<size_t>(std::max(0LL, others)));
    }
    from = to;
  } while (from < changed.size());
  return absl::OkStatus();
}

}  // namespace parley::bus
