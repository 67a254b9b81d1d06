// Hundreds of clients join, send and read at once over real gRPC; every
// client must receive every message, in the same order.
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "server/common/mutex.h"
#include "tests/server/api/test_server.h"

namespace parley::api {
namespace {

using parley::testing::TestServer;

constexpr int kClients = 200;
constexpr int kMessagesEach = 5;
constexpr int kTotal = kClients * kMessagesEach;

// Releases every waiting thread once `n` have arrived.
class Barrier {
 public:
  explicit Barrier(int n) : remaining_(n) {}
  void ArriveAndWait() {
    MutexLock lock(&mu_);
    if (--remaining_ == 0) cv_.SignalAll();
    while (remaining_ > 0) cv_.Wait();
  }

 private:
  Mutex mu_;
  CondVar cv_{&mu_};
  int remaining_;
};

TEST(ConcurrencyTest, EveryClientReceivesEveryMessageInTheSameOrder) {
  api::ServerOptions options = parley::testing::UnlimitedOptions();
  options.hub.channel_capacity = 4 * (kClients + kTotal);
  TestServer server(options);
  constexpr int kConnections = 8;
  std::vector<std::unique_ptr<v1::ChatService::Stub>> stubs;
  for (int i = 0; i < kConnections; ++i) {
    // Connected before the clients start: the test is about fan-out, and
    // 25 calls racing one channel's first connect fail together if that
    // connect attempt does (CI saw it once).
    auto channel = server.NewChannel();
    ASSERT_TRUE(channel->WaitForConnected(
        std::chrono::system_clock::now() + std::chrono::seconds(30)))
        << "connection " << i;
    stubs.push_back(v1::ChatService::NewStub(channel));
  }

  Barrier joined(kClients);
  std::vector<std::vector<std::string>> seen(kClients);
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      v1::ChatService::Stub* stub = stubs[c % kConnections].get();
      const std::string id = "client-" + std::to_string(c);
      grpc::Status join_status;
      {
        grpc::ClientContext ctx;
        v1::JoinRequest req;
        req.set_id(id);
        v1::JoinResponse resp;
        join_status = stub->Join(&ctx, req, &resp);
      }
      // Arrive even when the join failed: a thread that left before the
      // barrier would keep the others waiting forever (a hang instead of a
      // failure).
      joined.ArriveAndWait();
      ASSERT_TRUE(join_status.ok())
          << id << ": " << join_status.error_code() << " "
          << join_status.error_message();
      for (int m = 0; m < kMessagesEach; ++m) {
        grpc::ClientContext ctx;
        v1::SendRequest req;
        req.set_id(id);
        req.set_message(id + "/" + std::to_string(m));
        v1::SendResponse resp;
        ASSERT_TRUE(stub->Send(&ctx, req, &resp).ok());
      }
      // Half read by long poll, half by stream.
      const absl::Time deadline = absl::Now() + absl::Seconds(120);
      uint64_t last = 0;
      auto record = [&](const v1::Event& e) {
        EXPECT_GT(e.sequence(), last) << id;
        last = e.sequence();
        if (e.kind() == v1::EVENT_KIND_MESSAGE) seen[c].push_back(e.text());
        EXPECT_NE(e.kind(), v1::EVENT_KIND_GAP) << id;
      };
      if (c % 2 == 0) {
        while (seen[c].size() < size_t{kTotal} && absl::Now() < deadline) {
          grpc::ClientContext ctx;
          v1::ReceiveRequest req;
          req.set_id(id);
          req.set_timeout(5);
          v1::ReceiveResponse resp;
          ASSERT_TRUE(stub->Receive(&ctx, req, &resp).ok());
          for (const auto& e : resp.events()) record(e);
        }
      } else {
        grpc::ClientContext ctx;
        ctx.set_deadline(absl::ToChronoTime(deadline));
        v1::SubscribeRequest req;
        req.set_id(id);
        auto reader = stub->Subscribe(&ctx, req);
        v1::SubscribeResponse resp;
        while (seen[c].size() < size_t{kTotal} && reader->Read(&resp)) {
          for (const auto& e : resp.events()) record(e);
        }
        ctx.TryCancel();
        reader->Finish();
      }
    });
  }
  for (auto& t : threads) t.join();

  for (int c = 0; c < kClients; ++c) {
    ASSERT_EQ(seen[c].size(), size_t{kTotal}) << "client " << c;
    EXPECT_EQ(seen[c], seen[0]) << "client " << c << " saw another order";
  }
}

}  // namespace
}  // namespace parley::api
