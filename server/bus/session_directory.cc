#include "server/bus/session_directory.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace parley::bus {

void MemorySessionDirectory::Create(std::string id, absl::Time now,
                                    Done done) {
  absl::Status result;
  {
    MutexLock lock(&mu_);
    if (!sessions_.try_emplace(id, Session{std::nullopt, now}).second) {
      result = absl::AlreadyExistsError(absl::StrCat("session ", id));
    }
  }
  done(result);
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
    removed = sessions_.erase(id) > 0;
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
        it = sessions_.erase(it);
      } else {
        ++it;
      }
    }
  }
  done(std::move(idle));
}

}  // namespace parley::bus
