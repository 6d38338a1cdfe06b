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

// RRF contributions w / (k + rank) for one (k, w), ranks 1..size: the same
// for every query of a pipeline, so computed once, not a division per
// candidate per call.
struct RrfTable {
  double k;
  double w;
  std::vector<double> values;
};

// One sort entry per fused document: its sort key and its union position.
// The key is the fused score's descending_key in the high half and, when
// every index fits in 32 bits (`narrow`), the document index in the low
// half, so that a single integer comparison orders by score, then index, and
// the output reads both back from the key without touching anything else.
struct Entry {
  std::uint64_t key;
  std::uint32_t u;
};

}  // namespace

// Scratch space of a Fusion. Fusion runs once per query on lists of a few
// thousand candidates, where allocating and zeroing fresh buffers would cost
// as much as the fusion itself: keep them between calls.
//
// "Union position" u numbers the distinct documents in order of first sight.
// Per document, what the hot loops read is kept in compact arrays of its own
// (the hash probe compares indices, the sort reads keys), and so is its rank
// in each list, one row per list (row l at l * capacity): writing the result
// is then one plain gather per list.
// The buffers grow to the largest call made and stay that size.
struct Fusion::Workspace {
  std::vector<std::int32_t> table;       // open addressing: union position or -1
  std::vector<std::int64_t> doc_index;   // u -> the document's index
  std::vector<double> sum;  // u -> fused score being accumulated, then as returned
  std::vector<std::int32_t> last_list;   // weighted: u -> last list seen holding it so far
  std::vector<std::int32_t> rank;  // l * capacity + u -> 1-based rank, 0 = absent from list l
  std::size_t capacity = 0;        // row length of rank
  std::vector<double> contribution;      // weighted: slot -> what that candidate adds
  std::vector<const double*> list_contribution;  // list -> its candidates' contributions
  std::vector<double> missing;           // list -> what it adds to a document it lacks
  std::vector<RrfTable> rrf_tables;      // a few (k, w) pairs seen lately
  std::vector<std::uint64_t> keys;        // u -> its Entry key
  std::vector<std::uint32_t> bucket_of;   // u -> its sort bucket
  std::vector<std::uint32_t> bucket_start;
  std::vector<Entry> order;  // sorted: best first
  std::size_t size = 0;      // documents in the union
  std::size_t n_lists = 0;
  std::size_t out_size = 0;  // documents in the result: min(size, limit)
  bool narrow = true;        // every index < 2^32: see Entry
};

namespace {

using Workspace = Fusion::Workspace;

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

// Builds the union of the lists' documents (check_values has checked their
// values; duplicates are found here) with each one's rank in every list,
// summing fused scores on the way:
// sum[u] adds, over the lists in their given order, list l's contribution
// ws.list_contribution[l][p] where the document is at position p, or, when
// `add_missing`, ws.missing[l] where the list lacks it. (RRF skips those:
// adding its 0 would change nothing.) The order of the additions is that of
// a plain loop over the lists, so results do not depend on this bookkeeping.
// Templated on the flag: it is tested per candidate in the hot loop.
template <bool add_missing>
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
  if constexpr (add_missing) ensure_size(ws.last_list, total);
  ensure_size(ws.rank, n_lists * total);
  ws.capacity = total;

  const std::size_t mask = table_size - 1;
  const unsigned shift = 64 - bits;
  std::int32_t* table = ws.table.data();
  std::int64_t* doc_index = ws.doc_index.data();
  double* sum = ws.sum.data();
  std::int32_t* last_list = ws.last_list.data();
  std::int32_t* rank = ws.rank.data();
  // (total > 0: with no candidates data() may be null, and memset of null is
  // undefined even for 0 bytes.)
  if constexpr (!add_missing)
    if (total > 0) std::memset(rank, 0, n_lists * total * sizeof(std::int32_t));
  const double* missing = ws.missing.data();
  std::size_t size = 0;
  double missing_before = 0.0;  // missing[0] + ... + missing[l - 1], in that order
  for (std::size_t l = 0; l < n_lists; ++l) {
    const RankedList& list = hits_list[l];
    const double* contribution = ws.list_contribution[l];
    const auto list_id = static_cast<std::int32_t>(l);
    for (std::size_t p = 0; p < list.size; ++p) {
      const std::int64_t index = list.indices[p];
      // Fibonacci hashing: indices are often small and dense, the multiply
      // spreads them over the table.
      std::size_t s =
          static_cast<std::size_t>((static_cast<std::uint64_t>(index) * 0x9E3779B97F4A7C15ull) >>
                                   shift);
      std::int32_t u;
      while ((u = table[s]) >= 0 && doc_index[u] != index) s = (s + 1) & mask;
      std::int32_t* list_rank = rank + l * total;
      if constexpr (!add_missing) {
        // Without a branch on whether the document is new: for every list
        // after the first, that is a coin toss the predictor loses often.
        // The rank rows were cleared up front for this.
        const bool is_new = u < 0;
        const auto v = is_new ? static_cast<std::int32_t>(size) : u;
        size += is_new;
        table[s] = v;
        doc_index[v] = index;
        const double before = sum[v];  // stale for a new document, then unused
        if (list_rank[v] != 0)
          bad_list(l, "index " + std::to_string(index) + " appears twice (positions " +
                          std::to_string(list_rank[v] - 1) + " and " + std::to_string(p) + ")");
        sum[v] = (is_new ? 0.0 : before) + contribution[p];
        u = v;
      } else if (u < 0) {
        u = static_cast<std::int32_t>(size++);
        table[s] = u;
        doc_index[u] = index;
        last_list[u] = list_id;
        sum[u] = missing_before + contribution[p];
        for (std::size_t other = 0; other < n_lists; ++other)
          rank[other * total + static_cast<std::size_t>(u)] = 0;
      } else {
        if (list_rank[u] != 0)
          bad_list(l, "index " + std::to_string(index) + " appears twice (positions " +
                          std::to_string(list_rank[u] - 1) + " and " + std::to_string(p) + ")");
        double acc = sum[u];
        for (std::int32_t j = last_list[u] + 1; j < list_id; ++j) acc += missing[j];
        last_list[u] = list_id;
        sum[u] = acc + contribution[p];
      }
      list_rank[u] = static_cast<std::int32_t>(p + 1);
    }
    if constexpr (add_missing) missing_before += missing[l];
  }
  // The lists after the last one holding each document. A loop of fixed
  // length adding 0 where a list holds it, not one of varying length: its
  // exit branch would be mispredicted for about every other document. Adding
  // 0 changes nothing (-0 + 0 gives +0, which the fused score becomes anyway).
  if constexpr (add_missing)
    for (std::size_t u = 0; u < size; ++u) {
      const auto last = static_cast<std::size_t>(last_list[u]);
      double acc = sum[u];
      for (std::size_t j = 1; j < n_lists; ++j) acc += j > last ? missing[j] : 0.0;
      sum[u] = acc;
    }
  ws.size = size;
  ws.n_lists = n_lists;
}

// Finds and reports the first bad value of a list that check_values found
// fault with, in the order a reader would: position by position.
template <bool need_finite>
[[noreturn]] void report_bad_value(const RankedList& list, std::size_t l) {
  for (std::size_t p = 0; p < list.size; ++p) {
    const std::int64_t index = list.indices[p];
    const float score = list.scores[p];
    if (index < 0)
      bad_list(l, "index " + std::to_string(index) + " at position " + std::to_string(p) +
                      " is negative (padding from a search that found fewer results?)");
    if (std::isnan(score)) bad_list(l, "score at position " + std::to_string(p) + " is NaN");
    if (need_finite && std::isinf(score))
      bad_list(l, "score at position " + std::to_string(p) +
                      " is infinite, which cannot be normalised");
    if (p > 0 && score > list.scores[p - 1])
      bad_list(l, "scores are not sorted descending (position " + std::to_string(p) +
                      " scores higher than position " + std::to_string(p - 1) + ")");
  }
  bad_list(l, "a bad value was found but not located");  // unreachable
}

// Checks every index and score (duplicates aside: build_union finds those)
// and sets ws.narrow. Loops that only OR flags together vectorise; testing
// each value with a branch in build_union's loop cost about as much as the
// hash probe.
template <bool need_finite>
void check_values(const std::vector<RankedList>& hits_list, Workspace& ws) {
  std::uint64_t high_bits = 0;  // OR of every index above bit 31; the sign bit too
  for (std::size_t l = 0; l < hits_list.size(); ++l) {
    const RankedList& list = hits_list[l];
    std::uint64_t list_high = 0;
    for (std::size_t p = 0; p < list.size; ++p)
      list_high |= static_cast<std::uint64_t>(list.indices[p]) >> 32;
    bool bad = (list_high >> 31) != 0;  // a negative index
    int nan_or_inf = 0, unsorted = 0;
    for (std::size_t p = 0; p < list.size; ++p) {
      const float score = list.scores[p];
      // NaN fails every comparison; with need_finite, so does +-inf.
      if constexpr (need_finite)
        nan_or_inf |= !(std::fabs(score) <= std::numeric_limits<float>::max());
      else
        nan_or_inf |= score != score;
    }
    for (std::size_t p = 1; p < list.size; ++p) unsorted |= list.scores[p] > list.scores[p - 1];
    if (bad || nan_or_inf || unsorted) report_bad_value<need_finite>(list, l);
    high_bits |= list_high;
  }
  ws.narrow = high_bits == 0;
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
  ws.size = ws.out_size = 0;  // nothing to write until this fusion succeeds
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
// float's descending order, and back.
inline std::uint32_t descending_key(float f) {
  std::uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  const std::uint32_t ascending = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
  return ~ascending;
}

inline float from_descending_key(std::uint32_t key) {
  const std::uint32_t ascending = ~key;
  const std::uint32_t bits = (ascending & 0x80000000u) ? (ascending & 0x7FFFFFFFu) : ~ascending;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// How sort_union spreads fused scores over its buckets. Any mapping that is
// monotone in the score is correct; one that spreads the scores evenly is
// fast. RRF scores are mostly w / (k + rank) of documents found by one list,
// even in 1 / score; weighted sums of normalised scores are closer to even in
// the score itself.
enum class Spread { Reciprocal, Linear };

// Orders the union by fused score descending, ties by lower document index,
// into ws.order; only its first ws.out_size entries are guaranteed sorted.
//
// Sorting is the largest part of a fusion. For 2 lists x 1,000 candidates,
// std::sort of the ~1,750 entries alone took 14 us on the development
// machine; an LSD radix sort, and merging the runs that documents found in
// one list only already form, were no faster than what is here: one bucket
// pass and an insertion sort. Scores are spread over about as many buckets
// as there are entries (see Spread), so most buckets hold zero to two and the
// insertion sort only fixes neighbours; its loop exit is a mispredicted
// branch per move, so the evenness of the spread is what sets its cost.
// Should some input crowd the buckets anyway, the insertion sort gives up
// after a budget of moves and a comparison sort finishes.
//
// Buckets hold disjoint, ascending key ranges, so no entry ever moves to an
// earlier bucket: with a limit, sorting stops at the end of the bucket that
// holds the last entry kept.
template <bool narrow, Spread spread>
void sort_union(Workspace& ws) {
  const std::size_t n = ws.size;
  ensure_size(ws.order, n);
  ensure_size(ws.keys, n);
  ensure_size(ws.bucket_of, n);
  Entry* order = ws.order.data();
  std::uint64_t* keys = ws.keys.data();
  std::uint32_t* bucket_of = ws.bucket_of.data();
  double* fused = ws.sum.data();
  const std::int64_t* doc_index = ws.doc_index.data();
  if (n == 0) return;

  unsigned bucket_bits = 1;
  while ((std::size_t{1} << bucket_bits) < n && bucket_bits < 20) ++bucket_bits;
  const std::size_t buckets = std::size_t{1} << bucket_bits;
  ensure_size(ws.bucket_start, buckets + 1);
  std::uint32_t* start = ws.bucket_start.data();
  std::fill(start, start + buckets + 1, 0u);
  const double last = static_cast<double>(buckets - 1);
  // position(score) grows as the score falls; bucket = (position - origin) * scale.
  const auto position = [](double score) {
    if constexpr (spread == Spread::Reciprocal) {
      return 1.0 / score;
    } else {
      return -score;
    }
  };
  // Keys, and their range in integer arithmetic, which vectorises (a running
  // max/min of doubles does not: std::max's NaN rule is not maxpd's).
  std::uint32_t lo = std::numeric_limits<std::uint32_t>::max(), hi = 0;
  for (std::size_t u = 0; u < n; ++u) {
    // Rounded once; + 0.0f turns -0 into +0 so equal scores get equal keys.
    const float f = static_cast<float>(fused[u]) + 0.0f;
    const std::uint32_t key = descending_key(f);
    fused[u] = f;
    std::uint64_t full = static_cast<std::uint64_t>(key) << 32;
    if constexpr (narrow) full |= static_cast<std::uint64_t>(doc_index[u]);
    keys[u] = full;
    lo = std::min(lo, key);
    hi = std::max(hi, key);
  }
  const double best = from_descending_key(lo), worst = from_descending_key(hi);
  // Reciprocal needs scores > 0: with a 0 (a weight of 0), or a range of 0
  // (all scores equal), everything goes to bucket 0, where the insertion
  // sort's budget hands over to std::sort.
  const bool usable = spread == Spread::Linear || worst > 0.0;
  const double origin = position(best);
  const double range = usable ? position(worst) - origin : 0.0;
  if (range > 0.0 && std::isfinite(range)) {
    const double scale = last / range;
    // Finite and >= 0: every score lies in [worst, best], and rounding keeps
    // position() monotone. Through int32 (buckets <= 2^20): double -> int32
    // vectorises, -> uint32 does not. Counting is a loop of its own, as its
    // scattered increments would keep this one from vectorising.
    for (std::size_t u = 0; u < n; ++u)
      bucket_of[u] = static_cast<std::uint32_t>(
          static_cast<std::int32_t>(std::min((position(fused[u]) - origin) * scale, last)));
  } else {
    std::fill(bucket_of, bucket_of + n, 0u);
  }
  for (std::size_t u = 0; u < n; ++u) ++start[bucket_of[u] + 1];
  for (std::size_t b = 0; b < buckets; ++b) start[b + 1] += start[b];
  // Where the bucket holding the last kept entry ends: the first bucket start
  // past that entry (start[] is advanced to each bucket's end by the scatter).
  std::size_t sort_end = n;
  if (ws.out_size < n)
    sort_end = *std::upper_bound(start, start + buckets + 1,
                                 static_cast<std::uint32_t>(ws.out_size - 1));
  for (std::size_t u = 0; u < n; ++u)
    order[start[bucket_of[u]]++] = {keys[u], static_cast<std::uint32_t>(u)};

  // [&]: the narrow instantiation does not read doc_index (clang warns on an
  // explicit capture it does not use).
  const auto before = [&](const Entry& a, const Entry& b) {
    if constexpr (narrow) {
      return a.key < b.key;
    } else {
      return a.key < b.key || (a.key == b.key && doc_index[a.u] < doc_index[b.u]);
    }
  };
  // `largest` is order[i - 1], the largest entry so far, kept in registers:
  // reading it back from memory would chain every step to the previous
  // step's store. Most entries are already in place and store nothing.
  std::size_t budget = 16 * sort_end;  // moves; an even spread needs about n / 4
  Entry largest = order[0];
  for (std::size_t i = 1; i < sort_end; ++i) {
    const Entry entry = order[i];
    if (!before(entry, largest)) {
      largest = entry;
      continue;
    }
    std::size_t j = i;  // order[i - 1] = largest moves up; order[i] stays the largest
    do {
      order[j] = order[j - 1];
      --j;
    } while (j > 0 && before(entry, order[j - 1]));
    order[j] = entry;
    const std::size_t moved = i - j;
    if (moved > budget) {
      std::sort(order, order + sort_end, before);
      break;
    }
    budget -= moved;
  }
}

// Sets the result size for `limit` (0 = all) and sorts.
template <Spread spread>
void finish(Workspace& ws, std::size_t limit) {
  ws.out_size = (limit == 0 || limit > ws.size) ? ws.size : limit;
  if (ws.narrow)
    sort_union<true, spread>(ws);
  else
    sort_union<false, spread>(ws);
}

}  // namespace

Fusion::Fusion() : ws_(new Workspace) {}
Fusion::~Fusion() { delete ws_; }
std::size_t Fusion::size() const { return ws_->out_size; }
std::size_t Fusion::n_lists() const { return ws_->n_lists; }

void Fusion::write(const FusedView& out) const {
  const Workspace& ws = *ws_;
  const std::size_t m = ws.out_size, n_lists = ws.n_lists;
  const Entry* order = ws.order.data();
  const std::int64_t* doc_index = ws.doc_index.data();
  if (out.indices != nullptr) {
    if (ws.narrow)
      for (std::size_t i = 0; i < m; ++i)
        out.indices[i] = static_cast<std::int64_t>(order[i].key & 0xFFFFFFFFu);
    else
      for (std::size_t i = 0; i < m; ++i) out.indices[i] = doc_index[order[i].u];
  }
  if (out.scores != nullptr)
    for (std::size_t i = 0; i < m; ++i)
      out.scores[i] = from_descending_key(static_cast<std::uint32_t>(order[i].key >> 32));
  if (out.stage_ranks != nullptr)
    for (std::size_t l = 0; l < n_lists; ++l) {
      const std::int32_t* list_rank = ws.rank.data() + l * ws.capacity;
      std::int32_t* ranks = out.stage_ranks + l * m;
      for (std::size_t i = 0; i < m; ++i) ranks[i] = list_rank[order[i].u];
    }
}

std::size_t Fusion::rrf(const std::vector<RankedList>& hits_list, double k,
                        const std::vector<double>& weights, std::size_t limit) {
  if (!(std::isfinite(k) && k > 0))
    throw std::invalid_argument("k must be finite and > 0, got " + std::to_string(k));
  const std::size_t n_lists = hits_list.size();
  if (!weights.empty()) check_weights(weights, n_lists);
  Workspace& ws = *ws_;
  check_lists(hits_list, ws);
  // Every table is asked for the longest list's length, so none grows (and
  // moves) while a pointer into it is held.
  std::size_t longest = 0;
  for (const RankedList& list : hits_list) longest = std::max(longest, list.size);
  for (std::size_t l = 0; l < n_lists; ++l)
    ws.list_contribution[l] =
        rrf_contributions(ws, k, weights.empty() ? 1.0 : weights[l], longest, n_lists);
  check_values</*need_finite=*/false>(hits_list, ws);
  build_union</*add_missing=*/false>(hits_list, ws);
  finish<Spread::Reciprocal>(ws, limit);
  return ws.out_size;
}

std::size_t Fusion::weighted(const std::vector<RankedList>& hits_list,
                             const std::vector<double>& weights, ScoreNorm norm,
                             std::size_t limit) {
  const std::size_t n_lists = hits_list.size();
  check_weights(weights, n_lists);
  Workspace& ws = *ws_;
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
  check_values</*need_finite=*/true>(hits_list, ws);
  build_union</*add_missing=*/true>(hits_list, ws);
  finish<Spread::Linear>(ws, limit);
  return ws.out_size;
}

namespace {

// One Fusion per thread for the functions below. Not inlined on purpose:
// inlined, GCC re-derives the thread-local address (a __tls_get_addr call in
// a shared library) inside loops instead of keeping it in a register.
[[gnu::noinline]] Fusion& thread_fusion() {
  thread_local Fusion fusion;
  return fusion;
}

void write_list(const Fusion& fusion, FusedList& out) {
  const std::size_t m = fusion.size(), n_lists = fusion.n_lists();
  out.n_lists = n_lists;
  out.indices.resize(m);
  out.scores.resize(m);
  out.stage_ranks.resize(n_lists * m);
  out.stage_scores.resize(n_lists * m);
  fusion.write({out.indices.data(), out.scores.data(), out.stage_ranks.data()});
}

}  // namespace

void fuse_rrf(const std::vector<RankedList>& hits_list, double k, const std::vector<double>& weights,
              std::size_t limit, FusedList& out) {
  Fusion& fusion = thread_fusion();
  fusion.rrf(hits_list, k, weights, limit);
  write_list(fusion, out);
  gather_stage_scores(hits_list, out.stage_ranks.data(), out.size(), out.stage_scores.data());
}

void fuse_weighted(const std::vector<RankedList>& hits_list, const std::vector<double>& weights,
                   ScoreNorm norm, std::size_t limit, FusedList& out) {
  Fusion& fusion = thread_fusion();
  fusion.weighted(hits_list, weights, norm, limit);
  write_list(fusion, out);
  gather_stage_scores(hits_list, out.stage_ranks.data(), out.size(), out.stage_scores.data());
}

void gather_stage_scores(const std::vector<RankedList>& hits_list, const std::int32_t* stage_ranks,
                         std::size_t size, float* out) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (std::size_t l = 0; l < hits_list.size(); ++l) {
    const std::int32_t* ranks = stage_ranks + l * size;
    const auto length = static_cast<std::int64_t>(hits_list[l].size);
    for (std::size_t i = 0; i < size; ++i)
      if (ranks[i] < 0 || ranks[i] > length)
        bad_list(l, "stage rank " + std::to_string(ranks[i]) + " of fused document " +
                        std::to_string(i) + " is outside the list's " +
                        std::to_string(length) + " entries");
    const float* scores = hits_list[l].scores;
    float* row = out + l * size;
    for (std::size_t i = 0; i < size; ++i)
      row[i] = ranks[i] != 0 ? scores[ranks[i] - 1] : nan;
  }
}

}  // namespace secondopinion
