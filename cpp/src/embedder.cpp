#include "secondopinion/embedder.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace secondopinion {

Pooling parse_pooling(const std::string& name) {
  if (name == "mean") return Pooling::kMean;
  if (name == "cls") return Pooling::kCls;
  throw std::invalid_argument("pooling must be 'mean' or 'cls', got '" + name + "'");
}

Embedder::Embedder(const std::string& model_path, const SessionConfig& config,
                   std::size_t max_length, Pooling pooling, bool normalize)
    : session_(model_path, config), max_length_(max_length), pooling_(pooling), normalize_(normalize) {
  const OutputInfo* out = nullptr;
  for (const char* name : {"last_hidden_state", "token_embeddings"}) {
    if ((out = session_.find_output(name)) != nullptr) break;
  }
  if (out == nullptr) {
    std::string names;
    for (const auto& o : session_.outputs()) names += (names.empty() ? "'" : ", '") + o.name + "'";
    throw std::invalid_argument(model_path + ": an embedder needs a float32 output "
                                "'last_hidden_state' or 'token_embeddings' [batch, tokens, hidden]; "
                                "the model has " + names);
  }
  if (out->shape.size() != 3) {
    throw std::invalid_argument(model_path + ": output '" + out->name + "' has " +
                                std::to_string(out->shape.size()) +
                                " dimensions; token states are [batch, tokens, hidden]");
  }
  output_name_ = out->name;
  if (out->shape[2] > 0) {
    dimension_ = static_cast<std::size_t>(out->shape[2]);
  } else {
    // The hidden size is left dynamic in the graph: one single-token run finds it.
    const std::int64_t ids[] = {0};
    const std::int64_t offsets[] = {0, 1};
    TokenSequences probe{ids, nullptr, offsets, 1, 0};
    const BatchPlan plan = plan_batches(probe, 1);
    session_.run_plan(probe, plan, output_name_, [&](const Batch&, const Ort::Value& value) {
      dimension_ = static_cast<std::size_t>(value.GetTensorTypeAndShapeInfo().GetShape().back());
    });
  }
}

void Embedder::encode(const TokenSequences& seqs, std::size_t ids_size, std::size_t batch_tokens,
                      float* out) const {
  validate_sequences(seqs, ids_size, max_length_);
  if (seqs.count == 0) return;
  const std::size_t dim = dimension_;
  const BatchPlan plan = plan_batches(seqs, batch_tokens);
  std::vector<double> sum(dim);
  session_.run_plan(seqs, plan, output_name_, [&](const Batch& batch, const Ort::Value& value) {
    const auto shape = value.GetTensorTypeAndShapeInfo().GetShape();
    if (shape.size() != 3 || shape[0] != static_cast<std::int64_t>(batch.rows) ||
        shape[1] != static_cast<std::int64_t>(batch.width) ||
        shape[2] != static_cast<std::int64_t>(dim)) {
      throw std::runtime_error(session_.model_path() + ": output '" + output_name_ +
                               "' is not [batch, tokens, " + std::to_string(dim) + "] at run time");
    }
    const float* states = value.GetTensorData<float>();
    for (std::size_t r = 0; r < batch.rows; ++r) {
      const std::size_t seq = plan.order[batch.first + r];
      const float* row = states + r * batch.width * dim;
      // Rows are right-padded, so the attention mask is 1 exactly on the
      // first `len` positions. Sums in double: a 512-token mean in float
      // would drift by more than the 1e-5 we test against.
      const std::size_t len = pooling_ == Pooling::kMean ? seqs.length(seq) : 1;
      std::fill(sum.begin(), sum.end(), 0.0);
      for (std::size_t t = 0; t < len; ++t) {
        for (std::size_t d = 0; d < dim; ++d) sum[d] += row[t * dim + d];
      }
      double norm = 0.0;
      for (std::size_t d = 0; d < dim; ++d) {
        sum[d] /= static_cast<double>(len);
        norm += sum[d] * sum[d];
      }
      // Same floor as torch.nn.functional.normalize (eps 1e-12).
      const double scale = normalize_ ? 1.0 / std::max(std::sqrt(norm), 1e-12) : 1.0;
      float* dst = out + seq * dim;
      for (std::size_t d = 0; d < dim; ++d) dst[d] = static_cast<float>(sum[d] * scale);
    }
  });
}

std::vector<float> Embedder::encode(const TokenSequences& seqs, std::size_t ids_size,
                                    std::size_t batch_tokens) const {
  std::vector<float> out(seqs.count * dimension_);
  encode(seqs, ids_size, batch_tokens, out.data());
  return out;
}

}  // namespace secondopinion
