#include "server/store/event_row.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/store/errors.h"
#include "server/store/event_codes.h"

namespace parley::store {
namespace {

uint64_t Unsigned(int64_t n) { return static_cast<uint64_t>(std::max<int64_t>(0, n)); }

}  // namespace

absl::StatusOr<std::shared_ptr<model::Event>> DecodeEventRow(EventRow row) {
  const std::optional<model::EventKind> kind = KindFromCode(row.kind);
  if (!kind.has_value()) {
    return StoreFailed(absl::StrCat("unknown event kind ", row.kind));
  }
  auto event = std::make_shared<model::Event>();
  event->kind = *kind;
  event->log = std::move(row.log);
  event->sequence = Unsigned(row.sequence);
  event->id = std::move(row.id);
  event->room_id = std::move(row.room_id);
  event->room = std::move(row.room);
  event->sender = std::move(row.sender);
  event->sender_id = std::move(row.sender_id);
  event->recipient_id = std::move(row.recipient_id);
  event->recipient = std::move(row.recipient);
  event->text = std::move(row.text);
  event->time = row.time;
  event->target_id = std::move(row.target_id);
  event->target_sequence = Unsigned(row.target_sequence);
  event->purge_through = Unsigned(row.purge_through);
  event->update_time = row.update_time;
  event->deleted = row.deleted;
  return event;
}

}  // namespace parley::store
