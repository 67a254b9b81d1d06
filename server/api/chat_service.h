// parley.v1.ChatService on the gRPC callback API: the seed-000 lobby (join,
// send, leave, long poll and stream by client id), seed 004's lobby calls,
// and signed-in streams of any room or of one's direct messages, resumable
// by sequence number. No thread is held by a waiting long poll or an open
// stream: each waits as a ChannelReader attached to its channel, and a long
// poll's timeout runs on the scheduler's thread. Sends are acknowledged from
// the hub's dispatcher thread after their commit and delivery. What reads
// the store (signed-in polls and streams, their history, seed 004's lists,
// a send's idempotency key) runs on the store-read pool (Deps::reads).
#ifndef PARLEY_SERVER_API_CHAT_SERVICE_H_
#define PARLEY_SERVER_API_CHAT_SERVICE_H_

#include <string>

#include "parley/v1/chat.grpc.pb.h"
#include "server/api/common.h"

namespace parley::api {

// A SubscribeResponse holding just `event`, encoded: what a stream writes for
// it. The hub encodes each event once with this (HubOptions::encoder), and
// every stream's write concatenates those bytes instead of re-encoding.
std::string EncodeStreamEvent(const model::Event& event);

// The status a read ends with once its channel is closed with `reason`
// (OK for a leave; UNAVAILABLE at shutdown; PERMISSION_DENIED, NOT_FOUND
// or UNAUTHENTICATED when its access ended).
absl::Status ClosedStatus(chat::CloseReason reason);

// Subscribe is a raw method: its writes are those pre-encoded bytes.
class ChatService final
    : public parley::v1::ChatService::WithRawCallbackMethod_Subscribe<
          parley::v1::ChatService::CallbackService> {
 public:
  // Subscribe's full name; it keeps its own CallRecord (see interceptor.h).
  static constexpr char kSubscribeMethod[] = "/parley.v1.ChatService/Subscribe";

  explicit ChatService(const Deps& deps);

  grpc::ServerUnaryReactor* Join(grpc::CallbackServerContext* context,
                                 const parley::v1::JoinRequest* request,
                                 parley::v1::JoinResponse* response) override;
  grpc::ServerUnaryReactor* Send(grpc::CallbackServerContext* context,
                                 const parley::v1::SendRequest* request,
                                 parley::v1::SendResponse* response) override;
  grpc::ServerUnaryReactor* Leave(grpc::CallbackServerContext* context,
                                  const parley::v1::LeaveRequest* request,
                                  parley::v1::LeaveResponse* response) override;
  grpc::ServerUnaryReactor* Receive(
      grpc::CallbackServerContext* context,
      const parley::v1::ReceiveRequest* request,
      parley::v1::ReceiveResponse* response) override;
  grpc::ServerUnaryReactor* Poll(grpc::CallbackServerContext* context,
                                 const parley::v1::PollRequest* request,
                                 parley::v1::PollResponse* response) override;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* Subscribe(
      grpc::CallbackServerContext* context,
      const grpc::ByteBuffer* request) override;
  grpc::ServerUnaryReactor* ListRecentMessages(
      grpc::CallbackServerContext* context,
      const parley::v1::ListRecentMessagesRequest* request,
      parley::v1::ListRecentMessagesResponse* response) override;
  grpc::ServerUnaryReactor* PostRecentMessage(
      grpc::CallbackServerContext* context,
      const parley::v1::PostRecentMessageRequest* request,
      parley::v1::PostRecentMessageResponse* response) override;
  grpc::ServerUnaryReactor* ListPosters(
      grpc::CallbackServerContext* context,
      const parley::v1::ListPostersRequest* request,
      parley::v1::ListPostersResponse* response) override;

 private:
  const Deps deps_;
};

}  // namespace parley::api

#endif  // PARLEY_SERVER_API_CHAT_SERVICE_H_
