// Random (version 4) UUIDs, the ids of users, rooms, events and tokens.
#ifndef PARLEY_SERVER_COMMON_UUID_H_
#define PARLEY_SERVER_COMMON_UUID_H_

#include <string>

namespace parley {

// A fresh random UUID, lower case, e.g. "1b4e28ba-2fa1-4d2b-883f-0016d3cca427".
std::string NewUuid();

}  // namespace parley

#endif  // PARLEY_SERVER_COMMON_UUID_H_
