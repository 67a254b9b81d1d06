#include "server/store/memory_only.h"

#include "server/common/errors.h"

namespace parley::store {
namespace {

thread_local MemoryOnlyScope* current = nullptr;

}  // namespace

MemoryOnlyScope::MemoryOnlyScope() : outer_(current) { current = this; }

MemoryOnlyScope::~MemoryOnlyScope() {
  current = outer_;
  if (missed_ && outer_ != nullptr) outer_->missed_ = true;
}

absl::Status MemoryOnlyScope::Refuse() {
  if (current == nullptr) return absl::OkStatus();
  current->missed_ = true;
  return WithReason(
      absl::UnavailableError("the read needs the database; not on this thread"),
      "NOT_IN_MEMORY");
}

}  // namespace parley::store
