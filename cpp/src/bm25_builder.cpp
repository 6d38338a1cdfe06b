// Bm25Builder: analysis of documents on several threads, then the inverted
// index as flat arrays.
//
// Each worker thread owns a private vocabulary ("local" term ids) and a cache
// from raw word to local term, so the stop list and the stemmer run once per
// distinct word per worker rather than once per token. After each batch the
// workers' new terms are merged into the global vocabulary, in document order.
// finish() sorts the vocabulary, so the index is the same whatever the thread
// count or batch sizes were.
#include <algorithm>
#include <deque>
#include <exception>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

#include "bm25_impl.hpp"
#include "secondopinion/bm25_index.hpp"

namespace secondopinion {

namespace {

constexpr std::uint32_t kStopWord = StringIdMap::kMissing - 1;
constexpr std::size_t kMaxDocs = std::numeric_limits<std::uint32_t>::max() - 1;

struct Worker {
  // raw word -> local term id, or kStopWord
  std::deque<std::string> words;
  StringIdMap word_terms;
  // local term id -> term, and back
  std::deque<std::string> terms;
  StringIdMap term_ids;
  std::vector<std::uint32_t> local_to_global;  // for terms merged so far

  // Per-document counting: counts[local id], and the ids seen in this document.
  std::vector<std::uint32_t> counts;
  std::vector<std::uint32_t> seen;
  std::uint64_t length = 0;

  // This batch's output, one entry per document of the worker's slice.
  std::vector<std::uint32_t> doc_len;
  std::vector<std::uint32_t> doc_pairs;  // number of (term, tf) pairs per document
  std::vector<std::uint32_t> pair_term;  // local ids
  std::vector<std::uint32_t> pair_tf;
  std::exception_ptr error;

  void add_word(const Analyzer& analyzer, std::string_view word) {
    const std::uint64_t h = hash_bytes(word);
    std::uint32_t id = word_terms.find(word, h);
    if (id == StringIdMap::kMissing) {
      if (analyzer.is_stopword(word)) {
        id = kStopWord;
      } else {
        const std::string_view stem = analyzer.stem(word);
        id = term_ids.find(stem);
        if (id == StringIdMap::kMissing) {
          id = static_cast<std::uint32_t>(terms.size());
          terms.emplace_back(stem);
          term_ids.insert(terms.back(), id);
          counts.push_back(0);
        }
      }
      words.emplace_back(word);
      word_terms.insert(words.back(), h, id);
    }
    if (id == kStopWord) return;
    ++length;
    if (counts[id]++ == 0) seen.push_back(id);
  }

  void end_document() {
    if (length > std::numeric_limits<std::uint32_t>::max()) {
      throw std::length_error("a document has more than 2^32 - 1 terms");
    }
    doc_len.push_back(static_cast<std::uint32_t>(length));
    doc_pairs.push_back(static_cast<std::uint32_t>(seen.size()));
    for (std::uint32_t id : seen) {
      pair_term.push_back(id);
      pair_tf.push_back(counts[id]);
      counts[id] = 0;
    }
    seen.clear();
    length = 0;
  }

  void analyze_slice(const Analyzer& analyzer, const std::vector<std::string_view>& texts,
                     const std::vector<std::string_view>* titles, std::size_t begin,
                     std::size_t end) {
    doc_len.clear();
    doc_pairs.clear();
    pair_term.clear();
    pair_tf.clear();
    auto on_word = [&](std::string_view word) { add_word(analyzer, word); };
    for (std::size_t j = begin; j < end; ++j) {
      if (titles != nullptr) analyzer.split((*titles)[j], on_word);
      analyzer.split(texts[j], on_word);
      end_document();
    }
  }
};

}  // namespace

struct Bm25Builder::State {
  State(AnalyzerConfig config, unsigned threads_in)
      : analyzer(std::move(config)), threads(std::max(1u, threads_in)), workers(threads) {}

  Analyzer analyzer;
  unsigned threads;
  std::vector<Worker> workers;

  std::deque<std::string> terms;  // global term id -> term
  StringIdMap term_ids;
  std::vector<std::uint32_t> doc_len;
  std::vector<std::uint64_t> doc_pairs_end;  // cumulative pair counts per document
  std::vector<std::uint32_t> pair_term;      // global ids, document-major
  std::vector<std::uint32_t> pair_tf;

  void merge(Worker& w) {
    for (std::size_t local = w.local_to_global.size(); local < w.terms.size(); ++local) {
      const std::string& term = w.terms[local];
      const auto fresh = static_cast<std::uint32_t>(terms.size());
      std::uint32_t global = term_ids.find(term);
      if (global == StringIdMap::kMissing) {
        terms.push_back(term);
        global = term_ids.insert(terms.back(), fresh);
      }
      w.local_to_global.push_back(global);
    }
    std::size_t p = 0;
    for (std::size_t d = 0; d < w.doc_len.size(); ++d) {
      doc_len.push_back(w.doc_len[d]);
      for (std::uint32_t i = 0; i < w.doc_pairs[d]; ++i, ++p) {
        pair_term.push_back(w.local_to_global[w.pair_term[p]]);
        pair_tf.push_back(w.pair_tf[p]);
      }
      doc_pairs_end.push_back(pair_term.size());
    }
  }
};

Bm25Builder::Bm25Builder(AnalyzerConfig analyzer, unsigned threads)
    : state_(std::make_unique<State>(std::move(analyzer), threads)) {}
Bm25Builder::Bm25Builder(Bm25Builder&&) noexcept = default;
Bm25Builder::~Bm25Builder() = default;

std::size_t Bm25Builder::num_docs() const { return state_->doc_len.size(); }

void Bm25Builder::add(const std::vector<std::string_view>& texts,
                      const std::vector<std::string_view>* titles) {
  State& st = *state_;
  if (titles != nullptr && titles->size() != texts.size()) {
    throw std::invalid_argument("titles and texts differ in length (" +
                                std::to_string(titles->size()) + " vs " +
                                std::to_string(texts.size()) + ")");
  }
  if (st.doc_len.size() + texts.size() > kMaxDocs) {
    throw std::length_error("a BM25 index holds at most 2^32 - 2 documents");
  }
  const std::size_t n = texts.size();
  // Below a few hundred documents per thread, starting threads costs more
  // than it saves.
  const std::size_t useful = std::max<std::size_t>(1, n / 256);
  const std::size_t used = std::min<std::size_t>(st.threads, useful);
  auto slice = [&](std::size_t w) { return n * w / used; };
  if (used == 1) {
    st.workers[0].analyze_slice(st.analyzer, texts, titles, 0, n);
  } else {
    std::vector<std::thread> pool;
    pool.reserve(used);
    for (std::size_t w = 0; w < used; ++w) {
      pool.emplace_back([&, w] {
        try {
          st.workers[w].analyze_slice(st.analyzer, texts, titles, slice(w), slice(w + 1));
        } catch (...) {
          st.workers[w].error = std::current_exception();
        }
      });
    }
    for (auto& th : pool) th.join();
    for (std::size_t w = 0; w < used; ++w) {
      if (auto e = std::exchange(st.workers[w].error, nullptr)) std::rethrow_exception(e);
    }
  }
  for (std::size_t w = 0; w < used; ++w) st.merge(st.workers[w]);
}

Bm25Index Bm25Builder::finish(std::vector<std::string> doc_ids, const Bm25Params& params) {
  validate_bm25_params(params);
  State& st = *state_;
  const std::size_t n = st.doc_len.size();
  if (n == 0) throw std::invalid_argument("cannot build a BM25 index from an empty corpus");
  if (doc_ids.size() != n) {
    throw std::invalid_argument("got " + std::to_string(doc_ids.size()) + " document ids for " +
                                std::to_string(n) + " documents");
  }

  auto arrays = std::make_shared<Bm25Arrays>();
  Bm25Arrays& a = *arrays;

  a.id_offsets.reserve(n + 1);
  a.id_offsets.push_back(0);
  for (const std::string& id : doc_ids) {
    a.id_bytes += id;
    a.id_offsets.push_back(a.id_bytes.size());
  }
  const auto dup = find_duplicate_id(a.id_offsets.data(), a.id_bytes.data(), n);
  if (dup.first >= 0) {
    throw std::invalid_argument("duplicate document id '" +
                                doc_ids[static_cast<std::size_t>(dup.second)] + "' (documents " +
                                std::to_string(dup.first) + " and " +
                                std::to_string(dup.second) + ")");
  }
  doc_ids.clear();
  doc_ids.shrink_to_fit();

  // Sorted vocabulary: rank[global id] = position in byte order.
  const std::size_t v = st.terms.size();
  std::vector<std::uint32_t> order(v);
  std::iota(order.begin(), order.end(), 0u);
  std::sort(order.begin(), order.end(),
            [&](std::uint32_t x, std::uint32_t y) { return st.terms[x] < st.terms[y]; });
  std::vector<std::uint32_t> rank(v);
  a.vocab_offsets.reserve(v + 1);
  a.vocab_offsets.push_back(0);
  for (std::size_t r = 0; r < v; ++r) {
    rank[order[r]] = static_cast<std::uint32_t>(r);
    a.vocab_bytes += st.terms[order[r]];
    a.vocab_offsets.push_back(a.vocab_bytes.size());
  }

  // Document-major pairs to term-major postings: count, prefix-sum, fill in
  // document order (so each posting list ascends by document).
  const std::size_t p = st.pair_term.size();
  a.post_offsets.assign(v + 1, 0);
  for (std::uint32_t t : st.pair_term) ++a.post_offsets[rank[t] + 1];
  for (std::size_t t = 0; t < v; ++t) a.post_offsets[t + 1] += a.post_offsets[t];
  std::vector<std::uint64_t> cursor(a.post_offsets.begin(), a.post_offsets.end() - 1);
  a.post_docs.resize(p);
  a.post_tf.resize(p);
  std::uint64_t i = 0;
  for (std::size_t d = 0; d < n; ++d) {
    for (; i < st.doc_pairs_end[d]; ++i) {
      const std::uint64_t pos = cursor[rank[st.pair_term[i]]]++;
      a.post_docs[pos] = static_cast<std::uint32_t>(d);
      a.post_tf[pos] = st.pair_tf[i];
    }
  }
  a.doc_len = std::move(st.doc_len);

  auto impl = std::make_unique<Bm25Index::Impl>(st.analyzer, params);
  impl->adopt(std::move(arrays));
  impl->index_vocabulary();
  // Leave the builder empty (and its memory returned) but usable.
  state_ = std::make_unique<State>(st.analyzer.config(), st.threads);
  return Bm25Index(std::move(impl));
}

}  // namespace secondopinion
