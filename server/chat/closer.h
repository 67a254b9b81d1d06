// Owns: closing subscriptions by bus::Notice, here and on every replica.
// Promises: asked here, broadcast and done at once; heard, done here only.
// Does not: open subscriptions, nor refuse tokens (on_directory_notice does).
#ifndef PARLEY_SERVER_CHAT_CLOSER_H_
#define PARLEY_SERVER_CHAT_CLOSER_H_

#include <memory>

#include "absl/functional/function_ref.h"
#include "server/bus/bus.h"
#include "server/chat/channel.h"
#include "server/chat/hub_options.h"
#include "server/chat/log_order.h"
#include "server/chat/log_state.h"
#include "server/chat/presence.h"

namespace parley::chat {

// The streams a close ends leave their rooms at once, without the leave's
// grace (it is no reconnect). Thread-safe; everything given must outlive it.
class Closer {
 public:
  Closer(const HubOptions& options, LogTable* logs, LogOrder* order,
         PresenceTracker* presence);

  // Does what `notice` asks here; tells the other replicas first unless it
  // came `from_bus`. A dropped log stays known, marked, so a late publish
  // finds it dropped instead of starting it afresh.
  void Close(const bus::Notice& notice, bool from_bus);
  // Closes every subscription here with `reason` (the hub's shutdown).
  void CloseAll(CloseReason reason);

 private:
  using Match = absl::FunctionRef<bool(const LogState::Sub&)>;
  // Closes the subscriptions of `log` that `close` matches.
  void CloseWhere(const std::shared_ptr<LogState>& log, Match close,
                  CloseReason reason);
  // CloseWhere on every log.
  void CloseEverywhere(Match close, CloseReason reason);

  const HubOptions& options_;
  LogTable* const logs_;
  LogOrder* const order_;
  PresenceTracker* const presence_;
};

}  // namespace parley::chat

#endif  // PARLEY_SERVER_CHAT_CLOSER_H_
