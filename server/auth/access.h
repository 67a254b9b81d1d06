// Who may do what in a room: the one place the rules live.
//
//  public room:   every signed-in user sees, reads and posts.
//  private room:  every signed-in user sees it; members read and post.
//  hidden room:   only members see it (to others it does not exist: 404).
//  room token:    its holder sees, reads and posts in that one room.
//  owner / admin: also manage (update, delete, purge, add/remove anyone,
//                 delete any message).
#ifndef PARLEY_SERVER_AUTH_ACCESS_H_
#define PARLEY_SERVER_AUTH_ACCESS_H_

#include <optional>

#include "absl/status/status.h"
#include "server/auth/authenticator.h"
#include "server/store/types.h"

namespace parley::auth {

struct RoomRights {
  bool visible = false;  // may know the room exists
  bool read = false;     // may read history, subscribe and post
  bool manage = false;   // owner or admin
};

RoomRights Evaluate(const store::Room& room,
                    const std::optional<store::Member>& member,
                    const Principal& who);

// OK when `rights` allow reading; NOT_FOUND (reason ROOM_NOT_FOUND, field
// room) when the room is not visible; PERMISSION_DENIED (reason NOT_A_MEMBER)
// otherwise.
absl::Status RequireRead(const RoomRights& rights);
// OK when `rights` allow managing; NOT_FOUND or PERMISSION_DENIED (reason
// NOT_ROOM_OWNER) otherwise.
absl::Status RequireManage(const RoomRights& rights);

}  // namespace parley::auth

#endif  // PARLEY_SERVER_AUTH_ACCESS_H_
