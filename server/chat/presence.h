// Owns: who is present per log, leaves in their grace, what was last shared.
// Promises: one live join/leave per person's first/last stream on a room.
// Does not: register or close subscriptions, nor store presence events.
#ifndef PARLEY_SERVER_CHAT_PRESENCE_H_
#define PARLEY_SERVER_CHAT_PRESENCE_H_

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/chat/channel.h"
#include "server/chat/hub_options.h"
#include "server/chat/log_state.h"
#include "server/common/clock.h"
#include "server/common/mutex.h"

namespace parley::chat {

// Someone with a stream open on a log (see Hub::ListPresent).
struct Present {
  std::string user_id;  // empty for room-token holders and lobby clients
  std::string name;
  absl::Time since;  // when their first stream opened (a reconnect within
                     // the leave grace keeps it)
};

// Presence is per person: by user id, or by name for subscribers without
// one (room-token holders); direct-message inboxes have none. Joins and
// leaves go to this replica's subscribers and, over the bus, the others'.
// Thread-safe; everything given must outlive it. A LogState::mu is taken before
// the tracker's own mutexes, never after.
class PresenceTracker {
 public:
  PresenceTracker(const HubOptions& options, Clock* clock, LogTable* logs);

  // A stream of `who` opens on `log` (before it joins log->subs): counted
  // when it is a room's with a name, and the join announced when it is
  // their first, unless they are back within their leave's grace. Returns
  // whether it was counted (LogState::Sub::counted).
  bool ArriveLocked(LogState* log, const Subscriber& who, Wakeups* wake)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(log->mu);
  // A counted stream of `who` on `log` ended: at their last, the leave is
  // announced, at once or after `grace`.
  void DepartLocked(const std::shared_ptr<LogState>& log, const Subscriber& who,
                    absl::Duration grace, Wakeups* wake)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(log->mu);
  // Announces the leaves whose grace has run out; returns how many.
  int AnnounceLeaves();

  // See Hub::ListPresent, ListPresentEverywhere and SharePresence.
  std::vector<Present> List(absl::string_view log, size_t limit,
                            bool* truncated);
  void ListEverywhere(
      absl::string_view log, size_t limit,
      absl::AnyInvocable<void(std::vector<Present>, bool truncated)> done);
  void Share();

 private:
  // Pushes a live-only event of `kind` (join or leave) by `who` to `log`'s
  // subscribers, here and on the bus; not to a large room, a dropped log or
  // after shutdown.
  void AnnounceLocked(LogState* log, model::EventKind kind,
                      const Subscriber& who, Wakeups* wake)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(log->mu);
  // Queues `log` for AnnounceLeaves.
  void QueueLeavesLocked(const std::shared_ptr<LogState>& log)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(log->mu);

  const HubOptions& options_;
  Clock* const clock_;
  LogTable* const logs_;
  // This replica's name in the presence directory.
  const std::string replica_;

  // Logs with a leave in its grace (LogState::leave_queued).
  Mutex leaves_mu_;
  std::vector<std::shared_ptr<LogState>> pending_leaves_
      ABSL_GUARDED_BY(leaves_mu_);
  // The logs Share put a non-empty list for last time.
  Mutex shared_mu_;
  absl::flat_hash_set<std::string> shared_ ABSL_GUARDED_BY(shared_mu_);
};

}  // namespace parley::chat

#endif  // PARLEY_SERVER_CHAT_PRESENCE_H_
