// Bm25Index: scoring and search. Building is in bm25_builder.cpp, the file
// format in bm25_format.cpp.
#include "secondopinion/bm25_index.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <stdexcept>
#include <thread>
#include <utility>

#include "bm25_impl.hpp"
#include "bm25_format.hpp"
#include "secondopinion/topk.hpp"

namespace secondopinion {

void validate_bm25_params(const Bm25Params& params) {
  if (!std::isfinite(params.k1) || params.k1 < 0.0f) {
    throw std::invalid_argument("k1 must be a finite number >= 0, got " +
                                std::to_string(params.k1));
  }
  if (!(params.b >= 0.0f && params.b <= 1.0f)) {
    throw std::invalid_argument("b must be in [0, 1], got " + std::to_string(params.b));
  }
}

void Bm25Index::Impl::adopt(std::shared_ptr<const Bm25Arrays> arrays) {
  const Bm25Arrays& a = *arrays;
  num_docs = a.doc_len.size();
  num_terms = a.post_offsets.size() - 1;
  num_postings = a.post_docs.size();
  doc_len = a.doc_len.data();
  post_offsets = a.post_offsets.data();
  post_docs = a.post_docs.data();
  post_tf = a.post_tf.data();
  vocab_offsets = a.vocab_offsets.data();
  vocab_bytes = a.vocab_bytes.data();
  id_offsets = a.id_offsets.data();
  id_bytes = a.id_bytes.data();
  total_length = 0;
  for (std::uint32_t len : a.doc_len) total_length += len;
  storage = std::move(arrays);
}

void Bm25Index::Impl::index_vocabulary() {
  avgdl = num_docs == 0 ? 0.0 : static_cast<double>(total_length) / static_cast<double>(num_docs);
  vocab = StringIdMap(num_terms);
  for (std::size_t t = 0; t < num_terms; ++t) {
    const std::string_view key = term(t);
    if (vocab.insert(key, static_cast<std::uint32_t>(t)) != t) {
      throw std::invalid_argument("the vocabulary lists the term '" + std::string(key) + "' twice");
    }
  }
}

std::pair<std::int64_t, std::int64_t> find_duplicate_id(const std::uint64_t* offsets,
                                                         const char* bytes, std::size_t count) {
  StringIdMap seen(count);
  for (std::size_t d = 0; d < count; ++d) {
    const std::string_view id(bytes + offsets[d], offsets[d + 1] - offsets[d]);
    const std::uint32_t first = seen.insert(id, static_cast<std::uint32_t>(d));
    if (first != d) return {first, static_cast<std::int64_t>(d)};
  }
  return {-1, -1};
}

namespace {

struct QueryTerm {
  std::uint32_t term;
  std::uint32_t count;  // occurrences in the analysed query
};

// Per-thread buffers reused across queries, so a search allocates nothing
// once warm. Invariant between queries: acc is all zeros.
struct Scratch {
  std::vector<float> acc;
  std::vector<std::uint32_t> term_ids;
  std::vector<QueryTerm> terms;
  std::vector<std::pair<std::uint32_t, float>> candidates;
  std::vector<float> candidate_scores;

  float* accumulator(std::size_t n) {
    if (acc.size() < n) acc.resize(n, 0.0f);
    return acc.data();
  }
};

Scratch& thread_scratch() {
  thread_local Scratch scratch;
  return scratch;
}

// Restores the all-zeros invariant if a search is abandoned by an exception
// (only allocation can throw once scores are accumulated).
class ZeroOnUnwind {
 public:
  ZeroOnUnwind(float* acc, std::size_t n) : acc_(acc), n_(n) {}
  ~ZeroOnUnwind() {
    if (acc_ != nullptr) std::fill(acc_, acc_ + n_, 0.0f);
  }
  void dismiss() { acc_ = nullptr; }
  ZeroOnUnwind(const ZeroOnUnwind&) = delete;
  ZeroOnUnwind& operator=(const ZeroOnUnwind&) = delete;

 private:
  float* acc_;
  std::size_t n_;
};

// The analysed query as distinct known terms with their multiplicities.
void collect_terms(const Bm25Index::Impl& ix, std::string_view query, Scratch& s) {
  s.term_ids.clear();
  s.terms.clear();
  ix.analyzer.analyze(query, [&](std::string_view term) {
    const std::uint32_t id = ix.vocab.find(term);
    if (id != StringIdMap::kMissing) s.term_ids.push_back(id);
  });
  std::sort(s.term_ids.begin(), s.term_ids.end());
  for (std::uint32_t id : s.term_ids) {
    if (!s.terms.empty() && s.terms.back().term == id) {
      ++s.terms.back().count;
    } else {
      s.terms.push_back({id, 1});
    }
  }
}

// Adds every query term's contribution to acc[doc]; returns the number of
// postings visited.
std::size_t accumulate(const Bm25Index::Impl& ix, const std::vector<QueryTerm>& terms,
                       const Bm25Params& p, float* acc) {
  // tf / (tf + k1 * (1 - b + b * dl / avgdl)) with the constant parts hoisted:
  // the denominator is tf + A + B * dl.
  const float A = p.k1 * (1.0f - p.b);
  const float B = ix.avgdl > 0.0 ? static_cast<float>(p.k1 * p.b / ix.avgdl) : 0.0f;
  const double n = static_cast<double>(ix.num_docs);
  std::size_t visited = 0;
  for (const QueryTerm& qt : terms) {
    const std::uint64_t begin = ix.post_offsets[qt.term];
    const std::uint64_t end = ix.post_offsets[qt.term + 1];
    const double df = static_cast<double>(end - begin);
    const float weight =
        static_cast<float>(qt.count * std::log1p((n - df + 0.5) / (df + 0.5)));
    const std::uint32_t* docs = ix.post_docs;
    const std::uint32_t* tfs = ix.post_tf;
    const std::uint32_t* lens = ix.doc_len;
    for (std::uint64_t i = begin; i < end; ++i) {
      const std::uint32_t d = docs[i];
      const float tf = static_cast<float>(tfs[i]);
      acc[d] += weight * tf / (tf + (A + B * static_cast<float>(lens[d])));
    }
    visited += static_cast<std::size_t>(end - begin);
  }
  return visited;
}

// Sets acc back to zero by walking the same postings (cheaper than clearing
// all of acc when the query touched few documents).
void clear_postings(const Bm25Index::Impl& ix, const std::vector<QueryTerm>& terms, float* acc) {
  for (const QueryTerm& qt : terms) {
    for (std::uint64_t i = ix.post_offsets[qt.term]; i < ix.post_offsets[qt.term + 1]; ++i) {
      acc[ix.post_docs[i]] = 0.0f;
    }
  }
}

}  // namespace

Bm25Index::Bm25Index(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Bm25Index::Bm25Index(Bm25Index&&) noexcept = default;
Bm25Index& Bm25Index::operator=(Bm25Index&&) noexcept = default;
Bm25Index::~Bm25Index() = default;

std::size_t Bm25Index::num_docs() const { return impl_->num_docs; }
std::size_t Bm25Index::num_terms() const { return impl_->num_terms; }
std::size_t Bm25Index::num_postings() const { return impl_->num_postings; }
double Bm25Index::avg_doc_length() const { return impl_->avgdl; }
const Bm25Params& Bm25Index::default_params() const { return impl_->params; }
const Analyzer& Bm25Index::analyzer() const { return impl_->analyzer; }

std::string_view Bm25Index::doc_id(std::size_t doc) const {
  if (doc >= impl_->num_docs) throw std::out_of_range("document index out of range");
  return impl_->doc_id(doc);
}

std::uint32_t Bm25Index::doc_length(std::size_t doc) const {
  if (doc >= impl_->num_docs) throw std::out_of_range("document index out of range");
  return impl_->doc_len[doc];
}

std::uint32_t Bm25Index::doc_freq(std::string_view term) const {
  const std::uint32_t t = impl_->vocab.find(term);
  if (t == StringIdMap::kMissing) return 0;
  return static_cast<std::uint32_t>(impl_->post_offsets[t + 1] - impl_->post_offsets[t]);
}

std::string_view Bm25Index::term(std::size_t term_index) const {
  if (term_index >= impl_->num_terms) throw std::out_of_range("term index out of range");
  return impl_->term(term_index);
}

std::size_t Bm25Index::search(std::string_view query, std::size_t k, const Bm25Params& params,
                              std::int64_t* out_index, float* out_score) const {
  validate_bm25_params(params);
  const Impl& ix = *impl_;
  if (k == 0 || ix.num_docs == 0) return 0;
  Scratch& s = thread_scratch();
  collect_terms(ix, query, s);
  if (s.terms.empty()) return 0;

  const std::size_t n = ix.num_docs;
  float* acc = s.accumulator(n);
  ZeroOnUnwind guard(acc, n);
  const std::size_t visited = accumulate(ix, s.terms, params, acc);

  std::size_t found;
  if (visited * 16 < n) {
    // Few postings in a large corpus: select among the touched documents
    // instead of scanning all n. Walking the postings again gathers each
    // matching document once (it is zeroed as it is taken); sorting by
    // document index keeps topk's lower-position tie-break equal to the
    // lower-document-index rule.
    auto& cand = s.candidates;
    cand.clear();
    for (const QueryTerm& qt : s.terms) {
      for (std::uint64_t i = ix.post_offsets[qt.term]; i < ix.post_offsets[qt.term + 1]; ++i) {
        const std::uint32_t d = ix.post_docs[i];
        if (acc[d] != 0.0f) {
          cand.emplace_back(d, acc[d]);
          acc[d] = 0.0f;
        }
      }
    }
    std::sort(cand.begin(), cand.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    s.candidate_scores.resize(cand.size());
    for (std::size_t i = 0; i < cand.size(); ++i) s.candidate_scores[i] = cand[i].second;
    found = topk(s.candidate_scores.data(), cand.size(), k, out_index, out_score);
    for (std::size_t i = 0; i < found; ++i) {
      out_index[i] = cand[static_cast<std::size_t>(out_index[i])].first;
    }
  } else {
    found = topk(acc, n, k, out_index, out_score);
    // Matching documents score > 0 (idf > 0, tf >= 1) and the rest exactly 0,
    // so the non-matching ones are a suffix of the ranking.
    while (found > 0 && !(out_score[found - 1] > 0.0f)) --found;
    if (visited * 4 < n) {
      clear_postings(ix, s.terms, acc);
    } else {
      std::fill(acc, acc + n, 0.0f);
    }
  }
  guard.dismiss();
  return found;
}

Bm25Result Bm25Index::search(std::string_view query, std::size_t k,
                             const Bm25Params& params) const {
  Bm25Result result;
  const std::size_t room = std::min(k, impl_->num_docs);
  result.index.resize(room);
  result.score.resize(room);
  const std::size_t found = search(query, k, params, result.index.data(), result.score.data());
  result.index.resize(found);
  result.score.resize(found);
  return result;
}

std::vector<Bm25Result> Bm25Index::search_batch(const std::vector<std::string>& queries,
                                                std::size_t k, const Bm25Params& params,
                                                unsigned threads) const {
  validate_bm25_params(params);
  std::vector<Bm25Result> results(queries.size());
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  threads = static_cast<unsigned>(std::min<std::size_t>(threads, queries.size()));
  // Queries differ a lot in cost (a common term has long postings), so
  // threads take the next query from a shared counter instead of fixed slices.
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    for (std::size_t i = next.fetch_add(1); i < queries.size(); i = next.fetch_add(1)) {
      results[i] = search(queries[i], k, params);
    }
  };
  if (threads <= 1) {
    work();
    return results;
  }
  std::vector<std::exception_ptr> errors(threads);
  std::vector<std::thread> pool;
  pool.reserve(threads - 1);
  for (unsigned t = 1; t < threads; ++t) {
    pool.emplace_back([&, t] {
      try {
        work();
      } catch (...) {
        errors[t] = std::current_exception();
        next.store(queries.size());  // stop the others early
      }
    });
  }
  try {
    work();
  } catch (...) {
    errors[0] = std::current_exception();
    next.store(queries.size());
  }
  for (auto& th : pool) th.join();
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
  return results;
}

void Bm25Index::score_all(std::string_view query, const Bm25Params& params, float* out) const {
  validate_bm25_params(params);
  const Impl& ix = *impl_;
  std::fill(out, out + ix.num_docs, 0.0f);
  Scratch& s = thread_scratch();
  collect_terms(ix, query, s);
  accumulate(ix, s.terms, params, out);
}

void Bm25Index::save(const std::string& path) const { write_bm25_file(*impl_, path); }

Bm25Index Bm25Index::load(const std::string& path, bool use_mmap) {
  return Bm25Index(read_bm25_file(path, use_mmap));
}

}  // namespace secondopinion
