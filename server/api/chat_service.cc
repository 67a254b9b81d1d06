#include "server/api/chat_service.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "request_traits.h"
#include "server/api/status.h"
#include "server/common/errors.h"

namespace parley::api {
namespace {

using chat::Channel;
using chat::ChannelReader;
using chat::CloseReason;
using chat::EventPtr;

parley::v1::EventKind KindToProto(chat::EventKind kind) {
  switch (kind) {
    case chat::EventKind::kMessage:
      return parley::v1::EVENT_KIND_MESSAGE;
    case chat::EventKind::kJoin:
      return parley::v1::EVENT_KIND_JOIN;
    case chat::EventKind::kLeave:
      return parley::v1::EVENT_KIND_LEAVE;
    case chat::EventKind::kGap:
      return parley::v1::EVENT_KIND_GAP;
  }
  return parley::v1::EVENT_KIND_UNSPECIFIED;
}

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context,
                                    const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status, context));
  return reactor;
}

// INVALID_ARGUMENT when the request arrived with a string field that was not
// UTF-8 (see proto/request_traits.h); OK otherwise.
absl::Status CheckUtf8(const google::protobuf::Message& request) {
  const std::string field = proto::MalformedField(request);
  if (field.empty()) return absl::OkStatus();
  return InvalidInput("INVALID_UTF8", field,
                      absl::StrCat(field, " is not valid UTF-8"));
}

// The status a read ends with once its channel is closed.
absl::Status ClosedStatus(CloseReason reason) {
  switch (reason) {
    case CloseReason::kOpen:
    case CloseReason::kLeft:
      return absl::OkStatus();
    case CloseReason::kReaped:
      return WithReason(
          absl::FailedPreconditionError("the session was idle and has ended"),
          "SESSION_REAPED", "id");
    case CloseReason::kShutdown:
      return WithReason(absl::UnavailableError("the server is shutting down"),
                        "SHUTTING_DOWN");
  }
  return absl::OkStatus();
}

// A long poll. The reactor is owned by gRPC until OnDone; the waiter that the
// channel and the scheduler hold is shared, and decides under its lock which
// of the possible endings (events, timeout, leave, takeover, cancel) wins.
// Only the winner touches the reactor and the response, once.
class PollCall final : public grpc::ServerUnaryReactor {
 public:
  class Waiter final : public ChannelReader,
                       public std::enable_shared_from_this<Waiter> {
   public:
    Waiter(PollCall* call, grpc::CallbackServerContext* context,
           parley::v1::ReceiveResponse* response,
           std::shared_ptr<Channel> channel, chat::Hub* hub,
           Scheduler* scheduler, size_t max_events)
        : call_(call),
          context_(context),
          response_(response),
          channel_(std::move(channel)),
          hub_(hub),
          scheduler_(scheduler),
          max_events_(max_events) {}

    void Start(absl::Duration timeout) {
      if (auto previous = channel_->Attach(shared_from_this())) {
        previous->OnSuperseded();
      }
      OnReadable();
      std::weak_ptr<Waiter> weak = weak_from_this();
      const Scheduler::TaskId timer = scheduler_->Schedule(
          absl::Now() + timeout, [weak] {
            if (auto self = weak.lock()) self->End(Ending::kTimeout);
          });
      bool finished;
      {
        MutexLock lock(&mu_);
        timer_ = timer;
        finished = call_ == nullptr;
      }
      if (finished) scheduler_->Cancel(timer);
    }

    void OnReadable() override { End(Ending::kIfReadable); }
    void OnSuperseded() override { End(Ending::kSuperseded); }
    void OnCancel() { End(Ending::kCancelled); }

   private:
    enum class Ending { kIfReadable, kTimeout, kSuperseded, kCancelled };

    void End(Ending ending) {
      PollCall* call;
      absl::Status status;
      Scheduler::TaskId timer;
      {
        MutexLock lock(&mu_);
        if (call_ == nullptr) return;
        if (ending == Ending::kCancelled) {
          status = absl::CancelledError("the client cancelled the poll");
        } else if (ending != Ending::kSuperseded) {
          Channel::TakeResult taken = channel_->Take(max_events_);
          if (taken.events.empty() && taken.closed == CloseReason::kOpen &&
              ending == Ending::kIfReadable) {
            return;  // Woken by a race with an earlier Take; keep waiting.
          }
          for (const EventPtr& event : taken.events) {
            ToProto(*event, response_->add_events());
          }
          status = ClosedStatus(taken.closed);
        }
        call = call_;
        call_ = nullptr;
        timer = timer_;
      }
      channel_->Detach(this, hub_->clock()->Now());
      scheduler_->Cancel(timer);
      call->Finish(ToGrpcStatus(status, context_));
    }

    Mutex mu_;
    PollCall* call_ ABSL_GUARDED_BY(mu_);  // null once the call is finished
    grpc::CallbackServerContext* const context_;
    parley::v1::ReceiveResponse* const response_;
    const std::shared_ptr<Channel> channel_;
    chat::Hub* const hub_;
    Scheduler* const scheduler_;
    const size_t max_events_;
    Scheduler::TaskId timer_ ABSL_GUARDED_BY(mu_) = 0;
  };

  PollCall() = default;
  void set_waiter(std::shared_ptr<Waiter> waiter) {
    waiter_ = std::move(waiter);
  }
  void OnCancel() override { waiter_->OnCancel(); }
  void OnDone() override { delete this; }

 private:
  std::shared_ptr<Waiter> waiter_;
};

// A Subscribe stream: one write in flight, and everything queued meanwhile
// coalesced into the next write. Like PollCall, the reactor belongs to gRPC
// and the shared pump decides under its lock who may call into it; Finish is
// only called with no write in flight.
class StreamCall final
    : public grpc::ServerWriteReactor<parley::v1::SubscribeResponse> {
 public:
  class Pump final : public ChannelReader,
                     public std::enable_shared_from_this<Pump> {
   public:
    Pump(StreamCall* call, grpc::CallbackServerContext* context,
         std::shared_ptr<Channel> channel, chat::Hub* hub, size_t max_batch)
        : call_(call),
          context_(context),
          channel_(std::move(channel)),
          hub_(hub),
          max_batch_(max_batch) {}

    void Start() {
      if (auto previous = channel_->Attach(shared_from_this())) {
        previous->OnSuperseded();
      }
      OnReadable();
    }

    void OnReadable() override {
      StreamCall* call;
      bool writing = false;
      {
        MutexLock lock(&mu_);
        if (call_ == nullptr || writing_ || finishing_) return;
        Channel::TakeResult taken = channel_->Take(max_batch_);
        if (taken.events.empty()) {
          if (taken.closed == CloseReason::kOpen) return;
          BeginFinishLocked(ClosedStatus(taken.closed));
          call = FinishCallLocked();
        } else {
          response_.Clear();
          for (const EventPtr& event : taken.events) {
            ToProto(*event, response_.add_events());
          }
          writing_ = writing = true;
          call = call_;
        }
      }
      if (writing) {
        // Outside the lock: gRPC may run OnWriteDone on this thread.
        call->StartWrite(&response_);
      } else {
        Finish(call);
      }
    }

    void OnSuperseded() override {
      End(WithReason(absl::AbortedError("another reader took over this "
                                        "client's channel"),
                     "SUPERSEDED", "id"));
    }

    void OnWriteDone(bool ok) {
      bool finishing;
      StreamCall* call = nullptr;
      {
        MutexLock lock(&mu_);
        writing_ = false;
        if (!ok && !finishing_) {
          BeginFinishLocked(absl::UnavailableError("the stream broke"));
        }
        finishing = finishing_;
        if (finishing) call = FinishCallLocked();
      }
      if (finishing) {
        Finish(call);
      } else {
        OnReadable();
      }
    }

    void End(const absl::Status& status) {
      StreamCall* call;
      {
        MutexLock lock(&mu_);
        if (call_ == nullptr || finishing_) return;
        BeginFinishLocked(status);
        if (writing_) return;  // OnWriteDone finishes.
        call = FinishCallLocked();
      }
      Finish(call);
    }

   private:
    void BeginFinishLocked(const absl::Status& status)
        ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      finishing_ = true;
      final_status_ = status;
    }
    // Hands out the reactor for its one Finish call and forgets it.
    StreamCall* FinishCallLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      StreamCall* call = call_;
      call_ = nullptr;
      return call;
    }
    void Finish(StreamCall* call) {
      if (call == nullptr) return;
      absl::Status status;
      {
        MutexLock lock(&mu_);
        status = final_status_;
      }
      channel_->Detach(this, hub_->clock()->Now());
      call->Finish(ToGrpcStatus(status, context_));
    }

    Mutex mu_;
    StreamCall* call_ ABSL_GUARDED_BY(mu_);  // null once Finish is due
    grpc::CallbackServerContext* const context_;
    const std::shared_ptr<Channel> channel_;
    chat::Hub* const hub_;
    const size_t max_batch_;
    bool writing_ ABSL_GUARDED_BY(mu_) = false;
    bool finishing_ ABSL_GUARDED_BY(mu_) = false;
    absl::Status final_status_ ABSL_GUARDED_BY(mu_);
    // Written only by the thread that sets writing_, and left alone while the
    // write is in flight.
    parley::v1::SubscribeResponse response_;
  };

  StreamCall() = default;
  void set_pump(std::shared_ptr<Pump> pump) { pump_ = std::move(pump); }
  void OnWriteDone(bool ok) override { pump_->OnWriteDone(ok); }
  void OnCancel() override {
    // No pump when the call was refused before it started.
    if (pump_ != nullptr) {
      pump_->End(absl::CancelledError("the client cancelled the stream"));
    }
  }
  void OnDone() override { delete this; }

 private:
  std::shared_ptr<Pump> pump_;
};

}  // namespace

void ToProto(const chat::Event& event, parley::v1::Event* out) {
  out->set_kind(KindToProto(event.kind));
  out->set_room(event.room);
  out->set_sequence(event.sequence);
  out->set_id(event.id);
  out->set_sender(event.sender);
  out->set_text(event.text);
  if (event.kind != chat::EventKind::kGap) {
    const int64_t nanos = absl::ToUnixNanos(event.time);
    out->mutable_create_time()->set_seconds(nanos / 1000000000);
    out->mutable_create_time()->set_nanos(static_cast<int32_t>(nanos % 1000000000));
  }
  out->set_gap_first_sequence(event.gap_first);
  out->set_gap_last_sequence(event.gap_last);
}

ChatService::ChatService(chat::Hub* hub, Scheduler* scheduler,
                         ReadOptions options)
    : hub_(hub), scheduler_(scheduler), options_(options) {}

grpc::ServerUnaryReactor* ChatService::Join(
    grpc::CallbackServerContext* context,
    const parley::v1::JoinRequest* request,
    parley::v1::JoinResponse* response) {
  if (absl::Status s = CheckUtf8(*request); !s.ok()) {
    return FinishNow(context, s);
  }
  auto event = hub_->Join(request->id());
  if (event.ok()) ToProto(**event, response->mutable_event());
  return FinishNow(context, event.status());
}

grpc::ServerUnaryReactor* ChatService::Send(
    grpc::CallbackServerContext* context,
    const parley::v1::SendRequest* request,
    parley::v1::SendResponse* response) {
  if (absl::Status s = CheckUtf8(*request); !s.ok()) {
    return FinishNow(context, s);
  }
  auto event = hub_->Send(request->id(), request->message());
  if (event.ok()) ToProto(**event, response->mutable_event());
  return FinishNow(context, event.status());
}

grpc::ServerUnaryReactor* ChatService::Leave(
    grpc::CallbackServerContext* context,
    const parley::v1::LeaveRequest* request,
    parley::v1::LeaveResponse* response) {
  if (absl::Status s = CheckUtf8(*request); !s.ok()) {
    return FinishNow(context, s);
  }
  auto event = hub_->Leave(request->id());
  if (event.ok()) ToProto(**event, response->mutable_event());
  return FinishNow(context, event.status());
}

grpc::ServerUnaryReactor* ChatService::Receive(
    grpc::CallbackServerContext* context,
    const parley::v1::ReceiveRequest* request,
    parley::v1::ReceiveResponse* response) {
  if (absl::Status s = CheckUtf8(*request); !s.ok()) {
    return FinishNow(context, s);
  }
  const double seconds = request->timeout();
  if (!std::isfinite(seconds) || seconds < 0) {
    return FinishNow(context,
                     InvalidInput("INVALID_TIMEOUT", "timeout",
                                  "timeout must be a non-negative number of "
                                  "seconds"));
  }
  absl::Duration timeout = seconds == 0 ? options_.receive_default_timeout
                                        : absl::Seconds(seconds);
  timeout = std::min(timeout, options_.receive_max_timeout);
  size_t max_events = request->max_events() == 0
                          ? options_.receive_max_events
                          : std::min<size_t>(request->max_events(),
                                             options_.receive_max_events);
  auto channel = hub_->FindChannel(request->id());
  if (!channel.ok()) return FinishNow(context, channel.status());

  auto* call = new PollCall();
  auto waiter = std::make_shared<PollCall::Waiter>(
      call, context, response, *std::move(channel), hub_, scheduler_,
      max_events);
  call->set_waiter(waiter);
  waiter->Start(timeout);
  return call;
}

grpc::ServerWriteReactor<parley::v1::SubscribeResponse>*
ChatService::Subscribe(grpc::CallbackServerContext* context,
                       const parley::v1::SubscribeRequest* request) {
  auto* call = new StreamCall();
  const absl::Status malformed = CheckUtf8(*request);
  absl::StatusOr<std::shared_ptr<Channel>> channel =
      malformed.ok() ? hub_->FindChannel(request->id())
                     : absl::StatusOr<std::shared_ptr<Channel>>(malformed);
  if (!channel.ok()) {
    call->Finish(ToGrpcStatus(channel.status(), context));
    return call;
  }
  auto pump = std::make_shared<StreamCall::Pump>(
      call, context, *std::move(channel), hub_, options_.stream_max_batch);
  call->set_pump(pump);
  pump->Start();
  return call;
}

}  // namespace parley::api
