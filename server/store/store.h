// The durable history of rooms. The hub commits every event here before it
// fans it out, so nothing acknowledged exists only in memory of a channel.
// Implementations are thread-safe. (The SQLite and PostgreSQL stores
// implement this interface; MemoryStore is the in-process one.)
#ifndef PARLEY_SERVER_STORE_STORE_H_
#define PARLEY_SERVER_STORE_STORE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/chat/event.h"

namespace parley::store {

class Store {
 public:
  virtual ~Store() = default;

  // Commits `event`, whose sequence number is one more than the room's last.
  // Returns once the event is as durable as the store makes anything.
  virtual absl::Status Append(const chat::EventPtr& event) = 0;

  // The room's events with sequence numbers above `after`, oldest first, at
  // most `limit` of them.
  virtual absl::StatusOr<std::vector<chat::EventPtr>> ReadAfter(
      absl::string_view room, uint64_t after, size_t limit) = 0;

  // The highest sequence number committed in `room`, 0 when none.
  virtual absl::StatusOr<uint64_t> LastSequence(absl::string_view room) = 0;
};

}  // namespace parley::store

#endif  // PARLEY_SERVER_STORE_STORE_H_
