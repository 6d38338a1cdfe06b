// A model directory's secondopinion.json, read as the Python package reads it
// (python/secondopinion/model_dir.py).
//
// A model directory is the Hugging Face ONNX export layout plus that file:
//   model.onnx          the graph
//   tokenizer.json      a `tokenizers` tokenizer (WordPieceTokenizer reads BERT's)
//   secondopinion.json  {"format": 1, "kind": "cross-encoder" | "embedder",
//                        "max_length": 512, ...}
// Unknown keys are ignored so that newer files load in older versions.
// "external_initializers" ({"tensor name": "path/to/file.npy", ...}, paths
// relative to the directory) names weights kept outside model.onnx, such as a
// word-embedding table several models share.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace secondopinion {

inline constexpr const char* kModelFile = "model.onnx";
inline constexpr const char* kTokenizerFile = "tokenizer.json";
inline constexpr const char* kModelConfigFile = "secondopinion.json";

struct ModelConfig {
  std::string kind;  // "cross-encoder" or "embedder"
  std::size_t max_length = 0;
  std::string name;
  // Cross-encoders: "sigmoid" ([B, 1] head), "softmax" ([B, 2]) or "none" (raw
  // logits), and the calibrated relevance floor when the file has one.
  std::string activation = "sigmoid";
  std::optional<double> floor;
  // Embedders: "mean" or "cls", and whether vectors are L2-normalised.
  std::string pooling = "mean";
  bool normalize = true;
  // (tensor name, .npy path joined to the config file's directory), in file order.
  std::vector<std::pair<std::string, std::string>> external_initializers;
};

// Reads `config_file` and checks it describes a model of `kind`. Throws
// std::invalid_argument naming the file and the key at fault (also for a
// model of the other kind).
ModelConfig load_model_config(const std::string& config_file, const std::string& kind);

}  // namespace secondopinion
