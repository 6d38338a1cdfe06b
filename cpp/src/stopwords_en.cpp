#include "secondopinion/analyzer.hpp"

namespace secondopinion {

const std::vector<std::string>& english_stopwords() {
  // Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET (also StopAnalyzer's
  // default), used by Anserini's BM25 baselines and bm25s's "en" list.
  static const std::vector<std::string> words = {
      "a",    "an",    "and",  "are",   "as",    "at",   "be",   "but",  "by",
      "for",  "if",    "in",   "into",  "is",    "it",   "no",   "not",  "of",
      "on",   "or",    "such", "that",  "the",   "their", "then", "there", "these",
      "they", "this",  "to",   "was",   "will",  "with"};
  return words;
}

}  // namespace secondopinion
