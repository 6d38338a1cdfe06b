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
using secondopinion::Fusion;
using secondopinion::RankedList;
using secondopinion::ScoreNorm;

namespace {

using IndexArray = py::array_t<std::int64_t, py::array::c_style>;
using ScoreArray = py::array_t<float, py::array::c_style>;

// One list's array, as the core needs it: 1-D, C-contiguous, of type T. An
// array that already is one is borrowed as it is (the common case: fusion
// runs per query and is timed in microseconds, and pybind11's generic
// conversion of a list of arrays costs about 1 us per array); anything else
// is converted, as pybind11 would.
template <typename T>
py::array_t<T, py::array::c_style> list_array(const py::handle& item, std::size_t l,
                                              const char* what) {
  using Array = py::array_t<T, py::array::c_style>;
  Array array = Array::check_(item) ? py::reinterpret_borrow<Array>(item) : Array::ensure(item);
  if (!array) {
    PyErr_Clear();
    throw py::type_error("hits_list[" + std::to_string(l) + "]: " + what +
                         " must be convertible to a numeric array");
  }
  if (array.ndim() != 1)
    throw py::value_error("hits_list[" + std::to_string(l) + "]: indices and scores must be 1-D");
  return array;
}

// Views of the lists; `keep` holds the arrays (converted ones included) alive.
std::vector<RankedList> views(const py::list& indices, const py::list& scores,
                              std::vector<py::object>& keep) {
  if (indices.size() != scores.size())
    throw py::value_error("hits_list: as many index arrays as score arrays are needed");
  std::vector<RankedList> lists(indices.size());
  keep.reserve(2 * lists.size());
  for (std::size_t l = 0; l < lists.size(); ++l) {
    IndexArray ind = list_array<std::int64_t>(indices[l], l, "indices");
    ScoreArray sc = list_array<float>(scores[l], l, "scores");
    if (ind.shape(0) != sc.shape(0))
      throw py::value_error("hits_list[" + std::to_string(l) + "]: " +
                            std::to_string(ind.shape(0)) + " indices but " +
                            std::to_string(sc.shape(0)) + " scores");
    lists[l] = {ind.data(), sc.data(), static_cast<std::size_t>(ind.shape(0))};
    keep.push_back(std::move(ind));
    keep.push_back(std::move(sc));
  }
  return lists;
}

// The fused documents' ids, each taken from the first list that holds it
// (the first row of stage_ranks with a rank): new references into an object
// array, no string copies. Kept apart from the fusion itself because taking a
// reference touches every id object, which costs about as much as fusing;
// FusedHits calls this on first use of .ids.
py::array gather_ids(const std::vector<py::array>& ids,
                     const py::array_t<std::int32_t, py::array::c_style>& stage_ranks) {
  if (stage_ranks.ndim() != 2 || static_cast<std::size_t>(stage_ranks.shape(0)) != ids.size())
    throw py::value_error("stage_ranks must be 2-D with one row per id array");
  std::vector<std::pair<const char*, py::ssize_t>> sources(ids.size());  // base, stride
  for (std::size_t l = 0; l < ids.size(); ++l) {
    if (ids[l].dtype().kind() != 'O' || ids[l].ndim() != 1)
      throw py::value_error("ids[" + std::to_string(l) + "] must be a 1-D object array");
    sources[l] = {static_cast<const char*>(ids[l].data()), ids[l].strides(0)};
  }
  const std::size_t n_lists = ids.size();
  const std::size_t n = static_cast<std::size_t>(stage_ranks.shape(1));
  const std::int32_t* ranks = stage_ranks.data();
  // Where each id is: its list and position; checked before any reference is taken.
  std::vector<std::pair<std::size_t, py::ssize_t>> where(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t l = 0;
    while (l < n_lists && ranks[l * n + i] == 0) ++l;
    if (l == n_lists || ranks[l * n + i] < 0 || ranks[l * n + i] > ids[l].shape(0))
      throw py::value_error("stage_ranks column " + std::to_string(i) +
                            " points outside the id arrays");
    where[i] = {l, static_cast<py::ssize_t>(ranks[l * n + i] - 1)};
  }

  // An explicit shape: with a braced {n}, overload resolution picks
  // array(handle, bool) and wraps the dtype object itself.
  const std::vector<py::ssize_t> shape{static_cast<py::ssize_t>(n)};
  py::array out(py::dtype("O"), shape);
  auto** dst = static_cast<PyObject**>(out.mutable_data());
  for (std::size_t i = 0; i < n; ++i) {
    const auto& [base, stride] = sources[where[i].first];
    PyObject* id = *reinterpret_cast<PyObject* const*>(base + where[i].second * stride);
    if (id == nullptr) id = Py_None;  // an uninitialised slot reads as None, as numpy does
    Py_INCREF(id);
    Py_XDECREF(dst[i]);
    dst[i] = id;
  }
  return out;
}

// Numpy arrays for the fusion's result, written in place:
// (indices, scores, stage_ranks).
py::tuple to_python(const Fusion& fusion) {
  const auto n = static_cast<py::ssize_t>(fusion.size());
  const std::vector<py::ssize_t> shape{static_cast<py::ssize_t>(fusion.n_lists()), n};
  py::array_t<std::int64_t> indices(n);
  py::array_t<float> scores(n);
  py::array_t<std::int32_t> stage_ranks(shape);
  fusion.write({indices.mutable_data(), scores.mutable_data(), stage_ranks.mutable_data()});
  return py::make_tuple(std::move(indices), std::move(scores), std::move(stage_ranks));
}

// float32 [n_lists, n]: each fused document's score in each list, NaN where
// absent (secondopinion::gather_stage_scores).
py::array_t<float> stage_scores(const py::list& scores,
                                const py::array_t<std::int32_t, py::array::c_style>& stage_ranks) {
  if (stage_ranks.ndim() != 2 || static_cast<std::size_t>(stage_ranks.shape(0)) != scores.size())
    throw py::value_error("stage_ranks must be 2-D with one row per score array");
  std::vector<py::object> keep;
  std::vector<RankedList> lists(scores.size());
  for (std::size_t l = 0; l < lists.size(); ++l) {
    ScoreArray sc = list_array<float>(scores[l], l, "scores");
    lists[l] = {nullptr, sc.data(), static_cast<std::size_t>(sc.shape(0))};
    keep.push_back(std::move(sc));
  }
  const std::vector<py::ssize_t> shape{stage_ranks.shape(0), stage_ranks.shape(1)};
  py::array_t<float> out(shape);
  secondopinion::gather_stage_scores(lists, stage_ranks.data(),
                                     static_cast<std::size_t>(stage_ranks.shape(1)),
                                     out.mutable_data());
  return out;
}

ScoreNorm parse_norm(const std::string& norm) {
  if (norm == "minmax") return ScoreNorm::MinMax;
  if (norm == "zscore") return ScoreNorm::ZScore;
  if (norm == "none") return ScoreNorm::None;
  throw py::value_error("norm must be 'minmax', 'zscore' or 'none', got '" + norm + "'");
}

// One Fusion per thread, reused: see Fusion in secondopinion/fusion.hpp.
[[gnu::noinline]] Fusion& thread_fusion() {  // see the one in cpp/src/fusion.cpp
  thread_local Fusion fusion;
  return fusion;
}

}  // namespace

void bind_fusion(py::module_& m) {
  m.def(
      "fuse_rrf",
      [](const py::list& indices, const py::list& scores, double k,
         const std::vector<double>& weights, std::size_t limit) {
        std::vector<py::object> keep;
        const std::vector<RankedList> lists = views(indices, scores, keep);
        Fusion& fusion = thread_fusion();
        {
          py::gil_scoped_release release;
          fusion.rrf(lists, k, weights, limit);
        }
        return to_python(fusion);
      },
      py::arg("indices"), py::arg("scores"), py::arg("k"), py::arg("weights"),
      py::arg("limit"),
      "Reciprocal rank fusion; returns (indices, scores, stage_ranks). "
      "Use secondopinion.fuse_rrf.");
  m.def(
      "fuse_weighted",
      [](const py::list& indices, const py::list& scores, const std::vector<double>& weights,
         const std::string& norm, std::size_t limit) {
        const ScoreNorm how = parse_norm(norm);
        std::vector<py::object> keep;
        const std::vector<RankedList> lists = views(indices, scores, keep);
        Fusion& fusion = thread_fusion();
        {
          py::gil_scoped_release release;
          fusion.weighted(lists, weights, how, limit);
        }
        return to_python(fusion);
      },
      py::arg("indices"), py::arg("scores"), py::arg("weights"), py::arg("norm"),
      py::arg("limit"),
      "Weighted sum of normalised scores; returns (indices, scores, stage_ranks). "
      "Use secondopinion.fuse_weighted.");
  m.def("fusion_gather_ids", &gather_ids, py::arg("ids"), py::arg("stage_ranks"),
        "Object array of each fused document's id from the first list holding it "
        "(new references).");
  m.def("fusion_stage_scores", &stage_scores, py::arg("scores"), py::arg("stage_ranks"),
        "float32 [n_lists, n]: each fused document's score in each list, NaN where absent.");
}
