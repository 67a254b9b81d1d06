// parley_server: the Parley gRPC server. Flags take their defaults from
// PARLEY_<FLAG> environment variables; the command line wins.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <system_error>

#include "absl/flags/flag.h"
#include "grpc/health/v1/health.pb.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/api/chat_service.h"
#include "server/chat/hub.h"
#include "server/common/clock.h"
#include "server/common/env_flags.h"
#include "server/common/scheduler.h"
#include "server/store/memory_store.h"

ABSL_FLAG(std::string, grpc_addr, "127.0.0.1:50051",
          "Address the gRPC server listens on; port 0 picks a free port.");
ABSL_FLAG(std::string, port_file, "",
          "If set, the bound gRPC port is written to this file once the "
          "server listens.");
ABSL_FLAG(std::string, data_dir, ".parley-data",
          "Directory for the server's data. Created if missing.");
ABSL_FLAG(int64_t, max_message_bytes, 4096,
          "Largest message text accepted, in bytes.");
ABSL_FLAG(int64_t, max_id_bytes, 128, "Longest client id accepted, in bytes.");
ABSL_FLAG(int64_t, channel_capacity, 1024,
          "Events queued per client before the gap policy applies.");
ABSL_FLAG(absl::Duration, session_idle_timeout, absl::Minutes(5),
          "A session with no reader and no send for this long is reaped.");
ABSL_FLAG(absl::Duration, receive_default_timeout, absl::Seconds(30),
          "Long-poll wait when the request gives no timeout.");
ABSL_FLAG(absl::Duration, receive_max_timeout, absl::Seconds(60),
          "Longest long-poll wait; larger requested timeouts are lowered.");
ABSL_FLAG(int64_t, receive_max_events, 256,
          "Most events one long poll returns.");
ABSL_FLAG(int64_t, stream_max_batch, 256,
          "Most events coalesced into one Subscribe write.");
ABSL_FLAG(int64_t, history_limit, 100000,
          "Events kept per room by the in-memory history.");
ABSL_FLAG(int64_t, max_request_bytes, 1 << 20,
          "Largest gRPC request accepted, in bytes.");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(5),
          "On SIGTERM, how long calls may take to finish before they are "
          "cancelled.");

namespace {

void Log(const std::string& line) {
  std::fprintf(stderr, "%s parley_server: %s\n",
               absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(),
                                absl::UTCTimeZone())
                   .c_str(),
               line.c_str());
}

[[noreturn]] void Die(const std::string& line) {
  Log(absl::StrCat("fatal: ", line));
  std::exit(1);
}

// Writes `port` to `path` through a rename, so a reader never sees a
// partial file.
void WritePortFile(const std::string& path, int port) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << port << "\n";
    if (!out) Die(absl::StrCat("cannot write ", tmp));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) Die(absl::StrCat("cannot rename ", tmp, ": ", ec.message()));
}

int64_t Positive(const absl::Flag<int64_t>& flag, const char* name) {
  const int64_t v = absl::GetFlag(flag);
  if (v <= 0) Die(absl::StrCat("--", name, " must be positive"));
  return v;
}

// Reaps idle sessions periodically, on the scheduler's thread.
void ScheduleReaper(parley::Scheduler* scheduler, parley::chat::Hub* hub,
                    absl::Duration every) {
  scheduler->Schedule(absl::Now() + every, [scheduler, hub, every] {
    if (int n = hub->ReapIdle(); n > 0) {
      Log(absl::StrCat("reaped ", n, " idle session(s)"));
    }
    ScheduleReaper(scheduler, hub, every);
  });
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "The Parley chat server. Every flag also reads PARLEY_<FLAG>.");
  if (absl::Status s = parley::ApplyEnvironmentToFlags("server/main.cc");
      !s.ok()) {
    Die(std::string(s.message()));
  }
  absl::ParseCommandLine(argc, argv);

  // Every thread started from here on inherits the blocked signals; the main
  // thread takes them with sigwait.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const std::string data_dir = absl::GetFlag(FLAGS_data_dir);
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) Die(absl::StrCat("cannot create --data_dir ", data_dir, ": ",
                           ec.message()));

  parley::chat::HubOptions hub_options;
  hub_options.channel_capacity =
      Positive(FLAGS_channel_capacity, "channel_capacity");
  hub_options.max_message_bytes =
      Positive(FLAGS_max_message_bytes, "max_message_bytes");
  hub_options.max_id_bytes = Positive(FLAGS_max_id_bytes, "max_id_bytes");
  hub_options.session_idle_timeout = absl::GetFlag(FLAGS_session_idle_timeout);
  if (hub_options.session_idle_timeout <= absl::ZeroDuration()) {
    Die("--session_idle_timeout must be positive");
  }

  parley::api::ReadOptions read_options;
  read_options.receive_default_timeout =
      absl::GetFlag(FLAGS_receive_default_timeout);
  read_options.receive_max_timeout = absl::GetFlag(FLAGS_receive_max_timeout);
  if (read_options.receive_default_timeout <= absl::ZeroDuration() ||
      read_options.receive_max_timeout < read_options.receive_default_timeout) {
    Die("need 0 < --receive_default_timeout <= --receive_max_timeout");
  }
  read_options.receive_max_events =
      Positive(FLAGS_receive_max_events, "receive_max_events");
  read_options.stream_max_batch =
      Positive(FLAGS_stream_max_batch, "stream_max_batch");

  parley::store::MemoryStore store(Positive(FLAGS_history_limit,
                                            "history_limit"));
  parley::Scheduler scheduler;
  parley::chat::Hub hub(hub_options, &store, parley::Clock::Real());
  parley::api::ChatService chat_service(&hub, &scheduler, read_options);
  ScheduleReaper(&scheduler, &hub,
                 std::clamp(hub_options.session_idle_timeout / 4,
                            absl::Milliseconds(100), absl::Seconds(10)));

  // Referencing the health messages links their descriptors, so reflection
  // (and so grpcurl) can describe grpc.health.v1.Health.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  const std::string addr = absl::GetFlag(FLAGS_grpc_addr);
  builder.AddListeningPort(addr, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&chat_service);
  builder.SetMaxReceiveMessageSize(
      static_cast<int>(Positive(FLAGS_max_request_bytes, "max_request_bytes")));
  // Find dead peers of idle streams, and let clients keep theirs alive.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 60 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20 * 1000);
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) Die(absl::StrCat("cannot listen on ", addr));

  Log(absl::StrCat("listening on ", addr, " (port ", port, "), data in ",
                   data_dir, "; history is kept in memory"));
  if (const std::string pf = absl::GetFlag(FLAGS_port_file); !pf.empty()) {
    WritePortFile(pf, port);
  }

  int sig = 0;
  sigwait(&signals, &sig);
  Log(absl::StrCat("signal ", sig, ": shutting down"));
  server->GetHealthCheckService()->Shutdown();
  // Open streams and polls end with UNAVAILABLE instead of a dropped
  // connection; then in-flight calls get the grace period.
  hub.Shutdown();
  server->Shutdown(absl::ToChronoTime(absl::Now() +
                                      absl::GetFlag(FLAGS_shutdown_grace)));
  server->Wait();
  Log("stopped");
  return 0;
}
