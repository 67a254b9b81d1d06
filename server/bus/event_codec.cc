#include "server/bus/event_codec.h"

#include <memory>
#include <optional>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "parley/internal/bus.pb.h"
#include "server/store/event_codes.h"

namespace parley::bus {

std::string EncodeEvent(const model::Event& e, absl::string_view origin) {
  internal::BusEvent m;
  m.set_kind(static_cast<int32_t>(store::KindCode(e.kind)));
  m.set_log(e.log);
  m.set_room_id(e.room_id);
  m.set_room(e.room);
  m.set_sequence(e.sequence);
  m.set_id(e.id);
  m.set_sender(e.sender);
  m.set_sender_id(e.sender_id);
  m.set_recipient_id(e.recipient_id);
  m.set_recipient(e.recipient);
  m.set_text(e.text);
  m.set_time_us(absl::ToUnixMicros(e.time));
  m.set_target_id(e.target_id);
  m.set_target_sequence(e.target_sequence);
  m.set_purge_through(e.purge_through);
  m.set_deleted(e.deleted);
  m.set_origin(std::string(origin));
  if (e.kind == model::EventKind::kTyping) {
    m.set_typing_expire_us(absl::ToUnixMicros(e.typing_expire));
  }
  return m.SerializeAsString();
}

absl::StatusOr<std::shared_ptr<model::Event>> DecodeEvent(
    absl::string_view bytes, std::string* origin) {
  internal::BusEvent m;
  if (!m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::InvalidArgumentError("the bus carried bytes that are not "
                                      "an event");
  }
  // Typing notices are live only: never stored, so no store code and no
  // sequence number. Joins and leaves may be live too (presence); every
  // other event has a sequence number.
  const bool typing =
      m.kind() == store::KindCode(model::EventKind::kTyping);
  const std::optional<model::EventKind> kind =
      typing ? model::EventKind::kTyping : store::KindFromCode(m.kind());
  const bool live = m.sequence() == 0;
  const bool may_be_live = typing || kind == model::EventKind::kJoin ||
                           kind == model::EventKind::kLeave;
  if (!kind.has_value() || m.log().empty() || (typing && !live) ||
      (live && !may_be_live)) {
    return absl::InvalidArgumentError(
        "the bus carried an event without a known kind, log or sequence");
  }
  auto e = std::make_shared<model::Event>();
  e->kind = *kind;
  e->log = m.log();
  e->room_id = m.room_id();
  e->room = m.room();
  e->sequence = m.sequence();
  e->id = m.id();
  e->sender = m.sender();
  e->sender_id = m.sender_id();
  e->recipient_id = m.recipient_id();
  e->recipient = m.recipient();
  e->text = m.text();
  e->time = absl::FromUnixMicros(m.time_us());
  e->target_id = m.target_id();
  e->target_sequence = m.target_sequence();
  e->purge_through = m.purge_through();
  if (typing) e->typing_expire = absl::FromUnixMicros(m.typing_expire_us());
  if (origin != nullptr) *origin = m.origin();
  e->deleted = m.deleted();
  return e;
}

std::string EncodeNotice(const Notice& notice) {
  internal::BusNotice m;
  m.set_op(static_cast<internal::BusNotice::Op>(notice.op));
  m.set_log(notice.log);
  m.set_user_id(notice.user_id);
  for (const std::string& id : notice.keep) m.add_keep(id);
  m.set_reason(notice.reason);
  m.set_token_id(notice.token_id);
  return m.SerializeAsString();
}

absl::StatusOr<Notice> DecodeNotice(absl::string_view bytes) {
  internal::BusNotice m;
  if (!m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())) ||
      m.op() < internal::BusNotice::CLOSE ||
      m.op() > internal::BusNotice::END_SESSION) {
    return absl::InvalidArgumentError("the bus carried bytes that are not "
                                      "a notice");
  }
  Notice notice;
  notice.op = static_cast<Notice::Op>(m.op());
  notice.log = m.log();
  notice.user_id = m.user_id();
  notice.keep.assign(m.keep().begin(), m.keep().end());
  notice.reason = m.reason();
  notice.token_id = m.token_id();
  return notice;
}

}  // namespace parley::bus
