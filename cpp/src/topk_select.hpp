// Internal to the top-k kernels: the one selection algorithm they share and the
// vectorised scan each instruction set provides.
//
// Only the scan (topk_filter_*) is compiled with ISA flags; the algorithm around
// it lives in topk_select.cpp, built for the baseline CPU. Keeping std::
// templates (nth_element, sort, vector) out of the *_avx2/_avx512 files matters:
// an inline template instantiated in a file built with -mavx512f could be the
// copy the linker keeps for everyone, and crash the portable path.
#pragma once

#include <cstddef>
#include <cstdint>

namespace secondopinion::topk_detail {

struct Candidate {
  float score;
  std::int64_t index;
};

// Appends (scores[i], i) for every i in [begin, end) with scores[i] > threshold
// (so never NaN) to out, advancing *count, and stops before *count could pass
// capacity. Returns the position it stopped at: end, or earlier when out is full.
// Callers keep at least kMaxFilterBlock free slots so every call makes progress.
using FilterFn = std::size_t (*)(const float* scores, std::size_t begin, std::size_t end,
                                 float threshold, Candidate* out, std::size_t* count,
                                 std::size_t capacity);

inline constexpr std::size_t kMaxFilterBlock = 64;

std::size_t filter_greater_portable(const float* scores, std::size_t begin, std::size_t end,
                                    float threshold, Candidate* out, std::size_t* count,
                                    std::size_t capacity);
std::size_t filter_greater_avx2(const float* scores, std::size_t begin, std::size_t end,
                                float threshold, Candidate* out, std::size_t* count,
                                std::size_t capacity);
std::size_t filter_greater_avx512(const float* scores, std::size_t begin, std::size_t end,
                                  float threshold, Candidate* out, std::size_t* count,
                                  std::size_t capacity);

// The shared algorithm (see topk.hpp for the contract), scanning with `filter`.
std::size_t topk_select(const float* scores, std::size_t n, std::size_t k,
                        std::int64_t* out_index, float* out_score, FilterFn filter);

}  // namespace secondopinion::topk_detail
