// UUIDs: the ids of users, rooms, events and tokens.
#ifndef PARLEY_SERVER_COMMON_UUID_H_
#define PARLEY_SERVER_COMMON_UUID_H_

#include <string>

#include "absl/time/time.h"

namespace parley {

// A fresh random (version 4) UUID, lower case, e.g.
// "1b4e28ba-2fa1-4d2b-883f-0016d3cca427". For users, rooms and tokens: it
// tells nothing about when it was made.
std::string NewUuid();

// A fresh time-ordered (version 7, RFC 9562) UUID: the first 48 bits are
// `now` in Unix milliseconds, the rest random. For events, whose time is
// public anyway: ids made later sort later, so the store's index on event
// ids grows at its right edge instead of at a random page per insert (fewer
// pages dirtied per commit).
std::string NewTimeOrderedUuid(absl::Time now);

}  // namespace parley

#endif  // PARLEY_SERVER_COMMON_UUID_H_
