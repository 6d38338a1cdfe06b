// The AVX-512 top-k kernel: the shared algorithm with an AVX-512F scan. Built
// with -mavx512f and friends (CMakeLists.txt); only reached when the CPU has
// them (topk_dispatch.cpp). No std:: templates here (see topk_select.hpp for why).
#include <immintrin.h>

#include "secondopinion/topk.hpp"
#include "topk_select.hpp"

namespace secondopinion {

namespace topk_detail {

std::size_t filter_greater_avx512(const float* scores, std::size_t begin, std::size_t end,
                                  float threshold, std::uint64_t* out, std::size_t* count,
                                  std::size_t capacity) {
  // 64 values per step (four zmm compares); the combined 64-bit survivor mask
  // is walked only when a block has any, which on random data is rare.
  constexpr std::size_t kBlock = 64;
  constexpr std::size_t kLanes = 16;
  const __m512 t = _mm512_set1_ps(threshold);
  std::size_t c = *count;
  std::size_t i = begin;
  for (; i + kBlock <= end && c + kBlock <= capacity; i += kBlock) {
    const float* p = scores + i;
    // _CMP_GT_OQ: ordered, so NaN never passes.
    const std::uint64_t m0 = _mm512_cmp_ps_mask(_mm512_loadu_ps(p), t, _CMP_GT_OQ);
    const std::uint64_t m1 = _mm512_cmp_ps_mask(_mm512_loadu_ps(p + 16), t, _CMP_GT_OQ);
    const std::uint64_t m2 = _mm512_cmp_ps_mask(_mm512_loadu_ps(p + 32), t, _CMP_GT_OQ);
    const std::uint64_t m3 = _mm512_cmp_ps_mask(_mm512_loadu_ps(p + 48), t, _CMP_GT_OQ);
    std::uint64_t mask = m0 | (m1 << 16) | (m2 << 32) | (m3 << 48);
    while (mask != 0) {
      const unsigned j = static_cast<unsigned>(__builtin_ctzll(mask));
      out[c++] = make_key(p[j], i + j);
      mask &= mask - 1;
    }
  }
  // The tail, up to 63 values, a masked vector at a time: masked-off lanes are
  // neither read nor compared.
  while (i < end && c + kLanes <= capacity) {
    const std::size_t left = end - i;
    const __mmask16 live =
        left >= kLanes ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1u);
    const __m512 v = _mm512_maskz_loadu_ps(live, scores + i);
    unsigned mask = _mm512_mask_cmp_ps_mask(live, v, t, _CMP_GT_OQ);
    while (mask != 0) {
      const unsigned j = static_cast<unsigned>(__builtin_ctz(mask));
      out[c++] = make_key(scores[i + j], i + j);
      mask &= mask - 1;
    }
    i += left >= kLanes ? kLanes : left;
  }
  *count = c;
  return i;
}

}  // namespace topk_detail

std::size_t topk_avx512(const float* scores, std::size_t n, std::size_t k,
                        std::int64_t* out_index, float* out_score) {
  return topk_detail::topk_select(scores, n, k, out_index, out_score,
                                  topk_detail::filter_greater_avx512);
}

}  // namespace secondopinion
