#include "server/common/log.h"

#include <cstdint>
#include <limits>
#include <string>

#include "gtest/gtest.h"

namespace parley::log {
namespace {

TEST(LogTest, ParsesLevelsAndFormats) {
  Level level = Level::kInfo;
  EXPECT_TRUE(ParseLevel("debug", &level));
  EXPECT_EQ(level, Level::kDebug);
  EXPECT_TRUE(ParseLevel("WARNING", &level));
  EXPECT_EQ(level, Level::kWarning);
  EXPECT_TRUE(ParseLevel("warn", &level));
  EXPECT_EQ(level, Level::kWarning);
  EXPECT_TRUE(ParseLevel("error", &level));
  EXPECT_EQ(level, Level::kError);
  EXPECT_FALSE(ParseLevel("verbose", &level));
  Format format = Format::kText;
  EXPECT_TRUE(ParseFormat("json", &format));
  EXPECT_EQ(format, Format::kJson);
  EXPECT_FALSE(ParseFormat("xml", &format));
}

TEST(LogTest, TextRecordsQuoteWhatWouldBeAmbiguous) {
  EXPECT_EQ(FormatRecord(Format::kText, "listening",
                         {{"addr", "127.0.0.1:1"},
                          {"port", 50051},
                          {"ok", true},
                          {"note", "two words"},
                          {"empty", ""},
                          {"q", "a\"b=c"}}),
            "listening addr=127.0.0.1:1 port=50051 ok=true "
            "note=\"two words\" empty=\"\" q=\"a\\\"b=c\"");
  EXPECT_EQ(FormatRecord(Format::kText, "line\nbreak", {}), "line\\nbreak");
}

TEST(LogTest, JsonRecordsAreEscapedAndTyped) {
  EXPECT_EQ(FormatRecord(Format::kJson, "say \"hi\"",
                         {{"n", int64_t{-3}},
                          {"took", absl::Milliseconds(1500)},
                          {"text", "tab\there\x01"},
                          {"nan", std::numeric_limits<double>::quiet_NaN()}}),
            R"("msg":"say \"hi\"","n":-3,"took":1.5,)"
            R"("text":"tab\there\u0001","nan":"NaN")");
}

TEST(LogTest, LevelsFilter) {
  Configure(Level::kWarning, Format::kText);
  EXPECT_FALSE(Enabled(Level::kDebug));
  EXPECT_FALSE(Enabled(Level::kInfo));
  EXPECT_TRUE(Enabled(Level::kWarning));
  EXPECT_TRUE(Enabled(Level::kError));
  Configure(Level::kDebug, Format::kJson);
  EXPECT_TRUE(Enabled(Level::kDebug));
  Configure(Level::kInfo, Format::kText);
}

}  // namespace
}  // namespace parley::log
