#include "server/chat/validate.h"

#include <string>

#include "gtest/gtest.h"
#include "server/common/errors.h"

namespace parley::chat {
namespace {

TEST(Utf8Test, AcceptsWellFormedText) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("hello"));
  EXPECT_TRUE(IsValidUtf8("h\xC3\xA9llo"));           // é
  EXPECT_TRUE(IsValidUtf8("\xE2\x82\xAC"));           // €
  EXPECT_TRUE(IsValidUtf8("\xF0\x9F\x98\x80"));       // 😀
  EXPECT_TRUE(IsValidUtf8("\xF4\x8F\xBF\xBF"));       // U+10FFFF
}

TEST(Utf8Test, RejectsMalformedText) {
  EXPECT_FALSE(IsValidUtf8("\xFF"));
  EXPECT_FALSE(IsValidUtf8("\xC3"));                  // truncated
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));              // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xE0\x80\xAF"));          // overlong
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));          // surrogate
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));      // above U+10FFFF
  EXPECT_FALSE(IsValidUtf8("a\x80z"));                // stray continuation
}

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
  ExpectInvalid(ValidateClientId("a\xFF", 128), "INVALID_UTF8", "id");
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
  ExpectInvalid(ValidateMessageText("bad \xC3", 4096), "INVALID_UTF8",
                "message");
}

}  // namespace
}  // namespace parley::chat
