// BertNormalizer + BertPreTokenizer, word by word (see wordpiece_impl.hpp).
#include <algorithm>

#include "utf8.hpp"
#include "wordpiece_impl.hpp"
#include "wordpiece_tables.hpp"

namespace secondopinion {

namespace wt = wordpiece_tables;

namespace {

bool in_ranges(const wt::CodeRange* ranges, std::size_t count, char32_t cp) {
  const wt::CodeRange* end = ranges + count;
  const wt::CodeRange* it = std::upper_bound(
      ranges, end, cp, [](char32_t c, const wt::CodeRange& r) { return c < r.first; });
  return it != ranges && cp <= (it - 1)->last;
}

const wt::Mapping* find_mapping(const wt::Mapping* table, std::size_t count, char32_t cp) {
  const wt::Mapping* end = table + count;
  const wt::Mapping* it = std::lower_bound(
      table, end, cp, [](const wt::Mapping& m, char32_t c) { return m.from < c; });
  return it != end && it->from == cp ? it : nullptr;
}

std::uint8_t combining_class(char32_t cp) {
  if (cp < 0x300) return 0;
  const wt::CombiningClass* end = wt::kCombiningClass + wt::kCombiningClassCount;
  const wt::CombiningClass* it = std::lower_bound(
      wt::kCombiningClass, end, cp,
      [](const wt::CombiningClass& c, char32_t x) { return c.cp < x; });
  return it != end && it->cp == cp ? it->ccc : 0;
}

bool is_ascii_punctuation(char32_t cp) {
  return (cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x40) || (cp >= 0x5B && cp <= 0x60) ||
         (cp >= 0x7B && cp <= 0x7E);
}

// Hangul syllables decompose arithmetically (Unicode 3.12), not by table.
constexpr char32_t kHangulFirst = 0xAC00, kHangulLast = 0xD7A3;

}  // namespace

bool BertWordSplitter::next(std::string& word, std::size_t& chars) {
  while (ready_head_ == ready_.size()) {
    ready_.clear();
    ready_head_ = 0;
    if (pos_ >= text_.size()) {
      finish_word();
      if (ready_.empty()) return false;
      break;
    }
    std::size_t length = 1;
    char32_t cp = utf8::decode(text_, pos_, &length);
    pos_ += length;
    if (options_.enabled && options_.clean_text) {
      if (cp < 0x80) {
        if (cp == '\t' || cp == '\n' || cp == '\r') cp = ' ';
        else if (cp < 0x20 || cp == 0x7F) continue;
      } else if (in_ranges(wt::kCleanDrop, wt::kCleanDropCount, cp)) {
        continue;
      } else if (in_ranges(wt::kCleanSpace, wt::kCleanSpaceCount, cp)) {
        cp = ' ';
      }
    }
    if (options_.enabled && options_.handle_chinese_chars && cp >= 0x3400 &&
        in_ranges(wt::kChinese, wt::kChineseCount, cp)) {
      push(' ');
      push(cp);
      push(' ');
    } else {
      push(cp);
    }
  }
  const std::u32string& w = ready_[ready_head_++];
  word.clear();
  for (char32_t cp : w) utf8::append(word, cp);
  chars = w.size();
  return true;
}

void BertWordSplitter::push(char32_t cp) {
  if (!(options_.enabled && options_.strip_accents) || cp < 0xC0) {
    classify(cp);
    return;
  }
  if (cp >= kHangulFirst && cp <= kHangulLast) {
    const char32_t s = cp - kHangulFirst;
    classify(0x1100 + s / 588);
    classify(0x1161 + (s % 588) / 28);
    if (s % 28 != 0) classify(0x11A7 + s % 28);
    return;
  }
  const wt::Mapping* d = find_mapping(wt::kDecomposition, wt::kDecompositionCount, cp);
  const char32_t* parts = d ? d->to : &cp;
  const std::size_t n = d ? d->length : 1;
  for (std::size_t i = 0; i < n; ++i) {
    if (!in_ranges(wt::kStripped, wt::kStrippedCount, parts[i])) classify(parts[i]);
  }
}

void BertWordSplitter::classify(char32_t cp) {
  const bool ascii = cp < 0x80;
  const bool space = ascii ? (cp == ' ' || (cp >= 0x09 && cp <= 0x0D))
                           : in_ranges(wt::kWhitespace, wt::kWhitespaceCount, cp);
  if (space) {
    finish_word();
    return;
  }
  const bool punct = ascii ? is_ascii_punctuation(cp)
                           : in_ranges(wt::kPunctuation, wt::kPunctuationCount, cp);
  if (punct) {
    finish_word();
    ready_.emplace_back(1, cp);  // punctuation has no case and no combining class
    return;
  }
  buffer_.push_back(cp);
}

void BertWordSplitter::finish_word() {
  if (buffer_.empty()) return;
  if (options_.enabled && options_.strip_accents) {
    // NFD's canonical ordering: each run of characters with a non-zero
    // combining class is sorted by class, stably.
    auto by_class = [](char32_t a, char32_t b) { return combining_class(a) < combining_class(b); };
    for (auto it = buffer_.begin(); it != buffer_.end();) {
      if (combining_class(*it) == 0) {
        ++it;
        continue;
      }
      auto run_end = std::find_if(it, buffer_.end(), [](char32_t c) { return combining_class(c) == 0; });
      std::stable_sort(it, run_end, by_class);
      it = run_end;
    }
  }
  std::u32string& out = ready_.emplace_back();
  const bool lower = options_.enabled && options_.lowercase;
  for (char32_t cp : buffer_) {
    if (!lower) {
      out.push_back(cp);
    } else if (cp < 0x80) {
      out.push_back(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
    } else if (const wt::Mapping* m = find_mapping(wt::kLowercase, wt::kLowercaseCount, cp)) {
      out.append(m->to, m->length);
    } else {
      out.push_back(cp);
    }
  }
  buffer_.clear();
}

}  // namespace secondopinion
