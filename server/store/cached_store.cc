#include "server/store/cached_store.h"

#include <utility>
#include <variant>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/store/memory_only.h"

namespace parley::store {

CachedStore::CachedStore(std::unique_ptr<Store> inner, size_t max_entries)
    : ForwardingStore(inner.get()),
      inner_(std::move(inner)),
      max_entries_(max_entries) {}

bool CachedStore::Invalidates(const DirectoryWrite& write) {
  return !(std::holds_alternative<RevokeToken>(write) ||
           std::holds_alternative<PutReadMarker>(write) ||
           std::holds_alternative<PruneIdempotencyKeys>(write));
}

void CachedStore::Clear() {
  MutexLock lock(&mu_);
  ++generation_;
  users_.clear();
  users_by_name_.clear();
  rooms_.clear();
  rooms_by_name_.clear();
  members_.clear();
}

void CachedStore::Submit(DirectoryWrite write, WriteDone done) {
  if (!Invalidates(write)) {
    inner_->Submit(std::move(write), std::move(done));
    return;
  }
  // Emptied after the commit (a read in between refetches the new row) and
  // before the caller hears of it. A failed write empties it too: cheap, and
  // a partly applied batch cannot leave a stale row behind.
  inner_->Submit(std::move(write),
                 [this, done = std::move(done)](
                     absl::StatusOr<int64_t> result) mutable {
                   Clear();
                   if (on_invalidated_) on_invalidated_();
                   done(std::move(result));
                 });
}

template <class V, class Read>
absl::StatusOr<V> CachedStore::Through(
    absl::flat_hash_map<std::string, V>& map, const std::string& key,
    Read read) {
  uint64_t generation;
  {
    MutexLock lock(&mu_);
    auto it = map.find(key);
    if (it != map.end()) {
      ++hits_;
      return it->second;
    }
    if (absl::Status s = MemoryOnlyScope::Refuse(); !s.ok()) return s;
    ++misses_;
    generation = generation_;
  }
  absl::StatusOr<V> value = read();
  if (!value.ok()) return value;  // errors and NOT_FOUND are not cached
  MutexLock lock(&mu_);
  if (generation_ == generation) {
    if (map.size() >= max_entries_) map.clear();
    map.insert_or_assign(key, *value);
  }
  return value;
}

absl::StatusOr<User> CachedStore::GetUser(absl::string_view id) {
  return Through(users_, std::string(id),
                 [&] { return inner_->GetUser(id); });
}

absl::StatusOr<User> CachedStore::GetUserByName(absl::string_view username) {
  // Usernames compare ignoring ASCII case, as the store does.
  return Through(users_by_name_, absl::AsciiStrToLower(username),
                 [&] { return inner_->GetUserByName(username); });
}

absl::StatusOr<Room> CachedStore::GetRoom(absl::string_view id) {
  return Through(rooms_, std::string(id),
                 [&] { return inner_->GetRoom(id); });
}

absl::StatusOr<Room> CachedStore::GetRoomByName(absl::string_view name) {
  return Through(rooms_by_name_, absl::AsciiStrToLower(name),
                 [&] { return inner_->GetRoomByName(name); });
}

absl::StatusOr<std::optional<Member>> CachedStore::GetMember(
    absl::string_view room_id, absl::string_view user_id) {
  return Through(members_, absl::StrCat(room_id, "/", user_id),
                 [&] { return inner_->GetMember(room_id, user_id); });
}

absl::Status CachedStore::BeforeForwardedRead() const {
  return MemoryOnlyScope::Refuse();
}

uint64_t CachedStore::hits() const {
  MutexLock lock(&mu_);
  return hits_;
}

uint64_t CachedStore::misses() const {
  MutexLock lock(&mu_);
  return misses_;
}

}  // namespace parley::store
