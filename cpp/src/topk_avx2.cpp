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
  // 64 values per step. Past the first few thousand values almost no block
  // holds a survivor, so the common path is 8 compares (each with its load)
  // OR-ed into one vector and one test: about the work of a max() pass. The
  // eight per-vector masks (vmovmskps, one port on most cores) are extracted
  // only for a block with a survivor. Comparing each vector to the threshold
  // (rather than taking a block maximum first) keeps NaN out by construction:
  // _CMP_GT_OQ is ordered, so NaN never passes.
  constexpr std::size_t kBlock = 64;
  static_assert(kBlock <= kMaxFilterBlock);
  const __m256 t = _mm256_set1_ps(threshold);
  std::size_t c = *count;
  std::size_t i = begin;
  for (; i + kBlock <= end; i += kBlock) {
    if (c + kBlock > capacity) {
      *count = c;
      return i;  // nearly full: the caller cuts the buffer and calls again
    }
    const float* p = scores + i;
    const __m256 g0 = _mm256_cmp_ps(_mm256_loadu_ps(p), t, _CMP_GT_OQ);
    const __m256 g1 = _mm256_cmp_ps(_mm256_loadu_ps(p + 8), t, _CMP_GT_OQ);
    const __m256 g2 = _mm256_cmp_ps(_mm256_loadu_ps(p + 16), t, _CMP_GT_OQ);
    const __m256 g3 = _mm256_cmp_ps(_mm256_loadu_ps(p + 24), t, _CMP_GT_OQ);
    const __m256 g4 = _mm256_cmp_ps(_mm256_loadu_ps(p + 32), t, _CMP_GT_OQ);
    const __m256 g5 = _mm256_cmp_ps(_mm256_loadu_ps(p + 40), t, _CMP_GT_OQ);
    const __m256 g6 = _mm256_cmp_ps(_mm256_loadu_ps(p + 48), t, _CMP_GT_OQ);
    const __m256 g7 = _mm256_cmp_ps(_mm256_loadu_ps(p + 56), t, _CMP_GT_OQ);
    const __m256 any = _mm256_or_ps(_mm256_or_ps(_mm256_or_ps(g0, g1), _mm256_or_ps(g2, g3)),
                                    _mm256_or_ps(_mm256_or_ps(g4, g5), _mm256_or_ps(g6, g7)));
    // A passing lane is all ones, so its sign bit is set: testz is 1 when none passed.
    if (_mm256_testz_ps(any, any)) continue;
    std::uint64_t mask =
        static_cast<std::uint64_t>(static_cast<unsigned>(_mm256_movemask_ps(g0))) |
        static_cast<std::uint64_t>(static_cast<unsigned>(_mm256_movemask_ps(g1))) << 8 |
        static_cast<std::uint64_t>(static_cast<unsigned>(_mm256_movemask_ps(g2))) << 16 |
        static_cast<std::uint64_t>(static_cast<unsigned>(_mm256_movemask_ps(g3))) << 24 |
        static_cast<std::uint64_t>(static_cast<unsigned>(_mm256_movemask_ps(g4))) << 32 |
        static_cast<std::uint64_t>(static_cast<unsigned>(_mm256_movemask_ps(g5))) << 40 |
        static_cast<std::uint64_t>(static_cast<unsigned>(_mm256_movemask_ps(g6))) << 48 |
        static_cast<std::uint64_t>(static_cast<unsigned>(_mm256_movemask_ps(g7))) << 56;
    while (mask != 0) {
      const unsigned j = static_cast<unsigned>(__builtin_ctzll(mask));
      out[c++] = make_key(p[j], i + j);
      mask &= mask - 1;
    }
  }
  // The last values, fewer than one block.
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
