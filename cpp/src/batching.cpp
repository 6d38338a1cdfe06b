#include "secondopinion/batching.hpp"

#include <algorithm>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>

namespace secondopinion {

void validate_sequences(const TokenSequences& seqs, std::size_t ids_size, std::size_t max_length) {
  if (seqs.offsets == nullptr) throw std::invalid_argument("offsets must not be null");
  if (seqs.offsets[0] != 0) {
    throw std::invalid_argument("offsets[0] must be 0, got " + std::to_string(seqs.offsets[0]));
  }
  if (seqs.count > 0 && seqs.ids == nullptr) throw std::invalid_argument("ids must not be null");
  for (std::size_t i = 0; i < seqs.count; ++i) {
    const std::int64_t begin = seqs.offsets[i];
    const std::int64_t end = seqs.offsets[i + 1];
    if (end <= begin) {
      throw std::invalid_argument("sequence " + std::to_string(i) +
                                  " is empty or offsets decrease (offsets[" + std::to_string(i) +
                                  "]=" + std::to_string(begin) + ", offsets[" +
                                  std::to_string(i + 1) + "]=" + std::to_string(end) + ")");
    }
    if (max_length != 0 && static_cast<std::size_t>(end - begin) > max_length) {
      throw std::invalid_argument("sequence " + std::to_string(i) + " has " +
                                  std::to_string(end - begin) + " tokens, more than max_length " +
                                  std::to_string(max_length));
    }
  }
  if (static_cast<std::size_t>(seqs.offsets[seqs.count]) != ids_size) {
    throw std::invalid_argument("offsets end at " + std::to_string(seqs.offsets[seqs.count]) +
                                " but there are " + std::to_string(ids_size) + " ids");
  }
}

BatchPlan plan_batches(const std::vector<std::size_t>& lengths, std::size_t batch_tokens,
                       std::size_t batch_overhead_tokens) {
  if (batch_tokens == 0) throw std::invalid_argument("batch_tokens must be positive");
  for (std::size_t i = 0; i < lengths.size(); ++i) {
    if (lengths[i] == 0) throw std::invalid_argument("sequence " + std::to_string(i) + " has no tokens");
  }
  const std::size_t n = lengths.size();
  BatchPlan plan;
  plan.order.resize(n);
  std::iota(plan.order.begin(), plan.order.end(), std::size_t{0});
  // Longest first: a batch's first row sets its width, and the largest
  // allocation of a call happens at its start, before smaller batches have
  // carved up the arena.
  std::stable_sort(plan.order.begin(), plan.order.end(),
                   [&](std::size_t a, std::size_t b) { return lengths[a] > lengths[b]; });

  // cost[i]: cheapest way to run the sorted rows i..n-1; end[i]: where the
  // first batch of that way ends. A batch [i, j) has width lengths[order[i]].
  std::vector<std::size_t> cost(n + 1, 0), end(n + 1, n);
  for (std::size_t i = n; i-- > 0;) {
    const std::size_t width = lengths[plan.order[i]];
    cost[i] = std::numeric_limits<std::size_t>::max();
    for (std::size_t j = i + 1; j <= n; ++j) {
      const std::size_t padded = (j - i) * width;
      if (j - i > 1 && padded > batch_tokens) break;
      const std::size_t c = padded + batch_overhead_tokens + cost[j];
      if (c <= cost[i]) {  // on ties, the larger batch: fewer Runs, remainder last
        cost[i] = c;
        end[i] = j;
      }
    }
  }
  for (std::size_t i = 0; i < n; i = end[i]) {
    plan.batches.push_back(Batch{i, end[i] - i, lengths[plan.order[i]]});
  }
  for (const Batch& b : plan.batches) {
    for (std::size_t r = 0; r < b.rows; ++r) plan.real_tokens += lengths[plan.order[b.first + r]];
    plan.padded_tokens += b.rows * b.width;
  }
  return plan;
}

BatchPlan plan_batches(const TokenSequences& seqs, std::size_t batch_tokens,
                       std::size_t batch_overhead_tokens) {
  std::vector<std::size_t> lengths(seqs.count);
  for (std::size_t i = 0; i < seqs.count; ++i) lengths[i] = seqs.length(i);
  return plan_batches(lengths, batch_tokens, batch_overhead_tokens);
}

void pad_batch(const TokenSequences& seqs, const BatchPlan& plan, const Batch& batch,
               PaddedBatch& out) {
  const std::size_t cells = batch.rows * batch.width;
  out.rows = batch.rows;
  out.width = batch.width;
  out.input_ids.assign(cells, seqs.pad_id);
  out.attention_mask.assign(cells, 0);
  out.token_type_ids.assign(cells, 0);
  for (std::size_t r = 0; r < batch.rows; ++r) {
    const std::size_t seq = plan.order[batch.first + r];
    const std::int64_t begin = seqs.offsets[seq];
    const std::size_t len = seqs.length(seq);
    const std::size_t row = r * batch.width;
    std::copy_n(seqs.ids + begin, len, out.input_ids.begin() + row);
    std::fill_n(out.attention_mask.begin() + row, len, std::int64_t{1});
    if (seqs.type_ids != nullptr) {
      std::copy_n(seqs.type_ids + begin, len, out.token_type_ids.begin() + row);
    }
  }
}

}  // namespace secondopinion
