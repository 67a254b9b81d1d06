#include "server/store/event_codes.h"

namespace parley::store {
namespace {

// The stores' SQL spells 1 (message) and 5 (edit) literally.
constexpr int64_t kMessageCode = 1;
constexpr int64_t kEditCode = 5;

}  // namespace

int64_t KindCode(model::EventKind kind) {
  switch (kind) {
    case model::EventKind::kMessage:
      return kMessageCode;
    case model::EventKind::kJoin:
      return 2;
    case model::EventKind::kLeave:
      return 3;
    case model::EventKind::kGap:
      return 4;
    case model::EventKind::kEdit:
      return kEditCode;
    case model::EventKind::kDelete:
      return 6;
    case model::EventKind::kPurge:
      return 7;
    case model::EventKind::kMemberAdded:
      return 8;
    case model::EventKind::kMemberRemoved:
      return 9;
    case model::EventKind::kTyping:
      return 10;
  }
  return 0;
}

std::optional<model::EventKind> KindFromCode(int64_t code) {
  switch (code) {
    case 1:
      return model::EventKind::kMessage;
    case 2:
      return model::EventKind::kJoin;
    case 3:
      return model::EventKind::kLeave;
    case 5:
      return model::EventKind::kEdit;
    case 6:
      return model::EventKind::kDelete;
    case 7:
      return model::EventKind::kPurge;
    case 8:
      return model::EventKind::kMemberAdded;
    case 9:
      return model::EventKind::kMemberRemoved;
    default:
      return std::nullopt;
  }
}

}  // namespace parley::store
