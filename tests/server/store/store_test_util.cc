#include "tests/server/store/store_test_util.h"

#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/common/errors.h"

namespace parley::store {

// ---- Synchronization ----

void Latch::CountDown() {
  MutexLock lock(&mu_);
  if (--count_ <= 0) cv_.SignalAll();
}

bool Latch::Wait(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  MutexLock lock(&mu_);
  while (count_ > 0) {
    if (!cv_.WaitWithDeadline(deadline)) return count_ <= 0;
  }
  return true;
}

WriteDone Outcome::Callback(std::shared_ptr<Outcome> self) {
  return [self](absl::StatusOr<int64_t> result) {
    MutexLock lock(&self->mu_);
    self->result_ = std::move(result);
    self->done_ = true;
    self->cv_.SignalAll();
  };
}

absl::StatusOr<int64_t> Outcome::Wait() {
  const absl::Time deadline = absl::Now() + kWait;
  MutexLock lock(&mu_);
  while (!done_) {
    if (!cv_.WaitWithDeadline(deadline) && !done_) {
      return absl::DeadlineExceededError("the write's callback never ran");
    }
  }
  // Moved, not copied: a copy would share the status's reference-counted
  // payload with the callback's thread, and Debian's Abseil counts
  // references in code ThreadSanitizer does not see.
  return std::move(result_);
}

void AppendChecked(Store& store, std::shared_ptr<model::Event> event,
                   WriteDone done) {
  if (event == nullptr) {
    store.Append(AppendEvent{nullptr}, std::move(done));
    return;
  }
  const uint64_t want = std::exchange(event->sequence, 0);
  store.Append(AppendEvent{event}, [event, want, done = std::move(done)](
                                       absl::StatusOr<int64_t> result) mutable {
    EXPECT_EQ(event->sequence, result.ok() ? want : 0) << event->text;
    done(std::move(result));
  });
}

std::shared_ptr<Outcome> SubmitWrite(Store& store, Write write) {
  auto outcome = std::make_shared<Outcome>();
  if (auto* append = std::get_if<AppendEvent>(&write)) {
    AppendChecked(store, std::move(append->event), outcome->Callback(outcome));
  } else {
    store.Submit(std::get<DirectoryWrite>(std::move(write)),
                 outcome->Callback(outcome));
  }
  return outcome;
}

absl::StatusOr<int64_t> Commit(Store& store, Write write) {
  return SubmitWrite(store, std::move(write))->Wait();
}

WriterGate::WriterGate(Store& store) {
  std::shared_ptr<Latch> entered = entered_;
  std::shared_ptr<Latch> release = release_;
  store.Submit(RevokeToken{"gate", absl::Now() + absl::Hours(1)},
               [entered, release](absl::StatusOr<int64_t>) {
                 entered->CountDown();
                 release->Wait();
               });
  EXPECT_TRUE(entered_->Wait());
}

void WriterGate::Release() { release_->CountDown(); }

// ---- Data ----

absl::Time T(int seconds) {
  return absl::FromUnixSeconds(1700000000) + absl::Seconds(seconds);
}

std::string Uuid(int n) {
  return absl::StrFormat("00000000-0000-4000-8000-%012d", n);
}

User MakeUser(int n, absl::string_view username) {
  User user;
  user.id = Uuid(1000 + n);
  user.username = std::string(username);
  user.display_name = absl::StrCat(username, " (display)");
  user.password_hash = absl::StrCat("$argon2id$", username);
  user.create_time = T(n);
  user.update_time = T(n);
  return user;
}

Room MakeRoom(int n, absl::string_view name, Visibility visibility,
              absl::string_view owner_id) {
  Room room;
  room.id = Uuid(2000 + n);
  room.name = std::string(name);
  room.description = absl::StrCat("about ", name);
  room.visibility = visibility;
  room.owner_id = std::string(owner_id);
  room.create_time = T(n);
  room.update_time = T(n);
  return room;
}

Member MakeMember(absl::string_view room_id, absl::string_view user_id,
                  absl::string_view role, absl::Time join_time) {
  Member member;
  member.room_id = std::string(room_id);
  member.user_id = std::string(user_id);
  member.role = std::string(role);
  member.join_time = join_time;
  return member;
}

namespace {
std::atomic<int> next_event_id{0};
}  // namespace

std::shared_ptr<model::Event> NewEvent(model::EventKind kind,
                                       absl::string_view log,
                                       uint64_t sequence) {
  auto event = std::make_shared<model::Event>();
  event->kind = kind;
  event->log = std::string(log);
  event->sequence = sequence;
  event->id = Uuid(100000 + ++next_event_id);
  event->time = T(static_cast<int>(sequence));
  if (log == kLobby) {
    event->room_id = kLobby;
    event->room = "lobby";
  }
  return event;
}

std::shared_ptr<model::Event> Message(absl::string_view log, uint64_t sequence,
                                      absl::string_view sender,
                                      absl::string_view text) {
  auto event = NewEvent(model::EventKind::kMessage, log, sequence);
  event->sender = std::string(sender);
  event->sender_id = absl::StrCat("id-of-", sender);
  event->text = std::string(text);
  return event;
}

std::shared_ptr<model::Event> EditOf(const model::Event& target,
                                     uint64_t sequence,
                                     absl::string_view text) {
  auto event = NewEvent(model::EventKind::kEdit, target.log, sequence);
  event->sender = target.sender;
  event->target_id = target.id;
  event->target_sequence = target.sequence;
  event->text = std::string(text);
  return event;
}

std::shared_ptr<model::Event> DeletionOf(const model::Event& target,
                                         uint64_t sequence) {
  auto event = NewEvent(model::EventKind::kDelete, target.log, sequence);
  event->target_id = target.id;
  event->target_sequence = target.sequence;
  return event;
}

std::shared_ptr<model::Event> PurgeThrough(absl::string_view log,
                                           uint64_t sequence,
                                           uint64_t through) {
  auto event = NewEvent(model::EventKind::kPurge, log, sequence);
  event->purge_through = through;
  return event;
}

void ExpectSameEvent(const model::Event& got, const model::Event& want) {
  EXPECT_EQ(got.kind, want.kind);
  EXPECT_EQ(got.log, want.log);
  EXPECT_EQ(got.room_id, want.room_id);
  EXPECT_EQ(got.room, want.room);
  EXPECT_EQ(got.sequence, want.sequence);
  EXPECT_EQ(got.id, want.id);
  EXPECT_EQ(got.sender, want.sender);
  EXPECT_EQ(got.sender_id, want.sender_id);
  EXPECT_EQ(got.recipient_id, want.recipient_id);
  EXPECT_EQ(got.recipient, want.recipient);
  EXPECT_EQ(got.text, want.text);
  EXPECT_EQ(got.time, want.time);
  EXPECT_EQ(got.target_id, want.target_id);
  EXPECT_EQ(got.target_sequence, want.target_sequence);
  EXPECT_EQ(got.purge_through, want.purge_through);
  EXPECT_EQ(got.update_time, want.update_time);
  EXPECT_EQ(got.deleted, want.deleted);
}

std::vector<uint64_t> Sequences(const std::vector<model::EventPtr>& events) {
  std::vector<uint64_t> out;
  for (const model::EventPtr& e : events) out.push_back(e->sequence);
  return out;
}

void ExpectError(const absl::StatusOr<int64_t>& result, absl::StatusCode code,
                 absl::string_view reason, absl::string_view field) {
  EXPECT_EQ(result.status().code(), code) << result.status();
  EXPECT_EQ(ErrorReason(result.status()), reason) << result.status();
  EXPECT_EQ(ErrorField(result.status()), field) << result.status();
}

}  // namespace parley::store
