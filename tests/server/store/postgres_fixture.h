// A throwaway PostgreSQL server for one test binary, run by
// scripts/test-postgres.sh: started at the first use, stopped (and its
// directory removed) when the tests end. Each test takes a database of its
// own from NewDatabase, so tests are independent. Thread-safe.
#ifndef PARLEY_TESTS_SERVER_STORE_POSTGRES_FIXTURE_H_
#define PARLEY_TESTS_SERVER_STORE_POSTGRES_FIXTURE_H_

#include <string>

#include "absl/strings/string_view.h"

namespace parley::store::testing {

class PostgresServer {
 public:
  // The binary's server, started on first use (a test fails at once when
  // it cannot start).
  static PostgresServer& Get();

  // The DSN of a new, empty database (no password: the server trusts
  // loopback).
  std::string NewDatabase();
  // scripts/test-postgres.sh `command` on this server: restart, pause,
  // resume or kill. Fails the test when the script does.
  void Control(absl::string_view command);
  // The DSN of its `parley` database, for administration.
  const std::string& admin_dsn() const { return admin_dsn_; }

  // Stops the server; for the test environment's teardown.
  static void StopIfStarted();

 private:
  PostgresServer() = default;
  bool Start();

  std::string dir_;
  std::string admin_dsn_;
  int databases_ = 0;
};

}  // namespace parley::store::testing

#endif  // PARLEY_TESTS_SERVER_STORE_POSTGRES_FIXTURE_H_
