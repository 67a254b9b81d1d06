#include "server/common/uuid.h"

#include <uuid/uuid.h>

#include <cstdint>

namespace parley {
namespace {

std::string Unparse(const uuid_t raw) {
  char text[37];
  uuid_unparse_lower(raw, text);
  return text;
}

}  // namespace

std::string NewUuid() {
  uuid_t raw;
  uuid_generate_random(raw);
  return Unparse(raw);
}

std::string NewTimeOrderedUuid(absl::Time now) {
  // libuuid's random UUID already has the variant bits (10) right; the
  // first six bytes become the big-endian millisecond timestamp and the
  // version nibble 7.
  uuid_t raw;
  uuid_generate_random(raw);
  const uint64_t ms = static_cast<uint64_t>(absl::ToUnixMillis(now));
  for (int i = 0; i < 6; ++i) {
    raw[i] = static_cast<unsigned char>(ms >> (8 * (5 - i)));
  }
  raw[6] = static_cast<unsigned char>(0x70 | (raw[6] & 0x0f));
  return Unparse(raw);
}

}  // namespace parley
