// Reranking text with a cross-encoder model directory, from C++ alone:
// WordPieceTokenizer + CrossEncoder + the model's activation, as
// python/secondopinion/rerank.py's CrossEncoder does it (same truncation,
// same scores).
//
//   secondopinion::OrtRuntime::load("/path/to/libonnxruntime.so.1.xx");
//   secondopinion::Reranker reranker("models/cross-encoder");
//   auto scores = reranker.score("query", {"passage one", "passage two"});
//
// Policy stays with the caller: the model's calibrated floor is available as
// config().floor, but nothing here drops or refuses.
//
// Thread safety: a Reranker is immutable after construction; any number of
// threads may call score() and rank() on one instance at once (they share one
// ONNX Runtime session and its thread pool).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "secondopinion/batching.hpp"
#include "secondopinion/cross_encoder.hpp"
#include "secondopinion/model_config.hpp"
#include "secondopinion/session.hpp"
#include "secondopinion/wordpiece.hpp"

namespace secondopinion {

struct RerankerOptions {
  SessionConfig session;
  // Tokens per pair, special tokens included; 0 uses the model's max_length,
  // and more than the model's is refused.
  std::size_t max_length = 0;
  // The query is cut to this many tokens; the passage fills the rest.
  std::size_t query_max_tokens = 64;
  // Padded tokens per ONNX Runtime batch (rows x longest row).
  std::size_t batch_tokens = kDefaultBatchTokens;
};

struct RerankScores {
  std::vector<float> logits;  // per passage, in input order (two-logit heads: l1 - l0)
  // The model's activation applied: probabilities for "sigmoid"/"softmax"
  // (see logit_to_probability), the logits again for "none".
  std::vector<float> scores;
  std::vector<std::uint8_t> truncated;  // the passage was cut to fit max_length
  bool query_truncated = false;         // the query was cut to query_max_tokens
};

// sigmoid(logit) computed in double and stored as float, clipped into the
// open interval (0, 1): float cannot hold probabilities between 1 - 6e-8 and
// 1, so logits above ~16.6 all give 0.99999994 (the logit keeps the order).
// The same numbers as python/secondopinion/rerank.py.
float logit_to_probability(float logit);

class Reranker {
 public:
  // Reads model_dir/{secondopinion.json, tokenizer.json, model.onnx}; the
  // config must be of kind "cross-encoder". Needs OrtRuntime::load() first.
  // Throws std::invalid_argument naming the file at fault, or the option.
  explicit Reranker(const std::string& model_dir, const RerankerOptions& options = {});

  // Scores every passage against the query. Empty passages and an empty
  // query are scored like any other text ([CLS] [SEP] p [SEP]).
  RerankScores score(std::string_view query, const std::vector<std::string_view>& passages) const;

  // Passage indices, best first: by logit descending, ties by lower index
  // (NaN last).
  static std::vector<std::size_t> order(const RerankScores& scores);

  const ModelConfig& config() const { return config_; }
  const WordPieceTokenizer& tokenizer() const { return tokenizer_; }
  const CrossEncoder& cross_encoder() const { return encoder_; }
  std::size_t max_length() const { return max_length_; }
  std::size_t query_max_tokens() const { return query_max_tokens_; }
  std::size_t batch_tokens() const { return batch_tokens_; }

 private:
  ModelConfig config_;
  WordPieceTokenizer tokenizer_;
  std::size_t max_length_;
  std::size_t query_max_tokens_;
  std::size_t batch_tokens_;
  CrossEncoder encoder_;
};

}  // namespace secondopinion
