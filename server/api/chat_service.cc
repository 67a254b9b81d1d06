#include "server/api/chat_service.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpc/slice.h"
#include "request_traits.h"
#include "server/chat/validate.h"
#include "server/api/idempotency.h"
#include "server/api/interceptor.h"
#include "server/api/quotas.h"
#include "server/api/status.h"
#include "server/common/errors.h"
#include "server/common/metrics.h"
#include "server/model/ids.h"

namespace parley::api {
namespace {

using chat::Channel;
using chat::ChannelReader;
using chat::CloseReason;
using model::EventPtr;

// The last sequence number among `events` (a gap's last), 0 for none: how
// far a lobby client has read.
uint64_t LastSequence(const std::vector<EventPtr>& events) {
  uint64_t last = 0;
  for (const EventPtr& e : events) {
    last = std::max(last, e->kind == model::EventKind::kGap ? e->gap_last
                                                           : e->sequence);
  }
  return last;
}

}  // namespace

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
    case CloseReason::kRemoved:
      return WithReason(absl::PermissionDeniedError(
                            "you are no longer a member of this room"),
                        "NOT_A_MEMBER", "room");
    case CloseReason::kDeleted:
      return WithReason(absl::NotFoundError("the room was deleted"),
                        "ROOM_NOT_FOUND", "room");
    case CloseReason::kUserGone:
      return WithReason(absl::UnauthenticatedError("the user was deleted"),
                        "USER_GONE");
    case CloseReason::kSignedOut:
      return WithReason(
          absl::UnauthenticatedError("the token was revoked (signed out)"),
          "TOKEN_REVOKED");
  }
  return absl::OkStatus();
}

namespace {

// The wait of a long poll: `seconds` (0: the default), at most the maximum.
absl::StatusOr<absl::Duration> PollTimeout(double seconds,
                                           const ReadOptions& read) {
  if (!std::isfinite(seconds) || seconds < 0) {
    return InvalidInput("INVALID_TIMEOUT", "timeout",
                        "timeout must be a non-negative number of seconds");
  }
  const absl::Duration timeout =
      seconds == 0 ? read.receive_default_timeout : absl::Seconds(seconds);
  return std::min(timeout, read.receive_max_timeout);
}

size_t PollMaxEvents(uint32_t asked, const ReadOptions& read) {
  return asked == 0 ? read.receive_max_events
                    : std::min<size_t>(asked, read.receive_max_events);
}

// What a signed-in Subscribe or Poll reads, and who reads it.
// The sender key of an anonymous client's sends: its address.
std::string AddressSender(absl::string_view address) {
  return absl::StrCat("address:", address);
}

// A stream's slot among the streams `user` (empty: anonymous) and `address`
// hold; a slot that holds nothing when the server has no limits.
absl::StatusOr<std::shared_ptr<Quotas::StreamSlot>> OpenStreamSlot(
    const Deps& deps, absl::string_view user, absl::string_view address) {
  if (deps.quotas == nullptr) return std::make_shared<Quotas::StreamSlot>();
  absl::StatusOr<Quotas::StreamSlot> slot =
      deps.quotas->OpenStream(user, address);
  if (!slot.ok()) return slot.status();
  return std::make_shared<Quotas::StreamSlot>(*std::move(slot));
}

struct StreamTarget {
  std::string log;
  chat::Subscriber subscriber;
};

// A readable room (by UUID or name), or the caller's own direct messages;
// `request` is checked for UTF-8 too.
absl::StatusOr<StreamTarget> SignedInTarget(
    const Deps& deps, grpc::CallbackServerContext* ctx,
    const google::protobuf::Message& request, const std::string& room,
    bool direct_messages) {
  StreamTarget target;
  if (direct_messages) {
    absl::StatusOr<auth::Principal> who = SignedInUser(deps, ctx, request);
    if (!who.ok()) return who.status();
    target.subscriber.user_id = who->user_id;
    target.subscriber.token_id = who->claims.jti;
    target.log = model::InboxLog(who->user_id);
    return target;
  }
  absl::StatusOr<RoomCall> call =
      ReadableRoom(deps, ctx, request, room, /*user_token_only=*/false);
  if (!call.ok()) return call.status();
  target.log = call->view.room.id;
  target.subscriber.user_id = call->who.user_id;
  target.subscriber.token_id = call->who.claims.jti;
  target.subscriber.name = call->who.display_name;
  target.subscriber.room = call->view.room.name;
  return target;
}

// A long poll. The reactor is owned by gRPC until OnDone; the waiter that the
// channel and the scheduler hold is shared, and decides under its lock which
// of the possible endings (events, timeout, leave, takeover, cancel) wins.
// Only the winner touches the reactor and the response, once. A signed-in
// poll makes its reactor on gRPC's thread and its waiter later, on a
// store-read worker (see ChatService::Poll); a cancellation that comes
// before the waiter is kept for it.
class PollCall final : public grpc::ServerUnaryReactor {
 public:
  // Puts what was taken from the channel into the response; false when none
  // of it is for the caller (then the poll keeps waiting). Runs under the
  // waiter's lock, once per wake-up, until the poll ends.
  using Consume = absl::AnyInvocable<bool(const std::vector<EventPtr>&)>;

  class Waiter final : public ChannelReader,
                       public std::enable_shared_from_this<Waiter> {
   public:
    Waiter(PollCall* call, Consume consume, std::shared_ptr<Channel> channel,
           chat::Hub* hub, Scheduler* scheduler, size_t max_events)
        : call_(call),
          consume_(std::move(consume)),
          channel_(std::move(channel)),
          hub_(hub),
          scheduler_(scheduler),
          max_events_(max_events) {}

    // Runs once when the poll ends, before the call finishes.
    void set_on_finish(absl::AnyInvocable<void()> on_finish) {
      on_finish_ = std::move(on_finish);
    }
    // A lobby client's session: the call finishes once what it took is
    // recorded as consumed. Call before Start.
    void set_lease(std::shared_ptr<chat::SessionLease> lease) {
      lease_ = std::move(lease);
    }

    void Start(absl::Duration timeout) {
      if (auto previous = channel_->Attach(shared_from_this())) {
        previous->OnSuperseded();
      }
      {
        MutexLock lock(&mu_);
        started_ = true;
      }
      OnReadable();  // Also ends a poll cancelled before it started.
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
      uint64_t consumed = 0;
      {
        MutexLock lock(&mu_);
        if (call_ == nullptr) return;
        if (ending == Ending::kCancelled) cancelled_ = true;
        if (!started_) return;  // Start ends it.
        if (cancelled_) {
          status = absl::CancelledError("the client cancelled the poll");
        } else if (ending != Ending::kSuperseded) {
          Channel::TakeResult taken = channel_->Take(max_events_);
          consumed = LastSequence(taken.events);
          const bool any = consume_(taken.events);
          if (!any && taken.closed == CloseReason::kOpen &&
              ending == Ending::kIfReadable) {
            // Woken by a race with an earlier Take, or by nothing for the
            // caller; keep waiting.
            return;
          }
          status = ClosedStatus(taken.closed);
        }
        call = call_;
        call_ = nullptr;
        timer = timer_;
      }
      channel_->Detach(this, hub_->clock()->Now());
      scheduler_->Cancel(timer);
      if (on_finish_) on_finish_();
      if (lease_ == nullptr) {
        call->Finish(ToGrpcStatus(status));
        return;
      }
      lease_->Consumed(consumed, [lease = lease_, call, status] {
        lease->Release();
        call->Finish(ToGrpcStatus(status));
      });
    }

    Mutex mu_;
    PollCall* call_ ABSL_GUARDED_BY(mu_);  // null once the call is finished
    Consume consume_ ABSL_GUARDED_BY(mu_);
    // Set before Start; run by the one thread that finishes the call.
    absl::AnyInvocable<void()> on_finish_;
    const std::shared_ptr<Channel> channel_;
    chat::Hub* const hub_;
    Scheduler* const scheduler_;
    const size_t max_events_;
    std::shared_ptr<chat::SessionLease> lease_;
    Scheduler::TaskId timer_ ABSL_GUARDED_BY(mu_) = 0;
    bool started_ ABSL_GUARDED_BY(mu_) = false;
    bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  };

  PollCall() = default;
  // For a waiter made after the handler returned (a session opened on
  // another thread): starts it, unless the client cancelled meanwhile
  // (then the call finishes and false is returned).
  bool StartLate(std::shared_ptr<Waiter> waiter, absl::Duration timeout) {
    bool cancelled;
    {
      MutexLock lock(&mu_);
      cancelled = cancelled_;
      if (!cancelled) waiter_ = waiter;
    }
    if (cancelled) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED,
                          "the client cancelled the poll"));
      return false;
    }
    waiter->Start(timeout);
    return true;
  }
  void OnCancel() override {
    std::shared_ptr<Waiter> waiter;
    {
      MutexLock lock(&mu_);
      cancelled_ = true;
      waiter = waiter_;
    }
    if (waiter != nullptr) waiter->OnCancel();
  }
  void OnDone() override { delete this; }

 private:
  Mutex mu_;
  std::shared_ptr<Waiter> waiter_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

// A Subscribe stream: one write in flight, and everything queued meanwhile
// coalesced into the next write. Like PollCall, the reactor belongs to gRPC
// and the shared pump decides under its lock who may call into it; Finish is
// only called with no write in flight.
//
// A resuming stream first replays history from the store, a page per write,
// up to the point where its channel's live events begin; channel wake-ups
// are ignored until then (the channel keeps them). Each page is read with no
// lock held, on a store-read worker: never on gRPC's threads, nor on the
// hub's dispatcher thread that delivers events, which therefore never waits
// behind a read to wake the stream. One read or write at a time, each
// continuing from where the last one ended, keeps the events in order,
// without gap or duplicate, across the switch to live events.
class StreamCall final
    : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  // History to replay: events of `log` with after < sequence <= until.
  struct Replay {
    store::Store* store = nullptr;
    std::string log;
    uint64_t after = 0;
    uint64_t until = 0;
  };

  // The thread a pump step runs on: the hub's (no store reads there), a
  // store-read worker (history is read right there), or another, gRPC's or
  // a lobby session's callback (history is read on `reads`).
  enum class From { kHub, kGrpc, kWorker };

  class Pump final : public ChannelReader,
                     public std::enable_shared_from_this<Pump> {
   public:
    Pump(StreamCall* call, std::shared_ptr<Channel> channel, chat::Hub* hub,
         size_t max_batch, WorkerPool* reads)
        : call_(call),
          channel_(std::move(channel)),
          hub_(hub),
          max_batch_(max_batch),
          reads_(reads) {}

    // Replays `replay` before live events, and sends no event at or before
    // replay.after (the client has them). Call before Start.
    void set_replay(Replay replay) {
      MutexLock lock(&mu_);
      resumed_after_ = replay.after;
      if (replay.after < replay.until) replay_ = std::move(replay);
    }
    // Sends a first write at once, even with no events. Call before Start.
    void set_first_write() {
      MutexLock lock(&mu_);
      first_write_ = true;
    }
    // Runs once when the stream finishes.
    void set_on_finish(absl::AnyInvocable<void()> on_finish) {
      on_finish_ = std::move(on_finish);
    }
    // Told the last sequence of each batch taken from the channel, as the
    // write starts; must not block. Call before Start.
    void set_on_taken(absl::AnyInvocable<void(uint64_t)> on_taken) {
      on_taken_ = std::move(on_taken);
    }

    // Attaches to the channel and makes the first step, on thread `from`.
    void Start(From from) {
      metrics::StreamStarted();
      if (auto previous = channel_->Attach(shared_from_this())) {
        previous->OnSuperseded();
      }
      StreamCall* call = nullptr;
      {
        MutexLock lock(&mu_);
        started_ = true;
        // Ended (cancelled) before it started: End left the finish to us.
        if (finishing_) call = FinishCallLocked();
      }
      if (call != nullptr) return Finish(call);
      Step(from);
    }

    // From the hub (possibly on its dispatcher thread): no store reads, so
    // while history is still being replayed the channel just keeps what
    // came; the replay's last step drains it.
    void OnReadable() override { Step(From::kHub); }

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
        // gRPC is done with the bytes: a quiet stream holds no buffer.
        response_.Clear();
        if (!ok && !finishing_) {
          BeginFinishLocked(absl::UnavailableError("the stream broke"));
        }
        finishing = finishing_;
        if (finishing) call = FinishCallLocked();
      }
      if (finishing) {
        Finish(call);
      } else {
        Step(From::kGrpc);
      }
    }

    void End(const absl::Status& status) {
      StreamCall* call;
      {
        MutexLock lock(&mu_);
        if (call_ == nullptr || finishing_) return;
        BeginFinishLocked(status);
        // A write in flight (OnWriteDone), a history read (OnPage) or a
        // start still to come finishes.
        if (writing_ || reading_ || !started_) return;
        call = FinishCallLocked();
      }
      Finish(call);
    }

   private:
    // Starts reading the next page of history, or writes what the channel
    // holds; finishes when the channel is closed and drained.
    void Step(From from) {
      StreamCall* call = nullptr;
      bool writing = false;
      std::optional<Replay> read;
      {
        MutexLock lock(&mu_);
        if (call_ == nullptr || !started_ || writing_ || reading_ ||
            finishing_) {
          return;
        }
        if (replay_.has_value()) {
          if (from == From::kHub) return;
          reading_ = true;
          read = *replay_;
        } else {
          Channel::TakeResult taken = channel_->Take(max_batch_);
          if (!taken.events.empty()) CountLag(taken.events);
          if (on_taken_ && !taken.events.empty()) {
            on_taken_(LastSequence(taken.events));
          }
          for (EventPtr& event : taken.events) {
            // A stream resumed after a point this server's live events have
            // not reached yet (another server delivered it) skips up to it.
            if (event->sequence != 0 && event->sequence <= resumed_after_) {
              continue;
            }
            AppendLocked(std::move(event));
          }
          if (!batch_.empty() || first_write_) {
            first_write_ = false;
            writing_ = writing = true;
            call = call_;
            response_ = TakeBatchLocked();
          } else if (taken.closed != CloseReason::kOpen) {
            BeginFinishLocked(ClosedStatus(taken.closed));
            call = FinishCallLocked();
          } else {
            return;
          }
        }
      }
      if (read.has_value()) {
        ReadPage(*std::move(read), from);
      } else if (writing) {
        // Outside the lock: gRPC may run OnWriteDone on this thread.
        call->StartWrite(&response_);
      } else {
        Finish(call);
      }
    }

    // The size of the next page of `r`.
    size_t PageSize(const Replay& r) const {
      return static_cast<size_t>(
          std::min<uint64_t>(max_batch_, r.until - r.after));
    }

    // Reads the page of history after `r.after`, holding no lock: here on a
    // worker, else on the store-read pool (a full pool ends the stream
    // RESOURCE_EXHAUSTED; a client resumes from its last sequence).
    void ReadPage(Replay r, From from) {
      if (from == From::kWorker) {
        OnPage(r.store->ReadAfter(r.log, r.after, PageSize(r)));
        return;
      }
      absl::Status accepted =
          reads_->Submit([self = shared_from_this(), r = std::move(r)] {
            self->OnPage(r.store->ReadAfter(r.log, r.after, self->PageSize(r)));
          });
      if (!accepted.ok()) OnPage(accepted);
    }

    // A page read (on a worker, or the pool's refusal): writes it and
    // advances the cursor; clears replay_ once it reaches the live point.
    void OnPage(absl::StatusOr<std::vector<EventPtr>> page) {
      StreamCall* call = nullptr;
      bool writing = false;
      bool next = false;
      {
        MutexLock lock(&mu_);
        reading_ = false;
        if (finishing_) {
          // Ended while reading (cancelled, superseded).
          call = FinishCallLocked();
        } else if (!page.ok()) {
          BeginFinishLocked(page.status());
          call = FinishCallLocked();
        } else {
          Replay& r = *replay_;
          const size_t want = PageSize(r);
          bool past = false;
          for (EventPtr& event : *page) {
            if (event->sequence > r.until) {
              past = true;
              break;
            }
            r.after = event->sequence;
            AppendLocked(std::move(event));
          }
          // Fewer than asked, or past the live point: the rest up to
          // `until` was purged or never committed; live events start after
          // `until`.
          if (past || page->size() < want || r.after >= r.until) {
            replay_.reset();
          }
          if (!batch_.empty() || first_write_) {
            first_write_ = false;
            writing_ = writing = true;
            call = call_;
            response_ = TakeBatchLocked();
          } else {
            next = true;  // Nothing to write: on to the live events.
          }
        }
      }
      if (writing) {
        call->StartWrite(&response_);
      } else if (call != nullptr) {
        Finish(call);
      } else if (next) {
        Step(From::kWorker);  // A page was read: this is a worker.
      }
    }

    // The delivery lag of the log events in `events` (live-only events,
    // presence and typing, and gap markers have no sequence number).
    void CountLag(const std::vector<EventPtr>& events) {
      const absl::Time now = hub_->clock()->Now();
      for (const EventPtr& event : events) {
        if (event->sequence != 0) metrics::CountDeliveryLag(now - event->time);
      }
    }

    // Adds `event` to the write being built. Events from the hub carry
    // their encoding, made once for all readers; history pages are encoded
    // here.
    void AppendLocked(EventPtr event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      if (event->wire.empty()) {
        auto encoded = std::make_shared<model::Event>();
        encoded->wire = EncodeStreamEvent(*event);
        event = std::move(encoded);
      }
      batch_.push_back(std::move(event));
    }

    // The write: a SubscribeResponse is a repetition of field 1, so the
    // events' encodings concatenate, into one slice of exactly their size
    // (nothing kept between writes: a stream's memory between events is
    // its channel and gRPC's call).
    grpc::ByteBuffer TakeBatchLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      size_t size = 0;
      for (const EventPtr& event : batch_) size += event->wire.size();
      grpc_slice slice = grpc_slice_malloc(size);
      uint8_t* out = GRPC_SLICE_START_PTR(slice);
      for (const EventPtr& event : batch_) {
        std::memcpy(out, event->wire.data(), event->wire.size());
        out += event->wire.size();
      }
      // A burst (presence, a replayed page) must not leave a large vector.
      if (batch_.capacity() > 16) {
        std::vector<EventPtr>().swap(batch_);
      } else {
        batch_.clear();
      }
      grpc::Slice owned(slice, grpc::Slice::STEAL_REF);
      return grpc::ByteBuffer(&owned, 1);
    }

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
      metrics::StreamEnded();
      absl::Status status;
      {
        MutexLock lock(&mu_);
        status = final_status_;
      }
      channel_->Detach(this, hub_->clock()->Now());
      if (on_finish_) on_finish_();
      call->FinishWith(status);
    }

    Mutex mu_;
    StreamCall* call_ ABSL_GUARDED_BY(mu_);  // null once Finish is due
    const std::shared_ptr<Channel> channel_;
    chat::Hub* const hub_;
    const size_t max_batch_;
    WorkerPool* const reads_;
    bool started_ ABSL_GUARDED_BY(mu_) = false;
    bool writing_ ABSL_GUARDED_BY(mu_) = false;
    bool reading_ ABSL_GUARDED_BY(mu_) = false;  // a page of history
    bool finishing_ ABSL_GUARDED_BY(mu_) = false;
    bool first_write_ ABSL_GUARDED_BY(mu_) = false;
    std::optional<Replay> replay_ ABSL_GUARDED_BY(mu_);
    uint64_t resumed_after_ ABSL_GUARDED_BY(mu_) = 0;
    absl::Status final_status_ ABSL_GUARDED_BY(mu_);
    // Set before Start; run by the one thread that finishes the call.
    absl::AnyInvocable<void()> on_finish_;
    // Set before Start; called under mu_.
    absl::AnyInvocable<void(uint64_t)> on_taken_;
    // The write being built (guarded by mu_), and the one in flight: written
    // only by the thread that sets writing_, left alone while the write is in
    // flight.
    std::vector<EventPtr> batch_ ABSL_GUARDED_BY(mu_);
    grpc::ByteBuffer response_;
  };

  // `calls` may be null (no record of the call).
  explicit StreamCall(CallStats* calls) {
    if (calls != nullptr) {
      record_.emplace(calls, ChatService::kSubscribeMethod,
                      CallStats::Kind::kStreaming);
    }
  }
  // For a pump made after the handler returned (a session opened on
  // another thread, a store-read worker; `from` says which, see From):
  // starts it, unless the client cancelled meanwhile (then the call
  // finishes and false is returned).
  bool StartLate(std::shared_ptr<Pump> pump, From from) {
    bool cancelled;
    {
      MutexLock lock(&mu_);
      cancelled = cancelled_;
      if (!cancelled) pump_ = pump;
    }
    if (cancelled) {
      FinishWith(absl::CancelledError("the client cancelled the stream"));
      return false;
    }
    pump->Start(from);
    return true;
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

  void OnWriteDone(bool ok) override {
    Pump* pump;
    {
      MutexLock lock(&mu_);
      pump = pump_.get();  // Set: only a pump writes.
    }
    pump->OnWriteDone(ok);
  }
  void OnCancel() override {
    std::shared_ptr<Pump> pump;
    {
      MutexLock lock(&mu_);
      cancelled_ = true;
      pump = pump_;
    }
    // No pump when the call was refused before it started, or not yet one
    // (StartLate sees the cancellation).
    if (pump != nullptr) {
      pump->End(absl::CancelledError("the client cancelled the stream"));
    }
  }
  void OnDone() override { delete this; }

 private:
  Mutex mu_;
  std::shared_ptr<Pump> pump_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  // The interceptor leaves Subscribe alone (it would run at every write).
  std::optional<CallRecord> record_;
};

}  // namespace

ChatService::ChatService(const Deps& deps) : deps_(deps) {}

// Join, Send and Leave are acknowledged from the hub's dispatcher thread once
// their event is committed and delivered.
#define PARLEY_LOBBY_CALL(Method, ...)                                       \
  if (absl::Status s = CheckStrings(*request); !s.ok()) {                       \
    return FinishNow(context, s);                                            \
  }                                                                          \
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();             \
  deps_.hub->Method(__VA_ARGS__, [reactor, context, response](               \
                                     absl::StatusOr<EventPtr> event) {       \
    if (event.ok()) ToProto(**event, response->mutable_event());             \
    FinishWith(reactor, context, event.status());                            \
  });                                                                        \
  return reactor

grpc::ServerUnaryReactor* ChatService::Join(
    grpc::CallbackServerContext* context,
    const parley::v1::JoinRequest* request,
    parley::v1::JoinResponse* response) {
  PARLEY_LOBBY_CALL(Join, request->id(), ClientAddress(deps_, context));
}

grpc::ServerUnaryReactor* ChatService::Send(
    grpc::CallbackServerContext* context,
    const parley::v1::SendRequest* request,
    parley::v1::SendResponse* response) {
  if (absl::Status s = CheckStrings(*request); !s.ok()) {
    return FinishNow(context, s);
  }
  absl::StatusOr<model::IdempotencyKey> idempotency = deps_.sends->KeyOf(
      context, request->idempotency_key(), deps_.hub->options().max_id_bytes,
      [&] { return absl::StrCat("client:", request->id()); }, model::kLobbyId,
      request->message());
  if (!idempotency.ok()) return FinishNow(context, idempotency.status());
  // A send with a key first looks for the key's earlier send in the store.
  WorkerPool* pool = idempotency->key.empty() ? nullptr : deps_.reads;
  return RunOn(
      pool, context,
      [this, context, request, response, idempotency = *std::move(idempotency),
       address = ClientAddress(deps_, context)](
          grpc::ServerUnaryReactor* reactor) {
        deps_.sends->Run(
            idempotency,
            [this, id = request->id(), text = request->message(),
             key = idempotency,
             address = std::move(address)](chat::EventDone done) mutable {
              // Lobby clients are anonymous: their address is the sender.
              if (absl::Status s = ChargeSend(deps_, AddressSender(address),
                                              model::kLobbyId);
                  !s.ok()) {
                return done(s);
              }
              deps_.hub->Send(id, text, std::move(done), std::move(key));
            },
            [reactor, context, response](absl::StatusOr<EventPtr> event) {
              if (event.ok()) ToProto(**event, response->mutable_event());
              FinishWith(reactor, context, event.status());
            });
      });
}

grpc::ServerUnaryReactor* ChatService::Leave(
    grpc::CallbackServerContext* context,
    const parley::v1::LeaveRequest* request,
    parley::v1::LeaveResponse* response) {
  PARLEY_LOBBY_CALL(Leave, request->id());
}

#undef PARLEY_LOBBY_CALL

grpc::ServerUnaryReactor* ChatService::Receive(
    grpc::CallbackServerContext* context,
    const parley::v1::ReceiveRequest* request,
    parley::v1::ReceiveResponse* response) {
  if (absl::Status s = CheckStrings(*request); !s.ok()) {
    return FinishNow(context, s);
  }
  absl::StatusOr<absl::Duration> timeout =
      PollTimeout(request->timeout(), deps_.read);
  if (!timeout.ok()) return FinishNow(context, timeout.status());
  const size_t max_events = PollMaxEvents(request->max_events(), deps_.read);
  auto* call = new PollCall();
  deps_.hub->OpenSession(
      request->id(),
      [call, response, hub = deps_.hub, scheduler = deps_.scheduler,
       max_events, timeout = *timeout](
          absl::StatusOr<std::shared_ptr<chat::SessionLease>> lease) {
        if (!lease.ok()) {
          call->Finish(ToGrpcStatus(lease.status()));
          return;
        }
        auto waiter = std::make_shared<PollCall::Waiter>(
            call,
            [response](const std::vector<EventPtr>& events) {
              for (const EventPtr& event : events) {
                ToProto(*event, response->add_events());
              }
              return !events.empty();
            },
            (*lease)->channel(), hub, scheduler, max_events);
        waiter->set_lease(*lease);
        if (!call->StartLate(std::move(waiter), timeout)) (*lease)->Release();
      });
  return call;
}

grpc::ServerUnaryReactor* ChatService::Poll(
    grpc::CallbackServerContext* context,
    const parley::v1::PollRequest* request,
    parley::v1::PollResponse* response) {
  const int targets =
      (request->room().empty() ? 0 : 1) + (request->direct_messages() ? 1 : 0);
  if (targets != 1) {
    return FinishNow(context,
                     InvalidInput("ONE_TARGET", "room",
                                  "give exactly one of room and "
                                  "direct_messages"));
  }
  absl::StatusOr<absl::Duration> timeout =
      PollTimeout(request->timeout(), deps_.read);
  if (!timeout.ok()) return FinishNow(context, timeout.status());
  const size_t max_events = PollMaxEvents(request->max_events(), deps_.read);
  // The rest reads the store (the caller, the room, history): on a worker,
  // which finishes the call or hands it to a waiter.
  auto* call = new PollCall();
  absl::Status accepted = deps_.reads->Submit([this, call, context, request,
                                               response, timeout = *timeout,
                                               max_events] {
    auto finish = [call](const absl::Status& status) {
      call->Finish(ToGrpcStatus(status));
    };
    if (context->IsCancelled()) {
      return finish(absl::CancelledError("the poll was cancelled"));
    }
    absl::StatusOr<StreamTarget> target = SignedInTarget(
        deps_, context, *request, request->room(), request->direct_messages());
    if (!target.ok()) return finish(target.status());
    uint64_t after;
    if (request->has_after_sequence()) {
      after = request->after_sequence();
    } else {
      absl::StatusOr<uint64_t> end = deps_.hub->LastDelivered(target->log);
      if (!end.ok()) return finish(end.status());
      after = *end;
    }
    // What is committed already comes from the store at once.
    auto history = [&]() -> absl::StatusOr<bool> {
      absl::StatusOr<std::vector<EventPtr>> page =
          deps_.store->ReadAfter(target->log, after, max_events);
      if (!page.ok()) return page.status();
      for (const EventPtr& event : *page) {
        ToProto(*event, response->add_events());
      }
      if (!page->empty()) {
        response->set_next_after_sequence(page->back()->sequence);
      }
      return !page->empty();
    };
    absl::StatusOr<bool> found = history();
    if (!found.ok()) return finish(found.status());
    if (*found) return finish(absl::OkStatus());

    // Nothing yet: wait on the log like a stream without presence (no name).
    target->subscriber.name.clear();
    absl::StatusOr<chat::Subscription> subscription =
        deps_.hub->Subscribe(target->log, std::move(target->subscriber));
    if (!subscription.ok()) return finish(subscription.status());
    if (subscription->live_after > after) {
      // Committed between the read and the subscription.
      found = history();
      if (!found.ok() || *found) {
        deps_.hub->Unsubscribe(*subscription);
        return finish(found.status());
      }
    }
    response->set_next_after_sequence(after);
    auto waiter = std::make_shared<PollCall::Waiter>(
        call,
        [response, next = after](const std::vector<EventPtr>& events) mutable {
          // Log entries only, in order, up to the first one missing (a gap
          // the next poll reads from history).
          for (const EventPtr& event : events) {
            if (event->kind == model::EventKind::kGap) break;
            if (event->sequence <= next) continue;  // live-only: sequence 0
            ToProto(*event, response->add_events());
            next = event->sequence;
          }
          response->set_next_after_sequence(next);
          return response->events_size() > 0;
        },
        subscription->channel, deps_.hub, deps_.scheduler, max_events);
    waiter->set_on_finish(
        [hub = deps_.hub, sub = *subscription] { hub->Unsubscribe(sub); });
    if (!call->StartLate(std::move(waiter), timeout)) {
      deps_.hub->Unsubscribe(*subscription);
    }
  });
  if (!accepted.ok()) call->Finish(ToGrpcStatus(accepted));
  return call;
}

std::string EncodeStreamEvent(const model::Event& event) {
  parley::v1::SubscribeResponse one;
  ToProto(event, one.add_events());
  return one.SerializeAsString();
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* ChatService::Subscribe(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* raw) {
  auto* call = new StreamCall(deps_.calls);
  auto refuse = [&](const absl::Status& status) {
    call->FinishWith(status);
    return call;
  };
  // Subscribe is a raw method (its writes are pre-encoded bytes), so the
  // request is parsed here, with the same UTF-8 handling as the others.
  parley::v1::SubscribeRequest parsed;
  grpc::ByteBuffer copy(*raw);
  const bool parsed_ok = proto::DeserializeRequest(&copy, &parsed).ok();
  // gRPC keeps a raw request until the call ends, and its bytes are a piece
  // of the connection's read buffer (up to tens of KB), which they pin: a
  // stream opened among other traffic held one such buffer for its whole
  // life (~50 MB over 12,000 reopens of 10,000 streams). The handler made
  // the request as a mutable object and only destroys it later; emptying it
  // now releases the buffer.
  copy.Clear();
  const_cast<grpc::ByteBuffer*>(raw)->Clear();
  if (!parsed_ok) {
    return refuse(InvalidInput("MALFORMED_REQUEST", "",
                               "the request is not a SubscribeRequest"));
  }
  const parley::v1::SubscribeRequest* request = &parsed;
  if (absl::Status s = CheckStrings(*request); !s.ok()) return refuse(s);
  const int targets = (request->id().empty() ? 0 : 1) +
                      (request->room().empty() ? 0 : 1) +
                      (request->direct_messages() ? 1 : 0);
  if (targets > 1) {
    return refuse(InvalidInput(
        "ONE_TARGET", "room",
        "give exactly one of id, room and direct_messages"));
  }
  const std::string address = ClientAddress(deps_, context);
  if (request->room().empty() && !request->direct_messages()) {
    // Seed 000: a joined lobby client's own channel.
    auto open = [this, call, id = request->id(), address] {
      absl::StatusOr<std::shared_ptr<Quotas::StreamSlot>> slot =
          OpenStreamSlot(deps_, "", address);
      if (!slot.ok()) return call->FinishWith(slot.status());
      deps_.hub->OpenSession(
          id, [call, hub = deps_.hub, max_batch = deps_.read.stream_max_batch,
               reads = deps_.reads, slot = *std::move(slot)](
                  absl::StatusOr<std::shared_ptr<chat::SessionLease>>
                      lease) mutable {
            if (!lease.ok()) {
              call->FinishWith(lease.status());
              return;
            }
            auto pump = std::make_shared<StreamCall::Pump>(
                call, (*lease)->channel(), hub, max_batch, reads);
            pump->set_on_taken([lease = *lease](uint64_t last) {
              lease->Consumed(last, [] {});
            });
            pump->set_on_finish([lease = *lease, slot = std::move(slot)] {
              lease->Release();
              slot->Release();
            });
            if (!call->StartLate(std::move(pump), StreamCall::From::kGrpc)) {
              (*lease)->Release();
            }
          });
    };
    // A shared stream count waits for Redis: not on gRPC's thread.
    if (deps_.quotas == nullptr || !deps_.quotas->shares_streams()) {
      open();
    } else if (absl::Status s = deps_.reads->Submit(std::move(open));
               !s.ok()) {
      return refuse(s);
    }
    return call;
  }

  // The rest reads the store (the caller, the room, the log's end, history):
  // on a worker, which refuses the call or starts its pump.
  absl::Status accepted =
      deps_.reads->Submit([this, call, context, request = std::move(parsed),
                           address] {
        if (context->IsCancelled()) {
          return call->FinishWith(
              absl::CancelledError("the client cancelled the stream"));
        }
        absl::StatusOr<StreamTarget> target = SignedInTarget(
            deps_, context, request, request.room(), request.direct_messages());
        if (!target.ok()) return call->FinishWith(target.status());
        absl::StatusOr<std::shared_ptr<Quotas::StreamSlot>> slot =
            OpenStreamSlot(deps_, target->subscriber.user_id, address);
        if (!slot.ok()) return call->FinishWith(slot.status());
        const std::string log = target->log;
        absl::StatusOr<chat::Subscription> subscription =
            deps_.hub->Subscribe(log, std::move(target->subscriber));
        if (!subscription.ok()) return call->FinishWith(subscription.status());

        auto pump = std::make_shared<StreamCall::Pump>(
            call, subscription->channel, deps_.hub,
            deps_.read.stream_max_batch, deps_.reads);
        if (request.has_after_sequence()) {
          pump->set_replay(StreamCall::Replay{deps_.store, log,
                                              request.after_sequence(),
                                              subscription->live_after});
        }
        pump->set_first_write();
        pump->set_on_finish(
            [hub = deps_.hub, sub = *subscription, slot = *std::move(slot)] {
              hub->Unsubscribe(sub);
              slot->Release();
            });
        if (!call->StartLate(std::move(pump), StreamCall::From::kWorker)) {
          deps_.hub->Unsubscribe(*subscription);
        }
      });
  if (!accepted.ok()) return refuse(accepted);
  return call;
}

grpc::ServerUnaryReactor* ChatService::ListRecentMessages(
    grpc::CallbackServerContext* context,
    const parley::v1::ListRecentMessagesRequest* request,
    parley::v1::ListRecentMessagesResponse* response) {
  return RunOn(
      deps_.reads, context,
      [this, context, request, response](grpc::ServerUnaryReactor* reactor) {
        absl::StatusOr<size_t> n =
            PageSize(request->n(), 100, deps_.read.history_max_page, "n");
        if (!n.ok()) return FinishWith(reactor, context, n.status());
        absl::StatusOr<store::PageResult> page =
            deps_.store->ListMessages(model::kLobbyId, store::Page{*n});
        if (!page.ok()) return FinishWith(reactor, context, page.status());
        for (const EventPtr& m : page->messages) {
          if (m->deleted) continue;
          auto* out = response->add_messages();
          out->set_timestamp(
              static_cast<uint32_t>(absl::ToUnixSeconds(m->time)));
          out->set_user(m->sender);
          out->set_text(m->text);
        }
        FinishWith(reactor, context, absl::OkStatus());
      });
}

grpc::ServerUnaryReactor* ChatService::PostRecentMessage(
    grpc::CallbackServerContext* context,
    const parley::v1::PostRecentMessageRequest* request,
    parley::v1::PostRecentMessageResponse* response) {
  if (absl::Status s = CheckStrings(*request); !s.ok()) {
    return FinishNow(context, s);
  }
  const chat::HubOptions& limits = deps_.hub->options();
  if (absl::Status s =
          chat::ValidateClientId(request->user(), limits.max_id_bytes, "user");
      !s.ok()) {
    return FinishNow(context, s);
  }
  if (absl::Status s = chat::ValidateMessageText(
          request->text(), limits.max_message_bytes, "text");
      !s.ok()) {
    return FinishNow(context, s);
  }
  auto event = chat::NewEvent(model::EventKind::kMessage, model::kLobbyId);
  event->room_id = std::string(model::kLobbyId);
  event->room = std::string(model::kLobbyName);
  event->sender = request->user();
  event->text = request->text();
  if (absl::Status s = ChargeSend(
          deps_, AddressSender(ClientAddress(deps_, context)), event->log);
      !s.ok()) {
    return FinishNow(context, s);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  deps_.hub->Publish(std::move(event), [reactor, context, response](
                                            absl::StatusOr<EventPtr> event) {
    if (event.ok()) response->set_ok(true);
    FinishWith(reactor, context, event.status());
  });
  return reactor;
}

grpc::ServerUnaryReactor* ChatService::ListPosters(
    grpc::CallbackServerContext* context,
    const parley::v1::ListPostersRequest* /*request*/,
    parley::v1::ListPostersResponse* response) {
  return RunOn(deps_.reads, context,
               [this, context, response](grpc::ServerUnaryReactor* reactor) {
                 absl::StatusOr<std::vector<std::string>> names =
                     deps_.store->ListPosters(model::kLobbyId);
                 if (!names.ok()) {
                   return FinishWith(reactor, context, names.status());
                 }
                 for (std::string& name : *names)
                   response->add_users(std::move(name));
                 FinishWith(reactor, context, absl::OkStatus());
               });
}

}  // namespace parley::api
