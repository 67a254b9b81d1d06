#include "server/chat/hub.h"

#include <algorithm>
#include <utility>

namespace parley::chat {

using Sub = LogState::Sub;

Hub::Hub(HubOptions options, store::EventLog* store, Clock* clock)
    : options_(options),
      clock_(clock),
      logs_(store),
      dispatcher_(options_.fanout_threads),
      order_(options_, store, clock, &logs_, &dispatcher_),
      presence_(options_, clock, &logs_),
      closer_(options_, &logs_, &order_, &presence_),
      lobby_(options_, store, clock, &logs_, &dispatcher_, &order_, &closer_) {
  if (options_.bus != nullptr) {
    options_.bus->SetListener(this);
    // The lobby's sessions may join, send and leave on any replica.
    order_.Pin(lobby_.log());
  }
}

Hub::~Hub() {
  // Once this returns the bus calls nothing here.
  if (options_.bus != nullptr) options_.bus->SetListener(nullptr);
  // What is queued for delivery runs before the state it uses goes.
  dispatcher_.Stop();
}

// ---- The lobby ----

void Hub::Join(absl::string_view id, absl::string_view owner,
               EventDone done) {
  lobby_.Join(id, owner, std::move(done));
}

void Hub::Send(absl::string_view id, absl::string_view text, EventDone done,
               model::IdempotencyKey key) {
  lobby_.Send(id, text, std::move(done), std::move(key));
}

void Hub::Leave(absl::string_view id, EventDone done) {
  lobby_.Leave(id, std::move(done));
}

void Hub::OpenSession(absl::string_view id, SessionOpened done) {
  lobby_.OpenSession(id, std::move(done));
}

absl::StatusOr<std::shared_ptr<Channel>> Hub::FindChannel(
    absl::string_view id) {
  return lobby_.FindChannel(id);
}

int Hub::ReapIdle() { return lobby_.ReapIdle(); }

size_t Hub::SessionCount() { return lobby_.SessionCount(); }

// ---- Publishing and subscriptions ----

void Hub::Publish(std::shared_ptr<model::Event> event, EventDone done) {
  order_.Publish(std::move(event), IgnoreCount(std::move(done)));
}

void Hub::PublishPurge(
    std::shared_ptr<model::Event> event,
    absl::AnyInvocable<void(absl::StatusOr<model::EventPtr>, int64_t)> done) {
  order_.Publish(std::move(event), std::move(done));
}

absl::StatusOr<Subscription> Hub::Subscribe(absl::string_view log_id,
                                            Subscriber who) {
  absl::StatusOr<std::shared_ptr<LogState>> log = logs_.Get(log_id);
  if (!log.ok()) return log.status();
  Subscription subscription;
  Wakeups wake;
  {
    MutexLock lock(&(*log)->mu);
    if (absl::Status s = logs_.CheckPublishableLocked(**log); !s.ok()) return s;
    subscription.log = (*log)->id;
    subscription.channel =
        std::make_shared<Channel>(options_.channel_capacity, clock_->Now());
    subscription.live_after = (*log)->delivered;
    const bool counted = presence_.ArriveLocked(log->get(), who, &wake);
    (*log)->subs.push_back(Sub{subscription.channel, std::move(who),
                               subscription.live_after, clock_->Now(),
                               counted});
    order_.FollowLocked(log->get());
  }
  WakeAll(wake);
  return subscription;
}

void Hub::Unsubscribe(const Subscription& subscription) {
  std::shared_ptr<LogState> log = logs_.Find(subscription.log);
  if (log == nullptr) return;
  Wakeups wake;
  {
    MutexLock lock(&log->mu);
    auto it = std::find_if(
        log->subs.begin(), log->subs.end(),
        [&](const Sub& s) { return s.channel == subscription.channel; });
    if (it == log->subs.end()) return;  // closed by the hub already
    Subscriber who = std::move(it->who);
    const bool counted = it->counted;
    // Order among subscribers does not matter: swap with the last.
    if (it != log->subs.end() - 1) *it = std::move(log->subs.back());
    log->subs.pop_back();
    order_.FollowLocked(log.get());
    if (counted) {
      presence_.DepartLocked(log, who, options_.presence_leave_grace, &wake);
    }
  }
  WakeAll(wake);
}

// ---- Presence ----

std::vector<Present> Hub::ListPresent(absl::string_view log_id, size_t limit,
                                      bool* truncated) {
  return presence_.List(log_id, limit, truncated);
}

void Hub::ListPresentEverywhere(
    absl::string_view log_id, size_t limit,
    absl::AnyInvocable<void(std::vector<Present>, bool truncated)> done) {
  presence_.ListEverywhere(log_id, limit, std::move(done));
}

void Hub::SharePresence() { presence_.Share(); }

int Hub::AnnounceLeaves() { return presence_.AnnounceLeaves(); }

void Hub::PushLive(std::shared_ptr<model::Event> event) {
  event->sequence = 0;
  // The other replicas' readers get it over the bus.
  if (options_.bus != nullptr) options_.bus->Publish(*event);
  PushLiveHere(std::move(event));
}

void Hub::PushLiveHere(std::shared_ptr<model::Event> event) {
  std::shared_ptr<LogState> log = logs_.Find(event->log);
  if (log == nullptr) return;
  if (options_.encoder) event->wire = options_.encoder(*event);
  Wakeups wake;
  {
    MutexLock lock(&log->mu);
    log->PushLiveLocked(std::move(event), &wake);
  }
  WakeAll(wake);
}

// ---- Closes ----

void Hub::CloseSubscriptions(absl::string_view log_id,
                             absl::string_view user_id, CloseReason reason) {
  bus::Notice notice;
  notice.op = bus::Notice::Op::kClose;
  notice.log = std::string(log_id);
  notice.user_id = std::string(user_id);
  notice.reason = static_cast<int>(reason);
  closer_.Close(notice, /*from_bus=*/false);
}

void Hub::CloseSubscriptionsExcept(absl::string_view log_id,
                                   const absl::flat_hash_set<std::string>& keep,
                                   CloseReason reason) {
  bus::Notice notice;
  notice.op = bus::Notice::Op::kCloseExcept;
  notice.log = std::string(log_id);
  notice.keep.assign(keep.begin(), keep.end());
  notice.reason = static_cast<int>(reason);
  closer_.Close(notice, /*from_bus=*/false);
}

void Hub::CloseUserSubscriptions(absl::string_view user_id,
                                 CloseReason reason) {
  if (user_id.empty()) return;
  bus::Notice notice;
  notice.op = bus::Notice::Op::kCloseUser;
  notice.user_id = std::string(user_id);
  notice.reason = static_cast<int>(reason);
  closer_.Close(notice, /*from_bus=*/false);
}

void Hub::RevokeToken(absl::string_view token_id) {
  if (token_id.empty()) return;
  bus::Notice notice;
  notice.op = bus::Notice::Op::kRevokeToken;
  notice.token_id = std::string(token_id);
  notice.reason = static_cast<int>(CloseReason::kSignedOut);
  closer_.Close(notice, /*from_bus=*/false);
}

void Hub::DropLog(absl::string_view log_id) {
  bus::Notice notice;
  notice.op = bus::Notice::Op::kDropLog;
  notice.log = std::string(log_id);
  notice.reason = static_cast<int>(CloseReason::kDeleted);
  closer_.Close(notice, /*from_bus=*/false);
}

// ---- The hub ----

absl::StatusOr<uint64_t> Hub::LastDelivered(absl::string_view log_id) {
  absl::StatusOr<std::shared_ptr<LogState>> log = logs_.Get(log_id);
  if (!log.ok()) return log.status();
  MutexLock lock(&(*log)->mu);
  return (*log)->delivered;
}

void Hub::Shutdown() {
  if (!logs_.Shutdown()) return;
  closer_.CloseAll(CloseReason::kShutdown);
}

// ---- bus::Bus::Listener ----

void Hub::OnEvent(std::shared_ptr<model::Event> event) {
  const std::string id = event->log;
  if (event->sequence == 0) {
    dispatcher_.Dispatch(id, [this, event = std::move(event)]() mutable {
      PushLiveHere(std::move(event));
    });
    return;
  }
  order_.OnCommitted(std::move(event));
}

void Hub::OnSubscribed(absl::string_view log_id) { order_.CatchUp(log_id); }

void Hub::OnNotice(const bus::Notice& notice) {
  if (notice.op == bus::Notice::Op::kInvalidateDirectory ||
      notice.op == bus::Notice::Op::kRevokeToken) {
    if (options_.on_directory_notice) options_.on_directory_notice(notice);
  }
  closer_.Close(notice, /*from_bus=*/true);
}

void Hub::OnReconnected() {
  if (options_.on_bus_reconnected) options_.on_bus_reconnected();
}

}  // namespace parley::chat
