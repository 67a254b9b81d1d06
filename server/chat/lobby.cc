#include "server/chat/lobby.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server/chat/validate.h"
#include "server/common/errors.h"
#include "server/model/ids.h"

namespace parley::chat {
namespace {

using Sub = LogState::Sub;

absl::Status NotJoined(absl::string_view id) {
  return WithReason(absl::FailedPreconditionError(
                        absl::StrCat("client '", id, "' has not joined")),
                    "NOT_JOINED", "id");
}

absl::Status AlreadyJoined(absl::string_view id) {
  return WithReason(absl::AlreadyExistsError(
                        absl::StrCat("client '", id, "' has already joined")),
                    "ALREADY_JOINED", "id");
}

// Store pages read to fill a shared session's channel.
constexpr size_t kSessionPage = 512;

// A single hub's session: the reader takes from the session's own channel,
// which outlives it.
class LocalLease final : public SessionLease {
 public:
  explicit LocalLease(std::shared_ptr<Channel> channel)
      : SessionLease(std::move(channel)) {}
  void Consumed(uint64_t, absl::AnyInvocable<void()> done) override { done(); }
  void Release() override {}
};

// A lobby event of `kind` caused by client `id`.
std::shared_ptr<model::Event> LobbyEvent(model::EventKind kind,
                                         absl::string_view id,
                                         absl::string_view text) {
  auto event = NewEvent(kind, model::kLobbyId);
  event->room_id = std::string(model::kLobbyId);
  event->room = std::string(model::kLobbyName);
  event->sender = std::string(id);
  event->text = std::string(text);
  return event;
}

}  // namespace

Lobby::Lobby(const HubOptions& options, store::EventLog* store, Clock* clock,
             LogTable* logs, Dispatcher* dispatcher, LogOrder* order,
             Closer* closer)
    : options_(options),
      store_(store),
      clock_(clock),
      logs_(logs),
      dispatcher_(dispatcher),
      order_(order),
      closer_(closer),
      // Sessions start after what is stored; the server checks the store is
      // readable before building the hub.
      log_(logs->Start(model::kLobbyId,
                       store->LastSequence(model::kLobbyId).value_or(0))) {}

void Lobby::Publish(std::shared_ptr<model::Event> event, EventDone done) {
  order_->Publish(std::move(event), IgnoreCount(std::move(done)));
}

// ---- A single hub's sessions ----

void Lobby::Join(absl::string_view id, absl::string_view owner,
                 EventDone done) {
  if (absl::Status s = ValidateClientId(id, options_.max_id_bytes); !s.ok()) {
    done(s);
    return;
  }
  if (options_.sessions != nullptr) {
    JoinShared(std::string(id), std::string(owner), std::move(done));
    return;
  }
  const bus::SessionLimits& limits = options_.session_limits;
  auto joined = LobbyEvent(model::EventKind::kJoin, id, "");
  absl::Status refused;
  {
    MutexLock lock(&log_->mu);
    refused = logs_->CheckPublishableLocked(*log_);
    if (refused.ok() && sessions_.count(id) > 0) refused = AlreadyJoined(id);
    if (refused.ok() && limits.total > 0 && sessions_.size() >= limits.total) {
      refused = bus::LobbyFull();
    }
    if (refused.ok() && !owner.empty() && limits.per_owner > 0) {
      auto it = owned_.find(owner);
      if (it != owned_.end() && it->second >= limits.per_owner) {
        refused = bus::TooManySessions();
      }
    }
    if (refused.ok()) {
      auto channel =
          std::make_shared<Channel>(options_.channel_capacity, clock_->Now());
      sessions_.emplace(std::string(id), channel);
      if (!owner.empty()) {
        owner_of_.emplace(std::string(id), std::string(owner));
        ++owned_[std::string(owner)];
      }
      // The session's channel gets everything after what was delivered so
      // far, so its own join event included.
      log_->subs.push_back(Sub{channel, Subscriber{"", std::string(id), "", ""},
                               log_->delivered, clock_->Now()});
      order_->PublishLocked(
          log_, std::move(joined),
          [this, channel, id = std::string(id), done = std::move(done)](
              absl::StatusOr<model::EventPtr> event, int64_t) mutable {
            if (!event.ok()) {
              // Not committed: the client has not joined after all.
              Wakeups wake;
              {
                MutexLock lock(&log_->mu);
                auto it = sessions_.find(id);
                if (it != sessions_.end() && it->second == channel) {
                  RemoveSessionLocked(id, CloseReason::kLeft, &wake);
                }
              }
              WakeAll(wake);
            }
            done(std::move(event));
          });
    }
  }
  if (!refused.ok()) done(refused);
}

void Lobby::Send(absl::string_view id, absl::string_view text, EventDone done,
                 model::IdempotencyKey key) {
  if (absl::Status s = ValidateClientId(id, options_.max_id_bytes); !s.ok()) {
    done(s);
    return;
  }
  if (absl::Status s = ValidateMessageText(text, options_.max_message_bytes);
      !s.ok()) {
    done(s);
    return;
  }
  if (options_.sessions != nullptr) {
    SendShared(std::string(id), std::string(text), std::move(done),
               std::move(key));
    return;
  }
  auto message = LobbyEvent(model::EventKind::kMessage, id, text);
  message->idempotency = std::move(key);
  absl::Status refused;
  {
    MutexLock lock(&log_->mu);
    refused = logs_->CheckPublishableLocked(*log_);
    auto it = sessions_.find(id);
    if (refused.ok() && it == sessions_.end()) refused = NotJoined(id);
    if (refused.ok()) {
      it->second->Touch(clock_->Now());
      order_->PublishLocked(log_, std::move(message),
                            IgnoreCount(std::move(done)));
    }
  }
  if (!refused.ok()) done(refused);
}

bool Lobby::RemoveSessionLocked(absl::string_view id, CloseReason reason,
                                Wakeups* wake) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return false;
  std::shared_ptr<Channel> channel = std::move(it->second);
  sessions_.erase(it);
  if (auto owner = owner_of_.find(id); owner != owner_of_.end()) {
    auto count = owned_.find(owner->second);
    if (count != owned_.end() && --count->second == 0) owned_.erase(count);
    owner_of_.erase(owner);
  }
  auto& subs = log_->subs;
  subs.erase(std::remove_if(subs.begin(), subs.end(),
                            [&](const Sub& s) { return s.channel == channel; }),
             subs.end());
  if (auto reader = channel->Close(reason)) wake->push_back(std::move(reader));
  return true;
}

void Lobby::Leave(absl::string_view id, EventDone done) {
  if (absl::Status s = ValidateClientId(id, options_.max_id_bytes); !s.ok()) {
    done(s);
    return;
  }
  if (options_.sessions != nullptr) {
    LeaveShared(std::string(id), std::move(done));
    return;
  }
  auto left = LobbyEvent(model::EventKind::kLeave, id, "");
  absl::Status refused;
  Wakeups wake;
  {
    MutexLock lock(&log_->mu);
    refused = logs_->CheckPublishableLocked(*log_);
    if (refused.ok() && !RemoveSessionLocked(id, CloseReason::kLeft, &wake)) {
      refused = NotJoined(id);
    }
    // The session is gone, so the leaver is not sent its own leave.
    if (refused.ok()) {
      order_->PublishLocked(log_, std::move(left),
                            IgnoreCount(std::move(done)));
    }
  }
  WakeAll(wake);
  if (!refused.ok()) done(refused);
}

void Lobby::OpenSession(absl::string_view id, SessionOpened done) {
  if (absl::Status s = ValidateClientId(id, options_.max_id_bytes); !s.ok()) {
    done(s);
    return;
  }
  if (options_.sessions != nullptr) {
    OpenSharedSession(std::string(id), std::move(done));
    return;
  }
  absl::StatusOr<std::shared_ptr<Channel>> channel = FindChannel(id);
  if (!channel.ok()) {
    done(channel.status());
    return;
  }
  done(std::make_shared<LocalLease>(*std::move(channel)));
}

absl::StatusOr<std::shared_ptr<Channel>> Lobby::FindChannel(
    absl::string_view id) {
  if (absl::Status s = ValidateClientId(id, options_.max_id_bytes); !s.ok()) {
    return s;
  }
  MutexLock lock(&log_->mu);
  if (logs_->shutting_down()) return ShuttingDownError();
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return NotJoined(id);
  return it->second;
}

int Lobby::ReapIdle() {
  if (options_.sessions != nullptr) {
    ReapIdleShared();
    return 0;
  }
  Wakeups wake;
  int reaped = 0;
  {
    MutexLock lock(&log_->mu);
    if (logs_->shutting_down()) return 0;
    const absl::Time now = clock_->Now();
    std::vector<std::string> idle;
    for (const auto& [id, channel] : sessions_) {
      if (channel->IdleLongerThan(options_.session_idle_timeout, now)) {
        idle.push_back(id);
      }
    }
    for (const std::string& id : idle) {
      if (!RemoveSessionLocked(id, CloseReason::kReaped, &wake)) continue;
      ++reaped;
      order_->PublishLocked(log_, LobbyEvent(model::EventKind::kLeave, id, ""),
                            [](absl::StatusOr<model::EventPtr>, int64_t) {});
    }
  }
  WakeAll(wake);
  return reaped;
}

size_t Lobby::SessionCount() {
  MutexLock lock(&log_->mu);
  if (options_.sessions != nullptr) {
    return std::count_if(log_->subs.begin(), log_->subs.end(),
                         [](const Sub& s) { return s.session; });
  }
  return sessions_.size();
}

// ---- Shared sessions (HubOptions::sessions) ----
//
// The directory says who is joined and where each client's readers are in
// the lobby's log; the log itself is the store's. A reader's channel is
// built when it comes, on the lobby's dispatcher (where the delivered point
// stands still): what follows the client's cursor, read from the store and
// bounded as any channel is, then the live events after that point.

class Lobby::SharedLease final : public SessionLease {
 public:
  SharedLease(Lobby* lobby, std::string id, std::shared_ptr<Channel> channel)
      : SessionLease(std::move(channel)), lobby_(lobby), id_(std::move(id)) {}

  void Consumed(uint64_t sequence, absl::AnyInvocable<void()> done) override {
    if (sequence == 0) {
      done();
      return;
    }
    // Not stored (the directory away): the client's next reader gets these
    // events again. Repeated, never lost.
    lobby_->options_.sessions->SetCursor(
        id_, sequence, lobby_->clock_->Now(),
        [done = std::move(done)](absl::Status) mutable { done(); });
  }

  void Release() override {
    LogState* lobby = lobby_->log_.get();
    {
      MutexLock lock(&lobby->mu);
      auto& subs = lobby->subs;
      subs.erase(
          std::remove_if(subs.begin(), subs.end(),
                         [&](const Sub& s) { return s.channel == channel(); }),
          subs.end());
    }
    lobby_->options_.sessions->Touch({id_}, lobby_->clock_->Now());
  }

 private:
  Lobby* const lobby_;
  const std::string id_;
};

void Lobby::JoinShared(std::string id, std::string owner, EventDone done) {
  if (logs_->shutting_down()) {
    done(ShuttingDownError());
    return;
  }
  options_.sessions->Create(
      id, std::move(owner), clock_->Now(), options_.session_limits,
      [this, id, done = std::move(done)](absl::Status created) mutable {
        if (absl::IsAlreadyExists(created)) return done(AlreadyJoined(id));
        if (!created.ok()) return done(created);
        Publish(LobbyEvent(model::EventKind::kJoin, id, ""),
                [this, id, done = std::move(done)](
                    absl::StatusOr<model::EventPtr> joined) mutable {
                  if (!joined.ok()) {
                    // Not committed: the client has not joined after all.
                    options_.sessions->Remove(id, [](absl::StatusOr<bool>) {});
                    return done(joined.status());
                  }
                  // The client's readers start at its own join.
                  model::EventPtr event = *std::move(joined);
                  const uint64_t cursor = event->sequence - 1;
                  options_.sessions->SetCursor(
                      id, cursor, clock_->Now(),
                      [event = std::move(event),
                       done = std::move(done)](absl::Status s) mutable {
                        if (!s.ok()) return done(s);
                        done(std::move(event));
                      });
                });
      });
}

void Lobby::SendShared(std::string id, std::string text, EventDone done,
                       model::IdempotencyKey key) {
  if (logs_->shutting_down()) {
    done(ShuttingDownError());
    return;
  }
  options_.sessions->Get(
      id, clock_->Now(),
      [this, id, text = std::move(text), done = std::move(done),
       key = std::move(key)](absl::StatusOr<uint64_t> cursor) mutable {
        if (absl::IsNotFound(cursor.status())) return done(NotJoined(id));
        if (!cursor.ok()) return done(cursor.status());
        auto message = LobbyEvent(model::EventKind::kMessage, id, text);
        message->idempotency = std::move(key);
        Publish(std::move(message), std::move(done));
      });
}

void Lobby::LeaveShared(std::string id, EventDone done) {
  if (logs_->shutting_down()) {
    done(ShuttingDownError());
    return;
  }
  options_.sessions->Remove(id, [this, id, done = std::move(done)](
                                    absl::StatusOr<bool> removed) mutable {
    if (!removed.ok()) return done(removed.status());
    if (!*removed) return done(NotJoined(id));
    // Its readers end wherever they wait, without its own leave.
    EndSession(id, CloseReason::kLeft);
    Publish(LobbyEvent(model::EventKind::kLeave, id, ""), std::move(done));
  });
}

void Lobby::OpenSharedSession(std::string id, SessionOpened done) {
  if (logs_->shutting_down()) {
    done(ShuttingDownError());
    return;
  }
  options_.sessions->Get(
      id, clock_->Now(),
      [this, id,
       done = std::move(done)](absl::StatusOr<uint64_t> cursor) mutable {
        if (absl::IsNotFound(cursor.status())) return done(NotJoined(id));
        if (!cursor.ok()) return done(cursor.status());
        dispatcher_->Dispatch(log_->id, [this, id, cursor = *cursor,
                                         done = std::move(done)]() mutable {
          AttachSharedSession(id, cursor, std::move(done));
        });
      });
}

void Lobby::AttachSharedSession(const std::string& id, uint64_t cursor,
                                SessionOpened done) {
  uint64_t through;
  {
    MutexLock lock(&log_->mu);
    through = log_->delivered;
  }
  auto channel =
      std::make_shared<Channel>(options_.channel_capacity, clock_->Now());
  const size_t capacity = std::max<size_t>(options_.channel_capacity, 1);
  uint64_t after = cursor;
  while (after < through) {
    const size_t want =
        static_cast<size_t>(std::min<uint64_t>(kSessionPage, through - after));
    absl::StatusOr<std::vector<model::EventPtr>> page =
        store_->ReadAfter(log_->id, after, want);
    if (!page.ok()) return done(page.status());
    for (const model::EventPtr& event : *page) {
      if (event->sequence > through) break;
      if (channel->Size() >= capacity) {
        // What does not fit is one gap, as in a channel that filled up.
        channel->PushMissed(event, through);
        after = through;
        break;
      }
      channel->Push(event);
      after = event->sequence;
    }
    if (page->size() < want) break;  // the rest was purged
  }
  bool registered = false;
  {
    MutexLock lock(&log_->mu);
    if (!logs_->shutting_down()) {
      Sub sub{channel, Subscriber{"", id, "", ""}, through, clock_->Now()};
      sub.session = true;
      log_->subs.push_back(std::move(sub));
      registered = true;
    }
  }
  if (!registered) return done(ShuttingDownError());
  done(std::make_shared<SharedLease>(this, id, std::move(channel)));
}

void Lobby::ReapIdleShared() {
  if (logs_->shutting_down()) return;
  // Sessions with a reader here are active, wherever else they are idle.
  std::vector<std::string> reading;
  {
    MutexLock lock(&log_->mu);
    for (const Sub& sub : log_->subs) {
      if (sub.session) reading.push_back(sub.who.name);
    }
  }
  const absl::Time now = clock_->Now();
  options_.sessions->Touch(std::move(reading), now);
  options_.sessions->RemoveIdle(
      now - options_.session_idle_timeout,
      [this](absl::StatusOr<std::vector<std::string>> idle) {
        if (!idle.ok()) return;  // tried again at the next round
        for (const std::string& id : *idle) {
          EndSession(id, CloseReason::kReaped);
          Publish(LobbyEvent(model::EventKind::kLeave, id, ""),
                  [](absl::StatusOr<model::EventPtr>) {});
        }
      });
}

void Lobby::EndSession(const std::string& id, CloseReason reason) {
  bus::Notice notice;
  notice.op = bus::Notice::Op::kEndSession;
  notice.log = log_->id;
  notice.user_id = id;
  notice.reason = static_cast<int>(reason);
  closer_->Close(notice, /*from_bus=*/false);
}

}  // namespace parley::chat
