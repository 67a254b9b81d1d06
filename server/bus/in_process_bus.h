// The bus between hubs in one process (several replicas in one test): an
// InProcessNetwork plays the broker, and each replica connects its own Bus
// to it. One thread delivers, in publish order. The network can lose what
// is published (LoseMessages) and tell every replica it is back
// (Reconnect), as a broker connection that broke would. Thread-safe.
#ifndef PARLEY_SERVER_BUS_IN_PROCESS_BUS_H_
#define PARLEY_SERVER_BUS_IN_PROCESS_BUS_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "server/bus/bus.h"
#include "server/common/mutex.h"

namespace parley::bus {

class InProcessNetwork {
 public:
  InProcessNetwork();
  // Delivers what is queued, then stops. Every Bus it made must be gone.
  ~InProcessNetwork();
  InProcessNetwork(const InProcessNetwork&) = delete;
  InProcessNetwork& operator=(const InProcessNetwork&) = delete;

  // A replica's connection.
  std::unique_ptr<Bus> Connect();
  // While `lose`, what is published reaches nobody.
  void LoseMessages(bool lose);
  // Every replica hears OnSubscribed for each log it subscribed to.
  void Reconnect();
  // Waits until everything queued so far has been delivered.
  void Flush();

 private:
  class Endpoint;
  struct Task {
    bool publish = false;  // lost while LoseMessages
    absl::AnyInvocable<void()> run;
  };
  void Post(bool publish, absl::AnyInvocable<void()> task);
  void Run();

  Mutex mu_;
  CondVar cv_{&mu_};
  std::deque<Task> queue_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool lose_ ABSL_GUARDED_BY(mu_) = false;
  int64_t posted_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t done_ ABSL_GUARDED_BY(mu_) = 0;
  // Held while a task runs; taken after mu_ is released.
  Mutex endpoints_mu_;
  std::vector<Endpoint*> endpoints_ ABSL_GUARDED_BY(endpoints_mu_);
  std::thread thread_;
};

}  // namespace parley::bus

#endif  // PARLEY_SERVER_BUS_IN_PROCESS_BUS_H_
