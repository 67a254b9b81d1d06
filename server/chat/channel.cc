#include "server/chat/channel.h"

#include <algorithm>
#include <utility>

#include "server/common/metrics.h"

namespace parley::chat {

Channel::Channel(size_t capacity, absl::Time now)
    : capacity_(std::max<size_t>(capacity, 1)), last_active_(now) {}

void WakeAll(const Wakeups& wake) {
  for (const auto& reader : wake) reader->OnReadable();
}

std::shared_ptr<ChannelReader> Channel::WakeLocked() {
  if (reader_ == nullptr || reader_woken_) return nullptr;
  reader_woken_ = true;
  return reader_;
}

std::shared_ptr<ChannelReader> Channel::Push(model::EventPtr event) {
  MutexLock lock(&mu_);
  if (closed_ != CloseReason::kOpen) return nullptr;
  if (queued_events_ >= capacity_) {
    ++dropped_;
    metrics::CountOverflow();
    // Live-only events (presence, sequence 0) are not in any log: a full
    // channel drops them without a gap marker.
    if (event->sequence == 0) return nullptr;
    if (!queue_.empty() && queue_.back().event == nullptr) {
      queue_.back().gap_last = event->sequence;
    } else {
      queue_.push_back(
          Entry{nullptr, event->sequence, event->sequence, std::move(event)});
    }
  } else {
    queue_.push_back(Entry{std::move(event), 0, 0, {}});
    ++queued_events_;
    metrics::CountDelivery();
  }
  return WakeLocked();
}

std::shared_ptr<ChannelReader> Channel::PushMissed(model::EventPtr first,
                                                   uint64_t last) {
  MutexLock lock(&mu_);
  if (closed_ != CloseReason::kOpen || last < first->sequence) return nullptr;
  dropped_ += last - first->sequence + 1;
  if (!queue_.empty() && queue_.back().event == nullptr) {
    queue_.back().gap_last = last;
  } else {
    const uint64_t sequence = first->sequence;
    queue_.push_back(Entry{nullptr, sequence, last, std::move(first)});
  }
  return WakeLocked();
}

std::shared_ptr<ChannelReader> Channel::Close(CloseReason reason) {
  MutexLock lock(&mu_);
  if (closed_ != CloseReason::kOpen) return nullptr;
  closed_ = reason;
  queue_.clear();
  queued_events_ = 0;
  return WakeLocked();
}

Channel::TakeResult Channel::Take(size_t max_events) {
  TakeResult result;
  MutexLock lock(&mu_);
  reader_woken_ = false;
  result.closed = closed_;
  const size_t n = std::min(std::max<size_t>(max_events, 1), queue_.size());
  result.events.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    Entry& entry = queue_.front();
    if (entry.event != nullptr) {
      result.events.push_back(std::move(entry.event));
      --queued_events_;
    } else {
      auto gap = std::make_shared<model::Event>();
      gap->kind = model::EventKind::kGap;
      gap->log = entry.first_missed->log;
      gap->room = entry.first_missed->room;
      gap->room_id = entry.first_missed->room_id;
      gap->gap_first = entry.gap_first;
      gap->gap_last = entry.gap_last;
      result.events.push_back(std::move(gap));
    }
    queue_.pop_front();
  }
  return result;
}

std::shared_ptr<ChannelReader> Channel::Attach(
    std::shared_ptr<ChannelReader> reader) {
  MutexLock lock(&mu_);
  std::shared_ptr<ChannelReader> previous = std::move(reader_);
  reader_ = std::move(reader);
  reader_woken_ = false;
  return previous;
}

void Channel::Detach(const ChannelReader* reader, absl::Time now) {
  MutexLock lock(&mu_);
  if (reader_.get() != reader) return;
  reader_ = nullptr;
  reader_woken_ = false;
  last_active_ = now;
}

void Channel::Touch(absl::Time now) {
  MutexLock lock(&mu_);
  last_active_ = std::max(last_active_, now);
}

bool Channel::IdleLongerThan(absl::Duration timeout, absl::Time now) {
  MutexLock lock(&mu_);
  return reader_ == nullptr && now - last_active_ > timeout;
}

bool Channel::HasReader() {
  MutexLock lock(&mu_);
  return reader_ != nullptr;
}

size_t Channel::Size() {
  MutexLock lock(&mu_);
  return queued_events_;
}

uint64_t Channel::Dropped() {
  MutexLock lock(&mu_);
  return dropped_;
}

}  // namespace parley::chat
