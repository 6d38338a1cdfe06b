// Length-aware batching of token sequences for transformer inference.
//
// A batch costs about (rows x its longest row) tokens of compute, so batching
// in arrival order pays for every pad token up to each batch's longest member.
// Sorting by length makes neighbours similar; cutting the sorted list into
// batches is then a trade: more, smaller batches waste fewer pad tokens but
// pay a fixed cost per Run (thread hand-offs, ~50 kernels per layer, and GEMMs
// with few rows run below peak). Batches are chosen to minimise
//   sum over batches of (rows x width + batch_overhead_tokens)
// subject to rows x width <= batch_tokens, which bounds the memory of one Run.
// Pure functions: no ONNX Runtime here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace secondopinion {

// Padded tokens per batch when the caller gives none. Small batches are fast
// because of the cache, not the padding: a batch's intermediate tensors grow
// with its tokens (a MiniLM-sized BERT keeps 1,536 FFN floats per token and,
// at width 256, 12 x 256 attention scores per token: ~50 MB for 4,096
// tokens, ~6 MB for 512), and ONNX Runtime materialises them between ops.
// Measured on the 2-core AMD EPYC, quiet, MiniLM-L6 cross-encoder, pairs/s
// at budgets 512 / 1,024 / 4,096 tokens: SciFact abstracts (width 256) fp32
// 1 thread 16.7 / 16.1 / 14.4, 2 threads 31.8 / 29.2 / 27.4; RAG chunks
// (35-512 tokens) fp32 1 thread 28.6 / 27.5 / 27.0, int8 2 threads
// 107 / 111 / 103; short pairs (~40 tokens) 2 threads 176 / 192 / 174, and
// the embedder on ~15-token texts 1,005 / 1,045 / 831. 1,024 is best or
// within 4% of it everywhere.
inline constexpr std::size_t kDefaultBatchTokens = 1024;

// The fixed cost of one more Run, in tokens of compute. On the same machine
// and model, running every distinct length as its own batch (overhead 0) was
// ~15% slower on short pairs (~20 tokens) than merging them, and no faster on
// long ones; 64 merges neighbours unless that would pad more than 64 tokens.
inline constexpr std::size_t kDefaultBatchOverheadTokens = 64;

// Token sequences laid end to end: sequence i is ids[offsets[i] .. offsets[i+1]).
// Borrowed pointers; the caller keeps them alive for the duration of a call.
struct TokenSequences {
  const std::int64_t* ids = nullptr;
  const std::int64_t* type_ids = nullptr;  // same layout as ids; nullptr means all zero
  const std::int64_t* offsets = nullptr;   // count + 1 entries, offsets[0] == 0
  std::size_t count = 0;
  std::int64_t pad_id = 0;

  std::size_t length(std::size_t i) const {
    return static_cast<std::size_t>(offsets[i + 1] - offsets[i]);
  }
};

// Throws std::invalid_argument unless offsets start at 0, never decrease, end
// at `ids_size`, and every sequence has between 1 and `max_length` tokens
// (max_length 0: no upper bound).
void validate_sequences(const TokenSequences& seqs, std::size_t ids_size, std::size_t max_length);

// One batch: rows plan.order[first .. first+rows), padded to `width` tokens.
struct Batch {
  std::size_t first = 0;
  std::size_t rows = 0;
  std::size_t width = 0;
};

struct BatchPlan {
  std::vector<std::size_t> order;  // sequence indices, longest first (ties: lower index first)
  std::vector<Batch> batches;
  std::size_t real_tokens = 0;    // sum of all lengths
  std::size_t padded_tokens = 0;  // sum over batches of rows x width

  // Fraction of the computed tokens that are padding: 1 - real / padded.
  double padding_waste() const {
    return padded_tokens == 0 ? 0.0 : 1.0 - double(real_tokens) / double(padded_tokens);
  }
};

// Sorts by length (descending; ties by lower index) and cuts the sorted list
// into consecutive batches that minimise total padded tokens plus
// `batch_overhead_tokens` per batch, each within `batch_tokens` (a row longer
// than the budget gets a batch of its own). Dynamic programming over the
// sorted list: O(n x rows per batch). Throws std::invalid_argument when
// batch_tokens is 0 or a length is 0.
BatchPlan plan_batches(const std::vector<std::size_t>& lengths, std::size_t batch_tokens,
                       std::size_t batch_overhead_tokens = kDefaultBatchOverheadTokens);
BatchPlan plan_batches(const TokenSequences& seqs, std::size_t batch_tokens,
                       std::size_t batch_overhead_tokens = kDefaultBatchOverheadTokens);

// The model inputs of one batch, row-major [rows, width], right-padded.
struct PaddedBatch {
  std::vector<std::int64_t> input_ids;
  std::vector<std::int64_t> attention_mask;
  std::vector<std::int64_t> token_type_ids;
  std::size_t rows = 0;
  std::size_t width = 0;
};

// Fills `out` (reusing its capacity) with the rows of `batch`.
void pad_batch(const TokenSequences& seqs, const BatchPlan& plan, const Batch& batch,
               PaddedBatch& out);

}  // namespace secondopinion
