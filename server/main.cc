// parley_server: the Parley gRPC server. Flags take their defaults from
// PARLEY_<FLAG> environment variables; the command line wins.
#include <signal.h>

#include <algorithm>
#include <limits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/synchronization/mutex.h"
#include "absl/flags/marshalling.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/api/server.h"
#include "server/auth/secret_file.h"
#include "server/common/env_flags.h"
#include "server/common/log.h"

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
ABSL_FLAG(int64_t, lobby_max_sessions, 10000,
          "Lobby (seed 000) clients joined at once, in all; a join past it "
          "is refused (RESOURCE_EXHAUSTED / 429, LOBBY_FULL). 0: no limit.");
ABSL_FLAG(int64_t, lobby_sessions_per_address, 100,
          "Lobby clients one address may have joined at once; a join past "
          "it is refused (TOO_MANY_SESSIONS). 0: no limit.");
ABSL_FLAG(absl::Duration, receive_default_timeout, absl::Seconds(30),
          "Long-poll wait when the request gives no timeout.");
ABSL_FLAG(absl::Duration, receive_max_timeout, absl::Seconds(60),
          "Longest long-poll wait; larger requested timeouts are lowered.");
ABSL_FLAG(int64_t, receive_max_events, 256,
          "Most events one long poll returns.");
ABSL_FLAG(int64_t, stream_max_batch, 256,
          "Most events coalesced into one Subscribe write.");
ABSL_FLAG(int64_t, history_max_page, 1000,
          "Most messages one history page (n, page_size) may ask for.");
ABSL_FLAG(std::string, sqlite_synchronous, "normal",
          "SQLite's synchronous setting: normal (durable against a crash of "
          "the server) or full (also against power loss).");
ABSL_FLAG(int64_t, sqlite_checkpoint_pages, 1000,
          "New WAL pages at which the store's checkpoint thread copies the "
          "WAL into the database (off the writer's path; the writer starts "
          "the WAL again past 16 times this); 0: SQLite's automatic "
          "checkpoint, run by the writer itself.");
ABSL_FLAG(std::string, store, "sqlite",
          "Where the data lives: sqlite (<data_dir>/parley.db, embedded) or "
          "postgres (--postgres_dsn; several servers may share it). The "
          "token key stays in --data_dir either way.");
ABSL_FLAG(std::string, bus, "inprocess",
          "How servers sharing one PostgreSQL database hear each other's "
          "events: inprocess (this server alone) or redis (--redis_addr).");
ABSL_FLAG(std::string, redis_addr, "127.0.0.1:6379",
          "Redis of --bus=redis, as host:port.");
ABSL_FLAG(int64_t, redis_max_queued, 100000,
          "Events waiting to be published on Redis; past this, new ones are "
          "dropped from the bus (the other servers read them from the "
          "database at the next event).");
ABSL_FLAG(std::string, postgres_dsn, "",
          "The PostgreSQL database of --store=postgres: a libpq keyword/value "
          "string (host=... port=... dbname=... user=... password=...) or a "
          "postgresql:// URI. Logs and errors show it without its password.");
ABSL_FLAG(int64_t, postgres_read_connections, 8,
          "PostgreSQL connections the store reads on (a pool); the writer "
          "has one more of its own.");
ABSL_FLAG(absl::Duration, postgres_statement_timeout, absl::Seconds(5),
          "Longest a PostgreSQL statement may run (statement_timeout on "
          "every connection); the write or read fails UNAVAILABLE past it. "
          "0: no limit.");
ABSL_FLAG(absl::Duration, postgres_connect_timeout, absl::Seconds(3),
          "Longest opening a PostgreSQL connection may take; while the "
          "database is unreachable, writes fail within about this long.");
ABSL_FLAG(absl::Duration, postgres_startup_wait, absl::Seconds(30),
          "How long the server keeps trying to reach PostgreSQL when it "
          "starts (a database that starts at the same time, as under "
          "docker compose) before it gives up; 0: one try.");
ABSL_FLAG(int64_t, postgres_max_batch, 1024,
          "Most writes the PostgreSQL store's writer commits in one "
          "transaction.");
ABSL_FLAG(int64_t, store_max_batch, 1024,
          "Most writes the store's writer commits in one transaction.");
ABSL_FLAG(int64_t, store_cache_entries, 100000,
          "Users, rooms and memberships (each) kept in memory in front of "
          "SQLite; 0 turns the cache off.");
ABSL_FLAG(int64_t, fanout_threads, 0,
          "Threads delivering committed events to subscribers (a room "
          "always on the same one); 0: one per CPU core.");
ABSL_FLAG(int64_t, presence_max_subscribers, 1000,
          "Rooms with this many open streams or more send no live join/leave "
          "event per stream (n streams coming and going would cost n^2).");
ABSL_FLAG(absl::Duration, presence_leave_grace, absl::Seconds(5),
          "How long a user's leave from a room waits after their last stream "
          "there ends; a stream reopened within it (a reconnect) announces "
          "neither leave nor join. 0: leaves go out at once.");
ABSL_FLAG(absl::Duration, typing_ttl, absl::Seconds(6),
          "How long a typing notice holds unless renewed.");
ABSL_FLAG(absl::Duration, memory_trim_interval, absl::Seconds(30),
          "How often freed heap memory is handed back to the OS "
          "(malloc_trim), e.g. after many streams closed; 0 disables.");
ABSL_FLAG(std::string, token_key_file, "",
          "File holding the HS256 token key (>= 32 bytes). Empty: "
          "<data_dir>/token.key, generated on first start.");
ABSL_FLAG(absl::Duration, token_lifetime, absl::Hours(24),
          "How long a user or room token is valid.");
ABSL_FLAG(absl::Duration, token_clock_skew, absl::Minutes(1),
          "How far in the future a token's issue time may be (another "
          "server's clock ahead of this one's); later ones are refused.");
ABSL_FLAG(std::vector<std::string>, admin_users, {},
          "Comma-separated usernames with admin rights (manage every room).");
ABSL_FLAG(int64_t, password_hash_ops, 2,
          "argon2id passes per password hash (libsodium opslimit).");
ABSL_FLAG(int64_t, password_hash_mem_kib, 64 * 1024,
          "argon2id memory per password hash, in KiB.");
ABSL_FLAG(int64_t, password_hash_threads, 0,
          "Threads that hash and verify passwords (argon2id: sign-up, "
          "sign-in, password and room-password changes, room passwords), "
          "off gRPC's threads; each holds --password_hash_mem_kib while it "
          "hashes. 0: half the CPU cores, at least 1.");
ABSL_FLAG(int64_t, password_hash_queue, 32,
          "Password hashes that may wait for a hashing thread; a call past "
          "this is refused at once (RESOURCE_EXHAUSTED, SERVER_BUSY). 0: "
          "none wait.");
ABSL_FLAG(int64_t, store_read_threads, 8,
          "Threads that run calls' store reads (tokens' users, rooms, "
          "members, history), off gRPC's threads.");
ABSL_FLAG(int64_t, store_read_queue, 4096,
          "Calls that may wait for a store-read thread; a call past this is "
          "refused at once (RESOURCE_EXHAUSTED, SERVER_BUSY). 0: none wait.");
ABSL_FLAG(double, sends_per_user_per_second, 20,
          "Messages (and edits) a user may send per second, on average; a "
          "send past it is refused (RESOURCE_EXHAUSTED / 429, RATE_LIMITED, "
          "with when to retry). Anonymous clients count per address. 0: no "
          "limit.");
ABSL_FLAG(double, send_burst_per_user, 60,
          "Sends a user may make at once before --sends_per_user_per_second "
          "applies.");
ABSL_FLAG(double, sends_per_room_per_second, 500,
          "Messages a room (or a user's direct messages) takes per second, "
          "from everyone together; 0: no limit.");
ABSL_FLAG(double, send_burst_per_room, 1000,
          "Sends a room takes at once before --sends_per_room_per_second "
          "applies.");
ABSL_FLAG(double, sign_ins_per_address_per_minute, 60,
          "Sign-ins an address may try per minute; 0: no limit.");
ABSL_FLAG(double, sign_in_burst_per_address, 20,
          "Sign-ins an address may try at once before "
          "--sign_ins_per_address_per_minute applies.");
ABSL_FLAG(int64_t, sign_in_free_failures_per_user, 5,
          "Wrong passwords in a row a user's name may take before each "
          "further one doubles a wait (from --sign_in_backoff); -1: no "
          "back-off.");
ABSL_FLAG(int64_t, sign_in_free_failures_per_address, 20,
          "The same for an address (unknown names included); -1: none.");
ABSL_FLAG(absl::Duration, sign_in_backoff, absl::Seconds(1),
          "The first wait after too many failed sign-ins.");
ABSL_FLAG(absl::Duration, sign_in_backoff_max, absl::Minutes(15),
          "The longest wait after failed sign-ins; a name or address with "
          "no failure for this long starts afresh.");
ABSL_FLAG(int64_t, streams_per_user, 100,
          "Streams (Subscribe, hence SSE and WebSocket subscriptions) a user "
          "may hold open at once; 0: no limit.");
ABSL_FLAG(int64_t, streams_per_address, 1000,
          "Streams an address may hold open at once, anonymous lobby "
          "streams included; 0: no limit.");
ABSL_FLAG(int64_t, max_tracked_keys, 100000,
          "Users, addresses or rooms each of the limits above tracks at "
          "once; past it, new ones are refused until old ones are forgotten.");
ABSL_FLAG(absl::Duration, limit_sync_interval, absl::Milliseconds(100),
          "With --bus=redis: how often each server shares the counts of the "
          "limits above through Redis; a limit can be passed by what the "
          "other servers let through in one interval.");
ABSL_FLAG(std::vector<std::string>, trusted_proxies, {},
          "Comma-separated IP addresses and CIDR prefixes of proxies (the "
          "gateway, a load balancer) whose x-forwarded-for names the client "
          "address the per-address limits count; from any other peer it is "
          "ignored. Empty: the connection's peer is the client.");
ABSL_FLAG(std::string, edge_secret, "",
          "Shared secret of the gateways that fan streams out themselves "
          "(parley.internal.EdgeService, docs/fanout.md): give the gateways "
          "the same --edge_secret. Empty: the service refuses every call and "
          "gateways keep one stream per client. Prefer the environment "
          "(PARLEY_EDGE_SECRET) to the command line, which others can read.");
ABSL_FLAG(std::string, edge_secret_file, "",
          "File holding the edge secret instead of --edge_secret (not both): "
          "read when it exists (without surrounding white space; an empty "
          "file is an error), else created with a fresh random secret, mode "
          "0600, atomically, so servers starting together on one shared "
          "volume agree on one. Give the gateways the same file "
          "(--edge_secret_file); they wait for it to appear.");
ABSL_FLAG(int64_t, max_request_bytes, 1 << 20,
          "Largest gRPC request accepted, in bytes.");
ABSL_FLAG(int64_t, grpc_max_streams_per_connection, 100000,
          "Concurrent streams one gRPC connection may hold (HTTP/2 "
          "SETTINGS_MAX_CONCURRENT_STREAMS); a gateway carries all its "
          "clients' streams on one connection per server. At most "
          "2147483647.");
ABSL_FLAG(int64_t, grpc_memory_quota_bytes, 256 << 20,
          "Memory gRPC's transport may hold at once (read buffers, requests "
          "being read); past it, streams asking for more are reset "
          "(RESOURCE_EXHAUSTED). gRPC reads a request whole before checking "
          "--max_request_bytes, so this is what bounds a flood of huge "
          "requests.");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(5),
          "On SIGTERM, how long calls may take to finish before they are "
          "cancelled.");
ABSL_FLAG(absl::Duration, idempotency_key_ttl, absl::Hours(24),
          "How long a send's idempotency key is honoured after the send: a "
          "retry with the same key within it returns the stored message.");
ABSL_FLAG(absl::Duration, stats_window, absl::Minutes(5),
          "The sliding window of StatsService's average and peak response "
          "time and CPU percent (one-second resolution).");
ABSL_FLAG(std::string, log_level, "info",
          "Least severe log records written: debug (also every call), info, "
          "warning or error.");
ABSL_FLAG(std::string, log_format, "text",
          "Log records as text lines or as one JSON object per line (json).");

namespace {

[[noreturn]] void Die(const std::string& line) {
  parley::log::Error("fatal", {{"error", line}});
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

int64_t NotNegative(const absl::Flag<int64_t>& flag, const char* name) {
  const int64_t v = absl::GetFlag(flag);
  if (v < 0) Die(absl::StrCat("--", name, " must not be negative"));
  return v;
}

double NotNegativeRate(const absl::Flag<double>& flag, const char* name) {
  const double v = absl::GetFlag(flag);
  if (!(v >= 0) || v > 1e9) {
    Die(absl::StrCat("--", name, " must be between 0 and 1e9"));
  }
  return v;
}

parley::api::QuotaOptions QuotaOptionsFromFlags() {
  parley::api::QuotaOptions q;
  q.sends_per_user_per_second =
      NotNegativeRate(FLAGS_sends_per_user_per_second,
                      "sends_per_user_per_second");
  q.send_burst_per_user =
      NotNegativeRate(FLAGS_send_burst_per_user, "send_burst_per_user");
  q.sends_per_room_per_second =
      NotNegativeRate(FLAGS_sends_per_room_per_second,
                      "sends_per_room_per_second");
  q.send_burst_per_room =
      NotNegativeRate(FLAGS_send_burst_per_room, "send_burst_per_room");
  q.sign_ins_per_address_per_minute =
      NotNegativeRate(FLAGS_sign_ins_per_address_per_minute,
                      "sign_ins_per_address_per_minute");
  q.sign_in_burst_per_address = NotNegativeRate(
      FLAGS_sign_in_burst_per_address, "sign_in_burst_per_address");
  const auto failures = [](const absl::Flag<int64_t>& flag, const char* name) {
    const int64_t v = absl::GetFlag(flag);
    if (v < -1 || v > 1000000) {
      Die(absl::StrCat("--", name, " must be between -1 and 1000000"));
    }
    return static_cast<int>(v);
  };
  q.sign_in_free_failures_per_user = failures(
      FLAGS_sign_in_free_failures_per_user, "sign_in_free_failures_per_user");
  q.sign_in_free_failures_per_address =
      failures(FLAGS_sign_in_free_failures_per_address,
               "sign_in_free_failures_per_address");
  q.sign_in_backoff = absl::GetFlag(FLAGS_sign_in_backoff);
  q.sign_in_backoff_max = absl::GetFlag(FLAGS_sign_in_backoff_max);
  if (q.sign_in_backoff <= absl::ZeroDuration() ||
      q.sign_in_backoff_max < q.sign_in_backoff) {
    Die("--sign_in_backoff must be positive and at most "
        "--sign_in_backoff_max");
  }
  q.streams_per_user = static_cast<size_t>(
      NotNegative(FLAGS_streams_per_user, "streams_per_user"));
  q.streams_per_address = static_cast<size_t>(
      NotNegative(FLAGS_streams_per_address, "streams_per_address"));
  q.max_tracked_keys = static_cast<size_t>(
      Positive(FLAGS_max_tracked_keys, "max_tracked_keys"));
  return q;
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
  // gRPC's absl::Mutexes otherwise track lock order on every acquisition in
  // Debian's (assertion-enabled) Abseil: a cost on every call, for a check
  // meant for debugging.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  parley::log::Level log_level;
  parley::log::Format log_format;
  if (!parley::log::ParseLevel(absl::GetFlag(FLAGS_log_level), &log_level)) {
    Die("--log_level must be debug, info, warning or error");
  }
  if (!parley::log::ParseFormat(absl::GetFlag(FLAGS_log_format), &log_format)) {
    Die("--log_format must be text or json");
  }
  parley::log::Configure(log_level, log_format);

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
  hub_options.session_limits.total = static_cast<size_t>(
      NotNegative(FLAGS_lobby_max_sessions, "lobby_max_sessions"));
  hub_options.session_limits.per_owner = static_cast<size_t>(NotNegative(
      FLAGS_lobby_sessions_per_address, "lobby_sessions_per_address"));
  if (hub_options.session_idle_timeout <= absl::ZeroDuration()) {
    Die("--session_idle_timeout must be positive");
  }

  parley::api::ServerOptions options;
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
  read_options.history_max_page =
      Positive(FLAGS_history_max_page, "history_max_page");

  options.read = read_options;
  options.hub = hub_options;
  options.grpc_addr = absl::GetFlag(FLAGS_grpc_addr);
  options.data_dir = data_dir;
  const std::string sync = absl::GetFlag(FLAGS_sqlite_synchronous);
  if (sync != "normal" && sync != "full") {
    Die("--sqlite_synchronous must be normal or full");
  }
  options.sqlite_synchronous_full = sync == "full";
  const int64_t checkpoint_pages = absl::GetFlag(FLAGS_sqlite_checkpoint_pages);
  if (checkpoint_pages < 0 || checkpoint_pages > (int64_t{1} << 30)) {
    Die("--sqlite_checkpoint_pages must be between 0 and 1073741824");
  }
  options.sqlite_checkpoint_pages = static_cast<uint32_t>(checkpoint_pages);
  options.store_max_batch = Positive(FLAGS_store_max_batch, "store_max_batch");
  const std::string bus = absl::GetFlag(FLAGS_bus);
  if (bus != "inprocess" && bus != "redis") {
    Die("--bus must be inprocess or redis");
  }
  if (bus == "redis") {
    if (absl::GetFlag(FLAGS_store) != "postgres") {
      Die("--bus=redis needs --store=postgres: the servers must share one "
          "database");
    }
    options.bus = parley::api::ServerOptions::BusKind::kRedis;
    const std::string addr = absl::GetFlag(FLAGS_redis_addr);
    const size_t colon = addr.rfind(':');
    int port = 0;
    if (colon == std::string::npos || colon == 0 ||
        !absl::SimpleAtoi(addr.substr(colon + 1), &port) || port <= 0 ||
        port > 65535) {
      Die("--redis_addr must be host:port");
    }
    options.limit_sync_interval = absl::GetFlag(FLAGS_limit_sync_interval);
    if (options.limit_sync_interval <= absl::ZeroDuration()) {
      Die("--limit_sync_interval must be positive");
    }
    options.redis.host = addr.substr(0, colon);
    options.redis.port = port;
    options.redis.max_queued = static_cast<size_t>(
        Positive(FLAGS_redis_max_queued, "redis_max_queued"));
  }
  const std::string store = absl::GetFlag(FLAGS_store);
  if (store != "sqlite" && store != "postgres") {
    Die("--store must be sqlite or postgres");
  }
  if (store == "postgres") {
    options.store = parley::api::ServerOptions::StoreKind::kPostgres;
    options.postgres.dsn = absl::GetFlag(FLAGS_postgres_dsn);
    if (options.postgres.dsn.empty()) {
      Die("--store=postgres needs --postgres_dsn");
    }
    options.postgres.read_connections = static_cast<size_t>(
        Positive(FLAGS_postgres_read_connections, "postgres_read_connections"));
    options.postgres.max_batch = static_cast<size_t>(
        Positive(FLAGS_postgres_max_batch, "postgres_max_batch"));
    options.postgres.statement_timeout =
        absl::GetFlag(FLAGS_postgres_statement_timeout);
    if (options.postgres.statement_timeout < absl::ZeroDuration()) {
      Die("--postgres_statement_timeout must not be negative");
    }
    options.postgres.connect_timeout =
        absl::GetFlag(FLAGS_postgres_connect_timeout);
    if (options.postgres.connect_timeout <= absl::ZeroDuration()) {
      Die("--postgres_connect_timeout must be positive");
    }
    options.postgres_startup_wait = absl::GetFlag(FLAGS_postgres_startup_wait);
    if (options.postgres_startup_wait < absl::ZeroDuration()) {
      Die("--postgres_startup_wait must not be negative");
    }
  }
  const int64_t cache_entries = absl::GetFlag(FLAGS_store_cache_entries);
  if (cache_entries < 0) Die("--store_cache_entries must not be negative");
  options.store_cache_entries = static_cast<size_t>(cache_entries);
  const int64_t fanout = absl::GetFlag(FLAGS_fanout_threads);
  if (fanout < 0) Die("--fanout_threads must not be negative");
  options.hub.fanout_threads =
      fanout > 0 ? static_cast<size_t>(fanout)
                 : std::max(1u, std::thread::hardware_concurrency());
  options.memory_trim_interval = absl::GetFlag(FLAGS_memory_trim_interval);
  options.hub.presence_max_subscribers =
      Positive(FLAGS_presence_max_subscribers, "presence_max_subscribers");
  options.hub.presence_leave_grace = absl::GetFlag(FLAGS_presence_leave_grace);
  if (options.hub.presence_leave_grace < absl::ZeroDuration()) {
    Die("--presence_leave_grace must not be negative");
  }
  options.typing_ttl = absl::GetFlag(FLAGS_typing_ttl);
  if (options.typing_ttl <= absl::ZeroDuration()) {
    Die("--typing_ttl must be positive");
  }
  options.token_key_file = absl::GetFlag(FLAGS_token_key_file);
  options.token_lifetime = absl::GetFlag(FLAGS_token_lifetime);
  if (options.token_lifetime < absl::Seconds(1)) {
    Die("--token_lifetime must be at least 1s (tokens count whole seconds)");
  }
  options.token_clock_skew = absl::GetFlag(FLAGS_token_clock_skew);
  if (options.token_clock_skew < absl::ZeroDuration()) {
    Die("--token_clock_skew must not be negative");
  }
  options.admin_users = absl::GetFlag(FLAGS_admin_users);
  options.password.ops_limit = Positive(FLAGS_password_hash_ops,
                                        "password_hash_ops");
  options.password.mem_limit =
      static_cast<size_t>(Positive(FLAGS_password_hash_mem_kib,
                                   "password_hash_mem_kib")) * 1024;
  const int64_t hash_threads =
      NotNegative(FLAGS_password_hash_threads, "password_hash_threads");
  options.password_hashing.threads =
      hash_threads > 0 ? static_cast<size_t>(hash_threads)
                       : std::max(1u, std::thread::hardware_concurrency() / 2);
  options.password_hashing.queue_limit = static_cast<size_t>(
      NotNegative(FLAGS_password_hash_queue, "password_hash_queue"));
  options.store_reads.threads = static_cast<size_t>(
      Positive(FLAGS_store_read_threads, "store_read_threads"));
  options.store_reads.queue_limit = static_cast<size_t>(
      NotNegative(FLAGS_store_read_queue, "store_read_queue"));
  // Each thread is a real one, started at once.
  if (hash_threads > 1024 || options.store_reads.threads > 1024) {
    Die("--password_hash_threads and --store_read_threads must be at most "
        "1024");
  }
  options.quotas = QuotaOptionsFromFlags();
  options.trusted_proxies = absl::GetFlag(FLAGS_trusted_proxies);
  absl::StatusOr<std::string> edge_secret = parley::auth::EdgeSecretFromFlags(
      absl::GetFlag(FLAGS_edge_secret), absl::GetFlag(FLAGS_edge_secret_file));
  if (!edge_secret.ok()) Die(std::string(edge_secret.status().message()));
  options.edge_secret = *std::move(edge_secret);
  options.max_request_bytes = Positive(FLAGS_max_request_bytes,
                                       "max_request_bytes");
  options.grpc_max_streams_per_connection = static_cast<size_t>(std::min<int64_t>(
      Positive(FLAGS_grpc_max_streams_per_connection,
               "grpc_max_streams_per_connection"),
      std::numeric_limits<int>::max()));
  options.grpc_memory_quota_bytes = static_cast<size_t>(
      Positive(FLAGS_grpc_memory_quota_bytes, "grpc_memory_quota_bytes"));
  if (options.grpc_memory_quota_bytes < 4 * options.max_request_bytes) {
    Die("--grpc_memory_quota_bytes must be at least 4 x --max_request_bytes");
  }
  options.shutdown_grace = absl::GetFlag(FLAGS_shutdown_grace);
  options.idempotency_key_ttl = absl::GetFlag(FLAGS_idempotency_key_ttl);
  if (options.idempotency_key_ttl < absl::Seconds(1)) {
    Die("--idempotency_key_ttl must be at least 1s");
  }
  options.stats_window = absl::GetFlag(FLAGS_stats_window);
  if (options.stats_window < absl::Seconds(1)) {
    Die("--stats_window must be at least 1s");
  }

  absl::StatusOr<std::unique_ptr<parley::api::Server>> server =
      parley::api::Server::Start(options);
  if (!server.ok()) Die(std::string(server.status().ToString()));
  const int port = (*server)->port();
  parley::log::Info("listening", {{"addr", options.grpc_addr},
                          {"port", port},
                          {"data_dir", data_dir},
                          {"store", store},
                          {"sqlite_synchronous", sync},
                          {"stats_window", absl::FormatDuration(
                                               options.stats_window)}});
  if (const std::string pf = absl::GetFlag(FLAGS_port_file); !pf.empty()) {
    WritePortFile(pf, port);
  }

  int sig = 0;
  sigwait(&signals, &sig);
  parley::log::Info("shutting down", {{"signal", sig}});
  (*server)->Shutdown();
  parley::log::Info("stopped");
  return 0;
}
