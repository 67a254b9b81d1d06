// The resume scenario of parley_loadgen: --streams Subscribe streams spread
// over several --target servers (a cluster on one database and bus), then
// the first server killed with SIGKILL (--kill_pid). Each stream that ends
// is opened again on another server after the last sequence number it saw,
// as a client (or the gateway) does. Measured: the time from the kill until
// every stream of the killed server has reopened and received an event
// posted after the kill, and, over every stream and the whole run, that no
// sequence number came twice or was missed.
#include <signal.h>

#include <algorithm>
#include <cinttypes>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <thread>

#include "absl/flags/flag.h"
#include "clients/loadgen/common.h"

ABSL_FLAG(int, kill_pid, 0,
          "resume: the pid of the first --target server, killed with "
          "SIGKILL once every stream is open.");
ABSL_FLAG(double, kill_after, 2,
          "resume: seconds of posting at --rate before the kill.");
ABSL_FLAG(double, resume_timeout, 60,
          "resume: seconds allowed for the killed server's streams to "
          "resume.");

namespace parley::loadgen {
namespace {

// Set just before the kill: a message stamped at or after it was posted
// after the kill.
std::atomic<int64_t> kill_ns{INT64_MAX};

class Attempt;

// One reader of a room: its streams, one after another, and what it saw.
class Reader : public std::enable_shared_from_this<Reader> {
 public:
  Reader(std::string token, std::string room, size_t index)
      : token_(std::move(token)), room_(std::move(room)), index_(index) {}

  // Opens a stream on `c`, after the last sequence seen if any.
  void Open(Conn& c);
  void Cancel();

  // A write of the stream opened on `target`; `first` for its first write.
  void OnWrite(const parley::v1::SubscribeResponse& resp, size_t target,
               bool first);
  // The stream ended: opens it again on the next server that was not
  // killed, unless the run is stopping.
  void OnEnd(const grpc::Status& s, size_t target, bool got_first);

  const std::string& room() const { return room_; }
  uint64_t last_sequence() const { return last_seq_.load(); }
  bool on_killed() const { return first_target_ == 0; }
  int64_t reopened_at() const { return reopened_at_.load(); }
  int64_t resumed_at() const { return resumed_at_.load(); }
  int64_t post_kill_at() const { return post_kill_at_.load(); }
  uint64_t duplicates() const { return duplicates_.load(); }
  uint64_t missed() const { return missed_.load(); }
  int failed_opens() const { return failed_opens_.load(); }
  int ends() const { return ends_.load(); }

 private:
  const std::string token_, room_;
  const size_t index_;
  size_t first_target_ = SIZE_MAX;  // set by the first Open, before any kill
  std::atomic<int> opens_{0};
  std::atomic<uint64_t> last_seq_{0};
  std::atomic<uint64_t> duplicates_{0}, missed_{0};
  std::atomic<int64_t> reopened_at_{0}, resumed_at_{0}, post_kill_at_{0};
  std::atomic<int> failed_opens_{0}, ends_{0};
  std::mutex mu_;
  std::shared_ptr<Attempt> current_;
};

// One Subscribe stream of a reader.
class Attempt final
    : public grpc::ClientReadReactor<parley::v1::SubscribeResponse>,
      public std::enable_shared_from_this<Attempt> {
 public:
  static std::shared_ptr<Attempt> Make(std::shared_ptr<Reader> reader,
                                       const Conn& c) {
    return std::shared_ptr<Attempt>(new Attempt(std::move(reader), c.target));
  }
  // Opens the stream on `c`; it owns itself until OnDone.
  void Start(Conn& c, const std::string& token,
             parley::v1::SubscribeRequest req) {
    self_ = shared_from_this();
    req_ = std::move(req);
    Authorize(&ctx_, token);
    g.live_streams.fetch_add(1);
    c.chat->async()->Subscribe(&ctx_, &req_, this);
    StartRead(&resp_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows
    const bool first = !got_first_;
    got_first_ = true;
    if (first) g.first_writes.fetch_add(1);
    reader_->OnWrite(resp_, target_, first);
    StartRead(&resp_);
  }

  void OnDone(const grpc::Status& s) override {
    g.live_streams.fetch_sub(1);
    reader_->OnEnd(s, target_, got_first_);
    std::shared_ptr<Attempt> keep = std::move(self_);  // may free this
  }

  void Cancel() { ctx_.TryCancel(); }

 private:
  Attempt(std::shared_ptr<Reader> reader, size_t target)
      : reader_(std::move(reader)), target_(target) {}

  const std::shared_ptr<Reader> reader_;
  const size_t target_;
  grpc::ClientContext ctx_;
  parley::v1::SubscribeRequest req_;
  parley::v1::SubscribeResponse resp_;
  std::shared_ptr<Attempt> self_;
  bool got_first_ = false;  // reads are serialized: no lock
};

void Reader::Open(Conn& c) {
  if (first_target_ == SIZE_MAX) first_target_ = c.target;
  opens_.fetch_add(1);
  parley::v1::SubscribeRequest req;
  req.set_room(room_);
  if (const uint64_t last = last_seq_.load(); last > 0) {
    req.set_after_sequence(last);
  }
  // Current before it starts: an attempt that ends at once opens the next,
  // which then replaces it.
  std::shared_ptr<Attempt> a = Attempt::Make(shared_from_this(), c);
  {
    std::lock_guard<std::mutex> lock(mu_);
    current_ = a;
  }
  a->Start(c, token_, std::move(req));
}

void Reader::Cancel() {
  std::shared_ptr<Attempt> a;
  {
    std::lock_guard<std::mutex> lock(mu_);
    a = current_;
  }
  if (a) a->Cancel();
}

void Reader::OnWrite(const parley::v1::SubscribeResponse& resp, size_t target,
                     bool first) {
  const int64_t now = NowNs();
  const bool reopened = opens_.load() > 1;
  if (first && reopened && target != 0 && reopened_at_.load() == 0) {
    reopened_at_.store(now);
  }
  for (const parley::v1::Event& e : resp.events()) {
    if (e.kind() == parley::v1::EVENT_KIND_GAP) {
      missed_.fetch_add(e.gap_last_sequence() - e.gap_first_sequence() + 1);
      continue;
    }
    const uint64_t seq = e.sequence();
    if (seq == 0) continue;  // live only (presence)
    const uint64_t last = last_seq_.load();
    if (last != 0 && seq <= last) {
      if (duplicates_.fetch_add(1) == 0) {
        std::fprintf(stderr,
                     "loadgen: stream %zu (open %d, server %zu) got %" PRIu64
                     " after %" PRIu64 " in %s (kind %d, %s write)\n",
                     index_, opens_.load(), target, seq, last, room_.c_str(),
                     static_cast<int>(e.kind()), first ? "first" : "later");
      }
      continue;
    }
    if (last != 0 && seq > last + 1) missed_.fetch_add(seq - last - 1);
    last_seq_.store(seq);
    if (e.kind() != parley::v1::EVENT_KIND_MESSAGE) continue;
    g.deliveries.fetch_add(1, std::memory_order_relaxed);
    if (ParseStamp(e.text()) < kill_ns.load()) continue;
    if (post_kill_at_.load() == 0) post_kill_at_.store(now);
    if (reopened && resumed_at_.load() == 0) resumed_at_.store(now);
  }
}

void Reader::OnEnd(const grpc::Status& s, size_t target, bool got_first) {
  if (g.stopping.load()) return;
  ends_.fetch_add(1);
  if (!got_first) {
    failed_opens_.fetch_add(1);
    if (failed_opens_.load() <= 3) {
      std::fprintf(stderr, "loadgen: reopen in %s on server %zu failed: %d %s\n",
                   room_.c_str(), target, static_cast<int>(s.error_code()),
                   s.error_message().c_str());
    }
    if (failed_opens_.load() > 20) {
      NoteError("Subscribe (gave up reopening)", s);
      return;
    }
  }
  // The next channel to a server that was not killed (server 0 was).
  for (size_t k = 1; k <= conns.size(); ++k) {
    Conn& c = ConnFor(index_ + static_cast<size_t>(opens_.load()) + k);
    if (c.target != 0) return Open(c);
  }
}

}  // namespace

int Resume(Result& r) {
  const int n = absl::GetFlag(FLAGS_streams);
  const int room_size = std::max(1, absl::GetFlag(FLAGS_room_size));
  const int rooms = std::max(1, (n + room_size - 1) / room_size);
  const int users = std::max(1, std::min(absl::GetFlag(FLAGS_users), n));
  const int publishers = std::max(1, absl::GetFlag(FLAGS_publishers));
  const int message_bytes = absl::GetFlag(FLAGS_message_bytes);
  const double rate = absl::GetFlag(FLAGS_rate);
  const int kill_pid = absl::GetFlag(FLAGS_kill_pid);
  const size_t servers = Targets().size();
  if (servers < 2) Die("resume needs at least two --target servers");
  if (kill_pid <= 0) Die("resume needs --kill_pid (the first server's pid)");
  r.Int("streams", n);
  r.Int("rooms", rooms);
  r.Int("connections", static_cast<int64_t>(conns.size()));
  r.Num("rate_msgs_per_s", rate, 1);

  std::vector<std::string> pub_tokens = SignUp("p", publishers);
  std::vector<std::string> tokens = SignUp("u", users);
  std::vector<std::string> room_names = CreateRooms(rooms, pub_tokens[0]);
  // Posts go to the servers that survive, message k on survivors[k mod S].
  std::vector<Conn*> survivors;
  for (auto& c : conns) {
    if (c->target != 0) survivors.push_back(c.get());
  }
  auto post = [&](uint64_t k, size_t room, int64_t stamp) {
    PostAsync(*survivors[k % survivors.size()], pub_tokens[k % publishers],
              room_names[room], StampedText(stamp, k, message_bytes));
  };

  // Every stream open, then a message in every room so each has a sequence
  // number to resume after.
  std::vector<std::shared_ptr<Reader>> readers;
  Progress(absl::StrCat("opening ", n, " streams on ", servers, " servers"));
  const int64_t open0 = NowNs();
  const uint64_t concurrency = absl::GetFlag(FLAGS_open_concurrency);
  for (int j = 0; j < n; ++j) {
    while (static_cast<uint64_t>(j) >= g.first_writes.load() + concurrency) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    readers.push_back(std::make_shared<Reader>(tokens[j % users],
                                               room_names[j % rooms], j));
    readers.back()->Open(ConnFor(static_cast<size_t>(j)));
  }
  if (!WaitFor([&] { return g.first_writes.load() >= static_cast<uint64_t>(n); },
               absl::GetFlag(FLAGS_setup_timeout))) {
    Die(absl::StrCat("only ", g.first_writes.load(), " of ", n, " streams opened"));
  }
  r.Num("open_s", static_cast<double>(NowNs() - open0) / 1e9, 2);
  int on_killed = 0;
  for (auto& rd : readers) on_killed += rd->on_killed() ? 1 : 0;
  r.Int("streams_on_killed", on_killed);
  for (int room = 0; room < rooms; ++room) post(room, room, NowNs());
  if (!WaitFor([&] {
        for (auto& rd : readers) {
          if (rd->last_sequence() == 0) return false;
        }
        return true;
      },
      60)) {
    Die("not every stream received the first message of its room");
  }

  // Messages at --rate through the kill; at the kill, one more in every
  // room, so every stream has an event posted after it at once.
  std::atomic<bool> stop_posting{false};
  std::thread pacer([&] {
    const int64_t t0 = NowNs();
    for (uint64_t i = 0; !stop_posting.load(); ++i) {
      const int64_t at = t0 + static_cast<int64_t>(static_cast<double>(i) * 1e9 / rate);
      if (at > NowNs()) SleepUntilNs(at);
      post(rooms + i, i % rooms, at);
    }
  });
  SleepSeconds(absl::GetFlag(FLAGS_kill_after));
  Progress(absl::StrCat("kill -9 ", kill_pid, " (server 0, ", on_killed, " streams)"));
  const int64_t killed = NowNs();
  kill_ns.store(killed);
  if (kill(kill_pid, SIGKILL) != 0) Die(absl::StrCat("kill ", kill_pid, " failed"));
  for (int room = 0; room < rooms; ++room) post((1ull << 40) + room, room, NowNs());
  const bool all = WaitFor(
      [&] {
        for (auto& rd : readers) {
          if (rd->on_killed() && rd->resumed_at() == 0) return false;
        }
        return true;
      },
      absl::GetFlag(FLAGS_resume_timeout));
  Progress(all ? "every stream of the killed server resumed"
               : "not every stream resumed in time");
  SleepSeconds(1);
  stop_posting = true;
  pacer.join();
  WaitFor([] { return g.inflight.load() == 0; }, 60);
  SleepSeconds(absl::GetFlag(FLAGS_quiet));

  // Per stream: the time to reopen and to the first event posted after the
  // kill; every stream's last sequence against its room's last.
  Histogram resume;
  int64_t reopen_max = 0, resume_max = 0, others_max = 0;
  int resumed = 0, unexpected_ends = 0, failed_opens = 0, behind = 0;
  uint64_t duplicates = 0, missed = 0;
  std::map<std::string, uint64_t> room_last;
  for (auto& rd : readers) {
    room_last[rd->room()] = std::max(room_last[rd->room()], rd->last_sequence());
  }
  for (auto& rd : readers) {
    duplicates += rd->duplicates();
    missed += rd->missed();
    failed_opens += rd->failed_opens();
    if (rd->last_sequence() < room_last[rd->room()]) ++behind;
    if (!rd->on_killed()) {
      unexpected_ends += rd->ends();
      if (rd->post_kill_at() > 0) others_max = std::max(others_max, rd->post_kill_at() - killed);
      continue;
    }
    if (rd->reopened_at() > 0) reopen_max = std::max(reopen_max, rd->reopened_at() - killed);
    if (rd->resumed_at() > 0) {
      ++resumed;
      resume.Record(rd->resumed_at() - killed);
      resume_max = std::max(resume_max, rd->resumed_at() - killed);
    }
  }
  r.Int("resumed", resumed);
  r.Bool("all_resumed", all && resumed == on_killed);
  r.Num("reopen_all_s", static_cast<double>(reopen_max) / 1e9, 3);
  r.Num("resume_all_s", static_cast<double>(resume_max) / 1e9, 3);
  r.Num("resume_p50_ms", static_cast<double>(resume.Percentile(0.50)) / 1e6);
  r.Num("resume_p99_ms", static_cast<double>(resume.Percentile(0.99)) / 1e6);
  r.Num("others_post_kill_max_s", static_cast<double>(others_max) / 1e9, 3);
  r.Int("failed_reopens", failed_opens);
  r.Int("unexpected_ends", unexpected_ends);
  r.Int("duplicates", static_cast<int64_t>(duplicates));
  r.Int("missed", static_cast<int64_t>(missed));
  r.Int("streams_behind", behind);

  g.stopping = true;
  for (auto& rd : readers) rd->Cancel();
  WaitFor([] { return g.live_streams.load() == 0; }, 60);
  return all && resumed == on_killed && duplicates == 0 && missed == 0 &&
                 behind == 0 && unexpected_ends == 0
             ? 0
             : 1;
}

}  // namespace parley::loadgen
