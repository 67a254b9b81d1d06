#include "server/chat/hub.h"

#include <algorithm>
#include <limits>
#include <map>
#include <tuple>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/chat/validate.h"
#include "server/common/errors.h"
#include "server/common/log.h"
#include "server/common/uuid.h"
#include "server/model/ids.h"

namespace parley::chat {
namespace {

using Sub = LogState::Sub;
using Presence = LogState::Presence;

// Room logs carry presence events; direct-message inboxes do not.
bool IsRoomLog(absl::string_view log) { return !absl::StartsWith(log, "dm:"); }

// Presence is per user: by user id, or by name for subscribers without one
// (room-token holders). ListPresent keys the same way.
std::string PresenceKey(absl::string_view user_id, absl::string_view name) {
  return user_id.empty() ? absl::StrCat("name:", name)
                         : absl::StrCat("user:", user_id);
}
std::string PresenceKey(const Subscriber& who) {
  return PresenceKey(who.user_id, who.name);
}

// The people of `by_who` (by PresenceKey) ordered by name, at most `limit`;
// `truncated` is set when more were.
std::vector<Present> Ordered(std::map<std::string, Present> by_who,
                             size_t limit, bool* truncated) {
  std::vector<Present> present;
  present.reserve(by_who.size());
  for (auto& [key, p] : by_who) present.push_back(std::move(p));
  std::sort(present.begin(), present.end(),
            [](const Present& a, const Present& b) {
              return std::tie(a.name, a.user_id) < std::tie(b.name, b.user_id);
            });
  if (present.size() > limit) {
    present.resize(limit);
    *truncated = true;
  }
  return present;
}

}  // namespace

Hub::Hub(HubOptions options, store::EventLog* store, Clock* clock)
    : options_(options),
      store_(store),
      clock_(clock),
      logs_(store),
      dispatcher_(options_.fanout_threads),
      order_(options_, store, clock, &logs_, &dispatcher_),
      replica_(NewUuid()) {
  // Lobby sessions start after what is stored; the server checks the store
  // is readable before building the hub.
  lobby_ = logs_.Start(model::kLobbyId,
                       store_->LastSequence(model::kLobbyId).value_or(0));
  if (options_.bus != nullptr) {
    options_.bus->SetListener(this);
    // The lobby's sessions may join, send and leave on any replica.
    order_.Pin(lobby_.get());
  }
}

Hub::~Hub() {
  // Once this returns the bus calls nothing here.
  if (options_.bus != nullptr) options_.bus->SetListener(nullptr);
  // What is queued for delivery runs before the state it uses goes.
  dispatcher_.Stop();
}

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

void Hub::Publish(std::shared_ptr<model::Event> event, EventDone done) {
  order_.Publish(std::move(event), IgnoreCount(std::move(done)));
}

void Hub::PublishPurge(
    std::shared_ptr<model::Event> event,
    absl::AnyInvocable<void(absl::StatusOr<model::EventPtr>, int64_t)> done) {
  order_.Publish(std::move(event), std::move(done));
}

// ---- Subscriptions ----

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
    const bool counted = IsRoomLog(log_id) && !who.name.empty();
    bool announce = false;
    if (counted) {
      Presence& p = (*log)->presence[PresenceKey(who)];
      if (p.streams++ == 0) {
        if (p.leave_at != absl::InfiniteFuture()) {
          // Back within the grace: the others never heard they had left.
          p.leave_at = absl::InfiniteFuture();
        } else {
          p.who = who;
          p.since = clock_->Now();
          announce = true;
        }
      }
    }
    if (announce &&
        (*log)->subs.size() < options_.presence_max_subscribers) {
      auto joined = NewEvent(model::EventKind::kJoin, log_id);
      joined->room_id = std::string(log_id);
      joined->room = who.room;
      joined->sender = who.name;
      joined->sender_id = who.user_id;
      joined->time = clock_->Now();
      if (options_.encoder) joined->wire = options_.encoder(*joined);
      if (options_.bus != nullptr) options_.bus->Publish(*joined);
      (*log)->PushLiveLocked(std::move(joined), &wake);
    }
    (*log)->subs.push_back(Sub{subscription.channel, std::move(who),
                               subscription.live_after, clock_->Now(),
                               counted});
    order_.FollowLocked(log->get());
  }
  WakeAll(wake);
  return subscription;
}

std::vector<Present> Hub::ListPresent(absl::string_view log_id, size_t limit,
                                      bool* truncated) {
  *truncated = false;
  std::shared_ptr<LogState> log = logs_.Find(log_id);
  if (log == nullptr) return {};
  // Keyed by user id, or by name for subscribers without an account.
  std::map<std::string, Present> by_who;
  {
    MutexLock lock(&log->mu);
    // Room streams are counted per user in `presence`, those whose leave is
    // still in its grace included; lobby sessions are subscribers outside it.
    for (const auto& [key, p] : log->presence) {
      by_who.try_emplace(key, Present{p.who.user_id, p.who.name, p.since});
    }
    for (const Sub& sub : log->subs) {
      if (sub.counted || sub.who.name.empty()) continue;
      by_who.try_emplace(PresenceKey(sub.who),
                         Present{sub.who.user_id, sub.who.name, sub.since});
    }
  }
  return Ordered(std::move(by_who), limit, truncated);
}

void Hub::ListPresentEverywhere(
    absl::string_view log_id, size_t limit,
    absl::AnyInvocable<void(std::vector<Present>, bool truncated)> done) {
  bool truncated = false;
  std::vector<Present> here = ListPresent(log_id, limit, &truncated);
  if (options_.presence == nullptr) {
    done(std::move(here), truncated);
    return;
  }
  options_.presence->List(
      std::string(log_id), replica_, clock_->Now(),
      [here = std::move(here), limit, truncated, done = std::move(done)](
          absl::StatusOr<std::vector<bus::PresentEntry>> others) mutable {
        if (!others.ok()) return done(std::move(here), truncated);
        // One entry per person, with their earliest `since`.
        std::map<std::string, Present> by_who;
        auto add = [&by_who](Present p) {
          auto [it, added] =
              by_who.try_emplace(PresenceKey(p.user_id, p.name), p);
          if (!added) it->second.since = std::min(it->second.since, p.since);
        };
        for (Present& p : here) add(std::move(p));
        for (bus::PresentEntry& e : *others) {
          add(Present{std::move(e.user_id), std::move(e.name), e.since});
        }
        std::vector<Present> all =
            Ordered(std::move(by_who), limit, &truncated);
        done(std::move(all), truncated);
      });
}

void Hub::SharePresence() {
  if (options_.presence == nullptr) return;
  const absl::Time now = clock_->Now();
  absl::flat_hash_set<std::string> shared;
  for (const std::shared_ptr<LogState>& log : logs_.All()) {
    bool truncated;
    std::vector<Present> here = ListPresent(
        log->id, options_.presence_max_subscribers, &truncated);
    if (here.empty()) continue;
    std::vector<bus::PresentEntry> entries;
    entries.reserve(here.size());
    for (Present& p : here) {
      entries.push_back(
          bus::PresentEntry{std::move(p.user_id), std::move(p.name), p.since});
    }
    options_.presence->Put(replica_, log->id, std::move(entries), now);
    shared.insert(log->id);
  }
  MutexLock lock(&shared_presence_mu_);
  for (const std::string& log : shared_presence_) {
    if (!shared.contains(log)) options_.presence->Put(replica_, log, {}, now);
  }
  shared_presence_ = std::move(shared);
}

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

void Hub::Unsubscribe(const Subscription& subscription) {
  std::shared_ptr<LogState> log = logs_.Find(subscription.log);
  if (log == nullptr) return;
  Wakeups wake;
  {
    MutexLock lock(&log->mu);
    auto it = std::find_if(log->subs.begin(), log->subs.end(), [&](const Sub& s) {
      return s.channel == subscription.channel;
    });
    if (it == log->subs.end()) return;  // closed by the hub already
    Subscriber who = std::move(it->who);
    const bool counted = it->counted;
    // Order among subscribers does not matter: swap with the last.
    if (it != log->subs.end() - 1) *it = std::move(log->subs.back());
    log->subs.pop_back();
    order_.FollowLocked(log.get());
    if (counted) {
      ReleasePresenceLocked(log, who, options_.presence_leave_grace, &wake);
    }
  }
  WakeAll(wake);
}

void Hub::ReleasePresenceLocked(const std::shared_ptr<LogState>& log,
                                const Subscriber& who, absl::Duration grace,
                                Wakeups* wake) {
  auto it = log->presence.find(PresenceKey(who));
  if (it == log->presence.end() || it->second.streams == 0) return;
  if (--it->second.streams > 0) return;  // another stream of theirs is open
  if (grace > absl::ZeroDuration() && !log->dropped && !logs_.shutting_down()) {
    it->second.leave_at = clock_->Now() + grace;
    if (!log->leave_queued) {
      log->leave_queued = true;
      MutexLock leaves(&leaves_mu_);
      pending_leaves_.push_back(log);
    }
    return;
  }
  const Subscriber gone = std::move(it->second.who);
  log->presence.erase(it);
  AnnounceLeaveLocked(log.get(), gone, wake);
}

void Hub::AnnounceLeaveLocked(LogState* log, const Subscriber& who,
                              Wakeups* wake) {
  if (log->dropped || logs_.shutting_down() ||
      log->subs.size() >= options_.presence_max_subscribers) {
    return;
  }
  auto left = NewEvent(model::EventKind::kLeave, log->id);
  left->room_id = log->id;
  left->room = who.room;
  left->sender = who.name;
  left->sender_id = who.user_id;
  left->time = clock_->Now();
  if (options_.encoder) left->wire = options_.encoder(*left);
  if (options_.bus != nullptr) options_.bus->Publish(*left);
  log->PushLiveLocked(std::move(left), wake);
}

int Hub::AnnounceLeaves() {
  std::vector<std::shared_ptr<LogState>> logs;
  {
    MutexLock leaves(&leaves_mu_);
    logs.swap(pending_leaves_);
  }
  int announced = 0;
  for (const std::shared_ptr<LogState>& log : logs) {
    Wakeups wake;
    {
      MutexLock lock(&log->mu);
      log->leave_queued = false;
      const absl::Time now = clock_->Now();
      bool waiting = false;
      for (auto it = log->presence.begin(); it != log->presence.end();) {
        Presence& p = it->second;
        if (p.streams > 0) {
          ++it;
        } else if (p.leave_at <= now) {
          AnnounceLeaveLocked(log.get(), p.who, &wake);
          ++announced;
          log->presence.erase(it++);
        } else {
          waiting = true;
          ++it;
        }
      }
      if (waiting) {
        log->leave_queued = true;
        MutexLock leaves(&leaves_mu_);
        pending_leaves_.push_back(log);
      }
    }
    WakeAll(wake);
  }
  return announced;
}

void Hub::CloseWhere(const std::shared_ptr<LogState>& log,
                     absl::FunctionRef<bool(const Sub&)> close,
                     CloseReason reason) {
  Wakeups wake;
  {
    MutexLock lock(&log->mu);
    auto& subs = log->subs;
    auto closing = std::stable_partition(
        subs.begin(), subs.end(), [&](const Sub& s) { return !close(s); });
    std::vector<Subscriber> released;
    for (auto it = closing; it != subs.end(); ++it) {
      if (auto reader = it->channel->Close(reason)) {
        wake.push_back(std::move(reader));
      }
      if (it->counted) released.push_back(std::move(it->who));
    }
    subs.erase(closing, subs.end());
    order_.FollowLocked(log.get());
    // Ended by the server (sign-out, removal, deletion), not a reconnect:
    // no grace. Deleted rooms and shutdown announce nothing.
    for (const Subscriber& who : released) {
      ReleasePresenceLocked(log, who, absl::ZeroDuration(), &wake);
    }
  }
  WakeAll(wake);
}

void Hub::CloseSubscriptions(absl::string_view log_id,
                             absl::string_view user_id, CloseReason reason) {
  bus::Notice notice;
  notice.op = bus::Notice::Op::kClose;
  notice.log = std::string(log_id);
  notice.user_id = std::string(user_id);
  notice.reason = static_cast<int>(reason);
  Close(notice, /*from_bus=*/false);
}

void Hub::CloseSubscriptionsExcept(absl::string_view log_id,
                                   const absl::flat_hash_set<std::string>& keep,
                                   CloseReason reason) {
  bus::Notice notice;
  notice.op = bus::Notice::Op::kCloseExcept;
  notice.log = std::string(log_id);
  notice.keep.assign(keep.begin(), keep.end());
  notice.reason = static_cast<int>(reason);
  Close(notice, /*from_bus=*/false);
}

void Hub::CloseUserSubscriptions(absl::string_view user_id,
                                 CloseReason reason) {
  if (user_id.empty()) return;
  bus::Notice notice;
  notice.op = bus::Notice::Op::kCloseUser;
  notice.user_id = std::string(user_id);
  notice.reason = static_cast<int>(reason);
  Close(notice, /*from_bus=*/false);
}

void Hub::RevokeToken(absl::string_view token_id) {
  if (token_id.empty()) return;
  bus::Notice notice;
  notice.op = bus::Notice::Op::kRevokeToken;
  notice.token_id = std::string(token_id);
  notice.reason = static_cast<int>(CloseReason::kSignedOut);
  Close(notice, /*from_bus=*/false);
}

void Hub::DropLog(absl::string_view log_id) {
  bus::Notice notice;
  notice.op = bus::Notice::Op::kDropLog;
  notice.log = std::string(log_id);
  notice.reason = static_cast<int>(CloseReason::kDeleted);
  Close(notice, /*from_bus=*/false);
}

void Hub::OnNotice(const bus::Notice& notice) {
  if (notice.op == bus::Notice::Op::kInvalidateDirectory ||
      notice.op == bus::Notice::Op::kRevokeToken) {
    if (options_.on_directory_notice) options_.on_directory_notice(notice);
  }
  Close(notice, /*from_bus=*/true);
}

void Hub::OnReconnected() {
  if (options_.on_bus_reconnected) options_.on_bus_reconnected();
}

void Hub::Close(const bus::Notice& notice, bool from_bus) {
  // The other replicas close theirs too; this one does at once, and again
  // (finding nothing) when its own notice comes back.
  if (!from_bus && options_.bus != nullptr) options_.bus->Broadcast(notice);
  const auto reason = static_cast<CloseReason>(notice.reason);
  const std::string& user_id = notice.user_id;
  switch (notice.op) {
    case bus::Notice::Op::kClose: {
      std::shared_ptr<LogState> log = logs_.Find(notice.log);
      if (log == nullptr) return;
      CloseWhere(
          log,
          [&](const Sub& s) {
            return user_id.empty() || s.who.user_id == user_id;
          },
          reason);
      return;
    }
    case bus::Notice::Op::kCloseExcept: {
      std::shared_ptr<LogState> log = logs_.Find(notice.log);
      if (log == nullptr) return;
      const absl::flat_hash_set<std::string> keep(notice.keep.begin(),
                                                  notice.keep.end());
      CloseWhere(
          log,
          [&](const Sub& s) {
            return !s.who.user_id.empty() && !keep.contains(s.who.user_id);
          },
          reason);
      return;
    }
    case bus::Notice::Op::kCloseUser:
      if (user_id.empty()) return;
      for (const std::shared_ptr<LogState>& log : logs_.All()) {
        CloseWhere(
            log, [&](const Sub& s) { return s.who.user_id == user_id; },
            reason);
      }
      return;
    case bus::Notice::Op::kDropLog: {
      // Here the log is kept, marked, so that a late publish finds it
      // dropped instead of starting it afresh; a replica that never used
      // it has nothing to close (and never reads the store on the bus's
      // thread).
      std::shared_ptr<LogState> log = logs_.Find(notice.log);
      if (log == nullptr && !from_bus) {
        absl::StatusOr<std::shared_ptr<LogState>> loaded =
            logs_.Get(notice.log);
        if (loaded.ok()) log = *loaded;
      }
      if (log == nullptr) return;
      {
        MutexLock lock(&log->mu);
        log->dropped = true;
      }
      CloseWhere(log, [](const Sub&) { return true; }, CloseReason::kDeleted);
      return;
    }
    case bus::Notice::Op::kRevokeToken:
      if (notice.token_id.empty()) return;
      for (const std::shared_ptr<LogState>& log : logs_.All()) {
        CloseWhere(
            log, [&](const Sub& s) { return s.who.token_id == notice.token_id; },
            reason);
      }
      return;
    case bus::Notice::Op::kEndSession:
      CloseWhere(
          lobby_,
          [&](const Sub& s) { return s.session && s.who.name == user_id; },
          reason);
      return;
    case bus::Notice::Op::kInvalidateDirectory:
      return;  // OnNotice's
  }
}

absl::StatusOr<uint64_t> Hub::LastDelivered(absl::string_view log_id) {
  absl::StatusOr<std::shared_ptr<LogState>> log = logs_.Get(log_id);
  if (!log.ok()) return log.status();
  MutexLock lock(&(*log)->mu);
  return (*log)->delivered;
}

void Hub::Shutdown() {
  if (!logs_.Shutdown()) return;
  for (const std::shared_ptr<LogState>& log : logs_.All()) {
    CloseWhere(log, [](const Sub&) { return true; },
               CloseReason::kShutdown);
  }
}

}  // namespace parley::chat
