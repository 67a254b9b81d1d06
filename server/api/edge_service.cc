#include "server/api/edge_service.h"

#include <sodium.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "google/rpc/status.pb.h"
#include "server/api/chat_service.h"
#include "server/api/interceptor.h"
#include "server/api/quotas.h"
#include "server/api/status.h"
#include "server/common/errors.h"
#include "server/common/log.h"
#include "server/common/metrics.h"
#include "server/common/mutex.h"
#include "server/model/ids.h"

namespace parley::api {
namespace {

using chat::Channel;
using chat::ChannelReader;
using chat::CloseReason;
using model::EventPtr;
using parley::internal::FollowAttach;
using parley::internal::FollowRequest;
using parley::internal::FollowResponse;
using parley::internal::FollowStart;

// `status` as the google.rpc.Status a gRPC client would have received: its
// code, message and ErrorInfo (reason, field).
google::rpc::Status ToRpcStatus(const absl::Status& status) {
  const grpc::Status sent = ToGrpcStatus(status);
  google::rpc::Status out;
  if (sent.error_details().empty() ||
      !out.ParseFromString(sent.error_details())) {
    out.Clear();
  }
  out.set_code(sent.error_code());
  out.set_message(sent.error_message());
  return out;
}

// Whether `status` is the refusal of a server that is shutting down.
bool IsShuttingDown(const absl::Status& status) {
  return absl::IsUnavailable(status) && ErrorReason(status) == "SHUTTING_DOWN";
}

absl::Status InvalidFollow(absl::string_view message) {
  return InvalidInput("INVALID_FOLLOW", "kind", message);
}

class FollowCall;

// One Follow stream's state, shared by its reactor (until the reactor
// finishes), the channel readers and the store-read workers that handle its
// requests. The gRPC rules it keeps: one read and one write in flight at a
// time; Finish once, with no write in flight and no thread about to call
// into the reactor (`busy_`); after Finish, nothing touches the reactor.
class FollowCore final : public std::enable_shared_from_this<FollowCore> {
 public:
  FollowCore(FollowCall* call, const Deps& deps,
             std::shared_ptr<std::atomic<bool>> warned_no_address)
      : call_(call),
        deps_(deps),
        warned_no_address_(std::move(warned_no_address)) {}

  // The request just read (OnReadDone(true)): handled on a worker, which
  // then reads the next. `ok` false: the gateway closed its side.
  void OnRead(bool ok, FollowRequest request);
  void OnWriteDone(bool ok);
  // Ends the stream with `status` (cancelled; the first reason wins).
  void End(const absl::Status& status);
  // The log's channel has events, or closed.
  void OnLogReadable() { Pump(); }
  // A client's registration was closed (or woken).
  void OnClientReadable(uint64_t client);

 private:
  // One attached client: its registration on the log (no events, presence
  // and closes only) and the reader that hears the close.
  struct Registration {
    chat::Subscription subscription;
    std::shared_ptr<ChannelReader> reader;
    // Its stream slot among its user's and its address's (none without
    // limits).
    std::shared_ptr<Quotas::StreamSlot> slot;
  };

  void Handle(const FollowRequest& request);
  void HandleStart(const FollowStart& start);
  void HandleAttach(const FollowAttach& attach);
  void HandleDetach(uint64_t client);
  // Releases what `registration` holds on the hub; `counted`: it was
  // counted among the open streams.
  void Release(const Registration& registration, bool counted = true);
  // Writes what is pending (first taking the log's channel), or finishes.
  void Pump();
  // The request handled: read the next one, unless the stream is ending.
  void ReadNext();

  void BeginFinishLocked(const absl::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The reactor, if it is time for its Finish (it is then forgotten).
  FollowCall* FinishCallLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Finish(FollowCall* call);
  bool HasPendingLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return first_write_ || pending_.events_size() > 0 ||
           pending_.admitted_size() > 0 || pending_.ended_size() > 0;
  }

  Mutex mu_;
  FollowCall* call_ ABSL_GUARDED_BY(mu_);  // null once Finish is due
  const Deps deps_;
  // The server's: set once an attach came without the client's address.
  const std::shared_ptr<std::atomic<bool>> warned_no_address_;
  // Threads that may still call into the reactor (a request being handled,
  // a read being started): Finish waits for them.
  int busy_ ABSL_GUARDED_BY(mu_) = 0;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status final_status_ ABSL_GUARDED_BY(mu_);
  // Set by the start: the log, its subscription (events only, no presence)
  // and where the gateway resumed (events at or before it are not sent).
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  std::string log_ ABSL_GUARDED_BY(mu_);
  std::optional<chat::Subscription> log_subscription_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<ChannelReader> log_reader_ ABSL_GUARDED_BY(mu_);
  uint64_t resumed_after_ ABSL_GUARDED_BY(mu_) = 0;
  bool first_write_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<uint64_t, Registration> clients_ ABSL_GUARDED_BY(mu_);
  // The next write, built while one is in flight; and the one in flight
  // (left alone by everyone but OnWriteDone while writing_).
  FollowResponse pending_ ABSL_GUARDED_BY(mu_);
  FollowResponse in_flight_;
};

// Hears one channel for the core; holds it weakly (the channel holds this).
class LogReader final : public ChannelReader {
 public:
  explicit LogReader(std::weak_ptr<FollowCore> core) : core_(std::move(core)) {}
  void OnReadable() override {
    if (auto core = core_.lock()) core->OnLogReadable();
  }
  void OnSuperseded() override {}

 private:
  const std::weak_ptr<FollowCore> core_;
};

class ClientReader final : public ChannelReader {
 public:
  ClientReader(std::weak_ptr<FollowCore> core, uint64_t client)
      : core_(std::move(core)), client_(client) {}
  void OnReadable() override {
    if (auto core = core_.lock()) core->OnClientReadable(client_);
  }
  void OnSuperseded() override {}

 private:
  const std::weak_ptr<FollowCore> core_;
  const uint64_t client_;
};

class FollowCall final
    : public grpc::ServerBidiReactor<FollowRequest, FollowResponse> {
 public:
  FollowCall(const Deps& deps, const absl::Status& refusal,
             std::shared_ptr<std::atomic<bool>> warned_no_address) {
    if (deps.calls != nullptr) {
      record_.emplace(deps.calls, EdgeService::kFollowMethod,
                      CallStats::Kind::kStreaming);
    }
    if (!refusal.ok()) {
      FinishWith(refusal);
      return;
    }
    core_ = std::make_shared<FollowCore>(this, deps,
                                         std::move(warned_no_address));
    StartRead(&request_);
  }

  // Records the call's status, then sends it. Once.
  void FinishWith(const absl::Status& status) {
    grpc::Status sent = ToGrpcStatus(status);
    if (record_.has_value()) {
      record_->End(sent.error_code(), sent.error_message(),
                   status.ok() ? "" : ErrorReason(status));
    }
    Finish(std::move(sent));
  }

  // Called by the core with no other read in flight.
  void ReadNext() { StartRead(&request_); }

  void OnReadDone(bool ok) override {
    FollowRequest request;
    if (ok) request.Swap(&request_);
    core_->OnRead(ok, std::move(request));
  }
  void OnWriteDone(bool ok) override { core_->OnWriteDone(ok); }
  void OnCancel() override {
    if (core_ != nullptr) {
      core_->End(absl::CancelledError("the gateway cancelled the stream"));
    }
  }
  void OnDone() override { delete this; }

 private:
  std::shared_ptr<FollowCore> core_;
  FollowRequest request_;
  std::optional<CallRecord> record_;
};

void FollowCore::OnRead(bool ok, FollowRequest request) {
  if (!ok) {
    End(absl::OkStatus());  // the gateway is done with the log
    return;
  }
  {
    MutexLock lock(&mu_);
    ++busy_;
  }
  absl::Status accepted = deps_.reads->Submit(
      [self = shared_from_this(), request = std::move(request)] {
        self->Handle(request);
        self->ReadNext();
      });
  if (!accepted.ok()) {
    FollowCall* call;
    {
      MutexLock lock(&mu_);
      --busy_;
      BeginFinishLocked(accepted);
      call = FinishCallLocked();
    }
    Finish(call);
  }
}

void FollowCore::ReadNext() {
  FollowCall* call;
  FollowCall* finish = nullptr;
  {
    MutexLock lock(&mu_);
    call = finishing_ ? nullptr : call_;
    if (call == nullptr) {
      --busy_;
      finish = FinishCallLocked();
    }
  }
  if (call == nullptr) return Finish(finish);
  // busy_ still counts this thread: the reactor cannot finish under it.
  call->ReadNext();
  {
    MutexLock lock(&mu_);
    --busy_;
    finish = FinishCallLocked();
  }
  Finish(finish);
}

void FollowCore::Handle(const FollowRequest& request) {
  bool started;
  {
    MutexLock lock(&mu_);
    if (finishing_) return;
    started = started_;
  }
  absl::Status refusal;
  switch (request.kind_case()) {
    case FollowRequest::kStart:
      if (started) {
        refusal = InvalidFollow("start is the first message, and only once");
        break;
      }
      return HandleStart(request.start());
    case FollowRequest::kAttach:
      if (!started) refusal = InvalidFollow("attach before start");
      else return HandleAttach(request.attach());
      break;
    case FollowRequest::kDetach:
      if (!started) refusal = InvalidFollow("detach before start");
      else return HandleDetach(request.detach().client());
      break;
    case FollowRequest::KIND_NOT_SET:
      refusal = InvalidFollow("a message is one of start, attach, detach");
      break;
  }
  End(refusal);
}

void FollowCore::HandleStart(const FollowStart& start) {
  if (start.log().empty()) {
    return End(InvalidInput("LOG_REQUIRED", "log", "start names no log"));
  }
  // The log's events, and no presence: the clients count, not the gateway.
  absl::StatusOr<chat::Subscription> subscription =
      deps_.hub->Subscribe(start.log(), chat::Subscriber{});
  if (!subscription.ok()) return End(subscription.status());
  const uint64_t after =
      start.has_after_sequence() ? start.after_sequence() : subscription->live_after;
  // History the gateway missed (a resume on this server): read here, on
  // the worker, before the live events the channel keeps meanwhile.
  std::vector<EventPtr> history;
  for (uint64_t cursor = after; cursor < subscription->live_after;) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(
        deps_.read.stream_max_batch, subscription->live_after - cursor));
    absl::StatusOr<std::vector<EventPtr>> page =
        deps_.store->ReadAfter(start.log(), cursor, want);
    if (!page.ok()) {
      deps_.hub->Unsubscribe(*subscription);
      return End(page.status());
    }
    bool past = false;
    for (EventPtr& event : *page) {
      if (event->sequence > subscription->live_after) {
        past = true;
        break;
      }
      cursor = event->sequence;
      history.push_back(std::move(event));
    }
    if (past || page->size() < want) break;
  }
  auto reader = std::make_shared<LogReader>(weak_from_this());
  bool ending;
  {
    MutexLock lock(&mu_);
    ending = finishing_;
  }
  if (ending) return deps_.hub->Unsubscribe(*subscription);
  {
    MutexLock lock(&mu_);
    started_ = true;
    log_ = start.log();
    log_subscription_ = *subscription;
    log_reader_ = reader;
    resumed_after_ = std::max(after, subscription->live_after);
    first_write_ = true;
    pending_.set_position(resumed_after_);
    for (const EventPtr& event : history) {
      ToProto(*event, pending_.add_events());
    }
  }
  subscription->channel->Attach(reader);
  Pump();
}

void FollowCore::HandleAttach(const FollowAttach& attach) {
  const uint64_t client = attach.client();
  std::string log;
  {
    MutexLock lock(&mu_);
    log = log_;
  }
  // Checked as ChatService.Subscribe checks the client's own stream.
  auto admit = [&]() -> absl::StatusOr<chat::Subscriber> {
    absl::StatusOr<auth::Principal> who =
        deps_.auth->Authenticate(attach.authorization());
    if (!who.ok()) return who.status();
    chat::Subscriber subscriber;
    subscriber.user_id = who->user_id;
    subscriber.token_id = who->claims.jti;
    subscriber.receives_events = false;
    if (who->kind == auth::TokenKind::kUser &&
        log == model::InboxLog(who->user_id)) {
      return subscriber;  // the caller's own inbox
    }
    absl::StatusOr<RoomView> view = ResolveRoom(deps_, log, *who);
    if (!view.ok()) return view.status();
    if (absl::Status s = auth::RequireRead(view->rights); !s.ok()) return s;
    subscriber.name = who->display_name;
    subscriber.room = view->room.name;
    return subscriber;
  };
  absl::StatusOr<chat::Subscriber> subscriber = admit();
  // A slot among the streams of the client's user and address, as its own
  // stream would hold. With limits shared in Redis, OpenStream waits for
  // it: this runs on a store-read worker (OnRead), never on gRPC's threads;
  // a slot's Release only marks it for the next sync, so the releases on
  // gRPC's threads (OnCancel, Finish) do not wait.
  std::shared_ptr<Quotas::StreamSlot> slot;
  if (subscriber.ok() && deps_.quotas != nullptr) {
    // A gateway older than the address field (during a rolling upgrade)
    // sends none: its clients count against their users' limits only, not
    // all together under one empty address.
    if (attach.address().empty() && !warned_no_address_->exchange(true)) {
      log::Warning(
          "a gateway attaches clients without their address (a gateway "
          "older than this server?): they count against --streams_per_user "
          "only, not --streams_per_address",
          {{"log", log}});
    }
    absl::StatusOr<Quotas::StreamSlot> opened =
        deps_.quotas->OpenStream(subscriber->user_id, attach.address());
    if (opened.ok()) {
      slot = std::make_shared<Quotas::StreamSlot>(*std::move(opened));
    } else {
      subscriber = opened.status();
    }
  }
  absl::StatusOr<chat::Subscription> subscription =
      subscriber.ok() ? deps_.hub->Subscribe(log, *std::move(subscriber))
                      : absl::StatusOr<chat::Subscription>(subscriber.status());
  if (!subscription.ok() && IsShuttingDown(subscription.status())) {
    // Not the client's end: the whole stream's, resumed elsewhere.
    return End(subscription.status());
  }
  if (!subscription.ok()) {
    {
      MutexLock lock(&mu_);
      auto* ended = pending_.add_ended();
      ended->set_client(client);
      *ended->mutable_status() = ToRpcStatus(subscription.status());
    }
    return Pump();
  }
  Registration registration{
      *subscription, std::make_shared<ClientReader>(weak_from_this(), client),
      std::move(slot)};
  std::optional<Registration> replaced;
  bool kept = false;
  {
    MutexLock lock(&mu_);
    if (!finishing_) {
      kept = true;
      auto it = clients_.find(client);
      if (it != clients_.end()) replaced = std::move(it->second);
      clients_[client] = registration;
      pending_.add_admitted(client);
    }
  }
  if (replaced.has_value()) Release(*replaced);
  if (!kept) return Release(registration, /*counted=*/false);
  // The server's open streams count the gateway's clients, each of which
  // reads this server's events as its own stream would (GetStats).
  metrics::StreamStarted();
  subscription->channel->Attach(registration.reader);
  // Closed between the subscription and the attach: nobody was woken.
  OnClientReadable(client);
  Pump();
}

void FollowCore::HandleDetach(uint64_t client) {
  std::optional<Registration> gone;
  {
    MutexLock lock(&mu_);
    auto it = clients_.find(client);
    if (it == clients_.end()) return;  // ended already
    gone = std::move(it->second);
    clients_.erase(it);
  }
  Release(*gone);
}

void FollowCore::Release(const Registration& registration, bool counted) {
  if (counted) metrics::StreamEnded();
  if (registration.slot != nullptr) registration.slot->Release();
  deps_.hub->Unsubscribe(registration.subscription);
  registration.subscription.channel->Detach(registration.reader.get(),
                                            deps_.hub->clock()->Now());
}

void FollowCore::OnClientReadable(uint64_t client) {
  std::optional<Registration> ended;
  CloseReason reason = CloseReason::kOpen;
  {
    MutexLock lock(&mu_);
    auto it = clients_.find(client);
    if (it == clients_.end()) return;
    Channel::TakeResult taken = it->second.subscription.channel->Take(1);
    if (taken.closed == CloseReason::kOpen) return;  // nothing is pushed
    reason = taken.closed;
    ended = std::move(it->second);
    clients_.erase(it);
    // At shutdown the whole stream ends (UNAVAILABLE) and the gateway
    // attaches its clients on another server: no client's own end.
    if (reason != CloseReason::kShutdown) {
      auto* end = pending_.add_ended();
      end->set_client(client);
      *end->mutable_status() = ToRpcStatus(ClosedStatus(reason));
    }
  }
  Release(*ended);
  if (reason == CloseReason::kShutdown) return End(ClosedStatus(reason));
  Pump();
}

void FollowCore::Pump() {
  FollowCall* write = nullptr;
  FollowCall* finish = nullptr;
  {
    MutexLock lock(&mu_);
    if (call_ == nullptr) return;
    if (!finishing_ && !writing_ && started_) {
      Channel::TakeResult taken =
          log_subscription_->channel->Take(deps_.read.stream_max_batch);
      for (const EventPtr& event : taken.events) {
        // Resumed after a point this server's live events had not reached.
        if (event->sequence != 0 && event->sequence <= resumed_after_) {
          continue;
        }
        ToProto(*event, pending_.add_events());
      }
      if (taken.closed != CloseReason::kOpen && !HasPendingLocked()) {
        BeginFinishLocked(ClosedStatus(taken.closed));
      }
    }
    if (!finishing_ && !writing_ && HasPendingLocked()) {
      first_write_ = false;
      writing_ = true;
      in_flight_.Swap(&pending_);
      pending_.Clear();
      write = call_;
    } else {
      finish = FinishCallLocked();
    }
  }
  if (write != nullptr) {
    write->StartWrite(&in_flight_);
  } else {
    Finish(finish);
  }
}

void FollowCore::OnWriteDone(bool ok) {
  {
    MutexLock lock(&mu_);
    writing_ = false;
    in_flight_.Clear();
    if (!ok) BeginFinishLocked(absl::UnavailableError("the stream broke"));
  }
  Pump();
}

void FollowCore::End(const absl::Status& status) {
  FollowCall* call;
  {
    MutexLock lock(&mu_);
    BeginFinishLocked(status);
    call = FinishCallLocked();
  }
  Finish(call);
}

void FollowCore::BeginFinishLocked(const absl::Status& status) {
  if (finishing_) return;
  finishing_ = true;
  final_status_ = status;
}

FollowCall* FollowCore::FinishCallLocked() {
  if (!finishing_ || writing_ || busy_ > 0) return nullptr;
  FollowCall* call = call_;
  call_ = nullptr;
  return call;
}

void FollowCore::Finish(FollowCall* call) {
  if (call == nullptr) return;
  absl::Status status;
  std::optional<chat::Subscription> log_subscription;
  std::shared_ptr<ChannelReader> log_reader;
  absl::flat_hash_map<uint64_t, Registration> clients;
  {
    MutexLock lock(&mu_);
    status = final_status_;
    log_subscription.swap(log_subscription_);
    log_reader.swap(log_reader_);
    clients.swap(clients_);
  }
  for (const auto& [client, registration] : clients) Release(registration);
  if (log_subscription.has_value()) {
    deps_.hub->Unsubscribe(*log_subscription);
    log_subscription->channel->Detach(log_reader.get(),
                                      deps_.hub->clock()->Now());
  }
  call->FinishWith(status);
}

}  // namespace

EdgeService::EdgeService(const Deps& deps, std::string secret)
    : deps_(deps),
      secret_(std::move(secret)),
      warned_no_address_(std::make_shared<std::atomic<bool>>(false)) {}

absl::Status EdgeService::CheckSecret(
    grpc::CallbackServerContext* context) const {
  if (secret_.empty()) {
    return WithReason(absl::UnimplementedError(
                          "this server serves no gateway fan-out (no "
                          "--edge_secret)"),
                      "EDGE_DISABLED");
  }
  const auto& metadata = context->client_metadata();
  auto it = metadata.find(kEdgeSecretKey);
  if (metadata.count(kEdgeSecretKey) != 1 || it->second.size() != secret_.size() ||
      sodium_memcmp(it->second.data(), secret_.data(), secret_.size()) != 0) {
    return WithReason(
        absl::PermissionDeniedError("the edge secret is missing or wrong"),
        "EDGE_SECRET_MISMATCH");
  }
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* EdgeService::Resolve(
    grpc::CallbackServerContext* context,
    const parley::internal::ResolveRequest* request,
    parley::internal::ResolveResponse* response) {
  if (absl::Status s = CheckSecret(context); !s.ok()) {
    return FinishNow(context, s);
  }
  if (request->room().empty() == !request->direct_messages()) {
    return FinishNow(context,
                     InvalidInput("ONE_TARGET", "room",
                                  "give exactly one of room and "
                                  "direct_messages"));
  }
  return RunOn(deps_.reads, context,
               [this, context, request,
                response](grpc::ServerUnaryReactor* reactor) {
                 if (request->direct_messages()) {
                   absl::StatusOr<auth::Principal> who =
                       SignedInUser(deps_, context, *request);
                   if (!who.ok()) {
                     return FinishWith(reactor, context, who.status());
                   }
                   response->set_address(ClientAddress(deps_, context));
                   response->set_log(model::InboxLog(who->user_id));
                   response->set_user_id(who->user_id);
                   response->set_token_id(who->claims.jti);
                   return FinishWith(reactor, context, absl::OkStatus());
                 }
                 absl::StatusOr<RoomCall> call =
                     ReadableRoom(deps_, context, *request, request->room(),
                                  /*user_token_only=*/false);
                 if (!call.ok()) {
                   return FinishWith(reactor, context, call.status());
                 }
                 response->set_address(ClientAddress(deps_, context));
                 response->set_log(call->view.room.id);
                 response->set_user_id(call->who.user_id);
                 response->set_token_id(call->who.claims.jti);
                 FinishWith(reactor, context, absl::OkStatus());
               });
}

grpc::ServerBidiReactor<parley::internal::FollowRequest,
                        parley::internal::FollowResponse>*
EdgeService::Follow(grpc::CallbackServerContext* context) {
  return new FollowCall(deps_, CheckSecret(context), warned_no_address_);
}

}  // namespace parley::api
