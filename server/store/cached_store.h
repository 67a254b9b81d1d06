// A Store that keeps users, rooms and memberships in memory in front of
// another Store, so the reads every call makes (the token's user, the room,
// the caller's membership) do not reach SQLite each time.
//
// Consistency: every write that can change a cached row (anything but
// appending events, revoking tokens, read markers and idempotency-key
// pruning) empties the whole cache once it is committed and before its
// callback runs, so a caller that saw the write acknowledged never reads the
// old row. A read that started before such a write may have fetched the old
// row; it is not cached when a write emptied the cache meanwhile (the cache
// has a generation number, and a read only caches what it fetched under the
// generation it started with). Those writes (accounts, rooms, members) are
// rare next to posts. Thread-safe. The inner store is owned.
#ifndef PARLEY_SERVER_STORE_CACHED_STORE_H_
#define PARLEY_SERVER_STORE_CACHED_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "server/common/mutex.h"
#include "server/store/store.h"

namespace parley::store {

class CachedStore : public Store {
 public:
  // Each of the three caches holds at most `max_entries`; a full one is
  // emptied (the working set of a busy server refills it at once).
  CachedStore(std::unique_ptr<Store> inner, size_t max_entries = 100000);
  // Closes the inner store first: its last callbacks still use the cache.
  ~CachedStore() override { inner_->Close(); }

  void Submit(Write write, WriteDone done) override;
  void Close() override { inner_->Close(); }

  absl::StatusOr<User> GetUser(absl::string_view id) override;
  absl::StatusOr<User> GetUserByName(absl::string_view username) override;
  absl::StatusOr<Room> GetRoom(absl::string_view id) override;
  absl::StatusOr<Room> GetRoomByName(absl::string_view name) override;
  absl::StatusOr<std::optional<Member>> GetMember(
      absl::string_view room_id, absl::string_view user_id) override;

  // Not cached: passed through.
  absl::StatusOr<std::vector<User>> ListUsers(absl::string_view after_username,
                                              size_t limit) override {
    return inner_->ListUsers(after_username, limit);
  }
  absl::StatusOr<std::vector<Room>> ListRooms(absl::string_view viewer_id,
                                              absl::string_view after_name,
                                              size_t limit) override {
    return inner_->ListRooms(viewer_id, after_name, limit);
  }
  absl::StatusOr<std::vector<Member>> ListMembers(
      absl::string_view room_id) override {
    return inner_->ListMembers(room_id);
  }
  absl::StatusOr<size_t> CountMembers(absl::string_view room_id) override {
    return inner_->CountMembers(room_id);
  }
  absl::StatusOr<uint64_t> LastSequence(absl::string_view log) override {
    return inner_->LastSequence(log);
  }
  absl::StatusOr<std::vector<model::EventPtr>> ReadAfter(
      absl::string_view log, uint64_t after, size_t limit) override {
    return inner_->ReadAfter(log, after, limit);
  }
  absl::StatusOr<PageResult> ListMessages(absl::string_view log,
                                          const Page& page) override {
    return inner_->ListMessages(log, page);
  }
  absl::StatusOr<model::EventPtr> GetMessage(absl::string_view log,
                                             absl::string_view id) override {
    return inner_->GetMessage(log, id);
  }
  absl::StatusOr<std::vector<std::string>> ListPosters(
      absl::string_view log) override {
    return inner_->ListPosters(log);
  }
  absl::StatusOr<std::optional<IdempotentSend>> FindIdempotentSend(
      absl::string_view scope, absl::string_view key,
      absl::Time not_before) override {
    return inner_->FindIdempotentSend(scope, key, not_before);
  }
  absl::StatusOr<ReadState> GetReadState(absl::string_view user_id,
                                         absl::string_view room_id) override {
    return inner_->GetReadState(user_id, room_id);
  }
  absl::StatusOr<std::vector<std::string>> ListRevokedTokens() override {
    return inner_->ListRevokedTokens();
  }

  Store* inner() { return inner_.get(); }
  // Reads answered from memory, and reads that went to the inner store.
  uint64_t hits() const;
  uint64_t misses() const;

 private:
  // Whether committing `write` can change a cached row.
  static bool Invalidates(const Write& write);
  void Clear();

  // Looks `key` up in `map`, else reads it with `read` and caches the result
  // unless the cache was emptied meanwhile.
  template <class V, class Read>
  absl::StatusOr<V> Through(absl::flat_hash_map<std::string, V>& map,
                            const std::string& key, Read read);

  const std::unique_ptr<Store> inner_;
  const size_t max_entries_;
  mutable Mutex mu_;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t hits_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t misses_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, User> users_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, User> users_by_name_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Room> rooms_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Room> rooms_by_name_ ABSL_GUARDED_BY(mu_);
  // Key: room id, '/', user id. nullopt: not a member.
  absl::flat_hash_map<std::string, std::optional<Member>> members_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace parley::store

#endif  // PARLEY_SERVER_STORE_CACHED_STORE_H_
