// Top-k selection over float scores.
//
// Contract (every kernel, SIMD or not): returns min(k, number of non-NaN
// values) entries, sorted by score descending, ties broken by the lower index;
// NaN is never selected; +inf and -inf are ordinary values.
#pragma once

#include <cstddef>
#include <cstdint>

namespace secondopinion {

// Writes up to k results into out_index/out_score (each with room for k) and
// returns how many were written.
std::size_t topk(const float* scores, std::size_t n, std::size_t k, std::int64_t* out_index,
                 float* out_score);

// The portable scalar kernel: the reference every SIMD kernel is tested against.
std::size_t topk_portable(const float* scores, std::size_t n, std::size_t k,
                          std::int64_t* out_index, float* out_score);

}  // namespace secondopinion
