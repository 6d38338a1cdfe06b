#include "concurrency_check.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>
#include <string_view>
#include <thread>

namespace {

using Clock = std::chrono::steady_clock;

// Off-topic for the medicines corpus: the gate's "nothing relevant" case.
const char* const kUnrelated[] = {
    "who won the 1998 world cup",
    "how do I tune a guitar to drop D",
    "best pizza dough hydration for a home oven",
    "what is the capital of Mongolia",
    "how to change a bicycle inner tube",
    "rust borrow checker lifetime error in closures",
    "when was the Eiffel tower built",
    "how many moons does Jupiter have",
    "recipe for sourdough starter",
    "what does a quantum computer do",
};

enum class Kind { answerable, unrelated, empty, very_long };

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::answerable: return "answerable";
    case Kind::unrelated: return "unrelated";
    case Kind::empty: return "empty";
    case Kind::very_long: return "very long";
  }
  return "?";
}

struct Input {
  Kind kind;
  std::string query;
  std::vector<std::string_view> passages;
};

// Kinds in proportion 5 : 2 : 1 : 2 over every ten inputs.
Kind kind_of(std::size_t i) {
  static const Kind pattern[10] = {Kind::answerable, Kind::answerable, Kind::answerable,
                                   Kind::answerable, Kind::answerable, Kind::unrelated,
                                   Kind::unrelated,  Kind::empty,      Kind::very_long,
                                   Kind::very_long};
  return pattern[i % 10];
}

std::vector<Input> make_inputs(const std::vector<std::string>& queries,
                               const std::vector<std::string>& passages,
                               const ConcurrencyOptions& options) {
  std::mt19937_64 rng(options.seed);
  auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  std::vector<Input> inputs(options.distinct);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    Input& in = inputs[i];
    in.kind = kind_of(i);
    switch (in.kind) {
      case Kind::answerable: in.query = queries[pick(queries.size())]; break;
      case Kind::unrelated: in.query = kUnrelated[pick(std::size(kUnrelated))]; break;
      case Kind::empty: in.query = (i / 10) % 2 == 0 ? "" : " \t\n "; break;
      case Kind::very_long:
        // Tens of kilobytes: passages glued together, or one giant "word"
        // (no break for the tokenizer to stop at). Cut to query_max_tokens.
        if ((i / 10) % 2 == 0) {
          while (in.query.size() < 40000) in.query += passages[pick(passages.size())] + " ";
        } else {
          in.query.assign(50000, 'x');
        }
        break;
    }
    const std::size_t k = 1 + pick(options.max_candidates);
    for (std::size_t j = 0; j < k; ++j) in.passages.push_back(passages[pick(passages.size())]);
  }
  return inputs;
}

double rss_mib() {
  std::ifstream statm("/proc/self/statm");
  std::size_t size = 0, resident = 0;
  statm >> size >> resident;
  return double(resident) * double(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct Tally {
  std::atomic<std::size_t> mismatches{0};
  std::atomic<std::size_t> exceptions{0};
  std::mutex first_problem_mutex;
  std::string first_problem;

  void note(const std::string& problem) {
    std::lock_guard<std::mutex> lock(first_problem_mutex);
    if (first_problem.empty()) first_problem = problem;
  }
};

// Calls schedule[first .. last) on `threads` threads, comparing each result
// with the single-threaded one bit for bit.
void run_calls(const secondopinion::Reranker& reranker, const std::vector<Input>& inputs,
               const std::vector<std::vector<float>>& expected,
               const std::vector<std::size_t>& schedule, std::size_t first, std::size_t last,
               std::size_t threads, Tally& tally) {
  std::atomic<std::size_t> next{first};
  auto worker = [&] {
    for (std::size_t c = next++; c < last; c = next++) {
      const std::size_t i = schedule[c];
      try {
        const auto got = reranker.score(inputs[i].query, inputs[i].passages);
        const auto& want = expected[i];
        if (got.logits.size() != want.size() ||
            std::memcmp(got.logits.data(), want.data(), want.size() * sizeof(float)) != 0) {
          ++tally.mismatches;
          tally.note("call " + std::to_string(c) + " (input " + std::to_string(i) + ", " +
                     kind_name(inputs[i].kind) + ") differs from the single-threaded result");
        }
      } catch (const std::exception& e) {
        ++tally.exceptions;
        tally.note("call " + std::to_string(c) + " threw: " + e.what());
      }
    }
  };
  std::vector<std::thread> pool;
  for (std::size_t t = 0; t < threads; ++t) pool.emplace_back(worker);
  for (auto& th : pool) th.join();
}

// Padded tokens of an input's one batch (at most 8 pairs of at most
// max_length tokens fit one batch of the default budget): what its activations
// take from ONNX Runtime's arena.
std::size_t padded_tokens(const secondopinion::Reranker& reranker, const Input& in) {
  const auto batch = reranker.tokenizer().encode_pairs(in.query, in.passages,
                                                       reranker.query_max_tokens(),
                                                       reranker.max_length());
  std::size_t width = 0;
  for (std::size_t i = 0; i < batch.size(); ++i) width = std::max(width, batch.length(i));
  return width * batch.size();
}

// Every thread runs the largest inputs at the same moment, several times: the
// most arena memory the run can need at once (threads x largest batch). ONNX
// Runtime's arena keeps what it grew to, so without this the baseline would
// be taken before the first time that many large batches happen to coincide,
// and that one-off growth would read as a leak.
std::size_t peak_load(const secondopinion::Reranker& reranker, const std::vector<Input>& inputs,
                      const std::vector<std::vector<float>>& expected, std::size_t threads,
                      Tally& tally) {
  std::vector<std::size_t> by_size(inputs.size());
  for (std::size_t i = 0; i < by_size.size(); ++i) by_size[i] = i;
  std::vector<std::size_t> tokens(inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) tokens[i] = padded_tokens(reranker, inputs[i]);
  std::stable_sort(by_size.begin(), by_size.end(),
                   [&](std::size_t a, std::size_t b) { return tokens[a] > tokens[b]; });
  by_size.resize(std::min<std::size_t>(by_size.size(), 3));
  std::vector<std::size_t> schedule;
  for (int round = 0; round < 3; ++round) {
    for (std::size_t i : by_size) schedule.insert(schedule.end(), threads, i);
  }
  run_calls(reranker, inputs, expected, schedule, 0, schedule.size(), threads, tally);
  return schedule.size();
}

}  // namespace

int run_concurrency_check(const secondopinion::Reranker& reranker,
                          const std::vector<std::string>& queries,
                          const std::vector<std::string>& passages,
                          const ConcurrencyOptions& options) {
  if (queries.empty() || passages.empty() || options.distinct == 0 || options.threads == 0 ||
      options.max_candidates == 0) {
    std::fprintf(stderr, "concurrency check: needs queries, passages, distinct, threads and "
                         "max_candidates > 0\n");
    return 2;
  }
  const std::vector<Input> inputs = make_inputs(queries, passages, options);
  std::size_t per_kind[4] = {};
  for (const Input& in : inputs) ++per_kind[static_cast<int>(in.kind)];
  std::printf("concurrency check: %zu threads sharing one Reranker (%d intra-op threads), %zu calls "
              "over %zu distinct inputs (answerable %zu, unrelated %zu, empty %zu, very long %zu), "
              "1-%zu passages per call\n",
              options.threads, reranker.cross_encoder().session().threads(), options.calls,
              inputs.size(), per_kind[0], per_kind[1], per_kind[2], per_kind[3],
              options.max_candidates);

  // The reference: every distinct input once, on this thread alone.
  auto start = Clock::now();
  std::vector<std::vector<float>> expected;
  expected.reserve(inputs.size());
  for (const Input& in : inputs) expected.push_back(reranker.score(in.query, in.passages).logits);
  std::printf("single-threaded reference: %zu inputs in %.1f s; RSS %.1f MiB\n", inputs.size(),
              seconds_since(start), rss_mib());

  std::vector<std::size_t> schedule(options.calls);
  for (std::size_t c = 0; c < schedule.size(); ++c) schedule[c] = c % inputs.size();
  std::shuffle(schedule.begin(), schedule.end(), std::mt19937_64(options.seed + 1));

  Tally tally;
  const std::size_t warmup = std::min(options.warmup_calls, options.calls);
  start = Clock::now();
  const std::size_t peak_calls = peak_load(reranker, inputs, expected, options.threads, tally);
  run_calls(reranker, inputs, expected, schedule, 0, warmup, options.threads, tally);
  const double rss_warm = rss_mib();
  const double warm_s = seconds_since(start);
  std::printf("warm-up: %zu peak-load calls (the largest inputs on every thread at once) + %zu "
              "calls in %.1f s; RSS %.1f MiB\n",
              peak_calls, warmup, warm_s, rss_warm);

  // The measured calls in ten slices, RSS after each: a leak shows as a slope.
  start = Clock::now();
  std::printf("RSS after each tenth of the measured calls (MiB):");
  const std::size_t measured = options.calls - warmup;
  for (std::size_t slice = 0; slice < 10; ++slice) {
    const std::size_t first = warmup + measured * slice / 10;
    const std::size_t last = warmup + measured * (slice + 1) / 10;
    run_calls(reranker, inputs, expected, schedule, first, last, options.threads, tally);
    std::printf(" %.1f", rss_mib());
    std::fflush(stdout);
  }
  std::printf("\n");
  const double run_s = seconds_since(start);
  const double rss_end = rss_mib();
  const double growth = rss_warm > 0 ? (rss_end - rss_warm) / rss_warm : 0.0;
  std::printf("measured: %zu calls in %.1f s (%.1f calls/s); RSS %.1f MiB -> %.1f MiB (%+.2f%%)\n",
              measured, run_s, run_s > 0 ? double(measured) / run_s : 0.0, rss_warm, rss_end,
              100.0 * growth);
  std::printf("calls %zu, threads %zu, mismatches %zu (logits compared bit for bit), "
              "exceptions %zu, wall %.1f s\n",
              options.calls, options.threads, tally.mismatches.load(), tally.exceptions.load(),
              warm_s + run_s);

  bool ok = true;
  if (tally.mismatches > 0 || tally.exceptions > 0) {
    std::printf("FAIL: %s\n", tally.first_problem.c_str());
    ok = false;
  }
  if (growth > options.max_rss_growth) {
    std::printf("FAIL: RSS grew by %.2f%% after warm-up (limit %.2f%%)\n", 100.0 * growth,
                100.0 * options.max_rss_growth);
    ok = false;
  }
  if (ok) std::printf("PASS\n");
  return ok ? 0 : 1;
}
