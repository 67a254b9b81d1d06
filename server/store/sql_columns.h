// The columns of the SQL stores' tables (SQLite's and PostgreSQL's have the
// same), in the order their row readers and inserts use.
#ifndef PARLEY_SERVER_STORE_SQL_COLUMNS_H_
#define PARLEY_SERVER_STORE_SQL_COLUMNS_H_

#define PARLEY_USER_COLUMNS                                                 \
  "id, username, display_name, password_hash, create_time, update_time, " \
  "tokens_valid_after"
#define PARLEY_ROOM_COLUMNS                                                \
  "id, name, description, visibility, password_hash, owner_id, create_time, " \
  "update_time"
#define PARLEY_MEMBER_COLUMNS                                             \
  "m.room_id, m.user_id, m.role, m.join_time, u.username, u.display_name"
#define PARLEY_EVENT_COLUMNS                                                  \
  "log, sequence, kind, id, room_id, room, sender, sender_id, recipient_id, " \
  "recipient, text, time, target_id, target_sequence, purge_through, "       \
  "update_time, deleted"

#endif  // PARLEY_SERVER_STORE_SQL_COLUMNS_H_
