// Owns: the hub's settings (HubOptions) and its completion callback type.
// Promises: plain values, shared read-only by the hub and its parts.
// Does not: validate them (main.cc does) or hold any state.
#ifndef PARLEY_SERVER_CHAT_HUB_OPTIONS_H_
#define PARLEY_SERVER_CHAT_HUB_OPTIONS_H_

#include <cstddef>
#include <functional>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/bus/bus.h"
#include "server/bus/presence_directory.h"
#include "server/bus/session_directory.h"
#include "server/model/event.h"

namespace parley::chat {

// The limits the hub enforces; each is a server flag (see main.cc).
struct HubOptions {
  size_t channel_capacity = 1024;
  size_t max_message_bytes = 4096;
  size_t max_id_bytes = 128;
  absl::Duration session_idle_timeout = absl::Minutes(5);
  // Lobby sessions joined at once, in all and per owner (client address);
  // past either a join is refused (LOBBY_FULL, TOO_MANY_SESSIONS). 0: any.
  bus::SessionLimits session_limits{/*total=*/10000, /*per_owner=*/100};
  // Fills Event::wire once per event, after its commit (the encoding holds
  // its sequence number) and before it is delivered to any reader, so
  // streams share one encoding instead of making one each. Optional.
  std::function<std::string(const model::Event&)> encoder;
  // Threads that deliver committed events (each log always on the same one).
  size_t fanout_threads = 1;
  // Rooms with this many subscribers or more get no live join/leave events
  // for each stream that opens or closes: n subscribers coming and going
  // would cost n^2 events.
  size_t presence_max_subscribers = 1000;
  // How long a user's leave waits after their last stream on a room ends:
  // a stream that reopens within it (a reconnect) announces nothing. Zero
  // announces the leave at once. Due leaves go out at Hub::AnnounceLeaves.
  absl::Duration presence_leave_grace = absl::ZeroDuration();
  // The bus to the other replicas on the same store (several servers on
  // one database); null: this hub is the only one. With a bus, each event
  // committed here is published on it, the logs with readers here are
  // subscribed, and a log's events reach its readers in sequence order
  // whichever replica committed them: a jump in the numbers (an event of
  // another replica not heard yet, or lost by the bus) is read from the
  // store first. Must outlive the hub.
  bus::Bus* bus = nullptr;
  // With a bus: told, on the bus's thread, of every replica's notices about
  // the directory (Notice::Op::kInvalidateDirectory, kRevokeToken), this
  // one's included; and when the bus is back after a break, so that what
  // those notices would have said is read from the store again.
  std::function<void(const bus::Notice&)> on_directory_notice;
  std::function<void()> on_bus_reconnected;
  // With a bus: the lobby's sessions shared by every replica, so a client
  // may join on one, send on a second and read on a third (see
  // OpenSession). Null: they live in this hub. Must outlive the hub.
  bus::SessionDirectory* sessions = nullptr;
  // With a bus: who is present where, shared by every replica (see
  // SharePresence, ListPresentEverywhere). Must outlive the hub.
  bus::PresenceDirectory* presence = nullptr;
};

// Called once with the committed and delivered event (or the error) on the
// hub's dispatcher thread, or inline on the calling thread when the request
// fails before reaching the store. Must not block.
using EventDone = absl::AnyInvocable<void(absl::StatusOr<model::EventPtr>)>;

}  // namespace parley::chat

#endif  // PARLEY_SERVER_CHAT_HUB_OPTIONS_H_
