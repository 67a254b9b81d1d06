// Ids every layer knows: the lobby, and the name of a user's inbox log.
#ifndef PARLEY_SERVER_MODEL_IDS_H_
#define PARLEY_SERVER_MODEL_IDS_H_

#include <string>

#include "absl/strings/string_view.h"

namespace parley::model {

// The lobby (the central room of the plain join/send/leave API) is a public
// room that always exists: every store's first migration creates it with
// this id and name.
inline constexpr absl::string_view kLobbyId =
    "00000000-0000-4000-8000-000000000000";
inline constexpr absl::string_view kLobbyName = "lobby";

// The log a user's direct messages are appended to: "dm:<user_id>".
std::string InboxLog(absl::string_view user_id);

}  // namespace parley::model

#endif  // PARLEY_SERVER_MODEL_IDS_H_
