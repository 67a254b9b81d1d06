#include "server/api/common.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "request_traits.h"
#include "server/api/quotas.h"
#include "server/api/status.h"
#include "server/common/errors.h"

namespace parley::api {

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context,
                                    const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

void FinishWith(grpc::ServerUnaryReactor* reactor,
                grpc::CallbackServerContext* /*context*/,
                const absl::Status& status) {
  reactor->Finish(ToGrpcStatus(status));
}

grpc::ServerUnaryReactor* RunOn(WorkerPool* pool,
                                grpc::CallbackServerContext* context,
                                CallWork work) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (pool == nullptr) {
    work(reactor);
    return reactor;
  }
  absl::Status accepted =
      pool->Submit([reactor, context, work = std::move(work)]() mutable {
        // The client may have given up while the call waited: its work
        // (an argon2id hash, a read) would be thrown away.
        if (context->IsCancelled()) {
          return FinishWith(
              reactor, context,
              absl::CancelledError("the call was cancelled before it ran"));
        }
        work(reactor);
      });
  if (!accepted.ok()) FinishWith(reactor, context, accepted);
  return reactor;
}

void SetCreated(grpc::CallbackServerContext* context, absl::string_view path) {
  context->AddInitialMetadata(kHttpCodeKey, "201");
  if (!path.empty()) {
    context->AddInitialMetadata(kLocationKey, std::string(path));
  }
}

namespace {

// The name of the first string field of `message` (nested messages
// included) that holds a NUL character, or "".
std::string FieldWithNul(const google::protobuf::Message& message) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Reflection* reflection = message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  for (const FieldDescriptor* fd : fields) {
    if (fd->cpp_type() == FieldDescriptor::CPPTYPE_STRING &&
        fd->type() == FieldDescriptor::TYPE_STRING) {
      const int n = fd->is_repeated() ? reflection->FieldSize(message, fd) : 1;
      for (int i = 0; i < n; ++i) {
        std::string scratch;
        const std::string& value =
            fd->is_repeated()
                ? reflection->GetRepeatedStringReference(message, fd, i,
                                                         &scratch)
                : reflection->GetStringReference(message, fd, &scratch);
        if (value.find('\0') != std::string::npos) return fd->name();
      }
    } else if (fd->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      const int n = fd->is_repeated() ? reflection->FieldSize(message, fd) : 1;
      for (int i = 0; i < n; ++i) {
        const google::protobuf::Message& inner =
            fd->is_repeated() ? reflection->GetRepeatedMessage(message, fd, i)
                              : reflection->GetMessage(message, fd);
        std::string nested = FieldWithNul(inner);
        if (!nested.empty()) return nested;
      }
    }
  }
  return "";
}

}  // namespace

std::string ClientAddress(const Deps& deps, grpc::CallbackServerContext* ctx) {
  const std::string peer = PeerIp(ctx->peer());
  if (deps.trusted_proxies == nullptr || deps.trusted_proxies->empty()) {
    return AddressKey(peer);
  }
  std::vector<absl::string_view> forwarded;
  auto [first, last] = ctx->client_metadata().equal_range("x-forwarded-for");
  for (auto it = first; it != last; ++it) {
    forwarded.emplace_back(it->second.data(), it->second.size());
  }
  return AddressKey(ClientIp(peer, forwarded, *deps.trusted_proxies));
}

absl::Status ChargeSend(const Deps& deps, absl::string_view sender,
                        absl::string_view log) {
  if (deps.quotas == nullptr) return absl::OkStatus();
  return deps.quotas->ChargeSend(sender, log);
}

absl::Status CheckStrings(const google::protobuf::Message& request) {
  std::string field = proto::MalformedField(request);
  if (field == proto::kNotAMessage) {
    return InvalidInput("MALFORMED_REQUEST", "",
                        absl::StrCat("the request is not a ",
                                     request.GetDescriptor()->full_name(),
                                     " message"));
  }
  if (!field.empty()) {
    return InvalidInput("INVALID_UTF8", field,
                        absl::StrCat(field, " is not valid UTF-8"));
  }
  field = FieldWithNul(request);
  if (!field.empty()) {
    return InvalidInput("NUL_CHARACTER", field,
                        absl::StrCat(field,
                                     " must not contain the NUL character "
                                     "(U+0000)"));
  }
  return absl::OkStatus();
}

namespace {

std::string AuthorizationOf(grpc::CallbackServerContext* ctx) {
  const auto& md = ctx->client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return "";
  return std::string(it->second.data(), it->second.size());
}

}  // namespace

absl::StatusOr<auth::Principal> Authenticate(const Deps& deps,
                                             grpc::CallbackServerContext* ctx) {
  // One caller per call: with two tokens, whichever came first would win.
  if (ctx->client_metadata().count("authorization") > 1) {
    return WithReason(absl::UnauthenticatedError(
                          "malformed token: more than one authorization"),
                      "TOKEN_MALFORMED");
  }
  return deps.auth->Authenticate(AuthorizationOf(ctx));
}

absl::StatusOr<auth::Principal> AuthenticateUser(
    const Deps& deps, grpc::CallbackServerContext* ctx) {
  absl::StatusOr<auth::Principal> who = Authenticate(deps, ctx);
  if (who.ok() && who->kind != auth::TokenKind::kUser) {
    return WithReason(absl::PermissionDeniedError(
                          "this call needs a signed-in user's token, not a "
                          "room token"),
                      "USER_TOKEN_REQUIRED");
  }
  return who;
}

absl::StatusOr<auth::Principal> SignedInUser(
    const Deps& deps, grpc::CallbackServerContext* ctx,
    const google::protobuf::Message& request) {
  if (absl::Status s = CheckStrings(request); !s.ok()) return s;
  return AuthenticateUser(deps, ctx);
}

bool LooksLikeUuid(absl::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return false;
    } else if (!absl::ascii_isxdigit(static_cast<unsigned char>(s[i]))) {
      return false;
    }
  }
  return true;
}

absl::StatusOr<store::User> ResolveUser(const Deps& deps,
                                        absl::string_view user,
                                        const auth::Principal& caller,
                                        absl::string_view field) {
  absl::StatusOr<store::User> found;
  if (user.empty() || user == "me") {
    if (caller.kind != auth::TokenKind::kUser) {
      return WithReason(
          absl::PermissionDeniedError("a room token has no user"),
          "USER_TOKEN_REQUIRED", field);
    }
    found = deps.store->GetUser(caller.user_id);
  } else if (LooksLikeUuid(user)) {
    found = deps.store->GetUser(absl::AsciiStrToLower(user));
  } else {
    found = deps.store->GetUserByName(user);
  }
  if (absl::IsNotFound(found.status())) {
    return WithReason(
        absl::NotFoundError(absl::StrCat("no user '", user, "'")),
        "USER_NOT_FOUND", field);
  }
  return found;
}

absl::StatusOr<RoomView> ResolveRoom(const Deps& deps, absl::string_view room,
                                     const auth::Principal& caller) {
  if (room.empty()) {
    return InvalidInput("ROOM_REQUIRED", "room", "room must name a room");
  }
  absl::StatusOr<store::Room> found =
      LooksLikeUuid(room) ? deps.store->GetRoom(absl::AsciiStrToLower(room))
                          : deps.store->GetRoomByName(room);
  absl::Status not_found = WithReason(
      absl::NotFoundError(absl::StrCat("no room '", room, "'")),
      "ROOM_NOT_FOUND", "room");
  if (absl::IsNotFound(found.status())) return not_found;
  if (!found.ok()) return found.status();
  RoomView view;
  view.room = *std::move(found);
  if (caller.kind == auth::TokenKind::kUser) {
    absl::StatusOr<std::optional<store::Member>> member =
        deps.store->GetMember(view.room.id, caller.user_id);
    if (!member.ok()) return member.status();
    view.member = *std::move(member);
  }
  view.rights = auth::Evaluate(view.room, view.member, caller);
  if (!view.rights.visible) return not_found;
  return view;
}

absl::StatusOr<RoomCall> ReadableRoom(const Deps& deps,
                                      grpc::CallbackServerContext* context,
                                      const google::protobuf::Message& request,
                                      absl::string_view room,
                                      bool user_token_only) {
  if (absl::Status s = CheckStrings(request); !s.ok()) return s;
  absl::StatusOr<auth::Principal> who =
      user_token_only ? AuthenticateUser(deps, context)
                      : Authenticate(deps, context);
  if (!who.ok()) return who.status();
  absl::StatusOr<RoomView> view = ResolveRoom(deps, room, *who);
  if (!view.ok()) return view.status();
  if (absl::Status s = auth::RequireRead(view->rights); !s.ok()) return s;
  return RoomCall{*std::move(who), *std::move(view)};
}

absl::StatusOr<NamePage> ParseNamePage(uint32_t page_size,
                                       absl::string_view page_token,
                                       absl::string_view kind) {
  constexpr size_t kDefaultPageSize = 100;
  constexpr size_t kMaxPageSize = 1000;
  absl::StatusOr<size_t> size =
      PageSize(page_size, kDefaultPageSize, kMaxPageSize, "page_size");
  if (!size.ok()) return size.status();
  absl::StatusOr<std::string> after = DecodePageToken(kind, page_token);
  if (!after.ok()) return after.status();
  return NamePage{*size, *std::move(after)};
}

absl::StatusOr<size_t> PageSize(uint32_t requested, size_t fallback,
                                size_t max, absl::string_view field) {
  if (requested == 0) return fallback;
  if (requested > max) {
    return InvalidInput("PAGE_TOO_LARGE", field,
                        absl::StrCat(field, " must be at most ", max));
  }
  return static_cast<size_t>(requested);
}

void ToTimestamp(absl::Time t, google::protobuf::Timestamp* out) {
  const int64_t nanos = absl::ToUnixNanos(t);
  int64_t seconds = nanos / 1000000000;
  int64_t rest = nanos % 1000000000;
  if (rest < 0) {
    rest += 1000000000;
    --seconds;
  }
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(rest));
}

namespace {

parley::v1::EventKind KindToProto(model::EventKind kind) {
  switch (kind) {
    case model::EventKind::kMessage:
      return parley::v1::EVENT_KIND_MESSAGE;
    case model::EventKind::kJoin:
      return parley::v1::EVENT_KIND_JOIN;
    case model::EventKind::kLeave:
      return parley::v1::EVENT_KIND_LEAVE;
    case model::EventKind::kGap:
      return parley::v1::EVENT_KIND_GAP;
    case model::EventKind::kEdit:
      return parley::v1::EVENT_KIND_EDIT;
    case model::EventKind::kDelete:
      return parley::v1::EVENT_KIND_DELETE;
    case model::EventKind::kPurge:
      return parley::v1::EVENT_KIND_PURGE;
    case model::EventKind::kMemberAdded:
      return parley::v1::EVENT_KIND_MEMBER_ADDED;
    case model::EventKind::kMemberRemoved:
      return parley::v1::EVENT_KIND_MEMBER_REMOVED;
    case model::EventKind::kTyping:
      return parley::v1::EVENT_KIND_TYPING;
  }
  return parley::v1::EVENT_KIND_UNSPECIFIED;
}

// A stable colour per sender name (seed 002): FNV-1a over the name picks one
// of a palette readable on light and dark backgrounds.
std::string ColorFor(absl::string_view name) {
  static constexpr const char* kPalette[] = {
      "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4",
      "#f032e6", "#469990", "#9a6324", "#800000", "#808000", "#000075"};
  uint32_t h = 2166136261u;
  for (unsigned char c : name) {
    h ^= c;
    h *= 16777619u;
  }
  return kPalette[h % (sizeof(kPalette) / sizeof(kPalette[0]))];
}

}  // namespace

void ToProto(const model::Event& event, parley::v1::Event* out) {
  out->set_kind(KindToProto(event.kind));
  out->set_room(event.room);
  out->set_room_id(event.room_id);
  out->set_sequence(event.sequence);
  out->set_id(event.id);
  out->set_sender(event.sender);
  out->set_sender_id(event.sender_id);
  out->set_recipient_id(event.recipient_id);
  out->set_recipient(event.recipient);
  out->set_text(event.text);
  if (event.kind != model::EventKind::kGap) {
    ToTimestamp(event.time, out->mutable_create_time());
    if (!event.sender.empty()) out->set_color(ColorFor(event.sender));
  }
  out->set_gap_first_sequence(event.gap_first);
  out->set_gap_last_sequence(event.gap_last);
  out->set_target_id(event.target_id);
  out->set_target_sequence(event.target_sequence);
  out->set_purge_through_sequence(event.purge_through);
  if (event.update_time != absl::InfinitePast()) {
    ToTimestamp(event.update_time, out->mutable_update_time());
  }
  out->set_deleted(event.deleted);
  if (event.kind == model::EventKind::kTyping) {
    ToTimestamp(event.typing_expire, out->mutable_typing_expire_time());
  }
  for (const model::MessageVersion& v : event.previous_versions) {
    auto* pv = out->add_previous_versions();
    pv->set_text(v.text);
    ToTimestamp(v.time, pv->mutable_create_time());
  }
}

void ToProto(const store::User& user, parley::v1::User* out) {
  out->set_id(user.id);
  out->set_username(user.username);
  out->set_display_name(user.display_name);
  ToTimestamp(user.create_time, out->mutable_create_time());
  ToTimestamp(user.update_time, out->mutable_update_time());
}

parley::v1::Visibility ToProto(store::Visibility v) {
  switch (v) {
    case store::Visibility::kPublic:
      return parley::v1::VISIBILITY_PUBLIC;
    case store::Visibility::kPrivate:
      return parley::v1::VISIBILITY_PRIVATE;
    case store::Visibility::kHidden:
      return parley::v1::VISIBILITY_HIDDEN;
  }
  return parley::v1::VISIBILITY_UNSPECIFIED;
}

void ToProto(const store::Room& room, parley::v1::Room* out) {
  out->set_id(room.id);
  out->set_name(room.name);
  out->set_description(room.description);
  out->set_visibility(ToProto(room.visibility));
  out->set_owner_id(room.owner_id);
  out->set_password_protected(!room.password_hash.empty());
  ToTimestamp(room.create_time, out->mutable_create_time());
  ToTimestamp(room.update_time, out->mutable_update_time());
}

void ToProto(const store::Member& member, parley::v1::Member* out) {
  out->set_room_id(member.room_id);
  out->set_role(member.role);
  ToTimestamp(member.join_time, out->mutable_join_time());
  parley::v1::User* user = out->mutable_user();
  user->set_id(member.user_id);
  user->set_username(member.username);
  user->set_display_name(member.display_name);
}

absl::Time StoredNow(const Deps& deps) {
  return absl::FromUnixMicros(absl::ToUnixMicros(deps.hub->clock()->Now()));
}

size_t CountChars(absl::string_view s) {
  size_t chars = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0) != 0x80) ++chars;  // not a continuation byte
  }
  return chars;
}

bool HasControlChars(absl::string_view s, bool allow_line_breaks) {
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = s[i];
    if (c < 0x20) {
      if (allow_line_breaks && (c == '\n' || c == '\r' || c == '\t')) continue;
      return true;
    }
    if (c == 0x7F) return true;
    // C1 controls U+0080..U+009F are encoded as C2 80..C2 9F.
    if (c == 0xC2 && i + 1 < s.size()) {
      const unsigned char next = s[i + 1];
      if (next >= 0x80 && next <= 0x9F) return true;
    }
  }
  return false;
}

std::string EncodePageToken(absl::string_view kind, absl::string_view key) {
  return absl::WebSafeBase64Escape(absl::StrCat(kind, ":", key));
}

absl::StatusOr<std::string> DecodePageToken(absl::string_view kind,
                                            absl::string_view token) {
  if (token.empty()) return std::string();
  std::string decoded;
  const std::string prefix = absl::StrCat(kind, ":");
  if (!absl::WebSafeBase64Unescape(token, &decoded) ||
      !absl::StartsWith(decoded, prefix) || decoded.size() == prefix.size()) {
    return InvalidInput("INVALID_PAGE_TOKEN", "page_token",
                        "page_token is not one this list returned");
  }
  return decoded.substr(prefix.size());
}

}  // namespace parley::api
