// naive_fanout: the simplest gRPC fan-out server that does what Parley's
// room stream does on the wire, as the baseline of Parley's gRPC path in
// the peers benchmark (docs/benchmarks.md, section 9). Rooms live in memory; a
// message goes to every subscriber of its room as one write of its own;
// no history, no auth, no batching, no slow-reader policy (a subscriber's
// queue grows without bound).
//
// With --write_thread the writes start on a thread of its own instead of
// gRPC's thread that took the publish, as in any server that commits a
// message (blocking I/O, so off gRPC's threads) before its fan-out.
//
//   naive_fanout --grpc_addr=127.0.0.1:0 --port_file=FILE [--write_thread]
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "naive_fanout.grpc.pb.h"

ABSL_FLAG(std::string, grpc_addr, "127.0.0.1:0", "Address to listen on.");
ABSL_FLAG(std::string, port_file, "", "Write the bound port here once listening.");
ABSL_FLAG(bool, write_thread, false,
          "Start the writes on a thread of the server's, not on gRPC's thread "
          "that took the publish.");

namespace {

using parley::v1::Event;
using parley::v1::PostMessageRequest;
using parley::v1::SubscribeRequest;
using parley::v1::SubscribeResponse;
using Delivery = std::shared_ptr<const SubscribeResponse>;

class RoomStream;

// Every room's open streams.
class Rooms {
 public:
  void Add(const std::string& room, RoomStream* s) {
    std::lock_guard<std::mutex> lock(mu_);
    streams_[room].insert(s);
  }
  void Remove(const std::string& room, RoomStream* s) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = streams_.find(room);
    if (it == streams_.end()) return;
    it->second.erase(s);
    if (it->second.empty()) streams_.erase(it);
  }
  // Queues `d` on every stream of `room` (under the lock, so that no
  // stream is deleted meanwhile).
  void Publish(const std::string& room, const Delivery& d);

 private:
  std::mutex mu_;
  std::unordered_map<std::string, std::unordered_set<RoomStream*>> streams_;
};

// One Subscribe call: its queue of deliveries, written one at a time.
class RoomStream : public grpc::ServerWriteReactor<SubscribeResponse> {
 public:
  RoomStream(Rooms* rooms, std::string room) : rooms_(rooms), room_(std::move(room)) {
    rooms_->Add(room_, this);
    // The first, empty write says the subscription is in place.
    Deliver(std::make_shared<SubscribeResponse>());
  }

  void Deliver(Delivery d) {
    std::lock_guard<std::mutex> lock(mu_);
    if (ending_) return;
    queue_.push_back(std::move(d));
    if (!writing_) {
      writing_ = true;
      StartWrite(queue_.front().get());
    }
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.pop_front();
    if (!ok || ending_ || queue_.empty()) {
      writing_ = false;
      // A failed write means the call is over: OnCancel follows.
      if (ending_) FinishOnce();
      return;
    }
    StartWrite(queue_.front().get());
  }

  void OnCancel() override {
    rooms_->Remove(room_, this);
    std::lock_guard<std::mutex> lock(mu_);
    ending_ = true;
    if (!writing_) FinishOnce();
  }

  void OnDone() override { delete this; }

 private:
  void FinishOnce() {
    if (finished_) return;
    finished_ = true;
    Finish(grpc::Status::OK);
  }

  Rooms* const rooms_;
  const std::string room_;
  std::mutex mu_;
  std::deque<Delivery> queue_;
  bool writing_ = false;
  bool ending_ = false;
  bool finished_ = false;
};

void Rooms::Publish(const std::string& room, const Delivery& d) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = streams_.find(room);
  if (it == streams_.end()) return;
  for (RoomStream* s : it->second) s->Deliver(d);
}

// The thread that starts the writes with --write_thread: publications are
// handed to it in order, and it wakes when the first of a batch arrives.
class WriteThread {
 public:
  explicit WriteThread(Rooms* rooms) : rooms_(rooms), thread_([this] { Run(); }) {}
  ~WriteThread() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  void Publish(std::string room, Delivery d) {
    bool first;
    {
      std::lock_guard<std::mutex> lock(mu_);
      first = queue_.empty();
      queue_.emplace_back(std::move(room), std::move(d));
    }
    if (first) cv_.notify_one();
  }

 private:
  void Run() {
    std::vector<std::pair<std::string, Delivery>> batch;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;
        batch.swap(queue_);
      }
      for (auto& [room, d] : batch) rooms_->Publish(room, d);
      batch.clear();
    }
  }

  Rooms* const rooms_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<std::string, Delivery>> queue_;
  bool stop_ = false;
  std::thread thread_;
};

class NaiveFanoutService final : public parley::bench::NaiveFanout::CallbackService {
 public:
  explicit NaiveFanoutService(bool write_thread) {
    if (write_thread) writer_ = std::make_unique<WriteThread>(&rooms_);
  }

  grpc::ServerWriteReactor<SubscribeResponse>* Subscribe(
      grpc::CallbackServerContext*, const SubscribeRequest* req) override {
    return new RoomStream(&rooms_, req->room());
  }

  grpc::ServerUnaryReactor* PostMessage(grpc::CallbackServerContext* ctx,
                                        const PostMessageRequest* req,
                                        Event* reply) override {
    auto delivery = std::make_shared<SubscribeResponse>();
    Event* e = delivery->add_events();
    e->set_kind(parley::v1::EVENT_KIND_MESSAGE);
    e->set_room(req->room());
    e->set_text(req->text());
    *reply = *e;
    if (writer_ != nullptr) {
      writer_->Publish(req->room(), std::move(delivery));
    } else {
      rooms_.Publish(req->room(), delivery);
    }
    grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
    r->Finish(grpc::Status::OK);
    return r;
  }

  Rooms rooms_;
  std::unique_ptr<WriteThread> writer_;
};

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  NaiveFanoutService service(absl::GetFlag(FLAGS_write_thread));
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::GetFlag(FLAGS_grpc_addr), grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    fprintf(stderr, "naive_fanout: cannot listen on %s\n", absl::GetFlag(FLAGS_grpc_addr).c_str());
    return 1;
  }
  if (const std::string pf = absl::GetFlag(FLAGS_port_file); !pf.empty()) {
    std::ofstream(pf + ".tmp") << port << "\n";
    std::rename((pf + ".tmp").c_str(), pf.c_str());
  }
  fprintf(stderr, "naive_fanout: listening on port %d\n", port);
  int sig = 0;
  sigwait(&signals, &sig);
  // Streams end when their calls are cancelled by the shutdown.
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  return 0;
}
