// Signed tokens: JWTs (RFC 7519) signed with HS256 through libjwt. Verify
// accepts only HS256 with this server's key, an unexpired `exp`, and the
// claims Parley issues.
#ifndef PARLEY_SERVER_AUTH_TOKENS_H_
#define PARLEY_SERVER_AUTH_TOKENS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/container/flat_hash_map.h"
#include "server/common/clock.h"
#include "server/common/mutex.h"

namespace parley::auth {

enum class TokenKind {
  kUser,  // a signed-in user (claim "typ": "user")
  kRoom,  // a room token for a display name (seed 002; "typ": "room")
};

struct Claims {
  TokenKind kind = TokenKind::kUser;
  std::string subject;  // "sub": the user's UUID (user tokens)
  std::string name;     // "name": username, or a room token's display name
  std::string room_id;  // "room": room tokens only
  std::string jti;      // "jti": a UUID, the token's id for revocation
  absl::Time issue_time;   // "iat", whole seconds
  absl::Time expire_time;  // "exp", whole seconds
};

class TokenSigner {
 public:
  // `key` is the HS256 secret, at least 32 bytes.
  // A token whose issue time is more than `max_clock_skew` after now is
  // refused (TOKEN_NOT_YET_VALID): only a holder of the key can make one,
  // and it would outlive a password change.
  TokenSigner(std::string key, absl::Duration lifetime, Clock* clock,
              absl::Duration max_clock_skew = absl::Minutes(1));

  // Fills claims->jti, issue_time and expire_time (now + lifetime) and
  // returns the signed token.
  absl::StatusOr<std::string> Sign(Claims* claims) const;

  // Checks the token's algorithm (HS256 only; "none" and others refused),
  // signature, expiry and claims. UNAUTHENTICATED with reason
  // TOKEN_MALFORMED, TOKEN_BAD_ALGORITHM, TOKEN_BAD_SIGNATURE,
  // TOKEN_EXPIRED or TOKEN_NOT_YET_VALID otherwise. Thread-safe.
  //
  // Tokens that verified are remembered (at most kVerifiedTokens, all
  // forgotten when full), so a client's next call with the same token costs
  // a lookup instead of a base64 decode, a JSON parse and an HMAC: the same
  // string verifies the same way until it expires, which is checked on every
  // use. Revocation is not the signer's business (see Authenticator).
  absl::StatusOr<Claims> Verify(absl::string_view token) const;

  absl::Duration lifetime() const { return lifetime_; }

  static constexpr size_t kVerifiedTokens = 10000;

 private:
  absl::StatusOr<Claims> VerifyUncached(absl::string_view token) const;

  std::string key_;
  absl::Duration lifetime_;
  Clock* clock_;
  absl::Duration max_clock_skew_;
  mutable Mutex verified_mu_;
  mutable absl::flat_hash_map<std::string, Claims> verified_
      ABSL_GUARDED_BY(verified_mu_);
};

// The signing key: the contents of `key_file` when set (at least 32 bytes);
// otherwise `<data_dir>/token.key`, created with 32 random bytes (mode 0600)
// on first start and read back on later ones.
absl::StatusOr<std::string> LoadOrCreateKey(const std::string& key_file,
                                            const std::string& data_dir);

}  // namespace parley::auth

#endif  // PARLEY_SERVER_AUTH_TOKENS_H_
