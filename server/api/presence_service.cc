#include "server/api/presence_service.h"

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "server/common/errors.h"
#include "server/model/ids.h"

namespace parley::api {
namespace {

// A typing notice from `who`, holding until `expire`; the caller sets where
// it goes.
std::shared_ptr<model::Event> TypingEvent(absl::string_view log,
                                          const auth::Principal& who,
                                          absl::Time now, absl::Time expire) {
  auto event = chat::NewEvent(model::EventKind::kTyping, log);
  event->sender = who.display_name;  // a room token's holder: its name
  event->sender_id = who.user_id;
  event->time = now;
  event->typing_expire = expire;
  return event;
}

}  // namespace

PresenceService::PresenceService(const Deps& deps, absl::Duration typing_ttl)
    : deps_(deps), typing_ttl_(typing_ttl) {}

grpc::ServerUnaryReactor* PresenceService::ListPresence(
    grpc::CallbackServerContext* context,
    const parley::v1::ListPresenceRequest* request,
    parley::v1::ListPresenceResponse* response) {
  return RunOn(
      deps_.reads, context,
      [this, context, request, response](grpc::ServerUnaryReactor* reactor) {
        absl::StatusOr<RoomCall> call =
            ReadableRoom(deps_, context, *request, /*user_token_only=*/false);
        if (!call.ok()) return FinishWith(reactor, context, call.status());
        deps_.hub->ListPresentEverywhere(
            call->view.room.id, deps_.hub->options().presence_max_subscribers,
            [reactor, context, response](std::vector<chat::Present> present,
                                         bool truncated) {
              for (const chat::Present& p : present) {
                parley::v1::PresentUser* out = response->add_users();
                out->set_user_id(p.user_id);
                out->set_name(p.name);
                ToTimestamp(p.since, out->mutable_since_time());
              }
              response->set_truncated(truncated);
              FinishWith(reactor, context, absl::OkStatus());
            });
      });
}

grpc::ServerUnaryReactor* PresenceService::SendTyping(
    grpc::CallbackServerContext* context,
    const parley::v1::SendTypingRequest* request,
    parley::v1::SendTypingResponse* response) {
  return RunOn(
      deps_.reads, context,
      [this, context, request, response](grpc::ServerUnaryReactor* reactor) {
        const bool to_room = !request->room().empty();
        const bool to_user = !request->user().empty();
        if (to_room == to_user) {
          // A missing or bad token is still told first, as by every other call.
          if (absl::StatusOr<auth::Principal> who =
                  Authenticate(deps_, context);
              !who.ok()) {
            return FinishWith(reactor, context, who.status());
          }
          return FinishWith(
              reactor, context,
              InvalidInput("ONE_TARGET", to_room ? "user" : "room",
                           "give exactly one of room and user"));
        }
        const absl::Time now = deps_.hub->clock()->Now();
        const absl::Time expire = now + typing_ttl_;
        std::shared_ptr<model::Event> event;
        if (to_room) {
          absl::StatusOr<RoomCall> call =
              ReadableRoom(deps_, context, *request, /*user_token_only=*/false);
          if (!call.ok()) return FinishWith(reactor, context, call.status());
          event = TypingEvent(call->view.room.id, call->who, now, expire);
          event->room_id = call->view.room.id;
          event->room = call->view.room.name;
        } else {
          absl::StatusOr<auth::Principal> who =
              SignedInUser(deps_, context, *request);
          if (!who.ok()) return FinishWith(reactor, context, who.status());
          absl::StatusOr<store::User> to =
              ResolveUser(deps_, request->user(), *who);
          if (!to.ok()) return FinishWith(reactor, context, to.status());
          event = TypingEvent(model::InboxLog(to->id), *who, now, expire);
          event->recipient_id = to->id;
          event->recipient = to->username;
        }
        deps_.hub->PushLive(std::move(event));
        ToTimestamp(expire, response->mutable_expire_time());
        FinishWith(reactor, context, absl::OkStatus());
      });
}

grpc::ServerUnaryReactor* PresenceService::SetReadMarker(
    grpc::CallbackServerContext* context,
    const parley::v1::SetReadMarkerRequest* request,
    parley::v1::ReadMarker* response) {
  return RunOn(
      deps_.reads, context,
      [this, context, request, response](grpc::ServerUnaryReactor* reactor) {
        absl::StatusOr<RoomCall> call =
            ReadableRoom(deps_, context, *request, /*user_token_only=*/true);
        if (!call.ok()) return FinishWith(reactor, context, call.status());
        const std::string user_id = call->who.user_id;
        const std::string room_id = call->view.room.id;
        store::Store* store = deps_.store;
        Scheduler* replies = &replies_;
        deps_.store->Submit(
            store::PutReadMarker{user_id, room_id, request->sequence()},
            [reactor, context, response, store, replies, user_id,
             room_id](absl::StatusOr<int64_t> marker) {
              if (!marker.ok()) {
                return FinishWith(reactor, context, marker.status());
              }
              // On the writer thread: the read and the reply go to `replies_`.
              const uint64_t written = static_cast<uint64_t>(*marker);
              replies->Schedule(absl::InfinitePast(), [reactor, context,
                                                       response, store, user_id,
                                                       room_id, written] {
                absl::StatusOr<store::ReadState> state =
                    store->GetReadState(user_id, room_id);
                if (state.ok()) {
                  response->set_room_id(room_id);
                  // A later call may have moved the marker on meanwhile; the
                  // read shows that marker and the unread count after it,
                  // together.
                  response->set_sequence(std::max(written, state->sequence));
                  response->set_unread_count(state->unread);
                }
                FinishWith(reactor, context, state.status());
              });
            });
      });
}

}  // namespace parley::api
