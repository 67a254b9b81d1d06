// The assembled Parley server: store, hub, authenticator and every parley.v1
// service on one gRPC server. main.cc and the tests build it the same way.
#ifndef PARLEY_SERVER_API_SERVER_H_
#define PARLEY_SERVER_API_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/api/call_stats.h"
#include "server/api/common.h"
#include "server/auth/authenticator.h"
#include "server/auth/password.h"
#include "server/auth/tokens.h"
#include "server/bus/redis_bus.h"
#include "server/bus/redis_limits.h"
#include "server/bus/redis_presence.h"
#include "server/bus/redis_sessions.h"
#include "server/chat/hub.h"
#include "server/api/idempotency.h"
#include "server/common/clock.h"
#include "server/common/scheduler.h"
#include "server/common/worker_pool.h"
#include "server/store/cached_store.h"
#include "server/store/postgres_store.h"
#include "server/api/quotas.h"
#include "server/common/client_address.h"
#include "server/store/store.h"

namespace parley::api {

struct ServerOptions {
  std::string grpc_addr = "127.0.0.1:0";
  std::string data_dir;        // holds token.key, and parley.db for SQLite
  // Where the data lives: SQLite in data_dir (embedded, the default) or a
  // PostgreSQL database that several servers may share (`postgres`; its
  // clock is ignored).
  enum class StoreKind { kSqlite, kPostgres };
  StoreKind store = StoreKind::kSqlite;
  store::PostgresOptions postgres;
  // How long opening PostgreSQL is retried while the database cannot be
  // reached (UNAVAILABLE) at start; zero: one try.
  absl::Duration postgres_startup_wait = absl::Seconds(30);
  bool sqlite_synchronous_full = false;  // FULL instead of NORMAL
  // store::SqliteOptions::checkpoint_pages.
  uint32_t sqlite_checkpoint_pages = 1000;
  size_t store_max_batch = 1024;
  // Users, rooms and memberships kept in memory (each; 0: no cache).
  size_t store_cache_entries = 100000;
  // How often freed heap memory goes back to the OS; zero disables.
  absl::Duration memory_trim_interval = absl::Seconds(30);
  std::string token_key_file;  // empty: <data_dir>/token.key
  absl::Duration token_lifetime = absl::Hours(24);
  // auth::TokenSigner's max_clock_skew.
  absl::Duration token_clock_skew = absl::Minutes(1);
  std::vector<std::string> admin_users;
  auth::PasswordOptions password;
  // The worker pools that run what may block, off gRPC's threads (see
  // docs/security.md): argon2id hashing and verifying (sign-up, sign-in,
  // password changes, room passwords), and the calls' store reads.
  WorkerPoolOptions password_hashing{/*threads=*/1, /*queue_limit=*/32};
  WorkerPoolOptions store_reads{/*threads=*/8, /*queue_limit=*/4096};
  // For tests: wraps the store the services use (the cache included), e.g.
  // to hold a read until the test lets it go. Null: none.
  std::function<std::unique_ptr<store::Store>(std::unique_ptr<store::Store>)>
      wrap_store;
  chat::HubOptions hub;
  // The bus to the other servers on the same database: none (this server
  // alone: in-process fan-out, the default) or Redis.
  enum class BusKind { kInProcess, kRedis };
  BusKind bus = BusKind::kInProcess;
  bus::RedisBusOptions redis;
  ReadOptions read;
  // Every client's fair share (docs/security.md, "Limits").
  QuotaOptions quotas;
  // With the Redis bus: how often the limits' counts are shared.
  absl::Duration limit_sync_interval = absl::Milliseconds(100);
  // Proxies whose x-forwarded-for names the client (AddressSet::Parse).
  std::vector<std::string> trusted_proxies;
  // The secret of the gateways' EdgeService calls (docs/fanout.md); empty:
  // the service refuses every call.
  std::string edge_secret;
  size_t max_request_bytes = 1 << 20;
  // Memory gRPC's transport may hold at once (grpc::ResourceQuota).
  size_t grpc_memory_quota_bytes = 256 << 20;
  // Concurrent streams per gRPC connection (SETTINGS_MAX_CONCURRENT_STREAMS).
  size_t grpc_max_streams_per_connection = 100000;
  absl::Duration shutdown_grace = absl::Seconds(5);
  // How long a send's idempotency key is honoured after its commit.
  absl::Duration idempotency_key_ttl = absl::Hours(24);
  // The sliding window of StatsService's response times and CPU percent.
  absl::Duration stats_window = absl::Minutes(5);
  // How long a typing notice holds unless renewed (PresenceService).
  absl::Duration typing_ttl = absl::Seconds(6);
};

class Server {
 public:
  // Opens the store, loads the key and revoked tokens, starts listening.
  static absl::StatusOr<std::unique_ptr<Server>> Start(ServerOptions options);
  // Shuts down as on SIGTERM if not done yet.
  ~Server();

  // Health NOT_SERVING, open streams end UNAVAILABLE, in-flight calls get
  // the grace period, then the store commits what is queued and closes.
  void Shutdown();

  int port() const { return port_; }
  chat::Hub& hub() { return *hub_; }
  store::Store& store() { return *store_; }
  auth::Authenticator& authenticator() { return *auth_; }
  grpc::Server* grpc_server() { return grpc_server_.get(); }
  CallStats& call_stats() { return *call_stats_; }

 private:
  Server() = default;
  struct Services;
  static void ShareDirectoryChanges(Server* server, store::CachedStore* cache,
                                    chat::HubOptions* hub_options);

  ServerOptions options_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<auth::TokenSigner> signer_;
  std::unique_ptr<auth::Authenticator> auth_;
  std::unique_ptr<auth::PasswordHasher> passwords_;
  std::unique_ptr<Scheduler> scheduler_;
  // Run calls' blocking work; stopped once gRPC has finished every call.
  std::unique_ptr<WorkerPool> hashing_;
  std::unique_ptr<WorkerPool> reads_;
  // Outlives the hub, which publishes on it until its last dispatch.
  std::unique_ptr<bus::RedisBus> bus_;
  // The lobby's sessions with the Redis bus; stopped in Shutdown, before
  // the hub that its last answers call.
  std::unique_ptr<bus::RedisSessionDirectory> sessions_;
  std::unique_ptr<bus::RedisPresenceDirectory> presence_;
  std::unique_ptr<chat::Hub> hub_;
  std::unique_ptr<IdempotentSends> sends_;
  std::unique_ptr<Quotas> quotas_;
  // Shares quotas_'s counts with the other servers (Redis bus only).
  std::unique_ptr<bus::RedisLimits> limits_;
  AddressSet trusted_proxies_;
  // Fed by the interceptor of every call; outlives grpc_server_.
  std::unique_ptr<CallStats> call_stats_;
  std::unique_ptr<Services> services_;
  std::unique_ptr<grpc::Server> grpc_server_;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace parley::api

#endif  // PARLEY_SERVER_API_SERVER_H_
