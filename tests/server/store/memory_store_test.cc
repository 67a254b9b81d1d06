// MemoryStore: the conformance suite (store_conformance.cc).
#include "server/store/memory_store.h"

#include <memory>

#include "gtest/gtest.h"
#include "tests/server/store/store_conformance.h"

namespace parley::store {
namespace {

INSTANTIATE_TEST_SUITE_P(Memory, StoreConformanceTest,
                         ::testing::Values(StoreFactory{
                             "Memory",
                             [] { return std::make_unique<MemoryStore>(); }}),
                         StoreFactoryName);

}  // namespace
}  // namespace parley::store
