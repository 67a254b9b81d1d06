// The bounded queue of events waiting for one client, and the hand-off to
// whoever reads it (a long poll or a stream).
//
// Overflow policy: a channel holds at most `capacity` events. An event that
// arrives when it is full is not queued; instead one gap marker is queued in
// its place and widened for every further event that does not fit, so the
// reader learns exactly which sequence numbers it missed, in order, and can
// fetch them from history. The writer never waits for the reader.
//
// Readers are woken edge-triggered: Push and Close return the reader to wake
// at most once per Take, and the caller wakes it after releasing its own
// locks. Thread-safe.
#ifndef PARLEY_SERVER_CHAT_CHANNEL_H_
#define PARLEY_SERVER_CHAT_CHANNEL_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "server/common/mutex.h"
#include "server/model/event.h"

namespace parley::chat {

// Why a channel stopped carrying events.
enum class CloseReason {
  kOpen,      // not closed
  kLeft,      // the client left
  kReaped,    // the session was idle too long
  kShutdown,  // the server is stopping
  kRemoved,   // the reader's user lost access to the room (removed member)
  kDeleted,   // the room was deleted
  kUserGone,  // the reader's user was deleted
  kSignedOut,  // the reader's token was revoked
};

// Someone waiting on a channel. The channel holds a shared_ptr to it while it
// is attached; its methods are called without any channel or hub lock held.
class ChannelReader {
 public:
  virtual ~ChannelReader() = default;
  // Something was queued, or the channel closed: call Take.
  virtual void OnReadable() = 0;
  // Another reader attached to the same channel; this one is detached.
  virtual void OnSuperseded() = 0;
};

// The readers that Push and Close asked to wake, woken by WakeAll once the
// caller's locks are released.
using Wakeups = std::vector<std::shared_ptr<ChannelReader>>;
void WakeAll(const Wakeups& wake);

class Channel {
 public:
  explicit Channel(size_t capacity, absl::Time now);
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // Queues `event` (or widens the gap marker when full; a full channel drops
  // live-only events, sequence 0, without one). Returns the reader to wake,
  // or null. Logged events must be pushed in sequence order.
  std::shared_ptr<ChannelReader> Push(model::EventPtr event);

  // Queues a gap marker for `first` (a logged event) through sequence
  // `last`, as if they had arrived when the channel was full. Returns the
  // reader to wake, or null.
  std::shared_ptr<ChannelReader> PushMissed(model::EventPtr first,
                                            uint64_t last);

  // Drops everything queued and refuses further events. Returns the reader to
  // wake, or null. Closing twice keeps the first reason.
  std::shared_ptr<ChannelReader> Close(CloseReason reason);

  struct TakeResult {
    std::vector<model::EventPtr> events;  // oldest first; gaps materialized
    CloseReason closed = CloseReason::kOpen;
  };
  // Removes up to `max_events` events (at least 1) and re-arms the wake-up.
  TakeResult Take(size_t max_events);

  // Makes `reader` the channel's only reader and returns the one it replaced
  // (to be told OnSuperseded), or null.
  std::shared_ptr<ChannelReader> Attach(std::shared_ptr<ChannelReader> reader);

  // Detaches `reader` if it is still the attached one; `now` starts the idle
  // clock.
  void Detach(const ChannelReader* reader, absl::Time now);

  // Records client activity (a send) for the idle reaper.
  void Touch(absl::Time now);

  // Whether nobody has read or written for longer than `timeout` at `now`;
  // never while a reader is attached.
  bool IdleLongerThan(absl::Duration timeout, absl::Time now);

  // Whether a reader is attached.
  bool HasReader();

  size_t Size();
  // Events that did not fit since the channel was created.
  uint64_t Dropped();

 private:
  struct Entry {
    model::EventPtr event;  // null for a gap marker
    uint64_t gap_first = 0;
    uint64_t gap_last = 0;
    model::EventPtr first_missed;  // gap markers: names the log
  };

  std::shared_ptr<ChannelReader> WakeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t capacity_;
  Mutex mu_;
  std::deque<Entry> queue_ ABSL_GUARDED_BY(mu_);
  size_t queued_events_ ABSL_GUARDED_BY(mu_) = 0;  // excludes gap markers
  CloseReason closed_ ABSL_GUARDED_BY(mu_) = CloseReason::kOpen;
  std::shared_ptr<ChannelReader> reader_ ABSL_GUARDED_BY(mu_);
  bool reader_woken_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time last_active_ ABSL_GUARDED_BY(mu_);
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace parley::chat

#endif  // PARLEY_SERVER_CHAT_CHANNEL_H_
