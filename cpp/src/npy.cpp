#include "secondopinion/npy.hpp"

#include <cstring>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <string_view>

namespace secondopinion {

namespace {

constexpr std::string_view kMagic = "\x93NUMPY";
// np.save pads headers to 64 bytes; a larger one is not a weight file.
constexpr std::size_t kMaxHeader = 1 << 16;

struct TypeName {
  std::string_view descr;
  NpyType type;
};

// Little-endian and byte-sized descriptions, as np.save writes them on x86-64
// and arm64 ('|' marks byte-sized types, which have no byte order).
constexpr TypeName kTypes[] = {
    {"<f4", NpyType::float32}, {"<f2", NpyType::float16}, {"<f8", NpyType::float64},
    {"|i1", NpyType::int8},    {"|u1", NpyType::uint8},   {"<i4", NpyType::int32},
    {"<i8", NpyType::int64},
};

// The value of 'key' in the header dict, up to the next top-level ',' or '}'
// (the shape tuple keeps its parentheses).
std::string_view field(std::string_view header, std::string_view key) {
  const std::string quoted = "'" + std::string(key) + "'";
  std::size_t at = header.find(quoted);
  if (at == std::string_view::npos) return {};
  at = header.find(':', at + quoted.size());
  if (at == std::string_view::npos) return {};
  ++at;
  while (at < header.size() && header[at] == ' ') ++at;
  std::size_t end = at;
  int depth = 0;
  for (; end < header.size(); ++end) {
    const char c = header[end];
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (depth == 0 && (c == ',' || c == '}')) break;
  }
  return header.substr(at, end - at);
}

std::vector<std::int64_t> parse_shape(std::string_view text, const std::string& path) {
  auto bad = [&] { return std::invalid_argument(path + ": unreadable shape " + std::string(text)); };
  if (text.size() < 2 || text.front() != '(' || text.back() != ')') throw bad();
  std::vector<std::int64_t> shape;
  std::size_t i = 1;
  while (i + 1 < text.size()) {
    while (i + 1 < text.size() && (text[i] == ' ' || text[i] == ',')) ++i;
    if (i + 1 >= text.size()) break;
    std::int64_t dim = 0;
    std::size_t digits = 0;
    for (; i + 1 < text.size() && text[i] >= '0' && text[i] <= '9'; ++i, ++digits) {
      if (dim > (std::numeric_limits<std::int64_t>::max() - 9) / 10) throw bad();
      dim = dim * 10 + (text[i] - '0');
    }
    if (digits == 0) throw bad();
    shape.push_back(dim);
  }
  return shape;
}

}  // namespace

std::size_t npy_item_size(NpyType type) {
  switch (type) {
    case NpyType::int8:
    case NpyType::uint8: return 1;
    case NpyType::float16: return 2;
    case NpyType::float32:
    case NpyType::int32: return 4;
    case NpyType::float64:
    case NpyType::int64: return 8;
  }
  return 0;
}

std::size_t NpyArray::size() const {
  std::size_t n = 1;
  for (std::int64_t d : shape) n *= static_cast<std::size_t>(d);
  return n;
}

NpyArray load_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::invalid_argument(path + ": missing or unreadable");
  auto bad = [&](const std::string& why) { return std::invalid_argument(path + ": " + why); };

  char preamble[8];
  if (!in.read(preamble, sizeof preamble) ||
      std::string_view(preamble, kMagic.size()) != kMagic) {
    throw bad("not a .npy file (no \\x93NUMPY magic)");
  }
  const int major = static_cast<unsigned char>(preamble[6]);
  std::size_t header_len = 0;
  if (major == 1) {
    unsigned char b[2];
    if (!in.read(reinterpret_cast<char*>(b), 2)) throw bad("truncated header");
    header_len = b[0] | (std::size_t{b[1]} << 8);
  } else if (major == 2 || major == 3) {
    unsigned char b[4];
    if (!in.read(reinterpret_cast<char*>(b), 4)) throw bad("truncated header");
    header_len = b[0] | (std::size_t{b[1]} << 8) | (std::size_t{b[2]} << 16) | (std::size_t{b[3]} << 24);
  } else {
    throw bad("unsupported .npy format version " + std::to_string(major));
  }
  if (header_len > kMaxHeader) throw bad("header of " + std::to_string(header_len) + " bytes");
  std::string header(header_len, '\0');
  if (!in.read(header.data(), static_cast<std::streamsize>(header_len))) throw bad("truncated header");

  NpyArray out;
  const std::string_view descr = field(header, "descr");
  bool known = false;
  for (const TypeName& t : kTypes) {
    if (descr == "'" + std::string(t.descr) + "'") {
      out.type = t.type;
      known = true;
    }
  }
  if (!known) {
    throw bad("unsupported dtype " + std::string(descr) +
              " (expected a little-endian float16/32/64, int8/32/64 or uint8 array)");
  }
  if (field(header, "fortran_order") != "False") throw bad("Fortran-ordered arrays are not supported");
  out.shape = parse_shape(field(header, "shape"), path);

  std::size_t bytes = npy_item_size(out.type);
  for (std::int64_t d : out.shape) {
    const auto dim = static_cast<std::size_t>(d);
    if (dim != 0 && bytes > std::numeric_limits<std::size_t>::max() / dim) throw bad("shape too large");
    bytes *= dim;
  }
  const std::streamoff start = in.tellg();
  in.seekg(0, std::ios::end);
  const std::streamoff end = in.tellg();
  if (start < 0 || end < start || static_cast<std::size_t>(end - start) != bytes) {
    throw bad("holds " + std::to_string(end - start) + " bytes of data where its header says " +
              std::to_string(bytes));
  }
  in.seekg(start);
  out.data.resize(bytes);
  if (bytes != 0 && !in.read(reinterpret_cast<char*>(out.data.data()), static_cast<std::streamsize>(bytes))) {
    throw bad("read failed");
  }
  return out;
}

}  // namespace secondopinion
