// Password hashing: argon2id through libsodium's crypto_pwhash_str, whose
// encoded form carries the algorithm, cost and salt.
#ifndef PARLEY_SERVER_AUTH_PASSWORD_H_
#define PARLEY_SERVER_AUTH_PASSWORD_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace parley::auth {

// argon2id cost; each is a server flag (see main.cc). The defaults are
// libsodium's "interactive" limits.
struct PasswordOptions {
  uint64_t ops_limit = 2;              // crypto_pwhash_OPSLIMIT_INTERACTIVE
  size_t mem_limit = 64 * 1024 * 1024;  // crypto_pwhash_MEMLIMIT_INTERACTIVE
};

// The cheapest cost libsodium allows; for tests only.
PasswordOptions MinimalPasswordCost();

class PasswordHasher {
 public:
  explicit PasswordHasher(PasswordOptions options);
  // The encoded argon2id hash of `password`. INTERNAL only if libsodium
  // fails (out of memory).
  absl::StatusOr<std::string> Hash(absl::string_view password) const;
  // Whether `password` matches `encoded` (false for a malformed hash).
  bool Verify(absl::string_view encoded, absl::string_view password) const;

 private:
  PasswordOptions options_;
};

}  // namespace parley::auth

#endif  // PARLEY_SERVER_AUTH_PASSWORD_H_
