#include "server/api/quotas.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/common/errors.h"

namespace parley::api {
namespace {

RateLimiter::Options Bucket(double per_second, double burst, size_t keys) {
  return RateLimiter::Options{per_second, burst, keys};
}

FailureBackoff::Options Backoff(const QuotaOptions& o, int free_failures) {
  return FailureBackoff::Options{free_failures, o.sign_in_backoff,
                                 o.sign_in_backoff_max, o.max_tracked_keys};
}

absl::Status RateLimited(absl::string_view what, absl::Duration wait) {
  return OverLimit("RATE_LIMITED", absl::StrCat(what, "; try again later"),
                   wait);
}

}  // namespace

Quotas::Quotas(const QuotaOptions& options, Clock* clock)
    : options_(options),
      user_sends_(Bucket(options.sends_per_user_per_second,
                         options.send_burst_per_user, options.max_tracked_keys),
                  clock),
      room_sends_(Bucket(options.sends_per_room_per_second,
                         options.send_burst_per_room, options.max_tracked_keys),
                  clock),
      address_sign_ins_(Bucket(options.sign_ins_per_address_per_minute / 60,
                               options.sign_in_burst_per_address,
                               options.max_tracked_keys),
                        clock),
      user_failures_(Backoff(options, options.sign_in_free_failures_per_user),
                     clock),
      address_failures_(
          Backoff(options, options.sign_in_free_failures_per_address), clock),
      user_streams_(options.streams_per_user, options.max_tracked_keys),
      address_streams_(options.streams_per_address, options.max_tracked_keys) {}

absl::Status Quotas::ChargeSend(absl::string_view sender,
                                absl::string_view log) {
  if (absl::Duration wait = user_sends_.Take(sender); wait > absl::ZeroDuration()) {
    return RateLimited("you are sending too fast", wait);
  }
  if (absl::Duration wait = room_sends_.Take(log); wait > absl::ZeroDuration()) {
    return RateLimited("this room takes too many messages", wait);
  }
  return absl::OkStatus();
}

absl::Status Quotas::BackoffOf(absl::string_view address,
                               absl::string_view username) {
  const absl::Duration backoff =
      std::max(user_failures_.Wait(username), address_failures_.Wait(address));
  if (backoff > absl::ZeroDuration()) {
    return OverLimit("SIGN_IN_BACKOFF",
                     "too many failed sign-ins; wait before trying again",
                     backoff);
  }
  return absl::OkStatus();
}

absl::Status Quotas::RecheckSignIn(absl::string_view address,
                                   absl::string_view username) {
  if (shared_failures_ == nullptr) return absl::OkStatus();
  std::vector<SharedFailures::Key> keys;
  if (user_failures_.enabled()) {
    keys.push_back({&user_failures_, std::string(username)});
  }
  if (address_failures_.enabled()) {
    keys.push_back({&address_failures_, std::string(address)});
  }
  if (keys.empty()) return absl::OkStatus();
  // Unreachable: AdmitSignIn's local answer stands.
  if (!shared_failures_->Refresh(keys).ok()) return absl::OkStatus();
  return BackoffOf(address, username);
}

absl::Status Quotas::AdmitSignIn(absl::string_view address,
                                 absl::string_view username) {
  if (absl::Status s = BackoffOf(address, username); !s.ok()) return s;
  if (absl::Duration wait = address_sign_ins_.Take(address);
      wait > absl::ZeroDuration()) {
    return RateLimited("too many sign-ins from your address", wait);
  }
  return absl::OkStatus();
}

void Quotas::SignInFailed(absl::string_view address,
                          absl::string_view username) {
  if (!username.empty()) user_failures_.Failed(username);
  address_failures_.Failed(address);
}

void Quotas::SignInSucceeded(absl::string_view address,
                             absl::string_view username) {
  user_failures_.Succeeded(username);
  address_failures_.Succeeded(address);
}

Quotas::StreamSlot& Quotas::StreamSlot::operator=(
    StreamSlot&& other) noexcept {
  if (this != &other) {
    Release();
    quotas_ = std::exchange(other.quotas_, nullptr);
    user_ = std::move(other.user_);
    address_ = std::move(other.address_);
  }
  return *this;
}

void Quotas::StreamSlot::Release() {
  if (quotas_ == nullptr) return;
  if (!user_.empty()) quotas_->user_streams_.Release(user_);
  if (!address_.empty()) quotas_->address_streams_.Release(address_);
  quotas_ = nullptr;
}

absl::StatusOr<Quotas::StreamSlot> Quotas::OpenStream(
    absl::string_view user, absl::string_view address) {
  auto user_full = [&] {
    return OverLimit("TOO_MANY_STREAMS",
                     absl::StrCat("you have ", options_.streams_per_user,
                                  " streams open already; close one first"),
                     absl::Seconds(1));
  };
  auto address_full = [&] {
    return OverLimit(
        "TOO_MANY_STREAMS",
        absl::StrCat("your address has ", options_.streams_per_address,
                     " streams open already; close one first"),
        absl::Seconds(1));
  };
  StreamSlot slot;
  slot.quotas_ = this;
  slot.user_ = std::string(user);
  slot.address_ = std::string(address);
  std::vector<SharedSlots::Claim> claims;
  if (!user.empty() && user_streams_.enabled()) {
    claims.push_back({&user_streams_, std::string(user)});
  }
  if (!address.empty() && address_streams_.enabled()) {
    claims.push_back({&address_streams_, std::string(address)});
  }
  if (claims.empty()) return slot;
  if (shared_streams_ != nullptr) {
    absl::StatusOr<int> over = shared_streams_->ClaimAll(claims);
    if (over.ok()) {
      if (*over < 0) return slot;
      slot.quotas_ = nullptr;  // nothing taken
      return claims[*over].table == &user_streams_ ? user_full()
                                                   : address_full();
    }
    // The shared count is away: this server counts alone meanwhile.
  }
  if (!user.empty() && !user_streams_.Acquire(user)) {
    slot.quotas_ = nullptr;
    return user_full();
  }
  if (!address.empty() && !address_streams_.Acquire(address)) {
    if (!user.empty()) user_streams_.Release(user);
    slot.quotas_ = nullptr;
    return address_full();
  }
  return slot;
}

SharedTables Quotas::Tables() {
  SharedTables t;
  t.rates = {{"sends:user", &user_sends_},
             {"sends:room", &room_sends_},
             {"sign-ins:address", &address_sign_ins_}};
  t.slots = {{"streams:user", &user_streams_},
             {"streams:address", &address_streams_}};
  t.failures = {{"failures:user", &user_failures_},
                {"failures:address", &address_failures_}};
  return t;
}

}  // namespace parley::api
