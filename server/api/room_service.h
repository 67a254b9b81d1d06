// parley.v1.RoomService on the gRPC callback API (see
// proto/parley/v1/rooms.proto for the contract; auth/access.h for who may
// do what).
//
// Reads run on the store-read pool, and calls that hash or check a room
// password on the hashing pool (see RunOn), never on a gRPC thread; every
// write goes through the store's group-committed writer and the call
// finishes from the write's completion (on the writer thread), after the
// hub was told (member events published, subscriptions closed, a deleted
// room's log dropped). Rooms in responses
// never carry their password hash, only `password_protected`.
//
// Decisions beyond the proto comments:
//  - Every method but CreateRoomToken / RenewRoomToken needs a user token
//    (PERMISSION_DENIED, reason USER_TOKEN_REQUIRED, for a room token).
//  - Room names are 1..100 characters without control characters and not
//    shaped like a UUID (a room is named by UUID or name), reason
//    INVALID_ROOM_NAME; descriptions at most 1000 characters (line breaks
//    allowed), INVALID_DESCRIPTION; passwords 1..256 bytes,
//    PASSWORD_REQUIRED / PASSWORD_TOO_LONG / PASSWORD_NOT_ALLOWED.
//  - The lobby cannot be updated or deleted: FAILED_PRECONDITION, reason
//    LOBBY_IS_PERMANENT.
//  - A room that stops being public closes the open streams of everyone who
//    is not a member (chat::CloseReason::kRemoved: PERMISSION_DENIED,
//    NOT_A_MEMBER); members' streams stay open.
//  - ListRooms leaves out the lobby, which everyone reaches by name.
//  - AddMember is idempotent: an existing membership is returned unchanged.
//    A wrong password for a hidden room is NOT_FOUND, like the room itself.
//    Member events carry the member as sender, sender_id and target_id.
//  - CreateRoomToken: a hidden room with a wrong or missing secret is
//    NOT_FOUND; a private one PERMISSION_DENIED (WRONG_SECRET, field secret).
//  - RenewRoomToken: an empty `room` means the token's room; another room
//    is PERMISSION_DENIED, reason ROOM_TOKEN_MISMATCH.
// `deps` must outlive the service and every call it started.
#ifndef PARLEY_SERVER_API_ROOM_SERVICE_H_
#define PARLEY_SERVER_API_ROOM_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "parley/v1/rooms.grpc.pb.h"
#include "server/api/common.h"

namespace parley::api {

class RoomService final : public parley::v1::RoomService::CallbackService {
 public:
  explicit RoomService(const Deps& deps);

  grpc::ServerUnaryReactor* CreateRoom(
      grpc::CallbackServerContext* context,
      const parley::v1::CreateRoomRequest* request,
      parley::v1::Room* response) override;
  grpc::ServerUnaryReactor* ListRooms(
      grpc::CallbackServerContext* context,
      const parley::v1::ListRoomsRequest* request,
      parley::v1::ListRoomsResponse* response) override;
  grpc::ServerUnaryReactor* GetRoom(grpc::CallbackServerContext* context,
                                    const parley::v1::GetRoomRequest* request,
                                    parley::v1::Room* response) override;
  grpc::ServerUnaryReactor* UpdateRoom(
      grpc::CallbackServerContext* context,
      const parley::v1::UpdateRoomRequest* request,
      parley::v1::Room* response) override;
  grpc::ServerUnaryReactor* DeleteRoom(
      grpc::CallbackServerContext* context,
      const parley::v1::DeleteRoomRequest* request,
      parley::v1::DeleteRoomResponse* response) override;
  grpc::ServerUnaryReactor* AddMember(
      grpc::CallbackServerContext* context,
      const parley::v1::AddMemberRequest* request,
      parley::v1::Member* response) override;
  grpc::ServerUnaryReactor* RemoveMember(
      grpc::CallbackServerContext* context,
      const parley::v1::RemoveMemberRequest* request,
      parley::v1::RemoveMemberResponse* response) override;
  grpc::ServerUnaryReactor* ListMembers(
      grpc::CallbackServerContext* context,
      const parley::v1::ListMembersRequest* request,
      parley::v1::ListMembersResponse* response) override;
  grpc::ServerUnaryReactor* CheckAccess(
      grpc::CallbackServerContext* context,
      const parley::v1::CheckAccessRequest* request,
      parley::v1::CheckAccessResponse* response) override;
  grpc::ServerUnaryReactor* CreateRoomToken(
      grpc::CallbackServerContext* context,
      const parley::v1::CreateRoomTokenRequest* request,
      parley::v1::RoomToken* response) override;
  grpc::ServerUnaryReactor* RenewRoomToken(
      grpc::CallbackServerContext* context,
      const parley::v1::RenewRoomTokenRequest* request,
      parley::v1::RoomToken* response) override;

 private:
  // `room` as a response: ToProto plus last_sequence and member_count.
  absl::Status FillRoom(const store::Room& room, parley::v1::Room* out);

  const Deps deps_;
};

}  // namespace parley::api

#endif  // PARLEY_SERVER_API_ROOM_SERVICE_H_
