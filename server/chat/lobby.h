// Owns: the seed-000 sessions by client id (with shared ones, the readers).
// Promises: joins, sends, leaves committed in order; readers miss nothing.
// Does not: serve any other log, nor order or deliver events itself.
#ifndef PARLEY_SERVER_CHAT_LOBBY_H_
#define PARLEY_SERVER_CHAT_LOBBY_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/chat/channel.h"
#include "server/chat/closer.h"
#include "server/chat/dispatcher.h"
#include "server/chat/hub_options.h"
#include "server/chat/log_order.h"
#include "server/chat/log_state.h"
#include "server/common/clock.h"
#include "server/model/event.h"
#include "server/store/event_log.h"

namespace parley::chat {

// A reader's hold on a lobby client's channel (Hub::OpenSession): a poll or
// a stream takes the client's events from channel() while it holds it.
// Thread-safe.
class SessionLease {
 public:
  virtual ~SessionLease() = default;
  const std::shared_ptr<Channel>& channel() const { return channel_; }
  // The reader handed the client its events through `sequence` (0: none);
  // `done` runs once the client's next reader, on any replica, would start
  // after them. On a single hub at once.
  virtual void Consumed(uint64_t sequence, absl::AnyInvocable<void()> done) = 0;
  // The reader is gone. Call once, after its last Consumed.
  virtual void Release() = 0;

 protected:
  explicit SessionLease(std::shared_ptr<Channel> channel)
      : channel_(std::move(channel)) {}

 private:
  const std::shared_ptr<Channel> channel_;
};
using SessionOpened =
    absl::AnyInvocable<void(absl::StatusOr<std::shared_ptr<SessionLease>>)>;

// The lobby's log is the store's; on a single hub a session is a channel
// registered on it, and with HubOptions::sessions the directory says who is
// joined and where each client's readers are, and a reader's channel is
// built from the store when it comes. Thread-safe; everything given must
// outlive it. The methods are Hub's (see hub.h).
class Lobby {
 public:
  // Starts the lobby's log after what the store has.
  Lobby(const HubOptions& options, store::EventLog* store, Clock* clock,
        LogTable* logs, Dispatcher* dispatcher, LogOrder* order,
        Closer* closer);
  Lobby(const Lobby&) = delete;
  Lobby& operator=(const Lobby&) = delete;

  void Join(absl::string_view id, absl::string_view owner, EventDone done);
  void Send(absl::string_view id, absl::string_view text, EventDone done,
            model::IdempotencyKey key);
  void Leave(absl::string_view id, EventDone done);
  void OpenSession(absl::string_view id, SessionOpened done);
  absl::StatusOr<std::shared_ptr<Channel>> FindChannel(absl::string_view id);
  int ReapIdle();
  size_t SessionCount();
  // The lobby's log.
  LogState* log() const { return log_.get(); }

 private:
  class SharedLease;
  // With HubOptions::sessions.
  void JoinShared(std::string id, std::string owner, EventDone done);
  void SendShared(std::string id, std::string text, EventDone done,
                  model::IdempotencyKey key);
  void LeaveShared(std::string id, EventDone done);
  void OpenSharedSession(std::string id, SessionOpened done);
  // On the lobby's dispatcher: a channel holding what follows `cursor`,
  // registered for the live events after it.
  void AttachSharedSession(const std::string& id, uint64_t cursor,
                           SessionOpened done);
  void ReapIdleShared();
  // Closes every replica's readers of shared session `id`.
  void EndSession(const std::string& id, CloseReason reason);
  // Removes single-hub session `id` (closing its channel); false when
  // absent.
  bool RemoveSessionLocked(absl::string_view id, CloseReason reason,
                           Wakeups* wake)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(log_->mu);
  void Publish(std::shared_ptr<model::Event> event, EventDone done);

  const HubOptions& options_;
  store::EventLog* const store_;
  Clock* const clock_;
  LogTable* const logs_;
  Dispatcher* const dispatcher_;
  LogOrder* const order_;
  Closer* const closer_;
  const std::shared_ptr<LogState> log_;
  // A single hub's sessions by client id.
  std::map<std::string, std::shared_ptr<Channel>, std::less<>> sessions_
      ABSL_GUARDED_BY(log_->mu);
  // Their owners (those that have one), and how many each owner has.
  std::map<std::string, std::string, std::less<>> owner_of_
      ABSL_GUARDED_BY(log_->mu);
  std::map<std::string, size_t, std::less<>> owned_ ABSL_GUARDED_BY(log_->mu);
};

}  // namespace parley::chat

#endif  // PARLEY_SERVER_CHAT_LOBBY_H_
