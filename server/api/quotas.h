// Every client's fair share (docs/security.md, "Limits"): how fast a user
// sends and a room takes sends, how often an address or a username may try
// a password, and how many streams a user and an address hold open. A call
// over a limit is refused RESOURCE_EXHAUSTED at once, with a reason and
// when to try again (HTTP 429 and Retry-After through the gateway). Counts
// are kept per server process; in a cluster, RedisLimits shares them
// (Tables()). Thread-safe.
#ifndef PARLEY_SERVER_API_QUOTAS_H_
#define PARLEY_SERVER_API_QUOTAS_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/common/clock.h"
#include "server/common/rate_limit.h"

namespace parley::api {

// Each is a server flag of the same name (main.cc); 0 turns a limit off.
struct QuotaOptions {
  double sends_per_user_per_second = 20;
  double send_burst_per_user = 60;
  double sends_per_room_per_second = 500;
  double send_burst_per_room = 1000;
  double sign_ins_per_address_per_minute = 60;
  double sign_in_burst_per_address = 20;
  // Failed sign-ins in a row before each further one doubles a wait, from
  // sign_in_backoff up to sign_in_backoff_max; <0 turns back-off off.
  int sign_in_free_failures_per_user = 5;
  int sign_in_free_failures_per_address = 20;
  absl::Duration sign_in_backoff = absl::Seconds(1);
  absl::Duration sign_in_backoff_max = absl::Minutes(15);
  size_t streams_per_user = 100;
  size_t streams_per_address = 1000;
  // Keys each table may hold (users, addresses, rooms being counted).
  size_t max_tracked_keys = 100000;
};

class Quotas {
 public:
  Quotas(const QuotaOptions& options, Clock* clock);

  // Counts a send by `sender` (the user's id, or another key naming who
  // sends, such as an address) to `log`; RATE_LIMITED when either is over.
  absl::Status ChargeSend(absl::string_view sender, absl::string_view log);

  // Before a password is checked: RATE_LIMITED when `address` signs in too
  // often, SIGN_IN_BACKOFF while it or `username` waits out its failures.
  absl::Status AdmitSignIn(absl::string_view address,
                           absl::string_view username);
  // AdmitSignIn's back-off again, on every server's failures: with
  // ShareWith, it waits for the shared count (call it off gRPC's threads);
  // without, it is OK at once.
  absl::Status RecheckSignIn(absl::string_view address,
                             absl::string_view username);
  // A wrong password; `username` empty when no such user exists.
  void SignInFailed(absl::string_view address, absl::string_view username);
  void SignInSucceeded(absl::string_view address, absl::string_view username);

  // A stream held open by `user` (empty for an anonymous one) from
  // `address` (empty when unknown: a gateway older than FollowAttach's
  // address names none); it counts until destroyed or Release()d.
  class StreamSlot {
   public:
    StreamSlot() = default;
    StreamSlot(StreamSlot&& other) noexcept { *this = std::move(other); }
    StreamSlot& operator=(StreamSlot&& other) noexcept;
    ~StreamSlot() { Release(); }
    void Release();

   private:
    friend class Quotas;
    Quotas* quotas_ = nullptr;
    std::string user_;
    std::string address_;
  };
  // TOO_MANY_STREAMS when `user` or `address` holds its most already. An
  // empty `user` or `address` counts against no limit of its own, rather
  // than all such streams sharing one slot budget under the empty key.
  // With ShareStreams, asks the shared count and waits for it: call it off
  // gRPC's threads.
  absl::StatusOr<StreamSlot> OpenStream(absl::string_view user,
                                        absl::string_view address);
  // Counts streams in `slots`, and checks sign-in failures against
  // `failures` (RecheckSignIn), from now on; set before serving, must
  // outlive this. While they cannot be reached, each server counts alone.
  void ShareWith(SharedSlots* slots, SharedFailures* failures) {
    shared_streams_ = slots;
    shared_failures_ = failures;
  }
  bool shares_streams() const { return shared_streams_ != nullptr; }
  size_t StreamsOf(absl::string_view user) {
    return user_streams_.Held(user);
  }

  // Every table, named, for sharing across a cluster.
  SharedTables Tables();

 private:
  // SIGN_IN_BACKOFF while `address` or `username` waits.
  absl::Status BackoffOf(absl::string_view address,
                         absl::string_view username);

  const QuotaOptions options_;
  RateLimiter user_sends_;
  RateLimiter room_sends_;
  RateLimiter address_sign_ins_;
  FailureBackoff user_failures_;
  FailureBackoff address_failures_;
  SlotLimiter user_streams_;
  SlotLimiter address_streams_;
  SharedSlots* shared_streams_ = nullptr;
  SharedFailures* shared_failures_ = nullptr;
};

}  // namespace parley::api

#endif  // PARLEY_SERVER_API_QUOTAS_H_
