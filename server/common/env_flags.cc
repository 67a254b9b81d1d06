#include "server/common/env_flags.h"

#include <cstdlib>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace parley {

std::string EnvNameForFlag(absl::string_view name) {
  return absl::StrCat("PARLEY_", absl::AsciiStrToUpper(name));
}

absl::Status ApplyEnvironmentToFlags(absl::string_view defined_in) {
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (!absl::EndsWith(flag->Filename(), defined_in)) continue;
    const std::string env = EnvNameForFlag(name);
    const char* value = std::getenv(env.c_str());
    if (value == nullptr) continue;
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      return absl::InvalidArgumentError(
          absl::StrCat(env, "=", value, ": ", error));
    }
  }
  return absl::OkStatus();
}

}  // namespace parley
