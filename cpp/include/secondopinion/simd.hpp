// Which SIMD instruction set the run-time dispatchers use.
//
// The CPU is examined once per process. SECONDOPINION_SIMD=avx512|avx2|portable
// (read at the same moment) can force a LOWER level, so one machine can exercise
// every kernel; asking for a level the CPU lacks is ignored and the detected level
// is used, since running e.g. AVX-512 code on a CPU without it would crash.
// An unrecognised value is ignored too, with a one-line warning on stderr.
#pragma once

#include <optional>
#include <string_view>

namespace secondopinion {

// Ordered: a higher level implies every lower one is also usable.
enum class SimdLevel : int { portable = 0, avx2 = 1, avx512 = 2 };

// Name of the environment variable that can lower the level.
inline constexpr const char* kSimdEnvVar = "SECONDOPINION_SIMD";

// The best level this CPU (and OS) supports, ignoring the environment.
SimdLevel cpu_simd_level();

// The level dispatchers use: the CPU's, lowered by SECONDOPINION_SIMD if set.
SimdLevel simd_level();

// "avx512", "avx2" or "portable".
const char* simd_level_name(SimdLevel level);

// Inverse of simd_level_name (exact lower-case names); nullopt for anything else.
std::optional<SimdLevel> parse_simd_level(std::string_view name);

}  // namespace secondopinion
