#include "server/auth/password.h"

#include <sodium.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace parley::auth {
namespace {

// libsodium must be initialised before use; sodium_init is idempotent, and
// the function-local static makes the first call thread-safe.
bool SodiumReady() {
  static const bool ready = sodium_init() >= 0;
  return ready;
}

}  // namespace

PasswordOptions MinimalPasswordCost() {
  PasswordOptions options;
  options.ops_limit = crypto_pwhash_OPSLIMIT_MIN;
  options.mem_limit = crypto_pwhash_MEMLIMIT_MIN;
  return options;
}

PasswordHasher::PasswordHasher(PasswordOptions options) : options_(options) {}

absl::StatusOr<std::string> PasswordHasher::Hash(
    absl::string_view password) const {
  if (!SodiumReady()) return absl::InternalError("libsodium failed to start");
  char encoded[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str_alg(encoded, password.data(), password.size(),
                            options_.ops_limit, options_.mem_limit,
                            crypto_pwhash_ALG_ARGON2ID13) != 0) {
    return absl::InternalError(absl::StrCat(
        "argon2id hashing failed (ops_limit ", options_.ops_limit,
        ", mem_limit ", options_.mem_limit, " bytes): out of memory?"));
  }
  return std::string(encoded);
}

bool PasswordHasher::Verify(absl::string_view encoded,
                            absl::string_view password) const {
  if (!SodiumReady()) return false;
  // libsodium reads a NUL-terminated string of at most STRBYTES - 1 chars.
  if (encoded.empty() || encoded.size() >= crypto_pwhash_STRBYTES ||
      encoded.find('\0') != absl::string_view::npos) {
    return false;
  }
  const std::string terminated(encoded);
  return crypto_pwhash_str_verify(terminated.c_str(), password.data(),
                                  password.size()) == 0;
}

}  // namespace parley::auth
