// The parts of WordPieceTokenizer: what tokenizer.json configures, the BERT
// word splitter (normaliser + pre-tokeniser) and the vocabulary. Internal.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "secondopinion/wordpiece.hpp"

namespace secondopinion {

// BertNormalizer's options, strip_accents already resolved (null in the file
// means "same as lowercase", as in tokenizers).
struct BertNormalizerOptions {
  bool enabled = true;  // false: tokenizer.json has "normalizer": null
  bool clean_text = true;
  bool handle_chinese_chars = true;
  bool strip_accents = true;
  bool lowercase = true;
};

// Splits text into the normalised words that BertNormalizer followed by
// BertPreTokenizer produce, one word at a time, so a caller can stop early.
//
// Order of work, per code point: clean_text (drop controls, whitespace to
// U+0020), handle_chinese_chars (spaces around CJK ideographs),
// strip_accents (NFD, then drop non-spacing marks), then the pre-tokeniser's
// split (whitespace ends a word and is dropped; punctuation is a word of its
// own). A finished word gets NFD's canonical reordering of its marks and then
// lower-casing. Splitting before lower-casing and reordering gives the
// words tokenizers gives because no boundary character has a combining class
// or changes class when lower-cased (checked by the table generator).
class BertWordSplitter {
 public:
  BertWordSplitter(const BertNormalizerOptions& options, std::string_view text)
      : options_(options), text_(text) {}

  // Stores the next word (UTF-8) in `word` and its length in code points in
  // `chars`; false when the text has no more words.
  bool next(std::string& word, std::size_t& chars);

 private:
  void push(char32_t cp);        // after clean_text and handle_chinese_chars
  void classify(char32_t cp);    // after strip_accents
  void finish_word();            // buffer_ -> ready_

  const BertNormalizerOptions& options_;
  std::string_view text_;
  std::size_t pos_ = 0;
  std::vector<char32_t> buffer_;  // the word being read, before reorder + lowercase
  // Finished words waiting to be returned (at most a word and a punctuation
  // mark, or three for a CJK ideograph between two words).
  std::vector<std::u32string> ready_;
  std::size_t ready_head_ = 0;
};

// "##"-style WordPiece over a vocabulary, as tokenizers' WordPiece model.
struct WordPieceVocab {
  // Token strings live in `storage`; the map's keys view into it.
  std::string storage;
  std::unordered_map<std::string_view, std::int64_t> ids;
  std::string continuing_prefix = "##";
  std::size_t max_input_chars_per_word = 100;
  std::size_t max_token_bytes = 0;  // longest vocabulary entry, for the greedy search
  std::int64_t unk_id = 0;

  // Appends the pieces of one normalised word (its length in code points is
  // `chars`) to out. `scratch` is reused between calls.
  void tokenize_word(std::string_view word, std::size_t chars, std::vector<std::int64_t>& out,
                     std::string& scratch) const;
};

// An added token, matched in the raw text before normalisation.
struct AddedToken {
  std::string content;
  std::int64_t id = 0;
};

// Where a template puts special tokens around one or two texts.
struct EncodingTemplate {
  std::vector<std::int64_t> prefix, prefix_types;
  std::vector<std::int64_t> middle, middle_types;  // between the texts (pairs only)
  std::vector<std::int64_t> suffix, suffix_types;
  std::int64_t first_type = 0;
  std::int64_t second_type = 0;

  std::size_t num_special() const { return prefix.size() + middle.size() + suffix.size(); }
};

struct WordPieceTokenizer::Impl {
  std::string source;
  BertNormalizerOptions normalizer;
  WordPieceVocab vocab;
  std::vector<AddedToken> added;  // longest content first: leftmost-longest matching
  bool added_first_byte[256] = {};
  EncodingTemplate single;
  EncodingTemplate pair;
  std::int64_t pad_id = 0;

  // See WordPieceTokenizer::encode; stops once out holds max_tokens + 1 ids.
  bool encode(std::string_view text, std::size_t max_tokens, std::vector<std::int64_t>& out) const;
};

// Reads tokenizer.json (throws std::invalid_argument naming `source`).
std::shared_ptr<const WordPieceTokenizer::Impl> load_wordpiece(std::string_view json,
                                                               const std::string& source);

}  // namespace secondopinion
