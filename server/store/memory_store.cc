#include "server/store/memory_store.h"

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <memory>
#include <utility>
#include <variant>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "server/model/ids.h"
#include "server/store/errors.h"
#include "server/store/paging.h"

namespace parley::store {
namespace {

// Times are kept to the microsecond, as every store keeps them.
absl::Time Micros(absl::Time t) {
  if (t == absl::InfinitePast() || t == absl::InfiniteFuture()) return t;
  return absl::FromUnixMicros(absl::ToUnixMicros(t));
}

// Names compare ignoring ASCII case.
std::string Folded(absl::string_view name) {
  return absl::AsciiStrToLower(name);
}

bool IsMessage(const model::Event& e) {
  return e.kind == model::EventKind::kMessage;
}

// Erases the entries of an ordered map whose key starts with or equals
// `first` in its first element (pair keys).
template <class Map>
void EraseFirst(Map& map, const std::string& first) {
  for (auto it = map.lower_bound({first, std::string()});
       it != map.end() && it->first.first == first;) {
    it = map.erase(it);
  }
}

// Erases the entries of a pair-keyed map whose second element is `second`.
template <class Map>
void EraseSecond(Map& map, const std::string& second) {
  for (auto it = map.begin(); it != map.end();) {
    it = it->first.second == second ? map.erase(it) : std::next(it);
  }
}

}  // namespace

MemoryStore::MemoryStore(MemoryOptions options)
    : queue_(options.max_batch, options.clock) {
  Room lobby;
  lobby.id = std::string(model::kLobbyId);
  lobby.name = std::string(model::kLobbyName);
  lobby.visibility = Visibility::kPublic;
  lobby.create_time = Micros(absl::Now());
  lobby.update_time = lobby.create_time;
  {
    MutexLock lock(&mu_);
    state_.room_names[Folded(lobby.name)] = lobby.id;
    state_.rooms[lobby.id] = std::move(lobby);
  }
  queue_.Start([this](std::vector<WriteQueue::Pending>& batch) {
    return Commit(batch);
  });
}

MemoryStore::~MemoryStore() { Close(); }

void MemoryStore::Submit(DirectoryWrite write, WriteDone done) {
  queue_.Enqueue(std::move(write), std::move(done));
}

void MemoryStore::Append(AppendEvent append, WriteDone done) {
  queue_.Enqueue(std::move(append), std::move(done));
}

void MemoryStore::Close() { queue_.Close(); }

StoreStats MemoryStore::stats() const { return queue_.stats(); }

std::vector<absl::StatusOr<int64_t>> MemoryStore::Commit(
    std::vector<WriteQueue::Pending>& batch) {
  std::vector<absl::StatusOr<int64_t>> results;
  results.reserve(batch.size());
  // One lock for the batch: reads see all of it or none of it. Each write
  // checks everything that can refuse it before it changes anything, so a
  // refused write leaves no trace.
  MutexLock lock(&mu_);
  for (WriteQueue::Pending& pending : batch) {
    if (pending.rejected) {
      results.push_back(0);  // the queue fails it
      continue;
    }
    if (auto* append = std::get_if<AppendEvent>(&pending.write)) {
      results.push_back(Apply(state_, *append));
    } else {
      results.push_back(std::visit(
          [this](const auto& w) -> absl::StatusOr<int64_t> {
            return Apply(state_, w);
          },
          std::get<DirectoryWrite>(pending.write)));
    }
  }
  return results;
}

// ---- Writes ----

absl::StatusOr<int64_t> MemoryStore::Apply(State& s, const PutUser& w) {
  if (absl::Status status = CheckPutUser(w); !status.ok()) return status;
  User user = w.user;
  user.create_time = Micros(user.create_time);
  user.update_time = Micros(user.update_time);
  user.tokens_valid_after = Micros(user.tokens_valid_after);
  const std::string name = Folded(user.username);
  auto named = s.user_names.find(name);
  auto existing = s.users.find(user.id);
  if (!w.create) {
    if (existing == s.users.end()) return UserNotFound();
    if (named != s.user_names.end() && named->second != user.id) {
      return UsernameTaken();
    }
    user.create_time = existing->second.create_time;
    s.user_names.erase(Folded(existing->second.username));
  } else {
    if (named != s.user_names.end()) return UsernameTaken();
    if (existing != s.users.end()) return UserIdTaken();
  }
  s.user_names[name] = user.id;
  s.users[user.id] = std::move(user);
  return 0;
}

absl::StatusOr<int64_t> MemoryStore::Apply(State& s, const DeleteUser& w) {
  auto it = s.users.find(w.id);
  if (it == s.users.end()) return UserNotFound();
  s.user_names.erase(Folded(it->second.username));
  s.users.erase(it);
  EraseSecond(s.members, w.id);
  EraseFirst(s.markers, w.id);
  DropLog(s, model::InboxLog(w.id));
  return 0;
}

absl::StatusOr<int64_t> MemoryStore::Apply(State& s, const PutRoom& w) {
  if (absl::Status status = CheckPutRoom(w); !status.ok()) return status;
  Room room = w.room;
  room.create_time = Micros(room.create_time);
  room.update_time = Micros(room.update_time);
  const std::string name = Folded(room.name);
  auto named = s.room_names.find(name);
  auto existing = s.rooms.find(room.id);
  if (!w.create) {
    if (existing == s.rooms.end()) return RoomNotFound();
    if (named != s.room_names.end() && named->second != room.id) {
      return RoomNameTaken();
    }
    room.create_time = existing->second.create_time;
    s.room_names.erase(Folded(existing->second.name));
  } else {
    if (!room.owner_id.empty() && s.users.count(room.owner_id) == 0) {
      return UserNotFound();
    }
    if (named != s.room_names.end()) return RoomNameTaken();
    if (existing != s.rooms.end()) return RoomIdTaken();
    if (!room.owner_id.empty()) {
      s.members[{room.id, room.owner_id}] =
          MemberRow{"owner", room.create_time};
    }
  }
  s.room_names[name] = room.id;
  s.rooms[room.id] = std::move(room);
  return 0;
}

absl::StatusOr<int64_t> MemoryStore::Apply(State& s, const DeleteRoom& w) {
  if (w.id == model::kLobbyId) return LobbyProtected();
  auto it = s.rooms.find(w.id);
  if (it == s.rooms.end()) return RoomNotFound();
  s.room_names.erase(Folded(it->second.name));
  s.rooms.erase(it);
  EraseFirst(s.members, w.id);
  EraseSecond(s.markers, w.id);
  DropLog(s, w.id);
  return 0;
}

absl::StatusOr<int64_t> MemoryStore::Apply(State& s, const PutMember& w) {
  const Member& member = w.member;
  if (s.rooms.count(member.room_id) == 0) return RoomNotFound();
  if (s.users.count(member.user_id) == 0) return UserNotFound();
  s.members[{member.room_id, member.user_id}] =
      MemberRow{member.role, Micros(member.join_time)};
  return 0;
}

absl::StatusOr<int64_t> MemoryStore::Apply(State& s, const DeleteMember& w) {
  if (s.members.erase({w.room_id, w.user_id}) == 0) return MemberNotFound();
  return 0;
}

absl::StatusOr<int64_t> MemoryStore::Apply(State& s, const RevokeToken& w) {
  const absl::Time expire = Micros(w.expire_time);
  auto [it, added] = s.revoked.try_emplace(w.jti, expire);
  if (!added) it->second = std::max(it->second, expire);
  return 0;
}

absl::StatusOr<int64_t> MemoryStore::Apply(State& s, const PutReadMarker& w) {
  // Like a row that refers to both: a missing user or room is the room's
  // absence to the caller.
  if (s.users.count(w.user_id) == 0 || s.rooms.count(w.room_id) == 0) {
    return RoomNotFound();
  }
  const uint64_t sequence = std::min(w.sequence, LastOf(s, w.room_id));
  auto [it, added] = s.markers.try_emplace({w.user_id, w.room_id}, sequence);
  if (!added) it->second = std::max(it->second, sequence);
  return static_cast<int64_t>(it->second);
}

absl::StatusOr<int64_t> MemoryStore::Apply(State& s,
                                           const PruneIdempotencyKeys& w) {
  const absl::Time before = Micros(w.before);
  int64_t pruned = 0;
  for (auto it = s.keys.begin(); it != s.keys.end();) {
    if (it->second.time < before) {
      it = s.keys.erase(it);
      ++pruned;
    } else {
      ++it;
    }
  }
  return pruned;
}

absl::StatusOr<int64_t> MemoryStore::Apply(State& s, const AppendEvent& w) {
  if (absl::Status status = CheckAppend(w); !status.ok()) return status;
  model::Event& e = *w.event;
  if (absl::StartsWith(e.log, "dm:")) {
    if (s.users.count(e.log.substr(3)) == 0) return UserNotFound();
  } else if (s.rooms.count(e.log) == 0) {
    return RoomNotFound();
  }
  Log& log = s.logs[e.log];
  const uint64_t sequence = LastOf(s, e.log) + 1;

  // The message an edit or delete targets, in this log.
  Stored* target = nullptr;
  if (e.kind == model::EventKind::kEdit ||
      e.kind == model::EventKind::kDelete) {
    auto id = s.event_ids.find(e.target_id);
    if (id != s.event_ids.end() && id->second.first == e.log) {
      Stored& found = log.at(id->second.second);
      if (IsMessage(found.event) &&
          !(e.kind == model::EventKind::kEdit && found.event.deleted)) {
        target = &found;
      }
    }
    if (target == nullptr) return MessageNotFound();
  }
  if (!e.id.empty() && s.event_ids.count(e.id) > 0) return EventIdTaken();
  if (!e.idempotency.key.empty()) {
    auto key = s.keys.find({e.idempotency.scope, e.idempotency.key});
    if (key != s.keys.end() && key->second.time >= e.idempotency.expired_before) {
      return IdempotencyKeyTaken();
    }
  }

  // Accepted: from here on nothing refuses it.
  e.sequence = sequence;
  Stored stored;
  stored.event = e;
  stored.event.time = Micros(e.time);
  stored.event.update_time = Micros(e.update_time);
  stored.event.previous_versions.clear();
  stored.event.idempotency = model::IdempotencyKey();
  stored.event.wire.clear();
  stored.event.gap_first = stored.event.gap_last = 0;
  stored.event.typing_expire = absl::Time();
  const model::Event& entry = stored.event;
  if (!entry.id.empty()) s.event_ids[entry.id] = {entry.log, sequence};

  int64_t purged = 0;
  // Clears the text of the log's edits of message `id`.
  auto clear_edits = [&log](const std::string& id) {
    for (auto& [seq, other] : log) {
      if (other.event.kind == model::EventKind::kEdit &&
          other.event.target_id == id) {
        other.event.text.clear();
      }
    }
  };
  switch (e.kind) {
    case model::EventKind::kEdit: {
      model::Event& message = target->event;
      // When the old text was written: the last edit, or the post itself.
      const absl::Time written = message.update_time != absl::InfinitePast()
                                     ? message.update_time
                                     : message.time;
      target->versions[sequence] = model::MessageVersion{message.text, written};
      message.text = entry.text;
      message.update_time = entry.time;
      break;
    }
    case model::EventKind::kDelete:
      target->event.deleted = true;
      target->event.text.clear();
      target->versions.clear();
      clear_edits(target->event.id);
      break;
    case model::EventKind::kPurge:
      for (auto it = log.begin();
           it != log.end() &&
           ClampToInt64(it->first) <= ClampToInt64(e.purge_through);) {
        if (!IsMessage(it->second.event)) {
          ++it;
          continue;
        }
        clear_edits(it->second.event.id);
        Forget(s, it->second);
        it = log.erase(it);
        ++purged;
      }
      break;
    default:
      if (!e.idempotency.key.empty()) {
        s.keys[{e.idempotency.scope, e.idempotency.key}] = IdempotentSend{
            e.idempotency.digest, e.log, sequence, e.id, entry.time};
      }
      break;
  }
  log.emplace(sequence, std::move(stored));
  return purged;
}

void MemoryStore::DropLog(State& s, const std::string& log) {
  auto it = s.logs.find(log);
  if (it == s.logs.end()) return;
  for (const auto& [seq, stored] : it->second) Forget(s, stored);
  s.logs.erase(it);
}

void MemoryStore::Forget(State& s, const Stored& stored) {
  if (!stored.event.id.empty()) s.event_ids.erase(stored.event.id);
}

uint64_t MemoryStore::LastOf(const State& s, absl::string_view log) {
  auto it = s.logs.find(log);
  if (it == s.logs.end() || it->second.empty()) return 0;
  return it->second.rbegin()->first;
}

// ---- Reads ----

model::EventPtr MemoryStore::Read(const Stored& stored) {
  auto event = std::make_shared<model::Event>(stored.event);
  if (IsMessage(*event) && event->update_time != absl::InfinitePast()) {
    for (const auto& [replaced_by, version] : stored.versions) {
      event->previous_versions.push_back(version);
    }
  }
  return event;
}

Member MemoryStore::MemberOf(const State& s, const std::string& room_id,
                             const std::string& user_id, const MemberRow& row) {
  Member member;
  member.room_id = room_id;
  member.user_id = user_id;
  member.role = row.role;
  member.join_time = row.join_time;
  auto user = s.users.find(user_id);
  if (user != s.users.end()) {
    member.username = user->second.username;
    member.display_name = user->second.display_name;
  }
  return member;
}

absl::StatusOr<User> MemoryStore::GetUser(absl::string_view id) {
  MutexLock lock(&mu_);
  auto it = state_.users.find(std::string(id));
  if (it == state_.users.end()) return UserNotFound();
  return it->second;
}

absl::StatusOr<User> MemoryStore::GetUserByName(absl::string_view username) {
  MutexLock lock(&mu_);
  auto it = state_.user_names.find(Folded(username));
  if (it == state_.user_names.end()) return UserNotFound();
  return state_.users.at(it->second);
}

absl::StatusOr<std::vector<User>> MemoryStore::ListUsers(
    absl::string_view after_username, size_t limit) {
  MutexLock lock(&mu_);
  std::vector<User> users;
  for (auto it = state_.user_names.upper_bound(Folded(after_username));
       it != state_.user_names.end() && users.size() < limit; ++it) {
    users.push_back(state_.users.at(it->second));
  }
  return users;
}

absl::StatusOr<Room> MemoryStore::GetRoom(absl::string_view id) {
  MutexLock lock(&mu_);
  auto it = state_.rooms.find(std::string(id));
  if (it == state_.rooms.end()) return RoomNotFound();
  return it->second;
}

absl::StatusOr<Room> MemoryStore::GetRoomByName(absl::string_view name) {
  MutexLock lock(&mu_);
  auto it = state_.room_names.find(Folded(name));
  if (it == state_.room_names.end()) return RoomNotFound();
  return state_.rooms.at(it->second);
}

absl::StatusOr<std::vector<Room>> MemoryStore::ListRooms(
    absl::string_view viewer_id, absl::string_view after_name, size_t limit) {
  MutexLock lock(&mu_);
  std::vector<Room> rooms;
  for (auto it = state_.room_names.upper_bound(Folded(after_name));
       it != state_.room_names.end() && rooms.size() < limit; ++it) {
    const Room& room = state_.rooms.at(it->second);
    if (room.id == model::kLobbyId) continue;
    if (room.visibility == Visibility::kHidden &&
        state_.members.count({room.id, std::string(viewer_id)}) == 0) {
      continue;
    }
    rooms.push_back(room);
  }
  return rooms;
}

absl::StatusOr<std::optional<Member>> MemoryStore::GetMember(
    absl::string_view room_id, absl::string_view user_id) {
  MutexLock lock(&mu_);
  auto it = state_.members.find({std::string(room_id), std::string(user_id)});
  if (it == state_.members.end()) return std::optional<Member>();
  return std::optional<Member>(
      MemberOf(state_, it->first.first, it->first.second, it->second));
}

absl::StatusOr<std::vector<Member>> MemoryStore::ListMembers(
    absl::string_view room_id) {
  MutexLock lock(&mu_);
  std::vector<Member> members;
  const std::string room(room_id);
  for (auto it = state_.members.lower_bound({room, std::string()});
       it != state_.members.end() && it->first.first == room; ++it) {
    members.push_back(MemberOf(state_, room, it->first.second, it->second));
  }
  std::sort(members.begin(), members.end(),
            [](const Member& a, const Member& b) {
              return Folded(a.username) < Folded(b.username);
            });
  return members;
}

absl::StatusOr<size_t> MemoryStore::CountMembers(absl::string_view room_id) {
  MutexLock lock(&mu_);
  size_t count = 0;
  const std::string room(room_id);
  for (auto it = state_.members.lower_bound({room, std::string()});
       it != state_.members.end() && it->first.first == room; ++it) {
    ++count;
  }
  return count;
}

absl::StatusOr<std::optional<IdempotentSend>> MemoryStore::FindIdempotentSend(
    absl::string_view scope, absl::string_view key, absl::Time not_before) {
  MutexLock lock(&mu_);
  auto it = state_.keys.find({std::string(scope), std::string(key)});
  if (it == state_.keys.end() || it->second.time < Micros(not_before)) {
    return std::nullopt;
  }
  return it->second;
}

absl::StatusOr<ReadState> MemoryStore::GetReadState(absl::string_view user_id,
                                                    absl::string_view room_id) {
  MutexLock lock(&mu_);
  ReadState state;
  auto marker =
      state_.markers.find({std::string(user_id), std::string(room_id)});
  if (marker == state_.markers.end()) return state;  // never read
  state.has_marker = true;
  state.sequence = marker->second;
  auto log = state_.logs.find(room_id);
  if (log == state_.logs.end()) return state;
  for (auto it = log->second.upper_bound(state.sequence);
       it != log->second.end(); ++it) {
    const model::Event& e = it->second.event;
    if (IsMessage(e) && !e.deleted && e.sender_id != user_id) ++state.unread;
  }
  return state;
}

absl::StatusOr<std::vector<std::string>> MemoryStore::ListRevokedTokens() {
  const absl::Time now = Micros(absl::Now());
  MutexLock lock(&mu_);
  std::vector<std::string> tokens;
  for (const auto& [jti, expire] : state_.revoked) {
    if (expire > now) tokens.push_back(jti);
  }
  return tokens;
}

absl::StatusOr<uint64_t> MemoryStore::LastSequence(absl::string_view log) {
  MutexLock lock(&mu_);
  return LastOf(state_, log);
}

absl::StatusOr<std::vector<model::EventPtr>> MemoryStore::ReadAfter(
    absl::string_view log, uint64_t after, size_t limit) {
  MutexLock lock(&mu_);
  std::vector<model::EventPtr> events;
  auto it = state_.logs.find(log);
  if (it == state_.logs.end()) return events;
  for (auto e = it->second.upper_bound(after);
       e != it->second.end() && events.size() < limit; ++e) {
    events.push_back(Read(e->second));
  }
  return events;
}

absl::StatusOr<PageResult> MemoryStore::ListMessages(absl::string_view log,
                                                     const Page& page) {
  const PageRange range = RangeOf(page);
  MutexLock lock(&mu_);
  PageResult result;
  std::vector<const Stored*> messages;  // oldest first
  auto found = state_.logs.find(log);
  if (found != state_.logs.end()) {
    for (const auto& [seq, stored] : found->second) {
      if (IsMessage(stored.event)) messages.push_back(&stored);
    }
  }
  auto seq_of = [](const Stored* s) { return ClampToInt64(s->event.sequence); };
  std::vector<const Stored*> in_range;
  for (const Stored* s : messages) {
    if (seq_of(s) > range.after && seq_of(s) < range.before) {
      in_range.push_back(s);
    }
  }
  const auto n =
      static_cast<std::ptrdiff_t>(std::min(page.limit, in_range.size()));
  const auto first = range.ascending ? in_range.begin() : in_range.end() - n;
  for (auto it = first; it != first + n; ++it) {
    result.messages.push_back(Read(**it));
  }
  const PageEdges edges = EdgesOf(range, result.messages);
  for (const Stored* s : messages) {
    if (seq_of(s) < edges.older_than) result.has_older = true;
    if (seq_of(s) > edges.newer_than) result.has_newer = true;
  }
  return result;
}

absl::StatusOr<model::EventPtr> MemoryStore::GetMessage(absl::string_view log,
                                                        absl::string_view id) {
  MutexLock lock(&mu_);
  auto it = state_.event_ids.find(std::string(id));
  if (it == state_.event_ids.end() || it->second.first != log) {
    return MessageNotFound();
  }
  const Stored& stored = state_.logs.at(it->second.first).at(it->second.second);
  if (!IsMessage(stored.event)) return MessageNotFound();
  return Read(stored);
}

absl::StatusOr<std::vector<std::string>> MemoryStore::ListPosters(
    absl::string_view log) {
  MutexLock lock(&mu_);
  std::vector<std::string> posters;
  auto it = state_.logs.find(log);
  if (it == state_.logs.end()) return posters;
  for (const auto& [seq, stored] : it->second) {
    const model::Event& e = stored.event;
    if (!IsMessage(e) || e.sender.empty()) continue;
    if (std::find(posters.begin(), posters.end(), e.sender) == posters.end()) {
      posters.push_back(e.sender);
    }
  }
  return posters;
}

}  // namespace parley::store
