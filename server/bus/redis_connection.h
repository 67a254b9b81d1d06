// What the Redis clients of server/bus share: owning handles for hiredis's
// context and replies, connecting with the outage logged once, pipelined
// and plain commands, and a worker thread with its own connection.
#ifndef PARLEY_SERVER_BUS_REDIS_CONNECTION_H_
#define PARLEY_SERVER_BUS_REDIS_CONNECTION_H_

#include <hiredis/hiredis.h>

#include <cstddef>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/common/mutex.h"

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

// Runs `args` and waits for the reply; null (and c->err set) when the
// connection broke or the reply did not come within the timeout.
Reply Command(redisContext* c, const std::vector<std::string>& args);

// One connection to Redis, on a thread of its own that runs calls in the
// order queued. A call gets the connection, or null while Redis cannot be
// reached (a connection is tried again at most every `retry_after`), and
// then answers at once. Thread-safe; Queue never waits for Redis.
class RedisWorker {
 public:
  struct Options {
    std::string host = "127.0.0.1";
    int port = 6379;
    // Connecting, and each command's reply.
    absl::Duration timeout = absl::Seconds(1);
    absl::Duration retry_after = absl::Milliseconds(200);
    // Calls waiting for the thread; past this a call gets null at once.
    size_t max_queued = 100000;
  };
  using Call = absl::AnyInvocable<void(redisContext*)>;

  // `name` is the client's in the log lines of outages.
  RedisWorker(std::string name, Options options);
  // Runs what is still queued with null, then stops.
  ~RedisWorker();
  RedisWorker(const RedisWorker&) = delete;
  RedisWorker& operator=(const RedisWorker&) = delete;

  void Queue(Call call);

 private:
  void Run();

  const std::string name_;
  const Options options_;
  Mutex mu_;
  CondVar cv_{&mu_};
  std::deque<Call> queue_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace parley::bus

#endif  // PARLEY_SERVER_BUS_REDIS_CONNECTION_H_
