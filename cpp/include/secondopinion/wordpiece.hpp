// A BERT WordPiece tokenizer read from a Hugging Face tokenizer.json, so a C++
// caller can rerank text without Python.
//
// It gives the token ids that Hugging Face's `tokenizers` package (what the
// Python path uses) gives for the same file and text, for the tokenizers BERT
// models ship: normalizer BertNormalizer (clean_text, handle_chinese_chars,
// strip_accents, lowercase), pre_tokenizer BertPreTokenizer, model WordPiece,
// post_processor TemplateProcessing or BertProcessing. Added tokens (e.g.
// "[SEP]" written in the text) are matched in the raw text first, as
// `tokenizers` does. Anything else in the file (another normalizer, a BPE
// model, an added token with lstrip/rstrip/single_word/normalized) is refused
// at load with std::invalid_argument naming the file and the field, rather
// than tokenised differently.
//
// `tokenizers` takes its Unicode facts from several Unicode versions at once;
// the tables here are read off the `tokenizers` version named by
// wordpiece_tokenizers_version() (tools/gen_wordpiece_tables.py), and
// tests/test_wordpiece.py compares ids with that package.
//
// Input is UTF-8. The truncation and padding settings stored in
// tokenizer.json are ignored: callers say how many tokens they want, as in
// python/secondopinion/tokenize.py. Differences from `tokenizers`, which
// cannot take such input: each byte of ill-formed UTF-8 reads as U+FFFD
// (which clean_text removes).
//
// Thread safety: a tokenizer is immutable after loading; any number of threads
// may encode with one at once. Copies share the loaded vocabulary.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "secondopinion/batching.hpp"

namespace secondopinion {

// Token sequences with their special tokens, laid end to end as the
// CrossEncoder and Embedder take them: sequence i is
// ids[offsets[i] .. offsets[i+1]). Its attention mask is all ones (batching
// pads and masks).
struct EncodedBatch {
  std::vector<std::int64_t> ids;
  std::vector<std::int64_t> type_ids;
  std::vector<std::int64_t> offsets{0};
  // Per sequence: the text (for a pair, the passage) lost tokens to fit.
  std::vector<std::uint8_t> truncated;
  // Per sequence: the query was cut to query_max_tokens (all 0 for texts).
  std::vector<std::uint8_t> query_truncated;
  std::int64_t pad_id = 0;

  std::size_t size() const { return offsets.size() - 1; }
  std::size_t length(std::size_t i) const {
    return static_cast<std::size_t>(offsets[i + 1] - offsets[i]);
  }
  // A view for CrossEncoder::logits / Embedder::encode, valid while this
  // batch lives unchanged.
  TokenSequences sequences() const;
};

class WordPieceTokenizer {
 public:
  // Reads a tokenizer.json. Throws std::invalid_argument naming `path` when
  // the file cannot be read, is not valid JSON, or is not a BERT WordPiece
  // tokenizer this class reproduces.
  static WordPieceTokenizer from_file(const std::string& path);
  // The same from the file's contents; `source` names it in errors.
  static WordPieceTokenizer from_json(std::string_view json, const std::string& source);

  // The ids of `text` without special tokens, all of them.
  std::vector<std::int64_t> encode(std::string_view text) const;
  // The first min(n, max_tokens) ids of `text` (n: its token count), appended
  // to `out`; returns true when n > max_tokens. Tokenises only as far as
  // needed, so a 10 MB text cut to 64 tokens costs little.
  bool encode(std::string_view text, std::size_t max_tokens, std::vector<std::int64_t>& out) const;

  // Texts wrapped in the single-text template ([CLS] text [SEP] for BERT),
  // each cut to max_length tokens including the special tokens. Throws
  // std::invalid_argument when max_length leaves no room for text.
  EncodedBatch encode_texts(const std::vector<std::string_view>& texts,
                            std::size_t max_length) const;

  // (query, passage) pairs in the pair template ([CLS] q [SEP] p [SEP], type
  // ids 0 then 1, for BERT), exactly as python/secondopinion/tokenize.py
  // encodes them: each query is cut to query_max_tokens; its passage gets
  // the rest of max_length after the query and the special tokens. Throws
  // std::invalid_argument unless query_max_tokens >= 1 and leaves at least
  // one token for the passage, or when the lists differ in length.
  EncodedBatch encode_pairs(const std::vector<std::string_view>& queries,
                            const std::vector<std::string_view>& passages,
                            std::size_t query_max_tokens, std::size_t max_length) const;
  // One query against many passages (reranking): the query is tokenised once.
  EncodedBatch encode_pairs(std::string_view query, const std::vector<std::string_view>& passages,
                            std::size_t query_max_tokens, std::size_t max_length) const;

  // Special tokens the templates add around one text / a pair.
  std::size_t special_tokens_single() const;
  std::size_t special_tokens_pair() const;
  // The id of padding: tokenizer.json's padding.pad_id, else "[PAD]" or
  // "<pad>", else 0 (as the Python path decides).
  std::int64_t pad_id() const;
  std::int64_t unk_id() const;
  // Entries of the WordPiece vocabulary (added tokens not counted).
  std::size_t vocab_size() const;
  // The id of a token (added tokens first, then the vocabulary).
  std::optional<std::int64_t> token_to_id(std::string_view token) const;
  // The file (or source name) this was read from.
  const std::string& source() const;

  struct Impl;

 private:
  explicit WordPieceTokenizer(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> impl_;
};

// The `tokenizers` release whose Unicode behaviour the tables reproduce.
const char* wordpiece_tokenizers_version();

}  // namespace secondopinion
