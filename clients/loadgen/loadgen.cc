// parley_loadgen: the load generator of Parley's benchmark suite (issue 5).
//
//   parley_loadgen --scenario=fanout|streams|durable|unary|longpoll|slow|resume
//                  --target=HOST:PORT[,HOST:PORT...] --server_pid=PID[,PID...]
//                  [flags...]
//
// Built on the generated stubs and gRPC's callback client API: Subscribe
// streams are ClientReadReactors and every unary call is a callback, so one
// process holds tens of thousands of streams on gRPC's own few threads. Calls
// are spread over --channels connections (each channel has its own subchannel
// pool, so its own TCP connection).
//
// Messages carry the time they were scheduled to be sent (CLOCK_REALTIME ns,
// at the start of their text), so receivers compute publish-to-receive
// latency; open-loop senders stamp the scheduled time, not the time the call
// went out, so a sender that falls behind shows up as latency (no coordinated
// omission). Server CPU and RSS come from /proc/<server_pid>.
//
// Every run prints a human table, the command line, and one JSON line
// (also appended to --json_out). The exit code is 1 when more calls failed
// than --max_errors allows, or the run delivered nothing.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <dirent.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "clients/loadgen/common.h"
#include "clients/loadgen/histogram.h"
#include "parley/v1/accounts.grpc.pb.h"
#include "parley/v1/chat.grpc.pb.h"
#include "parley/v1/messages.grpc.pb.h"
#include "parley/v1/rooms.grpc.pb.h"
#include "parley/v1/stats.grpc.pb.h"

ABSL_FLAG(std::string, scenario, "",
          "fanout, streams, durable, unary, longpoll, slow or resume "
          "(resume.cc).");
ABSL_FLAG(std::string, target, "127.0.0.1:50051",
          "The server's gRPC address, or a comma-separated list of servers "
          "(a cluster): channel i goes to server i mod N, and --channels is "
          "rounded up to a multiple of N, so calls and streams spread evenly.");
ABSL_FLAG(std::string, server_pid, "",
          "The server's pid, for CPU and RSS from /proc; a comma-separated "
          "list with several servers (their sums). Empty: not reported.");
ABSL_FLAG(std::string, watch, "",
          "name:pid,...: other processes (e.g. redis:PID,postgres:PID) whose "
          "CPU, with their children's (PostgreSQL's backends), is reported "
          "over the measured window as <name>_cpu_cores and per message or "
          "call (fanout, durable, unary).");
ABSL_FLAG(std::string, publish_on, "all",
          "fanout with several --target servers: all (publishers round robin "
          "over every server, as the subscribers) or first (the first only).");
ABSL_FLAG(int, channels, 4,
          "gRPC channels (one TCP connection each) to spread calls over.");
ABSL_FLAG(int, users, 50, "Users signed up to hold the subscribers' tokens.");
ABSL_FLAG(int, publishers, 10, "Users that post (fanout, durable, unary, slow).");
ABSL_FLAG(int, rooms, 100, "Rooms (fanout, durable, unary).");
ABSL_FLAG(int, subscribers, 1000,
          "Subscribe streams, spread evenly over the rooms (fanout, slow).");
ABSL_FLAG(double, rate, 100,
          "Open loop: messages per second, in total (fanout, longpoll, slow).");
ABSL_FLAG(double, warmup, 2, "Seconds of load before measuring.");
ABSL_FLAG(double, duration, 10,
          "Seconds measured (for slow: each of the two phases).");
ABSL_FLAG(int, message_bytes, 100, "Length of each message's text.");
ABSL_FLAG(int, inflight, 64, "Closed loop: calls in flight (durable, unary).");
ABSL_FLAG(double, call_rate, 0,
          "unary: calls per second, in total, issued open loop instead of "
          "--inflight closed loop; latency counts from each call's scheduled "
          "time. 0: closed loop.");
ABSL_FLAG(int, max_inflight, 20000,
          "Open loop: a send due while this many are in flight is skipped "
          "and counted as an error (the server is saturated); reported as "
          "skipped_sends too.");
ABSL_FLAG(std::string, call, "post",
          "unary: post (MessageService.PostMessage), list (ListMessages), or "
          "health (grpc.health.v1.Health/Check: no auth, no store; the cost "
          "of a gRPC unary call itself on this machine).");
ABSL_FLAG(int, list_n, 10, "unary --call=list: messages per page.");
ABSL_FLAG(int, streams, 10000, "streams: concurrent Subscribe streams.");
ABSL_FLAG(int, room_size, 100, "streams: streams per room (on average).");
ABSL_FLAG(std::string, stream_layout, "striped",
          "streams: which room each stream opens in. striped: stream j in "
          "room j mod rooms (so with --users dividing the room count, each "
          "room's streams are one user's); random: a room drawn at random "
          "for each stream, as the churn draws the room of each reopened "
          "stream, so churning does not change how streams and users are "
          "spread over rooms.");
ABSL_FLAG(int, open_concurrency, 2000,
          "Streams or joins waiting for their first answer at once.");
ABSL_FLAG(double, churn_seconds, 0,
          "streams: after opening, close and reopen streams for this long.");
ABSL_FLAG(double, churn_rate, 1000,
          "streams: streams closed and reopened per second during churn.");
ABSL_FLAG(double, quiet, 1,
          "Seconds with no event arriving that count as settled.");
ABSL_FLAG(double, settle, 5, "Seconds to let the server settle before RSS.");
ABSL_FLAG(int, clients, 1000, "longpoll: joined lobby clients polling.");
ABSL_FLAG(double, poll_timeout, 30, "longpoll: Receive timeout in seconds.");
ABSL_FLAG(double, setup_timeout, 300,
          "Seconds allowed for streams to open or clients to join.");
ABSL_FLAG(std::string, prefix, "",
          "Prefix of the user, room and client names; empty: a random one.");
ABSL_FLAG(std::string, json_out, "", "Append the JSON result line here.");
ABSL_FLAG(std::string, tags, "",
          "k=v,... copied into the result (e.g. sync=full).");
ABSL_FLAG(std::string, commit, "", "The server's git commit, for the record.");
ABSL_FLAG(int64_t, max_errors, 0,
          "Exit 1 when more calls than this failed.");

namespace parley::loadgen {

using parley::v1::AuthService;
using parley::v1::ChatService;
using parley::v1::MessageService;
using parley::v1::RoomService;
using parley::v1::UserService;

// ---------------------------------------------------------------- time

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

void SleepUntilNs(int64_t at) {
  timespec ts;
  ts.tv_sec = static_cast<time_t>(at / 1000000000);
  ts.tv_nsec = static_cast<long>(at % 1000000000);
  while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, nullptr) ==
         EINTR) {
  }
}

void SleepSeconds(double s) {
  if (s > 0) SleepUntilNs(NowNs() + static_cast<int64_t>(s * 1e9));
}

int64_t Ns(double seconds) { return static_cast<int64_t>(seconds * 1e9); }

// ------------------------------------------------------------- /proc

ProcSample SampleProc(int pid) {
  ProcSample out;
  if (pid <= 0) return out;
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  if (!std::getline(stat, line)) return out;
  // Fields after the command's closing parenthesis start at field 3; utime
  // and stime are fields 14 and 15.
  const size_t paren = line.rfind(')');
  if (paren == std::string::npos) return out;
  std::vector<std::string> fields =
      absl::StrSplit(line.substr(paren + 2), ' ', absl::SkipEmpty());
  if (fields.size() < 13) return out;
  int64_t utime = 0, stime = 0;
  if (!absl::SimpleAtoi(fields[11], &utime) ||
      !absl::SimpleAtoi(fields[12], &stime)) {
    return out;
  }
  out.cpu_seconds = static_cast<double>(utime + stime) /
                    static_cast<double>(sysconf(_SC_CLK_TCK));
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  while (std::getline(status, line)) {
    int64_t* into = nullptr;
    if (absl::StartsWith(line, "VmRSS:")) into = &out.rss_kb;
    if (absl::StartsWith(line, "VmHWM:")) into = &out.hwm_kb;
    if (into == nullptr) continue;
    std::vector<std::string> parts =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (parts.size() >= 2) (void)absl::SimpleAtoi(parts[1], into);
  }
  out.ok = true;
  return out;
}

std::vector<int> PidList(const std::string& list) {
  std::vector<int> pids;
  for (absl::string_view p : absl::StrSplit(list, ',', absl::SkipEmpty())) {
    int pid = 0;
    if (!absl::SimpleAtoi(p, &pid) || pid <= 0) Die(absl::StrCat("bad pid '", p, "'"));
    pids.push_back(pid);
  }
  return pids;
}

// The servers of --server_pid together: CPU, RSS and peak RSS summed; not ok
// when any of them cannot be read.
ProcSample SampleServers() {
  static const std::vector<int> pids = PidList(absl::GetFlag(FLAGS_server_pid));
  ProcSample sum;
  for (int pid : pids) {
    const ProcSample s = SampleProc(pid);
    if (!s.ok) return ProcSample();
    sum.cpu_seconds += s.cpu_seconds;
    sum.rss_kb += s.rss_kb;
    sum.hwm_kb += s.hwm_kb;
  }
  sum.ok = !pids.empty();
  return sum;
}

// The processes of --watch: name and pid.
const std::vector<std::pair<std::string, int>>& Watched() {
  static const std::vector<std::pair<std::string, int>> watched = [] {
    std::vector<std::pair<std::string, int>> out;
    for (absl::string_view kv :
         absl::StrSplit(absl::GetFlag(FLAGS_watch), ',', absl::SkipEmpty())) {
      std::pair<std::string, std::string> p =
          absl::StrSplit(kv, absl::MaxSplits(':', 1));
      const std::vector<int> pid = PidList(p.second);
      if (p.first.empty() || pid.size() != 1) {
        Die(absl::StrCat("--watch: bad entry '", kv, "'"));
      }
      out.emplace_back(p.first, pid[0]);
    }
    return out;
  }();
  return watched;
}

// CPU seconds of `pid` and of its children (the processes whose parent it
// is), e.g. a PostgreSQL postmaster and its backends.
double TreeCpuSeconds(int pid) {
  double cpu = SampleProc(pid).cpu_seconds;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return cpu;
  while (dirent* e = readdir(proc)) {
    int child = 0;
    if (!absl::SimpleAtoi(e->d_name, &child)) continue;
    std::ifstream stat(absl::StrCat("/proc/", child, "/stat"));
    std::string line;
    if (!std::getline(stat, line)) continue;
    const size_t paren = line.rfind(')');
    if (paren == std::string::npos) continue;
    std::vector<std::string> fields =
        absl::StrSplit(line.substr(paren + 2), ' ', absl::SkipEmpty());
    int ppid = 0;  // field 4
    if (fields.size() > 1 && absl::SimpleAtoi(fields[1], &ppid) && ppid == pid) {
      cpu += SampleProc(child).cpu_seconds;
    }
  }
  closedir(proc);
  return cpu;
}

// Each watched process tree's CPU seconds, in Watched() order.
std::vector<double> SampleWatched() {
  std::vector<double> out;
  for (const auto& [name, pid] : Watched()) out.push_back(TreeCpuSeconds(pid));
  return out;
}

double SelfCpuSeconds() {
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// ------------------------------------------------------------ results

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string ShellQuote(absl::string_view s) {
  if (!s.empty() && s.find_first_not_of(
                        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                        "0123456789-_=./:,@%+") == absl::string_view::npos) {
    return std::string(s);
  }
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

// Latency percentiles in milliseconds, as <prefix>_p50_ms etc.
void AddLatency(Result& r, const std::string& prefix, const Histogram& h) {
  r.Int(prefix + "_samples", static_cast<int64_t>(h.count()));
  r.Num(prefix + "_p50_ms", static_cast<double>(h.Percentile(0.50)) / 1e6);
  r.Num(prefix + "_p90_ms", static_cast<double>(h.Percentile(0.90)) / 1e6);
  r.Num(prefix + "_p99_ms", static_cast<double>(h.Percentile(0.99)) / 1e6);
  r.Num(prefix + "_p999_ms", static_cast<double>(h.Percentile(0.999)) / 1e6);
  r.Num(prefix + "_max_ms", static_cast<double>(h.max()) / 1e6);
  r.Num(prefix + "_mean_ms", h.mean() / 1e6);
}

// --------------------------------------------------------- shared state

Shared g;

void NoteError(const char* what, const grpc::Status& s) {
  const uint64_t n = g.errors.fetch_add(1) + 1;
  if (n <= 5 || (n & (n - 1)) == 0) {
    std::fprintf(stderr, "loadgen: %s failed (%" PRIu64 " errors so far): %d %s\n",
                 what, n, static_cast<int>(s.error_code()),
                 s.error_message().c_str());
  }
}

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "loadgen: fatal: %s\n", why.c_str());
  std::exit(2);
}

// Progress on stderr, with the time since start.
void Progress(const std::string& what) {
  static const int64_t start = NowNs();
  std::fprintf(stderr, "loadgen [%7.2fs] %s\n",
               static_cast<double>(NowNs() - start) / 1e9, what.c_str());
}

// A message text: "t=<scheduled ns>;k=<n>;" padded with 'x' to `bytes`.
std::string StampedText(int64_t stamp, uint64_t k, int bytes) {
  std::string text = absl::StrCat("t=", stamp, ";k=", k, ";");
  if (static_cast<int>(text.size()) < bytes) text.resize(bytes, 'x');
  return text;
}

int64_t ParseStamp(const std::string& text) {
  if (text.size() < 3 || text[0] != 't' || text[1] != '=') return 0;
  int64_t v = 0;
  for (size_t i = 2; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
    v = v * 10 + (text[i] - '0');
  }
  return v;
}

// Counts and times the events of one write or poll answer.
template <typename Events>
void Consume(const Events& events, bool record) {
  const int64_t now = NowNs();
  uint64_t messages = 0;
  for (const parley::v1::Event& e : events) {
    switch (e.kind()) {
      case parley::v1::EVENT_KIND_MESSAGE:
        if (record) {
          ++messages;
          if (const int64_t t = ParseStamp(e.text()); t > 0) {
            if (Histogram* h = g.phases.For(t)) h->Record(now - t);
          }
        }
        break;
      case parley::v1::EVENT_KIND_GAP:
        g.gaps.fetch_add(1, std::memory_order_relaxed);
        break;
      default:
        g.other_events.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (messages > 0) g.deliveries.fetch_add(messages, std::memory_order_relaxed);
}

bool InWindow(int64_t t) {
  return t >= g.window_begin.load(std::memory_order_relaxed) &&
         t < g.window_end.load(std::memory_order_relaxed);
}

// ------------------------------------------------------------ channels

std::vector<std::unique_ptr<Conn>> conns;

Conn& ConnFor(size_t i) { return *conns[i % conns.size()]; }

// The servers of --target.
const std::vector<std::string>& Targets() {
  static const std::vector<std::string> targets =
      absl::StrSplit(absl::GetFlag(FLAGS_target), ',', absl::SkipEmpty());
  return targets;
}

// Opens n channels (rounded up to a multiple of the servers), channel i to
// server i mod N.
void OpenChannels(int n) {
  const size_t servers = Targets().size();
  if (servers == 0) Die("no --target");
  n = static_cast<int>((static_cast<size_t>(n) + servers - 1) / servers * servers);
  for (int i = 0; i < n; ++i) {
    grpc::ChannelArguments args;
    // A subchannel pool per channel: each channel its own connection.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("parley.loadgen.channel", i);
    args.SetMaxReceiveMessageSize(-1);
    auto c = std::make_unique<Conn>();
    c->target = static_cast<size_t>(i) % servers;
    const std::string& target = Targets()[c->target];
    c->channel = grpc::CreateCustomChannel(
        target, grpc::InsecureChannelCredentials(), args);
    if (!c->channel->WaitForConnected(std::chrono::system_clock::now() +
                                      std::chrono::seconds(10))) {
      Die(absl::StrCat("cannot connect to ", target));
    }
    c->chat = ChatService::NewStub(c->channel);
    c->messages = MessageService::NewStub(c->channel);
    c->rooms = RoomService::NewStub(c->channel);
    c->users = UserService::NewStub(c->channel);
    c->auth = AuthService::NewStub(c->channel);
    c->generic = std::make_unique<grpc::GenericStub>(c->channel);
    conns.push_back(std::move(c));
  }
}

// ------------------------------------------------------- setup (sync)

void ParallelFor(int n, int threads, const std::function<void(int)>& fn) {
  std::atomic<int> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < std::min(n, threads); ++t) {
    pool.emplace_back([&] {
      for (int i; (i = next.fetch_add(1)) < n;) fn(i);
    });
  }
  for (auto& t : pool) t.join();
}

std::string Prefix() {
  static const std::string prefix = [] {
    std::string p = absl::GetFlag(FLAGS_prefix);
    if (p.empty()) {
      std::random_device rd;
      p = absl::StrFormat("lg%06x", rd() & 0xffffff);
    }
    return p;
  }();
  return prefix;
}

void Authorize(grpc::ClientContext* ctx, const std::string& token) {
  if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
}

// Signs up `n` users named <prefix>-<kind><i> and returns their tokens.
std::vector<std::string> SignUp(const std::string& kind, int n) {
  std::vector<std::string> tokens(n);
  const std::string password = "loadgen-password";
  ParallelFor(n, 8, [&](int i) {
    Conn& c = ConnFor(i);
    const std::string name = absl::StrCat(Prefix(), "-", kind, i);
    {
      grpc::ClientContext ctx;
      parley::v1::CreateUserRequest req;
      req.set_username(name);
      req.set_password(password);
      parley::v1::User user;
      grpc::Status s = c.users->CreateUser(&ctx, req, &user);
      if (!s.ok() && s.error_code() != grpc::StatusCode::ALREADY_EXISTS) {
        Die(absl::StrCat("CreateUser ", name, ": ", s.error_message()));
      }
    }
    grpc::ClientContext ctx;
    parley::v1::SignInRequest req;
    req.set_username(name);
    req.set_password(password);
    parley::v1::SignInResponse resp;
    grpc::Status s = c.auth->SignIn(&ctx, req, &resp);
    if (!s.ok()) Die(absl::StrCat("SignIn ", name, ": ", s.error_message()));
    tokens[i] = resp.token();
  });
  return tokens;
}

// Creates `n` public rooms named <prefix>-r<i>; returns their names.
std::vector<std::string> CreateRooms(int n, const std::string& token) {
  std::vector<std::string> names(n);
  ParallelFor(n, 8, [&](int i) {
    names[i] = absl::StrCat(Prefix(), "-r", i);
    grpc::ClientContext ctx;
    Authorize(&ctx, token);
    parley::v1::CreateRoomRequest req;
    req.set_name(names[i]);
    parley::v1::Room room;
    grpc::Status s = ConnFor(i).rooms->CreateRoom(&ctx, req, &room);
    if (!s.ok() && s.error_code() != grpc::StatusCode::ALREADY_EXISTS) {
      Die(absl::StrCat("CreateRoom ", names[i], ": ", s.error_message()));
    }
  });
  return names;
}

// --------------------------------------------------- callback calls

template <typename Req, typename Resp>
struct UnaryCall {
  grpc::ClientContext ctx;
  Req req;
  Resp resp;
  int64_t start = 0;
};

// Starts `method(ctx, req, resp, callback)`; `done(status, resp, latency)`
// runs on a gRPC thread.
template <typename Req, typename Resp, typename Method, typename Done>
void CallAsync(Method method, const std::string& token, Req req, Done done) {
  auto* call = new UnaryCall<Req, Resp>;
  call->req = std::move(req);
  Authorize(&call->ctx, token);
  g.inflight.fetch_add(1);
  call->start = NowNs();
  method(&call->ctx, &call->req, &call->resp,
         [call, done = std::move(done)](grpc::Status s) {
           done(s, call->resp, NowNs() - call->start);
           g.inflight.fetch_sub(1);
           delete call;
         });
}

void PostAsync(Conn& c, const std::string& token, const std::string& room,
               std::string text) {
  parley::v1::PostMessageRequest req;
  req.set_room(room);
  req.set_text(std::move(text));
  CallAsync<parley::v1::PostMessageRequest, parley::v1::Event>(
      [&c](auto* ctx, auto* rq, auto* rs, auto cb) {
        c.messages->async()->PostMessage(ctx, rq, rs, std::move(cb));
      },
      token, std::move(req),
      [](const grpc::Status& s, const parley::v1::Event&, int64_t latency) {
        if (!s.ok()) return NoteError("PostMessage", s);
        g.calls_ok.fetch_add(1, std::memory_order_relaxed);
        if (InWindow(NowNs())) g.send_latency.Record(latency);
      });
}

// Calls fn(k, scheduled) at start + k/rate for every k scheduled before end,
// skipping (and counting) sends while max_inflight calls are pending.
void Pace(int64_t start, int64_t end, double rate,
          const std::function<void(uint64_t, int64_t)>& fn) {
  const int64_t cap = absl::GetFlag(FLAGS_max_inflight);
  for (uint64_t k = 0;; ++k) {
    const int64_t at = start + static_cast<int64_t>(static_cast<double>(k) *
                                                    1e9 / rate);
    if (at >= end) return;
    if (at > NowNs()) SleepUntilNs(at);
    if (g.inflight.load(std::memory_order_relaxed) >= cap) {
      g.skipped.fetch_add(1);
      g.errors.fetch_add(1);
      continue;
    }
    fn(k, at);
  }
}

// Waits until `done()` or the timeout; false on timeout.
bool WaitFor(const std::function<bool()>& done, double timeout_s) {
  const int64_t deadline = NowNs() + Ns(timeout_s);
  while (!done()) {
    if (NowNs() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// Waits until the received-event counters stop moving for `quiet_s`.
void WaitQuiet(double quiet_s, double timeout_s) {
  const int64_t deadline = NowNs() + Ns(timeout_s);
  uint64_t last = ~0ull;
  int64_t since = NowNs();
  while (NowNs() < deadline) {
    const uint64_t now_count =
        g.other_events.load() + g.deliveries.load() + g.gaps.load();
    if (now_count != last) {
      last = now_count;
      since = NowNs();
    } else if (NowNs() - since >= Ns(quiet_s)) {
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace parley::loadgen

namespace parley::loadgen {
namespace {

// ------------------------------------------------------ Subscribe streams

class Stream final
    : public grpc::ClientReadReactor<parley::v1::SubscribeResponse> {
 public:
  // Opens a Subscribe stream on `c`. The stream owns itself until OnDone.
  static std::shared_ptr<Stream> Open(Conn& c, const std::string& token,
                                      parley::v1::SubscribeRequest req,
                                      bool record, bool pausable = false) {
    auto s = std::shared_ptr<Stream>(new Stream(record, pausable));
    s->self_ = s;
    s->req_ = std::move(req);
    Authorize(&s->ctx_, token);
    g.live_streams.fetch_add(1);
    c.chat->async()->Subscribe(&s->ctx_, &s->req_, s.get());
    s->StartRead(&s->resp_);
    s->StartCall();
    return s;
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows
    if (!first_.exchange(true)) g.first_writes.fetch_add(1);
    Consume(resp_.events(), record_);
    received_.fetch_add(static_cast<uint64_t>(resp_.events_size()));
    if (pausable_) {
      std::lock_guard<std::mutex> lock(mu_);
      if (pause_) {
        paused_ = true;
        return;
      }
    }
    StartRead(&resp_);
  }

  void OnDone(const grpc::Status& s) override {
    const bool expected =
        (cancelled_.load() || g.stopping.load()) &&
        (s.error_code() == grpc::StatusCode::CANCELLED ||
         s.error_code() == grpc::StatusCode::UNAVAILABLE || s.ok());
    if (!expected) NoteError("Subscribe", s);
    if (!first_.load()) g.failed_streams.fetch_add(1);
    g.live_streams.fetch_sub(1);
    std::shared_ptr<Stream> keep = std::move(self_);  // may free this
  }

  // Stops reading after the write in flight (the slow consumer).
  void Pause() {
    std::lock_guard<std::mutex> lock(mu_);
    pause_ = true;
  }
  void Resume() {
    bool restart;
    {
      std::lock_guard<std::mutex> lock(mu_);
      pause_ = false;
      restart = paused_;
      paused_ = false;
    }
    if (restart) StartRead(&resp_);
  }
  void Cancel() {
    cancelled_.store(true);
    ctx_.TryCancel();
  }
  uint64_t received() const { return received_.load(); }

 private:
  Stream(bool record, bool pausable) : record_(record), pausable_(pausable) {}

  const bool record_;
  const bool pausable_;
  grpc::ClientContext ctx_;
  parley::v1::SubscribeRequest req_;
  parley::v1::SubscribeResponse resp_;
  std::shared_ptr<Stream> self_;
  std::atomic<bool> first_{false};
  std::atomic<bool> cancelled_{false};
  std::atomic<uint64_t> received_{0};
  std::mutex mu_;
  bool pause_ = false;
  bool paused_ = false;
};

parley::v1::SubscribeRequest RoomRequest(const std::string& room) {
  parley::v1::SubscribeRequest req;
  req.set_room(room);
  return req;
}

// Opens streams[i] = open(i) for i < n, with at most open_concurrency
// waiting for their first write; waits until every one has it (or failed).
bool OpenAll(int n, const std::function<std::shared_ptr<Stream>(int)>& open,
             std::vector<std::shared_ptr<Stream>>* streams) {
  const uint64_t base = g.first_writes.load() + g.failed_streams.load();
  const int conc = absl::GetFlag(FLAGS_open_concurrency);
  for (int i = 0; i < n; ++i) {
    while (static_cast<int64_t>(i) -
               static_cast<int64_t>(g.first_writes.load() +
                                    g.failed_streams.load() - base) >=
           conc) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    streams->push_back(open(i));
  }
  return WaitFor(
      [&] {
        return g.first_writes.load() + g.failed_streams.load() - base >=
               static_cast<uint64_t>(n);
      },
      absl::GetFlag(FLAGS_setup_timeout));
}

void CancelAll(std::vector<std::shared_ptr<Stream>>* streams) {
  for (auto& s : *streams) s->Cancel();
  streams->clear();
  WaitFor([] { return g.live_streams.load() == 0; }, 60);
}

void AddServer(Result& r, const std::string& prefix, const ProcSample& s) {
  if (!s.ok) return;
  r.Int(prefix + "_rss_kb", s.rss_kb);
}

// Two of the server's histograms (StatsService.GetStats) at one moment:
// what group commit adds to each write (the store's write wait), and the
// server's part of each stream delivery (the chat layer's delivery lag).
struct ServerHistograms {
  struct Counts {
    std::vector<uint64_t> counts;  // one per bound, then +Inf
    double sum = 0;                // seconds
  };
  bool ok = false;  // GetStats answered
  std::vector<double> bounds;  // seconds
  Counts write_wait, delivery_lag;  // empty from a server without them
};

// With several servers, their histograms added up (channel t goes to server
// t); not ok when any of them does not answer or their bounds differ.
ServerHistograms SampleServerHistograms() {
  ServerHistograms h;
  auto add = [](ServerHistograms::Counts& into, const auto& counts, double sum) {
    if (into.counts.empty()) into.counts.assign(counts.size(), 0);
    if (into.counts.size() != static_cast<size_t>(counts.size())) return false;
    for (int i = 0; i < counts.size(); ++i) into.counts[i] += counts[i];
    into.sum += sum;
    return true;
  };
  for (size_t t = 0; t < Targets().size(); ++t) {
    auto stub = parley::v1::StatsService::NewStub(conns[t]->channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    parley::v1::GetStatsResponse stats;
    if (!stub->GetStats(&ctx, parley::v1::GetStatsRequest(), &stats).ok()) {
      return ServerHistograms();
    }
    const std::vector<double> bounds(stats.latency_bucket_bounds().begin(),
                                     stats.latency_bucket_bounds().end());
    if (t == 0) h.bounds = bounds;
    if (h.bounds != bounds ||
        !add(h.write_wait, stats.store().write_wait_bucket_counts(),
             stats.store().write_wait_seconds_sum()) ||
        !add(h.delivery_lag, stats.chat().delivery_lag_bucket_counts(),
             stats.chat().delivery_lag_seconds_sum())) {
      return ServerHistograms();
    }
  }
  h.ok = true;
  return h;
}

// What one histogram counted between samples `a` and `b`: `count_key` how
// many, `prefix`_mean_ms their mean, and `prefix`_p50_le_ms / _p99_le_ms the
// bucket bounds that 50% and 99% of them did not pass ("le": at most; -1
// when beyond the last bound). Nothing when either sample lacks it.
void AddHistogramWindow(Result& r, const std::string& count_key,
                        const std::string& prefix, const ServerHistograms& sa,
                        const ServerHistograms& sb,
                        ServerHistograms::Counts ServerHistograms::*which) {
  if (!sa.ok || !sb.ok || sa.bounds != sb.bounds) return;
  const std::vector<double>& bounds = sb.bounds;
  const ServerHistograms::Counts &a = sa.*which, &b = sb.*which;
  if (b.counts.size() != bounds.size() + 1 ||
      a.counts.size() != b.counts.size()) {
    return;
  }
  std::vector<uint64_t> d(b.counts.size());
  uint64_t n = 0;
  for (size_t i = 0; i < d.size(); ++i) {
    d[i] = b.counts[i] - a.counts[i];
    n += d[i];
  }
  r.Int(count_key, static_cast<int64_t>(n));
  if (n == 0) return;
  r.Num(prefix + "_mean_ms", (b.sum - a.sum) / static_cast<double>(n) * 1e3,
        3);
  for (const auto& [q, name] : {std::pair<double, const char*>{0.5, "p50"},
                                {0.99, "p99"}}) {
    uint64_t cumulative = 0;
    size_t i = 0;
    for (; i < d.size(); ++i) {
      cumulative += d[i];
      if (static_cast<double>(cumulative) >= q * static_cast<double>(n)) break;
    }
    r.Num(absl::StrCat(prefix, "_", name, "_le_ms"),
          i < bounds.size() ? bounds[i] * 1e3 : -1, 1);
  }
}

// The writes that committed between `a` and `b` (store_writes,
// store_write_wait_*).
void AddStoreWaits(Result& r, const ServerHistograms& a,
                   const ServerHistograms& b) {
  AddHistogramWindow(r, "store_writes", "store_write_wait", a, b,
                     &ServerHistograms::write_wait);
}

// The stream deliveries the server counted between `a` and `b`
// (server_lag_deliveries, server_delivery_lag_*).
void AddDeliveryLag(Result& r, const ServerHistograms& a,
                    const ServerHistograms& b) {
  AddHistogramWindow(r, "server_lag_deliveries", "server_delivery_lag", a, b,
                     &ServerHistograms::delivery_lag);
}

// --------------------------------------------------------- scenarios

// CPU of the server and of this process at the edges of a measured window.
struct WindowSamples {
  ProcSample cpu0, cpu1;
  double self0 = 0, self1 = 0;
  std::vector<double> watched0, watched1;  // SampleWatched()
};

// The watched processes' CPU over the window: <name>_cpu_cores and
// <name>_cpu_us_per_<unit> for `count` units (messages, calls) in it.
void AddWatched(Result& r, const WindowSamples& w, double duration,
                double count, const std::string& unit) {
  if (w.watched0.size() != Watched().size() ||
      w.watched1.size() != Watched().size()) {
    return;
  }
  for (size_t i = 0; i < Watched().size(); ++i) {
    const double cpu = w.watched1[i] - w.watched0[i];
    const std::string& name = Watched()[i].first;
    r.Num(name + "_cpu_cores", cpu / duration, 3);
    r.Num(absl::StrCat(name, "_cpu_us_per_", unit), count > 0 ? cpu / count * 1e6 : 0, 2);
  }
}

// The clock of every open-loop run: `send(k, scheduled)` is paced at `rate`
// (Pace) from 0.1 s from now through --warmup, then --duration measured.
// Phase 0 of g.phases and g.window_* are the measured window, so a latency
// is kept only when its call was *scheduled* inside it, however late it went
// out. `at_begin` and `at_end` run at the window's edges, right after the
// CPU samples, to read the caller's counters there. Returns once the last
// send has been issued (or skipped); calls may still be in flight.
WindowSamples PaceWindow(double rate, const std::string& unit,
                         const std::function<void(uint64_t, int64_t)>& send,
                         const std::function<void()>& at_begin,
                         const std::function<void()>& at_end) {
  const double warmup = absl::GetFlag(FLAGS_warmup);
  const double duration = absl::GetFlag(FLAGS_duration);
  const int64_t t0 = NowNs() + Ns(0.1);
  const int64_t w0 = t0 + Ns(warmup), w1 = w0 + Ns(duration);
  g.phases.Set(0, w0, w1);
  g.window_begin = w0;
  g.window_end = w1;
  std::thread pacer([&] { Pace(t0, w1, rate, send); });
  Progress(absl::StrFormat("load at %.0f %s: %.1fs warm-up, %.1fs measured",
                           rate, unit, warmup, duration));
  WindowSamples s;
  SleepUntilNs(w0);
  s.cpu0 = SampleServers();
  s.self0 = SelfCpuSeconds();
  s.watched0 = SampleWatched();
  if (at_begin) at_begin();
  SleepUntilNs(w1);
  s.cpu1 = SampleServers();
  s.self1 = SelfCpuSeconds();
  s.watched1 = SampleWatched();
  if (at_end) at_end();
  pacer.join();
  return s;
}

// Open-loop publishing with a warm-up and a measured window; the window's
// deliveries/s and the server's CPU per delivery. `send(k, stamp)` sends
// message k.
void RunOpenLoop(Result& r, double rate,
                 const std::function<void(uint64_t, int64_t)>& send,
                 double expected_fanout) {
  const double duration = absl::GetFlag(FLAGS_duration);
  uint64_t d0 = 0, ok0 = 0, d1 = 0, ok1 = 0;
  // The sends' commit waits and the deliveries' server part, both in the
  // latency.
  ServerHistograms waits0, waits1;
  const WindowSamples w = PaceWindow(
      rate, "msgs/s", send,
      [&] {
        d0 = g.deliveries.load(), ok0 = g.calls_ok.load();
        waits0 = SampleServerHistograms();
      },
      [&] {
        d1 = g.deliveries.load(), ok1 = g.calls_ok.load();
        waits1 = SampleServerHistograms();
      });
  const ProcSample &cpu0 = w.cpu0, &cpu1 = w.cpu1;
  const double self0 = w.self0, self1 = w.self1;
  Progress("draining");
  // Drain: every send answered and nothing more arriving.
  WaitFor([] { return g.inflight.load() == 0; }, 60);
  WaitQuiet(absl::GetFlag(FLAGS_quiet), 60);

  const double deliveries = static_cast<double>(d1 - d0);
  r.Num("offered_msgs_per_s", rate, 1);
  r.Num("acked_msgs_per_s", static_cast<double>(ok1 - ok0) / duration, 1);
  r.Num("expected_fanout", expected_fanout, 1);
  r.Num("offered_deliveries_per_s", rate * expected_fanout, 1);
  r.Num("deliveries_per_s", deliveries / duration, 1);
  const Histogram& h = g.phases.hist(0);
  const double expected = rate * duration * expected_fanout;
  r.Num("delivered_fraction",
        expected > 0 ? static_cast<double>(h.count()) / expected : 0, 4);
  AddLatency(r, "latency", h);
  AddLatency(r, "send", g.send_latency);
  r.Int("skipped_sends", static_cast<int64_t>(g.skipped.load()));
  r.Int("gap_events", static_cast<int64_t>(g.gaps.load()));
  if (cpu0.ok && cpu1.ok) {
    const double cpu = cpu1.cpu_seconds - cpu0.cpu_seconds;
    r.Num("server_cpu_s", cpu, 2);
    r.Num("server_cpu_cores", cpu / duration, 3);
    r.Num("server_cpu_us_per_delivery",
          deliveries > 0 ? cpu / deliveries * 1e6 : 0, 3);
    r.Num("deliveries_per_server_core_s", cpu > 0 ? deliveries / cpu : 0, 0);
    r.Int("server_rss_kb", cpu1.rss_kb);
  }
  r.Num("loadgen_cpu_cores", (self1 - self0) / duration, 3);
  AddWatched(r, w, duration, static_cast<double>(ok1 - ok0), "msg");
  AddStoreWaits(r, waits0, waits1);
  AddDeliveryLag(r, waits0, waits1);
}

int Fanout(Result& r) {
  const int subscribers = absl::GetFlag(FLAGS_subscribers);
  const int rooms = std::max(1, absl::GetFlag(FLAGS_rooms));
  const int users = std::max(1, std::min(absl::GetFlag(FLAGS_users), subscribers));
  const int publishers = std::max(1, absl::GetFlag(FLAGS_publishers));
  const int message_bytes = absl::GetFlag(FLAGS_message_bytes);
  const std::string publish_on = absl::GetFlag(FLAGS_publish_on);
  if (publish_on != "all" && publish_on != "first") {
    Die("--publish_on must be all or first");
  }
  // Publishers on the first server only: the channels to it, every N-th.
  const size_t servers = Targets().size();
  auto publisher_conn = [&](uint64_t k) -> Conn& {
    return publish_on == "all" ? ConnFor(k) : ConnFor(k % (conns.size() / servers) * servers);
  };
  r.Int("subscribers", subscribers);
  r.Int("rooms", rooms);
  r.Int("publishers", publishers);
  r.Int("message_bytes", message_bytes);
  if (servers > 1) r.Str("publish_on", publish_on);

  std::vector<std::string> pub_tokens = SignUp("p", publishers);
  std::vector<std::string> sub_tokens = SignUp("u", users);
  std::vector<std::string> room_names = CreateRooms(rooms, pub_tokens[0]);
  const ProcSample before = SampleServers();
  std::vector<std::shared_ptr<Stream>> streams;
  const int64_t open0 = NowNs();
  if (!OpenAll(subscribers,
               [&](int j) {
                 return Stream::Open(ConnFor(j), sub_tokens[j % users],
                                     RoomRequest(room_names[j % rooms]), true);
               },
               &streams)) {
    Die("streams did not all open in time");
  }
  r.Num("open_s", static_cast<double>(NowNs() - open0) / 1e9, 2);
  Progress(absl::StrCat(subscribers, " streams open"));
  WaitQuiet(absl::GetFlag(FLAGS_quiet), 120);  // presence events of the joins
  AddServer(r, "server_before_streams", before);

  const double rate = absl::GetFlag(FLAGS_rate);
  RunOpenLoop(
      r, rate,
      [&](uint64_t k, int64_t stamp) {
        PostAsync(publisher_conn(k), pub_tokens[k % publishers],
                  room_names[k % rooms], StampedText(stamp, k, message_bytes));
      },
      static_cast<double>(subscribers) / rooms);
  g.stopping = true;
  CancelAll(&streams);
  return g.deliveries.load() > 0 ? 0 : 1;
}

int Streams(Result& r) {
  const int n = absl::GetFlag(FLAGS_streams);
  const int room_size = std::max(1, absl::GetFlag(FLAGS_room_size));
  const int rooms = std::max(1, (n + room_size - 1) / room_size);
  const int users = std::max(1, std::min(absl::GetFlag(FLAGS_users), n));
  const double settle = absl::GetFlag(FLAGS_settle);
  r.Int("streams", n);
  r.Int("rooms", rooms);
  r.Int("connections", static_cast<int64_t>(conns.size()));
  const std::string layout = absl::GetFlag(FLAGS_stream_layout);
  if (layout != "striped" && layout != "random") {
    Die("--stream_layout must be striped or random");
  }
  r.Str("stream_layout", layout);
  std::mt19937_64 rng(42);
  std::vector<int> first_room(n);
  for (int j = 0; j < n; ++j) {
    first_room[j] = layout == "random" ? static_cast<int>(rng() % rooms)
                                       : j % rooms;
  }

  std::vector<std::string> tokens = SignUp("u", users);
  std::vector<std::string> room_names = CreateRooms(rooms, tokens[0]);
  SleepSeconds(std::min(settle, 2.0));
  const ProcSample base = SampleServers();
  std::vector<std::shared_ptr<Stream>> streams;
  const int64_t open0 = NowNs();
  const ProcSample cpu_open0 = SampleServers();
  auto open = [&](int j) {
    return Stream::Open(ConnFor(j), tokens[j % users],
                        RoomRequest(room_names[first_room[j]]), false);
  };
  Progress(absl::StrCat("opening ", n, " streams"));
  const bool all = OpenAll(n, open, &streams);
  Progress(absl::StrCat(g.first_writes.load(), " streams have their first write"));
  const double open_s = static_cast<double>(NowNs() - open0) / 1e9;
  const ProcSample cpu_open1 = SampleServers();
  r.Bool("all_first_writes", all);
  r.Int("first_writes", static_cast<int64_t>(g.first_writes.load()));
  r.Num("open_s", open_s, 2);
  r.Num("opens_per_s", n / open_s, 0);
  if (cpu_open0.ok && cpu_open1.ok) {
    r.Num("server_cpu_us_per_open",
          (cpu_open1.cpu_seconds - cpu_open0.cpu_seconds) / n * 1e6, 1);
  }
  WaitQuiet(absl::GetFlag(FLAGS_quiet), 120);
  SleepSeconds(settle);
  const ProcSample open_rss = SampleServers();
  if (base.ok && open_rss.ok) {
    r.Int("server_rss_base_kb", base.rss_kb);
    r.Int("server_rss_open_kb", open_rss.rss_kb);
    r.Num("server_bytes_per_stream",
          static_cast<double>(open_rss.rss_kb - base.rss_kb) * 1024 / n, 0);
  }

  const double churn_s = absl::GetFlag(FLAGS_churn_seconds);
  if (churn_s > 0) {
    const double churn_rate = absl::GetFlag(FLAGS_churn_rate);
    Progress(absl::StrFormat("churn: %.0f streams/s for %.0fs", churn_rate, churn_s));
    const uint64_t opened0 = g.first_writes.load();
    const int64_t c0 = NowNs();
    uint64_t k = 0;
    for (;; ++k) {
      const int64_t at = c0 + static_cast<int64_t>(k * 1e9 / churn_rate);
      if (at >= c0 + Ns(churn_s)) break;
      if (at > NowNs()) SleepUntilNs(at);
      const size_t victim = rng() % streams.size();
      const int room = static_cast<int>(rng() % rooms);
      streams[victim]->Cancel();
      streams[victim] = Stream::Open(ConnFor(victim), tokens[victim % users],
                                     RoomRequest(room_names[room]), false);
    }
    WaitFor([&] { return g.first_writes.load() - opened0 +
                         g.failed_streams.load() >= k; },
            60);
    WaitQuiet(absl::GetFlag(FLAGS_quiet), 60);
    SleepSeconds(settle);
    const ProcSample after = SampleServers();
    r.Num("churn_s", churn_s, 1);
    r.Int("churn_reopened", static_cast<int64_t>(k));
    if (after.ok && open_rss.ok) {
      r.Int("server_rss_after_churn_kb", after.rss_kb);
      r.Num("rss_after_churn_vs_before_pct",
            100.0 * static_cast<double>(after.rss_kb - open_rss.rss_kb) /
                static_cast<double>(open_rss.rss_kb),
            2);
    }
  }
  Progress("closing every stream");
  g.stopping = true;
  CancelAll(&streams);
  SleepSeconds(settle);
  const ProcSample closed = SampleServers();
  if (closed.ok && base.ok) {
    r.Int("server_rss_all_closed_kb", closed.rss_kb);
    r.Num("rss_closed_vs_base_pct",
          100.0 * static_cast<double>(closed.rss_kb - base.rss_kb) /
              static_cast<double>(base.rss_kb),
          2);
    r.Int("server_rss_peak_kb", closed.hwm_kb);
  }
  r.Int("loadgen_rss_peak_kb", SampleProc(getpid()).hwm_kb);
  return all ? 0 : 1;
}

// Unary calls of one kind, in one of two ways:
//  - closed loop (rate == 0): `inflight` workers each issue the next call as
//    soon as the previous one is answered, for warmup + duration; latency is
//    from each call's start. What the server sustains, and the queueing at
//    that throughput.
//  - open loop (rate > 0): calls go out at `rate` per second on PaceWindow's
//    clock whatever the answers do, and latency is from each call's scheduled
//    time, so a sender that falls behind counts (no coordinated omission).
//    What a call costs at a given load: the REST part runs REST and gRPC at
//    the same offered rate, where a difference in p99 is what the REST path
//    adds rather than queueing at two different throughputs. A call due while
//    --max_inflight are pending is skipped and counted as an error (and in
//    skipped_sends), as in every open-loop scenario.
// Both report the same fields; open loop adds offered_rate, max_inflight and
// skipped_sends, and its `inflight` is the most calls in flight at once.
enum class Call { kPost, kList, kHealth };

int UnaryLoad(Result& r, Call kind, double rate) {
  const bool post = kind == Call::kPost;
  const bool open_loop = rate > 0;
  const int publishers = std::max(1, absl::GetFlag(FLAGS_publishers));
  const int rooms = std::max(1, absl::GetFlag(FLAGS_rooms));
  const int inflight = std::max(1, absl::GetFlag(FLAGS_inflight));
  const int message_bytes = absl::GetFlag(FLAGS_message_bytes);
  const int list_n = absl::GetFlag(FLAGS_list_n);
  const double warmup = absl::GetFlag(FLAGS_warmup);
  const double duration = absl::GetFlag(FLAGS_duration);
  const char* const what = kind == Call::kPost   ? "PostMessage"
                           : kind == Call::kList ? "ListMessages"
                                                 : "Health/Check";
  r.Str("call", kind == Call::kHealth ? "grpc.health.v1.Health/Check" : what);
  if (!open_loop) r.Int("inflight", inflight);
  r.Int("rooms", rooms);
  r.Int("publishers", publishers);
  if (post) r.Int("message_bytes", message_bytes);
  if (kind == Call::kList) r.Int("list_n", list_n);

  std::vector<std::string> tokens, room_names;
  if (kind != Call::kHealth) {
    tokens = SignUp("p", publishers);
    room_names = CreateRooms(rooms, tokens[0]);
  }
  if (kind == Call::kList) {  // pages to read
    for (int i = 0; i < rooms; ++i) {
      for (int k = 0; k < list_n; ++k) {
        PostAsync(ConnFor(i), tokens[0], room_names[i],
                  StampedText(NowNs(), k, message_bytes));
      }
    }
    WaitFor([] { return g.inflight.load() == 0; }, 60);
  }

  // Starts call k (its connection, user and room follow from k); a post's
  // text carries `stamp`. `done(status, resp, latency from the start)` runs
  // on a gRPC thread.
  auto start = [&](uint64_t k, int64_t stamp, auto done) {
    Conn& c = ConnFor(k);
    if (kind == Call::kHealth) {
      // An empty HealthCheckRequest encodes to no bytes.
      grpc::Slice empty;
      CallAsync<grpc::ByteBuffer, grpc::ByteBuffer>(
          [&c](auto* ctx, auto* rq, auto* rs, auto cb) {
            c.generic->UnaryCall(ctx, "/grpc.health.v1.Health/Check",
                                 grpc::StubOptions(), rq, rs, std::move(cb));
          },
          /*token=*/"", grpc::ByteBuffer(&empty, 1), std::move(done));
      return;
    }
    const std::string& token = tokens[k % publishers];
    const std::string& room = room_names[k % rooms];
    if (post) {
      parley::v1::PostMessageRequest req;
      req.set_room(room);
      req.set_text(StampedText(stamp, k, message_bytes));
      CallAsync<parley::v1::PostMessageRequest, parley::v1::Event>(
          [&c](auto* ctx, auto* rq, auto* rs, auto cb) {
            c.messages->async()->PostMessage(ctx, rq, rs, std::move(cb));
          },
          token, std::move(req), std::move(done));
    } else {
      parley::v1::ListMessagesRequest req;
      req.set_room(room);
      req.set_n(static_cast<uint32_t>(list_n));
      CallAsync<parley::v1::ListMessagesRequest,
                parley::v1::ListMessagesResponse>(
          [&c](auto* ctx, auto* rq, auto* rs, auto cb) {
            c.messages->async()->ListMessages(ctx, rq, rs, std::move(cb));
          },
          token, std::move(req), std::move(done));
    }
  };

  WindowSamples w;
  ServerHistograms waits0, waits1;  // sends only: what group commit adds
  double calls = 0;  // answered OK, in the measured window
  if (open_loop) {
    // Only the pacer thread sends, and only a send raises the count in
    // flight, so reading it after each send sees every peak.
    int64_t peak = 0;
    w = PaceWindow(
        rate, "calls/s",
        [&](uint64_t k, int64_t at) {
          start(k, at,
                [what, at](const grpc::Status& s, const auto&, int64_t) {
                  if (!s.ok()) return NoteError(what, s);
                  if (Histogram* h = g.phases.For(at)) h->Record(NowNs() - at);
                });
          peak = std::max(peak, g.inflight.load(std::memory_order_relaxed));
        },
        [&] {
          if (post) waits0 = SampleServerHistograms();
        },
        [&] {
          if (post) waits1 = SampleServerHistograms();
        });
    WaitFor([] { return g.inflight.load() == 0; }, 60);
    // Calls scheduled in the window, answered whenever: the same calls the
    // latencies are of.
    calls = static_cast<double>(g.phases.hist(0).count());
    r.Num("offered_rate", rate, 1);
    r.Int("inflight", peak);
    r.Int("max_inflight", absl::GetFlag(FLAGS_max_inflight));
    r.Int("skipped_sends", static_cast<int64_t>(g.skipped.load()));
  } else {
    const int64_t t0 = NowNs();
    const int64_t w0 = t0 + Ns(warmup), w1 = w0 + Ns(duration);
    g.window_begin = w0;
    g.window_end = w1;
    std::atomic<uint64_t> in_window{0};
    std::function<void(uint64_t)> issue = [&](uint64_t k) {
      if (NowNs() >= w1) return;
      start(k, NowNs(),
            [&, k](const grpc::Status& s, const auto&, int64_t latency) {
              if (!s.ok()) {
                NoteError(what, s);
              } else if (InWindow(NowNs())) {
                in_window.fetch_add(1, std::memory_order_relaxed);
                g.send_latency.Record(latency);
              }
              issue(k + static_cast<uint64_t>(inflight));
            });
    };
    for (int i = 0; i < inflight; ++i) issue(static_cast<uint64_t>(i));
    SleepUntilNs(w0);
    w.cpu0 = SampleServers();
    w.self0 = SelfCpuSeconds();
    w.watched0 = SampleWatched();
    if (post) waits0 = SampleServerHistograms();
    SleepUntilNs(w1);
    w.cpu1 = SampleServers();
    w.self1 = SelfCpuSeconds();
    w.watched1 = SampleWatched();
    if (post) waits1 = SampleServerHistograms();
    WaitFor([] { return g.inflight.load() == 0; }, 60);
    calls = static_cast<double>(in_window.load());
  }
  r.Num("calls_per_s", calls / duration, 1);
  AddLatency(r, "latency", open_loop ? g.phases.hist(0) : g.send_latency);
  if (w.cpu0.ok && w.cpu1.ok) {
    const double cpu = w.cpu1.cpu_seconds - w.cpu0.cpu_seconds;
    r.Num("server_cpu_cores", cpu / duration, 3);
    r.Num("server_cpu_us_per_call", calls > 0 ? cpu / calls * 1e6 : 0, 2);
    r.Int("server_rss_kb", w.cpu1.rss_kb);
  }
  r.Num("loadgen_cpu_cores", (w.self1 - w.self0) / duration, 3);
  AddWatched(r, w, duration, calls, "call");
  AddStoreWaits(r, waits0, waits1);
  return calls > 0 ? 0 : 1;
}

// ----------------------------------------------------------- long poll

// A lobby client polling its channel: one Receive in flight at a time,
// reissued as soon as it is answered, until Stop.
class Poller : public std::enable_shared_from_this<Poller> {
 public:
  Poller(Conn* c, std::string id) : conn_(c), id_(std::move(id)) {}

  void Next() {
    auto call = std::make_shared<
        UnaryCall<parley::v1::ReceiveRequest, parley::v1::ReceiveResponse>>();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      current_ = call;
    }
    call->req.set_id(id_);
    call->req.set_timeout(absl::GetFlag(FLAGS_poll_timeout));
    g.polls.fetch_add(1);
    auto self = shared_from_this();
    conn_->chat->async()->Receive(
        &call->ctx, &call->req, &call->resp, [self, call](grpc::Status s) {
          bool stop;
          {
            std::lock_guard<std::mutex> lock(self->mu_);
            if (self->current_ == call) self->current_.reset();
            stop = self->stop_;
          }
          if (s.ok()) {
            if (!self->first_.exchange(true)) g.first_writes.fetch_add(1);
            Consume(call->resp.events(), true);
          } else if (!stop) {
            NoteError("Receive", s);
          }
          g.polls.fetch_sub(1);
          if (!stop) self->Next();
        });
  }

  void Stop() {
    std::shared_ptr<UnaryCall<parley::v1::ReceiveRequest,
                              parley::v1::ReceiveResponse>>
        call;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      call = current_;
    }
    if (call) call->ctx.TryCancel();
  }

 private:
  Conn* const conn_;
  const std::string id_;
  std::atomic<bool> first_{false};
  std::mutex mu_;
  bool stop_ = false;
  std::shared_ptr<
      UnaryCall<parley::v1::ReceiveRequest, parley::v1::ReceiveResponse>>
      current_;
};

bool Join(Conn& c, const std::string& id) {
  grpc::ClientContext ctx;
  parley::v1::JoinRequest req;
  req.set_id(id);
  parley::v1::JoinResponse resp;
  grpc::Status s = c.chat->Join(&ctx, req, &resp);
  if (!s.ok()) NoteError("Join", s);
  return s.ok();
}

int LongPoll(Result& r) {
  const int clients = absl::GetFlag(FLAGS_clients);
  const int message_bytes = absl::GetFlag(FLAGS_message_bytes);
  r.Int("clients", clients);
  r.Num("poll_timeout_s", absl::GetFlag(FLAGS_poll_timeout), 1);
  r.Int("message_bytes", message_bytes);

  const std::string publisher = Prefix() + "-pub";
  if (!Join(ConnFor(0), publisher)) Die("the publisher cannot join");
  const ProcSample before = SampleServers();
  std::vector<std::shared_ptr<Poller>> pollers(clients);
  const int64_t join0 = NowNs();
  ParallelFor(clients, 16, [&](int i) {
    Conn& c = ConnFor(i);
    const std::string id = absl::StrCat(Prefix(), "-c", i);
    if (!Join(c, id)) return;
    pollers[i] = std::make_shared<Poller>(&c, id);
    pollers[i]->Next();
  });
  r.Num("join_s", static_cast<double>(NowNs() - join0) / 1e9, 2);
  Progress(absl::StrCat(clients, " clients joined and polling"));
  WaitQuiet(2 * absl::GetFlag(FLAGS_quiet), absl::GetFlag(FLAGS_setup_timeout));  // the join storm
  AddServer(r, "server_before_clients", before);
  const double rate = absl::GetFlag(FLAGS_rate);
  RunOpenLoop(
      r, rate,
      [&](uint64_t k, int64_t stamp) {
        parley::v1::SendRequest req;
        req.set_id(publisher);
        req.set_message(StampedText(stamp, k, message_bytes));
        Conn& c = ConnFor(k);
        CallAsync<parley::v1::SendRequest, parley::v1::SendResponse>(
            [&c](auto* ctx, auto* rq, auto* rs, auto cb) {
              c.chat->async()->Send(ctx, rq, rs, std::move(cb));
            },
            "", std::move(req),
            [](const grpc::Status& s, const auto&, int64_t latency) {
              if (!s.ok()) return NoteError("Send", s);
              g.calls_ok.fetch_add(1, std::memory_order_relaxed);
              if (InWindow(NowNs())) g.send_latency.Record(latency);
            });
      },
      static_cast<double>(clients));
  Progress("stopping the pollers");
  g.stopping = true;
  for (auto& p : pollers) {
    if (p) p->Stop();
  }
  WaitFor([] { return g.inflight.load() == 0 && g.polls.load() == 0; }, 60);
  Progress("stopped");
  return g.deliveries.load() > 0 ? 0 : 1;
}

// -------------------------------------------------------- slow consumer

int Slow(Result& r) {
  const int subscribers = absl::GetFlag(FLAGS_subscribers);
  const int publishers = std::max(1, absl::GetFlag(FLAGS_publishers));
  const int users = std::max(1, std::min(absl::GetFlag(FLAGS_users), subscribers));
  const int message_bytes = absl::GetFlag(FLAGS_message_bytes);
  const double rate = absl::GetFlag(FLAGS_rate);
  const double warmup = absl::GetFlag(FLAGS_warmup);
  const double duration = absl::GetFlag(FLAGS_duration);
  r.Int("subscribers", subscribers);
  r.Num("rate_msgs_per_s", rate, 1);
  r.Int("message_bytes", message_bytes);

  std::vector<std::string> pub_tokens = SignUp("p", publishers);
  std::vector<std::string> sub_tokens = SignUp("u", users);
  const std::string room = CreateRooms(1, pub_tokens[0])[0];
  std::vector<std::shared_ptr<Stream>> streams;
  // The stalled subscriber has a connection of its own (the last channel),
  // so its unread stream holds no other stream's flow-control window.
  Conn& own = *conns.back();
  const size_t shared_conns = conns.size() > 1 ? conns.size() - 1 : 1;
  if (!OpenAll(subscribers,
               [&](int j) {
                 return Stream::Open(*conns[j % shared_conns],
                                     sub_tokens[j % users], RoomRequest(room),
                                     true);
               },
               &streams)) {
    Die("streams did not all open in time");
  }
  std::shared_ptr<Stream> stalled =
      Stream::Open(own, sub_tokens[0], RoomRequest(room), false, true);
  WaitFor([&] { return g.first_writes.load() >=
                       static_cast<uint64_t>(subscribers) + 1; },
          60);
  WaitQuiet(absl::GetFlag(FLAGS_quiet), 60);

  const int64_t t0 = NowNs() + Ns(0.1);
  const int64_t b0 = t0 + Ns(warmup), b1 = b0 + Ns(duration),
                d1 = b1 + Ns(duration);
  g.phases.Set(0, b0, b1);
  g.phases.Set(1, b1, d1);
  g.window_begin = b0;
  g.window_end = d1;
  std::thread pacer([&] {
    Pace(t0, d1, rate, [&](uint64_t k, int64_t stamp) {
      PostAsync(ConnFor(k), pub_tokens[k % publishers], room,
                StampedText(stamp, k, message_bytes));
    });
  });
  SleepUntilNs(b1);
  const ProcSample stall0 = SampleServers();
  const uint64_t received_before_stall = stalled->received();
  stalled->Pause();
  SleepUntilNs(d1);
  const ProcSample stall1 = SampleServers();
  pacer.join();
  WaitFor([] { return g.inflight.load() == 0; }, 60);
  WaitQuiet(absl::GetFlag(FLAGS_quiet), 30);
  const ProcSample stall2 = SampleServers();
  const uint64_t received_stalled = stalled->received() - received_before_stall;
  const uint64_t gaps0 = g.gaps.load();
  stalled->Resume();
  WaitQuiet(absl::GetFlag(FLAGS_quiet), 30);

  AddLatency(r, "before", g.phases.hist(0));
  AddLatency(r, "during", g.phases.hist(1));
  const double p99b = static_cast<double>(g.phases.hist(0).Percentile(0.99));
  const double p99d = static_cast<double>(g.phases.hist(1).Percentile(0.99));
  r.Num("p99_change_pct", p99b > 0 ? 100.0 * (p99d - p99b) / p99b : 0, 1);
  r.Int("stalled_events_while_stalled", static_cast<int64_t>(received_stalled));
  r.Int("stalled_events_after_resume",
        static_cast<int64_t>(stalled->received() - received_before_stall -
                             received_stalled));
  r.Int("gap_events_after_resume", static_cast<int64_t>(g.gaps.load() - gaps0));
  if (stall0.ok && stall1.ok) {
    r.Int("server_rss_stall_start_kb", stall0.rss_kb);
    r.Int("server_rss_stall_end_kb", stall1.rss_kb);
    r.Int("server_rss_stalled_held_kb", stall1.rss_kb - stall0.rss_kb);
    r.Int("server_rss_drained_kb", stall2.rss_kb);
  }
  r.Int("skipped_sends", static_cast<int64_t>(g.skipped.load()));
  g.stopping = true;
  streams.push_back(stalled);
  CancelAll(&streams);
  return g.phases.hist(1).count() > 0 ? 0 : 1;
}

}  // namespace
}  // namespace parley::loadgen

int main(int argc, char** argv) {
  using namespace parley::loadgen;
  absl::SetProgramUsageMessage(
      "parley_loadgen --scenario=fanout|streams|durable|unary|longpoll|slow|"
      "resume "
      "[--target=HOST:PORT] [--server_pid=PID] ...");
  absl::ParseCommandLine(argc, argv);
  std::string command;
  for (int i = 0; i < argc; ++i) {
    if (i > 0) command += ' ';
    command += ShellQuote(argv[i]);
  }
  // One process holds many connections; take every descriptor allowed.
  rlimit nofile;
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }

  const std::string scenario = absl::GetFlag(FLAGS_scenario);
  Result r;
  r.Str("scenario", scenario);
  r.Str("time", absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(),
                                 absl::UTCTimeZone()));
  r.Str("commit", absl::GetFlag(FLAGS_commit));
  {
    // Other load on the machine skews every figure: record it.
    std::ifstream loadavg("/proc/loadavg");
    double one = 0;
    if (loadavg >> one) r.Num("loadavg_1m_at_start", one, 2);
  }
  for (absl::string_view kv :
       absl::StrSplit(absl::GetFlag(FLAGS_tags), ',', absl::SkipEmpty())) {
    std::pair<std::string, std::string> p =
        absl::StrSplit(kv, absl::MaxSplits('=', 1));
    r.Str(p.first, p.second);
  }
  int channels = std::max(1, absl::GetFlag(FLAGS_channels));
  if (scenario == "slow") ++channels;  // the stalled stream's own
  OpenChannels(channels);
  r.Int("servers", static_cast<int64_t>(Targets().size()));
  r.Int("channels", static_cast<int64_t>(conns.size()));

  int rc;
  if (scenario == "fanout") {
    rc = Fanout(r);
  } else if (scenario == "streams") {
    rc = Streams(r);
  } else if (scenario == "durable") {
    rc = UnaryLoad(r, Call::kPost, 0);
  } else if (scenario == "unary") {
    const std::string call = absl::GetFlag(FLAGS_call);
    if (call != "post" && call != "list" && call != "health") {
      Die("--call must be post, list or health");
    }
    rc = UnaryLoad(r,
                   call == "post"   ? Call::kPost
                   : call == "list" ? Call::kList
                                    : Call::kHealth,
                   absl::GetFlag(FLAGS_call_rate));
  } else if (scenario == "longpoll") {
    rc = LongPoll(r);
  } else if (scenario == "slow") {
    rc = Slow(r);
  } else if (scenario == "resume") {
    rc = Resume(r);
  } else {
    std::fprintf(stderr, "loadgen: unknown --scenario '%s'\n",
                 scenario.c_str());
    return 2;
  }
  const int64_t errors = static_cast<int64_t>(g.errors.load());
  r.Int("errors", errors);
  const bool ok = rc == 0 && errors <= absl::GetFlag(FLAGS_max_errors);
  r.Bool("ok", ok);
  r.Str("command", command);

  std::printf("== parley_loadgen %s ==\n", scenario.c_str());
  r.PrintTable();
  std::printf("command: %s\n", command.c_str());
  const std::string json = r.Json();
  std::printf("%s\n", json.c_str());
  std::fflush(stdout);
  if (const std::string out = absl::GetFlag(FLAGS_json_out); !out.empty()) {
    std::ofstream f(out, std::ios::app);
    f << json << "\n";
  }
  // Streams and calls are all finished or cancelled; skip destructors of
  // gRPC objects still referenced from gRPC threads.
  std::_Exit(ok ? 0 : 1);
}
