// The AVX2 top-k kernel: the shared algorithm with an AVX2 scan. Built with
// -mavx2 (CMakeLists.txt); only reached when the CPU has AVX2 (topk_dispatch.cpp).
// No std:: templates here (see topk_select.hpp for why).
#include <immintrin.h>

#include "secondopinion/topk.hpp"
#include "topk_select.hpp"

namespace secondopinion {

namespace topk_detail {

std::size_t filter_greater_avx2(const float* scores, std::size_t begin, std::size_t end,
                                float threshold, std::uint64_t* out, std::size_t* count,
                                std::size_t capacity) {
  // 32 values per step: four independent compares keep the loads in flight; the
  // survivors' bit mask is walked only when a block has any.
  constexpr std::size_t kBlock = 32;
  const __m256 t = _mm256_set1_ps(threshold);
  std::size_t c = *count;
  std::size_t i = begin;
  for (; i + kBlock <= end && c + kBlock <= capacity; i += kBlock) {
    const float* p = scores + i;
    // _CMP_GT_OQ: ordered, so NaN never passes.
    const unsigned m0 = static_cast<unsigned>(
        _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(p), t, _CMP_GT_OQ)));
    const unsigned m1 = static_cast<unsigned>(
        _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(p + 8), t, _CMP_GT_OQ)));
    const unsigned m2 = static_cast<unsigned>(
        _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(p + 16), t, _CMP_GT_OQ)));
    const unsigned m3 = static_cast<unsigned>(
        _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(p + 24), t, _CMP_GT_OQ)));
    unsigned mask = m0 | (m1 << 8) | (m2 << 16) | (m3 << 24);
    while (mask != 0) {
      const unsigned j = static_cast<unsigned>(__builtin_ctz(mask));
      out[c++] = make_key(p[j], i + j);
      mask &= mask - 1;
    }
  }
  for (; i < end && c < capacity; ++i) {
    if (scores[i] > threshold) out[c++] = make_key(scores[i], i);
  }
  *count = c;
  return i;
}

}  // namespace topk_detail

std::size_t topk_avx2(const float* scores, std::size_t n, std::size_t k,
                      std::int64_t* out_index, float* out_score) {
  return topk_detail::topk_select(scores, n, k, out_index, out_score,
                                  topk_detail::filter_greater_avx2);
}

}  // namespace secondopinion
