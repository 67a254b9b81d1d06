// What the scenarios of parley_loadgen share (loadgen.cc): the clock, the
// server's /proc figures, the result line, the counters every callback
// updates, the channels and the setup calls. A scenario of its own file
// (resume.cc) is declared at the end.
#ifndef PARLEY_CLIENTS_LOADGEN_COMMON_H_
#define PARLEY_CLIENTS_LOADGEN_COMMON_H_

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "clients/loadgen/histogram.h"
#include "parley/v1/accounts.grpc.pb.h"
#include "parley/v1/chat.grpc.pb.h"
#include "parley/v1/messages.grpc.pb.h"
#include "parley/v1/rooms.grpc.pb.h"

ABSL_DECLARE_FLAG(int, users);
ABSL_DECLARE_FLAG(int, publishers);
ABSL_DECLARE_FLAG(double, rate);
ABSL_DECLARE_FLAG(int, message_bytes);
ABSL_DECLARE_FLAG(int, streams);
ABSL_DECLARE_FLAG(int, room_size);
ABSL_DECLARE_FLAG(double, quiet);
ABSL_DECLARE_FLAG(double, setup_timeout);
ABSL_DECLARE_FLAG(int, open_concurrency);

namespace parley::loadgen {

// ---------------------------------------------------------------- time

int64_t NowNs();  // CLOCK_REALTIME
void SleepUntilNs(int64_t at);
void SleepSeconds(double s);
int64_t Ns(double seconds);

// ------------------------------------------------------------- /proc

struct ProcSample {
  bool ok = false;
  double cpu_seconds = 0;  // utime + stime
  int64_t rss_kb = 0;
  int64_t hwm_kb = 0;
};

ProcSample SampleProc(int pid);
ProcSample SampleServers();  // --server_pid

// ------------------------------------------------------------ results

std::string JsonString(absl::string_view s);  // quoted and escaped

// The result of a run: ordered key/value pairs, printed as a table and as
// one JSON object.
class Result {
 public:
  void Num(const std::string& key, double v, int decimals = 3) {
    if (!std::isfinite(v)) v = 0;
    std::string text = absl::StrFormat("%.*f", decimals, v);
    if (decimals > 0) {
      // Trim trailing zeros for readability: 2.500 -> 2.5, 3.000 -> 3.
      while (text.back() == '0') text.pop_back();
      if (text.back() == '.') text.pop_back();
    }
    items_.push_back({key, text, text});
  }
  void Int(const std::string& key, int64_t v) {
    items_.push_back({key, absl::StrCat(v), absl::StrCat(v)});
  }
  void Str(const std::string& key, const std::string& v) {
    items_.push_back({key, JsonString(v), v});
  }
  void Bool(const std::string& key, bool v) {
    items_.push_back({key, v ? "true" : "false", v ? "yes" : "no"});
  }
  std::string Json() const {
    std::string out = "{";
    for (size_t i = 0; i < items_.size(); ++i) {
      if (i > 0) out += ",";
      out += JsonString(items_[i].key) + ":" + items_[i].json;
    }
    return out + "}";
  }
  void PrintTable() const {
    size_t width = 0;
    for (const Item& i : items_) width = std::max(width, i.key.size());
    for (const Item& i : items_) {
      if (i.key == "command") continue;
      std::printf("  %-*s  %s\n", static_cast<int>(width), i.key.c_str(),
                  i.text.c_str());
    }
  }

 private:
  struct Item {
    std::string key, json, text;
  };
  std::vector<Item> items_;
};

// Latency percentiles in milliseconds, as <prefix>_p50_ms etc.
void AddLatency(Result& r, const std::string& prefix, const Histogram& h);

// --------------------------------------------------------- shared state

// Latency is recorded into the histogram of the phase whose time range
// holds the message's scheduled send time; outside every phase, nowhere.
class Phases {
 public:
  static constexpr int kMax = 2;
  void Set(int i, int64_t begin, int64_t end) {
    begin_[i].store(begin, std::memory_order_relaxed);
    end_[i].store(end, std::memory_order_relaxed);
  }
  Histogram* For(int64_t stamp) {
    for (int i = 0; i < kMax; ++i) {
      if (stamp >= begin_[i].load(std::memory_order_relaxed) &&
          stamp < end_[i].load(std::memory_order_relaxed)) {
        return &hist_[i];
      }
    }
    return nullptr;
  }
  Histogram& hist(int i) { return hist_[i]; }

 private:
  std::atomic<int64_t> begin_[kMax] = {};
  std::atomic<int64_t> end_[kMax] = {};
  Histogram hist_[kMax];
};

struct Shared {
  std::atomic<uint64_t> deliveries{0};    // message events received
  std::atomic<uint64_t> other_events{0};  // join, leave, ...
  std::atomic<uint64_t> gaps{0};
  std::atomic<uint64_t> errors{0};
  std::atomic<uint64_t> first_writes{0};
  std::atomic<uint64_t> failed_streams{0};
  std::atomic<int64_t> live_streams{0};
  std::atomic<int64_t> inflight{0};  // unary calls other than polls
  std::atomic<int64_t> polls{0};     // Receive calls in flight
  std::atomic<uint64_t> calls_ok{0};
  std::atomic<uint64_t> skipped{0};
  std::atomic<bool> stopping{false};
  Phases phases;
  Histogram send_latency;  // unary calls, completion inside the window
  std::atomic<int64_t> window_begin{0}, window_end{0};
};
extern Shared g;

void NoteError(const char* what, const grpc::Status& s);
[[noreturn]] void Die(const std::string& why);
// Progress on stderr, with the time since start.
void Progress(const std::string& what);
// A message text: "t=<scheduled ns>;k=<n>;" padded with 'x' to `bytes`.
std::string StampedText(int64_t stamp, uint64_t k, int bytes);
int64_t ParseStamp(const std::string& text);

// ------------------------------------------------------------ channels

struct Conn {
  size_t target = 0;  // its server's index in Targets()
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<parley::v1::ChatService::Stub> chat;
  std::unique_ptr<parley::v1::MessageService::Stub> messages;
  std::unique_ptr<parley::v1::RoomService::Stub> rooms;
  std::unique_ptr<parley::v1::UserService::Stub> users;
  std::unique_ptr<parley::v1::AuthService::Stub> auth;
  std::unique_ptr<grpc::GenericStub> generic;
};
extern std::vector<std::unique_ptr<Conn>> conns;
Conn& ConnFor(size_t i);
const std::vector<std::string>& Targets();  // --target

// ------------------------------------------------------- setup and calls

void Authorize(grpc::ClientContext* ctx, const std::string& token);
// Signs up `n` users named <prefix>-<kind><i> and returns their tokens.
std::vector<std::string> SignUp(const std::string& kind, int n);
// Creates `n` public rooms named <prefix>-r<i>; returns their names.
std::vector<std::string> CreateRooms(int n, const std::string& token);
void PostAsync(Conn& c, const std::string& token, const std::string& room,
               std::string text);
// Waits until `done()` or the timeout; false on timeout.
bool WaitFor(const std::function<bool()>& done, double timeout_s);

// ------------------------------------------------------------ scenarios

// resume.cc: streams on several servers, one of them killed.
int Resume(Result& r);

}  // namespace parley::loadgen

#endif  // PARLEY_CLIENTS_LOADGEN_COMMON_H_
