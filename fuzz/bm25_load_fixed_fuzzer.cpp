// libFuzzer target: Bm25Index::load on mutated index files whose checksums
// (and signature, version, byte-order mark and size field) are repaired before
// loading, so mutations reach the section table and the structural checks
// (offsets, counts, postings order, vocabulary order, duplicate ids) instead
// of stopping at a CRC mismatch. Seed it with valid index files
// (fuzz/make_seeds.py); the layout is in cpp/src/bm25_format.hpp.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "bm25_format.hpp"
#include "bm25_fuzz_common.hpp"
#include "crc32.hpp"

namespace {

constexpr std::size_t kHeaderBytes = 64;

template <class T>
void put(std::uint8_t* p, T value) {
  std::memcpy(p, &value, sizeof value);
}
template <class T>
T get(const std::uint8_t* p) {
  T value;
  std::memcpy(&value, p, sizeof value);
  return value;
}

void repair(std::vector<std::uint8_t>& file) {
  if (file.size() < kHeaderBytes) return;
  std::uint8_t* h = file.data();
  static constexpr char kMagic[8] = {'\x89', 'S', 'O', 'B', 'M', '2', '5', '\n'};
  std::memcpy(h, kMagic, sizeof kMagic);
  put<std::uint32_t>(h + 8, secondopinion::kBm25FormatVersion);
  put<std::uint32_t>(h + 12, 0x01020304u);
  put<std::uint64_t>(h + 16, file.size());
  // The section table size stays the fuzzer's: checking it is the loader's job.
  const std::uint64_t header_size = get<std::uint32_t>(h + 24);
  if (header_size < kHeaderBytes || header_size > file.size()) return;
  put<std::uint32_t>(h + 32, secondopinion::crc32(0, h + header_size, file.size() - header_size));
  put<std::uint32_t>(h + 36, 0);
  put<std::uint32_t>(h + 36, secondopinion::crc32(0, h, header_size));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::uint8_t> file(data, data + size);
  repair(file);
  // The last bytes double as query text, so queries vary with the file.
  const std::size_t tail = size < 24 ? size : 24;
  std::string query;
  if (tail != 0) query.assign(reinterpret_cast<const char*>(data + size - tail), tail);
  fuzz::load_and_exercise(file.data(), file.size(), query);
  return 0;
}
