#include "server/model/ids.h"

#include "gtest/gtest.h"

namespace parley::model {
namespace {

TEST(InboxLogTest, IsTheUserIdAfterDm) { EXPECT_EQ(InboxLog("abc"), "dm:abc"); }

TEST(LobbyTest, HasAFixedIdAndName) {
  EXPECT_EQ(kLobbyId, "00000000-0000-4000-8000-000000000000");
  EXPECT_EQ(kLobbyName, "lobby");
}

}  // namespace
}  // namespace parley::model
