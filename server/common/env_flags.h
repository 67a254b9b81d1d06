// Lets flags take their defaults from the environment: flag `grpc_addr`
// reads PARLEY_GRPC_ADDR. The command line still wins over the environment.
#ifndef PARLEY_SERVER_COMMON_ENV_FLAGS_H_
#define PARLEY_SERVER_COMMON_ENV_FLAGS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace parley {

// The environment variable that backs flag `name`: PARLEY_ + upper case.
std::string EnvNameForFlag(absl::string_view name);

// For every flag defined in a source file whose path ends with
// `defined_in` (e.g. "server/main.cc") and whose environment variable is
// set, parses the variable's value into the flag. Deriving the set from where
// the flags are defined means a new flag cannot be forgotten. Call before
// absl::ParseCommandLine. Fails with InvalidArgument naming the variable
// when a value does not parse.
absl::Status ApplyEnvironmentToFlags(absl::string_view defined_in);

}  // namespace parley

#endif  // PARLEY_SERVER_COMMON_ENV_FLAGS_H_
