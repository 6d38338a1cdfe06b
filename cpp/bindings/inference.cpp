// Bindings for cross-encoder and embedder inference: conversions and GIL
// release only; the policy (tokenising, activations, defaults) lives in
// python/secondopinion/{rerank,embed}.py.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include "secondopinion/batching.hpp"
#include "secondopinion/cross_encoder.hpp"
#include "secondopinion/embedder.hpp"
#include "secondopinion/thread_count.hpp"

namespace py = pybind11;
using namespace secondopinion;

namespace {

using IdArray = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;

// Token sequences borrowed from numpy arrays that the caller keeps alive.
struct BorrowedSequences {
  TokenSequences seqs;
  std::size_t ids_size = 0;
};

BorrowedSequences borrow(const IdArray& ids, const std::optional<IdArray>& type_ids,
                         const IdArray& offsets, std::int64_t pad_id) {
  if (ids.ndim() != 1 || offsets.ndim() != 1) {
    throw py::value_error("ids and offsets must be one-dimensional");
  }
  if (offsets.size() < 1) throw py::value_error("offsets needs at least one entry (0)");
  if (type_ids && (type_ids->ndim() != 1 || type_ids->size() != ids.size())) {
    throw py::value_error("type_ids must have the same length as ids");
  }
  BorrowedSequences b;
  b.seqs.ids = ids.data();
  b.seqs.type_ids = type_ids ? type_ids->data() : nullptr;
  b.seqs.offsets = offsets.data();
  b.seqs.count = static_cast<std::size_t>(offsets.size() - 1);
  b.seqs.pad_id = pad_id;
  b.ids_size = static_cast<std::size_t>(ids.size());
  return b;
}

using NamedFiles = std::vector<std::pair<std::string, std::string>>;

SessionConfig session_config(int threads, bool cpu_mem_arena, bool memory_pattern,
                             const NamedFiles& external_initializers) {
  SessionConfig config;
  for (const auto& [name, path] : external_initializers) {
    config.external_initializers.push_back({name, path});
  }
  config.threads = threads;
  config.cpu_mem_arena = cpu_mem_arena;
  config.memory_pattern = memory_pattern;
  return config;
}

}  // namespace

void bind_inference(py::module_& m) {
  m.attr("DEFAULT_BATCH_TOKENS") = kDefaultBatchTokens;
  m.attr("DEFAULT_BATCH_OVERHEAD_TOKENS") = kDefaultBatchOverheadTokens;
  m.def("default_thread_count", &default_thread_count,
        "Physical cores available to this process (affinity and cgroup quota respected).");

  m.def(
      "plan_batches",
      [](const IdArray& lengths, std::size_t batch_tokens, std::size_t batch_overhead_tokens) {
        if (lengths.ndim() != 1) throw py::value_error("lengths must be one-dimensional");
        std::vector<std::size_t> lens(static_cast<std::size_t>(lengths.size()));
        for (py::ssize_t i = 0; i < lengths.size(); ++i) {
          if (lengths.data()[i] < 0) throw py::value_error("lengths must be non-negative");
          lens[static_cast<std::size_t>(i)] = static_cast<std::size_t>(lengths.data()[i]);
        }
        BatchPlan plan;
        {
          py::gil_scoped_release release;
          plan = plan_batches(lens, batch_tokens, batch_overhead_tokens);
        }
        py::array_t<std::int64_t> order(static_cast<py::ssize_t>(plan.order.size()));
        std::copy(plan.order.begin(), plan.order.end(), order.mutable_data());
        const auto nb = static_cast<py::ssize_t>(plan.batches.size());
        py::array_t<std::int64_t> first(nb), rows(nb), width(nb);
        for (py::ssize_t i = 0; i < nb; ++i) {
          const Batch& b = plan.batches[static_cast<std::size_t>(i)];
          first.mutable_data()[i] = static_cast<std::int64_t>(b.first);
          rows.mutable_data()[i] = static_cast<std::int64_t>(b.rows);
          width.mutable_data()[i] = static_cast<std::int64_t>(b.width);
        }
        py::dict out;
        out["order"] = order;
        out["batch_first"] = first;
        out["batch_rows"] = rows;
        out["batch_width"] = width;
        out["real_tokens"] = plan.real_tokens;
        out["padded_tokens"] = plan.padded_tokens;
        return out;
      },
      py::arg("lengths"), py::arg("batch_tokens"),
      py::arg("batch_overhead_tokens") = kDefaultBatchOverheadTokens,
      "Sort sequence lengths and cut them into batches under a padded-token budget.");

  py::class_<CrossEncoder>(m, "CrossEncoderSession")
      .def(py::init([](const std::string& model_path, int threads, std::size_t max_length,
                       bool cpu_mem_arena, bool memory_pattern, const NamedFiles& external) {
             const SessionConfig config =
                 session_config(threads, cpu_mem_arena, memory_pattern, external);
             py::gil_scoped_release release;
             return new CrossEncoder(model_path, config, max_length);
           }),
           py::arg("model_path"), py::arg("threads") = 0, py::arg("max_length") = 0,
           py::arg("cpu_mem_arena") = SessionConfig{}.cpu_mem_arena,
           py::arg("memory_pattern") = SessionConfig{}.memory_pattern,
           py::arg("external_initializers") = NamedFiles{})
      .def(
          "logits",
          [](const CrossEncoder& self, const IdArray& ids, const std::optional<IdArray>& type_ids,
             const IdArray& offsets, std::int64_t pad_id, std::size_t batch_tokens) {
            const BorrowedSequences b = borrow(ids, type_ids, offsets, pad_id);
            py::array_t<float> out(static_cast<py::ssize_t>(b.seqs.count));
            float* dst = out.mutable_data();
            {
              py::gil_scoped_release release;
              self.logits(b.seqs, b.ids_size, batch_tokens, dst);
            }
            return out;
          },
          py::arg("ids"), py::arg("type_ids"), py::arg("offsets"), py::arg("pad_id"),
          py::arg("batch_tokens"),
          "One float32 logit per sequence (for a [B, 2] head: l1 - l0), in input order.")
      .def_property_readonly("num_logits", &CrossEncoder::num_logits)
      .def_property_readonly("output_name", &CrossEncoder::output_name)
      .def_property_readonly("max_length", &CrossEncoder::max_length)
      .def_property_readonly("threads", [](const CrossEncoder& s) { return s.session().threads(); })
      .def_property_readonly("input_names",
                             [](const CrossEncoder& s) { return s.session().input_names(); })
      .def_property_readonly("uses_token_type_ids",
                             [](const CrossEncoder& s) { return s.session().uses_token_type_ids(); });

  py::class_<Embedder>(m, "EmbedderSession")
      .def(py::init([](const std::string& model_path, int threads, std::size_t max_length,
                       const std::string& pooling, bool normalize, bool cpu_mem_arena,
                       bool memory_pattern, const NamedFiles& external) {
             const SessionConfig config =
                 session_config(threads, cpu_mem_arena, memory_pattern, external);
             const Pooling pool = parse_pooling(pooling);
             py::gil_scoped_release release;
             return new Embedder(model_path, config, max_length, pool, normalize);
           }),
           py::arg("model_path"), py::arg("threads") = 0, py::arg("max_length") = 0,
           py::arg("pooling") = "mean", py::arg("normalize") = true,
           py::arg("cpu_mem_arena") = SessionConfig{}.cpu_mem_arena,
           py::arg("memory_pattern") = SessionConfig{}.memory_pattern,
           py::arg("external_initializers") = NamedFiles{})
      .def(
          "encode",
          [](const Embedder& self, const IdArray& ids, const std::optional<IdArray>& type_ids,
             const IdArray& offsets, std::int64_t pad_id, std::size_t batch_tokens) {
            const BorrowedSequences b = borrow(ids, type_ids, offsets, pad_id);
            py::array_t<float> out({static_cast<py::ssize_t>(b.seqs.count),
                                    static_cast<py::ssize_t>(self.dimension())});
            float* dst = out.mutable_data();
            {
              py::gil_scoped_release release;
              self.encode(b.seqs, b.ids_size, batch_tokens, dst);
            }
            return out;
          },
          py::arg("ids"), py::arg("type_ids"), py::arg("offsets"), py::arg("pad_id"),
          py::arg("batch_tokens"), "float32 [n, dimension] pooled (and normalised) embeddings.")
      .def_property_readonly("dimension", &Embedder::dimension)
      .def_property_readonly("output_name", &Embedder::output_name)
      .def_property_readonly("max_length", &Embedder::max_length)
      .def_property_readonly("threads", [](const Embedder& s) { return s.session().threads(); })
      .def_property_readonly("input_names",
                             [](const Embedder& s) { return s.session().input_names(); })
      .def_property_readonly("uses_token_type_ids",
                             [](const Embedder& s) { return s.session().uses_token_type_ids(); });
}
