#include "server/bus/redis_connection.h"

#include <sys/time.h>

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

}  // namespace parley::bus
