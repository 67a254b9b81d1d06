// How the stores keep an event's kind: parley.v1.EventKind's number, the
// same in SQLite and PostgreSQL. Stateless.
#ifndef PARLEY_SERVER_STORE_EVENT_CODES_H_
#define PARLEY_SERVER_STORE_EVENT_CODES_H_

#include <cstdint>
#include <optional>

#include "server/model/event.h"

namespace parley::store {

// An event kind as the events table stores it, and back; nullopt for a
// code no log entry has.
int64_t KindCode(model::EventKind kind);
std::optional<model::EventKind> KindFromCode(int64_t code);

}  // namespace parley::store

#endif  // PARLEY_SERVER_STORE_EVENT_CODES_H_
