// The JWT check: TokenSigner::Verify on arbitrary bytes, and on tokens whose
// header and claims are arbitrary JSON-ish text but whose HS256 signature is
// made with the server's key (so the claim checks behind the signature are
// reached), or with another key. Whatever the input: no crash, a refusal is
// UNAUTHENTICATED with one of the documented reasons, what verifies carries
// the claims its kind needs and is neither expired nor from the future, a
// foreign key's token never verifies, and a second Verify (the cached path)
// answers the same.
#include <sodium.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include <fuzzer/FuzzedDataProvider.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/auth/tokens.h"
#include "server/common/clock.h"
#include "server/common/errors.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

const std::string kKey(32, 'k');
const std::string kOtherKey(32, 'o');

// The compact JWS of `header` and `payload` with an HS256 signature by `key`.
std::string Sign(const std::string& header, const std::string& payload,
                 const std::string& key) {
  const std::string input = absl::StrCat(absl::WebSafeBase64Escape(header), ".",
                                         absl::WebSafeBase64Escape(payload));
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_state state;
  crypto_auth_hmacsha256_init(&state,
                              reinterpret_cast<const unsigned char*>(key.data()),
                              key.size());
  crypto_auth_hmacsha256_update(
      &state, reinterpret_cast<const unsigned char*>(input.data()),
      input.size());
  crypto_auth_hmacsha256_final(&state, mac);
  return absl::StrCat(
      input, ".",
      absl::WebSafeBase64Escape(absl::string_view(
          reinterpret_cast<const char*>(mac), sizeof(mac))));
}

bool KnownRefusal(const absl::Status& s) {
  if (s.code() != absl::StatusCode::kUnauthenticated) return false;
  const std::string reason = parley::ErrorReason(s);
  return reason == "TOKEN_MALFORMED" || reason == "TOKEN_BAD_ALGORITHM" ||
         reason == "TOKEN_BAD_SIGNATURE" || reason == "TOKEN_EXPIRED" ||
         reason == "TOKEN_NOT_YET_VALID";
}

void CheckVerify(const parley::auth::TokenSigner& signer, absl::Time now,
                 const std::string& token, bool ours) {
  const absl::StatusOr<parley::auth::Claims> claims = signer.Verify(token);
  if (!claims.ok()) {
    FUZZ_CHECK(KnownRefusal(claims.status()));
  } else {
    FUZZ_CHECK(ours);
    FUZZ_CHECK(!claims->name.empty() && !claims->jti.empty());
    if (claims->kind == parley::auth::TokenKind::kUser) {
      FUZZ_CHECK(!claims->subject.empty() && claims->room_id.empty());
    } else {
      FUZZ_CHECK(!claims->room_id.empty() && claims->subject.empty());
    }
    FUZZ_CHECK(claims->expire_time > now);
    FUZZ_CHECK(claims->issue_time <= now + absl::Minutes(1));
  }
  const absl::StatusOr<parley::auth::Claims> again = signer.Verify(token);
  FUZZ_CHECK(again.ok() == claims.ok());
  if (claims.ok()) {
    FUZZ_CHECK(again->jti == claims->jti && again->name == claims->name &&
               again->expire_time == claims->expire_time);
  } else {
    FUZZ_CHECK(parley::ErrorReason(again.status()) ==
               parley::ErrorReason(claims.status()));
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  return sodium_init() < 0 ? 1 : 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static parley::ManualClock clock;
  // One signer per input: its cache of verified tokens starts empty.
  parley::auth::TokenSigner signer(kKey, absl::Hours(1), &clock);
  const absl::Time now = clock.Now();

  // The input as a token.
  const std::string raw(reinterpret_cast<const char*>(data), size);
  CheckVerify(signer, now, raw, /*ours=*/false);

  // The input as a header and claims, signed with our key and another.
  FuzzedDataProvider in(data, size);
  const std::string header = in.ConsumeRandomLengthString(256);
  const std::string payload = in.ConsumeRemainingBytesAsString();
  CheckVerify(signer, now, Sign(header, payload, kKey), /*ours=*/true);
  CheckVerify(signer, now, Sign(header, payload, kOtherKey), /*ours=*/false);
  return 0;
}
