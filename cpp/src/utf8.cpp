#include "utf8.hpp"

#include <algorithm>

#include "unicode_tables.hpp"

namespace secondopinion::utf8 {

namespace {
inline bool is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }
}  // namespace

char32_t decode(std::string_view text, std::size_t pos, std::size_t* length) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t avail = text.size() - pos;
  const unsigned char c0 = s[pos];
  *length = 1;
  if (c0 < 0x80) return c0;
  // Lead byte ranges and second-byte limits follow Unicode's table of
  // well-formed byte sequences (Unicode 14, table 3-7): they exclude overlong
  // encodings (C0, C1, E0 80..9F, F0 80..8F), surrogates (ED A0..BF) and code
  // points above U+10FFFF (F4 90..BF, F5..FF).
  std::size_t need;
  char32_t cp;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c0 >= 0xC2 && c0 <= 0xDF) {
    need = 1;
    cp = c0 & 0x1F;
  } else if (c0 >= 0xE0 && c0 <= 0xEF) {
    need = 2;
    cp = c0 & 0x0F;
    if (c0 == 0xE0) lo = 0xA0;
    if (c0 == 0xED) hi = 0x9F;
  } else if (c0 >= 0xF0 && c0 <= 0xF4) {
    need = 3;
    cp = c0 & 0x07;
    if (c0 == 0xF0) lo = 0x90;
    if (c0 == 0xF4) hi = 0x8F;
  } else {
    return kInvalid;
  }
  if (avail <= need) return kInvalid;
  const unsigned char c1 = s[pos + 1];
  if (c1 < lo || c1 > hi) return kInvalid;
  cp = (cp << 6) | (c1 & 0x3F);
  for (std::size_t i = 2; i <= need; ++i) {
    const unsigned char ci = s[pos + i];
    if (!is_continuation(ci)) return kInvalid;
    cp = (cp << 6) | (ci & 0x3F);
  }
  *length = need + 1;
  return cp;
}

void append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool is_word_char(char32_t cp) {
  using unicode::kWordRangeCount;
  using unicode::kWordRanges;
  // The last range starting at or before cp is the only one that can hold it.
  const auto* end = kWordRanges + kWordRangeCount;
  const auto* it = std::upper_bound(
      kWordRanges, end, cp, [](char32_t v, const unicode::CodeRange& r) { return v < r.first; });
  return it != kWordRanges && cp <= (it - 1)->last;
}

char32_t to_lower(char32_t cp) {
  using unicode::kLowerRunCount;
  using unicode::kLowerRuns;
  const auto* end = kLowerRuns + kLowerRunCount;
  const auto* it = std::upper_bound(
      kLowerRuns, end, cp, [](char32_t v, const unicode::LowerRun& r) { return v < r.first; });
  if (it == kLowerRuns) return cp;
  const auto& run = *(it - 1);
  if (cp > run.last || (cp - run.first) % static_cast<char32_t>(run.stride) != 0) return cp;
  return static_cast<char32_t>(static_cast<std::int64_t>(cp) + run.delta);
}

const char* table_version() { return unicode::kTableVersion; }

}  // namespace secondopinion::utf8
