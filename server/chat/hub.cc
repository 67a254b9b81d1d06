#include "server/chat/hub.h"

#include <uuid/uuid.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/chat/validate.h"
#include "server/common/errors.h"

namespace parley::chat {
namespace {

std::string NewUuid() {
  uuid_t raw;
  uuid_generate_random(raw);
  char text[37];
  uuid_unparse_lower(raw, text);
  return text;
}

// An event with everything but its sequence number and time, which only the
// hub's lock may assign. Built before taking the lock: the UUID costs a
// getrandom call, and the copies need no lock.
std::shared_ptr<Event> NewEvent(EventKind kind, absl::string_view sender,
                                absl::string_view text) {
  auto event = std::make_shared<Event>();
  event->kind = kind;
  event->room = std::string(kLobby);
  event->id = NewUuid();
  event->sender = std::string(sender);
  event->text = std::string(text);
  return event;
}

absl::Status NotJoined(absl::string_view id) {
  return WithReason(absl::FailedPreconditionError(
                        absl::StrCat("client '", id, "' has not joined")),
                    "NOT_JOINED", "id");
}

}  // namespace

Hub::Hub(HubOptions options, store::Store* store, Clock* clock)
    : options_(options), store_(store), clock_(clock) {
  // A restarted hub continues the room's numbering rather than reusing it.
  auto last = store_->LastSequence(kLobby);
  if (last.ok()) last_sequence_ = *last;
}

absl::Status Hub::CheckRunningLocked() {
  if (!shutdown_) return absl::OkStatus();
  return WithReason(absl::UnavailableError("the server is shutting down"),
                    "SHUTTING_DOWN");
}

absl::StatusOr<EventPtr> Hub::PublishLocked(std::shared_ptr<Event> event,
                                            Wakeups* wake) {
  event->sequence = last_sequence_ + 1;
  event->time = clock_->Now();
  EventPtr shared = std::move(event);
  if (absl::Status s = store_->Append(shared); !s.ok()) return s;
  last_sequence_ = shared->sequence;
  for (auto& [id, session] : sessions_) {
    if (auto reader = session->channel->Push(shared)) {
      wake->push_back(std::move(reader));
    }
  }
  return shared;
}

void Hub::WakeAll(const Wakeups& wake) {
  for (const auto& reader : wake) reader->OnReadable();
}

absl::StatusOr<EventPtr> Hub::Join(absl::string_view id) {
  if (absl::Status s = ValidateClientId(id, options_.max_id_bytes); !s.ok()) {
    return s;
  }
  auto joined = NewEvent(EventKind::kJoin, id, "");
  Wakeups wake;
  absl::StatusOr<EventPtr> event;
  {
    MutexLock lock(&mu_);
    if (absl::Status s = CheckRunningLocked(); !s.ok()) return s;
    if (sessions_.count(id) > 0) {
      return WithReason(absl::AlreadyExistsError(absl::StrCat(
                            "client '", id, "' has already joined")),
                        "ALREADY_JOINED", "id");
    }
    auto session = std::make_unique<Session>();
    session->id = std::string(id);
    session->channel =
        std::make_shared<Channel>(options_.channel_capacity, clock_->Now());
    auto [it, inserted] = sessions_.emplace(session->id, std::move(session));
    event = PublishLocked(std::move(joined), &wake);
    if (!event.ok()) sessions_.erase(it);
  }
  WakeAll(wake);
  return event;
}

absl::StatusOr<EventPtr> Hub::Send(absl::string_view id,
                                   absl::string_view text) {
  if (absl::Status s = ValidateClientId(id, options_.max_id_bytes); !s.ok()) {
    return s;
  }
  if (absl::Status s = ValidateMessageText(text, options_.max_message_bytes);
      !s.ok()) {
    return s;
  }
  auto message = NewEvent(EventKind::kMessage, id, text);
  Wakeups wake;
  absl::StatusOr<EventPtr> event;
  {
    MutexLock lock(&mu_);
    if (absl::Status s = CheckRunningLocked(); !s.ok()) return s;
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return NotJoined(id);
    it->second->channel->Touch(clock_->Now());
    event = PublishLocked(std::move(message), &wake);
  }
  WakeAll(wake);
  return event;
}

absl::StatusOr<EventPtr> Hub::RemoveLocked(absl::string_view id,
                                           CloseReason reason,
                                           std::shared_ptr<Event> left,
                                           Wakeups* wake) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return NotJoined(id);
  std::unique_ptr<Session> session = std::move(it->second);
  sessions_.erase(it);
  if (auto reader = session->channel->Close(reason)) {
    wake->push_back(std::move(reader));
  }
  // The session is out of the map, so the leaver is not sent its own leave.
  return PublishLocked(std::move(left), wake);
}

absl::StatusOr<EventPtr> Hub::Leave(absl::string_view id) {
  if (absl::Status s = ValidateClientId(id, options_.max_id_bytes); !s.ok()) {
    return s;
  }
  auto left = NewEvent(EventKind::kLeave, id, "");
  Wakeups wake;
  absl::StatusOr<EventPtr> event;
  {
    MutexLock lock(&mu_);
    if (absl::Status s = CheckRunningLocked(); !s.ok()) return s;
    event = RemoveLocked(id, CloseReason::kLeft, std::move(left), &wake);
  }
  WakeAll(wake);
  return event;
}

absl::StatusOr<std::shared_ptr<Channel>> Hub::FindChannel(
    absl::string_view id) {
  if (absl::Status s = ValidateClientId(id, options_.max_id_bytes); !s.ok()) {
    return s;
  }
  MutexLock lock(&mu_);
  if (absl::Status s = CheckRunningLocked(); !s.ok()) return s;
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return NotJoined(id);
  return it->second->channel;
}

int Hub::ReapIdle() {
  Wakeups wake;
  int reaped = 0;
  {
    MutexLock lock(&mu_);
    if (shutdown_) return 0;
    const absl::Time now = clock_->Now();
    std::vector<std::string> idle;
    for (const auto& [id, session] : sessions_) {
      if (session->channel->IdleLongerThan(options_.session_idle_timeout,
                                           now)) {
        idle.push_back(id);
      }
    }
    // Reaping is rare and off the send path, so its events are built here.
    for (const std::string& id : idle) {
      auto left = NewEvent(EventKind::kLeave, id, "");
      if (RemoveLocked(id, CloseReason::kReaped, std::move(left), &wake).ok()) {
        ++reaped;
      }
    }
  }
  WakeAll(wake);
  return reaped;
}

void Hub::Shutdown() {
  Wakeups wake;
  {
    MutexLock lock(&mu_);
    if (shutdown_) return;
    shutdown_ = true;
    for (auto& [id, session] : sessions_) {
      if (auto reader = session->channel->Close(CloseReason::kShutdown)) {
        wake.push_back(std::move(reader));
      }
    }
  }
  WakeAll(wake);
}

size_t Hub::SessionCount() {
  MutexLock lock(&mu_);
  return sessions_.size();
}

}  // namespace parley::chat
