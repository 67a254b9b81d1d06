// A stored row of the events table (PARLEY_EVENT_COLUMNS) as the SQL stores
// read it, and the event it holds. SqliteStore and PostgresStore fill an
// EventRow from their columns and decode it here, so both decode alike.
// Stateless.
#ifndef PARLEY_SERVER_STORE_EVENT_ROW_H_
#define PARLEY_SERVER_STORE_EVENT_ROW_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/model/event.h"

namespace parley::store {

// The columns in PARLEY_EVENT_COLUMNS' order; NULL reads as "" or 0.
struct EventRow {
  std::string log;
  int64_t sequence = 0;
  int64_t kind = 0;  // event_codes.h
  std::string id;
  std::string room_id;
  std::string room;
  std::string sender;
  std::string sender_id;
  std::string recipient_id;
  std::string recipient;
  std::string text;
  absl::Time time;
  std::string target_id;
  int64_t target_sequence = 0;
  int64_t purge_through = 0;
  absl::Time update_time;
  bool deleted = false;
};

// The event of `row`, without its previous versions (the stores read those
// from message_versions). UNAVAILABLE (STORE_FAILED) for a kind no log
// entry has; a negative sequence number reads as 0.
absl::StatusOr<std::shared_ptr<model::Event>> DecodeEventRow(EventRow row);

}  // namespace parley::store

#endif  // PARLEY_SERVER_STORE_EVENT_ROW_H_
