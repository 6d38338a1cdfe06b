// ONNX Runtime, reached without linking against it.
//
// The onnxruntime wheel on PyPI ships libonnxruntime.so but no headers, and a
// C++ service may carry its own copy. So the library is dlopen()ed from a path
// the caller gives, OrtGetApiBase is taken with dlsym, and the C++ wrapper is
// initialised by hand (ORT_API_MANUAL_INIT). One runtime and one Ort::Env per
// process: ONNX Runtime allows a single environment.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <mutex>
#include <string>

namespace secondopinion {

class OrtRuntime {
 public:
  // Loads the library at `library_path` (once per process) and initialises the
  // API at the version of the headers we were compiled with. Throws
  // std::runtime_error when the file cannot be loaded, is not ONNX Runtime, or
  // is older than the headers. A second call with another path throws too.
  static OrtRuntime& load(const std::string& library_path);
  // The runtime loaded earlier; throws if load() was never called.
  static OrtRuntime& instance();
  static bool loaded();

  const std::string& library_path() const { return library_path_; }
  // Version string reported by the loaded library, e.g. "1.32.0".
  std::string version() const;
  // ORT_API_VERSION of the headers this build was compiled with.
  static int header_api_version() { return ORT_API_VERSION; }
  // The process-wide environment, created on first use.
  Ort::Env& env();

  OrtRuntime(const OrtRuntime&) = delete;
  OrtRuntime& operator=(const OrtRuntime&) = delete;

 private:
  OrtRuntime() = default;
  std::string library_path_;
  const OrtApiBase* api_base_ = nullptr;
  void* handle_ = nullptr;
  std::once_flag env_once_;
  Ort::Env* env_ = nullptr;  // intentionally leaked: destroyed after ORT at exit otherwise
};

}  // namespace secondopinion
