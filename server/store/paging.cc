#include "server/store/paging.h"

#include <algorithm>
#include <limits>

namespace parley::store {

int64_t ClampToInt64(uint64_t n) {
  return static_cast<int64_t>(
      std::min<uint64_t>(n, std::numeric_limits<int64_t>::max()));
}

PageRange RangeOf(const Page& page) {
  constexpr int64_t kForever = std::numeric_limits<int64_t>::max();
  PageRange range;
  range.ascending = page.after != 0 || page.oldest_first;
  range.after = std::min(ClampToInt64(page.after), kForever - 1);
  range.before = page.before == 0 ? kForever : ClampToInt64(page.before);
  return range;
}

PageEdges EdgesOf(const PageRange& range,
                  const std::vector<model::EventPtr>& listed) {
  // Older: any message before the first listed (or, when none was, at or
  // before `after` / before `before`). Newer: any after the last listed (or
  // after `after` / at or after `before`).
  PageEdges edges;
  if (!listed.empty()) {
    edges.older_than = ClampToInt64(listed.front()->sequence);
    edges.newer_than = ClampToInt64(listed.back()->sequence);
  } else if (range.ascending) {
    edges.older_than = range.after + 1;
    edges.newer_than = range.after;
  } else {
    edges.older_than = range.before;
    edges.newer_than = range.before - 1;
  }
  return edges;
}

}  // namespace parley::store
