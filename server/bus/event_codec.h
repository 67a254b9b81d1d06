// A committed event and a notice as the bus carries them
// (parley.internal.BusEvent, BusNotice), and back. Stateless.
#ifndef PARLEY_SERVER_BUS_EVENT_CODEC_H_
#define PARLEY_SERVER_BUS_EVENT_CODEC_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/bus/bus.h"
#include "server/model/event.h"

namespace parley::bus {

// `origin` names the publishing replica (see Bus: live events do not come
// back to it).
std::string EncodeEvent(const model::Event& event,
                        absl::string_view origin = "");
// INVALID_ARGUMENT for bytes that are not an event of a known kind with a
// log and a sequence number (0 for a live event: a typing notice, always,
// or a join or leave of presence).
// `origin`, when given, gets the publisher's name.
absl::StatusOr<std::shared_ptr<model::Event>> DecodeEvent(
    absl::string_view bytes, std::string* origin = nullptr);

std::string EncodeNotice(const Notice& notice);
// INVALID_ARGUMENT for bytes that are not a notice of a known kind.
absl::StatusOr<Notice> DecodeNotice(absl::string_view bytes);

}  // namespace parley::bus

#endif  // PARLEY_SERVER_BUS_EVENT_CODEC_H_
