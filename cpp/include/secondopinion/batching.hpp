// How a call's token sequences are run: one sequence per ONNX Runtime Run,
// several Runs side by side.
//
// Why one sequence per Run: the shipped models are dynamically quantised to
// int8, and DynamicQuantizeLinear computes one activation scale per tensor per
// Run, i.e. over every row (padding included) of a padded batch. A pair's
// logit then moved by up to 0.84 (AVX-512 VNNI) and 0.85 (AVX2) with the pairs
// that shared its batch (SciFact pairs among random passages,
// tools/measure_invariance.py). Run alone, a sequence's input tensor is the
// sequence itself: the scale is its own, no padding is computed, and its
// output is a function of its tokens only, whatever the model directory holds
// (fp32, static or dynamic int8). Each Run is single-threaded inside ONNX
// Runtime (intra-op threads 1), so the arithmetic does not depend on a thread
// count either; the parallelism comes from running `threads` sequences at
// once, longest first, each worker taking the next sequence when it is free.
//
// Measured on the 2-core AMD EPYC (Zen 4, AVX-512 VNNI), shipped int8 models,
// the same calls alternated between a build of each kind:
// - 100 SciFact candidates per query, p50: padded batches of 1,024 tokens
//   2,457 ms at 1 thread and 1,372 ms at 2 intra-op threads; one sequence
//   per Run 2,149 ms and 1,123 ms (2 single-threaded Runs side by side).
//   Long sequences gain: a Run's activations stay in the 2 MB L2.
// - Short sequences lose: a Run reads every weight once (about 7 MB for the
//   L4 cross-encoder, 11 MB for the L6 embedder, int8), which a batch shares
//   among its rows. Per sequence, alone vs in 1,024-token batches: 1.9x at 8
//   tokens, 1.3-1.4x at 32, 1.06-1.08x at 64, 0.8-0.94x at 128 and more;
//   embedding 100 SciFact queries (~20 tokens) took 1.39x as long at 1 thread
//   and 1.14x at 2. Invariance is the price: a padded batch cannot give a
//   dynamically quantised row a scale of its own.
//
// Pure functions: no ONNX Runtime here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace secondopinion {

// Tokens in flight at once (summed over the sequences running side by side)
// when the caller gives no budget. It bounds a call's activation memory: a
// MiniLM-sized BERT keeps ~7,700 floats per token at width 512 (FFN plus 12
// heads of attention scores), so 16,384 tokens is ~0.5 GB, and it lets 32
// max-length (512) sequences run at once: on ordinary machines the thread
// count, not this budget, sets the parallelism.
inline constexpr std::size_t kDefaultBatchTokens = 16384;

// Token sequences laid end to end: sequence i is ids[offsets[i] .. offsets[i+1]).
// Borrowed pointers; the caller keeps them alive for the duration of a call.
struct TokenSequences {
  const std::int64_t* ids = nullptr;
  const std::int64_t* type_ids = nullptr;  // same layout as ids; nullptr means all zero
  const std::int64_t* offsets = nullptr;   // count + 1 entries, offsets[0] == 0
  std::size_t count = 0;
  // The tokenizer's padding id, for callers that pad; Runs of one sequence
  // never pad, so the session does not read it.
  std::int64_t pad_id = 0;

  std::size_t length(std::size_t i) const {
    return static_cast<std::size_t>(offsets[i + 1] - offsets[i]);
  }
};

// Throws std::invalid_argument unless offsets start at 0, never decrease, end
// at `ids_size`, and every sequence has between 1 and `max_length` tokens
// (max_length 0: no upper bound).
void validate_sequences(const TokenSequences& seqs, std::size_t ids_size, std::size_t max_length);

struct RunPlan {
  // Sequence indices in the order workers take them: longest first (ties:
  // lower index first), so the longest Runs do not end up last on one worker.
  std::vector<std::size_t> order;
  // Runs side by side: min(threads, sequences, batch_tokens / longest), at
  // least 1 when there is a sequence.
  std::size_t parallel = 0;
  std::size_t real_tokens = 0;  // sum of all lengths: every token computed is a real one
  // The most tokens in flight at once: the `parallel` longest lengths summed.
  // At most batch_tokens, unless one sequence alone is longer.
  std::size_t peak_tokens = 0;
};

// Plans a call over sequences of these lengths with `threads` workers (>= 1)
// and a budget of `batch_tokens` tokens in flight (>= 1). Throws
// std::invalid_argument when batch_tokens or threads is 0 or a length is 0.
RunPlan plan_runs(const std::vector<std::size_t>& lengths, std::size_t batch_tokens,
                  std::size_t threads);
RunPlan plan_runs(const TokenSequences& seqs, std::size_t batch_tokens, std::size_t threads);

}  // namespace secondopinion
