// A Store that keeps users, rooms and memberships in memory in front of
// another Store, so the reads every call makes (the token's user, the room,
// the caller's membership) do not reach the database each time. Everything
// it does not cache is forwarded (ForwardingStore).
//
// Consistency: every write that can change a cached row (anything but
// appending events, revoking tokens, read markers and idempotency-key
// pruning) empties the whole cache once it is committed and before its
// callback runs, so a caller that saw the write acknowledged never reads the
// old row. A read that started before such a write may have fetched the old
// row; it is not cached when a write emptied the cache meanwhile (the cache
// has a generation number, and a read only caches what it fetched under the
// generation it started with). Those writes (accounts, rooms, members) are
// rare next to posts. With several servers on one database, each one's
// changes reach the others' caches through set_on_invalidated (which tells
// them) and Clear (which they call). Thread-safe. The inner store is owned.
//
// In a MemoryOnlyScope (memory_only.h) it answers only from memory: a read
// it would pass to the inner store is refused (MemoryOnlyScope::Refuse).
#ifndef PARLEY_SERVER_STORE_CACHED_STORE_H_
#define PARLEY_SERVER_STORE_CACHED_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "server/common/mutex.h"
#include "server/store/store.h"

namespace parley::store {

class CachedStore : public ForwardingStore {
 public:
  // Each of the three caches holds at most `max_entries`; a full one is
  // emptied (the working set of a busy server refills it at once).
  CachedStore(std::unique_ptr<Store> inner, size_t max_entries = 100000);
  // Closes the inner store first: its last callbacks still use the cache.
  ~CachedStore() override { inner_->Close(); }

  // Appends never change a cached row: they go straight through
  // (ForwardingStore::Append).
  void Submit(DirectoryWrite write, WriteDone done) override;

  absl::StatusOr<User> GetUser(absl::string_view id) override;
  absl::StatusOr<User> GetUserByName(absl::string_view username) override;
  absl::StatusOr<Room> GetRoom(absl::string_view id) override;
  absl::StatusOr<Room> GetRoomByName(absl::string_view name) override;
  absl::StatusOr<std::optional<Member>> GetMember(
      absl::string_view room_id, absl::string_view user_id) override;

  // Called after each committed write that emptied the cache, before the
  // write's callback; set once, before the first write.
  void set_on_invalidated(std::function<void()> on_invalidated) {
    on_invalidated_ = std::move(on_invalidated);
  }
  // Forgets everything cached (another server changed the directory).
  void Clear();

  // Reads answered from memory, and reads that went to the inner store.
  uint64_t hits() const;
  uint64_t misses() const;

 protected:
  // Refuses in a MemoryOnlyScope.
  absl::Status BeforeForwardedRead() const override;

 private:
  // Whether committing `write` can change a cached row.
  static bool Invalidates(const DirectoryWrite& write);

  // Looks `key` up in `map`, else reads it with `read` and caches the result
  // unless the cache was emptied meanwhile.
  template <class V, class Read>
  absl::StatusOr<V> Through(absl::flat_hash_map<std::string, V>& map,
                            const std::string& key, Read read);

  const std::unique_ptr<Store> inner_;
  const size_t max_entries_;
  std::function<void()> on_invalidated_;
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
