// Run-time choice of the top-k kernel. The CPU is examined once (simd.cpp);
// a kernel above simd_level() is never called.
#include <stdexcept>
#include <string>

#include "secondopinion/simd.hpp"
#include "secondopinion/topk.hpp"

namespace secondopinion {

namespace {

using TopkFn = std::size_t (*)(const float*, std::size_t, std::size_t, std::int64_t*, float*);

TopkFn kernel_for(SimdLevel level) {
  switch (level) {
    case SimdLevel::avx512:
      return topk_avx512;
    case SimdLevel::avx2:
      return topk_avx2;
    case SimdLevel::portable:
      break;
  }
  return topk_portable;
}

}  // namespace

std::size_t topk(const float* scores, std::size_t n, std::size_t k, std::int64_t* out_index,
                 float* out_score) {
  static const TopkFn kernel = kernel_for(simd_level());
  return kernel(scores, n, k, out_index, out_score);
}

std::size_t topk_with_level(SimdLevel level, const float* scores, std::size_t n, std::size_t k,
                            std::int64_t* out_index, float* out_score) {
  if (static_cast<int>(level) > static_cast<int>(simd_level())) {
    throw std::invalid_argument(std::string("topk: SIMD level ") + simd_level_name(level) +
                                " is above this process's level " +
                                simd_level_name(simd_level()) +
                                " (the CPU's best, possibly lowered by " + kSimdEnvVar + ")");
  }
  return kernel_for(level)(scores, n, k, out_index, out_score);
}

}  // namespace secondopinion
