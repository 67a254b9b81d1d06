#include "server/bus/redis_connection.h"

#include <sys/time.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/log.h"

namespace parley::bus {

Context Connect(absl::string_view what, const std::string& host, int port,
                absl::Duration timeout, bool* logged) {
  const timeval tv = absl::ToTimeval(timeout);
  Context c(redisConnectWithTimeout(host.c_str(), port, tv));
  if (c != nullptr && c->err == 0) {
    redisEnableKeepAlive(c.get());
    if (*logged) {
      log::Info(absl::StrCat(what, ": connected again"),
                {{"addr", absl::StrCat(host, ":", port)}});
    }
    *logged = false;
    return c;
  }
  if (!*logged) {
    log::Warning(absl::StrCat(what, ": cannot connect"),
                 {{"addr", absl::StrCat(host, ":", port)},
                  {"error", c != nullptr ? c->errstr : "out of memory"}});
    *logged = true;
  }
  return nullptr;
}

void Append(redisContext* c, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  for (const std::string& a : args) {
    argv.push_back(a.data());
    lengths.push_back(a.size());
  }
  redisAppendCommandArgv(c, static_cast<int>(argv.size()), argv.data(),
                         lengths.data());
}

bool FlushOutput(redisContext* c) {
  int done = 0;
  while (!done) {
    if (redisBufferWrite(c, &done) != REDIS_OK) return false;
  }
  return true;
}

Reply Command(redisContext* c, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  for (const std::string& a : args) {
    argv.push_back(a.data());
    lengths.push_back(a.size());
  }
  return Reply(static_cast<redisReply*>(redisCommandArgv(
      c, static_cast<int>(argv.size()), argv.data(), lengths.data())));
}

RedisWorker::RedisWorker(std::string name, Options options)
    : name_(std::move(name)),
      options_(std::move(options)),
      thread_([this] { Run(); }) {}

RedisWorker::~RedisWorker() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
    cv_.SignalAll();
  }
  thread_.join();
}

void RedisWorker::Queue(Call call) {
  {
    MutexLock lock(&mu_);
    if (!stop_ && queue_.size() < options_.max_queued) {
      queue_.push_back(std::move(call));
      cv_.Signal();
      return;
    }
  }
  call(nullptr);
}

void RedisWorker::Run() {
  Context c;
  bool logged = false;
  absl::Time next_try = absl::InfinitePast();
  while (true) {
    Call call;
    bool stop;
    {
      MutexLock lock(&mu_);
      while (queue_.empty() && !stop_) cv_.Wait();
      if (queue_.empty()) return;
      call = std::move(queue_.front());
      queue_.pop_front();
      stop = stop_;
    }
    if (stop) {
      call(nullptr);
      continue;
    }
    if (c == nullptr && absl::Now() >= next_try) {
      c = Connect(name_, options_.host, options_.port,
                  options_.timeout, &logged);
      if (c != nullptr) {
        redisSetTimeout(c.get(), absl::ToTimeval(options_.timeout));
      } else {
        next_try = absl::Now() + options_.retry_after;
      }
    }
    call(c.get());
    if (c != nullptr && c->err != 0) {
      c.reset();
      next_try = absl::InfinitePast();  // the next call tries once more
    }
  }
}

}  // namespace parley::bus
