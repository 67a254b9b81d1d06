// Owns: every log's state (mutex, delivered point, subscribers, presence).
// Promises: one state per log id, from the store's last; none once shut down.
// Does not: order, deliver, announce or close anything (the hub's parts do).
#ifndef PARLEY_SERVER_CHAT_LOG_STATE_H_
#define PARLEY_SERVER_CHAT_LOG_STATE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/chat/channel.h"
#include "server/common/mutex.h"
#include "server/model/event.h"
#include "server/store/event_log.h"

namespace parley::chat {

// A new event with a fresh UUID: everything but its time, which the hub
// sets, and its sequence number, which the store assigns.
std::shared_ptr<model::Event> NewEvent(model::EventKind kind,
                                       absl::string_view log);

// UNAVAILABLE, for calls after Hub::Shutdown.
absl::Status ShuttingDownError();

// Who holds a subscription; used for presence events and for closing the
// subscriptions of one user.
struct Subscriber {
  std::string user_id;   // empty for room-token holders
  std::string name;      // shown in presence events; empty: none sent
  std::string room;      // the room's name, for presence events
  std::string token_id;  // the token's id (jti), to end at its sign-out
  // False for a registration that only counts as present and is closed as
  // a stream would be, its events going elsewhere (a gateway's client,
  // docs/fanout.md): nothing is pushed to its channel but the close.
  bool receives_events = true;
};

// One log's ordering point and subscribers. A log is a room's (its id), a
// user's direct-message inbox (model::InboxLog) or the lobby's.
struct LogState {
  // A registered channel.
  struct Sub {
    std::shared_ptr<Channel> channel;
    Subscriber who;
    uint64_t start_after = 0;  // deliver only events above this sequence
    absl::Time since;
    bool counted =
        false;  // in its log's `presence` (a room stream with a name)
    bool session = false;  // a shared session's reader (who.name: its id)
  };
  // One user's (or name's) streams on a room log, for presence events.
  struct Presence {
    Subscriber who;  // as their first stream gave it
    size_t streams = 0;
    absl::Time since;
    // With no stream left: when the leave is announced unless one reopens.
    absl::Time leave_at = absl::InfiniteFuture();
  };

  explicit LogState(std::string id) : id(std::move(id)) {}

  // Pushes a live-only event (sequence 0) to every subscriber.
  void PushLiveLocked(const model::EventPtr& event, Wakeups* wake)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  const std::string id;
  Mutex mu;
  bool dropped ABSL_GUARDED_BY(mu) = false;
  uint64_t delivered ABSL_GUARDED_BY(mu) = 0;
  std::vector<Sub> subs ABSL_GUARDED_BY(mu);
  // By presence key (PresenceTracker). An entry with no streams is a leave
  // in its grace.
  absl::flat_hash_map<std::string, Presence> presence ABSL_GUARDED_BY(mu);
  // Queued for PresenceTracker::AnnounceLeaves (a leave in its grace).
  bool leave_queued ABSL_GUARDED_BY(mu) = false;
  bool on_bus ABSL_GUARDED_BY(mu) = false;  // subscribed on the bus
  bool pinned ABSL_GUARDED_BY(mu) = false;  // on the bus even with no readers
};

// The logs used since start, by id. Thread-safe. `store` must outlive it.
class LogTable {
 public:
  explicit LogTable(store::EventLog* store) : store_(store) {}

  // The state of `log` if it was used since start, else null; and all.
  std::shared_ptr<LogState> Find(absl::string_view log);
  std::vector<std::shared_ptr<LogState>> All();
  // The state of `log`, loaded from the store on first use. UNAVAILABLE
  // once shut down.
  absl::StatusOr<std::shared_ptr<LogState>> Get(absl::string_view log);
  // Adds `log`, delivered through `delivered`, before any use of it.
  std::shared_ptr<LogState> Start(absl::string_view log, uint64_t delivered);

  // The refusal of a publish to `log`, or OK.
  absl::Status CheckPublishableLocked(const LogState& log) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(log.mu);
  // Marks the table shut down; false if it was already.
  bool Shutdown() { return !shutdown_.exchange(true); }
  bool shutting_down() const { return shutdown_.load(); }

 private:
  store::EventLog* const store_;
  std::atomic<bool> shutdown_{false};
  Mutex mu_;  // guards logs_; taken before a LogState::mu, never after
  std::map<std::string, std::shared_ptr<LogState>, std::less<>> logs_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace parley::chat

#endif  // PARLEY_SERVER_CHAT_LOG_STATE_H_
