#include "secondopinion/batching.hpp"

#include <algorithm>
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

RunPlan plan_runs(const std::vector<std::size_t>& lengths, std::size_t batch_tokens,
                  std::size_t threads) {
  if (batch_tokens == 0) throw std::invalid_argument("batch_tokens must be positive");
  if (threads == 0) throw std::invalid_argument("threads must be positive");
  for (std::size_t i = 0; i < lengths.size(); ++i) {
    if (lengths[i] == 0) throw std::invalid_argument("sequence " + std::to_string(i) + " has no tokens");
  }
  RunPlan plan;
  plan.order.resize(lengths.size());
  std::iota(plan.order.begin(), plan.order.end(), std::size_t{0});
  std::stable_sort(plan.order.begin(), plan.order.end(),
                   [&](std::size_t a, std::size_t b) { return lengths[a] > lengths[b]; });
  if (lengths.empty()) return plan;
  const std::size_t longest = lengths[plan.order.front()];
  plan.parallel = std::max<std::size_t>(1, std::min({threads, lengths.size(), batch_tokens / longest}));
  for (std::size_t len : lengths) plan.real_tokens += len;
  for (std::size_t k = 0; k < plan.parallel; ++k) plan.peak_tokens += lengths[plan.order[k]];
  return plan;
}

RunPlan plan_runs(const TokenSequences& seqs, std::size_t batch_tokens, std::size_t threads) {
  std::vector<std::size_t> lengths(seqs.count);
  for (std::size_t i = 0; i < seqs.count; ++i) lengths[i] = seqs.length(i);
  return plan_runs(lengths, batch_tokens, threads);
}

}  // namespace secondopinion
