// How gRPC turns bytes into parley.v1 requests. Force-included into every
// translation unit that uses the generated code (see proto/CMakeLists.txt),
// so all of them see the same SerializationTraits.
//
// Why: a proto3 string field holding malformed UTF-8 makes the protobuf parse
// fail, and gRPC 1.51's callback server answers any failed parse with
// UNIMPLEMENTED and no message. Instead, such a request is delivered with a
// marker naming the offending field (MalformedField), and the service answers
// INVALID_ARGUMENT / INVALID_UTF8 for that field like any other bad input.
// Bytes that are not a message of the request's type at all are delivered
// the same way, the marker being kNotAMessage, and answered
// INVALID_ARGUMENT / MALFORMED_REQUEST.
#ifndef PARLEY_PROTO_REQUEST_TRAITS_H_
#define PARLEY_PROTO_REQUEST_TRAITS_H_

#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/proto_buffer_reader.h>
#include <grpcpp/support/proto_buffer_writer.h>

#include <string>

#include "parley/v1/accounts.pb.h"
#include "parley/v1/chat.pb.h"
#include "parley/v1/messages.pb.h"
#include "parley/v1/presence.pb.h"
#include "parley/v1/rooms.pb.h"
#include "parley/v1/stats.pb.h"

namespace parley::proto {

// The field number of the marker kept in a request's unknown fields: the
// largest one protobuf allows, never used by the API.
inline constexpr int kMalformedFieldMarker = 536870911;
// The marker's value when the bytes are no message of the request's type.
inline constexpr char kNotAMessage[] = "*";

// Parses `buffer` into `msg`. When the parse fails, clears `msg`, records
// as the marker the name of the string field that is not UTF-8, or
// kNotAMessage, and returns OK.
grpc::Status DeserializeRequest(grpc::ByteBuffer* buffer,
                                google::protobuf::Message* msg);

// The name of the request field that held malformed UTF-8, kNotAMessage,
// or "".
std::string MalformedField(const google::protobuf::Message& msg);

template <class T>
class RequestTraits {
 public:
  static grpc::Status Serialize(const grpc::protobuf::MessageLite& msg,
                                grpc::ByteBuffer* bb, bool* own_buffer) {
    return grpc::GenericSerialize<grpc::ProtoBufferWriter, T>(msg, bb,
                                                              own_buffer);
  }
  static grpc::Status Deserialize(grpc::ByteBuffer* buffer,
                                  grpc::protobuf::MessageLite* msg) {
    return DeserializeRequest(buffer, static_cast<T*>(msg));
  }
};

}  // namespace parley::proto

#define PARLEY_REQUEST_TRAITS(T)                                   \
  template <>                                                      \
  class grpc::SerializationTraits<T, void>                         \
      : public parley::proto::RequestTraits<T> {};

PARLEY_REQUEST_TRAITS(parley::v1::JoinRequest)
PARLEY_REQUEST_TRAITS(parley::v1::SendRequest)
PARLEY_REQUEST_TRAITS(parley::v1::LeaveRequest)
PARLEY_REQUEST_TRAITS(parley::v1::ReceiveRequest)
PARLEY_REQUEST_TRAITS(parley::v1::SubscribeRequest)
PARLEY_REQUEST_TRAITS(parley::v1::ListRecentMessagesRequest)
PARLEY_REQUEST_TRAITS(parley::v1::PostRecentMessageRequest)
PARLEY_REQUEST_TRAITS(parley::v1::ListPostersRequest)
PARLEY_REQUEST_TRAITS(parley::v1::SignInRequest)
PARLEY_REQUEST_TRAITS(parley::v1::SignOutRequest)
PARLEY_REQUEST_TRAITS(parley::v1::RenewTokenRequest)
PARLEY_REQUEST_TRAITS(parley::v1::CreateUserRequest)
PARLEY_REQUEST_TRAITS(parley::v1::ListUsersRequest)
PARLEY_REQUEST_TRAITS(parley::v1::GetUserRequest)
PARLEY_REQUEST_TRAITS(parley::v1::UpdateUserRequest)
PARLEY_REQUEST_TRAITS(parley::v1::DeleteUserRequest)
PARLEY_REQUEST_TRAITS(parley::v1::CreateRoomRequest)
PARLEY_REQUEST_TRAITS(parley::v1::ListRoomsRequest)
PARLEY_REQUEST_TRAITS(parley::v1::GetRoomRequest)
PARLEY_REQUEST_TRAITS(parley::v1::UpdateRoomRequest)
PARLEY_REQUEST_TRAITS(parley::v1::DeleteRoomRequest)
PARLEY_REQUEST_TRAITS(parley::v1::AddMemberRequest)
PARLEY_REQUEST_TRAITS(parley::v1::RemoveMemberRequest)
PARLEY_REQUEST_TRAITS(parley::v1::ListMembersRequest)
PARLEY_REQUEST_TRAITS(parley::v1::CheckAccessRequest)
PARLEY_REQUEST_TRAITS(parley::v1::CreateRoomTokenRequest)
PARLEY_REQUEST_TRAITS(parley::v1::RenewRoomTokenRequest)
PARLEY_REQUEST_TRAITS(parley::v1::PostMessageRequest)
PARLEY_REQUEST_TRAITS(parley::v1::ListMessagesRequest)
PARLEY_REQUEST_TRAITS(parley::v1::GetMessageRequest)
PARLEY_REQUEST_TRAITS(parley::v1::EditMessageRequest)
PARLEY_REQUEST_TRAITS(parley::v1::DeleteMessageRequest)
PARLEY_REQUEST_TRAITS(parley::v1::PurgeMessagesRequest)
PARLEY_REQUEST_TRAITS(parley::v1::SendDirectMessageRequest)
PARLEY_REQUEST_TRAITS(parley::v1::ListDirectMessagesRequest)
PARLEY_REQUEST_TRAITS(parley::v1::GetStatsRequest)
PARLEY_REQUEST_TRAITS(parley::v1::PollRequest)
PARLEY_REQUEST_TRAITS(parley::v1::ListPresenceRequest)
PARLEY_REQUEST_TRAITS(parley::v1::SendTypingRequest)
PARLEY_REQUEST_TRAITS(parley::v1::SetReadMarkerRequest)

#endif  // PARLEY_PROTO_REQUEST_TRAITS_H_
