#include "secondopinion/analyzer.hpp"

#include <libstemmer.h>

#include <algorithm>
#include <array>
#include <climits>
#include <memory>
#include <new>
#include <stdexcept>

#include "utf8.hpp"

namespace secondopinion {

StemmerKind parse_stemmer(std::string_view name) {
  if (name == "none") return StemmerKind::none;
  if (name == "porter") return StemmerKind::porter;
  if (name == "english") return StemmerKind::english;
  throw std::invalid_argument("stemmer must be 'porter', 'english' or 'none', got '" +
                              std::string(name) + "'");
}

const char* stemmer_name(StemmerKind kind) {
  switch (kind) {
    case StemmerKind::none:
      return "none";
    case StemmerKind::porter:
      return "porter";
    case StemmerKind::english:
      return "english";
  }
  return "none";
}

const char* analyzer_unicode_version() { return utf8::table_version(); }

namespace {

// ASCII fast path: for each byte below 0x80, the byte a word gets (0 for a
// separator). One table lower-cases, the other keeps case.
struct AsciiTables {
  std::array<char, 128> lower{};
  std::array<char, 128> keep{};
  AsciiTables() {
    for (int c = 0; c < 128; ++c) {
      const bool digit = c >= '0' && c <= '9';
      const bool upper = c >= 'A' && c <= 'Z';
      const bool low = c >= 'a' && c <= 'z';
      if (digit || upper || low) {
        keep[c] = static_cast<char>(c);
        lower[c] = static_cast<char>(upper ? c + ('a' - 'A') : c);
      }
    }
  }
};
const AsciiTables kAscii;

struct StemmerDeleter {
  void operator()(sb_stemmer* s) const { sb_stemmer_delete(s); }
};

// Snowball stemmers keep per-call state, so each thread owns one per algorithm.
sb_stemmer* thread_stemmer(StemmerKind kind) {
  thread_local std::array<std::unique_ptr<sb_stemmer, StemmerDeleter>, 3> stemmers;
  auto& slot = stemmers[static_cast<std::size_t>(kind)];
  if (!slot) {
    slot.reset(sb_stemmer_new(stemmer_name(kind), "UTF_8"));
    if (!slot) {
      throw std::runtime_error(std::string("Snowball has no '") + stemmer_name(kind) +
                               "' stemmer for UTF-8 (libstemmer built without it?)");
    }
  }
  return slot.get();
}

}  // namespace

Analyzer::Analyzer(AnalyzerConfig config) : config_(std::move(config)) {
  auto& words = config_.stopwords;
  std::sort(words.begin(), words.end());
  words.erase(std::unique(words.begin(), words.end()), words.end());
}

std::vector<std::string> Analyzer::tokenize(std::string_view text) const {
  std::vector<std::string> out;
  analyze(text, [&](std::string_view term) { out.emplace_back(term); });
  return out;
}

bool Analyzer::is_stopword(std::string_view word) const {
  // A sorted vector: stop lists are short, and a binary search over
  // string_views needs no allocation (unlike std::unordered_set<std::string>).
  const auto& words = config_.stopwords;
  auto it = std::lower_bound(words.begin(), words.end(), word,
                             [](const std::string& a, std::string_view b) { return a < b; });
  return it != words.end() && *it == word;
}

std::string_view Analyzer::stem(std::string_view word) const {
  if (config_.stemmer == StemmerKind::none || word.size() > static_cast<std::size_t>(INT_MAX)) {
    return word;
  }
  sb_stemmer* stemmer = thread_stemmer(config_.stemmer);
  const sb_symbol* out = sb_stemmer_stem(stemmer, reinterpret_cast<const sb_symbol*>(word.data()),
                                         static_cast<int>(word.size()));
  if (out == nullptr) throw std::bad_alloc();
  const auto length = static_cast<std::size_t>(sb_stemmer_length(stemmer));
  // Snowball's "porter" stems the word "s" to nothing (found by fuzzing); an
  // empty term would enter the vocabulary, so such a word stays unstemmed.
  if (length == 0) return word;
  return {reinterpret_cast<const char*>(out), length};
}

void Analyzer::split_impl(std::string_view text, WordCallback callback, void* context) const {
  const std::array<char, 128>& ascii = config_.lowercase ? kAscii.lower : kAscii.keep;
  // The word buffer is per thread so that analysing a query allocates
  // nothing once warm; a callback that itself splits text (re-entry) gets a
  // fresh buffer instead.
  thread_local std::string shared_buffer;
  thread_local bool shared_busy = false;
  std::string own_buffer;
  const bool reuse = !shared_busy;
  std::string& word = reuse ? shared_buffer : own_buffer;
  struct Release {
    bool active;
    ~Release() {
      if (active) shared_busy = false;
    }
  } release{reuse};
  shared_busy = true;
  word.clear();
  auto flush = [&] {
    if (!word.empty()) {
      callback(context, word);
      word.clear();
    }
  };
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      const char mapped = ascii[c];
      if (mapped != 0) {
        word.push_back(mapped);
      } else {
        flush();
      }
      ++i;
      continue;
    }
    std::size_t length = 1;
    const char32_t cp = utf8::decode(text, i, &length);
    if (cp == utf8::kInvalid || !utf8::is_word_char(cp)) {
      // U+FFFD, whether written in the text or standing for ill-formed bytes,
      // is a symbol (category So): a separator.
      flush();
    } else if (config_.lowercase) {
      utf8::append(word, utf8::to_lower(cp));
    } else {
      word.append(text.data() + i, length);
    }
    i += length;
  }
  flush();
}

}  // namespace secondopinion
