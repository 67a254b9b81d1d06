// What every fuzz target shares: FUZZ_CHECK, an assertion that aborts (a
// crash libFuzzer records, with the input that made it) whatever NDEBUG says.
#ifndef PARLEY_TESTS_FUZZ_FUZZ_CHECK_H_
#define PARLEY_TESTS_FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                   \
  do {                                                                     \
    if (!(cond)) {                                                         \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__,     \
                   __LINE__, #cond);                                       \
      std::abort();                                                        \
    }                                                                      \
  } while (0)

#endif  // PARLEY_TESTS_FUZZ_FUZZ_CHECK_H_
