// A test's wait for one asynchronous answer: Callback() is handed to the
// call, Get() blocks until it ran and returns what it was given. T is a
// Status or a StatusOr.
#ifndef PARLEY_TESTS_SERVER_COMMON_ANSWER_H_
#define PARLEY_TESTS_SERVER_COMMON_ANSWER_H_

#include <utility>

#include "absl/status/status.h"
#include "server/common/mutex.h"

namespace parley {

template <class T>
class Answer {
 public:
  auto Callback() {
    return [this](T value) {
      MutexLock lock(&mu_);
      value_ = std::move(value);
      done_ = true;
      cv_.SignalAll();
    };
  }
  T Get() {
    MutexLock lock(&mu_);
    while (!done_) cv_.Wait();
    return std::move(value_);
  }

 private:
  Mutex mu_;
  CondVar cv_{&mu_};
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  T value_ ABSL_GUARDED_BY(mu_) = T(absl::UnknownError("unset"));
};

}  // namespace parley

#endif  // PARLEY_TESTS_SERVER_COMMON_ANSWER_H_
