// Durable state: the directory (users, rooms, memberships, tokens, read
// markers, idempotency keys) and the event log (every room's and inbox's
// ordered events), kept by one database so that a write that touches both
// (an append with its idempotency key, a room deleted with its log) commits
// at once.
//
// Writes (Directory::Submit, EventLog::Append) are asynchronous and
// group-committed: they only queue; threads the store owns apply many queued
// writes in one transaction (each in its own savepoint, so one failing write
// does not fail the others) and call every `done` after the commit, in
// submission order, holding no lock of the store's. Nothing is acknowledged
// before it is durable; a gRPC thread never waits for the database. Reads
// are synchronous and may run on any thread concurrently with the writer.
//
// Semantics every implementation shares, beyond the comments of
// directory.h, event_log.h and types.h:
//  - The lobby (model::kLobbyId, kLobbyName) exists from the start.
//  - Usernames and room names are unique ignoring ASCII case ("Alice" takes
//    "alice"); lookups by name ignore ASCII case too; listing orders by name
//    ignoring ASCII case.
//  - Times are kept to the microsecond.
//  - PutUser/PutRoom with create=false keep the stored create_time. An empty
//    id is INVALID_ARGUMENT (MISSING_ID), an unknown visibility
//    INVALID_ARGUMENT (INVALID_VISIBILITY); creating with an id in use is
//    ALREADY_EXISTS (USER_EXISTS / ROOM_EXISTS).
//  - Append refuses: a null event, a gap or typing event, an empty log, a
//    nonzero sequence (INVALID_ARGUMENT); a log whose room (or, for
//    model::InboxLog, user) does not exist (NOT_FOUND, ROOM_NOT_FOUND /
//    USER_NOT_FOUND); an event id already used (ALREADY_EXISTS,
//    EVENT_EXISTS). A refused append takes no number.
//  - edit/delete find the target by target_id among the log's messages; a
//    missing target, or editing a tombstone, is NOT_FOUND (MESSAGE_NOT_FOUND)
//    and nothing is appended. Deleting a tombstone again is allowed.
//  - Deleted text is really gone: delete and purge also drop the message's
//    earlier versions and clear the text of the edit events that targeted it
//    (the edit events keep their place in the log).
//  - DeleteRoom of the lobby is refused (FAILED_PRECONDITION,
//    LOBBY_PROTECTED). DeleteUser also drops the user's inbox log,
//    memberships and read markers; rooms the user owned stay (with their
//    owner_id). DeleteMember of a non-member is NOT_FOUND
//    (MEMBER_NOT_FOUND). PutMember and PutRoom with an owner need the room
//    and user to exist (ROOM_NOT_FOUND / USER_NOT_FOUND).
//
// Implementations: SqliteStore (embedded, the default), PostgresStore
// (shared by several servers), MemoryStore (tests), and ForwardingStore
// underneath wrappers such as CachedStore. Every one passes the conformance
// suite in tests/server/store/. Thread-safe.
#ifndef PARLEY_SERVER_STORE_STORE_H_
#define PARLEY_SERVER_STORE_STORE_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "server/model/ids.h"
#include "server/store/directory.h"
#include "server/store/event_log.h"
#include "server/store/types.h"

namespace parley::store {

class Store : public Directory, public EventLog {
 public:
  // Stops accepting writes, commits what is queued (running its callbacks)
  // and stops the store's threads. A write after Close fails with
  // UNAVAILABLE (reason SHUTTING_DOWN). Idempotent; must not be called from
  // a `done` callback. Implementations' destructors call it.
  virtual void Close() = 0;

  // The writer's counters (transactions, batches, commit and write waits).
  virtual StoreStats stats() const = 0;
};

// Forwards every call to another store (not owned), so that a wrapper
// overrides only what it changes (like leveldb's EnvWrapper).
class ForwardingStore : public Store {
 public:
  explicit ForwardingStore(Store* target) : target_(target) {}
  Store* target() const { return target_; }

  void Submit(DirectoryWrite write, WriteDone done) override {
    target_->Submit(std::move(write), std::move(done));
  }
  void Append(AppendEvent append, WriteDone done) override {
    target_->Append(std::move(append), std::move(done));
  }
  void Close() override { target_->Close(); }
  StoreStats stats() const override { return target_->stats(); }

  absl::StatusOr<User> GetUser(absl::string_view id) override {
    if (absl::Status s = BeforeForwardedRead(); !s.ok()) return s;
    return target_->GetUser(id);
  }
  absl::StatusOr<User> GetUserByName(absl::string_view username) override {
    if (absl::Status s = BeforeForwardedRead(); !s.ok()) return s;
    return target_->GetUserByName(username);
  }
  absl::StatusOr<std::vector<User>> ListUsers(absl::string_view after_username,
                                              size_t limit) override {
    if (absl::Status s = BeforeForwardedRead(); !s.ok()) return s;
    return target_->ListUsers(after_username, limit);
  }
  absl::StatusOr<Room> GetRoom(absl::string_view id) override {
    if (absl::Status s = BeforeForwardedRead(); !s.ok()) return s;
    return target_->GetRoom(id);
  }
  absl::StatusOr<Room> GetRoomByName(absl::string_view name) override {
    if (absl::Status s = BeforeForwardedRead(); !s.ok()) return s;
    return target_->GetRoomByName(name);
  }
  absl::StatusOr<std::vector<Room>> ListRooms(absl::string_view viewer_id,
                                              absl::string_view after_name,
                                              size_t limit) override {
    if (absl::Status s = BeforeForwardedRead(); !s.ok()) return s;
    return target_->ListRooms(viewer_id, after_name, limit);
  }
  absl::StatusOr<std::optional<Member>> GetMember(
      absl::string_view room_id, absl::string_view user_id) override {
    if (absl::Status s = BeforeForwardedRead(); !s.ok()) return s;
    return target_->GetMember(room_id, user_id);
  }
  absl::StatusOr<std::vector<Member>> ListMembers(
      absl::string_view room_id) override {
    if (absl::Status s = BeforeForwardedRead(); !s.ok()) return s;
    return target_->ListMembers(room_id);
  }
  absl::StatusOr<size_t> CountMembers(absl::string_view room_id) override {
    if (absl::Status s = BeforeForwardedRead(); !s.ok()) return s;
    return target_->CountMembers(room_id);
  }
  absl::StatusOr<std::optional<IdempotentSend>> FindIdempotentSend(
      absl::string_view scope, absl::string_view key,
      absl::Time not_before) override {
    if (absl::Status s = BeforeForwardedRead(); !s.ok()) return s;
    return target_->FindIdempotentSend(scope, key, not_before);
  }
  absl::StatusOr<ReadState> GetReadState(absl::string_view user_id,
                                         absl::string_view room_id) override {
    if (absl::Status s = BeforeForwardedRead(); !s.ok()) return s;
    return target_->GetReadState(user_id, room_id);
  }
  absl::StatusOr<std::vector<std::string>> ListRevokedTokens() override {
    if (absl::Status s = BeforeForwardedRead(); !s.ok()) return s;
    return target_->ListRevokedTokens();
  }

  absl::StatusOr<uint64_t> LastSequence(absl::string_view log) override {
    if (absl::Status s = BeforeForwardedRead(); !s.ok()) return s;
    return target_->LastSequence(log);
  }
  absl::StatusOr<std::vector<model::EventPtr>> ReadAfter(
      absl::string_view log, uint64_t after, size_t limit) override {
    if (absl::Status s = BeforeForwardedRead(); !s.ok()) return s;
    return target_->ReadAfter(log, after, limit);
  }
  absl::StatusOr<PageResult> ListMessages(absl::string_view log,
                                          const Page& page) override {
    if (absl::Status s = BeforeForwardedRead(); !s.ok()) return s;
    return target_->ListMessages(log, page);
  }
  absl::StatusOr<model::EventPtr> GetMessage(absl::string_view log,
                                             absl::string_view id) override {
    if (absl::Status s = BeforeForwardedRead(); !s.ok()) return s;
    return target_->GetMessage(log, id);
  }
  absl::StatusOr<std::vector<std::string>> ListPosters(
      absl::string_view log) override {
    if (absl::Status s = BeforeForwardedRead(); !s.ok()) return s;
    return target_->ListPosters(log);
  }

 protected:
  // Called before each read is forwarded; an error is answered instead.
  // CachedStore refuses in a MemoryOnlyScope (memory_only.h).
  virtual absl::Status BeforeForwardedRead() const { return absl::OkStatus(); }

 private:
  Store* const target_;
};

}  // namespace parley::store

#endif  // PARLEY_SERVER_STORE_STORE_H_
