// The portable top-k kernel: the shared algorithm with a scan that needs no
// instruction set beyond the compiler's baseline.
#include <cstring>

#include "secondopinion/topk.hpp"
#include "topk_select.hpp"

namespace secondopinion {

namespace topk_detail {

namespace {

constexpr std::size_t kBlock = 16;

// Does any of p[0, kBlock) exceed threshold? GCC and Clang's generic vectors
// compile to the baseline instruction set (SSE2 on x86-64, NEON on arm64);
// a plain loop here is left scalar by GCC ("control flow in loop").
inline bool any_greater(const float* p, float threshold) {
#if defined(__GNUC__)
  typedef float Vec4 __attribute__((vector_size(16)));
  typedef int Mask4 __attribute__((vector_size(16)));
  const Vec4 t = {threshold, threshold, threshold, threshold};
  Mask4 any = {0, 0, 0, 0};
  for (std::size_t j = 0; j < kBlock; j += 4) {
    Vec4 v;
    std::memcpy(&v, p + j, sizeof v);  // unaligned load
    any |= v > t;                      // ordered compare: NaN lanes stay 0
  }
  return (any[0] | any[1] | any[2] | any[3]) != 0;
#else
  bool any = false;
  for (std::size_t j = 0; j < kBlock; ++j) any |= p[j] > threshold;
  return any;
#endif
}

}  // namespace

std::size_t filter_greater_portable(const float* scores, std::size_t begin, std::size_t end,
                                    float threshold, std::uint64_t* out, std::size_t* count,
                                    std::size_t capacity) {
  // Blocks let the compiler vectorise the common case: nothing in the block
  // beats the threshold.
  std::size_t c = *count;
  std::size_t i = begin;
  for (; i + kBlock <= end && c + kBlock <= capacity; i += kBlock) {
    if (!any_greater(scores + i, threshold)) continue;
    // Branch-free: write every value, keep the survivors (room for a whole
    // block is guaranteed). Early on about half survive, which a branch mispredicts.
    for (std::size_t j = 0; j < kBlock; ++j) {
      out[c] = make_key(scores[i + j], i + j);
      c += scores[i + j] > threshold ? 1 : 0;
    }
  }
  for (; i < end && c < capacity; ++i) {
    if (scores[i] > threshold) out[c++] = make_key(scores[i], i);
  }
  *count = c;
  return i;
}

}  // namespace topk_detail

std::size_t topk_portable(const float* scores, std::size_t n, std::size_t k,
                          std::int64_t* out_index, float* out_score) {
  return topk_detail::topk_select(scores, n, k, out_index, out_score,
                                  topk_detail::filter_greater_portable);
}

}  // namespace secondopinion
