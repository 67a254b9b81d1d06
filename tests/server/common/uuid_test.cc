#include "server/common/uuid.h"

#include <set>
#include <string>

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace parley {
namespace {

bool WellFormed(const std::string& id) {
  if (id.size() != 36) return false;
  for (size_t i = 0; i < id.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash != (id[i] == '-')) return false;
    if (!dash && !((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f'))) {
      return false;
    }
  }
  return true;
}

TEST(UuidTest, RandomUuidsAreVersionFour) {
  const std::string id = NewUuid();
  EXPECT_TRUE(WellFormed(id)) << id;
  EXPECT_EQ(id[14], '4');
  EXPECT_NE(std::string("89ab").find(id[19]), std::string::npos) << id;
}

// Across many refills of the per-thread random buffer: every id is
// distinct and keeps its version and variant.
TEST(UuidTest, ManyRandomUuidsAreDistinctVersionFour) {
  std::set<std::string> seen;
  for (int i = 0; i < 10000; ++i) {
    const std::string id = NewUuid();
    ASSERT_TRUE(WellFormed(id)) << id;
    ASSERT_EQ(id[14], '4') << id;
    ASSERT_NE(std::string("89ab").find(id[19]), std::string::npos) << id;
    ASSERT_TRUE(seen.insert(id).second) << id;
  }
}

TEST(UuidTest, TimeOrderedUuidsCarryTheirMillisecondAndSortByIt) {
  const absl::Time t = absl::FromUnixMillis(1763700000123);  // 0x019aa4b6457b
  const std::string id = NewTimeOrderedUuid(t);
  EXPECT_TRUE(WellFormed(id)) << id;
  EXPECT_EQ(id.substr(0, 13), "019aa4b6-457b") << id;
  EXPECT_EQ(id[14], '7');
  EXPECT_NE(std::string("89ab").find(id[19]), std::string::npos) << id;

  std::set<std::string> seen;
  std::string previous;
  for (int ms = 0; ms < 1000; ++ms) {
    const std::string next = NewTimeOrderedUuid(t + absl::Milliseconds(ms));
    EXPECT_TRUE(seen.insert(next).second);
    EXPECT_LT(previous, next) << "at " << ms << " ms";
    previous = next;
  }
  // Many in one millisecond are still distinct.
  for (int i = 0; i < 1000; ++i) {
    EXPECT_TRUE(seen.insert(NewTimeOrderedUuid(t)).second);
  }
}

}  // namespace
}  // namespace parley
