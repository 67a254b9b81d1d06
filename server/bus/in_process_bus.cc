#include "server/bus/in_process_bus.h"

#include <cstdint>

#include "absl/strings/str_cat.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "server/bus/event_codec.h"

namespace parley::bus {

// One replica's connection: the logs it hears. Its listener is called on
// the network's thread only.
class InProcessNetwork::Endpoint : public Bus {
 public:
  explicit Endpoint(InProcessNetwork* network) : network_(network) {}
  ~Endpoint() override {
    network_->Flush();  // no task of its own is left
    MutexLock lock(&network_->endpoints_mu_);
    auto& all = network_->endpoints_;
    all.erase(std::remove(all.begin(), all.end(), this), all.end());
  }

  // Before the hub's first Subscribe, which orders it before every call.
  // Not from a listener's call (the network's tasks hold endpoints_mu_).
  void SetListener(Listener* listener) override {
    MutexLock lock(&network_->endpoints_mu_);
    listener_ = listener;
  }

  void Publish(const model::Event& event) override {
    // Encoded and decoded, as a broker would carry it.
    std::string bytes = EncodeEvent(event, Origin());
    InProcessNetwork* network = network_;
    network_->Post(/*publish=*/true, [network, bytes = std::move(bytes)] {
      for (Endpoint* e : network->endpoints_) {
        // Each replica gets its own copy, as from a broker.
        std::string origin;
        absl::StatusOr<std::shared_ptr<model::Event>> decoded =
            DecodeEvent(bytes, &origin);
        if (!decoded.ok()) return;
        if ((*decoded)->sequence == 0 && origin == e->Origin()) continue;
        if (e->listener_ != nullptr && e->logs_.contains((*decoded)->log)) {
          e->listener_->OnEvent(*std::move(decoded));
        }
      }
    });
  }

  void Broadcast(const Notice& notice) override {
    InProcessNetwork* network = network_;
    network_->Post(/*publish=*/true, [network, bytes = EncodeNotice(notice)] {
      absl::StatusOr<Notice> decoded = DecodeNotice(bytes);
      if (!decoded.ok()) return;
      for (Endpoint* e : network->endpoints_) {
        if (e->listener_ != nullptr) e->listener_->OnNotice(*decoded);
      }
    });
  }

  void Subscribe(absl::string_view log) override {
    std::string name(log);
    network_->Post(/*publish=*/false, [this, name] {
      logs_.insert(name);
      if (listener_ != nullptr) listener_->OnSubscribed(name);
    });
  }

  void Unsubscribe(absl::string_view log) override {
    std::string name(log);
    network_->Post(/*publish=*/false, [this, name] { logs_.erase(name); });
  }

  std::string Origin() const {
    return absl::StrCat(reinterpret_cast<uintptr_t>(this));
  }

  // On the network's thread.
  void Reconnected() {
    if (listener_ == nullptr) return;
    for (const std::string& log : logs_) listener_->OnSubscribed(log);
    listener_->OnReconnected();
  }

 private:
  InProcessNetwork* const network_;
  Listener* listener_ = nullptr;
  absl::flat_hash_set<std::string> logs_;  // the network's thread only
};

InProcessNetwork::InProcessNetwork() : thread_([this] { Run(); }) {}

InProcessNetwork::~InProcessNetwork() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
    cv_.SignalAll();
  }
  thread_.join();
}

std::unique_ptr<Bus> InProcessNetwork::Connect() {
  auto endpoint = std::make_unique<Endpoint>(this);
  MutexLock lock(&endpoints_mu_);
  endpoints_.push_back(endpoint.get());
  return endpoint;
}

void InProcessNetwork::LoseMessages(bool lose) {
  MutexLock lock(&mu_);
  lose_ = lose;
}

void InProcessNetwork::Reconnect() {
  Post(/*publish=*/false, [this] {
    for (Endpoint* e : endpoints_) e->Reconnected();
  });
}

void InProcessNetwork::Flush() {
  MutexLock lock(&mu_);
  const int64_t target = posted_;
  while (done_ < target) cv_.Wait();
}

void InProcessNetwork::Post(bool publish, absl::AnyInvocable<void()> task) {
  MutexLock lock(&mu_);
  ++posted_;
  queue_.push_back(Task{publish, std::move(task)});
  cv_.SignalAll();
}

void InProcessNetwork::Run() {
  MutexLock lock(&mu_);
  while (true) {
    while (queue_.empty() && !stop_) cv_.Wait();
    if (queue_.empty()) return;
    Task task = std::move(queue_.front());
    queue_.pop_front();
    const bool lost = task.publish && lose_;
    mu_.Unlock();
    if (!lost) {
      // Listeners may post again (a close that unsubscribes); endpoints_
      // and each endpoint's logs stay put meanwhile.
      MutexLock endpoints(&endpoints_mu_);
      task.run();
    }
    mu_.Lock();
    ++done_;
    cv_.SignalAll();
  }
}

}  // namespace parley::bus
