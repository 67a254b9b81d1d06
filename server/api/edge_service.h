// parley.internal.EdgeService: the server's side of fan-out at the edge
// (docs/fanout.md). A gateway holds one Follow stream per log for all of its
// local clients of it, and fans each event out itself; the server still
// decides who reads. Each client the gateway attaches is checked with its own
// token as ChatService.Subscribe checks it, then held as a registration on
// the log that receives no events (chat::Subscriber::receives_events false)
// but counts as present and is closed by the hub exactly as that client's
// own stream would be (removal, room private or deleted, sign-out, user
// deleted, on any replica); the close goes back to the gateway on the
// log's stream, with the status the client's stream would have ended with.
//
// Every call must carry metadata `x-parley-edge-secret` equal to the
// server's --edge_secret (PERMISSION_DENIED otherwise; UNIMPLEMENTED when
// the server has none). Nothing here blocks gRPC's threads: token checks and
// store reads run on the store-read pool (Deps::reads).
#ifndef PARLEY_SERVER_API_EDGE_SERVICE_H_
#define PARLEY_SERVER_API_EDGE_SERVICE_H_

#include <atomic>
#include <memory>
#include <string>

#include "parley/internal/edge.grpc.pb.h"
#include "server/api/common.h"

namespace parley::api {

// The metadata key of the edge secret.
inline constexpr char kEdgeSecretKey[] = "x-parley-edge-secret";

class EdgeService final
    : public parley::internal::EdgeService::CallbackService {
 public:
  static constexpr char kFollowMethod[] = "/parley.internal.EdgeService/Follow";

  // `secret` empty: every call is refused UNIMPLEMENTED.
  EdgeService(const Deps& deps, std::string secret);

  grpc::ServerUnaryReactor* Resolve(
      grpc::CallbackServerContext* context,
      const parley::internal::ResolveRequest* request,
      parley::internal::ResolveResponse* response) override;

  grpc::ServerBidiReactor<parley::internal::FollowRequest,
                          parley::internal::FollowResponse>*
  Follow(grpc::CallbackServerContext* context) override;

 private:
  // OK when `context` carries the secret.
  absl::Status CheckSecret(grpc::CallbackServerContext* context) const;

  const Deps deps_;
  const std::string secret_;
  // Set once a gateway attached a client without its address (logged
  // once per server); shared with the Follow calls.
  const std::shared_ptr<std::atomic<bool>> warned_no_address_;
};

}  // namespace parley::api

#endif  // PARLEY_SERVER_API_EDGE_SERVICE_H_
