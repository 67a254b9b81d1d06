#include "server/bus/presence_directory.h"

#include <utility>

namespace parley::bus {

void MemoryPresenceDirectory::Put(std::string replica, std::string log,
                                  std::vector<PresentEntry> entries,
                                  absl::Time now) {
  MutexLock lock(&mu_);
  if (entries.empty()) {
    auto it = logs_.find(log);
    if (it != logs_.end()) it->second.erase(replica);
    return;
  }
  logs_[log][replica] = Snapshot{std::move(entries), now + ttl_};
}

void MemoryPresenceDirectory::List(std::string log, std::string except,
                                   absl::Time now, Listed done) {
  std::vector<PresentEntry> all;
  {
    MutexLock lock(&mu_);
    auto it = logs_.find(log);
    if (it != logs_.end()) {
      for (const auto& [replica, snapshot] : it->second) {
        if (replica == except || snapshot.expire <= now) continue;
        all.insert(all.end(), snapshot.entries.begin(),
                   snapshot.entries.end());
      }
    }
  }
  done(std::move(all));
}

}  // namespace parley::bus
