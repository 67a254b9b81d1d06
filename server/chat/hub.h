// The hub: the lobby's ordered log, the sessions of joined clients, and the
// fan-out of every event to each session's bounded channel.
//
// Ordering: one lock orders every event of the room; an event is committed to
// the store and pushed to every channel before the next one is sequenced, so
// all readers see the same order. Readers are woken after the lock is
// released. Thread-safe. `store` and `clock` must outlive the hub.
#ifndef PARLEY_SERVER_CHAT_HUB_H_
#define PARLEY_SERVER_CHAT_HUB_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/chat/channel.h"
#include "server/chat/event.h"
#include "server/common/clock.h"
#include "server/common/mutex.h"
#include "server/store/store.h"

namespace parley::chat {

// The limits the hub enforces; each is a server flag (see main.cc).
struct HubOptions {
  size_t channel_capacity = 1024;
  size_t max_message_bytes = 4096;
  size_t max_id_bytes = 128;
  absl::Duration session_idle_timeout = absl::Minutes(5);
};

inline constexpr absl::string_view kLobby = "lobby";

class Hub {
 public:
  Hub(HubOptions options, store::Store* store, Clock* clock);
  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;

  // Creates client `id`'s session and broadcasts its join event to everyone
  // joined, the new client included. ALREADY_EXISTS if `id` is joined.
  absl::StatusOr<EventPtr> Join(absl::string_view id);

  // Commits `text` to the lobby's log and broadcasts it to every joined
  // client. FAILED_PRECONDITION if `id` has not joined.
  absl::StatusOr<EventPtr> Send(absl::string_view id, absl::string_view text);

  // Ends `id`'s session (its reader is woken and finds the channel closed)
  // and broadcasts the leave event to the others.
  absl::StatusOr<EventPtr> Leave(absl::string_view id);

  // The channel of joined client `id`, for a reader to attach to.
  absl::StatusOr<std::shared_ptr<Channel>> FindChannel(absl::string_view id);

  // Ends every session that has had no reader and no send for longer than
  // the idle timeout, as a leave. Returns how many were reaped.
  int ReapIdle();

  // Closes every channel with kShutdown and refuses new calls with
  // UNAVAILABLE. Idempotent.
  void Shutdown();

  size_t SessionCount();
  const HubOptions& options() const { return options_; }
  Clock* clock() const { return clock_; }

 private:
  struct Session {
    std::string id;
    std::shared_ptr<Channel> channel;
  };
  using Wakeups = std::vector<std::shared_ptr<ChannelReader>>;

  // Gives `event` the next sequence number and the time, commits it, and
  // pushes it to every joined session; collects the readers to wake.
  absl::StatusOr<EventPtr> PublishLocked(std::shared_ptr<Event> event,
                                         Wakeups* wake)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends `id`'s session and publishes `left`, its leave event.
  absl::StatusOr<EventPtr> RemoveLocked(absl::string_view id,
                                        CloseReason reason,
                                        std::shared_ptr<Event> left,
                                        Wakeups* wake)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CheckRunningLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static void WakeAll(const Wakeups& wake);

  const HubOptions options_;
  store::Store* const store_;
  Clock* const clock_;

  Mutex mu_;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t last_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, std::unique_ptr<Session>, std::less<>> sessions_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace parley::chat

#endif  // PARLEY_SERVER_CHAT_HUB_H_
