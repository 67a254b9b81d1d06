// StatsService and the stats interceptor over real gRPC on loopback: process
// figures, the chat counters moving with traffic, and per-method figures in
// which unary calls are timed and streams are not.
#include "server/api/stats_service.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "parley/v1/stats.grpc.pb.h"
#include "tests/server/api/test_server.h"

namespace parley::api {
namespace {

using parley::testing::TestServer;

constexpr char kSend[] = "/parley.v1.ChatService/Send";
constexpr char kSubscribe[] = "/parley.v1.ChatService/Subscribe";
constexpr char kReceive[] = "/parley.v1.ChatService/Receive";

class StatsServiceTest : public ::testing::Test {
 protected:
  explicit StatsServiceTest(ServerOptions options = {})
      : server_(std::move(options)),
        channel_(server_.NewChannel()),
        chat_(v1::ChatService::NewStub(channel_)),
        stats_(v1::StatsService::NewStub(channel_)) {}

  v1::GetStatsResponse GetStats() {
    grpc::ClientContext ctx;
    v1::GetStatsResponse resp;
    grpc::Status s = stats_->GetStats(&ctx, v1::GetStatsRequest(), &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  grpc::Status Join(const std::string& id) {
    grpc::ClientContext ctx;
    v1::JoinRequest req;
    req.set_id(id);
    v1::JoinResponse resp;
    return chat_->Join(&ctx, req, &resp);
  }

  grpc::Status Send(const std::string& id, const std::string& text) {
    grpc::ClientContext ctx;
    v1::SendRequest req;
    req.set_id(id);
    req.set_message(text);
    v1::SendResponse resp;
    return chat_->Send(&ctx, req, &resp);
  }

  grpc::Status Leave(const std::string& id) {
    grpc::ClientContext ctx;
    v1::LeaveRequest req;
    req.set_id(id);
    v1::LeaveResponse resp;
    return chat_->Leave(&ctx, req, &resp);
  }

  TestServer server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::ChatService::Stub> chat_;
  std::unique_ptr<v1::StatsService::Stub> stats_;
};

// The entry of `method`, or an empty one (requests_total 0).
v1::MethodStats Method(const v1::GetStatsResponse& stats,
                       const std::string& method) {
  for (const v1::MethodStats& m : stats.methods()) {
    if (m.method() == method) return m;
  }
  return v1::MethodStats();
}

uint64_t Sum(const google::protobuf::RepeatedField<uint64_t>& counts) {
  uint64_t n = 0;
  for (uint64_t c : counts) n += c;
  return n;
}
uint64_t Sum(const v1::MethodStats& m) { return Sum(m.latency_bucket_counts()); }

TEST_F(StatsServiceTest, ReportsTheProcess) {
  const v1::GetStatsResponse stats = GetStats();
  const v1::ProcessStats& p = stats.process();
  EXPECT_GT(p.cpu_seconds(), 0);
  EXPECT_NEAR(p.cpu_seconds(), p.cpu_user_seconds() + p.cpu_system_seconds(),
              1e-6);
  EXPECT_GT(p.cpu_percent(), 0);
  EXPECT_GT(p.cpu_window_seconds(), 0);
  EXPECT_GT(p.resident_memory_bytes(), 1u << 20);
  EXPECT_GE(p.peak_resident_memory_bytes(), p.resident_memory_bytes());
  EXPECT_GT(p.uptime_seconds(), 0);
  EXPECT_GT(p.start_time().seconds(), 1700000000);
  EXPECT_GT(p.threads(), 1u);
  EXPECT_GE(p.cpu_count(), 1u);
  EXPECT_EQ(stats.response_time().window_seconds(), 300);
  EXPECT_EQ(static_cast<size_t>(stats.latency_bucket_bounds_size()),
            metrics::kLatencyBucketBounds.size());
}

TEST_F(StatsServiceTest, CountsDeliveriesSessionsAndCommits) {
  const v1::GetStatsResponse before = GetStats();
  ASSERT_TRUE(Join("ann").ok());  // ann's join event: one delivery
  ASSERT_TRUE(Send("ann", "hello").ok());  // to ann: one more
  const v1::GetStatsResponse after = GetStats();
  EXPECT_EQ(after.chat().deliveries_total(),
            before.chat().deliveries_total() + 2);
  EXPECT_EQ(after.chat().lobby_sessions(), before.chat().lobby_sessions() + 1);
  EXPECT_EQ(after.chat().channel_overflows_total(),
            before.chat().channel_overflows_total());
  EXPECT_GE(after.store().commits_total(), before.store().commits_total() + 2);
  EXPECT_GE(after.store().writes_total(), before.store().writes_total() + 2);
  EXPECT_GE(after.store().largest_batch(), 1u);
  EXPECT_GT(after.store().commit_seconds_total(), 0);
  EXPECT_GT(after.store().commit_seconds_average(), 0);
  EXPECT_GE(after.store().commit_seconds_max(),
            after.store().commit_seconds_average());
  EXPECT_LE(after.store().commit_seconds_max(),
            after.store().commit_seconds_total());
  // Every write's wait for its commit, in the shared buckets: a write waits
  // at least for its own transaction.
  ASSERT_EQ(after.store().write_wait_bucket_counts_size(),
            after.latency_bucket_bounds_size() + 1);
  EXPECT_EQ(Sum(after.store().write_wait_bucket_counts()),
            after.store().writes_total());
  EXPECT_GE(after.store().write_wait_seconds_max(),
            after.store().commit_seconds_max());
  EXPECT_GE(after.store().write_wait_seconds_sum(),
            after.store().commit_seconds_total());
}

// A stream's delivery lag runs from before the commit to the stream's take:
// every log event it took is counted once, and waited at least as long as
// its write waited for its commit.
TEST_F(StatsServiceTest, CountsTheDeliveryLagOfWhatAStreamTook) {
  const v1::GetStatsResponse before = GetStats();
  ASSERT_EQ(before.chat().delivery_lag_bucket_counts_size(),
            before.latency_bucket_bounds_size() + 1);
  ASSERT_TRUE(Join("dan").ok());  // the join event waits in dan's channel
  grpc::ClientContext ctx;
  v1::SubscribeRequest req;
  req.set_id("dan");
  auto reader = chat_->Subscribe(&ctx, req);
  v1::SubscribeResponse got;
  ASSERT_TRUE(reader->Read(&got));  // the join
  ASSERT_TRUE(Send("dan", "one").ok());
  ASSERT_TRUE(reader->Read(&got));
  ASSERT_TRUE(Send("dan", "two").ok());
  ASSERT_TRUE(reader->Read(&got));
  const v1::GetStatsResponse after = GetStats();
  ctx.TryCancel();
  reader->Finish();

  // Three log events (the join and two messages), three store writes.
  ASSERT_EQ(after.store().writes_total(), before.store().writes_total() + 3);
  EXPECT_EQ(Sum(after.chat().delivery_lag_bucket_counts()),
            Sum(before.chat().delivery_lag_bucket_counts()) + 3);
  EXPECT_GE(after.chat().delivery_lag_seconds_sum() -
                before.chat().delivery_lag_seconds_sum(),
            after.store().write_wait_seconds_sum() -
                before.store().write_wait_seconds_sum());
}

TEST_F(StatsServiceTest, TimesUnaryCallsAndCountsErrors) {
  ASSERT_TRUE(Join("bob").ok());
  ASSERT_TRUE(Send("bob", "one").ok());
  ASSERT_TRUE(Send("bob", "two").ok());
  EXPECT_EQ(Send("nobody", "three").error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  const v1::GetStatsResponse stats = GetStats();
  const v1::MethodStats send = Method(stats, kSend);
  EXPECT_FALSE(send.streaming());
  EXPECT_EQ(send.requests_total(), 3u);
  EXPECT_EQ(send.errors_total(), 1u);
  EXPECT_EQ(send.in_flight(), 0u);
  EXPECT_EQ(send.window().requests(), 3u);
  EXPECT_EQ(send.window().errors(), 1u);
  EXPECT_GT(send.window().peak_seconds(), 0);
  EXPECT_GT(send.window().average_seconds(), 0);
  EXPECT_LE(send.window().average_seconds(), send.window().peak_seconds());
  EXPECT_EQ(send.latency_bucket_counts_size(),
            stats.latency_bucket_bounds_size() + 1);
  EXPECT_EQ(Sum(send), 3u);
  EXPECT_GT(send.latency_seconds_sum(), 0);
  // Join, Send and this GetStats's predecessors are all in the response time.
  EXPECT_GE(stats.response_time().requests(), 4u);
  EXPECT_GE(stats.response_time().peak_seconds(),
            send.window().peak_seconds());
}

TEST_F(StatsServiceTest, CountsStreamsWithoutTimingThem) {
  const uint64_t open_before = GetStats().chat().open_streams();
  ASSERT_TRUE(Join("cat").ok());
  grpc::ClientContext ctx;
  v1::SubscribeRequest req;
  req.set_id("cat");
  auto reader = chat_->Subscribe(&ctx, req);
  v1::SubscribeResponse first;
  ASSERT_TRUE(reader->Read(&first));  // cat's join event: the stream is up

  v1::GetStatsResponse stats = GetStats();
  EXPECT_EQ(stats.chat().open_streams(), open_before + 1);
  v1::MethodStats subscribe = Method(stats, kSubscribe);
  EXPECT_TRUE(subscribe.streaming());
  EXPECT_EQ(subscribe.in_flight(), 1u);
  EXPECT_EQ(subscribe.requests_total(), 0u);

  ASSERT_TRUE(Leave("cat").ok());  // ends the stream with OK
  EXPECT_TRUE(reader->Finish().ok());
  stats = GetStats();
  EXPECT_EQ(stats.chat().open_streams(), open_before);
  subscribe = Method(stats, kSubscribe);
  EXPECT_EQ(subscribe.requests_total(), 1u);
  EXPECT_EQ(subscribe.errors_total(), 0u);
  EXPECT_EQ(subscribe.in_flight(), 0u);
  EXPECT_EQ(subscribe.window().requests(), 1u);
  EXPECT_EQ(subscribe.window().peak_seconds(), 0);
  EXPECT_EQ(subscribe.window().average_seconds(), 0);
  EXPECT_EQ(subscribe.latency_bucket_counts_size(), 0);
}

// Subscribe keeps its own record (no interceptor runs at its writes): a
// refused stream still counts, as an error.
TEST_F(StatsServiceTest, CountsARefusedStreamAsAnError) {
  const v1::MethodStats before = Method(GetStats(), kSubscribe);
  grpc::ClientContext ctx;
  v1::SubscribeRequest req;
  req.set_id("nobody-joined-as-this");
  auto reader = chat_->Subscribe(&ctx, req);
  v1::SubscribeResponse event;
  EXPECT_FALSE(reader->Read(&event));
  EXPECT_EQ(reader->Finish().error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);  // join first

  const v1::MethodStats after = Method(GetStats(), kSubscribe);
  EXPECT_EQ(after.requests_total(), before.requests_total() + 1);
  EXPECT_EQ(after.errors_total(), before.errors_total() + 1);
  EXPECT_EQ(after.in_flight(), 0u);
}

TEST_F(StatsServiceTest, LeavesLongPollsOutOfTheResponseTime) {
  ASSERT_TRUE(Join("dan").ok());
  const v1::GetStatsResponse before = GetStats();
  auto poll = [&] {
    grpc::ClientContext ctx;
    v1::ReceiveRequest req;
    req.set_id("dan");
    req.set_timeout(0.2);
    v1::ReceiveResponse resp;
    EXPECT_TRUE(chat_->Receive(&ctx, req, &resp).ok());
    return resp.events_size();
  };
  EXPECT_EQ(poll(), 1);  // dan's join event, at once
  EXPECT_EQ(poll(), 0);  // nothing: waits the 0.2 s

  const v1::GetStatsResponse after = GetStats();
  const v1::MethodStats receive = Method(after, kReceive);
  EXPECT_FALSE(receive.streaming());
  EXPECT_EQ(receive.requests_total(), 2u);
  EXPECT_GE(receive.window().peak_seconds(), 0.2);
  EXPECT_EQ(Sum(receive), 2u);
  // The response time counts the GetStats in between, not the polls.
  EXPECT_EQ(after.response_time().requests(),
            before.response_time().requests() + 1);
  EXPECT_LT(after.response_time().peak_seconds(), 0.2);
}

class SmallChannelStatsTest : public StatsServiceTest {
 protected:
  static ServerOptions Small() {
    ServerOptions options;
    options.hub.channel_capacity = 2;
    return options;
  }
  SmallChannelStatsTest() : StatsServiceTest(Small()) {}
};

TEST_F(SmallChannelStatsTest, CountsChannelOverflows) {
  const v1::GetStatsResponse before = GetStats();
  ASSERT_TRUE(Join("eve").ok());
  for (const char* text : {"1", "2", "3"}) ASSERT_TRUE(Send("eve", text).ok());
  // Four events for a channel of two nobody reads.
  const v1::GetStatsResponse after = GetStats();
  EXPECT_EQ(after.chat().deliveries_total(),
            before.chat().deliveries_total() + 2);
  EXPECT_EQ(after.chat().channel_overflows_total(),
            before.chat().channel_overflows_total() + 2);
}

}  // namespace
}  // namespace parley::api
