// libFuzzer target: Bm25Index::load on arbitrary bytes.
//
// Random bytes mostly stop at the signature or the checksums, which is the
// point of this target: those first gates must refuse everything cleanly.
// bm25_load_fixed_fuzzer.cpp repairs the checksums to reach the structural
// checks behind them.
#include <cstddef>
#include <cstdint>

#include "bm25_fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::load_and_exercise(data, size, "fuzz query");
  return 0;
}
