// What the Redis clients of server/bus share: owning handles for hiredis's
// context and replies, connecting with the outage logged once, and
// pipelined commands.
#ifndef PARLEY_SERVER_BUS_REDIS_CONNECTION_H_
#define PARLEY_SERVER_BUS_REDIS_CONNECTION_H_

#include <hiredis/hiredis.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace parley::bus {

struct ContextDeleter {
  void operator()(redisContext* c) const { redisFree(c); }
};
using Context = std::unique_ptr<redisContext, ContextDeleter>;
struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

// A connection to `host`:`port`, or null. `logged` carries whether the
// outage was logged already: `what` names the client in the one warning
// per outage and the one notice when it is over.
Context Connect(absl::string_view what, const std::string& host, int port,
                absl::Duration timeout, bool* logged);

// Queues a command of `args` on `c` (sent by FlushOutput; no reply read).
void Append(redisContext* c, const std::vector<std::string>& args);

// Writes what is buffered; false when the connection broke.
bool FlushOutput(redisContext* c);

}  // namespace parley::bus

#endif  // PARLEY_SERVER_BUS_REDIS_CONNECTION_H_
