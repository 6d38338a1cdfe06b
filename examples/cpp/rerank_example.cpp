// secondopinion from C++ without Python: tokenise a query and candidate
// passages, rerank them with the shipped cross-encoder, print the ranking.
//
//   secondopinion_rerank --model DIR [--ort-lib PATH] [--query TEXT]
//                        [--passages FILE] [--top N]
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
               "         [--passages FILE] [--top N] [--max-length N] [--query-max-tokens N]\n"
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

int rank(const secondopinion::Reranker& reranker, const Args& args) {
  std::vector<std::string> owned;
  if (!args.passages.empty()) owned = read_lines(args.passages);
  else owned.assign(std::begin(kBuiltinPassages), std::end(kBuiltinPassages));
  const std::vector<std::string_view> passages(owned.begin(), owned.end());

  const secondopinion::RerankScores scores = reranker.score(args.query, passages);
  const std::vector<std::size_t> order = secondopinion::Reranker::order(scores);
  std::printf("query: %s%s\n", one_line(args.query, 200).c_str(),
              scores.query_truncated ? " (cut to query_max_tokens)" : "");
  if (reranker.config().floor) std::printf("model floor: %.4f\n", *reranker.config().floor);
  // rank, passage index, score, logit (9 significant digits: the float exactly), passage
  std::printf("rank\tindex\tscore\tlogit\tpassage\n");
  for (std::size_t r = 0; r < order.size() && r < args.top; ++r) {
    const std::size_t i = order[r];
    std::printf("%zu\t%zu\t%.6f\t%.9g\t%s%s\n", r + 1, i, scores.scores[i], scores.logits[i],
                one_line(passages[i], 100).c_str(), scores.truncated[i] ? " [cut]" : "");
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
