#include "server/auth/password.h"

#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace parley::auth {
namespace {

class PasswordTest : public ::testing::Test {
 protected:
  PasswordHasher hasher_{MinimalPasswordCost()};
};

TEST_F(PasswordTest, HashThenVerifyRoundTrips) {
  absl::StatusOr<std::string> hash = hasher_.Hash("correct horse");
  ASSERT_TRUE(hash.ok()) << hash.status();
  EXPECT_TRUE(hasher_.Verify(*hash, "correct horse"));
}

TEST_F(PasswordTest, WrongPasswordIsRefused) {
  absl::StatusOr<std::string> hash = hasher_.Hash("correct horse");
  ASSERT_TRUE(hash.ok()) << hash.status();
  EXPECT_FALSE(hasher_.Verify(*hash, "correct horsE"));
  EXPECT_FALSE(hasher_.Verify(*hash, ""));
  EXPECT_FALSE(hasher_.Verify(*hash, "correct horse "));
}

TEST_F(PasswordTest, EmptyPasswordHashesAndVerifies) {
  absl::StatusOr<std::string> hash = hasher_.Hash("");
  ASSERT_TRUE(hash.ok()) << hash.status();
  EXPECT_TRUE(hasher_.Verify(*hash, ""));
  EXPECT_FALSE(hasher_.Verify(*hash, "x"));
}

TEST_F(PasswordTest, MalformedHashIsRefused) {
  absl::StatusOr<std::string> hash = hasher_.Hash("pw");
  ASSERT_TRUE(hash.ok()) << hash.status();
  EXPECT_FALSE(hasher_.Verify("", "pw"));
  EXPECT_FALSE(hasher_.Verify("pw", "pw"));  // a plaintext "hash"
  EXPECT_FALSE(hasher_.Verify("$argon2id$garbage", "pw"));
  EXPECT_FALSE(hasher_.Verify(hash->substr(0, hash->size() - 5), "pw"));
  EXPECT_FALSE(hasher_.Verify(std::string(*hash).append(1, '\0'), "pw"));
  EXPECT_FALSE(hasher_.Verify(std::string(4096, '$'), "pw"));
}

TEST_F(PasswordTest, HashIsArgon2idEncodedAndNotThePlaintext) {
  absl::StatusOr<std::string> hash = hasher_.Hash("s3cret-password");
  ASSERT_TRUE(hash.ok()) << hash.status();
  EXPECT_TRUE(absl::StartsWith(*hash, "$argon2id$")) << *hash;
  EXPECT_FALSE(absl::StrContains(*hash, "s3cret-password"));
}

TEST_F(PasswordTest, HashCarriesTheConfiguredCost) {
  PasswordOptions options = MinimalPasswordCost();
  options.ops_limit = 3;
  absl::StatusOr<std::string> hash = PasswordHasher(options).Hash("pw");
  ASSERT_TRUE(hash.ok()) << hash.status();
  EXPECT_TRUE(absl::StrContains(*hash, ",t=3,")) << *hash;
  // Verification reads the cost from the hash, not from the options.
  EXPECT_TRUE(hasher_.Verify(*hash, "pw"));
}

TEST_F(PasswordTest, TwoHashesOfOnePasswordDiffer) {
  absl::StatusOr<std::string> a = hasher_.Hash("same");
  absl::StatusOr<std::string> b = hasher_.Hash("same");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);  // a fresh salt each time
  EXPECT_TRUE(hasher_.Verify(*a, "same"));
  EXPECT_TRUE(hasher_.Verify(*b, "same"));
}

}  // namespace
}  // namespace parley::auth
