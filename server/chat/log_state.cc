#include "server/chat/log_state.h"

#include <utility>

#include "absl/time/clock.h"
#include "server/common/errors.h"
#include "server/common/uuid.h"

namespace parley::chat {

std::shared_ptr<model::Event> NewEvent(model::EventKind kind,
                                       absl::string_view log) {
  auto event = std::make_shared<model::Event>();
  event->kind = kind;
  event->log = std::string(log);
  event->id = NewTimeOrderedUuid(absl::Now());
  return event;
}

absl::Status ShuttingDownError() {
  return WithReason(absl::UnavailableError("the server is shutting down"),
                    "SHUTTING_DOWN");
}

void LogState::PushLiveLocked(const model::EventPtr& event, Wakeups* wake) {
  for (Sub& sub : subs) {
    if (!sub.who.receives_events) continue;
    if (auto reader = sub.channel->Push(event)) {
      wake->push_back(std::move(reader));
    }
  }
}

std::shared_ptr<LogState> LogTable::Find(absl::string_view log) {
  MutexLock lock(&mu_);
  auto it = logs_.find(log);
  return it == logs_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<LogState>> LogTable::All() {
  MutexLock lock(&mu_);
  std::vector<std::shared_ptr<LogState>> logs;
  logs.reserve(logs_.size());
  for (auto& [id, log] : logs_) logs.push_back(log);
  return logs;
}

absl::StatusOr<std::shared_ptr<LogState>> LogTable::Get(absl::string_view log) {
  if (shutting_down()) return ShuttingDownError();
  {
    MutexLock lock(&mu_);
    auto it = logs_.find(log);
    if (it != logs_.end()) return it->second;
  }
  // First use since start: subscribers start after what the store has. The
  // read runs outside the map's lock; a concurrent first use reads the same
  // value and the first to insert wins (nothing is published to a log
  // before it is in the map).
  absl::StatusOr<uint64_t> last = store_->LastSequence(log);
  if (!last.ok()) return last.status();
  return Start(log, *last);
}

std::shared_ptr<LogState> LogTable::Start(absl::string_view log,
                                          uint64_t delivered) {
  MutexLock lock(&mu_);
  auto [it, inserted] = logs_.try_emplace(std::string(log), nullptr);
  if (inserted) {
    it->second = std::make_shared<LogState>(it->first);
    MutexLock log_lock(&it->second->mu);
    it->second->delivered = delivered;
  }
  return it->second;
}

absl::Status LogTable::CheckPublishableLocked(const LogState& log) const {
  if (shutting_down()) return ShuttingDownError();
  if (log.dropped) {
    return WithReason(absl::NotFoundError("the room no longer exists"),
                      "ROOM_NOT_FOUND", "room");
  }
  return absl::OkStatus();
}

}  // namespace parley::chat
