// libFuzzer target: the .npy reader (cpp/src/npy.cpp) that loads the weights
// a model keeps outside its graph, on arbitrary bytes.
//
// Besides the sanitizers, it checks what the reader promises: it either
// throws std::invalid_argument or returns an array whose data holds exactly
// its shape's product of items, with non-negative dimensions.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

#include "secondopinion/npy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    const secondopinion::NpyArray a = secondopinion::parse_npy(bytes, "input");
    std::size_t items = 1;
    for (std::int64_t d : a.shape) {
      if (d < 0) {
        std::fprintf(stderr, "FINDING: negative dimension\n");
        std::abort();
      }
      items *= static_cast<std::size_t>(d);
    }
    if (a.data.size() != items * secondopinion::npy_item_size(a.type)) {
      std::fprintf(stderr, "FINDING: %zu data bytes for %zu items\n", a.data.size(), items);
      std::abort();
    }
  } catch (const std::invalid_argument&) {
    // a refusal with a message is the contract for bad input
  }
  return 0;
}
