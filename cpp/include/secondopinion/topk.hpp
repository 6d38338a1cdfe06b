// Top-k selection over float scores.
//
// Contract (every kernel, SIMD or not): returns min(k, number of non-NaN
// values) entries, sorted by score descending, ties broken by the lower index;
// NaN is never selected; +inf and -inf are ordinary values. One call handles
// at most 2**32 - 1 scores (std::length_error beyond: split and merge).
//
// Every kernel shares one algorithm (topk_select.cpp): a threshold-filtered
// scan that compares whole vectors against the current k-th best value and
// only touches a candidate buffer for survivors. The kernels differ only in how
// that scan is vectorised. Where survivors stay frequent (ascending input), a
// stratified sample of the unread data supplies a provable lower bound for the
// k-th value, so the scan never degrades to a per-element heap update.
#pragma once

#include <cstddef>
#include <cstdint>

#include "secondopinion/simd.hpp"

namespace secondopinion {

// Writes up to k results into out_index/out_score (each with room for
// min(k, n)) and returns how many were written. Uses the kernel of simd_level().
std::size_t topk(const float* scores, std::size_t n, std::size_t k, std::int64_t* out_index,
                 float* out_score);

// The same with an explicit kernel. Throws std::invalid_argument when level is
// above simd_level(): that is how the dispatcher guarantees AVX-512 code never
// runs on a CPU without it (and honours SECONDOPINION_SIMD).
std::size_t topk_with_level(SimdLevel level, const float* scores, std::size_t n, std::size_t k,
                            std::int64_t* out_index, float* out_score);

// The portable kernel (no instruction set beyond the compiler's baseline):
// the reference every SIMD kernel is tested against.
std::size_t topk_portable(const float* scores, std::size_t n, std::size_t k,
                          std::int64_t* out_index, float* out_score);

// The SIMD kernels. Calling one on a CPU without its instruction set is
// undefined behaviour (an illegal-instruction crash): prefer topk() or
// topk_with_level(), which check.
std::size_t topk_avx2(const float* scores, std::size_t n, std::size_t k,
                      std::int64_t* out_index, float* out_score);
std::size_t topk_avx512(const float* scores, std::size_t n, std::size_t k,
                        std::int64_t* out_index, float* out_score);

// Top-k of every row of a row-major matrix[rows][cols], rows spread over
// `threads` std::threads (0 = default_thread_count(): the physical cores this process may use). Results go to
// out_index/out_score laid out as [rows][min(k, cols)]; a row with fewer non-NaN
// values than that is padded with index -1 and score NaN. out_count, if not
// null, receives each row's number of real results. Uses simd_level()'s kernel.
void topk_batch(const float* matrix, std::size_t rows, std::size_t cols, std::size_t k,
                std::int64_t* out_index, float* out_score, std::size_t* out_count = nullptr,
                unsigned threads = 0);

}  // namespace secondopinion
