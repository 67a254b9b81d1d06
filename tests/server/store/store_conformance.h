// The store conformance suite: every behaviour store.h promises, written
// once (store_conformance.cc) as a value-parameterized test over a factory
// of stores, so that every implementation passes the same tests.
//
// An implementation's test file links the suite (the parley_store_conformance
// object library, see tests/server/CMakeLists.txt) and instantiates it with
// a factory of fresh, empty stores:
//
//   INSTANTIATE_TEST_SUITE_P(
//       Memory, StoreConformanceTest,
//       ::testing::Values(StoreFactory{
//           "Memory", [] { return std::make_unique<MemoryStore>(); }}),
//       StoreFactoryName);
//
// Each test opens its own store and destroys it at the end (the destructor
// must close it and remove whatever it created).
#ifndef PARLEY_TESTS_SERVER_STORE_STORE_CONFORMANCE_H_
#define PARLEY_TESTS_SERVER_STORE_STORE_CONFORMANCE_H_

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/store/store.h"
#include "tests/server/store/store_test_util.h"

namespace parley::store {

struct StoreFactory {
  std::string name;  // letters and digits only: it names the tests
  std::function<std::unique_ptr<Store>()> open;
};

// Names a test by its factory's name.
std::string StoreFactoryName(
    const ::testing::TestParamInfo<StoreFactory>& info);
void PrintTo(const StoreFactory& factory, std::ostream* out);

class StoreConformanceTest : public ::testing::TestWithParam<StoreFactory> {
 protected:
  void SetUp() override;
  void TearDown() override;

  absl::StatusOr<int64_t> Do(Write write);
  void MustDo(Write write);
  absl::StatusOr<int64_t> Append(std::shared_ptr<model::Event> event);
  void MustAppend(std::shared_ptr<model::Event> event);
  std::vector<model::EventPtr> ReadAll(absl::string_view log);
  PageResult List(absl::string_view log, Page page);

  std::unique_ptr<Store> store_;
};

}  // namespace parley::store

#endif  // PARLEY_TESTS_SERVER_STORE_STORE_CONFORMANCE_H_
