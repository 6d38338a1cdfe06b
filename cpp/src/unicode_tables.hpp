// Code point tables for the analyzer, generated from Unicode's character
// database by tools/gen_unicode_tables.py (see unicode_tables.cpp for the
// Unicode version). Internal to the core.
#pragma once

#include <cstddef>
#include <cstdint>

namespace secondopinion::unicode {

// An inclusive range of code points.
struct CodeRange {
  char32_t first;
  char32_t last;
};

// Code points first, first + stride, ..., last all lower-case to cp + delta.
struct LowerRun {
  char32_t first;
  char32_t last;
  std::int32_t delta;
  std::int32_t stride;
};

extern const char* const kTableVersion;
// Letters (L*), numbers (N*) and combining marks (M*), sorted, disjoint.
extern const CodeRange kWordRanges[];
extern const std::size_t kWordRangeCount;
// Unicode's simple lower-case mapping (what Java's Character.toLowerCase and
// so Lucene's LowerCaseFilter apply), sorted by first.
extern const LowerRun kLowerRuns[];
extern const std::size_t kLowerRunCount;

}  // namespace secondopinion::unicode
