#include "secondopinion/ort_runtime.hpp"

#include <dlfcn.h>

#include <stdexcept>

namespace secondopinion {

namespace {
std::mutex g_load_mutex;
OrtRuntime* g_runtime = nullptr;
}  // namespace

OrtRuntime& OrtRuntime::load(const std::string& library_path) {
  std::lock_guard<std::mutex> lock(g_load_mutex);
  if (g_runtime != nullptr) {
    if (g_runtime->library_path_ != library_path) {
      throw std::runtime_error("ONNX Runtime is already loaded from '" + g_runtime->library_path_ +
                               "'; a process can use only one (asked for '" + library_path + "')");
    }
    return *g_runtime;
  }
  // RTLD_LOCAL keeps its symbols from clashing with another copy in the process
  // (for example the Python onnxruntime module's own).
  void* handle = dlopen(library_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* err = dlerror();
    throw std::runtime_error("cannot load the ONNX Runtime library '" + library_path +
                             "': " + (err ? err : "unknown dlopen error"));
  }
  using GetApiBaseFn = const OrtApiBase* (*)();
  auto get_api_base = reinterpret_cast<GetApiBaseFn>(dlsym(handle, "OrtGetApiBase"));
  if (get_api_base == nullptr) {
    dlclose(handle);
    throw std::runtime_error("'" + library_path + "' is not an ONNX Runtime library (no OrtGetApiBase)");
  }
  const OrtApiBase* base = get_api_base();
  const OrtApi* api = base->GetApi(ORT_API_VERSION);
  if (api == nullptr) {
    std::string have = base->GetVersionString();
    dlclose(handle);
    throw std::runtime_error("the ONNX Runtime at '" + library_path + "' is version " + have +
                             ", older than the headers this extension was built with (API " +
                             std::to_string(ORT_API_VERSION) + ", i.e. 1." +
                             std::to_string(ORT_API_VERSION) + "); install onnxruntime>=1." +
                             std::to_string(ORT_API_VERSION));
  }
  Ort::InitApi(api);
  auto* rt = new OrtRuntime();  // lives for the process: sessions may outlive any owner
  rt->library_path_ = library_path;
  rt->api_base_ = base;
  rt->handle_ = handle;
  g_runtime = rt;
  return *rt;
}

OrtRuntime& OrtRuntime::instance() {
  std::lock_guard<std::mutex> lock(g_load_mutex);
  if (g_runtime == nullptr) {
    throw std::runtime_error("ONNX Runtime is not loaded: call OrtRuntime::load(path) first");
  }
  return *g_runtime;
}

bool OrtRuntime::loaded() {
  std::lock_guard<std::mutex> lock(g_load_mutex);
  return g_runtime != nullptr;
}

std::string OrtRuntime::version() const { return api_base_->GetVersionString(); }

Ort::Env& OrtRuntime::env() {
  std::call_once(env_once_, [this] {
    // Global thread pools stay off: each session sizes its own intra-op pool
    // from the caller's `threads`, so two models do not fight over one pool.
    env_ = new Ort::Env(ORT_LOGGING_LEVEL_WARNING, "secondopinion");
  });
  return *env_;
}

}  // namespace secondopinion
