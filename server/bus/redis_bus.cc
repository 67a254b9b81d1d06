#include "server/bus/redis_bus.h"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "server/bus/event_codec.h"
#include "server/bus/redis_connection.h"
#include "server/common/log.h"
#include "server/common/uuid.h"

namespace parley::bus {
namespace {

constexpr absl::Duration kFirstBackoff = absl::Milliseconds(50);
constexpr absl::Duration kMaxBackoff = absl::Seconds(1);

}  // namespace

RedisBus::RedisBus(RedisBusOptions options)
    : options_(std::move(options)),
      origin_(NewUuid()),
      wake_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  publisher_ = std::thread([this] { RunPublisher(); });
  subscriber_ = std::thread([this] { RunSubscriber(); });
}

RedisBus::~RedisBus() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
    publish_cv_.SignalAll();
  }
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof one);
  publisher_.join();
  subscriber_.join();
  close(wake_fd_);
}

void RedisBus::SetListener(Listener* listener) {
  MutexLock lock(&listener_mu_);
  listener_ = listener;
}

RedisBusStats RedisBus::stats() const {
  MutexLock lock(&mu_);
  return stats_;
}

void RedisBus::Publish(const model::Event& event) {
  std::string channel = options_.channel_prefix + event.log;
  std::string bytes = EncodeEvent(event, origin_);
  MutexLock lock(&mu_);
  if (outbox_.size() >= options_.max_queued) {
    ++stats_.dropped;
    return;
  }
  outbox_.emplace_back(std::move(channel), std::move(bytes));
  if (outbox_.size() == 1) publish_cv_.Signal();
}

void RedisBus::Broadcast(const Notice& notice) {
  std::string bytes = EncodeNotice(notice);
  MutexLock lock(&mu_);
  if (outbox_.size() >= options_.max_queued) {
    ++stats_.dropped;
    return;
  }
  outbox_.emplace_back(options_.notice_channel, std::move(bytes));
  if (outbox_.size() == 1) publish_cv_.Signal();
}

void RedisBus::Subscribe(absl::string_view log) {
  {
    MutexLock lock(&mu_);
    changes_.emplace_back(std::string(log), true);
  }
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof one);
}

void RedisBus::Unsubscribe(absl::string_view log) {
  {
    MutexLock lock(&mu_);
    changes_.emplace_back(std::string(log), false);
  }
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof one);
}

void RedisBus::RunPublisher() {
  Context c;
  bool logged = false;
  absl::Duration backoff = absl::ZeroDuration();
  std::deque<std::pair<std::string, std::string>> batch;
  while (true) {
    {
      MutexLock lock(&mu_);
      while (outbox_.empty() && !stop_) publish_cv_.Wait();
      if (stop_) return;
      batch.swap(outbox_);
    }
    if (c == nullptr) {
      c = Connect("redis bus", options_.host, options_.port,
                  options_.connect_timeout, &logged);
      if (c == nullptr) {
        MutexLock lock(&mu_);
        stats_.dropped += batch.size();
        batch.clear();
        backoff = std::clamp(backoff * 2, kFirstBackoff, kMaxBackoff);
        publish_cv_.WaitWithDeadline(absl::Now() + backoff);
        continue;
      }
      backoff = absl::ZeroDuration();
    }
    for (const auto& [channel, bytes] : batch) {
      Append(c.get(), {"PUBLISH", channel, bytes});
    }
    size_t sent = 0;
    for (; sent < batch.size(); ++sent) {
      void* reply = nullptr;
      if (redisGetReply(c.get(), &reply) != REDIS_OK) break;
      freeReplyObject(reply);
    }
    MutexLock lock(&mu_);
    stats_.published += sent;
    stats_.dropped += batch.size() - sent;
    if (sent < batch.size()) c.reset();  // connected again at the next batch
    batch.clear();
  }
}

bool RedisBus::Wait(int fd, absl::Duration timeout) {
  pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {fd, POLLIN, 0}};
  const int ms = static_cast<int>(absl::ToInt64Milliseconds(timeout));
  poll(fds, fd >= 0 ? 2 : 1, ms);
  uint64_t drained;
  [[maybe_unused]] ssize_t n = read(wake_fd_, &drained, sizeof drained);
  return fd >= 0 && (fds[1].revents & (POLLIN | POLLERR | POLLHUP)) != 0;
}

void RedisBus::RunSubscriber() {
  Context c;
  bool logged = false;
  absl::Duration backoff = absl::ZeroDuration();
  absl::flat_hash_set<std::string> logs;      // what should be heard
  absl::flat_hash_set<std::string> awaiting;  // subscribed, not confirmed
  bool connected_before = false;
  bool reconnected = false;  // the listener is told once notices flow
  while (true) {
    std::vector<std::pair<std::string, bool>> changes;
    {
      MutexLock lock(&mu_);
      if (stop_) return;
      changes.swap(changes_);
    }
    std::vector<std::string> subscribe, unsubscribe;
    for (auto& [log, on] : changes) {
      if (on && logs.insert(log).second) subscribe.push_back(log);
      if (!on && logs.erase(log) > 0) {
        awaiting.erase(log);
        unsubscribe.push_back(log);
      }
    }
    if (c == nullptr) {
      c = Connect("redis bus", options_.host, options_.port,
                  options_.connect_timeout, &logged);
      if (c == nullptr) {
        backoff = std::clamp(backoff * 2, kFirstBackoff, kMaxBackoff);
        Wait(-1, backoff);
        continue;
      }
      backoff = absl::ZeroDuration();
      if (connected_before) {
        MutexLock lock(&mu_);
        ++stats_.reconnects;
        reconnected = true;
      }
      connected_before = true;
      // Everything heard is subscribed again, and the notices.
      subscribe.assign(logs.begin(), logs.end());
      unsubscribe.clear();
      awaiting.clear();
      Append(c.get(), {"SUBSCRIBE", options_.notice_channel});
    }
    if (!subscribe.empty()) {
      std::vector<std::string> args = {"SUBSCRIBE"};
      for (const std::string& log : subscribe) {
        args.push_back(options_.channel_prefix + log);
        awaiting.insert(log);
      }
      Append(c.get(), args);
    }
    if (!unsubscribe.empty()) {
      std::vector<std::string> args = {"UNSUBSCRIBE"};
      for (const std::string& log : unsubscribe) {
        args.push_back(options_.channel_prefix + log);
      }
      Append(c.get(), args);
    }
    bool broken = !FlushOutput(c.get());
    if (!broken && Wait(c->fd, absl::Seconds(1))) {
      broken = redisBufferRead(c.get()) != REDIS_OK;
    }
    while (!broken) {
      void* raw = nullptr;
      if (redisGetReplyFromReader(c.get(), &raw) != REDIS_OK) {
        broken = true;
        break;
      }
      if (raw == nullptr) break;
      Reply reply(static_cast<redisReply*>(raw));
      if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
          reply->element[0]->type != REDIS_REPLY_STRING ||
          reply->element[1]->type != REDIS_REPLY_STRING) {
        continue;
      }
      const absl::string_view kind(reply->element[0]->str,
                                   reply->element[0]->len);
      absl::string_view channel(reply->element[1]->str,
                                reply->element[1]->len);
      if (channel == options_.notice_channel) {
        if (kind == "subscribe" && reconnected) {
          reconnected = false;
          MutexLock lock(&listener_mu_);
          if (listener_ != nullptr) listener_->OnReconnected();
        }
        if (kind == "message" &&
            reply->element[2]->type == REDIS_REPLY_STRING) {
          absl::StatusOr<Notice> notice = DecodeNotice(absl::string_view(
              reply->element[2]->str, reply->element[2]->len));
          MutexLock lock(&listener_mu_);
          if (notice.ok() && listener_ != nullptr) {
            listener_->OnNotice(*notice);
          }
        }
        continue;
      }
      if (!absl::ConsumePrefix(&channel, options_.channel_prefix)) continue;
      const std::string log(channel);
      if (kind == "subscribe") {
        if (awaiting.erase(log) > 0) {
          MutexLock lock(&listener_mu_);
          if (listener_ != nullptr) listener_->OnSubscribed(log);
        }
      } else if (kind == "message" &&
                 reply->element[2]->type == REDIS_REPLY_STRING) {
        if (!logs.contains(log)) continue;
        std::string origin;
        absl::StatusOr<std::shared_ptr<model::Event>> event = DecodeEvent(
            absl::string_view(reply->element[2]->str, reply->element[2]->len),
            &origin);
        {
          MutexLock lock(&mu_);
          ++stats_.received;
        }
        // Our own live event: delivered here already.
        if (event.ok() && (*event)->sequence == 0 && origin == origin_) {
          continue;
        }
        MutexLock lock(&listener_mu_);
        if (event.ok() && listener_ != nullptr) {
          listener_->OnEvent(*std::move(event));
        }
      }
    }
    if (broken) {
      log::Warning("redis bus: connection lost",
                   {{"addr", absl::StrCat(options_.host, ":", options_.port)},
                    {"error", c->errstr}});
      c.reset();
    }
  }
}

}  // namespace parley::bus
