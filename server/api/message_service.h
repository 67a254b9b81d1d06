// parley.v1.MessageService: messages in rooms (post without joining, paged
// history, edit with history, delete as tombstone, purge) and direct
// messages. Every write is acknowledged from the hub's dispatcher thread
// after its commit and delivery.
#ifndef PARLEY_SERVER_API_MESSAGE_SERVICE_H_
#define PARLEY_SERVER_API_MESSAGE_SERVICE_H_

#include "parley/v1/messages.grpc.pb.h"
#include "server/api/common.h"

namespace parley::api {

class MessageService final
    : public parley::v1::MessageService::CallbackService {
 public:
  explicit MessageService(const Deps& deps);

  grpc::ServerUnaryReactor* PostMessage(
      grpc::CallbackServerContext* context,
      const parley::v1::PostMessageRequest* request,
      parley::v1::Event* response) override;
  grpc::ServerUnaryReactor* ListMessages(
      grpc::CallbackServerContext* context,
      const parley::v1::ListMessagesRequest* request,
      parley::v1::ListMessagesResponse* response) override;
  grpc::ServerUnaryReactor* GetMessage(
      grpc::CallbackServerContext* context,
      const parley::v1::GetMessageRequest* request,
      parley::v1::Event* response) override;
  grpc::ServerUnaryReactor* EditMessage(
      grpc::CallbackServerContext* context,
      const parley::v1::EditMessageRequest* request,
      parley::v1::Event* response) override;
  grpc::ServerUnaryReactor* DeleteMessage(
      grpc::CallbackServerContext* context,
      const parley::v1::DeleteMessageRequest* request,
      parley::v1::Event* response) override;
  grpc::ServerUnaryReactor* PurgeMessages(
      grpc::CallbackServerContext* context,
      const parley::v1::PurgeMessagesRequest* request,
      parley::v1::PurgeMessagesResponse* response) override;
  grpc::ServerUnaryReactor* SendDirectMessage(
      grpc::CallbackServerContext* context,
      const parley::v1::SendDirectMessageRequest* request,
      parley::v1::Event* response) override;
  grpc::ServerUnaryReactor* ListDirectMessages(
      grpc::CallbackServerContext* context,
      const parley::v1::ListDirectMessagesRequest* request,
      parley::v1::ListMessagesResponse* response) override;

 private:
  const Deps deps_;
};

}  // namespace parley::api

#endif  // PARLEY_SERVER_API_MESSAGE_SERVICE_H_
