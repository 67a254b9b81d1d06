// parley.v1.ChatService on the gRPC callback API: converts requests to hub
// calls and hub events to protos. No thread is held by a waiting long poll or
// an open stream: each waits as a ChannelReader attached to the client's
// channel, and a long poll's timeout runs on the scheduler's thread.
// `hub` and `scheduler` must outlive the service and every call it started.
#ifndef PARLEY_SERVER_API_CHAT_SERVICE_H_
#define PARLEY_SERVER_API_CHAT_SERVICE_H_

#include <cstddef>

#include "absl/time/time.h"
#include "parley/v1/chat.grpc.pb.h"
#include "server/chat/hub.h"
#include "server/common/scheduler.h"

namespace parley::api {

// The limits of reads; each is a server flag (see main.cc).
struct ReadOptions {
  absl::Duration receive_default_timeout = absl::Seconds(30);
  absl::Duration receive_max_timeout = absl::Seconds(60);
  size_t receive_max_events = 256;
  size_t stream_max_batch = 256;
};

// Fills `out` from `event`.
void ToProto(const chat::Event& event, parley::v1::Event* out);

class ChatService final : public parley::v1::ChatService::CallbackService {
 public:
  ChatService(chat::Hub* hub, Scheduler* scheduler, ReadOptions options);

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
  grpc::ServerWriteReactor<parley::v1::SubscribeResponse>* Subscribe(
      grpc::CallbackServerContext* context,
      const parley::v1::SubscribeRequest* request) override;

 private:
  chat::Hub* const hub_;
  Scheduler* const scheduler_;
  const ReadOptions options_;
};

}  // namespace parley::api

#endif  // PARLEY_SERVER_API_CHAT_SERVICE_H_
