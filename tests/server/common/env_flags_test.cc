#include "server/common/env_flags.h"

#include <cstdlib>
#include <string>

#include "absl/flags/flag.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

ABSL_FLAG(std::string, env_test_addr, "default", "for the test");
ABSL_FLAG(absl::Duration, env_test_timeout, absl::Seconds(1), "for the test");
ABSL_FLAG(int64_t, env_test_limit, 7, "for the test");

namespace parley {
namespace {

TEST(EnvFlagsTest, NamesTheVariableAfterTheFlag) {
  EXPECT_EQ(EnvNameForFlag("grpc_addr"), "PARLEY_GRPC_ADDR");
}

TEST(EnvFlagsTest, SetVariablesBecomeFlagValues) {
  setenv("PARLEY_ENV_TEST_ADDR", "0.0.0.0:1", 1);
  setenv("PARLEY_ENV_TEST_TIMEOUT", "90s", 1);
  unsetenv("PARLEY_ENV_TEST_LIMIT");
  ASSERT_TRUE(ApplyEnvironmentToFlags("common/env_flags_test.cc").ok());
  EXPECT_EQ(absl::GetFlag(FLAGS_env_test_addr), "0.0.0.0:1");
  EXPECT_EQ(absl::GetFlag(FLAGS_env_test_timeout), absl::Seconds(90));
  EXPECT_EQ(absl::GetFlag(FLAGS_env_test_limit), 7);  // unset: default kept
}

TEST(EnvFlagsTest, FlagsDefinedElsewhereIgnoreTheEnvironment) {
  setenv("PARLEY_ENV_TEST_ADDR", "elsewhere:2", 1);
  ASSERT_TRUE(ApplyEnvironmentToFlags("server/main.cc").ok());
  EXPECT_NE(absl::GetFlag(FLAGS_env_test_addr), "elsewhere:2");
  unsetenv("PARLEY_ENV_TEST_ADDR");
}

TEST(EnvFlagsTest, AValueThatDoesNotParseIsAnErrorNamingTheVariable) {
  setenv("PARLEY_ENV_TEST_LIMIT", "lots", 1);
  absl::Status s = ApplyEnvironmentToFlags("common/env_flags_test.cc");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("PARLEY_ENV_TEST_LIMIT"), absl::string_view::npos);
  unsetenv("PARLEY_ENV_TEST_LIMIT");
}

}  // namespace
}  // namespace parley
