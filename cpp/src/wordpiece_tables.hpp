// Code point tables of the BERT tokenizer, read off Hugging Face tokenizers by
// tools/gen_wordpiece_tables.py (see there for why not from one Unicode
// version). Internal to the core.
#pragma once

#include <cstddef>
#include <cstdint>

namespace secondopinion::wordpiece_tables {

// An inclusive range of code points.
struct CodeRange {
  char32_t first;
  char32_t last;
};

// A code point and what it becomes (1 to 4 code points).
struct Mapping {
  char32_t from;
  std::uint8_t length;
  char32_t to[4];
};

struct CombiningClass {
  char32_t cp;
  std::uint8_t ccc;
};

extern const char* const kTokenizersVersion;

// Each table is sorted by code point; ranges are disjoint.
extern const CodeRange kCleanDrop[];
extern const std::size_t kCleanDropCount;
extern const CodeRange kCleanSpace[];
extern const std::size_t kCleanSpaceCount;
extern const CodeRange kChinese[];
extern const std::size_t kChineseCount;
extern const CodeRange kStripped[];
extern const std::size_t kStrippedCount;
extern const CodeRange kWhitespace[];
extern const std::size_t kWhitespaceCount;
extern const CodeRange kPunctuation[];
extern const std::size_t kPunctuationCount;
extern const Mapping kDecomposition[];
extern const std::size_t kDecompositionCount;
extern const Mapping kLowercase[];
extern const std::size_t kLowercaseCount;
extern const CombiningClass kCombiningClass[];
extern const std::size_t kCombiningClassCount;

}  // namespace secondopinion::wordpiece_tables
