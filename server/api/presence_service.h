// parley.v1.PresenceService: who has a stream open on a room, live typing
// notices, and each user's read marker per room (see
// proto/parley/v1/presence.proto for the contract).
//
// ListPresence and SendTyping touch only the hub (no store write, no event
// stored); SetReadMarker commits through the store and replies from a thread
// of its own (see `replies_`). Decisions beyond the proto comments:
//  - Read access is MessageService's (ReadableRoom): a user token with read
//    access, or a room token for that room. SetReadMarker needs a user
//    token (PERMISSION_DENIED, reason USER_TOKEN_REQUIRED); so does typing
//    to a user.
//  - SendTyping with neither or both of room and user: INVALID_ARGUMENT,
//    reason ONE_TARGET. Typing notices go to every stream of the room (or
//    of the recipient's inbox), the sender's own included; typing to
//    yourself is allowed.
// `deps` must outlive the service and every call it started.
#ifndef PARLEY_SERVER_API_PRESENCE_SERVICE_H_
#define PARLEY_SERVER_API_PRESENCE_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "absl/time/time.h"
#include "parley/v1/presence.grpc.pb.h"
#include "server/api/common.h"
#include "server/common/scheduler.h"

namespace parley::api {

class PresenceService final
    : public parley::v1::PresenceService::CallbackService {
 public:
  // A typing notice holds for `typing_ttl` (--typing_ttl).
  PresenceService(const Deps& deps, absl::Duration typing_ttl);

  grpc::ServerUnaryReactor* ListPresence(
      grpc::CallbackServerContext* context,
      const parley::v1::ListPresenceRequest* request,
      parley::v1::ListPresenceResponse* response) override;
  grpc::ServerUnaryReactor* SendTyping(
      grpc::CallbackServerContext* context,
      const parley::v1::SendTypingRequest* request,
      parley::v1::SendTypingResponse* response) override;
  grpc::ServerUnaryReactor* SetReadMarker(
      grpc::CallbackServerContext* context,
      const parley::v1::SetReadMarkerRequest* request,
      parley::v1::ReadMarker* response) override;

 private:
  const Deps deps_;
  const absl::Duration typing_ttl_;
  // SetReadMarker's reply needs the unread count after the new marker, a
  // store read that may wait on disk: not allowed on the store's writer
  // thread (where the write completes), nor on the server's scheduler,
  // whose timers it would delay. So the write's completion queues the read
  // and the reply here, a scheduler of this service's own used as a
  // first-in first-out worker: a slow read delays only other read-marker
  // replies. gRPC's shutdown waits for every call to finish, so nothing is
  // left queued when the service is destroyed.
  Scheduler replies_;
};

}  // namespace parley::api

#endif  // PARLEY_SERVER_API_PRESENCE_SERVICE_H_
