#include "tests/server/api/test_server.h"

#include <chrono>

#include "gtest/gtest.h"

namespace parley::testing {

TestServer::TestServer(chat::HubOptions hub_options,
                       api::ReadOptions read_options)
    : hub_(hub_options, &store_, Clock::Real()),
      service_(&hub_, &scheduler_, read_options) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port_);
  builder.RegisterService(&service_);
  server_ = builder.BuildAndStart();
  EXPECT_NE(server_, nullptr);
  EXPECT_NE(port_, 0);
}

TestServer::~TestServer() {
  hub_.Shutdown();
  server_->Shutdown(std::chrono::system_clock::now() +
                    std::chrono::seconds(5));
  server_->Wait();
}

std::unique_ptr<parley::v1::ChatService::Stub> TestServer::NewStub() {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return parley::v1::ChatService::NewStub(grpc::CreateCustomChannel(
      "127.0.0.1:" + std::to_string(port_), grpc::InsecureChannelCredentials(),
      args));
}

std::string Trailer(const grpc::ClientContext& context,
                    const std::string& key) {
  const auto& md = context.GetServerTrailingMetadata();
  auto it = md.find(key);
  return it == md.end() ? "" : std::string(it->second.data(),
                                           it->second.size());
}

}  // namespace parley::testing
