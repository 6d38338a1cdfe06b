// Bindings for the C++ WordPiece tokenizer: conversions and GIL release only.
// Python's own path tokenises with the `tokenizers` package; this binding
// exists so tests can compare the C++ tokenizer with it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "secondopinion/wordpiece.hpp"

namespace py = pybind11;
using secondopinion::EncodedBatch;
using secondopinion::WordPieceTokenizer;

namespace {

template <class T>
py::array_t<T> to_array(const std::vector<T>& v) {
  py::array_t<T> out(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

py::dict to_dict(const EncodedBatch& batch) {
  py::dict out;
  out["ids"] = to_array(batch.ids);
  out["type_ids"] = to_array(batch.type_ids);
  out["offsets"] = to_array(batch.offsets);
  out["truncated"] = to_array(batch.truncated).attr("astype")("bool");
  out["query_truncated"] = to_array(batch.query_truncated).attr("astype")("bool");
  return out;
}

std::vector<std::string_view> views(const std::vector<std::string>& texts) {
  return {texts.begin(), texts.end()};
}

}  // namespace

void bind_wordpiece(py::module_& m) {
  m.def("wordpiece_tokenizers_version", &secondopinion::wordpiece_tokenizers_version);
  py::class_<WordPieceTokenizer>(m, "WordPieceTokenizer")
      .def_static(
          "from_file",
          [](const std::string& path) {
            py::gil_scoped_release release;
            return WordPieceTokenizer::from_file(path);
          },
          py::arg("path"))
      .def_static("from_json", &WordPieceTokenizer::from_json, py::arg("json"),
                  py::arg("source") = "<json>")
      .def(
          "encode",
          [](const WordPieceTokenizer& self, const std::string& text) {
            std::vector<std::int64_t> ids;
            {
              py::gil_scoped_release release;
              ids = self.encode(text);
            }
            return to_array(ids);
          },
          py::arg("text"), "int64 ids of text without special tokens.")
      .def(
          "encode_capped",
          [](const WordPieceTokenizer& self, const std::string& text, std::size_t max_tokens) {
            std::vector<std::int64_t> ids;
            bool more = false;
            {
              py::gil_scoped_release release;
              more = self.encode(text, max_tokens, ids);
            }
            return py::make_tuple(to_array(ids), more);
          },
          py::arg("text"), py::arg("max_tokens"),
          "(the first max_tokens ids, whether the text has more).")
      .def(
          "encode_texts",
          [](const WordPieceTokenizer& self, const std::vector<std::string>& texts,
             std::size_t max_length) {
            EncodedBatch batch;
            {
              py::gil_scoped_release release;
              batch = self.encode_texts(views(texts), max_length);
            }
            return to_dict(batch);
          },
          py::arg("texts"), py::arg("max_length"))
      .def(
          "encode_pairs",
          [](const WordPieceTokenizer& self, const std::vector<std::string>& queries,
             const std::vector<std::string>& passages, std::size_t query_max_tokens,
             std::size_t max_length) {
            EncodedBatch batch;
            {
              py::gil_scoped_release release;
              batch = self.encode_pairs(views(queries), views(passages), query_max_tokens, max_length);
            }
            return to_dict(batch);
          },
          py::arg("queries"), py::arg("passages"), py::arg("query_max_tokens"),
          py::arg("max_length"))
      .def_property_readonly("special_tokens_single", &WordPieceTokenizer::special_tokens_single)
      .def_property_readonly("special_tokens_pair", &WordPieceTokenizer::special_tokens_pair)
      .def_property_readonly("pad_id", &WordPieceTokenizer::pad_id)
      .def_property_readonly("unk_id", &WordPieceTokenizer::unk_id)
      .def_property_readonly("vocab_size", &WordPieceTokenizer::vocab_size)
      .def("token_to_id", &WordPieceTokenizer::token_to_id, py::arg("token"));
}
