// An ONNX Runtime session for a BERT-style encoder, configured for CPU
// inference of variable-length batches.
//
// The session checks the graph once at load (inputs input_ids and
// attention_mask, optionally token_type_ids, all int64) so that a wrong file
// fails with its name instead of deep inside Run. Run is thread-safe in ONNX
// Runtime, so one Session serves any number of calling threads at once.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "secondopinion/batching.hpp"

namespace secondopinion {

// A tensor the graph declares as external data, supplied by the runtime from
// a .npy file (read with load_npy) instead of from beside model.onnx: how
// several models share one weight table on disk (tools/share_embeddings.py).
struct ExternalInitializer {
  std::string name;      // the initializer's name in the graph
  std::string npy_path;  // the file holding it
};

struct SessionConfig {
  // Intra-op threads; 0 means default_thread_count(). Inter-op is always 1:
  // an encoder is a chain of ops with nothing to run side by side.
  int threads = 0;
  // The CPU arena (ONNX Runtime's BFC allocator) keeps freed blocks for the
  // next batch. Without it every batch's activations come fresh from malloc,
  // i.e. from mmap for blocks this large, and page faults on first touch made
  // a length-sorted call 1.5-2x slower. It grows to the peak of the largest
  // batch (bounded by batch_tokens) and stays there: measured flat RSS over
  // 10,000 calls with mixed shapes (tests/test_rerank.py checks 2,000).
  bool cpu_mem_arena = true;
  // Memory patterns plan one block per input shape and cache the plan keyed
  // by shape; with a new (rows, width) at nearly every batch the plans do not
  // get reused and the cache only grows (RSS crept up ~0.1 MiB per 1,000
  // calls in our measurement, for no speed gain). Off.
  bool memory_pattern = false;
  // Initializers handed to ONNX Runtime at load (AddExternalInitializers):
  // each must exist in the graph as external data with the file's dtype and
  // shape. Normally filled from secondopinion.json's "external_initializers".
  std::vector<ExternalInitializer> external_initializers;
};

// Static shape of a graph output; -1 marks a dynamic dimension.
struct OutputInfo {
  std::string name;
  std::vector<std::int64_t> shape;
};

class Session {
 public:
  // Needs OrtRuntime::load() to have been called (Python does it in
  // secondopinion._runtime.ensure_loaded()). Throws std::invalid_argument
  // naming `model_path` when the file cannot be loaded or its inputs are not
  // those of a BERT-style encoder.
  Session(const std::string& model_path, const SessionConfig& config);

  const std::string& model_path() const { return model_path_; }
  int threads() const { return threads_; }
  bool uses_token_type_ids() const { return uses_token_type_ids_; }
  const std::vector<std::string>& input_names() const { return input_names_; }
  const std::vector<OutputInfo>& outputs() const { return outputs_; }
  // The output called `name`, or nullptr.
  const OutputInfo* find_output(const std::string& name) const;

  // Runs one padded batch and returns the output `output_name` (float32).
  // Thread-safe. Throws std::runtime_error naming the model on failure.
  Ort::Value run(PaddedBatch& batch, const std::string& output_name) const;

  // Runs every batch of `plan`, in order, passing each batch and its output to
  // consume(const Batch&, const Ort::Value&).
  template <class Consume>
  void run_plan(const TokenSequences& seqs, const BatchPlan& plan, const std::string& output_name,
                Consume&& consume) const {
    PaddedBatch padded;
    for (const Batch& batch : plan.batches) {
      pad_batch(seqs, plan, batch, padded);
      Ort::Value output = run(padded, output_name);
      consume(batch, output);
    }
  }

 private:
  void inspect_graph();

  std::string model_path_;
  int threads_ = 1;
  bool uses_token_type_ids_ = false;
  std::vector<std::string> input_names_;  // in the graph's order
  std::vector<OutputInfo> outputs_;
  // Ort::Session::Run is not const in the C++ wrapper but is thread-safe in
  // the runtime (documented), so const callers may share it.
  mutable Ort::Session session_{nullptr};
  Ort::MemoryInfo memory_{nullptr};
};

}  // namespace secondopinion
