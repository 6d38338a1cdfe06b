#include "secondopinion/fusion.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>

namespace secondopinion {

namespace {

[[noreturn]] void bad_list(std::size_t list, const std::string& what) {
  throw std::invalid_argument("hits_list[" + std::to_string(list) + "]: " + what);
}

// Scratch space of one thread's fusion calls. Fusion runs once per query on
// lists of a few thousand candidates, where allocating and zeroing fresh
// buffers would cost as much as the fusion itself: keep them between calls.
//
// "Union position" u numbers the distinct documents in order of first sight.
// Per document, what the hot loops read is kept in compact arrays of its own
// (the hash probe compares indices, the sort reads keys and indices), and its
// n_lists Stage records sit together at u * n_lists.
// The buffers grow to the largest call a thread has made and stay that size.
struct Origin {
  std::int64_t first_pos;   // its position in the first list holding it
  std::int32_t first_list;  // that list
  std::int32_t last_list;   // the last list seen holding it so far
};

struct Stage {
  std::int32_t rank;  // 1-based, 0 = absent from this list
  float score;        // the list's score where rank != 0
};

// RRF contributions w / (k + rank) for one (k, w), ranks 1..size: the same
// for every query of a pipeline, so computed once, not a division per
// candidate per call.
struct RrfTable {
  double k;
  double w;
  std::vector<double> values;
};

struct Workspace {
  std::vector<std::int32_t> table;       // open addressing: union position or -1
  std::vector<std::int64_t> doc_index;   // u -> the document's index
  std::vector<double> sum;               // u -> fused score being accumulated
  std::vector<float> fused;              // u -> fused score, as returned
  std::vector<Origin> origin;            // u -> where it was first and last seen
  std::vector<Stage> stages;             // u * n_lists + l -> Stage
  std::vector<double> contribution;      // weighted: slot -> what that candidate adds
  std::vector<const double*> list_contribution;  // list -> its candidates' contributions
  std::vector<double> missing;           // list -> what it adds to a document it lacks
  std::vector<RrfTable> rrf_tables;      // a few (k, w) pairs seen lately
  std::vector<std::uint32_t> keys;       // u -> sort key of its fused score
  std::vector<std::uint32_t> bucket_start;
  std::vector<std::uint64_t> order;  // sort entries: key << 32 | u
  std::size_t size = 0;              // documents in the union
};

// Not inlined on purpose: inlined, GCC re-derives the thread-local address
// (a __tls_get_addr call in a shared library) inside the hot loops instead of
// keeping the reference in a register.
[[gnu::noinline]] Workspace& workspace() {
  thread_local Workspace ws;
  return ws;
}

template <typename T>
void ensure_size(std::vector<T>& v, std::size_t n) {
  if (v.size() < n) v.resize(n);
}

// w / (k + rank) for ranks 1..size, from the thread's cache. Moving a table
// within the cache keeps its values where they are, so the pointer stays valid
// until a later call grows that table or, with more than
// max(8, n_lists) pairs cached, evicts it.
const double* rrf_contributions(Workspace& ws, double k, double w, std::size_t size,
                                std::size_t n_lists) {
  std::vector<RrfTable>& tables = ws.rrf_tables;
  for (std::size_t i = 0; i < tables.size(); ++i)
    if (tables[i].k == k && tables[i].w == w) {
      // Most recently used last, so eviction (from the front) never takes a
      // table this call already handed out.
      std::rotate(tables.begin() + static_cast<std::ptrdiff_t>(i),
                  tables.begin() + static_cast<std::ptrdiff_t>(i) + 1, tables.end());
      RrfTable& t = tables.back();
      for (std::size_t p = t.values.size(); p < size; ++p)
        t.values.push_back(w / (k + static_cast<double>(p + 1)));
      return t.values.data();
    }
  if (tables.size() > std::max<std::size_t>(8, n_lists)) tables.erase(tables.begin());
  RrfTable t{k, w, std::vector<double>(size)};
  for (std::size_t p = 0; p < size; ++p) t.values[p] = w / (k + static_cast<double>(p + 1));
  tables.push_back(std::move(t));
  return tables.back().values.data();
}

// Reads and checks every list and builds the union of their documents with
// each one's rank and score in every list, summing fused scores on the way:
// sum[u] adds, over the lists in their given order, list l's contribution
// ws.list_contribution[l][p] where the document is at position p, or, when
// `add_missing`, ws.missing[l] where the list lacks it. (RRF skips those:
// adding its 0 would change nothing.) The order of the additions is that of
// a plain loop over the lists, so results do not depend on this bookkeeping.
// Templated on both flags: they are tested per candidate in the hot loop.
template <bool need_finite, bool add_missing>
void build_union(const std::vector<RankedList>& hits_list, Workspace& ws) {
  const std::size_t n_lists = hits_list.size();
  std::size_t total = 0;
  for (const RankedList& list : hits_list) total += list.size;

  std::size_t table_size = 16;
  unsigned bits = 4;
  while (table_size < 2 * total) {  // load factor <= 1/2 keeps probe runs short
    table_size <<= 1;
    ++bits;
  }
  // Every byte 0xFF makes every slot -1; memset beats assign()'s element loop.
  ensure_size(ws.table, table_size);
  std::memset(ws.table.data(), 0xFF, table_size * sizeof(std::int32_t));
  ensure_size(ws.doc_index, total);
  ensure_size(ws.sum, total);
  ensure_size(ws.origin, total);
  ensure_size(ws.stages, n_lists * total);

  const std::size_t mask = table_size - 1;
  const unsigned shift = 64 - bits;
  std::int32_t* table = ws.table.data();
  std::int64_t* doc_index = ws.doc_index.data();
  double* sum = ws.sum.data();
  Origin* origin = ws.origin.data();
  Stage* stages = ws.stages.data();
  const double* missing = ws.missing.data();
  std::size_t size = 0;
  double missing_before = 0.0;  // missing[0] + ... + missing[l - 1], in that order
  for (std::size_t l = 0; l < n_lists; ++l) {
    const RankedList& list = hits_list[l];
    const double* contribution = ws.list_contribution[l];
    const auto list_id = static_cast<std::int32_t>(l);
    for (std::size_t p = 0; p < list.size; ++p) {
      const std::int64_t index = list.indices[p];
      const float score = list.scores[p];
      if (index < 0)
        bad_list(l, "index " + std::to_string(index) + " at position " + std::to_string(p) +
                        " is negative (padding from a search that found fewer results?)");
      if (std::isnan(score)) bad_list(l, "score at position " + std::to_string(p) + " is NaN");
      if constexpr (need_finite) if (std::isinf(score))
        bad_list(l, "score at position " + std::to_string(p) +
                        " is infinite, which cannot be normalised");
      if (p > 0 && score > list.scores[p - 1])
        bad_list(l, "scores are not sorted descending (position " + std::to_string(p) +
                        " scores higher than position " + std::to_string(p - 1) + ")");
      // Fibonacci hashing: indices are often small and dense, the multiply
      // spreads them over the table.
      std::size_t s =
          static_cast<std::size_t>((static_cast<std::uint64_t>(index) * 0x9E3779B97F4A7C15ull) >>
                                   shift);
      std::int32_t u;
      while ((u = table[s]) >= 0 && doc_index[u] != index) s = (s + 1) & mask;
      Stage* doc_stages;
      if (u < 0) {
        u = static_cast<std::int32_t>(size++);
        table[s] = u;
        doc_index[u] = index;
        origin[u] = {static_cast<std::int64_t>(p), list_id, list_id};
        sum[u] = missing_before + contribution[p];
        doc_stages = stages + static_cast<std::size_t>(u) * n_lists;
        for (std::size_t other = 0; other < n_lists; ++other) doc_stages[other] = {0, 0.0f};
      } else {
        doc_stages = stages + static_cast<std::size_t>(u) * n_lists;
        if (doc_stages[l].rank != 0)
          bad_list(l, "index " + std::to_string(index) + " appears twice (positions " +
                          std::to_string(doc_stages[l].rank - 1) + " and " + std::to_string(p) +
                          ")");
        double acc = sum[u];
        if constexpr (add_missing)
          for (std::int32_t j = origin[u].last_list + 1; j < list_id; ++j) acc += missing[j];
        sum[u] = acc + contribution[p];
        origin[u].last_list = list_id;
      }
      doc_stages[l] = {static_cast<std::int32_t>(p + 1), score};
    }
    if constexpr (add_missing) missing_before += missing[l];
  }
  // The lists after the last one holding each document. A loop of fixed
  // length adding 0 where a list holds it, not one of varying length: its
  // exit branch would be mispredicted for about every other document. Adding
  // 0 changes nothing (-0 + 0 gives +0, which the fused score becomes anyway).
  if constexpr (add_missing)
    for (std::size_t u = 0; u < size; ++u) {
      const auto last = static_cast<std::size_t>(origin[u].last_list);
      double acc = sum[u];
      for (std::size_t j = 1; j < n_lists; ++j) acc += j > last ? missing[j] : 0.0;
      sum[u] = acc;
    }
  ws.size = size;
}

// Checks what build_union needs before it runs and sizes the per-list arrays.
void check_lists(const std::vector<RankedList>& hits_list, Workspace& ws) {
  if (hits_list.empty()) throw std::invalid_argument("hits_list: no lists to fuse");
  if (hits_list.size() > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
    throw std::invalid_argument("hits_list: too many lists");
  std::size_t total = 0;
  for (std::size_t l = 0; l < hits_list.size(); ++l) {
    const RankedList& list = hits_list[l];
    if (list.size > 0 && (list.indices == nullptr || list.scores == nullptr))
      bad_list(l, "null data for a non-empty list");
    total += list.size;
  }
  // Ranks are int32, and union positions share a 64-bit sort entry with the score.
  if (total >= static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
    throw std::invalid_argument("hits_list: more than 2^31 - 2 candidates in all");
  ensure_size(ws.list_contribution, hits_list.size());
}

void check_weights(const std::vector<double>& weights, std::size_t n_lists) {
  if (weights.size() != n_lists)
    throw std::invalid_argument("weights: " + std::to_string(weights.size()) +
                                " weights for " + std::to_string(n_lists) + " lists");
  for (std::size_t i = 0; i < weights.size(); ++i)
    if (!std::isfinite(weights[i]) || weights[i] < 0)
      throw std::invalid_argument("weights[" + std::to_string(i) +
                                  "] must be finite and non-negative, got " +
                                  std::to_string(weights[i]));
}

// Maps a float (not NaN, not -0) to a key whose ascending order is the
// float's descending order.
inline std::uint32_t descending_key(float f) {
  std::uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  const std::uint32_t ascending = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
  return ~ascending;
}

// Orders the union by fused score descending, ties by lower document index;
// returns entries (descending_key << 32 | u), best first.
//
// Sorting is the largest part of a fusion. For 2 lists x 1,000 candidates,
// std::sort of the ~1,750 entries alone took 14 us on the (busy) development
// machine; an LSD radix sort, and merging the runs that documents found in
// one list only already form, were no faster than what is here: one bucket
// pass and an insertion sort. Keys are
// spread over about as many buckets as there are entries, so each bucket holds
// one or two and the insertion sort only fixes neighbours. The float bit
// patterns that serve as keys are roughly logarithmic in the score, which
// spreads typical fused scores evenly enough; should some input crowd the
// buckets anyway, the insertion sort gives up after a budget of moves and a
// comparison sort finishes.
const std::uint64_t* sort_union(Workspace& ws) {
  const std::size_t n = ws.size;
  ensure_size(ws.order, n);
  ensure_size(ws.keys, n);
  std::uint64_t* order = ws.order.data();
  std::uint32_t* keys = ws.keys.data();
  ensure_size(ws.fused, n);
  float* fused = ws.fused.data();
  const double* sum = ws.sum.data();
  const std::int64_t* doc_index = ws.doc_index.data();
  if (n == 0) return order;

  std::uint32_t lo = std::numeric_limits<std::uint32_t>::max(), hi = 0;
  for (std::size_t u = 0; u < n; ++u) {
    // Rounded once; + 0.0f turns -0 into +0 so equal scores get equal keys.
    fused[u] = static_cast<float>(sum[u]) + 0.0f;
    const std::uint32_t key = descending_key(fused[u]);
    keys[u] = key;
    lo = std::min(lo, key);
    hi = std::max(hi, key);
  }
  unsigned bucket_bits = 1;
  while ((std::size_t{1} << bucket_bits) < n && bucket_bits < 20) ++bucket_bits;
  unsigned range_bits = 0;
  for (std::uint32_t range = hi - lo; range != 0; range >>= 1) ++range_bits;
  const unsigned shift = range_bits > bucket_bits ? range_bits - bucket_bits : 0;
  const std::size_t buckets = std::size_t{1} << bucket_bits;
  ensure_size(ws.bucket_start, buckets + 1);
  std::uint32_t* start = ws.bucket_start.data();
  std::fill(start, start + buckets + 1, 0u);
  for (std::size_t u = 0; u < n; ++u) ++start[((keys[u] - lo) >> shift) + 1];
  for (std::size_t b = 0; b < buckets; ++b) start[b + 1] += start[b];
  for (std::size_t u = 0; u < n; ++u)
    order[start[(keys[u] - lo) >> shift]++] = (static_cast<std::uint64_t>(keys[u]) << 32) | u;

  // Key, then document index: the order the contract promises.
  const auto before = [doc_index](std::uint64_t a, std::uint64_t b) {
    return (a >> 32) < (b >> 32) ||
           ((a >> 32) == (b >> 32) && doc_index[a & 0xFFFFFFFFu] < doc_index[b & 0xFFFFFFFFu]);
  };
  std::size_t budget = 16 * n;  // moves; an even spread needs about n
  for (std::size_t i = 1; i < n; ++i) {
    const std::uint64_t entry = order[i];
    std::size_t j = i;
    while (j > 0 && before(entry, order[j - 1])) {
      order[j] = order[j - 1];
      --j;
    }
    order[j] = entry;
    const std::size_t moved = i - j;
    if (moved > budget) {
      std::sort(order, order + n, before);
      break;
    }
    budget -= moved;
  }
  return order;
}

// Writes the best `limit` (0 = all) documents of the sorted union into `out`.
void emit(const Workspace& ws, const std::uint64_t* order, std::size_t n_lists, std::size_t limit,
          FusedList& out) {
  const std::size_t n = ws.size;
  const std::size_t m = (limit == 0 || limit > n) ? n : limit;
  out.n_lists = n_lists;
  out.indices.resize(m);
  out.scores.resize(m);
  out.source_list.resize(m);
  out.source_position.resize(m);
  out.stage_ranks.resize(n_lists * m);
  out.stage_scores.resize(n_lists * m);
  const std::int64_t* doc_index = ws.doc_index.data();
  const float* fused = ws.fused.data();
  const Origin* origin = ws.origin.data();
  const Stage* stages = ws.stages.data();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // Raw pointers: through the vectors, GCC reloads each one's data pointer
  // after every store, as a store might have changed it.
  std::int64_t* indices = out.indices.data();
  float* scores = out.scores.data();
  std::int32_t* source_list = out.source_list.data();
  std::int64_t* source_position = out.source_position.data();
  std::int32_t* stage_ranks = out.stage_ranks.data();
  float* stage_scores = out.stage_scores.data();
  for (std::size_t i = 0; i < m; ++i) {
    const std::size_t u = static_cast<std::size_t>(order[i] & 0xFFFFFFFFu);
    indices[i] = doc_index[u];
    scores[i] = fused[u];
    source_list[i] = origin[u].first_list;
    source_position[i] = origin[u].first_pos;
    const Stage* doc_stages = stages + u * n_lists;
    for (std::size_t l = 0; l < n_lists; ++l) {
      const Stage stage = doc_stages[l];
      stage_ranks[l * m + i] = stage.rank;
      stage_scores[l * m + i] = stage.rank != 0 ? stage.score : nan;
    }
  }
}

}  // namespace

void fuse_rrf(const std::vector<RankedList>& hits_list, double k, const std::vector<double>& weights,
              std::size_t limit, FusedList& out) {
  if (!(std::isfinite(k) && k > 0))
    throw std::invalid_argument("k must be finite and > 0, got " + std::to_string(k));
  const std::size_t n_lists = hits_list.size();
  if (!weights.empty()) check_weights(weights, n_lists);
  Workspace& ws = workspace();
  check_lists(hits_list, ws);
  // Every table is asked for the longest list's length, so none grows (and
  // moves) while a pointer into it is held.
  std::size_t longest = 0;
  for (const RankedList& list : hits_list) longest = std::max(longest, list.size);
  for (std::size_t l = 0; l < n_lists; ++l)
    ws.list_contribution[l] =
        rrf_contributions(ws, k, weights.empty() ? 1.0 : weights[l], longest, n_lists);
  build_union</*need_finite=*/false, /*add_missing=*/false>(hits_list, ws);
  emit(ws, sort_union(ws), n_lists, limit, out);
}

void fuse_weighted(const std::vector<RankedList>& hits_list, const std::vector<double>& weights,
                   ScoreNorm norm, std::size_t limit, FusedList& out) {
  const std::size_t n_lists = hits_list.size();
  check_weights(weights, n_lists);
  Workspace& ws = workspace();
  check_lists(hits_list, ws);
  // Contributions come first and are checked after: a NaN or infinite score
  // (or an unsorted list, whose ends are not its extremes) makes them
  // meaningless, but build_union then rejects the list before they are used.
  std::size_t total = 0;
  for (const RankedList& list : hits_list) total += list.size;
  ensure_size(ws.contribution, total);
  ws.missing.assign(n_lists, 0.0);
  std::size_t offset = 0;
  for (std::size_t l = 0; l < n_lists; ++l) {
    const RankedList& list = hits_list[l];
    double* contribution = ws.contribution.data() + offset;
    ws.list_contribution[l] = contribution;
    offset += list.size;
    if (list.size == 0) continue;  // contributes 0 to every document
    const double hi = list.scores[0], lo = list.scores[list.size - 1];  // sorted descending
    // A constant list ranks nothing above anything: under minmax and zscore it
    // contributes 0 to all. Tested on the extremes, not on std == 0: a mean
    // accumulated in double can miss a constant by an ulp and leave a tiny std.
    if (norm != ScoreNorm::None && hi == lo) {
      std::fill(contribution, contribution + list.size, 0.0);
      continue;
    }
    // normalised(s) = (s - shift) / scale
    double shift = 0.0, scale = 1.0;
    if (norm == ScoreNorm::MinMax) {
      shift = lo;
      scale = hi - lo;
    } else if (norm == ScoreNorm::ZScore) {
      double mean = 0.0;
      for (std::size_t p = 0; p < list.size; ++p) mean += list.scores[p];
      mean /= static_cast<double>(list.size);
      double var = 0.0;
      for (std::size_t p = 0; p < list.size; ++p) {
        const double d = list.scores[p] - mean;
        var += d * d;
      }
      shift = mean;
      scale = std::sqrt(var / static_cast<double>(list.size));  // population std
    }
    const double w = weights[l];
    for (std::size_t p = 0; p < list.size; ++p)
      contribution[p] = w * ((list.scores[p] - shift) / scale);
    // A document the list lacks counts as its lowest-scored one.
    ws.missing[l] = w * ((lo - shift) / scale);
  }
  build_union</*need_finite=*/true, /*add_missing=*/true>(hits_list, ws);
  emit(ws, sort_union(ws), n_lists, limit, out);
}

}  // namespace secondopinion
