// The bus between servers over Redis pub/sub, as Centrifugo's Redis broker
// does it: each log is a channel (`channel_prefix` + log id), each event a
// PUBLISH of its encoding (event_codec.h). Two connections of its own: one
// publishes from a queue, one holds the subscriptions. Redis drops what is
// published while a connection is down; the bus reconnects (backing off up
// to 1 s), subscribes again and tells the listener OnSubscribed for every
// log once Redis confirms, so the hub reads what it missed from the store.
// Thread-safe; Publish, Subscribe and Unsubscribe never wait for Redis.
#ifndef PARLEY_SERVER_BUS_REDIS_BUS_H_
#define PARLEY_SERVER_BUS_REDIS_BUS_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "server/bus/bus.h"
#include "server/common/mutex.h"

namespace parley::bus {

struct RedisBusOptions {
  std::string host = "127.0.0.1";
  int port = 6379;
  // Publishes waiting for Redis; past this, new ones are dropped (the
  // other replicas read them from the store at the next event).
  size_t max_queued = 100000;
  absl::Duration connect_timeout = absl::Seconds(1);
  std::string channel_prefix = "parley:log:";
  // Where Broadcast's notices go.
  std::string notice_channel = "parley:notice";
};

// Counters for the server's stats.
struct RedisBusStats {
  uint64_t published = 0;
  uint64_t dropped = 0;  // not sent: queue full or Redis away
  uint64_t received = 0;
  uint64_t reconnects = 0;
};

class RedisBus : public Bus {
 public:
  // Starts the threads; connecting happens on them (a Redis that is not up
  // yet is tried again).
  explicit RedisBus(RedisBusOptions options);
  // Stops the threads; what is still queued is dropped.
  ~RedisBus() override;
  RedisBus(const RedisBus&) = delete;
  RedisBus& operator=(const RedisBus&) = delete;

  // May be called again with null, to stop the calls.
  void SetListener(Listener* listener) override;
  void Publish(const model::Event& event) override;
  void Broadcast(const Notice& notice) override;
  void Subscribe(absl::string_view log) override;
  void Unsubscribe(absl::string_view log) override;

  RedisBusStats stats() const;

 private:
  void RunPublisher();
  void RunSubscriber();
  // Waits on the wake-up descriptor (and `fd`, when not -1) up to
  // `timeout`; true when `fd` is readable.
  bool Wait(int fd, absl::Duration timeout);

  const RedisBusOptions options_;
  // This bus's name on its events (live ones do not come back to it).
  const std::string origin_;
  // Held while the listener is called: once SetListener(nullptr) returns,
  // no call is in flight.
  Mutex listener_mu_;
  Listener* listener_ ABSL_GUARDED_BY(listener_mu_) = nullptr;

  mutable Mutex mu_;
  CondVar publish_cv_{&mu_};
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<std::pair<std::string, std::string>> outbox_ ABSL_GUARDED_BY(mu_);
  // Subscription changes for the subscriber thread: (log, subscribe?).
  std::vector<std::pair<std::string, bool>> changes_ ABSL_GUARDED_BY(mu_);
  RedisBusStats stats_ ABSL_GUARDED_BY(mu_);

  int wake_fd_ = -1;  // wakes the subscriber thread
  std::thread publisher_;
  std::thread subscriber_;
};

}  // namespace parley::bus

#endif  // PARLEY_SERVER_BUS_REDIS_BUS_H_
