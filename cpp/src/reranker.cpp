#include "secondopinion/reranker.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

#include "secondopinion/ort_runtime.hpp"

namespace secondopinion {

namespace {

std::string join(const std::string& dir, const char* file) {
  return dir.empty() || dir.back() == '/' ? dir + file : dir + "/" + file;
}

std::size_t checked_max_length(std::size_t requested, const ModelConfig& config,
                               const std::string& config_file) {
  if (requested == 0) return config.max_length;
  if (requested > config.max_length) {
    throw std::invalid_argument("max_length=" + std::to_string(requested) + " exceeds the model's " +
                                std::to_string(config.max_length) + " (" + config_file + ")");
  }
  return requested;
}

CrossEncoder open_encoder(const std::string& model_file, SessionConfig session,
                          const ModelConfig& config, std::size_t max_length) {
  for (const auto& [name, path] : config.external_initializers) {
    session.external_initializers.push_back({name, path});
  }
  if (!OrtRuntime::loaded()) {
    throw std::invalid_argument(
        "ONNX Runtime is not loaded: call secondopinion::OrtRuntime::load(path to "
        "libonnxruntime.so) before creating a Reranker");
  }
  return CrossEncoder(model_file, session, max_length);
}

}  // namespace

float logit_to_probability(float logit) {
  const double p = 1.0 / (1.0 + std::exp(-static_cast<double>(logit)));
  const float low = std::numeric_limits<float>::denorm_min();
  const float high = std::nextafter(1.0f, 0.0f);
  return std::clamp(static_cast<float>(p), low, high);
}

Reranker::Reranker(const std::string& model_dir, const RerankerOptions& options)
    : config_(load_model_config(join(model_dir, kModelConfigFile), "cross-encoder")),
      tokenizer_(WordPieceTokenizer::from_file(join(model_dir, kTokenizerFile))),
      max_length_(checked_max_length(options.max_length, config_, join(model_dir, kModelConfigFile))),
      query_max_tokens_(options.query_max_tokens),
      batch_tokens_(options.batch_tokens),
      encoder_(open_encoder(join(model_dir, kModelFile), options.session, config_, max_length_)) {
  const std::size_t special = tokenizer_.special_tokens_pair();
  if (query_max_tokens_ < 1 || query_max_tokens_ + special >= max_length_) {
    throw std::invalid_argument("query_max_tokens=" + std::to_string(query_max_tokens_) +
                                " must be >= 1 and leave room for the passage: max_length " +
                                std::to_string(max_length_) + " minus " + std::to_string(special) +
                                " special tokens");
  }
  if (batch_tokens_ < 1) throw std::invalid_argument("batch_tokens must be >= 1");
  const int heads = encoder_.num_logits();
  const std::string& activation = config_.activation;
  if ((heads == 1 && activation == "softmax") || (heads == 2 && activation == "sigmoid")) {
    throw std::invalid_argument(join(model_dir, kModelConfigFile) + ": activation '" + activation +
                                "' does not fit the model's [batch, " + std::to_string(heads) +
                                "] logits (use '" + (heads == 1 ? "sigmoid" : "softmax") + "')");
  }
}

RerankScores Reranker::score(std::string_view query,
                             const std::vector<std::string_view>& passages) const {
  RerankScores out;
  if (passages.empty()) return out;
  const EncodedBatch batch = tokenizer_.encode_pairs(query, passages, query_max_tokens_, max_length_);
  TokenSequences seqs = batch.sequences();
  if (!encoder_.session().uses_token_type_ids()) seqs.type_ids = nullptr;
  out.logits = encoder_.logits(seqs, batch.ids.size(), batch_tokens_);
  out.scores.resize(out.logits.size());
  const bool raw = config_.activation == "none";
  std::transform(out.logits.begin(), out.logits.end(), out.scores.begin(),
                 [raw](float l) { return raw ? l : logit_to_probability(l); });
  out.truncated = batch.truncated;
  out.query_truncated = batch.query_truncated[0] != 0;
  return out;
}

std::vector<std::size_t> Reranker::order(const RerankScores& scores) {
  std::vector<std::size_t> idx(scores.logits.size());
  std::iota(idx.begin(), idx.end(), std::size_t{0});
  // NaN (a broken model) sorts last, keeping the comparison a strict weak order.
  std::stable_sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) {
    const float la = scores.logits[a], lb = scores.logits[b];
    if (std::isnan(la) || std::isnan(lb)) return !std::isnan(la) && std::isnan(lb);
    return la > lb;
  });
  return idx;
}

}  // namespace secondopinion
