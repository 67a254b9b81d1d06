#include "server/api/room_service.h"

#include "absl/container/flat_hash_set.h"

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/api/account_service.h"
#include "server/api/status.h"
#include "server/common/errors.h"
#include "server/model/ids.h"

namespace parley::api {
namespace {

constexpr size_t kMaxRoomNameChars = 100;
constexpr size_t kMaxDescriptionChars = 1000;
constexpr size_t kMaxRoomPasswordBytes = 256;
constexpr size_t kMaxTokenNameChars = 64;

bool IsLobby(const store::Room& room) { return room.id == model::kLobbyId; }

// The room a call changes (`verb`: "changed", "deleted"): visible to `who`,
// not the lobby (permanent), and managed by `who`.
absl::StatusOr<RoomView> ManagedRoom(const Deps& deps, absl::string_view room,
                                     const auth::Principal& who,
                                     absl::string_view verb) {
  absl::StatusOr<RoomView> view = ResolveRoom(deps, room, who);
  if (!view.ok()) return view.status();
  if (IsLobby(view->room)) {
    return WithReason(absl::FailedPreconditionError(
                          absl::StrCat("the lobby cannot be ", verb)),
                      "LOBBY_IS_PERMANENT", "room");
  }
  if (absl::Status s = auth::RequireManage(view->rights); !s.ok()) return s;
  return view;
}

absl::Status RoomNotFound(absl::string_view room) {
  return WithReason(
      absl::NotFoundError(absl::StrCat("room '", room, "' not found")),
      "ROOM_NOT_FOUND", "room");
}

// The room named by UUID or name, whoever may see it: for the calls that
// must tell a hidden room's password holders from everyone else themselves.
absl::StatusOr<store::Room> LookupRoom(const Deps& deps,
                                       absl::string_view room) {
  if (room.empty()) {
    return InvalidInput("ROOM_REQUIRED", "room", "room is required");
  }
  absl::StatusOr<store::Room> found =
      LooksLikeUuid(room) ? deps.store->GetRoom(absl::AsciiStrToLower(room))
                          : deps.store->GetRoomByName(room);
  if (absl::IsNotFound(found.status())) return RoomNotFound(room);
  return found;
}

// `field` names where the name came from ("name", or seed 002's "title").
absl::Status ValidateRoomName(absl::string_view name, absl::string_view field) {
  const size_t chars = CountChars(name);
  if (chars == 0 || chars > kMaxRoomNameChars) {
    return InvalidInput("INVALID_ROOM_NAME", field,
                        absl::StrCat(field, " must be 1 to ",
                                     kMaxRoomNameChars, " characters"));
  }
  if (HasControlChars(name)) {
    return InvalidInput("INVALID_ROOM_NAME", field,
                        absl::StrCat(field,
                                     " must not contain control characters"));
  }
  if (absl::StripAsciiWhitespace(name).empty()) {
    return InvalidInput("INVALID_ROOM_NAME", field,
                        absl::StrCat(field, " must not be only white space"));
  }
  if (LooksLikeUuid(name)) {
    return InvalidInput("INVALID_ROOM_NAME", field,
                        absl::StrCat(field, " must not look like a UUID"));
  }
  return absl::OkStatus();
}

absl::Status ValidateDescription(absl::string_view description) {
  if (CountChars(description) > kMaxDescriptionChars) {
    return InvalidInput("INVALID_DESCRIPTION", "description",
                        absl::StrCat("description must be at most ",
                                     kMaxDescriptionChars, " characters"));
  }
  if (HasControlChars(description, /*allow_line_breaks=*/true)) {
    return InvalidInput("INVALID_DESCRIPTION", "description",
                        "description must not contain control characters");
  }
  return absl::OkStatus();
}

// The store's visibility; `unspecified` is what VISIBILITY_UNSPECIFIED
// stands for, or nullopt when it is not allowed.
absl::StatusOr<store::Visibility> ParseVisibility(
    int value, std::optional<store::Visibility> unspecified) {
  switch (value) {
    case parley::v1::VISIBILITY_PUBLIC:
      return store::Visibility::kPublic;
    case parley::v1::VISIBILITY_PRIVATE:
      return store::Visibility::kPrivate;
    case parley::v1::VISIBILITY_HIDDEN:
      return store::Visibility::kHidden;
    case parley::v1::VISIBILITY_UNSPECIFIED:
      if (unspecified.has_value()) return *unspecified;
      break;
    default:
      break;
  }
  return InvalidInput("INVALID_VISIBILITY", "visibility",
                      "visibility must be public, private or hidden");
}

// A password given for a room with visibility `visibility` (empty: none).
absl::Status ValidateRoomPassword(store::Visibility visibility,
                                  absl::string_view password) {
  if (visibility == store::Visibility::kPublic) {
    if (!password.empty()) {
      return InvalidInput("PASSWORD_NOT_ALLOWED", "password",
                          "a public room has no password");
    }
    return absl::OkStatus();
  }
  if (password.empty()) {
    return InvalidInput("PASSWORD_REQUIRED", "password",
                        "a private or hidden room needs a password");
  }
  if (password.size() > kMaxRoomPasswordBytes) {
    return InvalidInput("PASSWORD_TOO_LONG", "password",
                        absl::StrCat("password must be at most ",
                                     kMaxRoomPasswordBytes, " bytes"));
  }
  return absl::OkStatus();
}

// Whether `password` opens `room`.
bool PasswordOpens(const Deps& deps, const store::Room& room,
                   absl::string_view password) {
  return !password.empty() && password.size() <= kMaxRoomPasswordBytes &&
         !room.password_hash.empty() &&
         deps.passwords->Verify(room.password_hash, password);
}

// A room token's display name: 1..64 characters, no control characters.
absl::Status ValidateTokenName(absl::string_view name) {
  const size_t chars = CountChars(name);
  if (chars == 0 || chars > kMaxTokenNameChars ||
      absl::StripAsciiWhitespace(name).empty()) {
    return InvalidInput("INVALID_NAME", "name",
                        absl::StrCat("name must be 1 to ", kMaxTokenNameChars,
                                     " characters"));
  }
  if (HasControlChars(name)) {
    return InvalidInput("INVALID_NAME", "name",
                        "name must not contain control characters");
  }
  return absl::OkStatus();
}

// A member_added / member_removed event about `user` in `room`.
std::shared_ptr<model::Event> MemberEvent(model::EventKind kind,
                                          const store::Room& room,
                                          const store::User& user) {
  std::shared_ptr<model::Event> event = chat::NewEvent(kind, room.id);
  event->room_id = room.id;
  event->room = room.name;
  event->sender = user.display_name;
  event->sender_id = user.id;
  event->target_id = user.id;
  return event;
}

// After a membership write: on success publishes `event` to the room's log,
// then finishes the call; the membership stands even if publishing fails
// (e.g. the room was deleted meanwhile).
void PublishThenFinish(chat::Hub* hub, std::shared_ptr<model::Event> event,
                       grpc::ServerUnaryReactor* reactor,
                       grpc::CallbackServerContext* context) {
  hub->Publish(std::move(event),
               [reactor, context](absl::StatusOr<model::EventPtr>) {
                 FinishWith(reactor, context, absl::OkStatus());
               });
}

// The caller's read marker in `room` and the messages unread after it;
// both stay 0 for room-token holders, who have no marker.
absl::Status FillReadState(const Deps& deps, const auth::Principal& who,
                           const store::Room& room, parley::v1::Room* out) {
  if (who.kind != auth::TokenKind::kUser) return absl::OkStatus();
  absl::StatusOr<store::ReadState> state =
      deps.store->GetReadState(who.user_id, room.id);
  if (!state.ok()) return state.status();
  out->set_read_sequence(state->sequence);
  out->set_unread_count(state->unread);
  return absl::OkStatus();
}

}  // namespace

RoomService::RoomService(const Deps& deps) : deps_(deps) {}

absl::Status RoomService::FillRoom(const store::Room& room,
                                   parley::v1::Room* out) {
  ToProto(room, out);
  absl::StatusOr<uint64_t> last = deps_.hub->LastDelivered(room.id);
  if (!last.ok()) return last.status();
  absl::StatusOr<size_t> members = deps_.store->CountMembers(room.id);
  if (!members.ok()) return members.status();
  out->set_last_sequence(*last);
  out->set_member_count(static_cast<uint32_t>(*members));
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* RoomService::CreateRoom(
    grpc::CallbackServerContext* context,
    const parley::v1::CreateRoomRequest* request, parley::v1::Room* response) {
  return RunOn(
      request->password().empty() ? deps_.reads : deps_.hashing, context,
      [this, context, request, response](grpc::ServerUnaryReactor* reactor) {
        absl::StatusOr<auth::Principal> principal =
            SignedInUser(deps_, context, *request);
        if (!principal.ok()) {
          return FinishWith(reactor, context, principal.status());
        }

        const bool from_title =
            request->name().empty() && !request->title().empty();
        const std::string& name =
            from_title ? request->title() : request->name();
        if (absl::Status s =
                ValidateRoomName(name, from_title ? "title" : "name");
            !s.ok()) {
          return FinishWith(reactor, context, s);
        }
        if (absl::Status s = ValidateDescription(request->description());
            !s.ok()) {
          return FinishWith(reactor, context, s);
        }
        absl::StatusOr<store::Visibility> visibility =
            ParseVisibility(request->visibility(), store::Visibility::kPublic);
        if (!visibility.ok()) {
          return FinishWith(reactor, context, visibility.status());
        }
        if (absl::Status s =
                ValidateRoomPassword(*visibility, request->password());
            !s.ok()) {
          return FinishWith(reactor, context, s);
        }

        store::Room room;
        if (!request->password().empty()) {
          absl::StatusOr<std::string> hash =
              deps_.passwords->Hash(request->password());
          if (!hash.ok()) return FinishWith(reactor, context, hash.status());
          room.password_hash = *std::move(hash);
        }
        room.id = NewUuid();
        room.name = name;
        room.description = request->description();
        room.visibility = *visibility;
        room.owner_id = principal->user_id;
        room.create_time = room.update_time = StoredNow(deps_);
        ToProto(room, response);        // Sent only on success.
        response->set_member_count(1);  // The owner.
        response->set_last_sequence(0);
        const std::string location = absl::StrCat("/v1/rooms/", room.id);

        deps_.store->Submit(
            store::PutRoom{std::move(room), /*create=*/true},
            [reactor, context, location](absl::StatusOr<int64_t> done) {
              if (done.ok()) SetCreated(context, location);
              FinishWith(reactor, context, done.status());
            });
      });
}

grpc::ServerUnaryReactor* RoomService::ListRooms(
    grpc::CallbackServerContext* context,
    const parley::v1::ListRoomsRequest* request,
    parley::v1::ListRoomsResponse* response) {
  return RunOn(
      deps_.reads, context,
      [this, context, request, response](grpc::ServerUnaryReactor* reactor) {
        absl::StatusOr<auth::Principal> principal =
            SignedInUser(deps_, context, *request);
        if (!principal.ok()) {
          return FinishWith(reactor, context, principal.status());
        }
        absl::StatusOr<NamePage> page =
            ParseNamePage(request->page_size(), request->page_token(), "rooms");
        if (!page.ok()) return FinishWith(reactor, context, page.status());

        // One more than asked tells whether there is a next page.
        absl::StatusOr<std::vector<store::Room>> rooms = deps_.store->ListRooms(
            principal->user_id, page->after, page->size + 1);
        if (!rooms.ok()) return FinishWith(reactor, context, rooms.status());
        const bool more = rooms->size() > page->size;
        if (more) rooms->resize(page->size);
        for (const store::Room& room : *rooms) {
          parley::v1::Room* out = response->add_rooms();
          if (absl::Status s = FillRoom(room, out); !s.ok()) {
            return FinishWith(reactor, context, s);
          }
          if (absl::Status s = FillReadState(deps_, *principal, room, out);
              !s.ok()) {
            return FinishWith(reactor, context, s);
          }
        }
        if (more) {
          response->set_next_page_token(
              EncodePageToken("rooms", rooms->back().name));
        }
        FinishWith(reactor, context, absl::OkStatus());
      });
}

grpc::ServerUnaryReactor* RoomService::GetRoom(
    grpc::CallbackServerContext* context,
    const parley::v1::GetRoomRequest* request, parley::v1::Room* response) {
  return RunOn(
      deps_.reads, context,
      [this, context, request, response](grpc::ServerUnaryReactor* reactor) {
        // A room token sees its own room (ChitChat's GET /chats/<id> with one).
        if (absl::Status s = CheckStrings(*request); !s.ok()) {
          return FinishWith(reactor, context, s);
        }
        absl::StatusOr<auth::Principal> principal =
            Authenticate(deps_, context);
        if (!principal.ok()) {
          return FinishWith(reactor, context, principal.status());
        }
        absl::StatusOr<RoomView> view =
            ResolveRoom(deps_, request->room(), *principal);
        if (!view.ok()) return FinishWith(reactor, context, view.status());
        if (absl::Status s = FillRoom(view->room, response); !s.ok()) {
          return FinishWith(reactor, context, s);
        }
        FinishWith(reactor, context,
                   FillReadState(deps_, *principal, view->room, response));
      });
}

grpc::ServerUnaryReactor* RoomService::UpdateRoom(
    grpc::CallbackServerContext* context,
    const parley::v1::UpdateRoomRequest* request, parley::v1::Room* response) {
  return RunOn(
      request->password().empty() ? deps_.reads : deps_.hashing, context,
      [this, context, request, response](grpc::ServerUnaryReactor* reactor) {
        absl::StatusOr<auth::Principal> principal =
            SignedInUser(deps_, context, *request);
        if (!principal.ok()) {
          return FinishWith(reactor, context, principal.status());
        }
        absl::StatusOr<RoomView> view =
            ManagedRoom(deps_, request->room(), *principal, "changed");
        if (!view.ok()) return FinishWith(reactor, context, view.status());

        const store::Room& before = view->room;
        store::Room updated = before;
        if (request->has_name()) {
          if (absl::Status s = ValidateRoomName(request->name(), "name");
              !s.ok()) {
            return FinishWith(reactor, context, s);
          }
          updated.name = request->name();
        }
        if (request->has_description()) {
          if (absl::Status s = ValidateDescription(request->description());
              !s.ok()) {
            return FinishWith(reactor, context, s);
          }
          updated.description = request->description();
        }
        if (request->has_visibility()) {
          absl::StatusOr<store::Visibility> visibility =
              ParseVisibility(request->visibility(), std::nullopt);
          if (!visibility.ok()) {
            return FinishWith(reactor, context, visibility.status());
          }
          updated.visibility = *visibility;
        }
        const bool is_public = updated.visibility == store::Visibility::kPublic;
        if (request->has_password()) {
          if (request->password().empty()) {
            updated.password_hash
                .clear();  // Checked below for non-public rooms.
          } else {
            if (absl::Status s = ValidateRoomPassword(updated.visibility,
                                                      request->password());
                !s.ok()) {
              return FinishWith(reactor, context, s);
            }
            absl::StatusOr<std::string> hash =
                deps_.passwords->Hash(request->password());
            if (!hash.ok()) return FinishWith(reactor, context, hash.status());
            updated.password_hash = *std::move(hash);
          }
        }
        if (is_public) {
          updated.password_hash.clear();
        } else if (updated.password_hash.empty()) {
          return FinishWith(reactor, context,
                            InvalidInput("PASSWORD_REQUIRED", "password",
                                         "a private or hidden room needs a "
                                         "password"));
        }
        updated.update_time = StoredNow(deps_);
        if (absl::Status s = FillRoom(updated, response); !s.ok()) {
          return FinishWith(reactor, context, s);
        }

        // A room that stops being public ends the streams of everyone who is
        // not a member; members keep theirs.
        const bool closes_streams =
            before.visibility == store::Visibility::kPublic && !is_public;
        absl::flat_hash_set<std::string> members;
        if (closes_streams) {
          absl::StatusOr<std::vector<store::Member>> listed =
              deps_.store->ListMembers(updated.id);
          if (!listed.ok()) {
            return FinishWith(reactor, context, listed.status());
          }
          for (const store::Member& m : *listed) members.insert(m.user_id);
        }
        chat::Hub* hub = deps_.hub;
        const std::string id = updated.id;
        deps_.store->Submit(
            store::PutRoom{std::move(updated), /*create=*/false},
            [reactor, context, hub, id, closes_streams,
             members = std::move(members)](absl::StatusOr<int64_t> done) {
              if (done.ok() && closes_streams) {
                hub->CloseSubscriptionsExcept(id, members,
                                              chat::CloseReason::kRemoved);
              }
              FinishWith(reactor, context, done.status());
            });
      });
}

grpc::ServerUnaryReactor* RoomService::DeleteRoom(
    grpc::CallbackServerContext* context,
    const parley::v1::DeleteRoomRequest* request,
    parley::v1::DeleteRoomResponse* /*response*/) {
  return RunOn(deps_.reads, context,
               [this, context, request](grpc::ServerUnaryReactor* reactor) {
                 absl::StatusOr<auth::Principal> principal =
                     SignedInUser(deps_, context, *request);
                 if (!principal.ok()) {
                   return FinishWith(reactor, context, principal.status());
                 }
                 absl::StatusOr<RoomView> view =
                     ManagedRoom(deps_, request->room(), *principal, "deleted");
                 if (!view.ok()) {
                   return FinishWith(reactor, context, view.status());
                 }
                 // Loads the room log's state here, so the writer thread's
                 // callback below never reads the store (see
                 // Hub::LastDelivered).
                 if (absl::StatusOr<uint64_t> loaded =
                         deps_.hub->LastDelivered(view->room.id);
                     !loaded.ok()) {
                   return FinishWith(reactor, context, loaded.status());
                 }
                 chat::Hub* hub = deps_.hub;
                 const std::string id = view->room.id;
                 deps_.store->Submit(
                     store::DeleteRoom{id},
                     [reactor, context, hub, id](absl::StatusOr<int64_t> done) {
                       if (done.ok()) hub->DropLog(id);
                       FinishWith(reactor, context, done.status());
                     });
               });
}

grpc::ServerUnaryReactor* RoomService::AddMember(
    grpc::CallbackServerContext* context,
    const parley::v1::AddMemberRequest* request,
    parley::v1::Member* response) {
  return RunOn(
      request->password().empty() ? deps_.reads : deps_.hashing, context,
      [this, context, request, response](grpc::ServerUnaryReactor* reactor) {
        absl::StatusOr<auth::Principal> principal =
            SignedInUser(deps_, context, *request);
        if (!principal.ok()) {
          return FinishWith(reactor, context, principal.status());
        }
        // The user first: users are no secret, while the order of the checks on
        // the room below must not tell a hidden room from a missing one.
        absl::StatusOr<store::User> target =
            ResolveUser(deps_, request->user(), *principal);
        if (!target.ok()) return FinishWith(reactor, context, target.status());
        absl::StatusOr<store::Room> room = LookupRoom(deps_, request->room());
        if (!room.ok()) return FinishWith(reactor, context, room.status());
        absl::StatusOr<std::optional<store::Member>> caller_member =
            deps_.store->GetMember(room->id, principal->user_id);
        if (!caller_member.ok()) {
          return FinishWith(reactor, context, caller_member.status());
        }
        const auth::RoomRights rights =
            auth::Evaluate(*room, *caller_member, *principal);

        std::optional<store::Member> existing;
        if (target->id == principal->user_id) {
          existing = *caller_member;
          if (!existing.has_value() && !rights.manage &&
              room->visibility != store::Visibility::kPublic &&
              !PasswordOpens(deps_, *room, request->password())) {
            if (!rights.visible) {
              return FinishWith(reactor, context,
                                RoomNotFound(request->room()));
            }
            return FinishWith(reactor, context,
                              WithReason(absl::PermissionDeniedError(
                                             "wrong or missing room password"),
                                         "WRONG_PASSWORD", "password"));
          }
        } else {
          if (absl::Status s = auth::RequireManage(rights); !s.ok()) {
            return FinishWith(reactor, context, s);
          }
          absl::StatusOr<std::optional<store::Member>> member =
              deps_.store->GetMember(room->id, target->id);
          if (!member.ok()) {
            return FinishWith(reactor, context, member.status());
          }
          existing = *std::move(member);
        }
        if (existing.has_value()) {  // Already a member: nothing changes.
          ToProto(*existing, response);
          ToProto(*target, response->mutable_user());
          return FinishWith(reactor, context, absl::OkStatus());
        }

        store::Member member;
        member.room_id = room->id;
        member.user_id = target->id;
        member.role = "member";
        member.join_time = StoredNow(deps_);
        member.username = target->username;
        member.display_name = target->display_name;
        ToProto(member, response);  // Sent only on success.
        ToProto(*target, response->mutable_user());

        // Loads the room log's state here, so the writer thread's callback
        // below never reads the store (see Hub::LastDelivered).
        if (absl::StatusOr<uint64_t> loaded =
                deps_.hub->LastDelivered(room->id);
            !loaded.ok()) {
          return FinishWith(reactor, context, loaded.status());
        }
        chat::Hub* hub = deps_.hub;
        std::shared_ptr<model::Event> event =
            MemberEvent(model::EventKind::kMemberAdded, *room, *target);
        deps_.store->Submit(
            store::PutMember{std::move(member)},
            [reactor, context, hub,
             event = std::move(event)](absl::StatusOr<int64_t> done) mutable {
              if (!done.ok()) {
                return FinishWith(reactor, context, done.status());
              }
              PublishThenFinish(hub, std::move(event), reactor, context);
            });
      });
}

grpc::ServerUnaryReactor* RoomService::RemoveMember(
    grpc::CallbackServerContext* context,
    const parley::v1::RemoveMemberRequest* request,
    parley::v1::RemoveMemberResponse* /*response*/) {
  return RunOn(
      deps_.reads, context,
      [this, context, request](grpc::ServerUnaryReactor* reactor) {
        absl::StatusOr<auth::Principal> principal =
            SignedInUser(deps_, context, *request);
        if (!principal.ok()) {
          return FinishWith(reactor, context, principal.status());
        }
        absl::StatusOr<RoomView> view =
            ResolveRoom(deps_, request->room(), *principal);
        if (!view.ok()) return FinishWith(reactor, context, view.status());
        absl::StatusOr<store::User> target =
            ResolveUser(deps_, request->user(), *principal);
        if (!target.ok()) return FinishWith(reactor, context, target.status());
        const store::Room& room = view->room;
        const bool self = target->id == principal->user_id;
        if (!self) {
          if (absl::Status s = auth::RequireManage(view->rights); !s.ok()) {
            return FinishWith(reactor, context, s);
          }
        }
        if (target->id == room.owner_id) {
          return FinishWith(reactor, context,
                            WithReason(absl::FailedPreconditionError(
                                           "the owner cannot leave their room"),
                                       "OWNER_CANNOT_LEAVE", "user"));
        }
        std::optional<store::Member> membership = view->member;
        if (!self) {
          absl::StatusOr<std::optional<store::Member>> found =
              deps_.store->GetMember(room.id, target->id);
          if (!found.ok()) return FinishWith(reactor, context, found.status());
          membership = *std::move(found);
        }
        if (!membership.has_value()) {
          return FinishWith(
              reactor, context,
              WithReason(absl::NotFoundError(absl::StrCat(
                             "'", target->username, "' is not a member of '",
                             room.name, "'")),
                         "MEMBER_NOT_FOUND", "user"));
        }

        // Loads the room log's state here, so the writer thread's callback
        // below never reads the store (see Hub::LastDelivered).
        if (absl::StatusOr<uint64_t> loaded = deps_.hub->LastDelivered(room.id);
            !loaded.ok()) {
          return FinishWith(reactor, context, loaded.status());
        }
        chat::Hub* hub = deps_.hub;
        std::shared_ptr<model::Event> event =
            MemberEvent(model::EventKind::kMemberRemoved, room, *target);
        const bool closes_streams =
            room.visibility != store::Visibility::kPublic;
        deps_.store->Submit(
            store::DeleteMember{room.id, target->id},
            [reactor, context, hub, closes_streams,
             event = std::move(event)](absl::StatusOr<int64_t> done) mutable {
              if (!done.ok()) {
                return FinishWith(reactor, context, done.status());
              }
              if (closes_streams) {
                hub->CloseSubscriptions(event->room_id, event->target_id,
                                        chat::CloseReason::kRemoved);
              }
              PublishThenFinish(hub, std::move(event), reactor, context);
            });
      });
}

grpc::ServerUnaryReactor* RoomService::ListMembers(
    grpc::CallbackServerContext* context,
    const parley::v1::ListMembersRequest* request,
    parley::v1::ListMembersResponse* response) {
  return RunOn(
      deps_.reads, context,
      [this, context, request, response](grpc::ServerUnaryReactor* reactor) {
        absl::StatusOr<RoomCall> call =
            ReadableRoom(deps_, context, *request, /*user_token_only=*/true);
        if (!call.ok()) return FinishWith(reactor, context, call.status());
        absl::StatusOr<std::vector<store::Member>> members =
            deps_.store->ListMembers(call->view.room.id);
        if (!members.ok()) {
          return FinishWith(reactor, context, members.status());
        }
        for (const store::Member& member : *members) {
          ToProto(member, response->add_members());
        }
        FinishWith(reactor, context, absl::OkStatus());
      });
}

grpc::ServerUnaryReactor* RoomService::CheckAccess(
    grpc::CallbackServerContext* context,
    const parley::v1::CheckAccessRequest* request,
    parley::v1::CheckAccessResponse* response) {
  return RunOn(
      deps_.reads, context,
      [this, context, request, response](grpc::ServerUnaryReactor* reactor) {
        absl::StatusOr<auth::Principal> principal =
            SignedInUser(deps_, context, *request);
        if (!principal.ok()) {
          return FinishWith(reactor, context, principal.status());
        }
        absl::StatusOr<RoomView> view =
            ResolveRoom(deps_, request->room(), *principal);
        if (!view.ok()) return FinishWith(reactor, context, view.status());
        absl::StatusOr<store::User> target =
            ResolveUser(deps_, request->user(), *principal);
        if (!target.ok()) return FinishWith(reactor, context, target.status());
        absl::StatusOr<std::optional<store::Member>> member =
            deps_.store->GetMember(view->room.id, target->id);
        if (!member.ok()) return FinishWith(reactor, context, member.status());

        auth::Principal who;
        who.kind = auth::TokenKind::kUser;
        who.user_id = target->id;
        who.username = target->username;
        who.display_name = target->display_name;
        who.admin = deps_.auth->IsAdmin(target->username);
        const auth::RoomRights rights =
            auth::Evaluate(view->room, *member, who);
        response->set_allowed(rights.read);
        if (member->has_value()) {
          response->set_role((*member)->role);
          response->set_reason("member");
        } else if (view->room.visibility == store::Visibility::kPublic) {
          response->set_reason("public room");
        } else if (rights.read) {
          response->set_reason("admin");
        } else {
          response->set_reason("not a member");
        }
        FinishWith(reactor, context, absl::OkStatus());
      });
}

grpc::ServerUnaryReactor* RoomService::CreateRoomToken(
    grpc::CallbackServerContext* context,
    const parley::v1::CreateRoomTokenRequest* request,
    parley::v1::RoomToken* response) {
  return RunOn(
      request->secret().empty() ? deps_.reads : deps_.hashing, context,
      [this, context, request, response](grpc::ServerUnaryReactor* reactor) {
        if (absl::Status s = CheckStrings(*request); !s.ok()) {
          return FinishWith(reactor, context, s);
        }
        if (request->room().empty()) {
          return FinishWith(
              reactor, context,
              InvalidInput("ROOM_REQUIRED", "room", "room is required"));
        }
        if (absl::Status s = ValidateTokenName(request->name()); !s.ok()) {
          return FinishWith(reactor, context, s);
        }
        absl::StatusOr<store::Room> room = LookupRoom(deps_, request->room());
        if (!room.ok()) return FinishWith(reactor, context, room.status());
        switch (room->visibility) {
          case store::Visibility::kPublic:
            break;
          case store::Visibility::kPrivate:
            if (!PasswordOpens(deps_, *room, request->secret())) {
              return FinishWith(reactor, context,
                                WithReason(absl::PermissionDeniedError(
                                               "wrong or missing room secret"),
                                           "WRONG_SECRET", "secret"));
            }
            break;
          case store::Visibility::kHidden:
            if (!PasswordOpens(deps_, *room, request->secret())) {
              return FinishWith(reactor, context,
                                RoomNotFound(request->room()));
            }
            break;
        }
        absl::Time expire_time;
        absl::StatusOr<std::string> token =
            deps_.auth->IssueRoomToken(room->id, request->name(), &expire_time);
        if (!token.ok()) return FinishWith(reactor, context, token.status());
        response->set_status(true);
        response->set_name(request->name());
        response->set_room_id(room->id);
        response->set_token(*std::move(token));
        ToTimestamp(expire_time, response->mutable_expire_time());
        FinishWith(reactor, context, absl::OkStatus());
      });
}

grpc::ServerUnaryReactor* RoomService::RenewRoomToken(
    grpc::CallbackServerContext* context,
    const parley::v1::RenewRoomTokenRequest* request,
    parley::v1::RoomToken* response) {
  return RunOn(
      deps_.reads, context,
      [this, context, request, response](grpc::ServerUnaryReactor* reactor) {
        if (absl::Status s = CheckStrings(*request); !s.ok()) {
          return FinishWith(reactor, context, s);
        }
        absl::StatusOr<auth::Principal> principal =
            Authenticate(deps_, context);
        if (!principal.ok()) {
          return FinishWith(reactor, context, principal.status());
        }
        if (principal->kind != auth::TokenKind::kRoom) {
          return FinishWith(reactor, context,
                            WithReason(absl::PermissionDeniedError(
                                           "renewing a room token needs a room "
                                           "token"),
                                       "ROOM_TOKEN_REQUIRED"));
        }
        const std::string& named =
            request->room().empty() ? principal->room_id : request->room();
        absl::StatusOr<store::Room> room = LookupRoom(deps_, named);
        if (!room.ok()) return FinishWith(reactor, context, room.status());
        if (room->id != principal->room_id) {
          // Another room: a hidden one stays unseen.
          if (room->visibility == store::Visibility::kHidden) {
            return FinishWith(reactor, context, RoomNotFound(named));
          }
          return FinishWith(reactor, context,
                            WithReason(absl::PermissionDeniedError(
                                           "the token is for another room"),
                                       "ROOM_TOKEN_MISMATCH", "room"));
        }
        absl::Time expire_time;
        absl::StatusOr<std::string> token = deps_.auth->IssueRoomToken(
            room->id, principal->display_name, &expire_time);
        if (!token.ok()) return FinishWith(reactor, context, token.status());
        response->set_status(true);
        response->set_name(principal->display_name);
        response->set_room_id(room->id);
        response->set_token(*std::move(token));
        ToTimestamp(expire_time, response->mutable_expire_time());
        FinishWith(reactor, context, absl::OkStatus());
      });
}

}  // namespace parley::api
