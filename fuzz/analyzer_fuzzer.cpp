// libFuzzer target: the analyzer (UTF-8 decoding, word splitting, Unicode
// lower-casing, stop words, Snowball stemming) and the index builder on
// arbitrary bytes.
//
// Input: one byte of configuration, then the text. Besides the sanitizers,
// it checks what the analyzer promises for any input (analyzer.hpp): no
// throw, terms non-empty and well-formed UTF-8, without stemming every term
// made of word characters and analysing the terms again gives them back, and
// the builder counts the same terms per document as the analyzer.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "secondopinion/analyzer.hpp"
#include "secondopinion/bm25_index.hpp"

namespace {

[[noreturn]] void finding(const std::string& what) {
  std::fprintf(stderr, "FINDING: %s\n", what.c_str());
  std::abort();
}

// An independent well-formedness check (RFC 3629), not the analyzer's decoder.
bool well_formed_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n;
    std::uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;
    for (std::size_t j = 1; j <= n; ++j) {
      const auto cj = static_cast<unsigned char>(s[i + j]);
      if ((cj & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cj & 0x3F);
    }
    static constexpr std::uint32_t kMin[4] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

std::string join(const std::vector<std::string>& terms) {
  std::string out;
  for (const std::string& t : terms) out.append(t).append(" ");
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t flags = data[0];
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);

  secondopinion::AnalyzerConfig config;
  config.lowercase = (flags & 1) != 0;
  static constexpr secondopinion::StemmerKind kStemmers[4] = {
      secondopinion::StemmerKind::none, secondopinion::StemmerKind::porter,
      secondopinion::StemmerKind::english, secondopinion::StemmerKind::none};
  config.stemmer = kStemmers[(flags >> 1) & 3];
  if ((flags & 8) != 0) {
    // Stop words from the text itself (its first words), so matches happen.
    config.stopwords.assign({std::string(text.substr(0, text.find(' '))), "", "\xff"});
  }
  const secondopinion::Analyzer analyzer(config);
  const std::vector<std::string> terms = analyzer.tokenize(text);

  for (const std::string& t : terms) {
    if (t.empty()) finding("an empty term");
    if (!well_formed_utf8(t)) finding("a term is not well-formed UTF-8");
  }
  if (config.stemmer == secondopinion::StemmerKind::none) {
    // Terms are words: splitting them again changes nothing.
    std::vector<std::string> again;
    for (const std::string& t : terms) {
      analyzer.split(t, [&](std::string_view w) { again.emplace_back(w); });
    }
    if (again != terms) finding("re-analysing the terms does not give them back");
  }

  // The builder analyses each document through the same steps with its own
  // caching; its document lengths must equal the analyzer's term counts.
  // Documents are the text cut at its first seven '\n'.
  std::vector<std::string_view> docs;
  for (std::size_t start = 0;;) {
    const std::size_t end = docs.size() == 7 ? std::string_view::npos : text.find('\n', start);
    docs.push_back(text.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  secondopinion::Bm25Builder builder(config, 1);
  builder.add(docs);
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < docs.size(); ++i) ids.push_back(std::to_string(i));
  const secondopinion::Bm25Index index = builder.finish(ids, secondopinion::Bm25Params{});
  for (std::size_t i = 0; i < docs.size(); ++i) {
    if (index.doc_length(i) != analyzer.tokenize(docs[i]).size()) {
      finding("the builder and the analyzer count different terms in a document");
    }
  }
  const secondopinion::Bm25Result hits = index.search(join(terms), docs.size());
  // Unstemmed terms analyse to themselves (checked above), so they match.
  if (config.stemmer == secondopinion::StemmerKind::none && !terms.empty() &&
      hits.index.empty()) {
    finding("a document's own terms find nothing");
  }
  return 0;
}
