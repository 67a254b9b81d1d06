#include "server/bus/redis_presence.h"

#include <hiredis/hiredis.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "parley/internal/bus.pb.h"

namespace parley::bus {

RedisPresenceDirectory::RedisPresenceDirectory(RedisPresenceOptions options)
    : options_(std::move(options)), worker_("redis presence", options_.redis) {}

void RedisPresenceDirectory::Put(std::string replica, std::string log,
                                 std::vector<PresentEntry> entries,
                                 absl::Time now) {
  worker_.Queue([this, replica = std::move(replica), log = std::move(log),
                 entries = std::move(entries), now](redisContext* c) {
    if (c == nullptr) return;  // put again at the next round
    const std::string key = options_.key_prefix + log;
    if (entries.empty()) {
      Command(c, {"HDEL", key, replica});
      return;
    }
    internal::PresenceSnapshot snapshot;
    for (const PresentEntry& e : entries) {
      internal::PresenceSnapshot::Entry* out = snapshot.add_entries();
      out->set_user_id(e.user_id);
      out->set_name(e.name);
      out->set_since_us(absl::ToUnixMicros(e.since));
    }
    snapshot.set_expire_us(absl::ToUnixMicros(now + options_.ttl));
    if (Command(c, {"HSET", key, replica, snapshot.SerializeAsString()}) ==
        nullptr) {
      return;
    }
    Command(c, {"PEXPIRE", key,
                absl::StrCat(absl::ToInt64Milliseconds(2 * options_.ttl))});
  });
}

void RedisPresenceDirectory::List(std::string log, std::string except,
                                  absl::Time now, Listed done) {
  worker_.Queue([this, log = std::move(log), except = std::move(except), now,
                 done = std::move(done)](redisContext* c) mutable {
    if (c == nullptr) {
      return done(absl::UnavailableError(
          "presence (Redis) cannot be reached"));
    }
    Reply r = Command(c, {"HGETALL", options_.key_prefix + log});
    if (r == nullptr || r->type != REDIS_REPLY_ARRAY) {
      return done(absl::UnavailableError(absl::StrCat(
          "presence (Redis): ", c->err != 0 ? c->errstr : "bad reply")));
    }
    std::vector<PresentEntry> all;
    // Field, value, field, value...
    for (size_t i = 1; i < r->elements; i += 2) {
      const redisReply* field = r->element[i - 1];
      const redisReply* value = r->element[i];
      if (field->type == REDIS_REPLY_STRING &&
          absl::string_view(field->str, field->len) == except) {
        continue;
      }
      internal::PresenceSnapshot snapshot;
      if (value->type != REDIS_REPLY_STRING ||
          !snapshot.ParseFromArray(value->str, static_cast<int>(value->len)) ||
          absl::FromUnixMicros(snapshot.expire_us()) <= now) {
        continue;
      }
      for (const auto& e : snapshot.entries()) {
        all.push_back(PresentEntry{e.user_id(), e.name(),
                                   absl::FromUnixMicros(e.since_us())});
      }
    }
    done(std::move(all));
  });
}

}  // namespace parley::bus
