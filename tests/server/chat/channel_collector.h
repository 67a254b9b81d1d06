// A test's reader of a Channel: takes what is queued each time the channel
// says it is readable, as a stream does, and waits (up to a deadline) for
// a count of events or for the close.
#ifndef PARLEY_TESTS_SERVER_CHAT_CHANNEL_COLLECTOR_H_
#define PARLEY_TESTS_SERVER_CHAT_CHANNEL_COLLECTOR_H_

#include <cstdint>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/chat/channel.h"
#include "server/common/mutex.h"

namespace parley::chat {

class ChannelCollector : public ChannelReader {
 public:
  explicit ChannelCollector(absl::Duration wait = absl::Seconds(20))
      : wait_(wait) {}

  void OnReadable() override {
    MutexLock lock(&mu_);
    readable_ = true;
    cv_.SignalAll();
  }
  void OnSuperseded() override {}

  // The sequence numbers (0 for a gap marker) of everything taken from
  // `channel` so far, once there are at least `n` or after the wait.
  std::vector<uint64_t> WaitFor(Channel& channel, size_t n) {
    const absl::Time deadline = absl::Now() + wait_;
    while (true) {
      for (const model::EventPtr& e : channel.Take(100000).events) {
        taken_.push_back(e->kind == model::EventKind::kGap ? 0 : e->sequence);
      }
      if (taken_.size() >= n || !AwaitReadable(deadline)) return taken_;
    }
  }

  // How `channel` was closed, once it is, or kOpen after the wait.
  CloseReason WaitClosed(Channel& channel) {
    const absl::Time deadline = absl::Now() + wait_;
    while (true) {
      const Channel::TakeResult taken = channel.Take(100000);
      if (taken.closed != CloseReason::kOpen) return taken.closed;
      if (!AwaitReadable(deadline)) return CloseReason::kOpen;
    }
  }

 private:
  // False when the deadline passed first.
  bool AwaitReadable(absl::Time deadline) {
    MutexLock lock(&mu_);
    while (!readable_) {
      if (!cv_.WaitWithDeadline(deadline) && !readable_) return false;
    }
    readable_ = false;
    return true;
  }

  const absl::Duration wait_;
  Mutex mu_;
  CondVar cv_{&mu_};
  bool readable_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<uint64_t> taken_;  // the waiting thread's only
};

}  // namespace parley::chat

#endif  // PARLEY_TESTS_SERVER_CHAT_CHANNEL_COLLECTOR_H_
