#include "secondopinion/npy.hpp"

#include <cstring>
#include <fstream>
#include <limits>
#include <stdexcept>

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

std::vector<std::int64_t> parse_shape(std::string_view text, const std::string& name) {
  auto bad = [&] { return std::invalid_argument(name + ": unreadable shape " + std::string(text)); };
  if (text.size() < 2 || text.front() != '(' || text.back() != ')') throw bad();
  std::vector<std::int64_t> shape;
  const std::string_view inner = text.substr(1, text.size() - 2);
  std::size_t i = 0;
  while (i < inner.size()) {
    while (i < inner.size() && inner[i] == ' ') ++i;
    if (i == inner.size()) break;
    std::int64_t dim = 0;
    std::size_t digits = 0;
    for (; i < inner.size() && inner[i] >= '0' && inner[i] <= '9'; ++i, ++digits) {
      if (dim > (std::numeric_limits<std::int64_t>::max() - 9) / 10) throw bad();
      dim = dim * 10 + (inner[i] - '0');
    }
    if (digits == 0) throw bad();
    shape.push_back(dim);
    while (i < inner.size() && inner[i] == ' ') ++i;
    if (i < inner.size() && inner[i] != ',') throw bad();
    ++i;  // the comma (or past the end)
  }
  return shape;
}

std::size_t little_endian(std::string_view bytes) {
  std::size_t value = 0;
  for (std::size_t i = bytes.size(); i-- > 0;) value = (value << 8) | static_cast<unsigned char>(bytes[i]);
  return value;
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

NpyArray parse_npy(std::string_view bytes, const std::string& name) {
  auto bad = [&](const std::string& why) { return std::invalid_argument(name + ": " + why); };
  if (bytes.size() < 8 || bytes.substr(0, kMagic.size()) != kMagic) {
    throw bad("not a .npy file (no \\x93NUMPY magic)");
  }
  const int major = static_cast<unsigned char>(bytes[6]);
  if (major < 1 || major > 3) throw bad("unsupported .npy format version " + std::to_string(major));
  const std::size_t len_bytes = major == 1 ? 2 : 4;
  if (bytes.size() < 8 + len_bytes) throw bad("truncated header");
  const std::size_t header_len = little_endian(bytes.substr(8, len_bytes));
  if (header_len > kMaxHeader) throw bad("header of " + std::to_string(header_len) + " bytes");
  const std::size_t start = 8 + len_bytes + header_len;
  if (bytes.size() < start) throw bad("truncated header");
  const std::string_view header = bytes.substr(8 + len_bytes, header_len);

  NpyArray out;
  const std::string_view descr = field(header, "descr");
  bool known = false;
  for (const TypeName& t : kTypes) {
    if (descr.size() == t.descr.size() + 2 && descr.front() == '\'' && descr.back() == '\'' &&
        descr.substr(1, t.descr.size()) == t.descr) {
      out.type = t.type;
      known = true;
    }
  }
  if (!known) {
    throw bad("unsupported dtype " + std::string(descr) +
              " (expected a little-endian float16/32/64, int8/32/64 or uint8 array)");
  }
  if (field(header, "fortran_order") != "False") throw bad("Fortran-ordered arrays are not supported");
  out.shape = parse_shape(field(header, "shape"), name);

  std::size_t expected = npy_item_size(out.type);
  for (std::int64_t d : out.shape) {
    const auto dim = static_cast<std::size_t>(d);
    if (dim != 0 && expected > std::numeric_limits<std::size_t>::max() / dim) throw bad("shape too large");
    expected *= dim;
  }
  const std::size_t held = bytes.size() - start;
  if (held != expected) {
    throw bad("holds " + std::to_string(held) + " bytes of data where its header says " +
              std::to_string(expected));
  }
  out.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(start), bytes.end());
  return out;
}

NpyArray load_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw std::invalid_argument(path + ": missing or unreadable");
  // One read into a buffer of the file's size (a weight table is megabytes).
  const std::streamoff size = in.tellg();
  if (size < 0) throw std::invalid_argument(path + ": unreadable");
  std::string contents(static_cast<std::size_t>(size), '\0');
  in.seekg(0);
  if (!in.read(contents.data(), size)) throw std::invalid_argument(path + ": read failed");
  return parse_npy(contents, path);
}

}  // namespace secondopinion
