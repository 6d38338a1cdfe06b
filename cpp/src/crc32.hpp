// CRC-32 (the zlib/PNG polynomial, so Python's zlib.crc32 gives the same
// value). Internal to the core.
#pragma once

#include <cstddef>
#include <cstdint>

namespace secondopinion {

// Continues a CRC over more bytes: crc32(crc32(0, a), b) == crc32(0, a + b).
std::uint32_t crc32(std::uint32_t crc, const void* data, std::size_t size);

}  // namespace secondopinion
