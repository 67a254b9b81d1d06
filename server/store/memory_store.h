// A Store that keeps the most recent `max_events_per_room` events of each
// room in memory: the history of a server that runs without a data store.
// Thread-safe.
#ifndef PARLEY_SERVER_STORE_MEMORY_STORE_H_
#define PARLEY_SERVER_STORE_MEMORY_STORE_H_

#include <deque>
#include <map>
#include <string>

#include "server/common/mutex.h"
#include "server/store/store.h"

namespace parley::store {

class MemoryStore : public Store {
 public:
  explicit MemoryStore(size_t max_events_per_room);

  absl::Status Append(const chat::EventPtr& event) override;
  absl::StatusOr<std::vector<chat::EventPtr>> ReadAfter(
      absl::string_view room, uint64_t after, size_t limit) override;
  absl::StatusOr<uint64_t> LastSequence(absl::string_view room) override;

 private:
  struct Room {
    std::deque<chat::EventPtr> events;  // contiguous sequence numbers
    uint64_t last_sequence = 0;
  };

  const size_t max_events_per_room_;
  Mutex mu_;
  std::map<std::string, Room, std::less<>> rooms_ ABSL_GUARDED_BY(mu_);
};

}  // namespace parley::store

#endif  // PARLEY_SERVER_STORE_MEMORY_STORE_H_
