// A real Parley gRPC server in the test process, on a free loopback port,
// assembled exactly as the binary assembles it (server/api/server.h), on a
// fresh SQLite data directory with the cheapest password hashing.
#ifndef PARLEY_TESTS_SERVER_API_TEST_SERVER_H_
#define PARLEY_TESTS_SERVER_API_TEST_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "parley/v1/accounts.grpc.pb.h"
#include "parley/v1/chat.grpc.pb.h"
#include "parley/v1/messages.grpc.pb.h"
#include "parley/v1/rooms.grpc.pb.h"
#include "server/api/server.h"
#include "server/api/status.h"

namespace parley::testing {

// Every per-client limit off. A test's clients are a few users on one
// address making calls as fast as they can, as no real client does; the
// limits have tests of their own (limits_test.cc).
api::QuotaOptions Unlimited();
// Default options with Unlimited() quotas.
api::ServerOptions UnlimitedOptions();

class TestServer {
 public:
  // `options.data_dir` is replaced by a fresh temporary directory; the
  // password cost by the minimum.
  explicit TestServer(api::ServerOptions options = UnlimitedOptions());
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

// The ErrorInfo reason and field of a failed call's status ("" when none).
inline std::string Reason(const grpc::Status& status) {
  return api::ErrorInfoOf(status).reason;
}
inline std::string Field(const grpc::Status& status) {
  return api::ErrorInfoOf(status).field;
}
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

// ---- Calling a unary method and judging the outcome ----


// Matches any reason or field in Failed().
inline constexpr char kAny[] = "<any>";

// What a finished call left behind, beyond its response.
struct Outcome {
  grpc::Status status;
  std::string reason;
  std::string field;
  std::string http_code;
  std::string location;
};

// Calls `method` on `stub` with `token` (none when empty).
template <class Stub, class Req, class Resp>
Outcome Call(Stub* stub,
             grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&,
                                          Resp*),
             const std::string& token, const Req& request, Resp* response) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  if (!token.empty()) WithToken(&ctx, token);
  Outcome out;
  out.status = (stub->*method)(&ctx, request, response);
  out.reason = Reason(out.status);
  out.field = Field(out.status);
  out.http_code = Header(ctx, "x-http-code");
  out.location = Header(ctx, "x-location");
  return out;
}

inline ::testing::AssertionResult Succeeded(const Outcome& o) {
  if (o.status.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "failed with " << o.status.error_code() << " ("
         << o.status.error_message() << ") reason " << o.reason;
}

// The call failed with `code`, `reason` and `field` ("" = none; kAny =
// whatever).
inline ::testing::AssertionResult Failed(const Outcome& o, grpc::StatusCode code,
                                  const std::string& reason,
                                  const std::string& field = kAny) {
  if (o.status.error_code() == code && (reason == kAny || o.reason == reason) &&
      (field == kAny || o.field == field)) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "got code " << o.status.error_code() << " reason '" << o.reason
         << "' field '" << o.field << "' (" << o.status.error_message()
         << "); want code " << code << " reason '" << reason << "' field '"
         << field << "'";
}

// No password hash in anything a client can see.
inline ::testing::AssertionResult NoHash(const google::protobuf::Message& m) {
  const std::string bytes = m.SerializeAsString();
  if (bytes.find("$argon2") == std::string::npos) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "hash in " << m.DebugString();
}

}  // namespace parley::testing

#endif  // PARLEY_TESTS_SERVER_API_TEST_SERVER_H_
