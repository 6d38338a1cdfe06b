// The one extension module, secondopinion._core. Each bind_*.cpp file binds one
// concept of the C++ core; this file only wires them together.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void bind_runtime(py::module_& m);
void bind_topk(py::module_& m);
void bind_bm25(py::module_& m);
void bind_fusion(py::module_& m);
void bind_inference(py::module_& m);
void bind_wordpiece(py::module_& m);

PYBIND11_MODULE(_core, m) {
  m.doc() = "secondopinion's C++ core (see cpp/include/secondopinion for the C++ API)";
  bind_runtime(m);
  bind_topk(m);
  bind_bm25(m);
  bind_fusion(m);
  bind_inference(m);
  bind_wordpiece(m);
}
