#include "secondopinion/simd.hpp"

#include <cstdio>
#include <cstdlib>

namespace secondopinion {

namespace {

SimdLevel detect_cpu() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // Every flag the *_avx2.cpp / *_avx512.cpp files are compiled with must be
  // present: the compiler may emit any of them in those files. libgcc's checks
  // also confirm the OS saves the YMM/ZMM state (XGETBV).
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2") &&
                    __builtin_cpu_supports("popcnt");
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") &&
                      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                      __builtin_cpu_supports("avx512dq");
  if (avx512) return SimdLevel::avx512;
  if (avx2) return SimdLevel::avx2;
#endif
  return SimdLevel::portable;
}

SimdLevel choose_level() {
  const SimdLevel cpu = cpu_simd_level();
  const char* env = std::getenv(kSimdEnvVar);
  if (env == nullptr || *env == '\0') return cpu;
  const std::optional<SimdLevel> wanted = parse_simd_level(env);
  if (!wanted) {
    std::fprintf(stderr,
                 "secondopinion: ignoring %s=%s (expected avx512, avx2 or portable); using %s\n",
                 kSimdEnvVar, env, simd_level_name(cpu));
    return cpu;
  }
  // Only ever lower: a level above the CPU's would crash on the first kernel call.
  return static_cast<int>(*wanted) < static_cast<int>(cpu) ? *wanted : cpu;
}

}  // namespace

SimdLevel cpu_simd_level() {
  static const SimdLevel level = detect_cpu();
  return level;
}

SimdLevel simd_level() {
  static const SimdLevel level = choose_level();
  return level;
}

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::avx512:
      return "avx512";
    case SimdLevel::avx2:
      return "avx2";
    case SimdLevel::portable:
      break;
  }
  return "portable";
}

std::optional<SimdLevel> parse_simd_level(std::string_view name) {
  if (name == "avx512") return SimdLevel::avx512;
  if (name == "avx2") return SimdLevel::avx2;
  if (name == "portable") return SimdLevel::portable;
  return std::nullopt;
}

}  // namespace secondopinion
