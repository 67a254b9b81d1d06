// An entry of a room's ordered log as the hub delivers it. Events are built
// once and shared immutably between every channel that carries them.
#ifndef PARLEY_SERVER_CHAT_EVENT_H_
#define PARLEY_SERVER_CHAT_EVENT_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/time/time.h"

namespace parley::chat {

enum class EventKind {
  kMessage,
  kJoin,
  kLeave,
  // Not a log entry: tells a reader that the events with sequence numbers
  // gap_first..gap_last did not fit in its channel and were not queued.
  kGap,
};

struct Event {
  EventKind kind = EventKind::kMessage;
  std::string room;
  uint64_t sequence = 0;  // 1-based position in the room's log; 0 for gaps.
  std::string id;         // UUID; empty for gaps.
  std::string sender;
  std::string text;
  absl::Time time;
  uint64_t gap_first = 0;
  uint64_t gap_last = 0;
};

using EventPtr = std::shared_ptr<const Event>;

}  // namespace parley::chat

#endif  // PARLEY_SERVER_CHAT_EVENT_H_
