#include "server/common/metrics.h"

#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"

namespace parley::metrics {
namespace {

absl::Duration FromTimeval(const timeval& tv) {
  return absl::Seconds(tv.tv_sec) + absl::Microseconds(tv.tv_usec);
}

std::string ReadFile(const char* path) {
  std::ifstream in(path);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

// The value of the "Key:   123 kB" line `key` of /proc/self/status, scaled
// to bytes when it is in kB; 0 when absent.
uint64_t StatusField(const std::string& status, absl::string_view key) {
  for (absl::string_view line : absl::StrSplit(status, '\n')) {
    if (!absl::ConsumePrefix(&line, key) || !absl::ConsumePrefix(&line, ":")) {
      continue;
    }
    std::vector<absl::string_view> parts =
        absl::StrSplit(line, ' ', absl::SkipWhitespace());
    uint64_t value = 0;
    if (parts.empty() || !absl::SimpleAtoi(parts[0], &value)) return 0;
    return parts.size() > 1 && parts[1] == "kB" ? value * 1024 : value;
  }
  return 0;
}

// The process start from /proc: field 22 of /proc/self/stat (clock ticks
// after boot) plus the boot time (btime of /proc/stat).
absl::Time ReadStartTime() {
  const std::string stat = ReadFile("/proc/self/stat");
  // The command name (field 2) is in parentheses and may hold spaces.
  const size_t paren = stat.rfind(')');
  const std::string system = ReadFile("/proc/stat");
  const long ticks = sysconf(_SC_CLK_TCK);
  if (paren == std::string::npos || ticks <= 0) return absl::Now();
  std::vector<absl::string_view> fields = absl::StrSplit(
      absl::string_view(stat).substr(paren + 1), ' ', absl::SkipWhitespace());
  // After ')' come fields 3, 4, ...: field 22 is at index 19.
  uint64_t start_ticks = 0;
  if (fields.size() < 20 || !absl::SimpleAtoi(fields[19], &start_ticks)) {
    return absl::Now();
  }
  for (absl::string_view line : absl::StrSplit(system, '\n')) {
    int64_t boot = 0;
    if (absl::ConsumePrefix(&line, "btime ") &&
        absl::SimpleAtoi(line, &boot)) {
      return absl::FromUnixSeconds(boot) +
             absl::Seconds(static_cast<double>(start_ticks) /
                           static_cast<double>(ticks));
    }
  }
  return absl::Now();
}

}  // namespace

ProcessUsage ReadProcessUsage() {
  ProcessUsage usage;
  rusage ru{};
  if (getrusage(RUSAGE_SELF, &ru) == 0) {
    usage.cpu_user = FromTimeval(ru.ru_utime);
    usage.cpu_system = FromTimeval(ru.ru_stime);
  }
  const std::string status = ReadFile("/proc/self/status");
  usage.resident_bytes = StatusField(status, "VmRSS");
  usage.peak_resident_bytes =
      std::max(StatusField(status, "VmHWM"), usage.resident_bytes);
  usage.threads = static_cast<uint32_t>(StatusField(status, "Threads"));
  return usage;
}

absl::Time ProcessStartTime() {
  static const absl::Time start = ReadStartTime();
  return start;
}

uint32_t CpuCount() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    return static_cast<uint32_t>(std::max(CPU_COUNT(&set), 1));
  }
  return std::max(std::thread::hardware_concurrency(), 1u);
}

CpuWindow::CpuWindow(absl::Duration window, absl::Time process_start)
    : window_(window),
      interval_(std::max(window / kSamplesPerWindow, absl::Seconds(1))) {
  samples_.push_back(Point{process_start, absl::ZeroDuration()});
}

void CpuWindow::Sample(absl::Time now, absl::Duration cpu) {
  MutexLock lock(&mu_);
  if (!samples_.empty() && now <= samples_.back().time) return;
  samples_.push_back(Point{now, cpu});
  // Keep the newest sample at or before now - window_ (the start of a full
  // window), and everything after it.
  while (samples_.size() > 1 && samples_[1].time <= now - window_) {
    samples_.pop_front();
  }
}

CpuWindow::Usage CpuWindow::Over(absl::Time now, absl::Duration cpu) {
  Point from;
  {
    MutexLock lock(&mu_);
    // The oldest sample within the window; the first sample when all are
    // older (none has been taken for longer than the window).
    auto it = std::find_if(samples_.begin(), samples_.end(),
                           [&](const Point& p) { return p.time >= now - window_; });
    from = it != samples_.end() ? *it : samples_.back();
  }
  Usage usage;
  usage.covers = now - from.time;
  if (usage.covers <= absl::ZeroDuration()) return Usage{};
  usage.percent = 100.0 * absl::FDivDuration(cpu - from.cpu, usage.covers);
  if (usage.percent < 0) usage.percent = 0;
  return usage;
}

}  // namespace parley::metrics
