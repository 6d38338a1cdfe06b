// The example's concurrency check: many threads sharing one Reranker must get
// exactly the results one thread gets, without memory creeping up.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "secondopinion/reranker.hpp"

struct ConcurrencyOptions {
  std::size_t threads = 8;
  std::size_t calls = 10000;
  // Distinct inputs; call i reranks input i mod distinct (in a shuffled order),
  // so each input's single-threaded result is computed once.
  std::size_t distinct = 400;
  // Calls run (on all threads) before the RSS baseline is taken.
  std::size_t warmup_calls = 1000;
  std::size_t max_candidates = 8;  // passages per call: 1 .. max_candidates
  double max_rss_growth = 0.05;    // from the baseline to the end
  unsigned seed = 20240501;
};

// Runs the check and prints a report. `queries` are answerable queries (the
// others, unrelated, empty and very long, are made here); `passages` the
// candidates they are reranked against. Returns the process exit status: 0
// when every call matched, none threw, and RSS grew by at most
// max_rss_growth.
int run_concurrency_check(const secondopinion::Reranker& reranker,
                          const std::vector<std::string>& queries,
                          const std::vector<std::string>& passages,
                          const ConcurrencyOptions& options);
