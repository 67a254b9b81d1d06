#include "server/api/message_service.h"

#include <memory>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/api/idempotency.h"
#include "server/api/status.h"
#include "server/chat/validate.h"
#include "server/common/errors.h"
#include "server/common/log.h"
#include "server/model/ids.h"
#include "server/store/memory_only.h"

namespace parley::api {
namespace {

using model::EventPtr;

// The message `id` of `log`, which must be a message's UUID.
absl::StatusOr<EventPtr> FindMessage(const Deps& deps, absl::string_view log,
                                     absl::string_view id) {
  if (!LooksLikeUuid(id)) {
    return InvalidInput("INVALID_MESSAGE_ID", "message",
                        "message must be a message's UUID");
  }
  absl::StatusOr<EventPtr> found =
      deps.store->GetMessage(log, absl::AsciiStrToLower(id));
  if (absl::IsNotFound(found.status())) {
    return WithReason(
        absl::NotFoundError(absl::StrCat("no message '", id, "'")),
        "MESSAGE_NOT_FOUND", "message");
  }
  return found;
}

// A page request: `before` and `after` are the request's optional fields.
template <class Request>
absl::StatusOr<store::Page> ToPage(const Deps& deps, const Request& request) {
  absl::StatusOr<size_t> limit =
      PageSize(request.n(), 100, deps.read.history_max_page, "n");
  if (!limit.ok()) return limit.status();
  if (request.has_before() && request.has_after()) {
    return InvalidInput("BEFORE_AND_AFTER", "after",
                        "give at most one of before and after");
  }
  if (request.has_before() && request.before() == 0) {
    return InvalidInput("INVALID_BEFORE", "before",
                        "before must be a sequence number, at least 1");
  }
  store::Page page;
  page.limit = *limit;
  page.before = request.before();
  page.after = request.after();
  page.oldest_first = request.has_after();
  return page;
}

void FillPage(const store::PageResult& page,
              parley::v1::ListMessagesResponse* response) {
  for (const EventPtr& m : page.messages) {
    ToProto(*m, response->add_messages());
  }
  response->set_has_older(page.has_older);
  response->set_has_newer(page.has_newer);
}

// A new event of `room`'s log caused by `who`.
// Who a send's idempotency key belongs to: the user, or the holder of a
// room token by room and name.
std::string SenderScope(const auth::Principal& who) {
  if (!who.user_id.empty()) return absl::StrCat("user:", who.user_id);
  return absl::StrCat("room-token:", who.room_id, ":", who.display_name);
}

// Publishes a send by `sender` (its SenderScope), once per idempotency key
// (event->idempotency). Only a first send counts against the limits.
void PublishOnce(const Deps& deps, std::string sender,
                 std::shared_ptr<model::Event> event, chat::EventDone done) {
  model::IdempotencyKey key = event->idempotency;
  deps.sends->Run(
      key,
      [&deps, sender = std::move(sender),
       event = std::move(event)](chat::EventDone d) mutable {
        if (absl::Status s = ChargeSend(deps, sender, event->log); !s.ok()) {
          return d(s);
        }
        deps.hub->Publish(std::move(event), std::move(d));
      },
      std::move(done));
}

// The sender's copy of direct message `sent`, for the sender's inbox `log`:
// the same sender, recipient and text, its own id and (assigned) sequence
// number, and `target_id` naming the recipient's message.
std::shared_ptr<model::Event> SenderCopy(const model::Event& sent,
                                         const std::string& log) {
  auto copy = chat::NewEvent(model::EventKind::kMessage, log);
  copy->sender = sent.sender;
  copy->sender_id = sent.sender_id;
  copy->recipient_id = sent.recipient_id;
  copy->recipient = sent.recipient;
  copy->text = sent.text;
  copy->target_id = sent.id;
  return copy;
}

std::shared_ptr<model::Event> RoomEvent(model::EventKind kind,
                                        const store::Room& room,
                                        const auth::Principal& who) {
  auto event = chat::NewEvent(kind, room.id);
  event->room_id = room.id;
  event->room = room.name;
  event->sender = who.display_name;
  event->sender_id = who.user_id;
  return event;
}

}  // namespace

MessageService::MessageService(const Deps& deps) : deps_(deps) {}

grpc::ServerUnaryReactor* MessageService::PostMessage(
    grpc::CallbackServerContext* context,
    const parley::v1::PostMessageRequest* request,
    parley::v1::Event* response) {
  struct Checked {
    RoomCall call;
    model::IdempotencyKey key;
  };
  return CheckThenAct<Checked>(
      deps_, context,
      [this, context, request]() -> absl::StatusOr<Checked> {
        absl::StatusOr<RoomCall> call =
            ReadableRoom(deps_, context, *request, false);
        if (!call.ok()) return call.status();
        if (absl::Status s = chat::ValidateMessageText(
                request->text(), deps_.hub->options().max_message_bytes,
                "text");
            !s.ok()) {
          return s;
        }
        absl::StatusOr<model::IdempotencyKey> key = deps_.sends->KeyOf(
            context, request->idempotency_key(),
            deps_.hub->options().max_id_bytes,
            [&] { return SenderScope(call->who); }, call->view.room.id,
            request->text());
        if (!key.ok()) return key.status();
        // A keyed send looks for an earlier one in the store.
        if (!key->key.empty()) {
          if (absl::Status s = store::MemoryOnlyScope::Refuse(); !s.ok()) {
            return s;
          }
        }
        // The room's log state, read from the store on its first use.
        if (absl::StatusOr<uint64_t> last =
                deps_.hub->LastDelivered(call->view.room.id);
            !last.ok()) {
          return last.status();
        }
        return Checked{*std::move(call), *std::move(key)};
      },
      [this, context, request, response](grpc::ServerUnaryReactor* reactor,
                                         Checked checked) {
        auto event = RoomEvent(model::EventKind::kMessage, checked.call.view.room,
                               checked.call.who);
        event->text = request->text();
        event->idempotency = std::move(checked.key);
        PublishOnce(
            deps_, SenderScope(checked.call.who), std::move(event),
            [reactor, context, response](absl::StatusOr<EventPtr> event) {
              if (event.ok()) {
                ToProto(**event, response);
                SetCreated(context,
                           absl::StrCat("/v1/rooms/", (*event)->room_id,
                                        "/messages/", (*event)->id));
              }
              FinishWith(reactor, context, event.status());
            });
      });
}

grpc::ServerUnaryReactor* MessageService::ListMessages(
    grpc::CallbackServerContext* context,
    const parley::v1::ListMessagesRequest* request,
    parley::v1::ListMessagesResponse* response) {
  return RunOn(
      deps_.reads, context,
      [this, context, request, response](grpc::ServerUnaryReactor* reactor) {
        absl::StatusOr<RoomCall> call =
            ReadableRoom(deps_, context, *request, false);
        if (!call.ok()) return FinishWith(reactor, context, call.status());
        absl::StatusOr<store::Page> page = ToPage(deps_, *request);
        if (!page.ok()) return FinishWith(reactor, context, page.status());
        absl::StatusOr<store::PageResult> result =
            deps_.store->ListMessages(call->view.room.id, *page);
        if (result.ok()) FillPage(*result, response);
        FinishWith(reactor, context, result.status());
      });
}

grpc::ServerUnaryReactor* MessageService::GetMessage(
    grpc::CallbackServerContext* context,
    const parley::v1::GetMessageRequest* request,
    parley::v1::Event* response) {
  return RunOn(
      deps_.reads, context,
      [this, context, request, response](grpc::ServerUnaryReactor* reactor) {
        absl::StatusOr<RoomCall> call =
            ReadableRoom(deps_, context, *request, false);
        if (!call.ok()) return FinishWith(reactor, context, call.status());
        absl::StatusOr<EventPtr> message =
            FindMessage(deps_, call->view.room.id, request->message());
        if (message.ok()) ToProto(**message, response);
        FinishWith(reactor, context, message.status());
      });
}

grpc::ServerUnaryReactor* MessageService::EditMessage(
    grpc::CallbackServerContext* context,
    const parley::v1::EditMessageRequest* request,
    parley::v1::Event* response) {
  return RunOn(
      deps_.reads, context,
      [this, context, request, response](grpc::ServerUnaryReactor* reactor) {
        absl::StatusOr<RoomCall> call =
            ReadableRoom(deps_, context, *request, true);
        if (!call.ok()) return FinishWith(reactor, context, call.status());
        absl::StatusOr<EventPtr> message =
            FindMessage(deps_, call->view.room.id, request->message());
        if (!message.ok()) {
          return FinishWith(reactor, context, message.status());
        }
        if ((*message)->sender_id.empty() ||
            (*message)->sender_id != call->who.user_id) {
          return FinishWith(
              reactor, context,
              WithReason(absl::PermissionDeniedError(
                             "only the author may edit a message"),
                         "NOT_AUTHOR", "message"));
        }
        if ((*message)->deleted) {
          return FinishWith(reactor, context,
                            WithReason(absl::FailedPreconditionError(
                                           "the message was deleted"),
                                       "MESSAGE_DELETED", "message"));
        }
        if (absl::Status s = chat::ValidateMessageText(
                request->text(), deps_.hub->options().max_message_bytes,
                "text");
            !s.ok()) {
          return FinishWith(reactor, context, s);
        }
        auto event =
            RoomEvent(model::EventKind::kEdit, call->view.room, call->who);
        event->text = request->text();
        event->target_id = (*message)->id;
        event->target_sequence = (*message)->sequence;
        // An edit is delivered like a send, and counts as one.
        if (absl::Status s =
                ChargeSend(deps_, SenderScope(call->who), event->log);
            !s.ok()) {
          return FinishWith(reactor, context, s);
        }
        deps_.hub->Publish(
            std::move(event), [reactor, context, response, before = *message](
                                  absl::StatusOr<EventPtr> edit) {
              if (edit.ok()) {
                // The message as it now is, built without another read.
                model::Event after = *before;
                after.previous_versions.push_back(model::MessageVersion{
                    before->text, before->update_time == absl::InfinitePast()
                                      ? before->time
                                      : before->update_time});
                after.text = (*edit)->text;
                after.update_time = (*edit)->time;
                ToProto(after, response);
              }
              FinishWith(reactor, context, edit.status());
            });
      });
}

grpc::ServerUnaryReactor* MessageService::DeleteMessage(
    grpc::CallbackServerContext* context,
    const parley::v1::DeleteMessageRequest* request,
    parley::v1::Event* response) {
  return RunOn(
      deps_.reads, context,
      [this, context, request, response](grpc::ServerUnaryReactor* reactor) {
        absl::StatusOr<RoomCall> call =
            ReadableRoom(deps_, context, *request, true);
        if (!call.ok()) return FinishWith(reactor, context, call.status());
        absl::StatusOr<EventPtr> message =
            FindMessage(deps_, call->view.room.id, request->message());
        if (!message.ok()) {
          return FinishWith(reactor, context, message.status());
        }
        const bool author = !(*message)->sender_id.empty() &&
                            (*message)->sender_id == call->who.user_id;
        if (!author && !call->view.rights.manage) {
          return FinishWith(
              reactor, context,
              WithReason(absl::PermissionDeniedError(
                             "only the author or the room's owner may "
                             "delete a message"),
                         "NOT_AUTHOR", "message"));
        }
        if ((*message)->deleted) {  // Deleting twice changes nothing.
          ToProto(**message, response);
          return FinishWith(reactor, context, absl::OkStatus());
        }
        auto event =
            RoomEvent(model::EventKind::kDelete, call->view.room, call->who);
        event->target_id = (*message)->id;
        event->target_sequence = (*message)->sequence;
        deps_.hub->Publish(std::move(event),
                           [reactor, context, response, before = *message](
                               absl::StatusOr<EventPtr> deleted) {
                             if (deleted.ok()) {
                               model::Event tombstone = *before;
                               tombstone.deleted = true;
                               tombstone.text.clear();
                               tombstone.previous_versions.clear();
                               tombstone.update_time = (*deleted)->time;
                               ToProto(tombstone, response);
                             }
                             FinishWith(reactor, context, deleted.status());
                           });
      });
}

grpc::ServerUnaryReactor* MessageService::PurgeMessages(
    grpc::CallbackServerContext* context,
    const parley::v1::PurgeMessagesRequest* request,
    parley::v1::PurgeMessagesResponse* response) {
  return RunOn(
      deps_.reads, context,
      [this, context, request, response](grpc::ServerUnaryReactor* reactor) {
        absl::StatusOr<auth::Principal> who =
            SignedInUser(deps_, context, *request);
        if (!who.ok()) return FinishWith(reactor, context, who.status());
        absl::StatusOr<RoomView> view =
            ResolveRoom(deps_, request->room(), *who);
        if (!view.ok()) return FinishWith(reactor, context, view.status());
        if (absl::Status s = auth::RequireManage(view->rights); !s.ok()) {
          return FinishWith(reactor, context, s);
        }
        // A purge covers what exists when it is made, never later messages.
        absl::StatusOr<uint64_t> last = deps_.hub->LastDelivered(view->room.id);
        if (!last.ok()) return FinishWith(reactor, context, last.status());
        uint64_t through = request->through_sequence();
        if (through == 0 || through > *last) through = *last;
        auto event = RoomEvent(model::EventKind::kPurge, view->room, *who);
        event->purge_through = through;
        deps_.hub->PublishPurge(
            std::move(event),
            [reactor, context, response](absl::StatusOr<EventPtr> purge,
                                         int64_t purged) {
              if (purge.ok()) {
                response->set_purged(static_cast<uint64_t>(purged));
                ToProto(**purge, response->mutable_event());
              }
              FinishWith(reactor, context, purge.status());
            });
      });
}

grpc::ServerUnaryReactor* MessageService::SendDirectMessage(
    grpc::CallbackServerContext* context,
    const parley::v1::SendDirectMessageRequest* request,
    parley::v1::Event* response) {
  struct Checked {
    auth::Principal who;
    std::shared_ptr<model::Event> event;
    // The sender's inbox, for the sender's copy; empty for a message to
    // oneself.
    std::string copy_log;
  };
  return CheckThenAct<Checked>(
      deps_, context,
      [this, context, request]() -> absl::StatusOr<Checked> {
        absl::StatusOr<auth::Principal> who =
            SignedInUser(deps_, context, *request);
        if (!who.ok()) return who.status();
        if (request->user().empty()) {
          return InvalidInput("USER_REQUIRED", "user",
                              "user must name the recipient");
        }
        absl::StatusOr<store::User> to =
            ResolveUser(deps_, request->user(), *who);
        if (!to.ok()) return to.status();
        if (absl::Status s = chat::ValidateMessageText(
                request->text(), deps_.hub->options().max_message_bytes,
                "text");
            !s.ok()) {
          return s;
        }
        auto event =
            chat::NewEvent(model::EventKind::kMessage, model::InboxLog(to->id));
        event->sender = who->display_name;
        event->sender_id = who->user_id;
        event->recipient_id = to->id;
        event->recipient = to->username;
        event->text = request->text();
        absl::StatusOr<model::IdempotencyKey> key = deps_.sends->KeyOf(
            context, request->idempotency_key(),
            deps_.hub->options().max_id_bytes,
            [&] { return SenderScope(*who); }, event->log, event->text);
        if (!key.ok()) return key.status();
        event->idempotency = *std::move(key);
        // A keyed send looks for an earlier one in the store.
        if (!event->idempotency.key.empty()) {
          if (absl::Status s = store::MemoryOnlyScope::Refuse(); !s.ok()) {
            return s;
          }
        }
        // The sender's copy goes to the sender's own inbox once the message is
        // in the recipient's, so a conversation reads back (and streams to the
        // sender's other sessions) from one log with one cursor. Both logs
        // are loaded here, where the store may be read: the copy is
        // published from the hub's dispatcher thread, which must not read
        // the store.
        if (absl::StatusOr<uint64_t> loaded = deps_.hub->LastDelivered(event->log);
            !loaded.ok()) {
          return loaded.status();
        }
        std::string copy_log;
        if (to->id != who->user_id) {
          copy_log = model::InboxLog(who->user_id);
          if (absl::StatusOr<uint64_t> loaded =
                  deps_.hub->LastDelivered(copy_log);
              !loaded.ok()) {
            return loaded.status();
          }
        }
        return Checked{*std::move(who), std::move(event), std::move(copy_log)};
      },
      [this, context, response](grpc::ServerUnaryReactor* reactor,
                                Checked checked) {
        const model::IdempotencyKey idempotency = checked.event->idempotency;
        deps_.sends->Run(
            idempotency,
            // Runs only for a first send, never for a retry of a stored one.
            [this, hub = deps_.hub, sender = SenderScope(checked.who),
             event = std::move(checked.event),
             copy_log = std::move(checked.copy_log)](
                chat::EventDone done) mutable {
              if (absl::Status s = ChargeSend(deps_, sender, event->log);
                  !s.ok()) {
                return done(s);
              }
              hub->Publish(
                  std::move(event), [hub, copy_log, done = std::move(done)](
                                        absl::StatusOr<EventPtr> sent) mutable {
                    if (!sent.ok() || copy_log.empty()) {
                      done(std::move(sent));
                      return;
                    }
                    auto copy = SenderCopy(**sent, copy_log);
                    hub->Publish(
                        std::move(copy),
                        [sent, done = std::move(done)](
                            absl::StatusOr<EventPtr> copied) mutable {
                          // The message itself is committed and delivered: its
                          // sender gets the answer even when the copy failed.
                          if (!copied.ok()) {
                            log::Warning(
                                "a direct message's sender copy failed",
                                {{"message", (*sent)->id},
                                 {"error", copied.status().ToString()}});
                          }
                          done(std::move(sent));
                        });
                  });
            },
            [reactor, context, response](absl::StatusOr<EventPtr> event) {
              if (event.ok()) {
                ToProto(**event, response);
                SetCreated(context,
                           "");  // a direct message has no URL of its own
              }
              FinishWith(reactor, context, event.status());
            });
      });
}

grpc::ServerUnaryReactor* MessageService::ListDirectMessages(
    grpc::CallbackServerContext* context,
    const parley::v1::ListDirectMessagesRequest* request,
    parley::v1::ListMessagesResponse* response) {
  return RunOn(
      deps_.reads, context,
      [this, context, request, response](grpc::ServerUnaryReactor* reactor) {
        absl::StatusOr<auth::Principal> who = AuthenticateUser(deps_, context);
        if (!who.ok()) return FinishWith(reactor, context, who.status());
        absl::StatusOr<store::Page> page = ToPage(deps_, *request);
        if (!page.ok()) return FinishWith(reactor, context, page.status());
        absl::StatusOr<store::PageResult> result =
            deps_.store->ListMessages(model::InboxLog(who->user_id), *page);
        if (result.ok()) FillPage(*result, response);
        FinishWith(reactor, context, result.status());
      });
}

}  // namespace parley::api
