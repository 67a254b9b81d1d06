// What every parley.v1 service shares: its dependencies, the caller's
// identity, resolving a user or room named by UUID or name, finishing calls,
// and domain -> proto conversions.
#ifndef PARLEY_SERVER_API_COMMON_H_
#define PARLEY_SERVER_API_COMMON_H_

#include <grpcpp/grpcpp.h>

#include <cstddef>
#include <optional>
#include <string>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "google/protobuf/timestamp.pb.h"
#include "parley/v1/resources.pb.h"
#include "parley/v1/rooms.pb.h"
#include "server/auth/access.h"
#include "server/auth/authenticator.h"
#include "server/auth/password.h"
#include "server/chat/hub.h"
#include "server/common/client_address.h"
#include "server/common/scheduler.h"
#include "server/common/uuid.h"
#include "server/common/worker_pool.h"
#include "server/store/memory_only.h"
#include "server/store/store.h"

namespace parley::api {

// The limits of reads; each is a server flag (see main.cc).
struct ReadOptions {
  absl::Duration receive_default_timeout = absl::Seconds(30);
  absl::Duration receive_max_timeout = absl::Seconds(60);
  size_t receive_max_events = 256;
  size_t stream_max_batch = 256;
  size_t history_max_page = 1000;  // largest `n` / page_size accepted
};

// Everything the services use; owned by the server (see server.h), which
// outlives every call.
class IdempotentSends;
class CallStats;
class Quotas;

struct Deps {
  chat::Hub* hub = nullptr;
  IdempotentSends* sends = nullptr;
  store::Store* store = nullptr;
  auth::Authenticator* auth = nullptr;
  const auth::PasswordHasher* passwords = nullptr;
  Scheduler* scheduler = nullptr;
  // Where work that may block runs instead of gRPC's threads (see RunOn):
  // argon2id hashing and verifying, and store reads.
  WorkerPool* hashing = nullptr;
  WorkerPool* reads = nullptr;
  // Whether `store` answers the directory's common reads from memory
  // (store::CachedStore), so that CheckThenAct tries its checks on gRPC's
  // thread first.
  bool store_cached = false;
  // Calls of methods that record themselves (ChatService.Subscribe); may be
  // null (no record).
  CallStats* calls = nullptr;
  // Per-client limits (never null in a server; null in tests: no limits).
  Quotas* quotas = nullptr;
  // The proxies whose x-forwarded-for names the client (ClientAddress).
  const AddressSet* trusted_proxies = nullptr;
  ReadOptions read;
};

// The key of the caller's address for per-address limits (AddressKey of
// ClientIp, see server/common/client_address.h).
std::string ClientAddress(const Deps& deps, grpc::CallbackServerContext* ctx);

// Counts a send by `sender` to `log` against their limits (Quotas::
// ChargeSend); OK when the server has no limits.
absl::Status ChargeSend(const Deps& deps, absl::string_view sender,
                        absl::string_view log);

// Metadata the gateway turns into an HTTP status and an absolute Location
// header (see gateway/internal/gateway).
inline constexpr char kHttpCodeKey[] = "x-http-code";
inline constexpr char kLocationKey[] = "x-location";

// Finishes a unary call now with `status` (reason and field as ErrorInfo).
grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context,
                                    const absl::Status& status);

// Finishes `reactor` of `context` with `status`. Callable from any thread,
// e.g. a store write's or the hub's completion.
void FinishWith(grpc::ServerUnaryReactor* reactor,
                grpc::CallbackServerContext* context,
                const absl::Status& status);

// The part of a unary call that may block (store reads, password hashing).
// It gets the call's reactor and must finish it exactly once: with
// FinishWith, or from a completion it starts (a store write's, the hub's).
// Never FinishNow: the reactor is already taken.
using CallWork = absl::AnyInvocable<void(grpc::ServerUnaryReactor* reactor)>;

// Runs `work` on `pool`, a worker thread of the server's, and returns the
// call's reactor at once, so gRPC's thread never waits for it (see
// docs/security.md, "Blocking work"). When the pool is full the call
// finishes at once with RESOURCE_EXHAUSTED (reason SERVER_BUSY) and `work`
// never runs; a call cancelled (or past its deadline) while it waited
// finishes CANCELLED without running it. A null `pool` runs `work` here, for
// work that does not block.
grpc::ServerUnaryReactor* RunOn(WorkerPool* pool,
                                grpc::CallbackServerContext* context,
                                CallWork work);

// A call in two parts: `check` only reads (the caller's token, the room, the
// membership) and may run twice; `act` starts work that does not block (a
// publish, which the store's writer commits) and finishes the call from its
// completion. With `deps.store_cached`, `check` first runs here, on gRPC's
// thread, answering only from the store's cache (store::MemoryOnlyScope);
// then `act` runs here too. Only when `check` needed the database do both
// run on `deps.reads` (RunOn), `check` again from the start. A send to a
// room whose state is cached so skips two thread hand-offs. A `check` that
// fails finishes the call with its status.
template <class Checked>
grpc::ServerUnaryReactor* CheckThenAct(
    const Deps& deps, grpc::CallbackServerContext* context,
    absl::AnyInvocable<absl::StatusOr<Checked>()> check,
    absl::AnyInvocable<void(grpc::ServerUnaryReactor*, Checked)> act) {
  if (deps.store_cached) {
    std::optional<absl::StatusOr<Checked>> checked;
    {
      store::MemoryOnlyScope scope;
      checked = check();
      if (scope.missed()) checked.reset();
    }
    if (checked.has_value()) {
      grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
      if (!checked->ok()) {
        FinishWith(reactor, context, checked->status());
      } else {
        act(reactor, *std::move(*checked));
      }
      return reactor;
    }
  }
  return RunOn(deps.reads, context,
               [context, check = std::move(check),
                act = std::move(act)](grpc::ServerUnaryReactor* reactor) mutable {
                 absl::StatusOr<Checked> checked = check();
                 if (!checked.ok()) {
                   return FinishWith(reactor, context, checked.status());
                 }
                 act(reactor, *std::move(checked));
               });
}

// Marks a successful creation: HTTP 201 and, unless `path` is empty,
// Location `path` (e.g. "/v1/rooms/<id>") through the gateway. Call before
// finishing.
void SetCreated(grpc::CallbackServerContext* context, absl::string_view path);

// INVALID_ARGUMENT naming the field when a string of the request (nested
// messages included) is not text every store keeps: reason INVALID_UTF8 when
// it arrived as malformed UTF-8 (see proto/request_traits.h), NUL_CHARACTER
// when it holds U+0000 (PostgreSQL's text cannot; one rule for both stores).
absl::Status CheckStrings(const google::protobuf::Message& request);

// The caller, from the `authorization` metadata: any valid token.
absl::StatusOr<auth::Principal> Authenticate(const Deps& deps,
                                             grpc::CallbackServerContext* ctx);
// The caller, who must hold a user token (PERMISSION_DENIED, reason
// USER_TOKEN_REQUIRED, for a room token).
absl::StatusOr<auth::Principal> AuthenticateUser(
    const Deps& deps, grpc::CallbackServerContext* ctx);

// The first two steps of most calls: `request`'s strings are text
// (CheckStrings) and the caller holds a user token (AuthenticateUser).
absl::StatusOr<auth::Principal> SignedInUser(
    const Deps& deps, grpc::CallbackServerContext* ctx,
    const google::protobuf::Message& request);

// Whether `s` has the 8-4-4-4-12 hex shape of a UUID.
bool LooksLikeUuid(absl::string_view s);

// The user named by UUID, username, or "me"/"" (the caller). NOT_FOUND
// (reason USER_NOT_FOUND, field `field`) when there is none.
absl::StatusOr<store::User> ResolveUser(const Deps& deps,
                                        absl::string_view user,
                                        const auth::Principal& caller,
                                        absl::string_view field = "user");

// The room named by UUID or name, with the caller's rights in it. NOT_FOUND
// (reason ROOM_NOT_FOUND, field `room`) when missing or hidden from the
// caller; INVALID_ARGUMENT when `room` is empty.
struct RoomView {
  store::Room room;
  std::optional<store::Member> member;  // the caller's membership
  auth::RoomRights rights;
};
absl::StatusOr<RoomView> ResolveRoom(const Deps& deps, absl::string_view room,
                                     const auth::Principal& caller);

// A call's caller and room, resolved and checked for read access.
struct RoomCall {
  auth::Principal who;
  RoomView view;
};
// Checks `request` (UTF-8), the caller (a user token, or also a room token
// for that room unless `user_token_only`) and its read access to `room`.
absl::StatusOr<RoomCall> ReadableRoom(const Deps& deps,
                                      grpc::CallbackServerContext* context,
                                      const google::protobuf::Message& request,
                                      absl::string_view room,
                                      bool user_token_only);
// The same for a request whose `room()` names the room.
template <class Request>
absl::StatusOr<RoomCall> ReadableRoom(const Deps& deps,
                                      grpc::CallbackServerContext* context,
                                      const Request& request,
                                      bool user_token_only) {
  return ReadableRoom(deps, context, request, request.room(), user_token_only);
}

// A page of a list ordered by name (users, rooms): how many, and the name
// to start after (from the request's page token of list `kind`).
struct NamePage {
  size_t size = 0;
  std::string after;
};
absl::StatusOr<NamePage> ParseNamePage(uint32_t page_size,
                                       absl::string_view page_token,
                                       absl::string_view kind);

// Page sizes: 0 means `fallback`; above `max` is INVALID_ARGUMENT naming
// `field`.
absl::StatusOr<size_t> PageSize(uint32_t requested, size_t fallback,
                                size_t max, absl::string_view field);

// The hub clock's time in whole microseconds, the store's precision, so that
// the response to a write equals what later reads return.
absl::Time StoredNow(const Deps& deps);

// The number of characters (code points) of valid UTF-8 `s`.
size_t CountChars(absl::string_view s);

// Whether `s` (valid UTF-8) holds a C0 or C1 control character or DEL;
// `allow_line_breaks` lets '\n', '\r' and '\t' through.
bool HasControlChars(absl::string_view s, bool allow_line_breaks = false);

// An opaque page token carrying `key` (the last item of a page) for the list
// named `kind` ("users", "rooms"), and its inverse: INVALID_ARGUMENT (reason
// INVALID_PAGE_TOKEN, field page_token) when `token` is not one of `kind`.
// An empty token decodes to "" (the first page).
std::string EncodePageToken(absl::string_view kind, absl::string_view key);
absl::StatusOr<std::string> DecodePageToken(absl::string_view kind,
                                            absl::string_view token);

void ToTimestamp(absl::Time t, google::protobuf::Timestamp* out);
void ToProto(const model::Event& event, parley::v1::Event* out);
void ToProto(const store::User& user, parley::v1::User* out);
// Leaves last_sequence and member_count to the caller.
void ToProto(const store::Room& room, parley::v1::Room* out);
void ToProto(const store::Member& member, parley::v1::Member* out);
parley::v1::Visibility ToProto(store::Visibility v);

}  // namespace parley::api

#endif  // PARLEY_SERVER_API_COMMON_H_
