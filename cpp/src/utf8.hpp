// UTF-8 decoding and the per-code-point facts the analyzer needs. Internal.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace secondopinion::utf8 {

// Returned by decode() for a byte that does not start a well-formed sequence.
constexpr char32_t kInvalid = 0xFFFD;

// Decodes the code point starting at text[pos] (pos < text.size()) and stores
// its length in *length. Ill-formed input (stray continuation bytes, overlong
// forms, surrogates, values above U+10FFFF, truncated sequences) yields
// kInvalid with *length = 1, so decoding resumes at the next byte.
char32_t decode(std::string_view text, std::size_t pos, std::size_t* length);

// Appends the UTF-8 encoding of a valid code point.
void append(std::string& out, char32_t cp);

// Letters, numbers and combining marks form words; everything else separates.
bool is_word_char(char32_t cp);

// Unicode's simple lower-case mapping (identity where none is defined).
char32_t to_lower(char32_t cp);

// The Unicode version the tables were generated from, e.g. "14.0.0".
const char* table_version();

}  // namespace secondopinion::utf8
