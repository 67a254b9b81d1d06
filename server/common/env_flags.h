// Lets every flag take its default from the environment: flag `grpc_addr`
// reads PARLEY_GRPC_ADDR. The command line still wins over the environment.
#ifndef PARLEY_SERVER_COMMON_ENV_FLAGS_H_
#define PARLEY_SERVER_COMMON_ENV_FLAGS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace parley {

// The environment variable that backs flag `name`: PARLEY_ + upper case.
std::string EnvNameForFlag(const std::string& name);

// For each flag in `names` whose environment variable is set, parses the
// variable's value into the flag. Call before absl::ParseCommandLine. Fails
// with InvalidArgument naming the variable when a value does not parse.
absl::Status ApplyEnvironmentToFlags(absl::Span<const std::string> names);

}  // namespace parley

#endif  // PARLEY_SERVER_COMMON_ENV_FLAGS_H_
