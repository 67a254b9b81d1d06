// A real Parley gRPC server in the test process, on a free loopback port,
// assembled exactly as the binary assembles it (server/api/server.h), on a
// fresh SQLite data directory with the cheapest password hashing.
#ifndef PARLEY_TESTS_SERVER_API_TEST_SERVER_H_
#define PARLEY_TESTS_SERVER_API_TEST_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "parley/v1/accounts.grpc.pb.h"
#include "parley/v1/chat.grpc.pb.h"
#include "parley/v1/messages.grpc.pb.h"
#include "parley/v1/rooms.grpc.pb.h"
#include "server/api/server.h"

namespace parley::testing {

class TestServer {
 public:
  // `options.data_dir` is replaced by a fresh temporary directory; the
  // password cost by the minimum.
  explicit TestServer(api::ServerOptions options = {});
  ~TestServer();

  // Stops the server (as SIGTERM does) and starts it again on the same data
  // directory and a new port.
  void Restart();

  // A channel of its own, so clients do not share one HTTP/2 link.
  std::shared_ptr<grpc::Channel> NewChannel();
  std::unique_ptr<parley::v1::ChatService::Stub> NewStub();

  api::Server& server() { return *server_; }
  chat::Hub& hub() { return server_->hub(); }
  store::Store& store() { return server_->store(); }
  int port() const { return server_->port(); }
  const std::string& data_dir() const { return options_.data_dir; }

 private:
  api::ServerOptions options_;
  std::unique_ptr<api::Server> server_;
};

// The trailing-metadata value `key` of a finished call, or "".
std::string Trailer(const grpc::ClientContext& context, const std::string& key);
// The initial-metadata value `key` of a call, or "".
std::string Header(const grpc::ClientContext& context, const std::string& key);

// Adds `authorization: Bearer <token>` to `context`.
void WithToken(grpc::ClientContext* context, const std::string& token);

// A signed-up user with a token.
struct TestUser {
  std::string id;
  std::string username;
  std::string password;
  std::string token;
};
// Creates user `username` (password "pw-" + username + "-secret") and signs
// in. Fails the test on error.
TestUser SignUp(TestServer& server, const std::string& username);

}  // namespace parley::testing

#endif  // PARLEY_TESTS_SERVER_API_TEST_SERVER_H_
