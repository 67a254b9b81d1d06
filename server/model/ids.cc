#include "server/model/ids.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace parley::model {

std::string InboxLog(absl::string_view user_id) {
  return absl::StrCat("dm:", user_id);
}

}  // namespace parley::model
