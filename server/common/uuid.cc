#include "server/common/uuid.h"

#include <sys/random.h>
#include <uuid/uuid.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace parley {
namespace {

// Random bytes from the kernel (getrandom), taken a buffer at a time per
// thread: one system call per 16 UUIDs. libuuid's uuid_generate_random
// reseeds and cranks random(3) under its global lock on every call, which
// showed in profiles of the send path.
void RandomBytes(unsigned char* out, size_t n) {
  constexpr size_t kBuffer = 256;
  thread_local unsigned char buffer[kBuffer];
  thread_local size_t left = 0;
  if (left < n) {
    size_t filled = 0;
    while (filled < kBuffer) {
      const ssize_t got = getrandom(buffer + filled, kBuffer - filled, 0);
      if (got < 0) {
        if (errno == EINTR) continue;
        std::fprintf(stderr, "getrandom: %s\n", std::strerror(errno));
        std::abort();
      }
      filled += static_cast<size_t>(got);
    }
    left = kBuffer;
  }
  std::memcpy(out, buffer + kBuffer - left, n);
  // What was handed out is not kept around.
  std::memset(buffer + kBuffer - left, 0, n);
  left -= n;
}

// A random (version 4, RFC 9562 variant) UUID's 16 bytes.
void RandomUuid(uuid_t raw) {
  RandomBytes(raw, sizeof(uuid_t));
  raw[6] = static_cast<unsigned char>(0x40 | (raw[6] & 0x0f));
  raw[8] = static_cast<unsigned char>(0x80 | (raw[8] & 0x3f));
}

std::string Unparse(const uuid_t raw) {
  char text[37];
  uuid_unparse_lower(raw, text);
  return text;
}

}  // namespace

std::string NewUuid() {
  uuid_t raw;
  RandomUuid(raw);
  return Unparse(raw);
}

std::string NewTimeOrderedUuid(absl::Time now) {
  // A random UUID has the variant bits (10) right; the first six bytes
  // become the big-endian millisecond timestamp and the version nibble 7.
  uuid_t raw;
  RandomUuid(raw);
  const uint64_t ms = static_cast<uint64_t>(absl::ToUnixMillis(now));
  for (int i = 0; i < 6; ++i) {
    raw[i] = static_cast<unsigned char>(ms >> (8 * (5 - i)));
  }
  raw[6] = static_cast<unsigned char>(0x70 | (raw[6] & 0x0f));
  return Unparse(raw);
}

}  // namespace parley
