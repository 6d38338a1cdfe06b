// Score fusion: one ranked list out of several (BM25, vector search, ...).
//
// Both methods work on the union of the candidates, joined on their int64
// index (the document's position in the corpus).
//
// Input contract, checked (std::invalid_argument names the list, as
// hits_list[i], and the position):
// every list is sorted by score descending (its rank is its position + 1),
// holds no NaN, no negative index and no index twice. Weighted fusion also
// needs finite scores, since an infinite score leaves nothing to normalise.
//
// Thread-safe: the free functions fuse in per-thread scratch buffers (kept
// between calls), so fusions may run concurrently.
//
// Output: sorted by fused score descending, ties by lower index, so the same
// input always gives the same order. Fused scores are accumulated in double,
// summing over the lists in their given order, and rounded to float once; the
// order is that of the rounded (returned) scores.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace secondopinion {

// A view of one ranked list; the caller owns the memory.
struct RankedList {
  const std::int64_t* indices = nullptr;
  const float* scores = nullptr;
  std::size_t size = 0;
};

// How fuse_weighted makes scores from different stages comparable.
enum class ScoreNorm {
  MinMax,  // (s - min) / (max - min); a constant list becomes all 0
  ZScore,  // (s - mean) / std (population std); std = 0 gives all 0
  None,    // raw scores
};

// Where a fusion's result is written; the caller owns the memory, sized for
// Fusion::size() documents and Fusion::n_lists() lists. A null pointer skips
// that output.
struct FusedView {
  std::int64_t* indices = nullptr;
  float* scores = nullptr;
  // Row-major [n_lists][size]: the 1-based rank in each input list, 0 where
  // the document is absent from that list. A document's first list is the
  // first row with a rank, which lets a caller carry per-document payloads
  // such as ids; its score in each list is gather_stage_scores's.
  std::int32_t* stage_ranks = nullptr;
};

// The fused list plus, for every fused document, where it stood in each input
// list: what a pipeline keeps to explain a result.
struct FusedList {
  std::vector<std::int64_t> indices;
  std::vector<float> scores;
  std::vector<std::int32_t> stage_ranks;  // as in FusedView
  // Row-major [n_lists][size()]: the score in each input list, NaN where absent.
  std::vector<float> stage_scores;
  std::size_t n_lists = 0;

  std::size_t size() const { return indices.size(); }
};

// A fusion in two steps, for callers that own their output memory (the Python
// bindings write straight into numpy arrays): rrf() or weighted() fuses and
// sorts, then write() copies the result out. Scratch buffers are kept between
// calls, so a Fusion reused in a loop allocates nothing after its first calls.
// One Fusion serves one thread at a time; the functions below keep one per
// thread.
class Fusion {
 public:
  Fusion();
  ~Fusion();
  Fusion(const Fusion&) = delete;
  Fusion& operator=(const Fusion&) = delete;

  // See fuse_rrf and fuse_weighted below; these return size().
  std::size_t rrf(const std::vector<RankedList>& hits_list, double k,
                  const std::vector<double>& weights, std::size_t limit);
  std::size_t weighted(const std::vector<RankedList>& hits_list,
                       const std::vector<double>& weights, ScoreNorm norm, std::size_t limit);

  // Documents in the last result, and lists it was fused from.
  std::size_t size() const;
  std::size_t n_lists() const;
  // Writes the last result; each non-null pointer must hold what FusedView says.
  void write(const FusedView& out) const;

  struct Workspace;  // scratch buffers, defined in fusion.cpp

 private:
  Workspace* ws_;
};

// Reciprocal rank fusion (Cormack et al., 2009):
//   score(d) = sum over lists i holding d of weights[i] / (k + rank_i(d)).
// A document missing from a list gets nothing from it. weights empty means 1
// for every list; otherwise one finite, non-negative weight per list. k > 0.
// limit = 0 keeps every fused document, otherwise the best `limit`.
// `out` is overwritten; its buffers are reused, so a caller fusing in a loop
// allocates nothing after the first call.
void fuse_rrf(const std::vector<RankedList>& hits_list, double k, const std::vector<double>& weights,
              std::size_t limit, FusedList& out);

// Weighted sum of normalised scores:
//   score(d) = sum over lists i of weights[i] * norm_i(d),
// where norm_i(d) is d's normalised score in list i, or, when d is missing
// from list i, the smallest normalised score of list i: a document a stage did
// not return is treated as no better than the worst one it did (an empty list
// contributes 0). weights: one finite, non-negative weight per list.
void fuse_weighted(const std::vector<RankedList>& hits_list, const std::vector<double>& weights,
                   ScoreNorm norm, std::size_t limit, FusedList& out);

// Each fused document's score in each list, from the lists' scores and the
// fusion's stage_ranks ([n_lists][size], as in FusedView): out[l * size + i]
// is hits_list[l].scores[rank - 1], NaN where the rank is 0. Only the lists'
// scores are read. A rank beyond its list throws std::invalid_argument.
// Kept apart from the fusion because most callers never need these: the
// Python FusedHits computes them on first use.
void gather_stage_scores(const std::vector<RankedList>& hits_list, const std::int32_t* stage_ranks,
                         std::size_t size, float* out);

}  // namespace secondopinion
