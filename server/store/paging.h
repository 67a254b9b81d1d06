// How every store reads a Page (types.h) of a log's messages, so that they
// agree on its edges: the range of sequence numbers it lists, and the
// numbers `has_older` and `has_newer` compare with. Numbers are signed
// 64-bit, as SQL keeps them: beyond INT64_MAX means "no bound".
#ifndef PARLEY_SERVER_STORE_PAGING_H_
#define PARLEY_SERVER_STORE_PAGING_H_

#include <cstdint>
#include <vector>

#include "server/model/event.h"
#include "server/store/types.h"

namespace parley::store {

// Messages strictly between `after` and `before`: the first `limit` after
// `after` when `ascending`, else the last `limit` before `before` (listed
// oldest first all the same).
struct PageRange {
  bool ascending = false;
  int64_t after = 0;
  int64_t before = 0;
};
PageRange RangeOf(const Page& page);

// The page has older messages when the log has a message below
// `older_than`, newer ones when it has one above `newer_than`: around what
// was `listed` (oldest first), or, when nothing was, around the range.
struct PageEdges {
  int64_t older_than = 0;
  int64_t newer_than = 0;
};
PageEdges EdgesOf(const PageRange& range,
                  const std::vector<model::EventPtr>& listed);

// `n` as a signed 64-bit number, INT64_MAX when it is larger.
int64_t ClampToInt64(uint64_t n);

}  // namespace parley::store

#endif  // PARLEY_SERVER_STORE_PAGING_H_
