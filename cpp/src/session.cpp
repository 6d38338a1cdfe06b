#include "secondopinion/session.hpp"

#include <algorithm>
#include <array>
#include <stdexcept>

#include "secondopinion/npy.hpp"
#include "secondopinion/ort_runtime.hpp"
#include "secondopinion/thread_count.hpp"

namespace secondopinion {

namespace {

const char* const kInputIds = "input_ids";
const char* const kAttentionMask = "attention_mask";
const char* const kTokenTypeIds = "token_type_ids";

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "'" : ", '") + n + "'";
  return out.empty() ? "none" : out;
}

Ort::SessionOptions make_options(const SessionConfig& config, int threads) {
  Ort::SessionOptions options;
  options.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
  options.SetIntraOpNumThreads(threads);
  options.SetInterOpNumThreads(1);
  options.SetExecutionMode(ExecutionMode::ORT_SEQUENTIAL);
  if (config.cpu_mem_arena) {
    options.EnableCpuMemArena();
  } else {
    options.DisableCpuMemArena();
  }
  if (config.memory_pattern) {
    options.EnableMemPattern();
  } else {
    options.DisableMemPattern();
  }
  // Worker threads spin while a call runs (cheap hand-offs between ops) but
  // stop as soon as the last concurrent Run returns: between calls the
  // caller's own work (tokenising, BM25, Python) gets the cores.
  options.AddConfigEntry("session.force_spinning_stop", "1");
  return options;
}

ONNXTensorElementDataType ort_type(NpyType type) {
  switch (type) {
    case NpyType::float32: return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
    case NpyType::float16: return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16;
    case NpyType::float64: return ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE;
    case NpyType::int8: return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8;
    case NpyType::uint8: return ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8;
    case NpyType::int32: return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32;
    case NpyType::int64: return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
  }
  return ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
}

// Reads every external initializer and registers it with `options`. ONNX
// Runtime copies the data into the session (and checks name, dtype and
// shape against the graph) while the session is created, so the arrays only
// need to live until then: the caller keeps `arrays` for that long.
void add_external_initializers(const std::vector<ExternalInitializer>& inits,
                               Ort::SessionOptions& options, std::vector<NpyArray>& arrays) {
  if (inits.empty()) return;
  std::vector<std::string> names;
  std::vector<Ort::Value> values;
  arrays.reserve(inits.size());
  const Ort::MemoryInfo memory = Ort::MemoryInfo::CreateCpu(OrtDeviceAllocator, OrtMemTypeCPU);
  for (const ExternalInitializer& init : inits) {
    arrays.push_back(load_npy(init.npy_path));
    NpyArray& a = arrays.back();
    names.push_back(init.name);
    values.push_back(Ort::Value::CreateTensor(memory, a.data.data(), a.data.size(), a.shape.data(),
                                              a.shape.size(), ort_type(a.type)));
  }
  options.AddExternalInitializers(names, values);
}

}  // namespace

Session::Session(const std::string& model_path, const SessionConfig& config)
    : model_path_(model_path) {
  if (config.threads < 0) {
    throw std::invalid_argument("threads must be positive (or 0 for the default), got " +
                                std::to_string(config.threads));
  }
  threads_ = config.threads == 0 ? default_thread_count() : config.threads;
  Ort::Env& env = OrtRuntime::instance().env();
  std::vector<NpyArray> arrays;  // must outlive the session's creation
  try {
    Ort::SessionOptions options = make_options(config, threads_);
    add_external_initializers(config.external_initializers, options, arrays);
    session_ = Ort::Session(env, model_path.c_str(), options);
  } catch (const Ort::Exception& e) {
    // ONNX Runtime's message does not always name the tensor at fault (not
    // for a shape mismatch), so list where each external one came from.
    std::string files;
    for (const ExternalInitializer& init : config.external_initializers) {
      files += (files.empty() ? " (external initializers: " : ", ") + init.name + " from " +
               init.npy_path;
    }
    if (!files.empty()) files += ")";
    throw std::invalid_argument(model_path + ": not a loadable ONNX model: " + e.what() + files);
  }

  memory_ = Ort::MemoryInfo::CreateCpu(OrtDeviceAllocator, OrtMemTypeCPU);
  try {
    inspect_graph();
  } catch (const Ort::Exception& e) {
    throw std::invalid_argument(model_path + ": cannot read the model's inputs and outputs: " +
                                e.what());
  }
}

void Session::inspect_graph() {
  const std::string& model_path = model_path_;
  Ort::AllocatorWithDefaultOptions allocator;
  bool has_ids = false, has_mask = false;
  for (std::size_t i = 0; i < session_.GetInputCount(); ++i) {
    std::string name = session_.GetInputNameAllocated(i, allocator).get();
    const auto type = session_.GetInputTypeInfo(i).GetTensorTypeAndShapeInfo().GetElementType();
    if (name != kInputIds && name != kAttentionMask && name != kTokenTypeIds) {
      throw std::invalid_argument(model_path + ": unexpected model input '" + name +
                                  "'; an encoder takes input_ids, attention_mask and optionally "
                                  "token_type_ids");
    }
    if (type != ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64) {
      throw std::invalid_argument(model_path + ": model input '" + name +
                                  "' must be int64 (as in Hugging Face exports)");
    }
    has_ids |= name == kInputIds;
    has_mask |= name == kAttentionMask;
    uses_token_type_ids_ |= name == kTokenTypeIds;
    input_names_.push_back(std::move(name));
  }
  if (!has_ids || !has_mask) {
    throw std::invalid_argument(model_path + ": the model must take inputs 'input_ids' and "
                                "'attention_mask'; it takes " + join(input_names_));
  }
  for (std::size_t i = 0; i < session_.GetOutputCount(); ++i) {
    OutputInfo info;
    info.name = session_.GetOutputNameAllocated(i, allocator).get();
    auto type_info = session_.GetOutputTypeInfo(i);
    if (type_info.GetONNXType() == ONNX_TYPE_TENSOR) {
      auto tensor = type_info.GetTensorTypeAndShapeInfo();
      if (tensor.GetElementType() == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
        info.shape = tensor.GetShape();
      }
    }
    // Outputs that are not float32 tensors keep an empty shape: never selectable.
    outputs_.push_back(std::move(info));
  }
}

const OutputInfo* Session::find_output(const std::string& name) const {
  for (const auto& out : outputs_) {
    if (out.name == name && !out.shape.empty()) return &out;
  }
  return nullptr;
}

Ort::Value Session::run(PaddedBatch& batch, const std::string& output_name) const {
  const std::array<std::int64_t, 2> shape{static_cast<std::int64_t>(batch.rows),
                                          static_cast<std::int64_t>(batch.width)};
  const std::size_t cells = batch.rows * batch.width;
  std::vector<Ort::Value> inputs;
  std::vector<const char*> names;
  inputs.reserve(input_names_.size());
  for (const auto& name : input_names_) {
    std::vector<std::int64_t>& data = name == kInputIds        ? batch.input_ids
                                      : name == kAttentionMask ? batch.attention_mask
                                                               : batch.token_type_ids;
    // The tensors borrow the batch's buffers: no copy.
    inputs.push_back(
        Ort::Value::CreateTensor<std::int64_t>(memory_, data.data(), cells, shape.data(), shape.size()));
    names.push_back(name.c_str());
  }
  const char* output_names[] = {output_name.c_str()};
  try {
    auto outputs = session_.Run(Ort::RunOptions{nullptr}, names.data(), inputs.data(), inputs.size(),
                                output_names, 1);
    return std::move(outputs.front());
  } catch (const Ort::Exception& e) {
    throw std::runtime_error(model_path_ + ": inference failed on a batch of " +
                             std::to_string(batch.rows) + " x " + std::to_string(batch.width) +
                             " tokens: " + e.what());
  }
}

}  // namespace secondopinion
