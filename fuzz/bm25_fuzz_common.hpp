// Shared by the BM25 index-load fuzzers: puts the input in a file (loading
// goes through Bm25Index::load, the real entry point, with its open/stat/mmap
// checks) and, when an input loads, uses the index the way a server would so
// that anything the loader let through that search cannot handle shows up
// under the sanitizers.
#pragma once

#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "secondopinion/bm25_index.hpp"

namespace fuzz {

// A finding: something the loader accepted behaves in a way no valid index can.
[[noreturn]] inline void finding(const std::string& what) {
  std::fprintf(stderr, "FINDING: %s\n", what.c_str());
  std::abort();
}

// Files go to memory (/dev/shm) where there is one: save() fsyncs, which on
// a disk would cap the fuzzer at a few hundred runs a second.
inline std::string temp_path(const char* tag) {
  const char* env = std::getenv("SO_FUZZ_TMPDIR");
  std::string dir = env != nullptr && *env != '\0' ? env : "";
  if (dir.empty()) dir = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  return dir + "/so_fuzz_" + tag + "_" + std::to_string(::getpid());
}

inline void write_file(const std::string& path, const std::uint8_t* data, std::size_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) finding("cannot create " + path);
  if (size != 0 && std::fwrite(data, 1, size, f) != size) finding("cannot write " + path);
  std::fclose(f);
}

inline void check_result(const secondopinion::Bm25Result& r, std::size_t k, std::size_t n) {
  if (r.index.size() != r.score.size() || r.index.size() > k || r.index.size() > n) {
    finding("search returned " + std::to_string(r.index.size()) + " results for k " +
            std::to_string(k));
  }
  for (std::size_t i = 0; i < r.index.size(); ++i) {
    if (r.index[i] < 0 || static_cast<std::size_t>(r.index[i]) >= n) {
      finding("search returned document index " + std::to_string(r.index[i]));
    }
    if (std::isnan(r.score[i])) finding("search returned a NaN score");
    if (i > 0 && r.score[i] > r.score[i - 1]) finding("search results are not sorted");
  }
}

// Everything a caller can do with a loaded index; `extra` is more query text.
inline void exercise(const secondopinion::Bm25Index& ix, const std::string& extra) {
  const std::size_t n = ix.num_docs();
  if (n == 0) finding("an index with no documents loaded");
  for (std::size_t d = 0; d < n; ++d) {
    (void)ix.doc_id(d);
    (void)ix.doc_length(d);
  }
  std::string query;
  for (std::size_t t = 0; t < ix.num_terms(); ++t) {
    const std::string_view term = ix.term(t);
    const std::uint32_t df = ix.doc_freq(term);
    if (df > n) finding("a term's document frequency exceeds the document count");
    if (t < 4) query.append(term).append(" ");
  }
  const secondopinion::Bm25Params& params = ix.default_params();
  for (const std::string& q : {query, extra, query + extra}) {
    for (std::size_t k : {std::size_t{1}, std::size_t{3}, n + 1}) {
      check_result(ix.search(q, k, params), k, n);
    }
    std::vector<float> all(n);
    ix.score_all(q, params, all.data());
    for (float s : all) {
      if (std::isnan(s)) finding("score_all returned a NaN score");
    }
  }
  // What was loaded saves and loads back the same.
  const std::string copy = temp_path("resave");
  ix.save(copy);
  try {
    const secondopinion::Bm25Index again = secondopinion::Bm25Index::load(copy, false);
    std::remove(copy.c_str());
    if (again.num_docs() != n || again.num_terms() != ix.num_terms() ||
        again.num_postings() != ix.num_postings()) {
      finding("a loaded index does not survive save and load");
    }
    for (std::size_t d = 0; d < n; ++d) {
      if (again.doc_id(d) != ix.doc_id(d)) finding("document ids change in save and load");
    }
  } catch (const std::invalid_argument& e) {
    finding(std::string("a loaded index, saved again, does not load: ") + e.what());
  }
}

// Loads `data` as an index file, both mapped and read into memory. The
// documented failures (std::invalid_argument for a bad file, std::system_error
// for I/O) are the allowed outcomes; anything else propagates and libFuzzer
// reports it as a crash.
inline void load_and_exercise(const std::uint8_t* data, std::size_t size,
                              const std::string& extra) {
  struct RemovedAtExit {
    std::string path = temp_path("index");
    ~RemovedAtExit() { std::remove(path.c_str()); }
  };
  static const RemovedAtExit file;
  const std::string& path = file.path;
  write_file(path, data, size);
  for (bool use_mmap : {true, false}) {
    try {
      const secondopinion::Bm25Index ix = secondopinion::Bm25Index::load(path, use_mmap);
      exercise(ix, extra);
    } catch (const std::invalid_argument& e) {
      if (std::strstr(e.what(), path.c_str()) == nullptr) {
        finding(std::string("the error does not name the file: ") + e.what());
      }
    }
  }
}

}  // namespace fuzz
