// Secret files created once by whichever process comes first
// (server/auth/secret_file.h): the edge secret of --edge_secret_file.
#include "server/auth/secret_file.h"

#include <sys/stat.h>

#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/barrier.h"
#include "gtest/gtest.h"
#include "tests/server/common/temp_dir.h"

namespace parley::auth {
namespace {

using parley::testing::TempDir;
using parley::testing::WriteFile;

// What `path` holds now.
std::string Contents(const std::string& path) {
  int err = 0;
  std::optional<std::string> contents = ReadWholeFile(path, &err);
  EXPECT_TRUE(contents.has_value()) << path << ": errno " << err;
  return contents.value_or("");
}

// How many entries `dir` has (no temporary file may be left behind).
size_t Entries(const std::string& dir) {
  return static_cast<size_t>(
      std::distance(std::filesystem::directory_iterator(dir),
                    std::filesystem::directory_iterator()));
}

TEST(LoadOrCreateSecretTest, CreatesAPrivateSecretOnceAndReusesIt) {
  TempDir dir;
  const std::string path = dir.path() + "/edge.secret";
  absl::StatusOr<std::string> first = LoadOrCreateSecret(path);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->size(), 64u);
  EXPECT_EQ(first->find_first_not_of("0123456789abcdef"), std::string::npos)
      << *first;
  EXPECT_EQ(Contents(path), *first + "\n");
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(Entries(dir.path()), 1u);

  absl::StatusOr<std::string> again = LoadOrCreateSecret(path);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *first);
  EXPECT_EQ(Contents(path), *first + "\n");

  // Another file, another secret.
  absl::StatusOr<std::string> other =
      LoadOrCreateSecret(dir.path() + "/other.secret");
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_NE(*other, *first);
}

TEST(LoadOrCreateSecretTest, AGivenSecretIsReadWithoutSurroundingWhiteSpace) {
  TempDir dir;
  const std::string path = dir.path() + "/edge.secret";
  WriteFile(path, "  \tgiven secret value\r\n\n");
  absl::StatusOr<std::string> secret = LoadOrCreateSecret(path);
  ASSERT_TRUE(secret.ok()) << secret.status();
  EXPECT_EQ(*secret, "given secret value");
  EXPECT_EQ(Contents(path), "  \tgiven secret value\r\n\n");  // left alone
}

TEST(LoadOrCreateSecretTest, AnEmptyFileIsAnErrorAndIsLeftAlone) {
  TempDir dir;
  const std::string path = dir.path() + "/edge.secret";
  for (const std::string empty : {"", " \n\t\n"}) {
    WriteFile(path, empty);
    absl::StatusOr<std::string> secret = LoadOrCreateSecret(path);
    EXPECT_EQ(secret.status().code(), absl::StatusCode::kFailedPrecondition)
        << secret.status();
    EXPECT_NE(secret.status().message().find(path + " holds no secret"),
              std::string::npos)
        << secret.status();
    EXPECT_EQ(Contents(path), empty);
  }
}

TEST(LoadOrCreateSecretTest, ASecretThatCannotBeMetadataIsAnError) {
  TempDir dir;
  const std::string path = dir.path() + "/edge.secret";
  WriteFile(path, "bad\x01secret");
  absl::StatusOr<std::string> secret = LoadOrCreateSecret(path);
  EXPECT_EQ(secret.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(secret.status().message().find("printable ASCII"),
            std::string::npos)
      << secret.status();
}

TEST(LoadOrCreateSecretTest, AMissingDirectoryIsAnErrorNamingIt) {
  TempDir dir;
  const std::string missing = dir.path() + "/no/such/dir";
  absl::StatusOr<std::string> secret =
      LoadOrCreateSecret(missing + "/edge.secret");
  EXPECT_EQ(secret.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(secret.status().message().find(missing), std::string::npos)
      << secret.status();
}

// Servers starting together on one new volume: all released at once, each
// creating the file, and all end up with the one secret that was linked
// first.
TEST(LoadOrCreateSecretTest, ServersStartingTogetherAgreeOnOneSecret) {
  TempDir dir;
  const std::string path = dir.path() + "/edge.secret";
  constexpr int kServers = 8;
  absl::Barrier* start = new absl::Barrier(kServers);
  std::vector<absl::StatusOr<std::string>> secrets(kServers);
  std::vector<std::thread> servers;
  for (int i = 0; i < kServers; ++i) {
    servers.emplace_back([&, i] {
      if (start->Block()) delete start;
      secrets[i] = LoadOrCreateSecret(path);
    });
  }
  for (std::thread& t : servers) t.join();
  for (const absl::StatusOr<std::string>& secret : secrets) {
    ASSERT_TRUE(secret.ok()) << secret.status();
    EXPECT_EQ(*secret, *secrets[0]);
  }
  EXPECT_EQ(Contents(path), *secrets[0] + "\n");
  EXPECT_EQ(Entries(dir.path()), 1u);
}

// The race decided: a process whose link finds the name taken returns the
// winner's contents and leaves them (and nothing of its own) in place.
TEST(CreateFileOnceTest, TheLoserOfTheRaceGetsTheWinnersContents) {
  TempDir dir;
  const std::string path = dir.path() + "/edge.secret";
  absl::StatusOr<std::string> won = CreateFileOnce(path, "first\n", "it");
  ASSERT_TRUE(won.ok()) << won.status();
  EXPECT_EQ(*won, "first\n");
  absl::StatusOr<std::string> lost = CreateFileOnce(path, "second\n", "it");
  ASSERT_TRUE(lost.ok()) << lost.status();
  EXPECT_EQ(*lost, "first\n");
  EXPECT_EQ(Contents(path), "first\n");
  EXPECT_EQ(Entries(dir.path()), 1u);
}

TEST(EdgeSecretFromFlagsTest, OneOfTheFlagsOrNeither) {
  TempDir dir;
  const std::string path = dir.path() + "/edge.secret";
  absl::StatusOr<std::string> both = EdgeSecretFromFlags("s3cret", path);
  EXPECT_EQ(both.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(both.status().message(),
            "give --edge_secret or --edge_secret_file, not both");
  EXPECT_FALSE(std::filesystem::exists(path));

  absl::StatusOr<std::string> neither = EdgeSecretFromFlags("", "");
  ASSERT_TRUE(neither.ok()) << neither.status();
  EXPECT_EQ(*neither, "");
  absl::StatusOr<std::string> flag = EdgeSecretFromFlags("s3cret", "");
  ASSERT_TRUE(flag.ok()) << flag.status();
  EXPECT_EQ(*flag, "s3cret");

  absl::StatusOr<std::string> file = EdgeSecretFromFlags("", path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(*file, *LoadOrCreateSecret(path));

  WriteFile(path, "\n");
  absl::StatusOr<std::string> empty = EdgeSecretFromFlags("", path);
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(empty.status().message().rfind("--edge_secret_file: ", 0), 0u)
      << empty.status();
}

}  // namespace
}  // namespace parley::auth
