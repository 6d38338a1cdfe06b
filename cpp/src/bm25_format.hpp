// The BM25 index file format (version 1). Internal to the core.
//
// Designed to be used in place from a memory-mapped file: flat little-endian
// arrays, each section aligned to 64 bytes. All integers little-endian.
//
//   [0, 64)                 file header
//   [64, 64 + 32 * count)   section table
//   sections                each at a multiple of 64, zero padding between
//
// File header:
//   0   char[8]  magic "\x89SOBM25\n" (the high byte and newline catch
//                text-mode transfers, as PNG's signature does)
//   8   u32      format version (1)
//   12  u32      0x01020304, as the writer's byte order stores it
//   16  u64      file size in bytes
//   24  u32      header size: 64 + 32 * section count
//   28  u32      section count
//   32  u32      CRC-32 of bytes [header size, file size): every section
//   36  u32      CRC-32 of the header and section table, with this field 0
//   40  ...      zero
// Section table entry: u32 id, u32 element size, u64 offset, u64 element
// count, u64 zero.
// Sections (each exactly once):
//   1 meta          one 64-byte record: u64 documents N, u64 terms V,
//                   u64 postings P, u64 total length, f32 k1, f32 b,
//                   u8 lowercase, u8 stemmer (0 none, 1 porter, 2 english)
//   2 doc_len       u32[N]    terms per document after analysis
//   3 post_offsets  u64[V+1]  term t's postings: [off[t], off[t+1])
//   4 post_docs     u32[P]    document indices, ascending within a term
//   5 post_tf       u32[P]    term frequencies, >= 1, <= the document's doc_len
//   6 vocab_offsets u64[V+1]  into vocab_bytes
//   7 vocab_bytes   u8[]      terms, strictly ascending bytewise
//   8 id_offsets    u64[N+1]  into id_bytes
//   9 id_bytes      u8[]      document ids (distinct)
//  10 stop_offsets  u64[S+1]  into stop_bytes
//  11 stop_bytes    u8[]      the analyzer's stop words, sorted
//
// Loading checks every size and offset before use, both checksums, and the
// structural invariants above, so a foreign, truncated, corrupt or crafted
// file is refused with a message rather than read out of bounds.
#pragma once

#include <memory>
#include <string>

#include "bm25_impl.hpp"

namespace secondopinion {

constexpr std::uint32_t kBm25FormatVersion = 1;

void write_bm25_file(const Bm25Index::Impl& index, const std::string& path);
std::unique_ptr<Bm25Index::Impl> read_bm25_file(const std::string& path, bool use_mmap);

}  // namespace secondopinion
