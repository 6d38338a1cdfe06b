// Bindings for score fusion: conversions only. python/secondopinion/fusion.py
// validates arguments and builds the result type; these functions take the
// lists as parallel Python lists of arrays and return plain arrays.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "secondopinion/fusion.hpp"

namespace py = pybind11;
using secondopinion::FusedList;
using secondopinion::RankedList;
using secondopinion::ScoreNorm;

namespace {

using IndexArray = py::array_t<std::int64_t, py::array::c_style>;
using ScoreArray = py::array_t<float, py::array::c_style>;

std::vector<RankedList> views(const std::vector<IndexArray>& indices,
                              const std::vector<ScoreArray>& scores) {
  if (indices.size() != scores.size())
    throw py::value_error("hits_list: as many index arrays as score arrays are needed");
  std::vector<RankedList> lists(indices.size());
  for (std::size_t l = 0; l < lists.size(); ++l) {
    if (indices[l].ndim() != 1 || scores[l].ndim() != 1)
      throw py::value_error("hits_list[" + std::to_string(l) + "]: indices and scores must be 1-D");
    if (indices[l].shape(0) != scores[l].shape(0))
      throw py::value_error("hits_list[" + std::to_string(l) + "]: " +
                            std::to_string(indices[l].shape(0)) + " indices but " +
                            std::to_string(scores[l].shape(0)) + " scores");
    lists[l] = {indices[l].data(), scores[l].data(), static_cast<std::size_t>(indices[l].shape(0))};
  }
  return lists;
}

template <typename T>
py::array_t<T> copy_1d(const std::vector<T>& values) {
  py::array_t<T> array(static_cast<py::ssize_t>(values.size()));
  if (!values.empty()) std::memcpy(array.mutable_data(), values.data(), values.size() * sizeof(T));
  return array;
}

template <typename T>
py::array_t<T> copy_2d(const std::vector<T>& values, std::size_t rows, std::size_t cols) {
  const std::vector<py::ssize_t> shape{static_cast<py::ssize_t>(rows),
                                       static_cast<py::ssize_t>(cols)};
  py::array_t<T> array(shape);
  if (!values.empty()) std::memcpy(array.mutable_data(), values.data(), values.size() * sizeof(T));
  return array;
}

// The fused documents' ids, each taken from the first list that holds it:
// new references into an object array, no string copies. Kept apart from the
// fusion itself because taking a reference touches every id object, which
// costs about as much as fusing; FusedHits calls this on first use of .ids.
py::array gather_ids(const std::vector<py::array>& ids,
                     const py::array_t<std::int32_t, py::array::c_style>& source_list,
                     const py::array_t<std::int64_t, py::array::c_style>& source_position) {
  if (source_list.ndim() != 1 || source_position.ndim() != 1 ||
      source_list.shape(0) != source_position.shape(0))
    throw py::value_error("source_list and source_position must be 1-D and of one length");
  std::vector<py::ssize_t> sizes(ids.size());
  for (std::size_t l = 0; l < ids.size(); ++l) {
    if (ids[l].dtype().kind() != 'O' || ids[l].ndim() != 1)
      throw py::value_error("ids[" + std::to_string(l) + "] must be a 1-D object array");
    sizes[l] = ids[l].shape(0);
  }
  const std::size_t n = static_cast<std::size_t>(source_list.shape(0));
  const std::int32_t* lists = source_list.data();
  const std::int64_t* positions = source_position.data();
  for (std::size_t i = 0; i < n; ++i)
    if (lists[i] < 0 || static_cast<std::size_t>(lists[i]) >= ids.size() || positions[i] < 0 ||
        positions[i] >= sizes[static_cast<std::size_t>(lists[i])])
      throw py::value_error("source " + std::to_string(i) + " points outside the id arrays");

  // An explicit shape: with a braced {n}, overload resolution picks
  // array(handle, bool) and wraps the dtype object itself.
  const std::vector<py::ssize_t> shape{static_cast<py::ssize_t>(n)};
  py::array out(py::dtype("O"), shape);
  std::vector<std::pair<const char*, py::ssize_t>> sources(ids.size());  // base, stride
  for (std::size_t l = 0; l < ids.size(); ++l)
    sources[l] = {static_cast<const char*>(ids[l].data()), ids[l].strides(0)};
  auto** dst = static_cast<PyObject**>(out.mutable_data());
  for (std::size_t i = 0; i < n; ++i) {
    const auto& [base, stride] = sources[static_cast<std::size_t>(lists[i])];
    PyObject* id = *reinterpret_cast<PyObject* const*>(base + positions[i] * stride);
    if (id == nullptr) id = Py_None;  // an uninitialised slot reads as None, as numpy does
    Py_INCREF(id);
    Py_XDECREF(dst[i]);
    dst[i] = id;
  }
  return out;
}

py::tuple to_python(const FusedList& fused) {
  const std::size_t n = fused.size();
  return py::make_tuple(copy_1d(fused.indices), copy_1d(fused.scores),
                        copy_1d(fused.source_list), copy_1d(fused.source_position),
                        copy_2d(fused.stage_ranks, fused.n_lists, n),
                        copy_2d(fused.stage_scores, fused.n_lists, n));
}

ScoreNorm parse_norm(const std::string& norm) {
  if (norm == "minmax") return ScoreNorm::MinMax;
  if (norm == "zscore") return ScoreNorm::ZScore;
  if (norm == "none") return ScoreNorm::None;
  throw py::value_error("norm must be 'minmax', 'zscore' or 'none', got '" + norm + "'");
}

// One output buffer per thread, reused: see Workspace in cpp/src/fusion.cpp.
[[gnu::noinline]] FusedList& scratch() {  // see workspace() in cpp/src/fusion.cpp
  thread_local FusedList out;
  return out;
}

}  // namespace

void bind_fusion(py::module_& m) {
  m.def(
      "fuse_rrf",
      [](const std::vector<IndexArray>& indices, const std::vector<ScoreArray>& scores,
         double k, const std::vector<double>& weights,
         std::size_t limit) {
        const std::vector<RankedList> lists = views(indices, scores);
        FusedList& fused = scratch();
        {
          py::gil_scoped_release release;
          secondopinion::fuse_rrf(lists, k, weights, limit, fused);
        }
        return to_python(fused);
      },
      py::arg("indices"), py::arg("scores"), py::arg("k"), py::arg("weights"),
      py::arg("limit"),
      "Reciprocal rank fusion; returns (indices, scores, source_list, source_position, "
      "stage_ranks, stage_scores). "
      "Use secondopinion.fuse_rrf.");
  m.def(
      "fuse_weighted",
      [](const std::vector<IndexArray>& indices, const std::vector<ScoreArray>& scores,
         const std::vector<double>& weights,
         const std::string& norm, std::size_t limit) {
        const ScoreNorm how = parse_norm(norm);
        const std::vector<RankedList> lists = views(indices, scores);
        FusedList& fused = scratch();
        {
          py::gil_scoped_release release;
          secondopinion::fuse_weighted(lists, weights, how, limit, fused);
        }
        return to_python(fused);
      },
      py::arg("indices"), py::arg("scores"), py::arg("weights"), py::arg("norm"),
      py::arg("limit"),
      "Weighted sum of normalised scores; returns (indices, scores, source_list, "
      "source_position, stage_ranks, stage_scores). Use secondopinion.fuse_weighted.");
  m.def("fusion_gather_ids", &gather_ids, py::arg("ids"), py::arg("source_list"),
        py::arg("source_position"),
        "Object array of ids[source_list[i]][source_position[i]] (new references).");
}
