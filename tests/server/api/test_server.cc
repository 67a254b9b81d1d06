#include "tests/server/api/test_server.h"

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "gtest/gtest.h"

namespace parley::testing {
namespace {

std::string FreshDataDir() {
  std::string dir = ::testing::TempDir() + "parley-test-XXXXXX";
  char* made = mkdtemp(dir.data());
  EXPECT_NE(made, nullptr);
  return dir;
}

}  // namespace

api::QuotaOptions Unlimited() {
  api::QuotaOptions q;
  q.sends_per_user_per_second = 0;
  q.sends_per_room_per_second = 0;
  q.sign_ins_per_address_per_minute = 0;
  q.sign_in_free_failures_per_user = -1;
  q.sign_in_free_failures_per_address = -1;
  q.streams_per_user = 0;
  q.streams_per_address = 0;
  return q;
}

api::ServerOptions UnlimitedOptions() {
  api::ServerOptions options;
  options.quotas = Unlimited();
  options.hub.session_limits = {};
  return options;
}

TestServer::TestServer(api::ServerOptions options)
    : options_(std::move(options)) {
  options_.data_dir = FreshDataDir();
  options_.grpc_addr = "127.0.0.1:0";
  options_.password = auth::MinimalPasswordCost();
  options_.shutdown_grace = absl::Seconds(2);
  // As in production on this machine: rooms fan out on two threads.
  if (options_.hub.fanout_threads < 2) options_.hub.fanout_threads = 2;
  auto started = api::Server::Start(options_);
  EXPECT_TRUE(started.ok()) << started.status();
  if (started.ok()) server_ = *std::move(started);
}

TestServer::~TestServer() {
  server_.reset();
  std::error_code ec;
  std::filesystem::remove_all(options_.data_dir, ec);
}

void TestServer::Restart() {
  server_.reset();
  auto started = api::Server::Start(options_);
  ASSERT_TRUE(started.ok()) << started.status();
  server_ = *std::move(started);
}

std::shared_ptr<grpc::Channel> TestServer::NewChannel() {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto channel = grpc::CreateCustomChannel(
      "127.0.0.1:" + std::to_string(port()), grpc::InsecureChannelCredentials(),
      args);
  // Under load a first connect here has failed at once ("UNKNOWN: ... No
  // such file or directory"), and so would a call made on it without
  // wait_for_ready. Waiting for the connection lets gRPC retry it.
  channel->WaitForConnected(std::chrono::system_clock::now() +
                            std::chrono::seconds(10));
  return channel;
}

std::unique_ptr<parley::v1::ChatService::Stub> TestServer::NewStub() {
  return parley::v1::ChatService::NewStub(NewChannel());
}

std::string Header(const grpc::ClientContext& context,
                   const std::string& key) {
  const auto& md = context.GetServerInitialMetadata();
  auto it = md.find(key);
  return it == md.end() ? "" : std::string(it->second.data(),
                                           it->second.size());
}

void WithToken(grpc::ClientContext* context, const std::string& token) {
  context->AddMetadata("authorization", "Bearer " + token);
}

TestUser SignUp(TestServer& server, const std::string& username) {
  TestUser user;
  user.username = username;
  user.password = "pw-" + username + "-secret";
  auto channel = server.NewChannel();
  {
    auto users = parley::v1::UserService::NewStub(channel);
    grpc::ClientContext ctx;
    parley::v1::CreateUserRequest req;
    req.set_username(username);
    req.set_password(user.password);
    parley::v1::User created;
    grpc::Status s = users->CreateUser(&ctx, req, &created);
    EXPECT_TRUE(s.ok()) << s.error_message();
    user.id = created.id();
  }
  {
    auto auth = parley::v1::AuthService::NewStub(channel);
    grpc::ClientContext ctx;
    parley::v1::SignInRequest req;
    req.set_username(username);
    req.set_password(user.password);
    parley::v1::SignInResponse resp;
    grpc::Status s = auth->SignIn(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    user.token = resp.token();
  }
  return user;
}

}  // namespace parley::testing
