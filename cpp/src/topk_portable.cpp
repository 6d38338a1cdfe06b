#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "secondopinion/topk.hpp"

namespace secondopinion {

namespace {
// "a ranks before b": higher score first, lower index on ties.
inline bool ranks_before(const std::pair<float, std::int64_t>& a,
                         const std::pair<float, std::int64_t>& b) {
  return a.first > b.first || (a.first == b.first && a.second < b.second);
}
}  // namespace

std::size_t topk_portable(const float* scores, std::size_t n, std::size_t k,
                          std::int64_t* out_index, float* out_score) {
  if (k == 0 || n == 0) return 0;
  // A min-heap (by rank) of the best k seen; its top is the current k-th best,
  // the threshold a new value must beat. Most values fail that one compare.
  std::vector<std::pair<float, std::int64_t>> heap;
  heap.reserve(std::min(k, n));
  for (std::size_t i = 0; i < n; ++i) {
    const float s = scores[i];
    if (std::isnan(s)) continue;
    if (heap.size() < k) {
      heap.emplace_back(s, static_cast<std::int64_t>(i));
      std::push_heap(heap.begin(), heap.end(), ranks_before);
    } else if (s > heap.front().first) {  // equal score loses: its index is higher
      std::pop_heap(heap.begin(), heap.end(), ranks_before);
      heap.back() = {s, static_cast<std::int64_t>(i)};
      std::push_heap(heap.begin(), heap.end(), ranks_before);
    }
  }
  std::sort(heap.begin(), heap.end(), ranks_before);
  for (std::size_t j = 0; j < heap.size(); ++j) {
    out_score[j] = heap[j].first;
    out_index[j] = heap[j].second;
  }
  return heap.size();
}

std::size_t topk(const float* scores, std::size_t n, std::size_t k, std::int64_t* out_index,
                 float* out_score) {
  return topk_portable(scores, n, k, out_index, out_score);
}

}  // namespace secondopinion
