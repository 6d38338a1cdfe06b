// Bindings for top-k and the SIMD level: conversions and GIL release only.
// Inputs must already be float32 and C-contiguous (.noconvert()): the Python
// wrapper (secondopinion/topk.py) owns the conversion policy.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "secondopinion/simd.hpp"
#include "secondopinion/topk.hpp"

namespace py = pybind11;
using Scores = py::array_t<float, py::array::c_style>;

namespace {

secondopinion::SimdLevel level_from_name(const std::string& name) {
  const auto level = secondopinion::parse_simd_level(name);
  if (!level) {
    throw py::value_error("level must be 'avx512', 'avx2' or 'portable', got '" + name + "'");
  }
  return *level;
}

template <typename Select>
py::tuple topk_1d(const Scores& scores, std::size_t k, Select select) {
  if (scores.ndim() != 1) throw py::value_error("scores must be 1-D");
  const std::size_t n = static_cast<std::size_t>(scores.shape(0));
  const std::size_t width = std::min(k, n);
  py::array_t<std::int64_t> index(static_cast<py::ssize_t>(width));
  py::array_t<float> score(static_cast<py::ssize_t>(width));
  // Pointers are taken while the GIL is held; only the C++ work runs without it.
  const float* in = scores.data();
  std::int64_t* out_index = index.mutable_data();
  float* out_score = score.mutable_data();
  std::size_t got;
  {
    py::gil_scoped_release release;
    got = select(in, n, k, out_index, out_score);
  }
  if (got < width) {  // NaN made fewer results: shrink in place, nobody else holds them
    index.resize({static_cast<py::ssize_t>(got)}, false);
    score.resize({static_cast<py::ssize_t>(got)}, false);
  }
  return py::make_tuple(index, score);
}

}  // namespace

void bind_topk(py::module_& m) {
  m.def(
      "topk",
      [](const Scores& scores, std::size_t k) {
        return topk_1d(scores, k, secondopinion::topk);
      },
      py::arg("scores").noconvert(), py::arg("k"),
      "Top-k of a 1-D float32 C-contiguous array: (indices int64, scores float32).");
  m.def(
      "topk_with_level",
      [](const Scores& scores, std::size_t k, const std::string& level_name) {
        // A level above simd_level() throws std::invalid_argument -> ValueError.
        const secondopinion::SimdLevel level = level_from_name(level_name);
        return topk_1d(scores, k, [level](const float* s, std::size_t n, std::size_t kk,
                                          std::int64_t* idx, float* out) {
          return secondopinion::topk_with_level(level, s, n, kk, idx, out);
        });
      },
      py::arg("scores").noconvert(), py::arg("k"), py::arg("level"),
      "topk with an explicit kernel ('avx512', 'avx2', 'portable'); for tests.");
  m.def(
      "topk_batch",
      [](const Scores& matrix, std::size_t k, unsigned threads) {
        if (matrix.ndim() != 2) throw py::value_error("matrix must be 2-D");
        const std::size_t rows = static_cast<std::size_t>(matrix.shape(0));
        const std::size_t cols = static_cast<std::size_t>(matrix.shape(1));
        const auto width = static_cast<py::ssize_t>(std::min(k, cols));
        py::array_t<std::int64_t> index({static_cast<py::ssize_t>(rows), width});
        py::array_t<float> score({static_cast<py::ssize_t>(rows), width});
        const float* in = matrix.data();
        std::int64_t* out_index = index.mutable_data();
        float* out_score = score.mutable_data();
        {
          py::gil_scoped_release release;
          secondopinion::topk_batch(in, rows, cols, k, out_index, out_score, nullptr, threads);
        }
        return py::make_tuple(index, score);
      },
      py::arg("matrix").noconvert(), py::arg("k"), py::arg("threads") = 0u,
      "Top-k of every row of a 2-D float32 C-contiguous array, rows over `threads` threads "
      "(0 = default_thread_count()); short rows padded with index -1, score NaN.");
  m.def("simd_level", [] { return secondopinion::simd_level_name(secondopinion::simd_level()); },
        "The SIMD level the kernels use (the CPU's, possibly lowered by SECONDOPINION_SIMD).");
  m.def("simd_cpu_level",
        [] { return secondopinion::simd_level_name(secondopinion::cpu_simd_level()); },
        "The best SIMD level this CPU supports, ignoring SECONDOPINION_SIMD.");
}
