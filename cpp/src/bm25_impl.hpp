// The representation behind Bm25Index, shared by the builder, the searcher
// and the file format. Internal to the core.
//
// Everything is a flat array so that a saved index can be used in place from
// a memory-mapped file: the pointers below point either into vectors owned by
// `storage` (a freshly built index) or into the mapping (a loaded one).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "secondopinion/bm25_index.hpp"
#include "string_id_map.hpp"

namespace secondopinion {

// The arrays of a freshly built index.
struct Bm25Arrays {
  std::vector<std::uint32_t> doc_len;       // [num_docs]
  std::vector<std::uint64_t> post_offsets;  // [num_terms + 1]: term t's postings are
                                            // [post_offsets[t], post_offsets[t + 1])
  std::vector<std::uint32_t> post_docs;     // [num_postings], ascending within a term
  std::vector<std::uint32_t> post_tf;       // [num_postings], >= 1
  std::vector<std::uint64_t> vocab_offsets;  // [num_terms + 1] into vocab_bytes
  std::string vocab_bytes;                   // terms, sorted bytewise, concatenated
  std::vector<std::uint64_t> id_offsets;     // [num_docs + 1] into id_bytes
  std::string id_bytes;                      // document ids, concatenated
};

struct Bm25Index::Impl {
  Impl(Analyzer analyzer_in, Bm25Params params_in)
      : analyzer(std::move(analyzer_in)), params(params_in) {}

  std::shared_ptr<const void> storage;  // keeps the arrays below alive
  Analyzer analyzer;
  Bm25Params params;

  std::size_t num_docs = 0;
  std::size_t num_terms = 0;
  std::size_t num_postings = 0;
  std::uint64_t total_length = 0;  // sum of doc_len
  double avgdl = 0.0;

  const std::uint32_t* doc_len = nullptr;
  const std::uint64_t* post_offsets = nullptr;
  const std::uint32_t* post_docs = nullptr;
  const std::uint32_t* post_tf = nullptr;
  const std::uint64_t* vocab_offsets = nullptr;
  const char* vocab_bytes = nullptr;
  const std::uint64_t* id_offsets = nullptr;
  const char* id_bytes = nullptr;

  StringIdMap vocab;  // term -> term index, built at load

  std::string_view term(std::size_t t) const {
    return {vocab_bytes + vocab_offsets[t], vocab_offsets[t + 1] - vocab_offsets[t]};
  }
  std::string_view doc_id(std::size_t d) const {
    return {id_bytes + id_offsets[d], id_offsets[d + 1] - id_offsets[d]};
  }

  // Points the arrays into `arrays`, which the Impl then owns.
  void adopt(std::shared_ptr<const Bm25Arrays> arrays);
  // Sets avgdl and builds the vocabulary table. Call once the arrays are set.
  // Throws std::invalid_argument if a term occurs twice.
  void index_vocabulary();
};

// The first document id that occurs twice, as (first index, second index);
// {-1, -1} if all are distinct.
std::pair<std::int64_t, std::int64_t> find_duplicate_id(const std::uint64_t* offsets,
                                                         const char* bytes, std::size_t count);

}  // namespace secondopinion
