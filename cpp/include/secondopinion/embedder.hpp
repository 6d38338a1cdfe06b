// A bi-encoder: one vector per text, pooled from the encoder's token states.
//
// For sentence-transformers models such as all-MiniLM-L6-v2 exported with
// Hugging Face's layout: the graph outputs per-token states
// (last_hidden_state or token_embeddings, [B, T, H]); pooling and
// normalisation, which sentence-transformers runs in Python, happen here.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "secondopinion/batching.hpp"
#include "secondopinion/session.hpp"

namespace secondopinion {

enum class Pooling {
  kMean,  // average of the token states under the attention mask
  kCls,   // the first token's state
};

// "mean" / "cls"; throws std::invalid_argument otherwise.
Pooling parse_pooling(const std::string& name);

class Embedder {
 public:
  // Throws std::invalid_argument naming `model_path` when the file is not a
  // loadable encoder with a float [B, T, H] output named last_hidden_state or
  // token_embeddings. `max_length` 0 leaves lengths unchecked.
  Embedder(const std::string& model_path, const SessionConfig& config, std::size_t max_length,
           Pooling pooling, bool normalize);

  // Writes seqs.count x dimension() floats, row i for sequence i. With
  // `normalize` every row has unit L2 norm (a zero row stays zero).
  // Thread-safe.
  void encode(const TokenSequences& seqs, std::size_t ids_size, std::size_t batch_tokens,
              float* out) const;
  std::vector<float> encode(const TokenSequences& seqs, std::size_t ids_size,
                            std::size_t batch_tokens) const;

  std::size_t dimension() const { return dimension_; }
  const Session& session() const { return session_; }
  const std::string& output_name() const { return output_name_; }
  std::size_t max_length() const { return max_length_; }
  Pooling pooling() const { return pooling_; }
  bool normalize() const { return normalize_; }

 private:
  Session session_;
  std::string output_name_;
  std::size_t dimension_ = 0;
  std::size_t max_length_ = 0;
  Pooling pooling_;
  bool normalize_;
};

}  // namespace secondopinion
