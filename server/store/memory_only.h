// A thread's promise not to wait for the database. While a MemoryOnlyScope
// lives on a thread, the store's cache (CachedStore) answers only what it
// holds in memory: a read it would pass on to the database fails at once
// instead (UNAVAILABLE, reason NOT_IN_MEMORY) and the scope records the
// miss. A gRPC thread uses one to run a call's checks without blocking, and
// hands the call to a worker when they missed (api::CheckThenAct).
#ifndef PARLEY_SERVER_STORE_MEMORY_ONLY_H_
#define PARLEY_SERVER_STORE_MEMORY_ONLY_H_

#include "absl/status/status.h"

namespace parley::store {

class MemoryOnlyScope {
 public:
  MemoryOnlyScope();
  ~MemoryOnlyScope();
  MemoryOnlyScope(const MemoryOnlyScope&) = delete;
  MemoryOnlyScope& operator=(const MemoryOnlyScope&) = delete;

  // Whether something in the scope needed the database.
  bool missed() const { return missed_; }

  // In a scope: records a miss and returns the error to answer with.
  // Outside one: OK. Code that will need the database later in the call
  // (not through the store's cache) calls it to say so.
  static absl::Status Refuse();

 private:
  MemoryOnlyScope* const outer_;
  bool missed_ = false;
};

}  // namespace parley::store

#endif  // PARLEY_SERVER_STORE_MEMORY_ONLY_H_
