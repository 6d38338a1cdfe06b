// The selection algorithm every top-k kernel shares.
//
// 1. Fill a candidate buffer (capacity C = max(2k, k + 1024)) with the first
//    non-NaN values and cut it to the best k with nth_element: the k-th best
//    becomes the threshold.
// 2. Scan the rest with the kernel's vectorised filter: only values strictly
//    above the threshold reach the buffer. A value equal to the threshold can
//    never enter, because everything already kept has a lower index. When the
//    buffer is full, cut it to k again; the threshold only rises.
// 3. Guard against frequent survivors (ascending input keeps beating the
//    running threshold, so every value would land in the buffer): when a buffer
//    fill admitted more than 1 in 4 of the values scanned, draw a stratified
//    sample (16 values per wanted result) of the unread values. Its k-th largest
//    value L is a lower bound of the true k-th best (there are k values >= L),
//    so values below L can be dropped: about 1 in 16 of the rest survives.
//    Sampling runs at most once per `sample size` values scanned, so it costs
//    at most a constant per value even when it does not help, and the
//    "1 in 4" test leaves random input alone: by then its running threshold
//    admits about 1 in 8 or fewer.
// 4. Cut to k, sort by (score desc, index asc).
//
// Candidates are 64-bit keys (topk_select.hpp) so every comparison in the cuts
// and the final sort is one integer compare.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <vector>

#include "topk_select.hpp"

namespace secondopinion::topk_detail {

namespace {

constexpr std::size_t kSlack = 1024;      // buffer room beyond k, amortises each cut
constexpr std::size_t kDenseRatio = 4;    // "frequent survivors": more than 1 in 4
constexpr std::size_t kSamplePerK = 16;   // sample 16 values per wanted result
constexpr std::size_t kMinSample = 1024;
constexpr std::size_t kSampleRun = 16;    // consecutive values per stratum: a cache line

// After every cut the filter needs room for one whole block of survivors.
static_assert(kSlack >= kMaxFilterBlock);

// Keeps the best k of buffer[0, count) in buffer[0, k); returns the k-th best score.
float cut_to_k(std::uint64_t* buffer, std::size_t* count, std::size_t k) {
  std::nth_element(buffer, buffer + (k - 1), buffer + *count, std::greater<std::uint64_t>());
  *count = k;
  return key_score(buffer[k - 1]);
}

// A deterministic generator is enough: the sample only has to avoid lining up
// with periodic patterns in the data, and results never depend on it.
struct SplitMix64 {
  std::uint64_t state = 0x9e3779b97f4a7c15ULL;
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
};

// The k-th largest of about `size` values sampled from [begin, end): a lower
// bound for the k-th best value of the whole array. The sample is a run of
// kSampleRun consecutive values at a random offset in each of size / kSampleRun
// equal strata: a run is one cache line, so the sample costs one miss per run
// instead of one per value. nullopt when it holds fewer than k non-NaN values.
std::optional<float> sample_lower_bound(const float* scores, std::size_t begin, std::size_t end,
                                        std::size_t k, std::size_t size, SplitMix64* rng,
                                        std::vector<float>* sample) {
  const std::size_t strata = size / kSampleRun;
  const std::size_t stride = (end - begin) / strata;  // >= 2 * kSampleRun (see caller)
  sample->clear();
  for (std::size_t j = 0; j < strata; ++j) {
    const float* run = scores + begin + j * stride + rng->next() % (stride - kSampleRun + 1);
    for (std::size_t r = 0; r < kSampleRun; ++r) {
      if (!std::isnan(run[r])) sample->push_back(run[r]);
    }
  }
  if (sample->size() < k) return std::nullopt;
  std::nth_element(sample->begin(), sample->begin() + static_cast<std::ptrdiff_t>(k - 1),
                   sample->end(), std::greater<float>());
  return (*sample)[k - 1];
}

}  // namespace

std::size_t topk_select(const float* scores, std::size_t n, std::size_t k,
                        std::int64_t* out_index, float* out_score, FilterFn filter) {
  if (n > kMaxScores) {
    throw std::length_error("topk: at most 2**32 - 1 scores per call (split the array)");
  }
  k = std::min(k, n);
  if (k == 0) return 0;
  const std::size_t capacity = std::min(n, std::max(2 * k, k + kSlack));
  std::unique_ptr<std::uint64_t[]> buffer(new std::uint64_t[capacity]);

  std::size_t count = 0;
  std::size_t i = 0;
  for (; i < n && count < capacity; ++i) {
    if (!std::isnan(scores[i])) buffer[count++] = make_key(scores[i], i);
  }

  if (i < n) {
    float threshold = cut_to_k(buffer.get(), &count, k);
    const std::size_t sample_size = std::max(kSamplePerK * k, kMinSample);
    std::vector<float> sample;
    SplitMix64 rng;
    std::size_t window_start = i;
    std::size_t last_sample = 0;
    for (;;) {
      i = filter(scores, i, n, threshold, buffer.get(), &count, capacity);
      if (i >= n) break;
      const std::size_t admitted = count - k;
      threshold = std::max(threshold, cut_to_k(buffer.get(), &count, k));
      const bool dense = admitted * kDenseRatio > i - window_start;
      if (dense && i - last_sample >= sample_size && n - i >= 2 * sample_size) {
        last_sample = i;
        if (const auto bound = sample_lower_bound(scores, i, n, k, sample_size, &rng, &sample)) {
          // "s >= bound" is "s > the float just below bound", which keeps the
          // filter's single strict comparison. A bound of -inf is never above
          // the threshold, so nextafter never has to go below -inf.
          threshold = std::max(
              threshold, std::nextafter(*bound, -std::numeric_limits<float>::infinity()));
        }
      }
      window_start = i;
    }
  }

  const std::size_t kept = std::min(k, count);
  if (count > kept) cut_to_k(buffer.get(), &count, kept);
  std::sort(buffer.get(), buffer.get() + kept, std::greater<std::uint64_t>());
  for (std::size_t j = 0; j < kept; ++j) {
    const std::size_t index = key_index(buffer[j]);
    out_index[j] = static_cast<std::int64_t>(index);
    out_score[j] = scores[index];  // the input's own value: keeps the sign of a zero
  }
  return kept;
}

}  // namespace secondopinion::topk_detail
