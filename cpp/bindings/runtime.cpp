// Bindings for the ONNX Runtime loader: conversions only.
#include <pybind11/pybind11.h>

#include "secondopinion/ort_runtime.hpp"

namespace py = pybind11;
using secondopinion::OrtRuntime;

void bind_runtime(py::module_& m) {
  m.def(
      "ort_load",
      [](const std::string& path) {
        py::gil_scoped_release release;
        return OrtRuntime::load(path).version();
      },
      py::arg("library_path"),
      "Load the ONNX Runtime shared library at library_path (once per process); returns its version.");
  m.def("ort_loaded", &OrtRuntime::loaded);
  m.def("ort_version", [] { return OrtRuntime::instance().version(); });
  m.def("ort_library_path", [] { return OrtRuntime::instance().library_path(); });
  m.def("ort_header_api_version", &OrtRuntime::header_api_version);
}
