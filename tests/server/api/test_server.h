// A real Parley gRPC server in the test process, on a free loopback port,
// with the same service, hub and scheduler the binary uses.
#ifndef PARLEY_TESTS_SERVER_API_TEST_SERVER_H_
#define PARLEY_TESTS_SERVER_API_TEST_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "parley/v1/chat.grpc.pb.h"
#include "server/api/chat_service.h"
#include "server/chat/hub.h"
#include "server/common/scheduler.h"
#include "server/store/memory_store.h"

namespace parley::testing {

class TestServer {
 public:
  explicit TestServer(chat::HubOptions hub_options = {},
                      api::ReadOptions read_options = {});
  ~TestServer();

  // A stub on its own connection, so clients do not share one HTTP/2 link.
  std::unique_ptr<parley::v1::ChatService::Stub> NewStub();

  chat::Hub& hub() { return hub_; }
  int port() const { return port_; }

 private:
  store::MemoryStore store_{100000};
  Scheduler scheduler_;
  chat::Hub hub_;
  api::ChatService service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

// The trailing-metadata value `key` of a finished call, or "".
std::string Trailer(const grpc::ClientContext& context, const std::string& key);

}  // namespace parley::testing

#endif  // PARLEY_TESTS_SERVER_API_TEST_SERVER_H_
