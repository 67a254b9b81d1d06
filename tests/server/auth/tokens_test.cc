#include "server/auth/tokens.h"

#include <jwt.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "server/common/clock.h"
#include "server/common/errors.h"
#include "tests/server/common/temp_dir.h"

namespace parley::auth {
namespace {

const std::string kKey = "0123456789abcdef0123456789abcdef";  // 32 bytes
const absl::Duration kLifetime = absl::Hours(1);

// The reason of an UNAUTHENTICATED status, or a description of what else it
// was, so that mismatches print clearly.
std::string RefusalReason(const absl::StatusOr<Claims>& result) {
  if (result.ok()) return "accepted";
  if (!absl::IsUnauthenticated(result.status())) {
    return absl::StrCat("not UNAUTHENTICATED: ", result.status().ToString());
  }
  return ErrorReason(result.status());
}

std::vector<std::string> Segments(const std::string& token) {
  return absl::StrSplit(token, '.');
}

std::string Decode(const std::string& segment) {
  std::string out;
  EXPECT_TRUE(absl::WebSafeBase64Unescape(segment, &out)) << segment;
  return out;
}

std::string Encode(const std::string& json) {
  return absl::WebSafeBase64Escape(json);
}

// A token made directly with libjwt, bypassing TokenSigner.
std::string MakeJwt(jwt_alg_t alg, const std::string& key,
                    const std::string& grants_json) {
  jwt_t* jwt = nullptr;
  EXPECT_EQ(jwt_new(&jwt), 0);
  EXPECT_EQ(jwt_add_grants_json(jwt, grants_json.c_str()), 0) << grants_json;
  EXPECT_EQ(jwt_set_alg(jwt, alg,
                        reinterpret_cast<const unsigned char*>(key.data()),
                        static_cast<int>(key.size())),
            0);
  char* encoded = jwt_encode_str(jwt);
  EXPECT_NE(encoded, nullptr);
  std::string token = encoded == nullptr ? "" : encoded;
  std::free(encoded);
  jwt_free(jwt);
  return token;
}

class TokensTest : public ::testing::Test {
 protected:
  Claims UserClaims() {
    Claims claims;
    claims.kind = TokenKind::kUser;
    claims.subject = "3b241101-e2bb-4255-8caf-4136c566a962";
    claims.name = "alice";
    return claims;
  }

  // Valid claims JSON for the current clock, as TokenSigner would write.
  std::string ValidGrants() {
    const int64_t now = absl::ToUnixSeconds(clock_.Now());
    return absl::StrCat(
        R"({"typ":"user","sub":"u1","name":"alice","jti":"j1","iat":)", now,
        R"(,"exp":)", now + 3600, "}");
  }

  std::string SignUser() {
    Claims claims = UserClaims();
    absl::StatusOr<std::string> token = signer_.Sign(&claims);
    EXPECT_TRUE(token.ok()) << token.status();
    return token.value_or("");
  }

  ManualClock clock_{absl::FromUnixSeconds(1700000000) +
                     absl::Milliseconds(750)};
  TokenSigner signer_{kKey, kLifetime, &clock_};
};

TEST_F(TokensTest, UserTokenRoundTrips) {
  Claims claims = UserClaims();
  absl::StatusOr<std::string> token = signer_.Sign(&claims);
  ASSERT_TRUE(token.ok()) << token.status();
  // Sign filled the generated claims, in whole seconds.
  EXPECT_EQ(claims.jti.size(), 36u) << claims.jti;
  EXPECT_EQ(claims.issue_time, absl::FromUnixSeconds(1700000000));
  EXPECT_EQ(claims.expire_time, claims.issue_time + kLifetime);

  absl::StatusOr<Claims> verified = signer_.Verify(*token);
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_EQ(verified->kind, TokenKind::kUser);
  EXPECT_EQ(verified->subject, claims.subject);
  EXPECT_EQ(verified->name, "alice");
  EXPECT_EQ(verified->room_id, "");
  EXPECT_EQ(verified->jti, claims.jti);
  EXPECT_EQ(verified->issue_time, claims.issue_time);
  EXPECT_EQ(verified->expire_time, claims.expire_time);

  const std::string header = Decode(Segments(*token)[0]);
  EXPECT_NE(header.find(R"("alg":"HS256")"), std::string::npos) << header;
}

TEST_F(TokensTest, RoomTokenRoundTrips) {
  Claims claims;
  claims.kind = TokenKind::kRoom;
  claims.room_id = "room-1";
  claims.name = "Guest Bob";
  absl::StatusOr<std::string> token = signer_.Sign(&claims);
  ASSERT_TRUE(token.ok()) << token.status();

  absl::StatusOr<Claims> verified = signer_.Verify(*token);
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_EQ(verified->kind, TokenKind::kRoom);
  EXPECT_EQ(verified->room_id, "room-1");
  EXPECT_EQ(verified->name, "Guest Bob");
  EXPECT_EQ(verified->subject, "");
  EXPECT_EQ(verified->jti, claims.jti);
}

TEST_F(TokensTest, EveryTokenGetsItsOwnId) {
  Claims a = UserClaims();
  Claims b = UserClaims();
  ASSERT_TRUE(signer_.Sign(&a).ok());
  ASSERT_TRUE(signer_.Sign(&b).ok());
  EXPECT_NE(a.jti, b.jti);
}

TEST_F(TokensTest, SignRefusesIncompleteClaims) {
  Claims no_subject = UserClaims();
  no_subject.subject.clear();
  EXPECT_EQ(signer_.Sign(&no_subject).status().code(),
            absl::StatusCode::kInvalidArgument);
  Claims no_room;
  no_room.kind = TokenKind::kRoom;
  no_room.name = "guest";
  EXPECT_EQ(signer_.Sign(&no_room).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(TokensTest, SignRefusesAShortKey) {
  TokenSigner weak(std::string(31, 'k'), kLifetime, &clock_);
  Claims claims = UserClaims();
  EXPECT_EQ(weak.Sign(&claims).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(TokensTest, ExpiresAtExp) {
  const std::string token = SignUser();
  clock_.Advance(kLifetime - absl::Seconds(2));
  EXPECT_TRUE(signer_.Verify(token).ok());
  // exp is iat + lifetime in whole seconds; the clock started 0.75 s past
  // iat, so now = exp - 0.25 s: still valid.
  clock_.Advance(absl::Seconds(1));
  EXPECT_TRUE(signer_.Verify(token).ok());
  clock_.Advance(absl::Milliseconds(250));  // now == exp
  EXPECT_EQ(RefusalReason(signer_.Verify(token)), "TOKEN_EXPIRED");
  clock_.Advance(absl::Hours(100));
  EXPECT_EQ(RefusalReason(signer_.Verify(token)), "TOKEN_EXPIRED");
}

TEST_F(TokensTest, ATokenIssuedInTheFutureIsRefused) {
  ManualClock ahead(clock_.Now() + absl::Minutes(10));
  TokenSigner future_signer(kKey, kLifetime, &ahead);
  Claims claims = UserClaims();
  absl::StatusOr<std::string> token = future_signer.Sign(&claims);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(RefusalReason(signer_.Verify(*token)), "TOKEN_NOT_YET_VALID");
  // Within the allowed skew it is a clock a little ahead, and passes.
  clock_.Advance(absl::Minutes(9) + absl::Seconds(30));
  EXPECT_TRUE(signer_.Verify(*token).ok());
}

TEST_F(TokensTest, TamperedPayloadIsRefused) {
  std::vector<std::string> parts = Segments(SignUser());
  ASSERT_EQ(parts.size(), 3u);
  const std::string payload = Decode(parts[1]);
  const std::string forged =
      absl::StrReplaceAll(payload, {{R"("alice")", R"("admin")"}});
  ASSERT_NE(forged, payload);
  parts[1] = Encode(forged);
  EXPECT_EQ(RefusalReason(signer_.Verify(absl::StrJoin(parts, "."))),
            "TOKEN_BAD_SIGNATURE");
}

TEST_F(TokensTest, TamperedSignatureIsRefused) {
  std::vector<std::string> parts = Segments(SignUser());
  ASSERT_EQ(parts.size(), 3u);
  std::string& sig = parts[2];
  sig[sig.size() / 2] = sig[sig.size() / 2] == 'A' ? 'B' : 'A';
  EXPECT_EQ(RefusalReason(signer_.Verify(absl::StrJoin(parts, "."))),
            "TOKEN_BAD_SIGNATURE");
  parts[2] = "";
  EXPECT_EQ(RefusalReason(signer_.Verify(absl::StrJoin(parts, "."))),
            "TOKEN_BAD_SIGNATURE");
}

TEST_F(TokensTest, TokenSignedWithAnotherKeyIsRefused) {
  TokenSigner other("ffffffffffffffffffffffffffffffff", kLifetime, &clock_);
  Claims claims = UserClaims();
  absl::StatusOr<std::string> token = other.Sign(&claims);
  ASSERT_TRUE(token.ok()) << token.status();
  ASSERT_TRUE(other.Verify(*token).ok());
  EXPECT_EQ(RefusalReason(signer_.Verify(*token)), "TOKEN_BAD_SIGNATURE");
}

TEST_F(TokensTest, AlgNoneIsRefused) {
  const std::vector<std::string> parts = Segments(SignUser());
  const std::string none_header = Encode(R"({"alg":"none","typ":"JWT"})");
  // Unsigned, as RFC 7519 describes, and with the original signature kept.
  EXPECT_EQ(RefusalReason(signer_.Verify(
                absl::StrCat(none_header, ".", parts[1], "."))),
            "TOKEN_BAD_ALGORITHM");
  EXPECT_EQ(RefusalReason(signer_.Verify(
                absl::StrCat(none_header, ".", parts[1], ".", parts[2]))),
            "TOKEN_BAD_ALGORITHM");
  // Spelled differently.
  const std::string none_caps = Encode(R"({"alg":"None","typ":"JWT"})");
  EXPECT_EQ(RefusalReason(signer_.Verify(
                absl::StrCat(none_caps, ".", parts[1], "."))),
            "TOKEN_BAD_ALGORITHM");
}

TEST_F(TokensTest, OtherHmacAlgorithmsWithTheSameKeyAreRefused) {
  // libjwt alone would accept these: they are correctly signed with our key.
  const std::string hs512 = MakeJwt(JWT_ALG_HS512, kKey, ValidGrants());
  EXPECT_EQ(RefusalReason(signer_.Verify(hs512)), "TOKEN_BAD_ALGORITHM");
  const std::string hs384 = MakeJwt(JWT_ALG_HS384, kKey, ValidGrants());
  EXPECT_EQ(RefusalReason(signer_.Verify(hs384)), "TOKEN_BAD_ALGORITHM");
  // The same claims as HS256 are accepted, so only the algorithm differs.
  const std::string hs256 = MakeJwt(JWT_ALG_HS256, kKey, ValidGrants());
  EXPECT_TRUE(signer_.Verify(hs256).ok()) << signer_.Verify(hs256).status();
}

TEST_F(TokensTest, HeaderAlgorithmSwappedOnAValidTokenIsRefused) {
  std::vector<std::string> parts = Segments(SignUser());
  parts[0] = Encode(R"({"alg":"HS512","typ":"JWT"})");
  EXPECT_EQ(RefusalReason(signer_.Verify(absl::StrJoin(parts, "."))),
            "TOKEN_BAD_ALGORITHM");
  parts[0] = Encode(R"({"alg":"hs256","typ":"JWT"})");
  EXPECT_EQ(RefusalReason(signer_.Verify(absl::StrJoin(parts, "."))),
            "TOKEN_BAD_ALGORITHM");
}

TEST_F(TokensTest, GarbageIsMalformed) {
  const std::string valid = SignUser();
  for (const std::string& garbage :
       {std::string(""), std::string("garbage"), std::string("a.b.c"),
        std::string(".."), std::string("..."),
        absl::StrCat(valid, ".extra"), valid.substr(0, valid.find('.')),
        absl::StrCat("!!!!", valid.substr(valid.find('.'))),
        absl::StrCat(Encode("not json"), valid.substr(valid.find('.'))),
        std::string(100000, 'a'), std::string("a\0b.c.d", 7)}) {
    EXPECT_EQ(RefusalReason(signer_.Verify(garbage)), "TOKEN_MALFORMED")
        << garbage.substr(0, 80);
  }
}

TEST_F(TokensTest, MissingOrIllTypedClaimsAreMalformed) {
  const int64_t now = absl::ToUnixSeconds(clock_.Now());
  const std::string iat = absl::StrCat(now);
  const std::string exp = absl::StrCat(now + 3600);
  const std::vector<std::string> bad = {
      // Each lacks one required claim.
      absl::StrCat(R"({"sub":"u1","name":"a","jti":"j","iat":)", iat,
                   R"(,"exp":)", exp, "}"),
      absl::StrCat(R"({"typ":"user","name":"a","jti":"j","iat":)", iat,
                   R"(,"exp":)", exp, "}"),
      absl::StrCat(R"({"typ":"user","sub":"u1","jti":"j","iat":)", iat,
                   R"(,"exp":)", exp, "}"),
      absl::StrCat(R"({"typ":"user","sub":"u1","name":"a","iat":)", iat,
                   R"(,"exp":)", exp, "}"),
      absl::StrCat(R"({"typ":"user","sub":"u1","name":"a","jti":"j","exp":)",
                   exp, "}"),
      absl::StrCat(R"({"typ":"user","sub":"u1","name":"a","jti":"j","iat":)",
                   iat, "}"),
      absl::StrCat(R"({"typ":"room","name":"a","jti":"j","iat":)", iat,
                   R"(,"exp":)", exp, "}"),
      // Ill-typed or unknown values.
      absl::StrCat(R"({"typ":"admin","sub":"u1","name":"a","jti":"j","iat":)",
                   iat, R"(,"exp":)", exp, "}"),
      absl::StrCat(R"({"typ":"user","sub":7,"name":"a","jti":"j","iat":)",
                   iat, R"(,"exp":)", exp, "}"),
      absl::StrCat(R"({"typ":"user","sub":"","name":"a","jti":"j","iat":)",
                   iat, R"(,"exp":)", exp, "}"),
      absl::StrCat(R"({"typ":"user","sub":"u1","name":"a","jti":"j","iat":)",
                   iat, R"(,"exp":")", exp, "\"}"),
      absl::StrCat(R"({"typ":"user","sub":"u1","name":"a","jti":"j","iat":)",
                   iat, R"(,"exp":)", exp, ".5}"),
      absl::StrCat(R"({"typ":"user","sub":"u1","name":"a","jti":"j","iat":)",
                   iat, R"(,"exp":true})"),
      absl::StrCat(R"({"typ":"user","sub":"u1","name":"a","jti":["j"],"iat":)",
                   iat, R"(,"exp":)", exp, "}"),
  };
  for (const std::string& grants : bad) {
    const std::string token = MakeJwt(JWT_ALG_HS256, kKey, grants);
    EXPECT_EQ(RefusalReason(signer_.Verify(token)), "TOKEN_MALFORMED")
        << grants;
  }
}

using parley::testing::TempDir;
using parley::testing::WriteFile;

TEST(LoadOrCreateKeyTest, CreatesAPrivateKeyFileAndReusesIt) {
  TempDir dir;
  absl::StatusOr<std::string> first = LoadOrCreateKey("", dir.path());
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->size(), 32u);
  EXPECT_NE(*first, std::string(32, '\0'));

  const std::string path = dir.path() + "/token.key";
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_size, 32);
  // Nothing else (no temporary file) is left behind.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()),
                          std::filesystem::directory_iterator()),
            1);

  absl::StatusOr<std::string> second = LoadOrCreateKey("", dir.path());
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(*second, *first);

  TempDir other;
  absl::StatusOr<std::string> fresh = LoadOrCreateKey("", other.path());
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_NE(*fresh, *first);
}

TEST(LoadOrCreateKeyTest, ConcurrentFirstStartsAgreeOnOneKey) {
  TempDir dir;
  constexpr int kThreads = 4;
  std::vector<absl::StatusOr<std::string>> keys(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back(
        [&keys, &dir, i] { keys[i] = LoadOrCreateKey("", dir.path()); });
  }
  for (std::thread& t : threads) t.join();
  for (const absl::StatusOr<std::string>& key : keys) {
    ASSERT_TRUE(key.ok()) << key.status();
    EXPECT_EQ(*key, *keys[0]);
  }
}

TEST(LoadOrCreateKeyTest, TooShortKeyFileInDataDirIsRejected) {
  TempDir dir;
  WriteFile(dir.path() + "/token.key", std::string(31, 'k'));
  absl::StatusOr<std::string> key = LoadOrCreateKey("", dir.path());
  EXPECT_EQ(key.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(key.status().message().find("31 bytes"), std::string::npos)
      << key.status();
}

TEST(LoadOrCreateKeyTest, GivenKeyFileIsReadAsIs) {
  TempDir dir;
  const std::string path = dir.path() + "/my.key";
  const std::string contents(40, 'z');
  WriteFile(path, contents);
  absl::StatusOr<std::string> key = LoadOrCreateKey(path, dir.path());
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(*key, contents);
  // No key is created in the data directory when a key file is given.
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/token.key"));
}

TEST(LoadOrCreateKeyTest, GivenKeyFileMustExistAndBeLongEnough) {
  TempDir dir;
  const std::string missing = dir.path() + "/missing.key";
  absl::StatusOr<std::string> key = LoadOrCreateKey(missing, dir.path());
  EXPECT_EQ(key.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(key.status().message().find(missing), std::string::npos)
      << key.status();
  EXPECT_FALSE(std::filesystem::exists(missing));

  const std::string short_key = dir.path() + "/short.key";
  WriteFile(short_key, std::string(31, 'k'));
  key = LoadOrCreateKey(short_key, dir.path());
  EXPECT_EQ(key.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(key.status().message().find("31 bytes"), std::string::npos)
      << key.status();
}

TEST(LoadOrCreateKeyTest, MissingDataDirIsAnError) {
  TempDir dir;
  absl::StatusOr<std::string> key =
      LoadOrCreateKey("", dir.path() + "/does/not/exist");
  EXPECT_FALSE(key.ok());
}

}  // namespace
}  // namespace parley::auth
