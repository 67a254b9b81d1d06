#include "server/auth/tokens.h"

#include <jwt.h>
#include <sodium.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/auth/secret_file.h"
#include "server/common/errors.h"
#include "server/common/uuid.h"

namespace parley::auth {
namespace {

constexpr size_t kMinKeyBytes = 32;
// Far more than any token Parley issues; longer input is refused unparsed.
constexpr size_t kMaxTokenBytes = 8192;
constexpr char kAlgorithm[] = "HS256";
constexpr char kTypeUser[] = "user";
constexpr char kTypeRoom[] = "room";

struct JwtDeleter {
  void operator()(jwt_t* jwt) const { jwt_free(jwt); }
};
using JwtPtr = std::unique_ptr<jwt_t, JwtDeleter>;

// Strings libjwt allocates with malloc.
struct FreeDeleter {
  void operator()(char* p) const { std::free(p); }
};
using CString = std::unique_ptr<char, FreeDeleter>;

bool SodiumReady() {
  static const bool ready = sodium_init() >= 0;
  return ready;
}

absl::Status Refuse(absl::string_view reason, absl::string_view message) {
  return WithReason(absl::UnauthenticatedError(message), reason);
}

absl::Status Malformed(absl::string_view what) {
  return Refuse("TOKEN_MALFORMED", absl::StrCat("malformed token: ", what));
}

// A claim that must be a non-empty JSON string.
std::optional<std::string> StringClaim(jwt_t* jwt, const char* name) {
  const char* value = jwt_get_grant(jwt, name);  // null unless a string
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

// A claim that must be a JSON integer. jwt_get_grant_int cannot tell an
// integer from another type, so this reads the claim's JSON text.
std::optional<int64_t> IntClaim(jwt_t* jwt, const char* name) {
  CString json(jwt_get_grants_json(jwt, name));
  int64_t value;
  if (json == nullptr || !absl::SimpleAtoi(json.get(), &value)) {
    return std::nullopt;
  }
  return value;
}

std::string ErrnoText(int err) { return std::strerror(err); }

// A fresh random key.
absl::StatusOr<std::string> NewKey() {
  if (!SodiumReady()) return absl::InternalError("libsodium failed to start");
  std::string key(kMinKeyBytes, '\0');
  randombytes_buf(key.data(), key.size());
  return key;
}

}  // namespace

TokenSigner::TokenSigner(std::string key, absl::Duration lifetime, Clock* clock,
                         absl::Duration max_clock_skew)
    : key_(std::move(key)),
      lifetime_(lifetime),
      clock_(clock),
      max_clock_skew_(max_clock_skew) {}

absl::StatusOr<std::string> TokenSigner::Sign(Claims* claims) const {
  if (key_.size() < kMinKeyBytes) {
    return absl::FailedPreconditionError(
        absl::StrCat("the token signing key has ", key_.size(),
                     " bytes; at least ", kMinKeyBytes, " are needed"));
  }
  if (lifetime_ < absl::Seconds(1)) {
    return absl::FailedPreconditionError(
        "the token lifetime must be at least one second");
  }
  const bool user = claims->kind == TokenKind::kUser;
  if (claims->name.empty() || (user && claims->subject.empty()) ||
      (!user && claims->room_id.empty())) {
    return absl::InvalidArgumentError(
        user ? "a user token needs a subject and a name"
             : "a room token needs a room and a name");
  }

  const int64_t iat = absl::ToUnixSeconds(clock_->Now());
  const int64_t exp = iat + absl::ToInt64Seconds(lifetime_);
  const std::string jti = NewUuid();

  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0) return absl::InternalError("jwt_new failed");
  JwtPtr jwt(raw);
  int rc = jwt_add_grant(jwt.get(), "typ", user ? kTypeUser : kTypeRoom);
  if (rc == 0 && user) {
    rc = jwt_add_grant(jwt.get(), "sub", claims->subject.c_str());
  }
  if (rc == 0) rc = jwt_add_grant(jwt.get(), "name", claims->name.c_str());
  if (rc == 0 && !user) {
    rc = jwt_add_grant(jwt.get(), "room", claims->room_id.c_str());
  }
  if (rc == 0) rc = jwt_add_grant(jwt.get(), "jti", jti.c_str());
  if (rc == 0) rc = jwt_add_grant_int(jwt.get(), "iat", iat);
  if (rc == 0) rc = jwt_add_grant_int(jwt.get(), "exp", exp);
  if (rc == 0) {
    rc = jwt_set_alg(jwt.get(), JWT_ALG_HS256,
                     reinterpret_cast<const unsigned char*>(key_.data()),
                     static_cast<int>(key_.size()));
  }
  if (rc != 0) {
    return absl::InternalError(
        absl::StrCat("cannot build the token: ", ErrnoText(rc)));
  }
  CString encoded(jwt_encode_str(jwt.get()));
  if (encoded == nullptr) {
    return absl::InternalError("cannot encode the token");
  }
  claims->jti = jti;
  claims->issue_time = absl::FromUnixSeconds(iat);
  claims->expire_time = absl::FromUnixSeconds(exp);
  return std::string(encoded.get());
}

absl::StatusOr<Claims> TokenSigner::Verify(absl::string_view token) const {
  {
    MutexLock lock(&verified_mu_);
    auto it = verified_.find(token);
    if (it != verified_.end()) {
      if (it->second.expire_time > clock_->Now()) return it->second;
      verified_.erase(it);
    }
  }
  absl::StatusOr<Claims> claims = VerifyUncached(token);
  if (claims.ok()) {
    MutexLock lock(&verified_mu_);
    if (verified_.size() >= kVerifiedTokens) verified_.clear();
    verified_.insert_or_assign(std::string(token), *claims);
  }
  return claims;
}

absl::StatusOr<Claims> TokenSigner::VerifyUncached(
    absl::string_view token) const {
  if (key_.size() < kMinKeyBytes) {
    return absl::FailedPreconditionError(
        "the token signing key is too short to verify with");
  }
  if (token.empty() || token.size() > kMaxTokenBytes ||
      token.find('\0') != absl::string_view::npos ||
      std::count(token.begin(), token.end(), '.') != 2) {
    return Malformed("not a compact JWS");
  }
  const std::string text(token);

  // Parse without the key first, to check the algorithm the header claims
  // before any signature is checked: only HS256 is ever accepted, whatever
  // libjwt would verify (HS384/HS512 with our key, or "none").
  jwt_t* raw = nullptr;
  if (jwt_decode(&raw, text.c_str(), nullptr, 0) != 0) {
    return Malformed("cannot decode");
  }
  JwtPtr unverified(raw);
  const char* alg = jwt_get_header(unverified.get(), "alg");
  if (alg == nullptr || std::strcmp(alg, kAlgorithm) != 0) {
    return Refuse("TOKEN_BAD_ALGORITHM",
                  absl::StrCat("token algorithm ", alg == nullptr ? "" : alg,
                               " is not accepted; only HS256 is"));
  }
  unverified.reset();

  raw = nullptr;
  if (jwt_decode(&raw, text.c_str(),
                 reinterpret_cast<const unsigned char*>(key_.data()),
                 static_cast<int>(key_.size())) != 0) {
    return Refuse("TOKEN_BAD_SIGNATURE", "token signature is not valid");
  }
  JwtPtr jwt(raw);
  if (jwt_get_alg(jwt.get()) != JWT_ALG_HS256) {
    return Refuse("TOKEN_BAD_ALGORITHM", "only HS256 tokens are accepted");
  }

  Claims claims;
  const std::optional<std::string> typ = StringClaim(jwt.get(), "typ");
  if (typ == kTypeUser) {
    claims.kind = TokenKind::kUser;
  } else if (typ == kTypeRoom) {
    claims.kind = TokenKind::kRoom;
  } else {
    return Malformed("claim typ must be \"user\" or \"room\"");
  }
  std::optional<std::string> name = StringClaim(jwt.get(), "name");
  std::optional<std::string> jti = StringClaim(jwt.get(), "jti");
  const std::optional<int64_t> iat = IntClaim(jwt.get(), "iat");
  const std::optional<int64_t> exp = IntClaim(jwt.get(), "exp");
  if (!name || !jti || !iat || !exp) {
    return Malformed("claims name, jti, iat and exp are required");
  }
  claims.name = *std::move(name);
  claims.jti = *std::move(jti);
  if (claims.kind == TokenKind::kUser) {
    std::optional<std::string> sub = StringClaim(jwt.get(), "sub");
    if (!sub) return Malformed("a user token needs claim sub");
    claims.subject = *std::move(sub);
  } else {
    std::optional<std::string> room = StringClaim(jwt.get(), "room");
    if (!room) return Malformed("a room token needs claim room");
    claims.room_id = *std::move(room);
  }
  claims.issue_time = absl::FromUnixSeconds(*iat);
  claims.expire_time = absl::FromUnixSeconds(*exp);
  const absl::Time now = clock_->Now();
  if (claims.expire_time <= now) {
    return Refuse("TOKEN_EXPIRED", "token has expired");
  }
  if (claims.issue_time > now + max_clock_skew_) {
    return Refuse("TOKEN_NOT_YET_VALID", "token is issued in the future");
  }
  return claims;
}

absl::StatusOr<std::string> LoadOrCreateKey(const std::string& key_file,
                                            const std::string& data_dir) {
  if (!key_file.empty()) {
    int err = 0;
    std::optional<std::string> key = ReadWholeFile(key_file, &err);
    if (!key.has_value()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot read --token_key_file ", key_file, ": ", ErrnoText(err)));
    }
    if (key->size() < kMinKeyBytes) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--token_key_file ", key_file, " holds ", key->size(),
          " bytes; a signing key needs at least ", kMinKeyBytes));
    }
    return *std::move(key);
  }

  if (data_dir.empty()) {
    return absl::InvalidArgumentError(
        "no --token_key_file and no --data_dir to keep the token key in");
  }
  // Created on first start; when another server starting at the same time
  // created it first, its key wins.
  const std::string path = data_dir + "/token.key";
  absl::StatusOr<std::string> key =
      ReadOrCreateFile(path, "the token key", NewKey);
  if (!key.ok()) return key.status();
  if (key->size() < kMinKeyBytes) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, " holds ", key->size(), " bytes; a signing key needs at least ",
        kMinKeyBytes, ". Remove it to make a new key (this signs everyone "
        "out)"));
  }
  return *std::move(key);
}

}  // namespace parley::auth
