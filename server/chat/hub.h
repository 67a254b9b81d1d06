// Owns: its parts (below), the registration of subscriptions, the bus hook.
// Promises: the chat API the services call, each call to the part it concerns.
// Does not: order or deliver committed events, count presence, or close.
//
// A log is a room's (its id), a user's direct-message inbox
// (model::InboxLog) or the lobby's. The parts, each with its contract:
//   LogTable, LogState (log_state.h)  every log's state and mutex
//   Dispatcher (dispatcher.h)         the delivery threads, a log on one
//   LogOrder (log_order.h)            commit through the store, delivery
//                                     in sequence order on every replica
//   PresenceTracker (presence.h)      join/leave events, presence lists
//   Closer (closer.h)                 closes by notice, on every replica
//   Lobby (lobby.h)                   the seed-000 sessions
// Locks: the LogTable's before a LogState::mu, and that before a channel's
// or the tracker's own. Thread-safe. `store` and `clock` must outlive the
// hub.
#ifndef PARLEY_SERVER_CHAT_HUB_H_
#define PARLEY_SERVER_CHAT_HUB_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/bus/bus.h"
#include "server/chat/channel.h"
#include "server/chat/closer.h"
#include "server/chat/dispatcher.h"
#include "server/chat/hub_options.h"
#include "server/chat/lobby.h"
#include "server/chat/log_order.h"
#include "server/chat/log_state.h"
#include "server/chat/presence.h"
#include "server/common/clock.h"
#include "server/model/event.h"
#include "server/store/event_log.h"

namespace parley::chat {

// A registered channel on a log. Events with sequence numbers above
// `live_after` arrive in `channel`; a reader resuming after an earlier
// sequence number reads (resume point, live_after] from the store, all of it
// committed, before draining the channel.
struct Subscription {
  std::string log;
  std::shared_ptr<Channel> channel;
  uint64_t live_after = 0;
};

class Hub : private bus::Bus::Listener {
 public:
  Hub(HubOptions options, store::EventLog* store, Clock* clock);
  // Runs what is still queued for delivery, then stops the dispatcher. The
  // store must have finished its callbacks (Store::Close) before.
  ~Hub();
  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;

  // ---- Seed 000: lobby sessions by client id ----

  // Creates client `id`'s session and broadcasts its join event to everyone
  // joined, the new client included. ALREADY_EXISTS if `id` is joined.
  void Join(absl::string_view id, EventDone done) { Join(id, "", std::move(done)); }
  // A join by a client at `owner` (its address key; counted against
  // HubOptions::session_limits.per_owner unless empty).
  void Join(absl::string_view id, absl::string_view owner, EventDone done);
  // Commits `text` to the lobby's log and broadcasts it to every joined
  // client. FAILED_PRECONDITION if `id` has not joined. A non-empty `key`
  // is stored with the message (see api::IdempotentSends).
  void Send(absl::string_view id, absl::string_view text, EventDone done,
            model::IdempotencyKey key = {});
  // Ends `id`'s session (its reader is woken and finds the channel closed)
  // and broadcasts the leave event to the others.
  void Leave(absl::string_view id, EventDone done);
  // The channel of joined client `id` for one reader, given to `done`
  // (inline on a single hub; with HubOptions::sessions, once the directory
  // and the store have answered, on the hub's threads). With shared
  // sessions each reader gets a channel of its own: what the client's
  // readers have not consumed yet (SessionLease::Consumed), read from the
  // store and bounded as the channel is (the gap at the bound), then the
  // lobby's live events.
  void OpenSession(absl::string_view id, SessionOpened done);
  // The channel of joined client `id`, for a reader to attach to. A single
  // hub's sessions only (tests).
  absl::StatusOr<std::shared_ptr<Channel>> FindChannel(absl::string_view id);
  // Ends every session that has had no reader and no send for longer than
  // the idle timeout, as a leave. Returns how many were reaped (with
  // shared sessions 0: the reaping finishes after the directory answers).
  int ReapIdle();

  // ---- Any log ----

  // Sets `event`'s time (kind, log and content set by the caller, e.g. from
  // NewEvent, its sequence 0), commits it (the store numbers it), delivers
  // it to the log's subscribers, then calls `done`.
  void Publish(std::shared_ptr<model::Event> event, EventDone done);
  // Publish, for a purge: `done` also gets the number of messages purged.
  void PublishPurge(
      std::shared_ptr<model::Event> event,
      absl::AnyInvocable<void(absl::StatusOr<model::EventPtr>, int64_t)> done);

  // Registers a channel on `log`. Room logs (not inboxes) tell the other
  // subscribers with a live-only join event when `who.name` is set and this
  // is the user's (or, without a user id, the name's) only stream on the
  // log, and no leave of theirs is still waiting out its grace.
  absl::StatusOr<Subscription> Subscribe(absl::string_view log,
                                         Subscriber who);
  // Removes a subscription. When it was the user's last stream on a room,
  // the others get a live-only leave event, after
  // HubOptions::presence_leave_grace unless the user is back by then. Safe
  // to call after the channel was closed by the hub.
  void Unsubscribe(const Subscription& subscription);
  // Who has a subscription on `log` that announces itself (Subscriber::name
  // set), or whose leave is still in its grace: one entry per user id, or
  // per name for subscribers without one, ordered by name, at most `limit`;
  // `truncated` tells whether more were.
  std::vector<Present> ListPresent(absl::string_view log, size_t limit,
                                   bool* truncated);
  // ListPresent across every replica, given to `done` (inline without
  // HubOptions::presence; else on the directory's thread): this hub's list
  // now, joined with what the others last shared (SharePresence). When the
  // directory cannot be reached, this hub's list alone.
  void ListPresentEverywhere(
      absl::string_view log, size_t limit,
      absl::AnyInvocable<void(std::vector<Present>, bool truncated)> done);
  // Puts this hub's presence lists in HubOptions::presence: every log with
  // someone present, and an empty list for those that had someone at the
  // last call. Call it periodically, well within the directory's time to
  // live.
  void SharePresence();
  // Sends the leave events whose grace has run out by the clock's now.
  // Returns how many. Call it periodically when the grace is not zero.
  int AnnounceLeaves();
  // Pushes `event` (sequence 0, never stored; e.g. a typing notice) to the
  // current subscribers of event->log, here and (over the bus) on every
  // other replica. Nothing happens when nobody is subscribed. Does not read
  // the store.
  void PushLive(std::shared_ptr<model::Event> event);

  // The closes below happen on every replica of the bus (within the bus's
  // delivery time), here at once.
  // Closes, with `reason`, the channels of `log`'s subscribers that are
  // `user_id` (every subscriber when `user_id` is empty).
  void CloseSubscriptions(absl::string_view log, absl::string_view user_id,
                          CloseReason reason);
  // Closes, with `reason`, the channels of `log`'s subscribers whose user is
  // not in `keep` (room-token holders, with no user, stay).
  void CloseSubscriptionsExcept(absl::string_view log,
                                const absl::flat_hash_set<std::string>& keep,
                                CloseReason reason);
  // Closes every subscription of `user_id` on every log, with `reason`.
  void CloseUserSubscriptions(absl::string_view user_id, CloseReason reason);
  // Token `token_id` was revoked: closes every subscription opened with it,
  // with kSignedOut, here and on every replica, whose
  // HubOptions::on_directory_notice hears it too (to refuse the token).
  void RevokeToken(absl::string_view token_id);
  // Closes every subscription of `log` with kDeleted and refuses further
  // publishing to it (NOT_FOUND). The log stays known, marked dropped, so a
  // late publish cannot start it afresh.
  void DropLog(absl::string_view log);

  // The sequence number of the log's last delivered (so committed) event.
  // Also loads the log's state from the store on first use: call it on a
  // gRPC thread before a store callback (on a store thread) publishes to a
  // log, so the store's threads never read the store.
  absl::StatusOr<uint64_t> LastDelivered(absl::string_view log);

  // Closes every channel with kShutdown and refuses new calls with
  // UNAVAILABLE. Idempotent. Events already queued for the store still
  // complete.
  void Shutdown();

  // The lobby's sessions; with shared sessions, those read here now.
  size_t SessionCount();
  const HubOptions& options() const { return options_; }
  Clock* clock() const { return clock_; }

 private:
  // PushLive to this hub's subscribers only.
  void PushLiveHere(std::shared_ptr<model::Event> event);
  // bus::Bus::Listener: each runs on the log's dispatcher.
  void OnEvent(std::shared_ptr<model::Event> event) override;
  void OnSubscribed(absl::string_view log) override;
  void OnNotice(const bus::Notice& notice) override;
  void OnReconnected() override;

  const HubOptions options_;
  Clock* const clock_;
  // The parts, each built on those before it.
  LogTable logs_;
  Dispatcher dispatcher_;
  LogOrder order_;
  PresenceTracker presence_;
  Closer closer_;
  Lobby lobby_;
};

}  // namespace parley::chat

#endif  // PARLEY_SERVER_CHAT_HUB_H_
