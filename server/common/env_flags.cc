#include "server/common/env_flags.h"

#include <cstdlib>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace parley {

std::string EnvNameForFlag(const std::string& name) {
  return absl::StrCat("PARLEY_", absl::AsciiStrToUpper(name));
}

absl::Status ApplyEnvironmentToFlags(absl::Span<const std::string> names) {
  for (const std::string& name : names) {
    const std::string env = EnvNameForFlag(name);
    const char* value = std::getenv(env.c_str());
    if (value == nullptr) continue;
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr) {
      return absl::InternalError(absl::StrCat("no flag named ", name));
    }
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      return absl::InvalidArgumentError(
          absl::StrCat(env, "=", value, ": ", error));
    }
  }
  return absl::OkStatus();
}

}  // namespace parley
