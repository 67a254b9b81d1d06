// parley_cli: a command-line client of parley.v1.ChatService on the
// generated C++ stubs.
//
//   parley_cli [--server=HOST:PORT] join ID
//   parley_cli send ID TEXT...
//   parley_cli leave ID
//   parley_cli poll ID [--timeout=SECONDS]
//   parley_cli subscribe ID          (until the stream ends or Ctrl-C)
//
// Events are printed one a line: sequence, kind, sender, text.
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "parley/v1/chat.grpc.pb.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "The Parley server.");
ABSL_FLAG(double, timeout, 0,
          "For poll: seconds to wait; 0 means the server's default.");

namespace {

using parley::v1::ChatService;

const char* KindName(parley::v1::EventKind kind) {
  switch (kind) {
    case parley::v1::EVENT_KIND_MESSAGE:
      return "message";
    case parley::v1::EVENT_KIND_JOIN:
      return "join";
    case parley::v1::EVENT_KIND_LEAVE:
      return "leave";
    case parley::v1::EVENT_KIND_GAP:
      return "gap";
    default:
      return "unknown";
  }
}

void Print(const parley::v1::Event& e) {
  if (e.kind() == parley::v1::EVENT_KIND_GAP) {
    std::printf("-\tgap\tmissed %llu..%llu\n",
                static_cast<unsigned long long>(e.gap_first_sequence()),
                static_cast<unsigned long long>(e.gap_last_sequence()));
  } else {
    std::printf("%llu\t%s\t%s\t%s\n",
                static_cast<unsigned long long>(e.sequence()),
                KindName(e.kind()), e.sender().c_str(), e.text().c_str());
  }
  std::fflush(stdout);
}

int Fail(const grpc::Status& status) {
  std::fprintf(stderr, "error: %d %s\n", static_cast<int>(status.error_code()),
               status.error_message().c_str());
  return 1;
}

int Usage() {
  std::fprintf(stderr,
               "usage: parley_cli [--server=HOST:PORT] "
               "join|send|leave|poll|subscribe ID [TEXT...]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "parley_cli join|send|leave|poll|subscribe ID [TEXT...]");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() < 3) return Usage();
  const std::string command = args[1];
  const std::string id = args[2];

  auto stub = ChatService::NewStub(grpc::CreateChannel(
      absl::GetFlag(FLAGS_server), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;

  if (command == "join") {
    parley::v1::JoinRequest req;
    req.set_id(id);
    parley::v1::JoinResponse resp;
    grpc::Status s = stub->Join(&context, req, &resp);
    if (!s.ok()) return Fail(s);
    Print(resp.event());
  } else if (command == "send") {
    if (args.size() < 4) return Usage();
    parley::v1::SendRequest req;
    req.set_id(id);
    req.set_message(absl::StrJoin(args.begin() + 3, args.end(), " "));
    parley::v1::SendResponse resp;
    grpc::Status s = stub->Send(&context, req, &resp);
    if (!s.ok()) return Fail(s);
    Print(resp.event());
  } else if (command == "leave") {
    parley::v1::LeaveRequest req;
    req.set_id(id);
    parley::v1::LeaveResponse resp;
    grpc::Status s = stub->Leave(&context, req, &resp);
    if (!s.ok()) return Fail(s);
    Print(resp.event());
  } else if (command == "poll") {
    parley::v1::ReceiveRequest req;
    req.set_id(id);
    req.set_timeout(absl::GetFlag(FLAGS_timeout));
    parley::v1::ReceiveResponse resp;
    grpc::Status s = stub->Receive(&context, req, &resp);
    if (!s.ok()) return Fail(s);
    for (const auto& e : resp.events()) Print(e);
  } else if (command == "subscribe") {
    parley::v1::SubscribeRequest req;
    req.set_id(id);
    auto reader = stub->Subscribe(&context, req);
    parley::v1::SubscribeResponse resp;
    while (reader->Read(&resp)) {
      for (const auto& e : resp.events()) Print(e);
    }
    grpc::Status s = reader->Finish();
    if (!s.ok()) return Fail(s);
  } else {
    return Usage();
  }
  return 0;
}
