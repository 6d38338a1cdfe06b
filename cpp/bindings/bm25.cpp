// Bindings for the analyzer and the BM25 index: conversions and GIL release
// only; the Python API is python/secondopinion/bm25.py.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "secondopinion/analyzer.hpp"
#include "secondopinion/bm25_index.hpp"

namespace py = pybind11;
using secondopinion::AnalyzerConfig;
using secondopinion::Bm25Builder;
using secondopinion::Bm25Index;
using secondopinion::Bm25Params;

namespace {

// UTF-8 views of a sequence of str/bytes that stay valid while the GIL is
// released: the objects are referenced here, and destroyed with the GIL held.
// ASCII str objects are viewed in place; other str objects are encoded to a
// temporary bytes object (with surrogatepass, so lone surrogates become
// ill-formed UTF-8, which the analyzer treats as separators).
class Utf8Views {
 public:
  Utf8Views(py::handle sequence, const char* name) {
    py::object fast =
        py::reinterpret_steal<py::object>(PySequence_Fast(sequence.ptr(), "expected a sequence"));
    if (!fast) throw py::error_already_set();
    const Py_ssize_t n = PySequence_Fast_GET_SIZE(fast.ptr());
    PyObject** items = PySequence_Fast_ITEMS(fast.ptr());
    views.reserve(static_cast<std::size_t>(n));
    keep_.reserve(static_cast<std::size_t>(n));
    for (Py_ssize_t i = 0; i < n; ++i) views.push_back(view(items[i], name, i));
  }
  std::vector<std::string_view> views;

 private:
  std::string_view view(PyObject* item, const char* name, Py_ssize_t i) {
    if (PyUnicode_Check(item)) {
      if (PyUnicode_IS_ASCII(item)) {
        Py_ssize_t size = 0;
        const char* data = PyUnicode_AsUTF8AndSize(item, &size);
        if (data == nullptr) throw py::error_already_set();
        keep_.push_back(py::reinterpret_borrow<py::object>(item));
        return {data, static_cast<std::size_t>(size)};
      }
      PyObject* encoded = PyUnicode_AsEncodedString(item, "utf-8", "surrogatepass");
      if (encoded == nullptr) throw py::error_already_set();
      keep_.push_back(py::reinterpret_steal<py::object>(encoded));
      item = encoded;
    } else if (!PyBytes_Check(item)) {
      throw py::type_error(std::string(name) + "[" + std::to_string(i) + "] must be str, got " +
                           Py_TYPE(item)->tp_name);
    } else {
      keep_.push_back(py::reinterpret_borrow<py::object>(item));
    }
    return {PyBytes_AS_STRING(item), static_cast<std::size_t>(PyBytes_GET_SIZE(item))};
  }
  std::vector<py::object> keep_;
};

std::string utf8_string(py::handle text, const char* name) {
  py::list one;
  one.append(text);
  Utf8Views v(one, name);
  return std::string(v.views[0]);
}

template <class T>
py::array_t<T> to_numpy(std::vector<T>&& values) {
  auto* owned = new std::vector<T>(std::move(values));
  py::capsule owner(owned, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>(static_cast<py::ssize_t>(owned->size()), owned->data(), owner);
}

AnalyzerConfig make_config(bool lowercase, std::vector<std::string> stopwords,
                           const std::string& stemmer) {
  AnalyzerConfig config;
  config.lowercase = lowercase;
  config.stopwords = std::move(stopwords);
  config.stemmer = secondopinion::parse_stemmer(stemmer);
  return config;
}

py::tuple result_tuple(secondopinion::Bm25Result&& r) {
  return py::make_tuple(to_numpy(std::move(r.index)), to_numpy(std::move(r.score)));
}

}  // namespace

void bind_bm25(py::module_& m) {
  // File-system errors (missing file, permission) reach Python as OSError
  // with the errno, so FileNotFoundError etc. are raised as usual. Messages
  // may quote bytes from a file or a path that are not UTF-8 (a corrupt
  // index's ids, found by fuzzing): they are decoded with backslash escapes,
  // not strictly, which would raise UnicodeDecodeError instead.
  py::register_exception_translator([](std::exception_ptr p) {
    auto message = [](const char* what) {
      const auto size = static_cast<Py_ssize_t>(std::strlen(what));
      return py::reinterpret_steal<py::str>(PyUnicode_DecodeUTF8(what, size, "backslashreplace"));
    };
    try {
      if (p) std::rethrow_exception(p);
    } catch (const std::system_error& e) {
      py::object err =
          py::module_::import("builtins").attr("OSError")(e.code().value(), message(e.what()));
      PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(err.ptr())), err.ptr());
    } catch (const std::invalid_argument& e) {
      PyErr_SetObject(PyExc_ValueError, message(e.what()).ptr());
    }
  });

  m.def("english_stopwords", &secondopinion::english_stopwords);
  m.def("analyzer_unicode_version", &secondopinion::analyzer_unicode_version);

  py::class_<secondopinion::Analyzer>(m, "Analyzer")
      .def(py::init([](bool lowercase, std::vector<std::string> stopwords,
                       const std::string& stemmer) {
             return secondopinion::Analyzer(make_config(lowercase, std::move(stopwords), stemmer));
           }),
           py::arg("lowercase"), py::arg("stopwords"), py::arg("stemmer"))
      .def(
          "tokenize",
          [](const secondopinion::Analyzer& a, py::handle text) {
            const std::string utf8 = utf8_string(text, "text");
            std::vector<std::string> tokens;
            {
              py::gil_scoped_release release;
              tokens = a.tokenize(utf8);
            }
            return tokens;
          },
          py::arg("text"))
      .def_property_readonly("lowercase",
                             [](const secondopinion::Analyzer& a) { return a.config().lowercase; })
      .def_property_readonly(
          "stemmer",
          [](const secondopinion::Analyzer& a) { return stemmer_name(a.config().stemmer); })
      .def_property_readonly(
          "stopwords", [](const secondopinion::Analyzer& a) { return a.config().stopwords; });

  py::class_<Bm25Index>(m, "BM25Index")
      .def(
          "search",
          [](const Bm25Index& ix, py::handle query, std::size_t k, float k1, float b) {
            const std::string q = utf8_string(query, "query");
            secondopinion::Bm25Result r;
            {
              py::gil_scoped_release release;
              r = ix.search(q, k, Bm25Params{k1, b});
            }
            return result_tuple(std::move(r));
          },
          py::arg("query"), py::arg("k"), py::arg("k1"), py::arg("b"))
      .def(
          "search_batch",
          [](const Bm25Index& ix, py::handle queries, std::size_t k, float k1, float b,
             unsigned threads) {
            std::vector<std::string> qs;
            {
              Utf8Views views(queries, "queries");
              qs.assign(views.views.begin(), views.views.end());
            }
            std::vector<secondopinion::Bm25Result> results;
            {
              py::gil_scoped_release release;
              results = ix.search_batch(qs, k, Bm25Params{k1, b}, threads);
            }
            py::list out(results.size());
            for (std::size_t i = 0; i < results.size(); ++i) {
              out[i] = result_tuple(std::move(results[i]));
            }
            return out;
          },
          py::arg("queries"), py::arg("k"), py::arg("k1"), py::arg("b"), py::arg("threads"))
      .def(
          "score_all",
          [](const Bm25Index& ix, py::handle query, float k1, float b) {
            const std::string q = utf8_string(query, "query");
            py::array_t<float> out(static_cast<py::ssize_t>(ix.num_docs()));
            float* data = out.mutable_data();
            {
              py::gil_scoped_release release;
              ix.score_all(q, Bm25Params{k1, b}, data);
            }
            return out;
          },
          py::arg("query"), py::arg("k1"), py::arg("b"))
      .def(
          "save",
          [](const Bm25Index& ix, const std::string& path) {
            py::gil_scoped_release release;
            ix.save(path);
          },
          py::arg("path"))
      .def_static(
          "load",
          [](const std::string& path, bool use_mmap) {
            py::gil_scoped_release release;
            return Bm25Index::load(path, use_mmap);
          },
          py::arg("path"), py::arg("mmap"))
      .def("doc_ids",
           [](const Bm25Index& ix) {
             py::list out(ix.num_docs());
             for (std::size_t d = 0; d < ix.num_docs(); ++d) {
               const std::string_view id = ix.doc_id(d);
               out[d] = py::str(id.data(), id.size());
             }
             return out;
           })
      .def("doc_lengths",
           [](const Bm25Index& ix) {
             std::vector<std::uint32_t> lengths(ix.num_docs());
             for (std::size_t d = 0; d < lengths.size(); ++d) lengths[d] = ix.doc_length(d);
             return to_numpy(std::move(lengths));
           })
      .def("doc_freq", &Bm25Index::doc_freq, py::arg("term"))
      .def_property_readonly("num_docs", &Bm25Index::num_docs)
      .def_property_readonly("num_terms", &Bm25Index::num_terms)
      .def_property_readonly("num_postings", &Bm25Index::num_postings)
      .def_property_readonly("avg_doc_length", &Bm25Index::avg_doc_length)
      .def_property_readonly("k1", [](const Bm25Index& ix) { return ix.default_params().k1; })
      .def_property_readonly("b", [](const Bm25Index& ix) { return ix.default_params().b; })
      .def_property_readonly("analyzer", [](const Bm25Index& ix) { return ix.analyzer(); });

  py::class_<Bm25Builder>(m, "BM25Builder")
      .def(py::init([](bool lowercase, std::vector<std::string> stopwords,
                       const std::string& stemmer, unsigned threads) {
             return Bm25Builder(make_config(lowercase, std::move(stopwords), stemmer), threads);
           }),
           py::arg("lowercase"), py::arg("stopwords"), py::arg("stemmer"), py::arg("threads"))
      .def(
          "add",
          [](Bm25Builder& builder, py::handle texts, py::object titles) {
            Utf8Views text_views(texts, "texts");
            std::unique_ptr<Utf8Views> title_views;
            if (!titles.is_none()) title_views = std::make_unique<Utf8Views>(titles, "titles");
            py::gil_scoped_release release;
            builder.add(text_views.views, title_views ? &title_views->views : nullptr);
          },
          py::arg("texts"), py::arg("titles") = py::none())
      .def_property_readonly("num_docs", &Bm25Builder::num_docs)
      .def(
          "finish",
          [](Bm25Builder& builder, std::vector<std::string> ids, float k1, float b) {
            py::gil_scoped_release release;
            return builder.finish(std::move(ids), Bm25Params{k1, b});
          },
          py::arg("ids"), py::arg("k1"), py::arg("b"));
}
