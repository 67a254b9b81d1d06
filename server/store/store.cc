#include "server/store/store.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace parley::store {

std::string InboxLog(absl::string_view user_id) {
  return absl::StrCat("dm:", user_id);
}

}  // namespace parley::store
