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

// Scratch space of one thread's fusion calls. Fusing is called once per query,
// on lists of a few thousand candidates, where allocating and zeroing fresh
// buffers would cost as much as the fusion itself: keep them between calls.
struct Workspace {
  std::vector<std::int32_t> slots;       // open-addressing table: union position or -1
  std::vector<std::int64_t> doc_index;   // union position -> document index
  std::vector<std::int32_t> first_list;  // union position -> first list holding it
  std::vector<std::int64_t> first_pos;   // ... and its position there
  std::vector<std::int32_t> ranks;       // [n_lists][capacity], 0 = absent
  std::vector<float> scores;             // [n_lists][capacity], valid where rank != 0
  std::vector<float> fused;              // union position -> fused score
  std::vector<std::uint64_t> order, order_tmp;
  std::size_t capacity = 0;  // room per list in ranks/scores: the total candidate count
  std::size_t size = 0;      // documents in the union
  unsigned shift = 0;        // 64 - log2(slots.size())
};

// Not inlined on purpose: inlined, GCC re-derives the thread-local address
// (a __tls_get_addr call in a shared library) inside the hot loops instead of
// keeping the reference in a register.
[[gnu::noinline]] Workspace& workspace() {
  thread_local Workspace ws;
  return ws;
}

// Fibonacci hashing: document indices are often small and dense, which the
// multiply spreads over the whole table.
inline std::size_t slot_of(std::int64_t index, unsigned shift) {
  return static_cast<std::size_t>((static_cast<std::uint64_t>(index) * 0x9E3779B97F4A7C15ull) >>
                                  shift);
}

// Reads and checks every list, building the union of their documents with
// each one's rank and score in every list.
void build_union(const std::vector<RankedList>& hits_list, bool need_finite, Workspace& ws) {
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
  // Ranks are int32 and union positions share a 64-bit sort key with the score.
  if (total >= static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
    throw std::invalid_argument("hits_list: more than 2^31 - 1 candidates in all");

  const std::size_t n_lists = hits_list.size();
  std::size_t table = 16;
  unsigned bits = 4;
  while (table < 2 * total) {  // load factor <= 1/2 keeps probe runs short
    table <<= 1;
    ++bits;
  }
  ws.shift = 64 - bits;
  ws.slots.assign(table, -1);
  ws.capacity = total;
  ws.size = 0;
  if (ws.doc_index.size() < total) {
    ws.doc_index.resize(total);
    ws.first_list.resize(total);
    ws.first_pos.resize(total);
    ws.fused.resize(total);
  }
  ws.ranks.assign(n_lists * total, 0);
  if (ws.scores.size() < n_lists * total) ws.scores.resize(n_lists * total);

  const std::size_t mask = table - 1;
  const unsigned shift = ws.shift;
  std::int32_t* slots = ws.slots.data();
  std::int64_t* doc_index = ws.doc_index.data();
  std::int32_t* first_list = ws.first_list.data();
  std::int64_t* first_pos = ws.first_pos.data();
  std::size_t size = 0;
  for (std::size_t l = 0; l < n_lists; ++l) {
    const RankedList& list = hits_list[l];
    std::int32_t* ranks = ws.ranks.data() + l * total;
    float* scores = ws.scores.data() + l * total;
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
      std::size_t s = slot_of(index, shift);
      std::int32_t u;
      while ((u = slots[s]) >= 0 && doc_index[u] != index) s = (s + 1) & mask;
      if (u < 0) {
        u = static_cast<std::int32_t>(size++);
        slots[s] = u;
        doc_index[u] = index;
        first_list[u] = static_cast<std::int32_t>(l);
        first_pos[u] = static_cast<std::int64_t>(p);
      }
      if (ranks[u] != 0)
        bad_list(l, "index " + std::to_string(index) + " appears twice (positions " +
                        std::to_string(ranks[u] - 1) + " and " + std::to_string(p) + ")");
      ranks[u] = static_cast<std::int32_t>(p + 1);
      scores[u] = score;
    }
  }
  ws.size = size;
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

// Maps a float to an unsigned key whose ascending order is the float's
// descending order (NaN excluded; -0 must have been turned into +0).
inline std::uint32_t descending_key(float f) {
  std::uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  const std::uint32_t ascending = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
  return ~ascending;
}

// Orders the union by fused score descending, ties by lower document index,
// and writes the best `limit` (0 = all) into `out`.
//
// A comparison sort of ~2,000 entries took most of the 20 us budget here, so
// this is a stable LSD radix sort on the 32-bit score key, three passes of 11
// bits (fewer passes beat smaller histograms at this size; a pass whose digit
// is the same everywhere is skipped). The union position rides in the low half
// of each 64-bit entry. A last pass orders runs of equal scores by document
// index; such runs are short (RRF gives documents at the same rank of
// different lists the same score).
void sort_and_emit(Workspace& ws, std::size_t n_lists, std::size_t limit, FusedList& out) {
  constexpr unsigned kBits = 11;
  constexpr std::size_t kBuckets = std::size_t{1} << kBits;
  constexpr std::uint32_t kMask = kBuckets - 1;
  const std::size_t n = ws.size;
  ws.order.resize(n);
  ws.order_tmp.resize(n);
  std::uint64_t* order = ws.order.data();
  std::uint64_t* tmp = ws.order_tmp.data();
  const float* fused = ws.fused.data();
  std::uint32_t hist[3][kBuckets];
  std::memset(hist, 0, sizeof hist);
  for (std::size_t u = 0; u < n; ++u) {
    const std::uint32_t key = descending_key(fused[u]);
    order[u] = (static_cast<std::uint64_t>(key) << 32) | u;
    ++hist[0][key & kMask];
    ++hist[1][(key >> kBits) & kMask];
    ++hist[2][key >> (2 * kBits)];
  }
  for (unsigned d = 0; d < 3 && n > 0; ++d) {
    const unsigned shift = 32 + kBits * d;
    std::uint32_t* offset = hist[d];
    if (offset[(order[0] >> shift) & kMask] == n) continue;  // one bucket: nothing moves
    std::uint32_t sum = 0;
    for (std::size_t b = 0; b < kBuckets; ++b) {
      const std::uint32_t count = offset[b];
      offset[b] = sum;
      sum += count;
    }
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint64_t entry = order[i];
      tmp[offset[(entry >> shift) & kMask]++] = entry;
    }
    std::swap(order, tmp);
  }
  const std::int64_t* doc_index = ws.doc_index.data();
  const auto doc_of = [doc_index](std::uint64_t entry) {
    return doc_index[static_cast<std::size_t>(entry & 0xFFFFFFFFu)];
  };
  for (std::size_t i = 1; i < n; ++i) {  // insertion sort within equal-score runs
    const std::uint64_t entry = order[i];
    if ((order[i - 1] >> 32) != (entry >> 32)) continue;
    std::size_t j = i;
    while (j > 0 && (order[j - 1] >> 32) == (entry >> 32) && doc_of(order[j - 1]) > doc_of(entry)) {
      order[j] = order[j - 1];
      --j;
    }
    order[j] = entry;
  }

  const std::size_t m = (limit == 0 || limit > n) ? n : limit;
  out.n_lists = n_lists;
  out.indices.resize(m);
  out.scores.resize(m);
  out.source_list.resize(m);
  out.source_position.resize(m);
  out.stage_ranks.resize(n_lists * m);
  out.stage_scores.resize(n_lists * m);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (std::size_t i = 0; i < m; ++i) {
    const std::size_t u = static_cast<std::size_t>(order[i] & 0xFFFFFFFFu);
    out.indices[i] = doc_index[u];
    out.scores[i] = fused[u];
    out.source_list[i] = ws.first_list[u];
    out.source_position[i] = ws.first_pos[u];
  }
  for (std::size_t l = 0; l < n_lists; ++l) {
    const std::int32_t* ranks = ws.ranks.data() + l * ws.capacity;
    const float* scores = ws.scores.data() + l * ws.capacity;
    std::int32_t* out_ranks = out.stage_ranks.data() + l * m;
    float* out_scores = out.stage_scores.data() + l * m;
    for (std::size_t i = 0; i < m; ++i) {
      const std::size_t u = static_cast<std::size_t>(order[i] & 0xFFFFFFFFu);
      out_ranks[i] = ranks[u];
      out_scores[i] = ranks[u] != 0 ? scores[u] : nan;
    }
  }
}

// Rounds the double accumulator to the float that is returned and sorted on;
// adding +0 turns -0 into +0 so that equal scores get equal sort keys.
inline float to_output(double score) { return static_cast<float>(score) + 0.0f; }

}  // namespace

void fuse_rrf(const std::vector<RankedList>& hits_list, double k, const std::vector<double>& weights,
              std::size_t limit, FusedList& out) {
  if (!(std::isfinite(k) && k > 0))
    throw std::invalid_argument("k must be finite and > 0, got " + std::to_string(k));
  const std::size_t n_lists = hits_list.size();
  if (!weights.empty()) check_weights(weights, n_lists);
  Workspace& ws = workspace();
  build_union(hits_list, /*need_finite=*/false, ws);
  for (std::size_t u = 0; u < ws.size; ++u) {
    double sum = 0.0;
    for (std::size_t l = 0; l < n_lists; ++l) {
      const std::int32_t rank = ws.ranks[l * ws.capacity + u];
      if (rank != 0) sum += (weights.empty() ? 1.0 : weights[l]) / (k + rank);
    }
    ws.fused[u] = to_output(sum);
  }
  sort_and_emit(ws, n_lists, limit, out);
}

void fuse_weighted(const std::vector<RankedList>& hits_list, const std::vector<double>& weights,
                   ScoreNorm norm, std::size_t limit, FusedList& out) {
  const std::size_t n_lists = hits_list.size();
  check_weights(weights, n_lists);
  Workspace& ws = workspace();
  build_union(hits_list, /*need_finite=*/true, ws);

  // normalised(s) = (s - shift) / scale, per list; `floor` is what a missing
  // document gets: the list's smallest normalised score.
  std::vector<double> shift(n_lists, 0.0), scale(n_lists, 1.0), floor(n_lists, 0.0);
  std::vector<char> constant(n_lists, 0);
  for (std::size_t l = 0; l < n_lists; ++l) {
    const RankedList& list = hits_list[l];
    if (list.size == 0) continue;  // contributes 0 to every document
    const double hi = list.scores[0], lo = list.scores[list.size - 1];  // sorted descending
    // Tested on the extremes, not on std == 0: a mean accumulated in double
    // can miss a constant value by an ulp and leave a tiny, meaningless std.
    constant[l] = norm != ScoreNorm::None && hi == lo;
    switch (norm) {
      case ScoreNorm::MinMax:
        shift[l] = lo;
        scale[l] = hi - lo;
        break;
      case ScoreNorm::ZScore: {
        double mean = 0.0;
        for (std::size_t p = 0; p < list.size; ++p) mean += list.scores[p];
        mean /= static_cast<double>(list.size);
        double var = 0.0;
        for (std::size_t p = 0; p < list.size; ++p) {
          const double d = list.scores[p] - mean;
          var += d * d;
        }
        const double stdev = std::sqrt(var / static_cast<double>(list.size));
        shift[l] = mean;
        scale[l] = stdev;
        break;
      }
      case ScoreNorm::None:
        break;
    }
    // A constant list ranks nothing above anything: it contributes 0 to all.
    floor[l] = constant[l] ? 0.0 : (lo - shift[l]) / scale[l];
  }

  for (std::size_t u = 0; u < ws.size; ++u) {
    double sum = 0.0;
    for (std::size_t l = 0; l < n_lists; ++l) {
      const std::size_t at = l * ws.capacity + u;
      double value = floor[l];
      if (ws.ranks[at] != 0 && !constant[l]) value = (ws.scores[at] - shift[l]) / scale[l];
      sum += weights[l] * value;
    }
    ws.fused[u] = to_output(sum);
  }
  sort_and_emit(ws, n_lists, limit, out);
}

}  // namespace secondopinion
