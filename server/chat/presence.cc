#include "server/chat/presence.h"

#include <algorithm>
#include <map>
#include <tuple>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/common/uuid.h"

namespace parley::chat {
namespace {

// Room logs carry presence events; direct-message inboxes do not.
bool IsRoomLog(absl::string_view log) { return !absl::StartsWith(log, "dm:"); }

// Presence is per user: by user id, or by name for subscribers without one
// (room-token holders). List keys the same way.
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

PresenceTracker::PresenceTracker(const HubOptions& options, Clock* clock,
                                 LogTable* logs)
    : options_(options), clock_(clock), logs_(logs), replica_(NewUuid()) {}

bool PresenceTracker::ArriveLocked(LogState* log, const Subscriber& who,
                                   Wakeups* wake) {
  if (!IsRoomLog(log->id) || who.name.empty()) return false;
  LogState::Presence& p = log->presence[PresenceKey(who)];
  if (p.streams++ > 0) return true;  // another stream of theirs is open
  if (p.leave_at != absl::InfiniteFuture()) {
    // Back within the grace: the others never heard they had left.
    p.leave_at = absl::InfiniteFuture();
    return true;
  }
  p.who = who;
  p.since = clock_->Now();
  AnnounceLocked(log, model::EventKind::kJoin, who, wake);
  return true;
}

void PresenceTracker::DepartLocked(const std::shared_ptr<LogState>& log,
                                   const Subscriber& who, absl::Duration grace,
                                   Wakeups* wake) {
  auto it = log->presence.find(PresenceKey(who));
  if (it == log->presence.end() || it->second.streams == 0) return;
  if (--it->second.streams > 0) return;  // another stream of theirs is open
  if (grace > absl::ZeroDuration() && !log->dropped &&
      !logs_->shutting_down()) {
    it->second.leave_at = clock_->Now() + grace;
    if (!log->leave_queued) QueueLeavesLocked(log);
    return;
  }
  const Subscriber gone = std::move(it->second.who);
  log->presence.erase(it);
  AnnounceLocked(log.get(), model::EventKind::kLeave, gone, wake);
}

void PresenceTracker::QueueLeavesLocked(const std::shared_ptr<LogState>& log) {
  log->leave_queued = true;
  MutexLock leaves(&leaves_mu_);
  pending_leaves_.push_back(log);
}

void PresenceTracker::AnnounceLocked(LogState* log, model::EventKind kind,
                                     const Subscriber& who, Wakeups* wake) {
  if (log->dropped || logs_->shutting_down() ||
      log->subs.size() >= options_.presence_max_subscribers) {
    return;
  }
  auto event = NewEvent(kind, log->id);
  event->room_id = log->id;
  event->room = who.room;
  event->sender = who.name;
  event->sender_id = who.user_id;
  event->time = clock_->Now();
  if (options_.encoder) event->wire = options_.encoder(*event);
  if (options_.bus != nullptr) options_.bus->Publish(*event);
  log->PushLiveLocked(std::move(event), wake);
}

int PresenceTracker::AnnounceLeaves() {
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
        LogState::Presence& p = it->second;
        if (p.streams > 0) {
          ++it;
        } else if (p.leave_at <= now) {
          AnnounceLocked(log.get(), model::EventKind::kLeave, p.who, &wake);
          ++announced;
          log->presence.erase(it++);
        } else {
          waiting = true;
          ++it;
        }
      }
      if (waiting) QueueLeavesLocked(log);
    }
    WakeAll(wake);
  }
  return announced;
}

std::vector<Present> PresenceTracker::List(absl::string_view log_id,
                                           size_t limit, bool* truncated) {
  *truncated = false;
  std::shared_ptr<LogState> log = logs_->Find(log_id);
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
    for (const LogState::Sub& sub : log->subs) {
      if (sub.counted || sub.who.name.empty()) continue;
      by_who.try_emplace(PresenceKey(sub.who),
                         Present{sub.who.user_id, sub.who.name, sub.since});
    }
  }
  return Ordered(std::move(by_who), limit, truncated);
}

void PresenceTracker::ListEverywhere(
    absl::string_view log_id, size_t limit,
    absl::AnyInvocable<void(std::vector<Present>, bool truncated)> done) {
  bool truncated = false;
  std::vector<Present> here = List(log_id, limit, &truncated);
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

void PresenceTracker::Share() {
  if (options_.presence == nullptr) return;
  const absl::Time now = clock_->Now();
  absl::flat_hash_set<std::string> shared;
  for (const std::shared_ptr<LogState>& log : logs_->All()) {
    bool truncated;
    std::vector<Present> here =
        List(log->id, options_.presence_max_subscribers, &truncated);
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
  MutexLock lock(&shared_mu_);
  for (const std::string& log : shared_) {
    if (!shared.contains(log)) options_.presence->Put(replica_, log, {}, now);
  }
  shared_ = std::move(shared);
}

}  // namespace parley::chat
