// A log-linear latency histogram in the manner of HdrHistogram: values below
// 64 have a bucket each, and every power of two above is split into 32 linear
// buckets, so a percentile is exact to within 1/32 (3%) of its value. Record
// is lock-free (relaxed atomics), so any callback thread may record.
#ifndef PARLEY_CLIENTS_LOADGEN_HISTOGRAM_H_
#define PARLEY_CLIENTS_LOADGEN_HISTOGRAM_H_

#include <atomic>
#include <cstdint>

namespace parley::loadgen {

class Histogram {
 public:
  static constexpr int kBuckets = 64 + 32 * 58;

  Histogram() {
    for (auto& c : counts_) c.store(0, std::memory_order_relaxed);
  }
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  // Records one value (negative values count as 0).
  void Record(int64_t value) {
    const uint64_t v = value < 0 ? 0 : static_cast<uint64_t>(value);
    counts_[Index(v)].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(v, std::memory_order_relaxed);
    uint64_t seen = max_.load(std::memory_order_relaxed);
    while (v > seen &&
           !max_.compare_exchange_weak(seen, v, std::memory_order_relaxed)) {
    }
  }

  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  uint64_t max() const { return max_.load(std::memory_order_relaxed); }
  double mean() const {
    const uint64_t n = count();
    return n == 0 ? 0.0
                  : static_cast<double>(sum_.load(std::memory_order_relaxed)) /
                        static_cast<double>(n);
  }

  // The smallest bucket bound below which at least `q` (0..1) of the values
  // fall; never above the largest value recorded. 0 when empty.
  uint64_t Percentile(double q) const {
    const uint64_t n = count();
    if (n == 0) return 0;
    uint64_t want = static_cast<uint64_t>(q * static_cast<double>(n) + 0.999999);
    if (want < 1) want = 1;
    if (want > n) want = n;
    uint64_t seen = 0;
    for (int i = 0; i < kBuckets; ++i) {
      seen += counts_[i].load(std::memory_order_relaxed);
      if (seen >= want) {
        const uint64_t upper = UpperBound(i);
        return upper < max() ? upper : max();
      }
    }
    return max();
  }

  static int Index(uint64_t v) {
    if (v < 64) return static_cast<int>(v);
    const int exponent = 63 - __builtin_clzll(v);  // >= 6
    const int shift = exponent - 5;
    return 32 * (exponent - 5) + static_cast<int>(v >> shift);
  }

  // The largest value that lands in bucket `index`.
  static uint64_t UpperBound(int index) {
    if (index < 64) return static_cast<uint64_t>(index);
    const int exponent = (index - 64) / 32 + 6;
    const int shift = exponent - 5;
    const uint64_t sub = static_cast<uint64_t>(index - 32 * (exponent - 5));
    return ((sub + 1) << shift) - 1;
  }

 private:
  std::atomic<uint64_t> counts_[kBuckets];
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_{0};
  std::atomic<uint64_t> max_{0};
};

}  // namespace parley::loadgen

#endif  // PARLEY_CLIENTS_LOADGEN_HISTOGRAM_H_
