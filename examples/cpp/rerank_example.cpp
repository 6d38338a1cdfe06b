// secondopinion from C++ without Python: tokenise a query and candidate
// passages, rerank them with the shipped cross-encoder, print the ranking.
//
//   secondopinion_rerank --model DIR [--ort-lib PATH] [--query TEXT]
//                        [--passages FILE] [--top N] [--bm25 N]
//   secondopinion_rerank --model DIR --passages FILE --queries FILE
//                        --concurrency-check [--threads 8] [--calls 10000] ...
//
// FILEs hold one text per line. The ONNX Runtime library comes from
// --ort-lib or $SECONDOPINION_ORT_LIBRARY (see README.md for where to find one).
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "concurrency_check.hpp"
#include "secondopinion/bm25_index.hpp"
#include "secondopinion/ort_runtime.hpp"
#include "secondopinion/reranker.hpp"

namespace {

// Used when no --passages file is given.
const char* const kBuiltinPassages[] = {
    "Children's ibuprofen is dosed by weight: 48 to 59 lb (6 to 8 years) gets 10 mL of the "
    "100 mg per 5 mL liquid, every 6 to 8 hours, no more than 4 doses in 24 hours.",
    "Take ibuprofen with food or milk if it upsets your stomach.",
    "Aspirin should not be given to children and teenagers with flu-like symptoms because of "
    "the risk of Reye's syndrome.",
    "Store medicines up high and out of sight, in a cabinet children cannot reach.",
    "The 1998 FIFA World Cup final was played at the Stade de France.",
    "Acetaminophen overdose can cause severe liver damage.",
};

void usage() {
  std::fprintf(stderr,
               "usage: secondopinion_rerank --model DIR [--ort-lib PATH] [--query TEXT]\n"
               "         [--passages FILE] [--top N] [--bm25 N] [--max-length N]\n"
               "         [--query-max-tokens N]\n"
               "         [--intra-op-threads N]\n"
               "       secondopinion_rerank --model DIR --passages FILE --queries FILE\n"
               "         --concurrency-check [--threads N] [--calls N] [--distinct N]\n"
               "         [--warmup N] [--max-candidates N] [--max-rss-growth F]\n");
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument(path + ": cannot open");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  if (lines.empty()) throw std::invalid_argument(path + ": no lines");
  return lines;
}

std::size_t parse_count(const std::string& flag, const std::string& value) {
  std::size_t used = 0;
  unsigned long long n = 0;
  try {
    n = std::stoull(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != value.size() || value.empty() || value[0] == '-') {
    throw std::invalid_argument(flag + " needs a non-negative integer, got '" + value + "'");
  }
  return static_cast<std::size_t>(n);
}

struct Args {
  std::string model;
  std::string ort_lib;
  std::string query = "how much ibuprofen can a 6 year old take";
  std::string passages;
  std::string queries;
  std::size_t top = 10;
  std::size_t bm25 = 0;  // 0: rerank every passage; N: only BM25's top N
  secondopinion::RerankerOptions reranker;
  bool concurrency_check = false;
  ConcurrencyOptions concurrency;
};

Args parse_args(int argc, char** argv) {
  Args a;
  if (const char* env = std::getenv("SECONDOPINION_ORT_LIBRARY")) a.ort_lib = env;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--concurrency-check") {
      a.concurrency_check = true;
      continue;
    }
    if (flag == "--help" || flag == "-h") {
      usage();
      std::exit(0);
    }
    if (i + 1 >= argc) throw std::invalid_argument(flag + " needs a value");
    const std::string value = argv[++i];
    if (flag == "--model") a.model = value;
    else if (flag == "--ort-lib") a.ort_lib = value;
    else if (flag == "--query") a.query = value;
    else if (flag == "--passages") a.passages = value;
    else if (flag == "--queries") a.queries = value;
    else if (flag == "--top") a.top = parse_count(flag, value);
    else if (flag == "--bm25") a.bm25 = parse_count(flag, value);
    else if (flag == "--max-length") a.reranker.max_length = parse_count(flag, value);
    else if (flag == "--query-max-tokens") a.reranker.query_max_tokens = parse_count(flag, value);
    else if (flag == "--intra-op-threads") a.reranker.session.threads = static_cast<int>(parse_count(flag, value));
    else if (flag == "--threads") a.concurrency.threads = parse_count(flag, value);
    else if (flag == "--calls") a.concurrency.calls = parse_count(flag, value);
    else if (flag == "--distinct") a.concurrency.distinct = parse_count(flag, value);
    else if (flag == "--warmup") a.concurrency.warmup_calls = parse_count(flag, value);
    else if (flag == "--max-candidates") a.concurrency.max_candidates = parse_count(flag, value);
    else if (flag == "--max-rss-growth") a.concurrency.max_rss_growth = std::stod(value);
    else throw std::invalid_argument("unknown option " + flag);
  }
  if (a.model.empty()) throw std::invalid_argument("--model DIR is required");
  if (a.ort_lib.empty()) {
    throw std::invalid_argument(
        "no ONNX Runtime library: pass --ort-lib PATH or set SECONDOPINION_ORT_LIBRARY "
        "(e.g. the onnxruntime wheel's onnxruntime/capi/libonnxruntime.so.1.xx)");
  }
  if (a.concurrency_check && (a.passages.empty() || a.queries.empty())) {
    throw std::invalid_argument("--concurrency-check needs --passages FILE and --queries FILE");
  }
  return a;
}

// Tabs and newlines would break the one-line-per-result output.
std::string one_line(std::string_view text, std::size_t max_chars) {
  std::string out(text.substr(0, max_chars));
  for (char& c : out) {
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  }
  return out.size() < text.size() ? out + "..." : out;
}

// Stage 1 for --bm25 N: a BM25 index over the passages (Lucene's scoring,
// Porter stemmer, English stop words), searched for the query's top N.
std::vector<std::size_t> bm25_candidates(const std::vector<std::string_view>& passages,
                                         const std::string& query, std::size_t n) {
  secondopinion::Bm25Builder builder(secondopinion::AnalyzerConfig{}, 1);
  builder.add(passages);
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < passages.size(); ++i) ids.push_back(std::to_string(i));
  const secondopinion::Bm25Index index = builder.finish(std::move(ids), secondopinion::Bm25Params{});
  const secondopinion::Bm25Result hits = index.search(query, n);
  std::vector<std::size_t> out;
  for (std::int64_t doc : hits.index) out.push_back(static_cast<std::size_t>(doc));
  return out;
}

int rank(const secondopinion::Reranker& reranker, const Args& args) {
  std::vector<std::string> owned;
  if (!args.passages.empty()) owned = read_lines(args.passages);
  else owned.assign(std::begin(kBuiltinPassages), std::end(kBuiltinPassages));
  const std::vector<std::string_view> all(owned.begin(), owned.end());

  // The passages to rerank, by their index in `all`.
  std::vector<std::size_t> candidates(all.size());
  for (std::size_t i = 0; i < all.size(); ++i) candidates[i] = i;
  if (args.bm25 > 0) candidates = bm25_candidates(all, args.query, args.bm25);
  std::vector<std::string_view> passages;
  for (std::size_t i : candidates) passages.push_back(all[i]);

  const secondopinion::RerankScores scores = reranker.score(args.query, passages);
  const std::vector<std::size_t> order = secondopinion::Reranker::order(scores);
  std::printf("query: %s%s\n", one_line(args.query, 200).c_str(),
              scores.query_truncated ? " (cut to query_max_tokens)" : "");
  if (args.bm25 > 0) {
    std::printf("reranking BM25's top %zu of %zu passages\n", candidates.size(), all.size());
  }
  if (reranker.config().floor) std::printf("model floor: %.4f\n", *reranker.config().floor);
  // rank, passage index, score, logit (9 significant digits: the float exactly), passage
  std::printf("rank\tindex\tscore\tlogit\tpassage\n");
  for (std::size_t r = 0; r < order.size() && r < args.top; ++r) {
    const std::size_t i = order[r];
    std::printf("%zu\t%zu\t%.6f\t%.9g\t%s%s\n", r + 1, candidates[i], scores.scores[i],
                scores.logits[i], one_line(passages[i], 100).c_str(),
                scores.truncated[i] ? " [cut]" : "");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args args = parse_args(argc, argv);
    const auto& runtime = secondopinion::OrtRuntime::load(args.ort_lib);
    std::fprintf(stderr, "ONNX Runtime %s from %s\n", runtime.version().c_str(),
                 runtime.library_path().c_str());
    const secondopinion::Reranker reranker(args.model, args.reranker);
    if (!args.concurrency_check) return rank(reranker, args);
    return run_concurrency_check(reranker, read_lines(args.queries), read_lines(args.passages),
                                 args.concurrency);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    usage();
    return 2;
  }
}
