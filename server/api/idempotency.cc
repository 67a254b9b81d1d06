#include "server/api/idempotency.h"

#include <sodium.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "server/api/common.h"
#include "server/common/errors.h"

namespace parley::api {

absl::StatusOr<model::IdempotencyKey> IdempotentSends::KeyOf(
    grpc::CallbackServerContext* ctx, absl::string_view field, size_t max_bytes,
    absl::FunctionRef<std::string()> scope, absl::string_view log,
    absl::string_view text) {
  std::string key(field);
  if (key.empty()) {
    const auto& md = ctx->client_metadata();
    auto it = md.find("idempotency-key");
    if (it != md.end()) key.assign(it->second.data(), it->second.size());
  }
  if (key.size() > max_bytes) {
    return InvalidInput("INVALID_IDEMPOTENCY_KEY", "idempotency_key",
                        absl::StrCat("idempotency_key is longer than ",
                                     max_bytes, " bytes"));
  }
  if (HasControlChars(key)) {
    return InvalidInput("INVALID_IDEMPOTENCY_KEY", "idempotency_key",
                        "idempotency_key has control characters");
  }
  if (key.empty()) return model::IdempotencyKey();
  // BLAKE2b of the destination and the text: enough to tell a retry from a
  // reuse of the key, without keeping the text (a deleted message's text
  // must not survive in this table).
  unsigned char hash[16];
  crypto_generichash_state state;
  crypto_generichash_init(&state, nullptr, 0, sizeof(hash));
  const uint64_t log_size = log.size();
  crypto_generichash_update(
      &state, reinterpret_cast<const unsigned char*>(&log_size),
      sizeof(log_size));
  crypto_generichash_update(
      &state, reinterpret_cast<const unsigned char*>(log.data()), log.size());
  crypto_generichash_update(
      &state, reinterpret_cast<const unsigned char*>(text.data()),
      text.size());
  crypto_generichash_final(&state, hash, sizeof(hash));
  return model::IdempotencyKey{
      scope(), std::move(key),
      absl::BytesToHexString(absl::string_view(
          reinterpret_cast<const char*>(hash), sizeof(hash))),
      clock_->Now() - ttl_};
}

namespace {

absl::Status KeyReused() {
  return WithReason(
      absl::AlreadyExistsError("idempotency_key was already used for a "
                               "different message or destination"),
      "IDEMPOTENCY_KEY_REUSED", "idempotency_key");
}

}  // namespace

void IdempotentSends::Run(const model::IdempotencyKey& key,
                          absl::AnyInvocable<void(chat::EventDone)> publish,
                          chat::EventDone done) {
  if (key.key.empty()) {
    publish(std::move(done));
    return;
  }
  Key id{key.scope, key.key};
  enum class Claim { kOwner, kWaiting, kReused } claim;
  {
    MutexLock lock(&mu_);
    auto [it, added] = in_flight_.try_emplace(id);
    if (added) {
      claim = Claim::kOwner;
      it->second.digest = key.digest;
      it->second.waiters.push_back(std::move(done));
    } else if (it->second.digest == key.digest) {
      claim = Claim::kWaiting;
      it->second.waiters.push_back(std::move(done));
    } else {
      claim = Claim::kReused;
    }
  }
  if (claim == Claim::kWaiting) return;
  if (claim == Claim::kReused) {
    done(KeyReused());
    return;
  }
  // Claimed: no other send with this key gets past here until Resolve, and
  // Resolve for a published send runs after its commit, so what the store
  // says now is final.
  absl::StatusOr<model::EventPtr> committed = FindCommitted(key);
  if (!committed.ok() || *committed != nullptr) {
    Resolve(id, committed);
    return;
  }
  publish([this, id, key](absl::StatusOr<model::EventPtr> result) {
    // Another server stored a send with this key after FindCommitted
    // looked: that one is the outcome.
    if (absl::IsAlreadyExists(result.status()) &&
        ErrorReason(result.status()) == "IDEMPOTENCY_KEY_TAKEN") {
      result = FindCommitted(key);
      if (result.ok() && *result == nullptr) {
        result = absl::UnavailableError(
            "a send with this idempotency key is in flight on another "
            "server; retry");
      }
    }
    Resolve(id, result);
  });
}

absl::StatusOr<model::EventPtr> IdempotentSends::FindCommitted(
    const model::IdempotencyKey& key) {
  absl::StatusOr<std::optional<store::IdempotentSend>> found =
      store_->FindIdempotentSend(key.scope, key.key, clock_->Now() - ttl_);
  if (!found.ok()) return found.status();
  if (!found->has_value()) return model::EventPtr();
  const store::IdempotentSend& sent = **found;
  if (sent.digest != key.digest) return KeyReused();
  // The message as it is now (edited, deleted); when it was purged since,
  // what the key's row remembers of it.
  absl::StatusOr<std::vector<model::EventPtr>> events =
      store_->ReadAfter(sent.log, sent.sequence - 1, 1);
  if (!events.ok()) return events.status();
  if (!events->empty() && events->front()->id == sent.event_id) {
    return events->front();
  }
  auto purged = std::make_shared<model::Event>();
  purged->kind = model::EventKind::kMessage;
  purged->log = sent.log;
  purged->sequence = sent.sequence;
  purged->id = sent.event_id;
  purged->time = sent.time;
  purged->deleted = true;
  return purged;
}

void IdempotentSends::Resolve(const Key& key,
                              const absl::StatusOr<model::EventPtr>& result) {
  std::vector<chat::EventDone> waiters;
  {
    MutexLock lock(&mu_);
    auto it = in_flight_.find(key);
    if (it == in_flight_.end()) return;
    waiters = std::move(it->second.waiters);
    in_flight_.erase(it);
  }
  for (chat::EventDone& done : waiters) done(result);
}

}  // namespace parley::api
