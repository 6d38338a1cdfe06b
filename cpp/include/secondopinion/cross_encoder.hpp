// A cross-encoder: one relevance logit per (query, passage) token sequence.
//
// Accepts the two head shapes of Hugging Face sequence-classification exports:
// logits [B, 1] (a relevance logit, read through a sigmoid) and [B, 2]
// (two classes, read through a softmax). For [B, 2] the logit reported is
// l1 - l0, because softmax([l0, l1])[1] == sigmoid(l1 - l0): one number per
// pair either way, and one activation.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "secondopinion/batching.hpp"
#include "secondopinion/session.hpp"

namespace secondopinion {

class CrossEncoder {
 public:
  // Throws std::invalid_argument naming `model_path` when the file is not a
  // loadable encoder with a [B, 1] or [B, 2] float output (named "logits", or
  // the only output). `max_length` (0: unchecked) rejects longer sequences
  // before they reach the model's position table.
  CrossEncoder(const std::string& model_path, const SessionConfig& config,
               std::size_t max_length = 0);

  // Writes one logit per sequence into out[0 .. seqs.count), in input order.
  // `ids_size` is the length of the ids array (checked against the offsets).
  // Sequences are sorted by length and run in batches of at most
  // `batch_tokens` padded tokens. Thread-safe.
  void logits(const TokenSequences& seqs, std::size_t ids_size, std::size_t batch_tokens,
              float* out) const;
  std::vector<float> logits(const TokenSequences& seqs, std::size_t ids_size,
                            std::size_t batch_tokens) const;

  // 1 or 2 when the graph fixes it; 0 when dynamic (then checked per batch).
  int num_logits() const { return num_logits_; }
  const Session& session() const { return session_; }
  const std::string& output_name() const { return output_name_; }
  std::size_t max_length() const { return max_length_; }

 private:
  Session session_;
  std::string output_name_;
  int num_logits_ = 0;
  std::size_t max_length_ = 0;
};

}  // namespace secondopinion
