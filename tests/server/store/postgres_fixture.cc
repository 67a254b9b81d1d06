#include "tests/server/store/postgres_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <memory>
#include <mutex>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "server/store/postgres_connection.h"

#ifndef PARLEY_SOURCE_DIR
#error "PARLEY_SOURCE_DIR must name the source tree (for the script)"
#endif

namespace parley::store::testing {
namespace {

std::mutex server_mu;
PostgresServer* server = nullptr;  // under server_mu

const char* const kScript = PARLEY_SOURCE_DIR "/scripts/test-postgres.sh";

// Runs `command`, returning its stdout; false when it fails.
bool Run(const std::string& command, std::string* out) {
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return false;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
    out->append(buffer, n);
  }
  return pclose(pipe) == 0;
}

// Stops the server after the last test of the binary.
class Environment : public ::testing::Environment {
 public:
  void TearDown() override { PostgresServer::StopIfStarted(); }
};
::testing::Environment* const environment =
    ::testing::AddGlobalTestEnvironment(new Environment);

}  // namespace

PostgresServer& PostgresServer::Get() {
  std::lock_guard<std::mutex> lock(server_mu);
  if (server == nullptr) {
    auto started = std::unique_ptr<PostgresServer>(new PostgresServer());
    if (!started->Start()) {
      ADD_FAILURE() << "cannot start PostgreSQL with " << kScript;
      abort();
    }
    server = started.release();
  }
  return *server;
}

void PostgresServer::StopIfStarted() {
  std::lock_guard<std::mutex> lock(server_mu);
  if (server == nullptr) return;
  std::string out;
  Run(absl::StrCat(kScript, " stop ", server->dir_, " 2>&1"), &out);
  delete server;
  server = nullptr;
}

bool PostgresServer::Start() {
  // A fresh path the script creates (as root it hands the directory to the
  // postgres user, which must reach it): under /tmp, not yet existing.
  char dir[] = "/tmp/parley-pg-XXXXXX";
  if (mkdtemp(dir) == nullptr) return false;
  rmdir(dir);
  dir_ = dir;
  std::string out;
  if (!Run(absl::StrCat(kScript, " start ", dir_), &out)) return false;
  admin_dsn_ = std::string(absl::StripAsciiWhitespace(out));
  return !admin_dsn_.empty();
}

std::string PostgresServer::NewDatabase() {
  int n;
  {
    std::lock_guard<std::mutex> lock(server_mu);
    n = ++databases_;
  }
  const std::string name = absl::StrCat("test_", n);
  absl::StatusOr<std::unique_ptr<pg_internal::Connection>> admin =
      pg_internal::Connection::Open({admin_dsn_, absl::Seconds(10)});
  EXPECT_TRUE(admin.ok()) << admin.status();
  if (!admin.ok()) return "";
  pg_internal::Result created =
      (*admin)->Script(absl::StrCat("CREATE DATABASE ", name));
  EXPECT_TRUE(created.ok()) << created.status();
  return absl::StrReplaceAll(admin_dsn_,
                             {{"dbname=parley", absl::StrCat("dbname=", name)}});
}

void PostgresServer::Control(absl::string_view command) {
  std::string out;
  ASSERT_TRUE(Run(absl::StrCat(kScript, " ", command, " ", dir_, " 2>&1"),
                  &out))
      << command << ": " << out;
}

}  // namespace parley::store::testing
