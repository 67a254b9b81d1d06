#include "server/api/server.h"

#include <grpcpp/resource_quota.h>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <malloc.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.pb.h"
#include "server/api/account_service.h"
#include "server/api/chat_service.h"
#include "server/api/edge_service.h"
#include "server/api/interceptor.h"
#include "server/api/message_service.h"
#include "server/api/presence_service.h"
#include "server/api/room_service.h"
#include "server/api/stats_service.h"
#include "server/common/log.h"
#include "server/common/uuid.h"
#include "server/model/ids.h"
#include "server/store/cached_store.h"
#include "server/store/sqlite_store.h"

namespace parley::api {
namespace {

// Reaps idle lobby sessions periodically, on the scheduler's thread.
void ScheduleReaper(Scheduler* scheduler, chat::Hub* hub,
                    absl::Duration every) {
  scheduler->Schedule(absl::Now() + every, [scheduler, hub, every] {
    if (const int reaped = hub->ReapIdle(); reaped > 0) {
      log::Info("reaped idle lobby sessions", {{"sessions", reaped}});
    }
    ScheduleReaper(scheduler, hub, every);
  });
}

// Announces the room leaves whose grace has run out, on the scheduler's
// thread, a few times per grace.
void ScheduleLeaves(Scheduler* scheduler, chat::Hub* hub,
                    absl::Duration every) {
  scheduler->Schedule(absl::Now() + every, [scheduler, hub, every] {
    hub->AnnounceLeaves();
    ScheduleLeaves(scheduler, hub, every);
  });
}

// With several servers: how long a server's presence list holds in Redis,
// and how often each server puts its own again (well within it).
constexpr absl::Duration kPresenceTtl = absl::Seconds(5);
constexpr absl::Duration kPresenceShareEvery = absl::Seconds(1);

// Shares this server's presence lists with the others, on the scheduler's
// thread.
void SchedulePresence(Scheduler* scheduler, chat::Hub* hub) {
  scheduler->Schedule(absl::Now() + kPresenceShareEvery, [scheduler, hub] {
    hub->SharePresence();
    SchedulePresence(scheduler, hub);
  });
}

// Samples the process's CPU time for StatsService's CPU percent.
// Forgets expired idempotency keys now and then (their lookups already
// ignore them; this only bounds the table).
void SchedulePruneKeys(Scheduler* scheduler, store::Store* store,
                       absl::Duration ttl) {
  const absl::Duration every = std::clamp(ttl / 10, absl::Seconds(1),
                                          absl::Hours(1));
  scheduler->Schedule(absl::Now() + every, [scheduler, store, ttl] {
    store->Submit(store::PruneIdempotencyKeys{absl::Now() - ttl},
                  [](absl::StatusOr<int64_t> pruned) {
                    if (!pruned.ok()) {
                      log::Warning("pruning idempotency keys failed",
                                {{"error", pruned.status().ToString()}});
                    }
                  });
    SchedulePruneKeys(scheduler, store, ttl);
  });
}

void ScheduleCpuSampler(Scheduler* scheduler, StatsService* stats) {
  const absl::Duration every = stats->cpu_sample_interval();
  scheduler->Schedule(absl::Now() + every, [scheduler, stats] {
    stats->SampleCpu();
    ScheduleCpuSampler(scheduler, stats);
  });
}

// Hands freed heap memory back to the OS periodically. glibc keeps what
// many closed streams freed in its arenas; without this the RSS stays at its
// peak after a burst of connections.
void ScheduleMemoryTrim(Scheduler* scheduler, absl::Duration every) {
  scheduler->Schedule(absl::Now() + every, [scheduler, every] {
    malloc_trim(0);
    ScheduleMemoryTrim(scheduler, every);
  });
}

// The store `options` name: SQLite in the data directory, or PostgreSQL.
absl::StatusOr<std::unique_ptr<store::Store>> OpenStore(
    const ServerOptions& options) {
  if (options.store == ServerOptions::StoreKind::kPostgres) {
    // A database started at the same time (docker compose, a cluster's
    // first boot) may not accept connections yet: retry while it cannot be
    // reached, once a second, up to postgres_startup_wait. Any other error
    // (a newer schema, bad credentials) ends the start at once.
    const absl::Time give_up = absl::Now() + options.postgres_startup_wait;
    absl::StatusOr<std::unique_ptr<store::PostgresStore>> postgres =
        store::PostgresStore::Open(options.postgres);
    while (!postgres.ok() && absl::IsUnavailable(postgres.status()) &&
           absl::Now() < give_up) {
      log::Warning("waiting for the database",
                {{"error", std::string(postgres.status().message())}});
      absl::SleepFor(absl::Seconds(1));
      postgres = store::PostgresStore::Open(options.postgres);
    }
    if (!postgres.ok()) return postgres.status();
    log::Info("store opened",
              {{"store", "postgres"},
               {"dsn", (*postgres)->redacted_dsn()},
               {"migrations_applied", (*postgres)->migrations_applied()}});
    return std::unique_ptr<store::Store>(*std::move(postgres));
  }
  store::SqliteOptions sqlite;
  sqlite.path =
      (std::filesystem::path(options.data_dir) / "parley.db").string();
  sqlite.synchronous = options.sqlite_synchronous_full
                           ? store::SqliteOptions::Sync::kFull
                           : store::SqliteOptions::Sync::kNormal;
  sqlite.max_batch = options.store_max_batch;
  sqlite.checkpoint_pages = options.sqlite_checkpoint_pages;
  absl::StatusOr<std::unique_ptr<store::SqliteStore>> opened =
      store::SqliteStore::Open(sqlite);
  if (!opened.ok()) return opened.status();
  return std::unique_ptr<store::Store>(*std::move(opened));
}

}  // namespace

struct Server::Services {
  Services(const Deps& deps, StatsSources stats_sources,
           absl::Duration typing_ttl, std::string edge_secret)
      : chat(deps),
        messages(deps),
        rooms(deps),
        users(deps),
        auth(deps),
        stats(std::move(stats_sources)),
        presence(deps, typing_ttl),
        edge(deps, std::move(edge_secret)) {}
  ChatService chat;
  MessageService messages;
  RoomService rooms;
  UserService users;
  AuthService auth;
  StatsService stats;
  PresenceService presence;
  EdgeService edge;
};

// With several servers on one database: a cached directory row changed
// here is told to the others over the bus (a revoked token by the hub,
// Hub::RevokeToken), and what they tell is applied here. After a break in the bus, whose notices
// meanwhile are lost, the cache is dropped and the revoked tokens reread.
void Server::ShareDirectoryChanges(Server* server, store::CachedStore* cache,
                                   chat::HubOptions* hub_options) {
  bus::Bus* bus = server->bus_.get();
  hub_options->bus = bus;
  if (cache != nullptr) {
    cache->set_on_invalidated([bus] {
      bus::Notice notice;
      notice.op = bus::Notice::Op::kInvalidateDirectory;
      bus->Broadcast(notice);
    });
  }
  auth::Authenticator* auth = server->auth_.get();
  hub_options->on_directory_notice = [cache, auth](const bus::Notice& n) {
    if (n.op == bus::Notice::Op::kInvalidateDirectory && cache != nullptr) {
      cache->Clear();
    } else if (n.op == bus::Notice::Op::kRevokeToken) {
      auth->MarkRevoked(n.token_id);
    }
  };
  // The reread waits for the database: on the scheduler's thread, not the
  // bus's.
  Scheduler* scheduler = server->scheduler_.get();
  hub_options->on_bus_reconnected = [cache, auth, scheduler] {
    if (cache != nullptr) cache->Clear();
    scheduler->Schedule(absl::Now(), [auth] {
      if (absl::Status s = auth->LoadRevoked(); !s.ok()) {
        log::Warning("could not reread the revoked tokens after the bus "
                     "came back",
                     {{"error", s.ToString()}});
      }
    });
  };
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(ServerOptions options) {
  std::unique_ptr<Server> server(new Server());
  server->options_ = options;
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot create data directory ", options.data_dir, ": ", ec.message()));
  }

  absl::StatusOr<std::unique_ptr<store::Store>> opened = OpenStore(options);
  if (!opened.ok()) return opened.status();
  store::CachedStore* cache = nullptr;
  if (options.store_cache_entries > 0) {
    auto cached = std::make_unique<store::CachedStore>(
        *std::move(opened), options.store_cache_entries);
    cache = cached.get();
    server->store_ = std::move(cached);
  } else {
    server->store_ = *std::move(opened);
  }
  if (options.wrap_store) {
    server->store_ = options.wrap_store(std::move(server->store_));
  }
  // The hub continues every log's numbering from the store; fail now rather
  // than start with a store that cannot be read.
  if (absl::StatusOr<uint64_t> last =
          server->store_->LastSequence(model::kLobbyId);
      !last.ok()) {
    return last.status();
  }

  absl::StatusOr<std::string> key =
      auth::LoadOrCreateKey(options.token_key_file, options.data_dir);
  if (!key.ok()) return key.status();
  server->signer_ = std::make_unique<auth::TokenSigner>(
      *std::move(key), options.token_lifetime, Clock::Real(),
      options.token_clock_skew);
  server->auth_ = std::make_unique<auth::Authenticator>(
      server->signer_.get(), server->store_.get(), options.admin_users);
  if (absl::Status s = server->auth_->LoadRevoked(); !s.ok()) return s;
  server->passwords_ = std::make_unique<auth::PasswordHasher>(options.password);
  server->scheduler_ = std::make_unique<Scheduler>();
  server->hashing_ = std::make_unique<WorkerPool>("password hashing",
                                                  options.password_hashing);
  server->reads_ =
      std::make_unique<WorkerPool>("store reads", options.store_reads);
  chat::HubOptions hub_options = options.hub;
  hub_options.encoder = &EncodeStreamEvent;
  if (options.bus == ServerOptions::BusKind::kRedis) {
    server->bus_ = std::make_unique<bus::RedisBus>(options.redis);
    ShareDirectoryChanges(server.get(), cache, &hub_options);
    bus::RedisSessionsOptions sessions;
    sessions.redis.host = options.redis.host;
    sessions.redis.port = options.redis.port;
    server->sessions_ = std::make_unique<bus::RedisSessionDirectory>(sessions);
    hub_options.sessions = server->sessions_.get();
    bus::RedisPresenceOptions presence;
    presence.redis.host = options.redis.host;
    presence.redis.port = options.redis.port;
    presence.ttl = kPresenceTtl;
    server->presence_ = std::make_unique<bus::RedisPresenceDirectory>(presence);
    hub_options.presence = server->presence_.get();
  }
  server->hub_ = std::make_unique<chat::Hub>(hub_options, server->store_.get(),
                                             Clock::Real());
  // A sign-out ends the token's streams, on every server.
  server->auth_->set_on_revoked(
      [hub = server->hub_.get()](const std::string& jti) {
        hub->RevokeToken(jti);
      });

  server->sends_ = std::make_unique<IdempotentSends>(
      server->store_.get(), Clock::Real(), options.idempotency_key_ttl);
  Deps deps;
  deps.hub = server->hub_.get();
  deps.sends = server->sends_.get();
  deps.store = server->store_.get();
  deps.auth = server->auth_.get();
  deps.passwords = server->passwords_.get();
  deps.scheduler = server->scheduler_.get();
  deps.hashing = server->hashing_.get();
  deps.reads = server->reads_.get();
  deps.store_cached = cache != nullptr;
  deps.read = options.read;
  absl::StatusOr<AddressSet> proxies = AddressSet::Parse(options.trusted_proxies);
  if (!proxies.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--trusted_proxies: ", proxies.status().message()));
  }
  server->trusted_proxies_ = *std::move(proxies);
  deps.trusted_proxies = &server->trusted_proxies_;
  server->quotas_ = std::make_unique<Quotas>(options.quotas, Clock::Real());
  deps.quotas = server->quotas_.get();
  if (options.bus == ServerOptions::BusKind::kRedis) {
    bus::RedisLimitsOptions limits;
    limits.redis.host = options.redis.host;
    limits.redis.port = options.redis.port;
    limits.interval = options.limit_sync_interval;
    limits.failure_ttl = options.quotas.sign_in_backoff_max;
    limits.server_id = NewUuid();
    server->limits_ = std::make_unique<bus::RedisLimits>(
        limits, server->quotas_->Tables(), Clock::Real());
    server->quotas_->ShareWith(server->limits_.get(), server->limits_.get());
  }
  server->call_stats_ =
      std::make_unique<CallStats>(Clock::Real(), options.stats_window);
  deps.calls = server->call_stats_.get();
  StatsSources stats_sources;
  stats_sources.hub = server->hub_.get();
  stats_sources.calls = server->call_stats_.get();
  stats_sources.store = [store = server->store_.get()] {
    return store->stats();
  };
  server->services_ =
      std::make_unique<Services>(deps, std::move(stats_sources),
                                 options.typing_ttl, options.edge_secret);
  ScheduleCpuSampler(server->scheduler_.get(), &server->services_->stats);
  if (options.memory_trim_interval > absl::ZeroDuration()) {
    ScheduleMemoryTrim(server->scheduler_.get(), options.memory_trim_interval);
  }
  SchedulePruneKeys(server->scheduler_.get(), server->store_.get(),
                    options.idempotency_key_ttl);
  if (options.hub.presence_leave_grace > absl::ZeroDuration()) {
    ScheduleLeaves(server->scheduler_.get(), server->hub_.get(),
                   std::clamp(options.hub.presence_leave_grace / 4,
                              absl::Milliseconds(50), absl::Seconds(1)));
  }
  if (server->presence_ != nullptr) {
    SchedulePresence(server->scheduler_.get(), server->hub_.get());
  }
  ScheduleReaper(server->scheduler_.get(), server->hub_.get(),
                 std::clamp(options.hub.session_idle_timeout / 4,
                            absl::Milliseconds(100), absl::Seconds(10)));

  // Referencing the health messages links their descriptors, so reflection
  // (and so grpcurl) can describe grpc.health.v1.Health.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.grpc_addr, grpc::InsecureServerCredentials(),
                           &server->port_);
  builder.RegisterService(&server->services_->chat);
  builder.RegisterService(&server->services_->messages);
  builder.RegisterService(&server->services_->rooms);
  builder.RegisterService(&server->services_->users);
  builder.RegisterService(&server->services_->auth);
  builder.RegisterService(&server->services_->stats);
  builder.RegisterService(&server->services_->presence);
  builder.RegisterService(&server->services_->edge);
  {
    std::vector<
        std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
        interceptors;
    interceptors.push_back(std::make_unique<StatsInterceptorFactory>(
        server->call_stats_.get(),
        absl::flat_hash_set<std::string>{"/parley.v1.ChatService/Receive"},
        absl::flat_hash_set<std::string>{ChatService::kSubscribeMethod,
                                         EdgeService::kFollowMethod}));
    builder.experimental().SetInterceptorCreators(std::move(interceptors));
  }
  builder.SetMaxReceiveMessageSize(static_cast<int>(options.max_request_bytes));
  // What gRPC's transport may hold (read buffers, messages being read): past
  // it, it resets the streams that ask for more (RESOURCE_EXHAUSTED), so a
  // few huge requests cannot take the heap before their size is checked.
  grpc::ResourceQuota quota("parley-grpc");
  quota.Resize(options.grpc_memory_quota_bytes);
  builder.SetResourceQuota(quota);
  // Find dead peers of idle streams, and let clients keep theirs alive.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 60 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20 * 1000);
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // A peer pinging more often than that twice is sent GOAWAY.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 2);
  // Streams one connection may hold; a gateway carries all of its
  // clients' streams on one connection per server, hence a large bound.
  builder.AddChannelArgument(
      GRPC_ARG_MAX_CONCURRENT_STREAMS,
      static_cast<int>(options.grpc_max_streams_per_connection));
  server->grpc_server_ = builder.BuildAndStart();
  if (server->grpc_server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.grpc_addr));
  }
  return server;
}

void Server::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (grpc_server_ != nullptr) {
    grpc_server_->GetHealthCheckService()->Shutdown();
    // Open streams and polls end with UNAVAILABLE instead of a dropped
    // connection; then in-flight calls get the grace period.
    hub_->Shutdown();
    grpc_server_->Shutdown(
        absl::ToChronoTime(absl::Now() + options_.shutdown_grace));
    grpc_server_->Wait();
  }
  // Every call has finished, so the pools hold no work; they stop before
  // the store their tasks read closes.
  hashing_.reset();
  reads_.reset();
  // Everything acknowledged is committed already; this commits what is still
  // queued (whose callers were cancelled) and stops the writer.
  if (store_ != nullptr) store_->Close();
  if (scheduler_ != nullptr) scheduler_.reset();
  sessions_.reset();
  presence_.reset();
  // Nothing the bus hears reaches the hub from here on.
  if (bus_ != nullptr) bus_->SetListener(nullptr);
}

Server::~Server() { Shutdown(); }

}  // namespace parley::api
