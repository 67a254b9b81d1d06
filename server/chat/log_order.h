// Owns: each log's commit through the store, its delivery, its bus follow.
// Promises: every replica delivers a log's events once, in order, committed.
// Does not: decide who subscribes, announce presence, or close anything.
#ifndef PARLEY_SERVER_CHAT_LOG_ORDER_H_
#define PARLEY_SERVER_CHAT_LOG_ORDER_H_

#include <cstdint>
#include <memory>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/chat/channel.h"
#include "server/chat/dispatcher.h"
#include "server/chat/hub_options.h"
#include "server/chat/log_state.h"
#include "server/common/clock.h"
#include "server/model/event.h"
#include "server/store/event_log.h"

namespace parley::chat {

// Called once with the committed and delivered event (or the error) and the
// number of messages the event purged (0 but for a purge).
using CommitDone =
    absl::AnyInvocable<void(absl::StatusOr<model::EventPtr>, int64_t)>;
// A CommitDone for callers that need no purge count.
CommitDone IgnoreCount(EventDone done);

// A log's mutex stamps each event's time and queues it for the store in the
// same critical section; the store numbers a log's events in that order and
// hands each back, in commit order, to the log's dispatcher thread, which
// encodes it, pushes it to every subscriber's channel, acknowledges it, and
// then wakes the readers; the store's threads never wait for the fan-out.
// With a bus, an event committed elsewhere is delivered in its place in the
// sequence, a jump in the numbers read from the store first. Thread-safe;
// everything given must outlive it.
class LogOrder {
 public:
  LogOrder(const HubOptions& options, store::EventLog* store, Clock* clock,
           LogTable* logs, Dispatcher* dispatcher);

  // Sets `event`'s time, commits it to its log unless the log refuses it,
  // delivers it, then calls `done` (inline when refused).
  void Publish(std::shared_ptr<model::Event> event, CommitDone done);
  // Publish to `log`, which accepts it.
  void PublishLocked(const std::shared_ptr<LogState>& log,
                     std::shared_ptr<model::Event> event, CommitDone done)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(log->mu);
  // An event committed by another replica, heard on the bus: delivered on
  // its log's dispatcher unless it was already.
  void OnCommitted(std::shared_ptr<model::Event> event);
  // The bus (re)subscribed `log`: what it may have missed is read from the
  // store, on the log's dispatcher.
  void CatchUp(absl::string_view log);
  // Subscribes `log` on the bus when it has readers and is not subscribed,
  // and the reverse; a pinned log stays.
  void FollowLocked(LogState* log) ABSL_EXCLUSIVE_LOCKS_REQUIRED(log->mu);
  // Follows `log` on the bus for good, readers or not (the lobby).
  void Pin(LogState* log);

 private:
  // After the commit: push to subscribers (advancing `delivered`); the
  // readers to wake are returned.
  Wakeups Deliver(LogState* log, const model::EventPtr& event);
  // Deliver for `event` committed on any replica: nothing when it was
  // delivered already; after the events before it that were not, read from
  // the store, when its number jumps. On `log`'s dispatcher.
  Wakeups DeliverInOrder(LogState* log, std::shared_ptr<model::Event> event);
  // Delivers the store's events of `log` after `after`, through `through`
  // (inclusive), in order, to `wake`; false when the store could not be
  // read (what was delivered before the failure stays). On `log`'s
  // dispatcher.
  bool DeliverFromStore(LogState* log, uint64_t after, uint64_t through,
                        Wakeups* wake);

  const HubOptions& options_;
  store::EventLog* const store_;
  Clock* const clock_;
  LogTable* const logs_;
  Dispatcher* const dispatcher_;
};

}  // namespace parley::chat

#endif  // PARLEY_SERVER_CHAT_LOG_ORDER_H_
