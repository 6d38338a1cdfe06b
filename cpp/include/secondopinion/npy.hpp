// Reading NumPy .npy files (format versions 1-3): the arrays a model
// directory keeps outside its graph (see SessionConfig::external_initializers).
//
// Only what np.save writes for a C-ordered array of a fixed-size numeric type
// is accepted; anything else (Fortran order, object or structured dtypes,
// big-endian data, a file shorter or longer than its header says) is refused
// with the file's name, because a silently misread weight table would only
// show up as worse scores.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace secondopinion {

enum class NpyType { float32, float16, float64, int8, uint8, int32, int64 };

struct NpyArray {
  NpyType type = NpyType::float32;
  std::vector<std::int64_t> shape;
  std::vector<unsigned char> data;  // shape's product times the item size, in file order

  std::size_t size() const;  // number of elements
};

// Bytes per element of `type`.
std::size_t npy_item_size(NpyType type);

// Reads `path`. Throws std::invalid_argument naming the file and what is wrong.
NpyArray load_npy(const std::string& path);

// Parses the bytes of a .npy file; errors name `name`.
NpyArray parse_npy(std::string_view bytes, const std::string& name);

}  // namespace secondopinion
