// A BM25 index: Lucene's scoring over an in-memory or memory-mapped inverted
// index.
//
// Scoring (Lucene >= 8 BM25Similarity, as Anserini and bm25s "lucene"):
//   score(q, d) = sum over query terms t in d of
//                 w_t * idf(t) * tf / (tf + k1 * (1 - b + b * |d| / avgdl))
//   idf(t)      = ln(1 + (N - df + 0.5) / (df + 0.5))      (never negative)
// where tf is t's count in d, |d| the number of terms d has after analysis,
// avgdl the mean of |d| over the corpus, and w_t the number of times t occurs
// in the analysed query (a repeated query term counts again, as a Lucene
// BooleanQuery with one clause per query token scores it). Lucene's lossy
// one-byte document-length norms are not reproduced: |d| is exact.
//
// The index stores raw term frequencies and document lengths, so k1 and b are
// query-time parameters: every search may override the defaults it was built
// with.
//
// Results: documents are returned only if they contain at least one query
// term (every such document scores > 0), so a search returns
// min(k, matching documents) results, best first, ties broken by the lower
// document index. An empty query, a query of stop words or of unknown terms
// returns nothing.
//
// Thread safety: a built or loaded index is immutable; search, score_all and
// search_batch may run concurrently from any number of threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "secondopinion/analyzer.hpp"

namespace secondopinion {

struct Bm25Params {
  float k1 = 0.9f;  // term-frequency saturation, finite and >= 0
  float b = 0.4f;   // length normalisation, in [0, 1]
};

// Throws std::invalid_argument naming the bad parameter.
void validate_bm25_params(const Bm25Params& params);

// One query's results: document indices and scores, best first.
struct Bm25Result {
  std::vector<std::int64_t> index;
  std::vector<float> score;
};

class Bm25Index {
 public:
  Bm25Index(Bm25Index&&) noexcept;
  Bm25Index& operator=(Bm25Index&&) noexcept;
  ~Bm25Index();

  std::size_t num_docs() const;
  std::size_t num_terms() const;
  std::size_t num_postings() const;
  double avg_doc_length() const;
  const Bm25Params& default_params() const;
  const Analyzer& analyzer() const;

  std::string_view doc_id(std::size_t doc) const;
  std::uint32_t doc_length(std::size_t doc) const;
  // Document frequency of an analysed term (0 if absent).
  std::uint32_t doc_freq(std::string_view term) const;
  // The vocabulary in index order (sorted bytewise).
  std::string_view term(std::size_t term_index) const;

  // Writes up to k results to out_index/out_score (room for min(k, num_docs())
  // each) and returns how many were written.
  std::size_t search(std::string_view query, std::size_t k, const Bm25Params& params,
                     std::int64_t* out_index, float* out_score) const;
  Bm25Result search(std::string_view query, std::size_t k, const Bm25Params& params) const;
  Bm25Result search(std::string_view query, std::size_t k) const {
    return search(query, k, default_params());
  }

  // Every query on `threads` threads (0: one per hardware thread); result i
  // belongs to queries[i] and equals search(queries[i], k, params).
  std::vector<Bm25Result> search_batch(const std::vector<std::string>& queries, std::size_t k,
                                       const Bm25Params& params, unsigned threads) const;

  // The score of every document (0 where no query term occurs); out has room
  // for num_docs() floats.
  void score_all(std::string_view query, const Bm25Params& params, float* out) const;

  // Writes the index to path (through a temporary file renamed into place).
  // The format is described in bm25_format.hpp.
  void save(const std::string& path) const;
  // Reads an index saved by save(). With use_mmap the arrays stay in the
  // mapped file (loading costs one checksum pass and the vocabulary table);
  // otherwise the file is read into memory. A file that is not a valid index
  // (foreign, truncated, corrupt, a newer version) throws
  // std::invalid_argument naming the path and the problem.
  static Bm25Index load(const std::string& path, bool use_mmap = true);

  struct Impl;

 private:
  friend class Bm25Builder;
  explicit Bm25Index(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Builds an index from documents added in batches. Analysis runs on `threads`
// threads within each batch; the result does not depend on the thread count
// or the batch sizes. A builder is used by one thread at a time.
class Bm25Builder {
 public:
  Bm25Builder(AnalyzerConfig analyzer, unsigned threads);
  Bm25Builder(Bm25Builder&&) noexcept;
  ~Bm25Builder();

  // Adds documents; document j is texts[j] plus, when titles is not null,
  // (*titles)[j] (the title's terms are counted in the same document).
  void add(const std::vector<std::string_view>& texts,
           const std::vector<std::string_view>* titles = nullptr);
  std::size_t num_docs() const;

  // The index over everything added. doc_ids must have one distinct id per
  // document; an empty corpus or duplicate ids throw std::invalid_argument.
  // The builder is left empty.
  Bm25Index finish(std::vector<std::string> doc_ids, const Bm25Params& params);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace secondopinion
