#include "server/chat/validate.h"

#include <string>

#include "gtest/gtest.h"
#include "server/common/errors.h"

namespace parley::chat {
namespace {

void ExpectInvalid(const absl::Status& s, const std::string& reason,
                   const std::string& field) {
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_EQ(ErrorReason(s), reason) << s;
  EXPECT_EQ(ErrorField(s), field) << s;
}

TEST(ValidateTest, ClientIdRules) {
  EXPECT_TRUE(ValidateClientId("alice", 128).ok());
  ExpectInvalid(ValidateClientId("", 128), "ID_REQUIRED", "id");
  ExpectInvalid(ValidateClientId(std::string(129, 'a'), 128), "ID_TOO_LONG",
                "id");
  ExpectInvalid(ValidateClientId("a\nb", 128), "INVALID_ID", "id");
}

TEST(ValidateTest, MessageTextRules) {
  EXPECT_TRUE(ValidateMessageText("hi", 4096).ok());
  EXPECT_TRUE(ValidateMessageText(std::string(4096, 'x'), 4096).ok());
  ExpectInvalid(ValidateMessageText("", 4096), "MESSAGE_REQUIRED", "message");
  ExpectInvalid(ValidateMessageText(" \t\n", 4096), "MESSAGE_REQUIRED",
                "message");
  ExpectInvalid(ValidateMessageText(std::string(4097, 'x'), 4096),
                "MESSAGE_TOO_LONG", "message");
}

}  // namespace
}  // namespace parley::chat
