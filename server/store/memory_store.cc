#include "server/store/memory_store.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace parley::store {

MemoryStore::MemoryStore(size_t max_events_per_room)
    : max_events_per_room_(std::max<size_t>(max_events_per_room, 1)) {}

absl::Status MemoryStore::Append(const chat::EventPtr& event) {
  MutexLock lock(&mu_);
  auto it = rooms_.find(event->room);
  if (it == rooms_.end()) it = rooms_.emplace(event->room, Room{}).first;
  Room& room = it->second;
  if (event->sequence != room.last_sequence + 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("room ", event->room, " expects sequence ",
                     room.last_sequence + 1, ", got ", event->sequence));
  }
  room.events.push_back(event);
  room.last_sequence = event->sequence;
  if (room.events.size() > max_events_per_room_) room.events.pop_front();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<chat::EventPtr>> MemoryStore::ReadAfter(
    absl::string_view room_name, uint64_t after, size_t limit) {
  std::vector<chat::EventPtr> out;
  MutexLock lock(&mu_);
  auto it = rooms_.find(room_name);
  if (it == rooms_.end()) return out;
  const Room& room = it->second;
  if (room.events.empty() || after >= room.last_sequence) return out;
  const uint64_t first = room.events.front()->sequence;
  const size_t start = after < first ? 0 : static_cast<size_t>(after + 1 - first);
  for (size_t i = start; i < room.events.size() && out.size() < limit; ++i) {
    out.push_back(room.events[i]);
  }
  return out;
}

absl::StatusOr<uint64_t> MemoryStore::LastSequence(absl::string_view room) {
  MutexLock lock(&mu_);
  auto it = rooms_.find(room);
  return it == rooms_.end() ? 0 : it->second.last_sequence;
}

}  // namespace parley::store
