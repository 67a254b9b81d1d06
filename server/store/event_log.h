// The event log: every room's and every inbox's ordered events. Appends are
// asynchronous and group-committed (see store.h); the store numbers each
// log's events inside the commit. Reads are synchronous and may run on any
// thread. Thread-safe.
#ifndef PARLEY_SERVER_STORE_EVENT_LOG_H_
#define PARLEY_SERVER_STORE_EVENT_LOG_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/model/event.h"
#include "server/store/types.h"

namespace parley::store {

class EventLog {
 public:
  virtual ~EventLog() = default;

  // Queues `append` (see AppendEvent); `done` runs after it is committed or
  // failed. Appends to one log commit, and their `done`s run, in the order
  // they were queued.
  virtual void Append(AppendEvent append, WriteDone done) = 0;

  // The highest sequence number appended to `log`, 0 when none (also after a
  // purge: purged numbers are never reused).
  virtual absl::StatusOr<uint64_t> LastSequence(absl::string_view log) = 0;
  // Every event of `log` (all kinds, in their current state) with sequence
  // > `after`, oldest first, at most `limit`.
  virtual absl::StatusOr<std::vector<model::EventPtr>> ReadAfter(
      absl::string_view log, uint64_t after, size_t limit) = 0;
  // A page of the log's message events, each in its current state
  // (update_time, deleted, previous_versions filled).
  virtual absl::StatusOr<PageResult> ListMessages(absl::string_view log,
                                                  const Page& page) = 0;
  // One message event of `log` by id, in its current state. NOT_FOUND
  // (reason MESSAGE_NOT_FOUND) when missing or not a message.
  virtual absl::StatusOr<model::EventPtr> GetMessage(absl::string_view log,
                                                     absl::string_view id) = 0;
  // The distinct senders of the log's messages, in order of first post.
  virtual absl::StatusOr<std::vector<std::string>> ListPosters(
      absl::string_view log) = 0;
};

}  // namespace parley::store

#endif  // PARLEY_SERVER_STORE_EVENT_LOG_H_
