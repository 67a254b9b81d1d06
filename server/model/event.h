// An entry of a log (a room's, or a user's direct-message inbox) as the hub
// delivers it and the store keeps it. Events are built once and shared
// immutably between every channel that carries them. The model layer sits
// below both the store and the chat layer: both speak in these types.
#ifndef PARLEY_SERVER_MODEL_EVENT_H_
#define PARLEY_SERVER_MODEL_EVENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace parley::model {

// Mirrors parley.v1.EventKind (see proto/parley/v1/resources.proto).
enum class EventKind {
  kMessage,
  kJoin,
  kLeave,
  // Not a log entry: tells a reader that the events with sequence numbers
  // gap_first..gap_last did not fit in its channel and were not queued.
  kGap,
  kEdit,
  kDelete,
  kPurge,
  kMemberAdded,
  kMemberRemoved,
  // Live only, never stored: `sender` is typing until `typing_expire`.
  kTyping,
};

// The client's key of an idempotent send (see parley.v1.PostMessageRequest):
// stored with the message in the same transaction, so a retry with the same
// scope and key finds it. Empty `key`: not an idempotent send.
struct IdempotencyKey {
  std::string scope;   // who sent: "user:<uuid>", "client:<id>", ...
  std::string key;     // the client's key
  std::string digest;  // of the destination and text, to refuse reuse
  // A stored send of this key older than this has expired, and this send
  // may take the key over; a newer one makes the append fail
  // (IDEMPOTENCY_KEY_TAKEN: another server stored the key first).
  absl::Time expired_before = absl::InfinitePast();
};

struct MessageVersion {
  std::string text;
  absl::Time time;
};

struct Event {
  EventKind kind = EventKind::kMessage;
  // The log the event belongs to: a room's id, or model::InboxLog(user).
  std::string log;
  std::string room_id;  // empty for direct messages
  std::string room;     // the room's name; empty for direct messages
  // 1-based position in the log, assigned by the store inside the commit
  // that appends the event (gapless: one more than the log's last); 0 for
  // gaps and live-only events (room subscribers' join/leave).
  uint64_t sequence = 0;
  std::string id;  // UUID; empty for gaps
  std::string sender;     // display name / lobby client id
  std::string sender_id;  // user UUID; empty when anonymous
  std::string recipient_id;  // direct messages
  std::string recipient;     // direct messages: the recipient's username
  std::string text;
  absl::Time time;
  std::string target_id;  // edit, delete: message id; member_*: user id
  uint64_t target_sequence = 0;  // edit, delete
  uint64_t purge_through = 0;    // purge
  // Current state of a message read from history.
  absl::Time update_time = absl::InfinitePast();  // InfinitePast: never edited
  bool deleted = false;
  std::vector<MessageVersion> previous_versions;  // oldest first
  // Gap markers.
  uint64_t gap_first = 0;
  uint64_t gap_last = 0;
  // Typing events: when the notice lapses.
  absl::Time typing_expire;
  // Sends with a client key; never delivered.
  IdempotencyKey idempotency;
  // The event as the streaming transport writes it, encoded once by the
  // hub's encoder (HubOptions::encoder) for every reader; empty for events
  // that did not go through the hub (history, gap markers).
  std::string wire;
};

using EventPtr = std::shared_ptr<const Event>;

}  // namespace parley::model

#endif  // PARLEY_SERVER_MODEL_EVENT_H_
