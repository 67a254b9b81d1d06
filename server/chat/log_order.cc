#include "server/chat/log_order.h"

#include <algorithm>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "server/common/log.h"

namespace parley::chat {

// Events read per store call when a replica catches up.
constexpr size_t kCatchUpPage = 512;

CommitDone IgnoreCount(EventDone done) {
  return [done = std::move(done)](absl::StatusOr<model::EventPtr> event,
                                  int64_t) mutable { done(std::move(event)); };
}

LogOrder::LogOrder(const HubOptions& options, store::EventLog* store,
                   Clock* clock, LogTable* logs, Dispatcher* dispatcher)
    : options_(options),
      store_(store),
      clock_(clock),
      logs_(logs),
      dispatcher_(dispatcher) {}

void LogOrder::Publish(std::shared_ptr<model::Event> event, CommitDone done) {
  absl::StatusOr<std::shared_ptr<LogState>> log = logs_->Get(event->log);
  if (!log.ok()) {
    done(log.status(), 0);
    return;
  }
  absl::Status refused;
  {
    MutexLock lock(&(*log)->mu);
    refused = logs_->CheckPublishableLocked(**log);
    if (refused.ok()) PublishLocked(*log, std::move(event), std::move(done));
  }
  if (!refused.ok()) done(refused, 0);
}

void LogOrder::PublishLocked(const std::shared_ptr<LogState>& log,
                             std::shared_ptr<model::Event> event,
                             CommitDone done) {
  event->time = clock_->Now();
  // The store numbers and commits this log's events in the order they are
  // queued here, under the log's lock, and runs the callbacks in that order
  // too. The encoding, the fan-out and the acknowledgement run on the hub's
  // dispatcher thread, in the same order, so the store's thread goes back to
  // committing at once. Only the store touches the event until it calls
  // back (it sets the number).
  store::AppendEvent append{event};
  store_->Append(std::move(append),
                 [this, log, event = std::move(event), done = std::move(done)](
                     absl::StatusOr<int64_t> committed) mutable {
                   const std::string& id = log->id;
                   dispatcher_->Dispatch(
                       id, [this, log = std::move(log),
                            event = std::move(event), done = std::move(done),
                            committed = std::move(committed)]() mutable {
                         if (!committed.ok()) {
                           done(committed.status(), 0);
                           return;
                         }
                         if (options_.bus != nullptr)
                           options_.bus->Publish(*event);
                         // The event is in every reader's channel before the
                         // acknowledgement, and the readers are woken after it:
                         // a large room's stream writes do not delay the
                         // sender's answer.
                         Wakeups wake = DeliverInOrder(log.get(), event);
                         done(model::EventPtr(std::move(event)), *committed);
                         dispatcher_->Wake(log->id, std::move(wake));
                       });
                 });
}

void LogOrder::OnCommitted(std::shared_ptr<model::Event> event) {
  const std::string id = event->log;
  dispatcher_->Dispatch(id, [this, event = std::move(event)]() mutable {
    std::shared_ptr<LogState> log = logs_->Find(event->log);
    if (log == nullptr) return;
    Wakeups wake = DeliverInOrder(log.get(), std::move(event));
    dispatcher_->Wake(log->id, std::move(wake));
  });
}

void LogOrder::CatchUp(absl::string_view log_id) {
  dispatcher_->Dispatch(log_id, [this, id = std::string(log_id)] {
    std::shared_ptr<LogState> log = logs_->Find(id);
    if (log == nullptr) return;
    uint64_t delivered;
    {
      MutexLock lock(&log->mu);
      delivered = log->delivered;
    }
    Wakeups wake;
    DeliverFromStore(log.get(), delivered, std::numeric_limits<uint64_t>::max(),
                     &wake);
    dispatcher_->Wake(log->id, std::move(wake));
  });
}

void LogOrder::FollowLocked(LogState* log) {
  if (options_.bus == nullptr || log->pinned) return;
  if (!log->subs.empty() && !log->on_bus) {
    log->on_bus = true;
    options_.bus->Subscribe(log->id);
  } else if (log->subs.empty() && log->on_bus) {
    log->on_bus = false;
    options_.bus->Unsubscribe(log->id);
  }
}

void LogOrder::Pin(LogState* log) {
  if (options_.bus == nullptr) return;
  MutexLock lock(&log->mu);
  log->pinned = true;
  log->on_bus = true;
  options_.bus->Subscribe(log->id);
}

Wakeups LogOrder::Deliver(LogState* log, const model::EventPtr& event) {
  Wakeups wake;
  {
    MutexLock lock(&log->mu);
    log->delivered = std::max(log->delivered, event->sequence);
    for (LogState::Sub& sub : log->subs) {
      if (event->sequence <= sub.start_after || !sub.who.receives_events) {
        continue;
      }
      if (auto reader = sub.channel->Push(event)) {
        wake.push_back(std::move(reader));
      }
    }
  }
  return wake;
}

Wakeups LogOrder::DeliverInOrder(LogState* log,
                                 std::shared_ptr<model::Event> event) {
  uint64_t delivered;
  {
    MutexLock lock(&log->mu);
    delivered = log->delivered;
  }
  Wakeups wake;
  if (event->sequence <= delivered) return wake;
  if (event->sequence > delivered + 1 &&
      !DeliverFromStore(log, delivered, event->sequence - 1, &wake)) {
    // Not past a gap the store could not fill: the next event, or the
    // bus's next (re)subscription, reads it again.
    return wake;
  }
  if (options_.encoder) event->wire = options_.encoder(*event);
  Wakeups more = Deliver(log, event);
  wake.insert(wake.end(), more.begin(), more.end());
  return wake;
}

bool LogOrder::DeliverFromStore(LogState* log, uint64_t after, uint64_t through,
                                Wakeups* wake) {
  while (after < through) {
    absl::StatusOr<std::vector<model::EventPtr>> page =
        store_->ReadAfter(log->id, after, kCatchUpPage);
    if (!page.ok()) {
      ::parley::log::Warning("hub: cannot read missed events",
                             {{"log", log->id},
                              {"after", after},
                              {"error", page.status().message()}});
      return false;
    }
    if (page->empty()) return true;
    for (const model::EventPtr& stored : *page) {
      if (stored->sequence > through) return true;
      auto event = std::make_shared<model::Event>(*stored);
      if (options_.encoder) event->wire = options_.encoder(*event);
      Wakeups more = Deliver(log, event);
      wake->insert(wake->end(), more.begin(), more.end());
      after = stored->sequence;
    }
  }
  return true;
}

}  // namespace parley::chat
