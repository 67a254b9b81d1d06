// A Store that keeps everything in memory, with SqliteStore's semantics
// (store.h): for tests of the layers above the store, which need a store
// but not a database file, and as the conformance suite's second
// implementation. Nothing survives the object.
//
// Writes go through a WriteQueue like the real stores': they only queue,
// and a thread of the store's applies each batch as one transaction (all
// its writes become visible to reads at once, each write whole or not at
// all), then calls every `done` in submission order on that thread, never
// inside Submit or Append while the store is open. Reads may run on any
// thread. Thread-safe.
#ifndef PARLEY_SERVER_STORE_MEMORY_STORE_H_
#define PARLEY_SERVER_STORE_MEMORY_STORE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/common/clock.h"
#include "server/common/mutex.h"
#include "server/model/event.h"
#include "server/store/store.h"
#include "server/store/write_queue.h"

namespace parley::store {

struct MemoryOptions {
  // The most writes one transaction takes from the queue (at least 1).
  size_t max_batch = 1024;
  // The time source of StoreStats' commit and write-wait times.
  Clock* clock = Clock::Real();
};

class MemoryStore : public Store {
 public:
  // Holds the lobby, and starts the writer thread.
  explicit MemoryStore(MemoryOptions options = {});
  MemoryStore(const MemoryStore&) = delete;
  MemoryStore& operator=(const MemoryStore&) = delete;
  ~MemoryStore() override;

  void Submit(DirectoryWrite write, WriteDone done) override;
  void Append(AppendEvent append, WriteDone done) override;
  void Close() override;
  StoreStats stats() const override;

  absl::StatusOr<User> GetUser(absl::string_view id) override;
  absl::StatusOr<User> GetUserByName(absl::string_view username) override;
  absl::StatusOr<std::vector<User>> ListUsers(absl::string_view after_username,
                                              size_t limit) override;
  absl::StatusOr<Room> GetRoom(absl::string_view id) override;
  absl::StatusOr<Room> GetRoomByName(absl::string_view name) override;
  absl::StatusOr<std::vector<Room>> ListRooms(absl::string_view viewer_id,
                                              absl::string_view after_name,
                                              size_t limit) override;
  absl::StatusOr<std::optional<Member>> GetMember(
      absl::string_view room_id, absl::string_view user_id) override;
  absl::StatusOr<std::vector<Member>> ListMembers(
      absl::string_view room_id) override;
  absl::StatusOr<size_t> CountMembers(absl::string_view room_id) override;
  absl::StatusOr<std::optional<IdempotentSend>> FindIdempotentSend(
      absl::string_view scope, absl::string_view key,
      absl::Time not_before) override;
  absl::StatusOr<ReadState> GetReadState(absl::string_view user_id,
                                         absl::string_view room_id) override;
  absl::StatusOr<std::vector<std::string>> ListRevokedTokens() override;

  absl::StatusOr<uint64_t> LastSequence(absl::string_view log) override;
  absl::StatusOr<std::vector<model::EventPtr>> ReadAfter(absl::string_view log,
                                                         uint64_t after,
                                                         size_t limit) override;
  absl::StatusOr<PageResult> ListMessages(absl::string_view log,
                                          const Page& page) override;
  absl::StatusOr<model::EventPtr> GetMessage(absl::string_view log,
                                             absl::string_view id) override;
  absl::StatusOr<std::vector<std::string>> ListPosters(
      absl::string_view log) override;

 private:
  // An event as kept: the log entry's fields, and a message's earlier texts
  // by the sequence number of the edit that replaced each.
  struct Stored {
    model::Event event;  // no versions, idempotency key or wire
    std::map<uint64_t, model::MessageVersion> versions;
  };
  using Log = std::map<uint64_t, Stored>;  // by sequence number
  struct MemberRow {
    std::string role;
    absl::Time join_time;
  };
  // Everything the store holds.
  struct State {
    std::map<std::string, User> users;              // by id
    std::map<std::string, std::string> user_names;  // lowercased -> id
    std::map<std::string, Room> rooms;              // by id
    std::map<std::string, std::string> room_names;  // lowercased -> id
    // (room id, user id)
    std::map<std::pair<std::string, std::string>, MemberRow> members;
    std::map<std::string, Log, std::less<>> logs;
    // Every event id in a log: (log, sequence).
    std::map<std::string, std::pair<std::string, uint64_t>> event_ids;
    std::map<std::string, absl::Time> revoked;  // jti -> expire time
    // (scope, key)
    std::map<std::pair<std::string, std::string>, IdempotentSend> keys;
    // (user id, room id) -> sequence
    std::map<std::pair<std::string, std::string>, uint64_t> markers;
  };

  // Runs one batch under one lock, each write whole or not at all: it
  // checks everything that can refuse it before it changes anything
  // (WriteQueue::Commit).
  std::vector<absl::StatusOr<int64_t>> Commit(
      std::vector<WriteQueue::Pending>& batch);

  static absl::StatusOr<int64_t> Apply(State& s, const PutUser& w);
  static absl::StatusOr<int64_t> Apply(State& s, const DeleteUser& w);
  static absl::StatusOr<int64_t> Apply(State& s, const PutRoom& w);
  static absl::StatusOr<int64_t> Apply(State& s, const DeleteRoom& w);
  static absl::StatusOr<int64_t> Apply(State& s, const PutMember& w);
  static absl::StatusOr<int64_t> Apply(State& s, const DeleteMember& w);
  static absl::StatusOr<int64_t> Apply(State& s, const RevokeToken& w);
  static absl::StatusOr<int64_t> Apply(State& s, const PutReadMarker& w);
  static absl::StatusOr<int64_t> Apply(State& s, const PruneIdempotencyKeys& w);
  static absl::StatusOr<int64_t> Apply(State& s, const AppendEvent& w);

  // Drops a log and its events' ids.
  static void DropLog(State& s, const std::string& log);
  // Forgets the id of an event its log no longer holds.
  static void Forget(State& s, const Stored& stored);
  static uint64_t LastOf(const State& s, absl::string_view log);
  // An event as reads return it, a message's earlier versions filled.
  static model::EventPtr Read(const Stored& stored);
  // Member rows joined with their users.
  static Member MemberOf(const State& s, const std::string& room_id,
                         const std::string& user_id, const MemberRow& row);

  mutable Mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_);
  WriteQueue queue_;
};

}  // namespace parley::store

#endif  // PARLEY_SERVER_STORE_MEMORY_STORE_H_
