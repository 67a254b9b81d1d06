// Idempotent sends: a send that carries a client key (see
// parley.v1.PostMessageRequest.idempotency_key) stores and delivers one
// message however often it is retried, in flight or after a restart.
//
// The key is stored with its message in the same transaction (the store's
// idempotency_keys table), so a retry after a commit finds it; a retry while
// the first send is still in flight waits for that send's outcome instead of
// racing it. A key is claimed here before the store is asked and released
// only after the commit, so two sends with one key never both reach the
// store. Thread-safe. `hub` and `store` must outlive it.
#ifndef PARLEY_SERVER_API_IDEMPOTENCY_H_
#define PARLEY_SERVER_API_IDEMPOTENCY_H_

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "grpcpp/server_context.h"
#include "server/chat/hub.h"
#include "server/common/clock.h"
#include "server/common/mutex.h"
#include "server/model/event.h"
#include "server/store/store.h"

namespace parley::api {

class IdempotentSends {
 public:
  // Keys are honoured for `ttl` after their send was committed.
  IdempotentSends(store::Store* store, Clock* clock, absl::Duration ttl)
      : store_(store), clock_(clock), ttl_(ttl) {}

  // The idempotency key of a call sending `text` to `log`, for Run: the
  // client's key (the request's `field`, else the `idempotency-key`
  // metadata, which the gateway fills from the Idempotency-Key header) in
  // the sender's `scope`, and a digest of the destination and text. Empty
  // (and nothing computed, `scope` not called) when the call has no key;
  // INVALID_ARGUMENT (field idempotency_key) when it is longer than
  // `max_bytes` or has control characters.
  absl::StatusOr<model::IdempotencyKey> KeyOf(
      grpc::CallbackServerContext* ctx, absl::string_view field,
      size_t max_bytes, absl::FunctionRef<std::string()> scope,
      absl::string_view log, absl::string_view text);

  // Runs `publish` (which must attach `key` to the event it commits and call
  // its argument with the outcome) unless a send with the same scope and key
  // was committed within the ttl (then `done` gets that message as the store
  // has it now) or is in flight (then `done` gets that send's outcome). The
  // same key with another destination or text: ALREADY_EXISTS
  // (IDEMPOTENCY_KEY_REUSED). An empty key just runs `publish`.
  void Run(const model::IdempotencyKey& key,
           absl::AnyInvocable<void(chat::EventDone)> publish,
           chat::EventDone done);

 private:
  struct InFlight {
    std::string digest;
    std::vector<chat::EventDone> waiters;  // the first is the owner's
  };
  using Key = std::pair<std::string, std::string>;  // scope, key

  // Finds the committed send of `key`, or nullptr.
  absl::StatusOr<model::EventPtr> FindCommitted(
      const model::IdempotencyKey& key);
  // Hands `result` to everyone waiting on `key` and forgets it.
  void Resolve(const Key& key, const absl::StatusOr<model::EventPtr>& result);

  store::Store* const store_;
  Clock* const clock_;
  const absl::Duration ttl_;
  Mutex mu_;
  std::map<Key, InFlight> in_flight_ ABSL_GUARDED_BY(mu_);
};

}  // namespace parley::api

#endif  // PARLEY_SERVER_API_IDEMPOTENCY_H_
