// A fresh directory for a test's files, and a file written into it.
#ifndef PARLEY_TESTS_SERVER_COMMON_TEMP_DIR_H_
#define PARLEY_TESTS_SERVER_COMMON_TEMP_DIR_H_

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace parley::testing {

// A fresh directory under the test's temporary directory, removed with
// everything in it when this goes.
class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "/parley_test.XXXXXX";
    if (::mkdtemp(pattern.data()) != nullptr) path_ = pattern;
    EXPECT_FALSE(path_.empty());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Writes `contents` to `path`, replacing what was there.
inline void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
  ASSERT_TRUE(out.good());
}

}  // namespace parley::testing

#endif  // PARLEY_TESTS_SERVER_COMMON_TEMP_DIR_H_
