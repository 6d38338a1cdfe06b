// Internal to the top-k kernels: the one selection algorithm they share and the
// vectorised scan each instruction set provides.
//
// Only the scan (filter_greater_*) is compiled with ISA flags; the algorithm
// around it lives in topk_select.cpp, built for the baseline CPU. Keeping std::
// templates (nth_element, sort, vector) out of the *_avx2/_avx512 files matters:
// an inline template instantiated in a file built with -mavx512f could be the
// copy the linker keeps for everyone, and crash the portable path. For the same
// reason the helpers below are `static` (one private copy per file).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace secondopinion::topk_detail {

// Largest n one call handles: a candidate's index must fit the low 32 bits of its key.
inline constexpr std::size_t kMaxScores = 0xFFFFFFFFu;

// A candidate is one 64-bit key, so that ranking is a single integer compare:
// high half = the score's bits mapped to an unsigned order (so -0.0 and +0.0
// map alike, as they compare equal), low half = ~index, so on equal scores
// the lower index has the larger key. Greater key = ranks first.
static inline std::uint64_t make_key(float score, std::size_t index) {
  std::uint32_t bits;
  std::memcpy(&bits, &score, sizeof bits);
  if ((bits << 1) == 0) bits = 0;  // -0.0 -> +0.0
  bits = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
  return (static_cast<std::uint64_t>(bits) << 32) |
         (0xFFFFFFFFu - static_cast<std::uint32_t>(index));
}

static inline std::size_t key_index(std::uint64_t key) {
  return 0xFFFFFFFFu - static_cast<std::uint32_t>(key);
}

static inline float key_score(std::uint64_t key) {
  std::uint32_t bits = static_cast<std::uint32_t>(key >> 32);
  bits = (bits & 0x80000000u) ? (bits & 0x7FFFFFFFu) : ~bits;
  float score;
  std::memcpy(&score, &bits, sizeof score);
  return score;
}

// Appends make_key(scores[i], i) for every i in [begin, end) with
// scores[i] > threshold (so never NaN) to out, advancing *count, and stops
// before *count could pass capacity. Returns the position it stopped at: end,
// or earlier when out is full. Callers keep at least kMaxFilterBlock free slots
// so every call makes progress.
using FilterFn = std::size_t (*)(const float* scores, std::size_t begin, std::size_t end,
                                 float threshold, std::uint64_t* out, std::size_t* count,
                                 std::size_t capacity);

inline constexpr std::size_t kMaxFilterBlock = 64;

std::size_t filter_greater_portable(const float* scores, std::size_t begin, std::size_t end,
                                    float threshold, std::uint64_t* out, std::size_t* count,
                                    std::size_t capacity);
std::size_t filter_greater_avx2(const float* scores, std::size_t begin, std::size_t end,
                                float threshold, std::uint64_t* out, std::size_t* count,
                                std::size_t capacity);
std::size_t filter_greater_avx512(const float* scores, std::size_t begin, std::size_t end,
                                  float threshold, std::uint64_t* out, std::size_t* count,
                                  std::size_t capacity);

// The shared algorithm (see topk.hpp for the contract), scanning with `filter`.
// Throws std::length_error when n > kMaxScores.
std::size_t topk_select(const float* scores, std::size_t n, std::size_t k,
                        std::int64_t* out_index, float* out_score, FilterFn filter);

}  // namespace secondopinion::topk_detail
