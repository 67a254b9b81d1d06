// The bus between replicas: several servers on one database each deliver
// to their own readers, and learn of the events committed elsewhere here.
// After its commit, a replica publishes each event; a replica subscribes to
// a log while it has readers of it. The bus may lose or repeat events (a
// broken connection): the store stays the truth, and a listener that sees
// a sequence jump, or is told the bus reconnected, reads what it missed
// from the store. Implementations are thread-safe; nothing here blocks.
#ifndef PARLEY_SERVER_BUS_BUS_H_
#define PARLEY_SERVER_BUS_BUS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "server/model/event.h"

namespace parley::bus {

// What one replica asks of every replica: to close streams, or to forget
// what it cached of the directory.
struct Notice {
  enum class Op {
    kClose = 1,        // `log`'s streams of `user_id` (all when empty)
    kCloseExcept = 2,  // `log`'s streams whose user is not in `keep`
    kCloseUser = 3,    // `user_id`'s streams on every log
    kDropLog = 4,      // every stream of `log`; no more publishing to it
    kInvalidateDirectory = 5,  // users, rooms or memberships changed
    kRevokeToken = 6,  // token `token_id` was revoked: refuse it, end its
                       // streams
    kEndSession = 7,   // the readers of lobby session `user_id` (its id)
  };
  Op op = Op::kClose;
  std::string log;
  std::string user_id;
  std::vector<std::string> keep;
  int reason = 0;  // the hub's CloseReason
  std::string token_id;
};

class Bus {
 public:
  // What a replica hears from the bus; called on the bus's own thread, in
  // the order published per log. Must not block.
  class Listener {
   public:
    virtual ~Listener() = default;
    // An event committed by any replica (this one included) to a log it
    // subscribed to, or a live event (sequence 0, e.g. typing) published
    // by another replica: a replica delivers its own live events itself.
    virtual void OnEvent(std::shared_ptr<model::Event> event) = 0;
    // From now on every event published to `log` is heard; what was
    // published before (while the bus was away, or before the log was
    // subscribed) may not have been: read it from the store. Called after
    // each Subscribe takes effect, and for every subscribed log after a
    // reconnection.
    virtual void OnSubscribed(absl::string_view log) = 0;
    // A notice of Broadcast, from any replica (this one included).
    virtual void OnNotice(const Notice& notice) = 0;
    // The bus is back after a break: the notices broadcast meanwhile are
    // lost, so what they would have told (a cache to drop, a revoked token)
    // must be fetched from the store again. Called once the notices are
    // heard again.
    virtual void OnReconnected() {}
  };

  virtual ~Bus() = default;
  // Set once, before the first Subscribe; must outlive the bus's use.
  virtual void SetListener(Listener* listener) = 0;
  // Sends `event` (committed, numbered) to the replicas subscribed to its
  // log. Best effort: never waits, never fails.
  virtual void Publish(const model::Event& event) = 0;
  // Sends `bytes` to every replica, this one included. Best effort, as
  // Publish: a notice lost while the bus is away is not repeated.
  virtual void Broadcast(const Notice& notice) = 0;
  // Starts and stops hearing `log`'s events (the hub calls Subscribe when
  // a log's first reader comes and Unsubscribe when its last goes).
  virtual void Subscribe(absl::string_view log) = 0;
  virtual void Unsubscribe(absl::string_view log) = 0;
};

}  // namespace parley::bus

#endif  // PARLEY_SERVER_BUS_BUS_H_
