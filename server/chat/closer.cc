#include "server/chat/closer.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "server/model/ids.h"

namespace parley::chat {

using Sub = LogState::Sub;

Closer::Closer(const HubOptions& options, LogTable* logs, LogOrder* order,
               PresenceTracker* presence)
    : options_(options), logs_(logs), order_(order), presence_(presence) {}

void Closer::CloseWhere(const std::shared_ptr<LogState>& log, Match close,
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
    order_->FollowLocked(log.get());
    // Ended by the server (sign-out, removal, deletion), not a reconnect:
    // no grace. Deleted rooms and shutdown announce nothing.
    for (const Subscriber& who : released) {
      presence_->DepartLocked(log, who, absl::ZeroDuration(), &wake);
    }
  }
  WakeAll(wake);
}

void Closer::CloseEverywhere(Match close, CloseReason reason) {
  for (const std::shared_ptr<LogState>& log : logs_->All()) {
    CloseWhere(log, close, reason);
  }
}

void Closer::CloseAll(CloseReason reason) {
  CloseEverywhere([](const Sub&) { return true; }, reason);
}

void Closer::Close(const bus::Notice& notice, bool from_bus) {
  // The other replicas close theirs too; this one does at once, and again
  // (finding nothing) when its own notice comes back.
  if (!from_bus && options_.bus != nullptr) options_.bus->Broadcast(notice);
  const auto reason = static_cast<CloseReason>(notice.reason);
  const std::string& user_id = notice.user_id;
  switch (notice.op) {
    case bus::Notice::Op::kClose: {
      std::shared_ptr<LogState> log = logs_->Find(notice.log);
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
      std::shared_ptr<LogState> log = logs_->Find(notice.log);
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
      CloseEverywhere([&](const Sub& s) { return s.who.user_id == user_id; },
                      reason);
      return;
    case bus::Notice::Op::kDropLog: {
      // A replica that never used the log has nothing to close (and never
      // reads the store on the bus's thread).
      std::shared_ptr<LogState> log = logs_->Find(notice.log);
      if (log == nullptr && !from_bus) {
        absl::StatusOr<std::shared_ptr<LogState>> loaded =
            logs_->Get(notice.log);
        if (loaded.ok()) log = *loaded;
      }
      if (log == nullptr) return;
      {
        MutexLock lock(&log->mu);
        log->dropped = true;
      }
      CloseWhere(
          log, [](const Sub&) { return true; }, CloseReason::kDeleted);
      return;
    }
    case bus::Notice::Op::kRevokeToken:
      if (notice.token_id.empty()) return;
      CloseEverywhere(
          [&](const Sub& s) { return s.who.token_id == notice.token_id; },
          reason);
      return;
    case bus::Notice::Op::kEndSession: {
      std::shared_ptr<LogState> lobby = logs_->Find(model::kLobbyId);
      if (lobby == nullptr) return;
      CloseWhere(
          lobby,
          [&](const Sub& s) { return s.session && s.who.name == user_id; },
          reason);
      return;
    }
    case bus::Notice::Op::kInvalidateDirectory:
      return;  // the hub's on_directory_notice
  }
}

}  // namespace parley::chat
