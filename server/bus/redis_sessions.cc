#include "server/bus/redis_sessions.h"

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/bus/redis_connection.h"

namespace parley::bus {
namespace {

// KEYS: the session's hash, the active set, the owners' counts. ARGV: id,
// now (ms), owner, the most sessions in all and per owner (0: any).
// 0: there already; -1: the lobby is full; -2: the owner has its most.
constexpr const char* kCreate = R"lua(
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local total, per_owner = tonumber(ARGV[4]), tonumber(ARGV[5])
if total > 0 and redis.call('ZCARD', KEYS[2]) >= total then return -1 end
if ARGV[3] ~= '' and per_owner > 0 and
   tonumber(redis.call('HGET', KEYS[3], ARGV[3]) or '0') >= per_owner then
  return -2
end
redis.call('HSET', KEYS[1], 'joined', ARGV[2], 'owner', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
if ARGV[3] ~= '' then redis.call('HINCRBY', KEYS[3], ARGV[3], 1) end
return 1)lua";

// Takes session hash `key` off its owner's count (a Lua function the
// removing scripts start with).
constexpr const char* kDisown = R"lua(
local function disown(key, owners)
  local o = redis.call('HGET', key, 'owner')
  if o and o ~= '' and redis.call('HINCRBY', owners, o, -1) <= 0 then
    redis.call('HDEL', owners, o)
  end
end
)lua";

// ARGV: id, now, cursor.
constexpr const char* kSetCursor = R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local c = tonumber(redis.call('HGET', KEYS[1], 'cursor') or '-1')
if tonumber(ARGV[3]) > c then redis.call('HSET', KEYS[1], 'cursor', ARGV[3]) end
redis.call('ZADD', KEYS[2], 'XX', 'GT', ARGV[2], ARGV[1])
return 1)lua";

// ARGV: id, now. -2: no session; -1: no cursor yet; else the cursor.
constexpr const char* kGet = R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then return -2 end
redis.call('ZADD', KEYS[2], 'XX', 'GT', ARGV[2], ARGV[1])
local c = redis.call('HGET', KEYS[1], 'cursor')
if not c then return -1 end
return c)lua";

// KEYS: the session's hash, the active set, the owners' counts. ARGV: id.
constexpr const char* kRemoveBody = R"lua(
redis.call('ZREM', KEYS[2], ARGV[1])
disown(KEYS[1], KEYS[3])
return redis.call('DEL', KEYS[1]))lua";

// KEYS: the active set, the owners' counts. ARGV: before (ms), the key
// prefix, the most to remove in one call.
constexpr const char* kRemoveIdleBody = R"lua(
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1],
                       'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  disown(ARGV[2] .. id, KEYS[2])
  redis.call('DEL', ARGV[2] .. id)
end
return ids)lua";

const std::string& RemoveScript() {
  static const std::string* script =
      new std::string(absl::StrCat(kDisown, kRemoveBody));
  return *script;
}

const std::string& RemoveIdleScript() {
  static const std::string* script =
      new std::string(absl::StrCat(kDisown, kRemoveIdleBody));
  return *script;
}

constexpr int kMaxReapedPerCall = 1000;

absl::Status Unavailable(const redisContext* c) {
  return absl::UnavailableError(absl::StrCat(
      "the session directory (Redis) cannot be reached",
      c != nullptr && c->err != 0 ? absl::StrCat(": ", c->errstr) : ""));
}

std::string Millis(absl::Time t) { return absl::StrCat(absl::ToUnixMillis(t)); }

// The integer a script answered, or an error.
absl::StatusOr<long long> Integer(redisContext* c, const Reply& r) {
  if (r == nullptr) return Unavailable(c);
  if (r->type == REDIS_REPLY_INTEGER) return r->integer;
  if (r->type == REDIS_REPLY_ERROR) {
    return absl::InternalError(
        absl::StrCat("session directory: ", std::string(r->str, r->len)));
  }
  return absl::InternalError("session directory: unexpected reply");
}

}  // namespace

RedisSessionDirectory::RedisSessionDirectory(RedisSessionsOptions options)
    : options_(std::move(options)), worker_("redis sessions", options_.redis) {}

void RedisSessionDirectory::Queue(RedisWorker::Call call) {
  worker_.Queue(std::move(call));
}

void RedisSessionDirectory::Create(std::string id, std::string owner,
                                   absl::Time now, SessionLimits limits,
                                   Done done) {
  Queue([this, id = std::move(id), owner = std::move(owner), now, limits,
         done = std::move(done)](redisContext* c) mutable {
    if (c == nullptr) return done(Unavailable(c));
    Reply r = Command(
        c, {"EVAL", kCreate, "3", options_.key_prefix + id, options_.active_key,
            options_.owners_key, id, Millis(now), owner,
            absl::StrCat(limits.total), absl::StrCat(limits.per_owner)});
    absl::StatusOr<long long> n = Integer(c, r);
    if (!n.ok()) return done(n.status());
    switch (*n) {
      case 1:
        return done(absl::OkStatus());
      case -1:
        return done(LobbyFull());
      case -2:
        return done(TooManySessions());
      default:
        return done(absl::AlreadyExistsError(absl::StrCat("session ", id)));
    }
  });
}

void RedisSessionDirectory::SetCursor(std::string id, uint64_t cursor,
                                      absl::Time now, Done done) {
  Queue([this, id = std::move(id), cursor, now,
         done = std::move(done)](redisContext* c) mutable {
    if (c == nullptr) return done(Unavailable(c));
    Reply r = Command(c, {"EVAL", kSetCursor, "2", options_.key_prefix + id,
                          options_.active_key, id, Millis(now),
                          absl::StrCat(cursor)});
    absl::StatusOr<long long> n = Integer(c, r);
    if (!n.ok()) return done(n.status());
    done(*n == 1 ? absl::OkStatus()
                 : absl::NotFoundError(absl::StrCat("session ", id)));
  });
}

void RedisSessionDirectory::Get(
    std::string id, absl::Time now,
    absl::AnyInvocable<void(absl::StatusOr<uint64_t>)> done) {
  Queue([this, id = std::move(id), now,
         done = std::move(done)](redisContext* c) mutable {
    if (c == nullptr) return done(Unavailable(c));
    Reply r = Command(c, {"EVAL", kGet, "2", options_.key_prefix + id,
                          options_.active_key, id, Millis(now)});
    uint64_t cursor;
    if (r != nullptr &&
        r->type == REDIS_REPLY_STRING &&
        absl::SimpleAtoi(absl::string_view(r->str, r->len), &cursor)) {
      return done(cursor);
    }
    absl::StatusOr<long long> n = Integer(c, r);
    if (!n.ok()) return done(n.status());
    done(absl::NotFoundError(absl::StrCat("session ", id)));
  });
}

void RedisSessionDirectory::Remove(
    std::string id, absl::AnyInvocable<void(absl::StatusOr<bool>)> done) {
  Queue([this, id = std::move(id),
         done = std::move(done)](redisContext* c) mutable {
    if (c == nullptr) return done(Unavailable(c));
    Reply r = Command(c, {"EVAL", RemoveScript(), "3",
                          options_.key_prefix + id, options_.active_key,
                          options_.owners_key, id});
    absl::StatusOr<long long> n = Integer(c, r);
    if (!n.ok()) return done(n.status());
    done(*n > 0);
  });
}

void RedisSessionDirectory::Touch(std::vector<std::string> ids,
                                  absl::Time now) {
  if (ids.empty()) return;
  Queue([this, ids = std::move(ids), now](redisContext* c) {
    if (c == nullptr) return;
    std::vector<std::string> args = {"ZADD", options_.active_key, "XX", "GT"};
    const std::string at = Millis(now);
    for (const std::string& id : ids) {
      args.push_back(at);
      args.push_back(id);
    }
    Command(c, args);
  });
}

void RedisSessionDirectory::RemoveIdle(
    absl::Time before,
    absl::AnyInvocable<void(absl::StatusOr<std::vector<std::string>>)> done) {
  Queue([this, before, done = std::move(done)](redisContext* c) mutable {
    if (c == nullptr) return done(Unavailable(c));
    Reply r = Command(c, {"EVAL", RemoveIdleScript(), "2",
                          options_.active_key, options_.owners_key,
                          Millis(before), options_.key_prefix,
                          absl::StrCat(kMaxReapedPerCall)});
    if (r == nullptr || r->type != REDIS_REPLY_ARRAY) {
      absl::StatusOr<long long> n = Integer(c, r);
      return done(n.ok() ? absl::InternalError("session directory: "
                                               "unexpected reply")
                         : n.status());
    }
    std::vector<std::string> ids;
    for (size_t i = 0; i < r->elements; ++i) {
      const redisReply* e = r->element[i];
      if (e->type == REDIS_REPLY_STRING) ids.emplace_back(e->str, e->len);
    }
    done(std::move(ids));
  });
}

}  // namespace parley::bus
