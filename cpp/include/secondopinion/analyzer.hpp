// The text analyzer shared by BM25 indexing and querying.
//
// Pipeline (each step switchable), in Lucene's order:
//   1. split UTF-8 text into words: maximal runs of letters, numbers and
//      combining marks (Unicode categories L*, N*, M*; see unicode_tables.cpp
//      for the Unicode version). Everything else separates words, and so does
//      ill-formed UTF-8: each byte that does not start a well-formed sequence
//      reads as U+FFFD, which is not a word character. Nothing is dropped
//      silently beyond that and nothing throws on bad bytes.
//   2. lower-case each word with Unicode's simple lower-case mapping (all
//      scripts, not only ASCII: "ΣΟΦΊΑ" -> "σοφία", "ПРИВЕТ" -> "привет"); no
//      full case folding, so "ß" stays "ß" as in Lucene's LowerCaseFilter.
//   3. drop stop words: exact byte match against the stop list, after
//      lower-casing and before stemming (so with lower-casing off, "The" is not
//      the stop word "the").
//   4. stem with Snowball: "porter" (Porter's original algorithm, Anserini's
//      choice) or "english" (Porter2, what PyStemmer users get), or none.
//      A word Snowball would stem to nothing ("s" under "porter") is kept
//      as it is: terms are never empty.
//
// Thread safety: an Analyzer is immutable and may be shared by threads;
// Snowball stemmers are not thread-safe, so each thread uses its own.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace secondopinion {

enum class StemmerKind { none, porter, english };

// "none" | "porter" | "english"; throws std::invalid_argument otherwise.
StemmerKind parse_stemmer(std::string_view name);
const char* stemmer_name(StemmerKind kind);

// Lucene's default English stop set (EnglishAnalyzer.ENGLISH_STOP_WORDS_SET),
// the one Anserini uses: 33 words, sorted.
const std::vector<std::string>& english_stopwords();

struct AnalyzerConfig {
  bool lowercase = true;
  std::vector<std::string> stopwords = english_stopwords();
  StemmerKind stemmer = StemmerKind::porter;
};

class Analyzer {
 public:
  explicit Analyzer(AnalyzerConfig config = AnalyzerConfig{});

  // The configuration, with the stop list sorted and deduplicated.
  const AnalyzerConfig& config() const { return config_; }

  // Calls emit(std::string_view term) for every term of text, in order. The
  // view is valid only during the call.
  template <class Emit>
  void analyze(std::string_view text, Emit&& emit) const {
    split(text, [&](std::string_view word) {
      if (is_stopword(word)) return;
      emit(stem(word));
    });
  }

  // The terms of text, in order.
  std::vector<std::string> tokenize(std::string_view text) const;

  // The steps of analyze(), exposed for the index builder, which caches
  // analysed words and so calls them separately.

  // Calls on_word(std::string_view word) for every word of text, lower-cased
  // when the configuration says so.
  template <class OnWord>
  void split(std::string_view text, OnWord&& on_word) const {
    split_impl(text, &invoke_callback<std::remove_reference_t<OnWord>>, &on_word);
  }
  bool is_stopword(std::string_view word) const;
  // The stem of word; the view stays valid until this thread's next stem().
  std::string_view stem(std::string_view word) const;

 private:
  using WordCallback = void (*)(void* context, std::string_view word);
  template <class F>
  static void invoke_callback(void* context, std::string_view word) {
    (*static_cast<F*>(context))(word);
  }
  void split_impl(std::string_view text, WordCallback callback, void* context) const;

  AnalyzerConfig config_;
};

// The Unicode version of the word-character and lower-case tables.
const char* analyzer_unicode_version();

}  // namespace secondopinion
