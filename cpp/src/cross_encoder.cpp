#include "secondopinion/cross_encoder.hpp"

#include <stdexcept>

namespace secondopinion {

CrossEncoder::CrossEncoder(const std::string& model_path, const SessionConfig& config,
                           std::size_t max_length)
    : session_(model_path, config), max_length_(max_length) {
  const OutputInfo* out = session_.find_output("logits");
  if (out == nullptr && session_.outputs().size() == 1) out = session_.find_output(session_.outputs()[0].name);
  if (out == nullptr) {
    std::string names;
    for (const auto& o : session_.outputs()) names += (names.empty() ? "'" : ", '") + o.name + "'";
    throw std::invalid_argument(model_path + ": a cross-encoder needs a float32 output 'logits' "
                                "[batch, 1 or 2]; the model has " + names);
  }
  if (out->shape.size() != 2 || (out->shape[1] != 1 && out->shape[1] != 2 && out->shape[1] != -1)) {
    std::string dims;
    for (auto d : out->shape) dims += (dims.empty() ? "" : ", ") + std::to_string(d);
    throw std::invalid_argument(model_path + ": output '" + out->name + "' has shape [" + dims +
                                "]; a cross-encoder's logits are [batch, 1] or [batch, 2] "
                                "(is this an embedding model?)");
  }
  output_name_ = out->name;
  num_logits_ = out->shape[1] == -1 ? 0 : static_cast<int>(out->shape[1]);
}

void CrossEncoder::logits(const TokenSequences& seqs, std::size_t ids_size,
                          std::size_t batch_tokens, float* out) const {
  validate_sequences(seqs, ids_size, max_length_);
  if (seqs.count == 0) return;
  const BatchPlan plan = plan_batches(seqs, batch_tokens);
  session_.run_plan(seqs, plan, output_name_, [&](const Batch& batch, const Ort::Value& value) {
    const auto shape = value.GetTensorTypeAndShapeInfo().GetShape();
    if (shape.size() != 2 || shape[0] != static_cast<std::int64_t>(batch.rows) ||
        (shape[1] != 1 && shape[1] != 2)) {
      throw std::runtime_error(session_.model_path() + ": output '" + output_name_ +
                               "' is not [batch, 1] or [batch, 2] at run time");
    }
    const float* data = value.GetTensorData<float>();
    for (std::size_t r = 0; r < batch.rows; ++r) {
      const std::size_t seq = plan.order[batch.first + r];
      out[seq] = shape[1] == 1 ? data[r] : data[2 * r + 1] - data[2 * r];
    }
  });
}

std::vector<float> CrossEncoder::logits(const TokenSequences& seqs, std::size_t ids_size,
                                        std::size_t batch_tokens) const {
  std::vector<float> out(seqs.count);
  logits(seqs, ids_size, batch_tokens, out.data());
  return out;
}

}  // namespace secondopinion
