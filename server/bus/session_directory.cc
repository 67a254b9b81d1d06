#include "server/bus/session_directory.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/errors.h"

namespace parley::bus {

absl::Status LobbyFull() {
  return OverLimit("LOBBY_FULL",
                   "the lobby has as many clients as it takes; try again later",
                   absl::Seconds(10));
}

absl::Status TooManySessions() {
  return OverLimit("TOO_MANY_SESSIONS",
                   "your address has as many lobby clients joined as it may; "
                   "leave with one first",
                   absl::Seconds(10));
}

void MemorySessionDirectory::Create(std::string id, std::string owner,
                                    absl::Time now, SessionLimits limits,
                                    Done done) {
  absl::Status result;
  {
    MutexLock lock(&mu_);
    if (sessions_.count(id) > 0) {
      result = absl::AlreadyExistsError(absl::StrCat("session ", id));
    } else if (limits.total > 0 && sessions_.size() >= limits.total) {
      result = LobbyFull();
    } else if (!owner.empty() && limits.per_owner > 0 &&
               owned_[owner] >= limits.per_owner) {
      result = TooManySessions();
    } else {
      if (!owner.empty()) ++owned_[owner];
      sessions_.emplace(id, Session{std::nullopt, now, std::move(owner)});
    }
  }
  done(result);
}

std::map<std::string, MemorySessionDirectory::Session>::iterator
MemorySessionDirectory::EraseLocked(
    std::map<std::string, Session>::iterator it) {
  if (const std::string& owner = it->second.owner; !owner.empty()) {
    auto o = owned_.find(owner);
    if (o != owned_.end() && --o->second == 0) owned_.erase(o);
  }
  return sessions_.erase(it);
}

void MemorySessionDirectory::SetCursor(std::string id, uint64_t cursor,
                                       absl::Time now, Done done) {
  absl::Status result;
  {
    MutexLock lock(&mu_);
    auto it = sessions_.find(id);
    if (it == sessions_.end()) {
      result = absl::NotFoundError(absl::StrCat("session ", id));
    } else {
      it->second.cursor = std::max(it->second.cursor.value_or(0), cursor);
      it->second.active = std::max(it->second.active, now);
    }
  }
  done(result);
}

void MemorySessionDirectory::Get(
    std::string id, absl::Time now,
    absl::AnyInvocable<void(absl::StatusOr<uint64_t>)> done) {
  absl::StatusOr<uint64_t> result;
  {
    MutexLock lock(&mu_);
    auto it = sessions_.find(id);
    if (it == sessions_.end() || !it->second.cursor.has_value()) {
      result = absl::NotFoundError(absl::StrCat("session ", id));
    } else {
      it->second.active = std::max(it->second.active, now);
      result = *it->second.cursor;
    }
  }
  done(std::move(result));
}

void MemorySessionDirectory::Remove(
    std::string id, absl::AnyInvocable<void(absl::StatusOr<bool>)> done) {
  bool removed;
  {
    MutexLock lock(&mu_);
    auto it = sessions_.find(id);
    removed = it != sessions_.end();
    if (removed) EraseLocked(it);
  }
  done(removed);
}

void MemorySessionDirectory::Touch(std::vector<std::string> ids,
                                   absl::Time now) {
  MutexLock lock(&mu_);
  for (const std::string& id : ids) {
    auto it = sessions_.find(id);
    if (it != sessions_.end()) {
      it->second.active = std::max(it->second.active, now);
    }
  }
}

void MemorySessionDirectory::RemoveIdle(
    absl::Time before,
    absl::AnyInvocable<void(absl::StatusOr<std::vector<std::string>>)> done) {
  std::vector<std::string> idle;
  {
    MutexLock lock(&mu_);
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      if (it->second.active < before) {
        idle.push_back(it->first);
        it = EraseLocked(it);
      } else {
        ++it;
      }
    }
  }
  done(std::move(idle));
}

}  // namespace parley::bus
