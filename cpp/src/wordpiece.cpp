// WordPieceTokenizer: added-token matching, WordPiece, templates, truncation.
#include "secondopinion/wordpiece.hpp"

#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

#include "wordpiece_impl.hpp"
#include "wordpiece_tables.hpp"

namespace secondopinion {

namespace {
inline bool is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }
}  // namespace

// tokenizers' WordPiece::tokenize: a word longer than
// max_input_chars_per_word is [UNK]; otherwise the longest vocabulary entry
// that prefixes the rest of the word is taken, again and again ("##" before
// every piece but the first); if some rest has no such entry, the whole word
// is [UNK].
void WordPieceVocab::tokenize_word(std::string_view word, std::size_t chars,
                                   std::vector<std::int64_t>& out, std::string& scratch) const {
  if (chars > max_input_chars_per_word) {
    out.push_back(unk_id);
    return;
  }
  const std::size_t first_out = out.size();
  std::size_t start = 0;
  while (start < word.size()) {
    // No entry is longer than max_token_bytes, so longer candidates can be
    // skipped without changing which one is found first.
    const std::size_t room = start == 0 ? max_token_bytes
                                        : (max_token_bytes > continuing_prefix.size()
                                               ? max_token_bytes - continuing_prefix.size()
                                               : 0);
    std::size_t end = word.size() - start > room ? start + room : word.size();
    while (end > start && end < word.size() && is_continuation(static_cast<unsigned char>(word[end]))) {
      --end;
    }
    bool found = false;
    while (end > start) {
      std::string_view candidate = word.substr(start, end - start);
      if (start > 0) {
        scratch.assign(continuing_prefix);
        scratch.append(candidate);
        candidate = scratch;
      }
      const auto it = ids.find(candidate);
      if (it != ids.end()) {
        out.push_back(it->second);
        found = true;
        break;
      }
      do {
        --end;
      } while (end > start && is_continuation(static_cast<unsigned char>(word[end])));
    }
    if (!found) {
      out.resize(first_out);
      out.push_back(unk_id);
      return;
    }
    start = end;
  }
}

bool WordPieceTokenizer::Impl::encode(std::string_view text, std::size_t max_tokens,
                                      std::vector<std::int64_t>& out) const {
  const std::size_t first = out.size();
  const auto full = [&] { return out.size() - first > max_tokens; };
  std::string word, scratch;
  std::size_t chars = 0;
  auto tokenize_segment = [&](std::string_view segment) {
    BertWordSplitter splitter(normalizer, segment);
    while (!full() && splitter.next(word, chars)) vocab.tokenize_word(word, chars, out, scratch);
  };
  // Added tokens split the raw text first (tokenizers' AddedVocabulary):
  // the leftmost match wins, the longest one where several start there.
  std::size_t segment_start = 0;
  for (std::size_t pos = 0; pos < text.size() && !full();) {
    const AddedToken* match = nullptr;
    if (added_first_byte[static_cast<unsigned char>(text[pos])]) {
      for (const AddedToken& token : added) {  // longest first
        if (text.compare(pos, token.content.size(), token.content) == 0) {
          match = &token;
          break;
        }
      }
    }
    if (match == nullptr) {
      ++pos;
      continue;
    }
    tokenize_segment(text.substr(segment_start, pos - segment_start));
    if (full()) break;
    out.push_back(match->id);
    pos += match->content.size();
    segment_start = pos;
  }
  if (!full()) tokenize_segment(text.substr(segment_start));
  if (!full()) return false;
  out.resize(first + max_tokens);
  return true;
}

TokenSequences EncodedBatch::sequences() const {
  TokenSequences seqs;
  seqs.ids = ids.data();
  seqs.type_ids = type_ids.data();
  seqs.offsets = offsets.data();
  seqs.count = size();
  seqs.pad_id = pad_id;
  return seqs;
}

WordPieceTokenizer::WordPieceTokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

WordPieceTokenizer WordPieceTokenizer::from_json(std::string_view json, const std::string& source) {
  return WordPieceTokenizer(load_wordpiece(json, source));
}

WordPieceTokenizer WordPieceTokenizer::from_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::invalid_argument(path + ": cannot open the tokenizer file");
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) throw std::invalid_argument(path + ": cannot read the tokenizer file");
  return from_json(contents.str(), path);
}

std::vector<std::int64_t> WordPieceTokenizer::encode(std::string_view text) const {
  std::vector<std::int64_t> out;
  impl_->encode(text, std::numeric_limits<std::size_t>::max() - 1, out);
  return out;
}

bool WordPieceTokenizer::encode(std::string_view text, std::size_t max_tokens,
                                std::vector<std::int64_t>& out) const {
  return impl_->encode(text, max_tokens, out);
}

namespace {

void append_tokens(EncodedBatch& batch, const std::vector<std::int64_t>& ids, std::int64_t type) {
  batch.ids.insert(batch.ids.end(), ids.begin(), ids.end());
  batch.type_ids.insert(batch.type_ids.end(), ids.size(), type);
}

void append_special(EncodedBatch& batch, const std::vector<std::int64_t>& ids,
                    const std::vector<std::int64_t>& types) {
  batch.ids.insert(batch.ids.end(), ids.begin(), ids.end());
  batch.type_ids.insert(batch.type_ids.end(), types.begin(), types.end());
}

void end_sequence(EncodedBatch& batch, bool truncated, bool query_truncated) {
  batch.offsets.push_back(static_cast<std::int64_t>(batch.ids.size()));
  batch.truncated.push_back(truncated ? 1 : 0);
  batch.query_truncated.push_back(query_truncated ? 1 : 0);
}

}  // namespace

EncodedBatch WordPieceTokenizer::encode_texts(const std::vector<std::string_view>& texts,
                                              std::size_t max_length) const {
  const EncodingTemplate& t = impl_->single;
  if (max_length <= t.num_special()) {
    throw std::invalid_argument("max_length=" + std::to_string(max_length) +
                                " leaves no room for text (" + std::to_string(t.num_special()) +
                                " special tokens)");
  }
  const std::size_t room = max_length - t.num_special();
  EncodedBatch batch;
  batch.pad_id = impl_->pad_id;
  std::vector<std::int64_t> ids;
  for (std::string_view text : texts) {
    ids.clear();
    const bool cut = impl_->encode(text, room, ids);
    append_special(batch, t.prefix, t.prefix_types);
    append_tokens(batch, ids, t.first_type);
    append_special(batch, t.suffix, t.suffix_types);
    end_sequence(batch, cut, false);
  }
  return batch;
}

EncodedBatch WordPieceTokenizer::encode_pairs(const std::vector<std::string_view>& queries,
                                              const std::vector<std::string_view>& passages,
                                              std::size_t query_max_tokens,
                                              std::size_t max_length) const {
  if (queries.size() != passages.size()) {
    throw std::invalid_argument("queries and passages differ in length (" +
                                std::to_string(queries.size()) + " vs " +
                                std::to_string(passages.size()) + ")");
  }
  const EncodingTemplate& t = impl_->pair;
  const std::size_t special = t.num_special();
  if (query_max_tokens < 1 || max_length < special + query_max_tokens + 1) {
    throw std::invalid_argument("query_max_tokens=" + std::to_string(query_max_tokens) +
                                " must be >= 1 and leave room for the passage within max_length=" +
                                std::to_string(max_length) + " (" + std::to_string(special) +
                                " special tokens)");
  }
  const std::size_t room = max_length - special;
  EncodedBatch batch;
  batch.pad_id = impl_->pad_id;
  // Reranking sends one query with many passages: tokenise each distinct query once.
  std::unordered_map<std::string_view, std::pair<std::vector<std::int64_t>, bool>> query_ids;
  std::vector<std::int64_t> passage;
  for (std::size_t i = 0; i < passages.size(); ++i) {
    auto [entry, fresh] = query_ids.try_emplace(queries[i]);
    auto& [q, q_cut] = entry->second;
    if (fresh) q_cut = impl_->encode(queries[i], query_max_tokens, q);
    passage.clear();
    const bool p_cut = impl_->encode(passages[i], room - q.size(), passage);
    append_special(batch, t.prefix, t.prefix_types);
    append_tokens(batch, q, t.first_type);
    append_special(batch, t.middle, t.middle_types);
    append_tokens(batch, passage, t.second_type);
    append_special(batch, t.suffix, t.suffix_types);
    end_sequence(batch, p_cut, q_cut);
  }
  return batch;
}

EncodedBatch WordPieceTokenizer::encode_pairs(std::string_view query,
                                              const std::vector<std::string_view>& passages,
                                              std::size_t query_max_tokens,
                                              std::size_t max_length) const {
  return encode_pairs(std::vector<std::string_view>(passages.size(), query), passages,
                      query_max_tokens, max_length);
}

std::size_t WordPieceTokenizer::special_tokens_single() const { return impl_->single.num_special(); }
std::size_t WordPieceTokenizer::special_tokens_pair() const { return impl_->pair.num_special(); }
std::int64_t WordPieceTokenizer::pad_id() const { return impl_->pad_id; }
std::int64_t WordPieceTokenizer::unk_id() const { return impl_->vocab.unk_id; }
std::size_t WordPieceTokenizer::vocab_size() const { return impl_->vocab.ids.size(); }
const std::string& WordPieceTokenizer::source() const { return impl_->source; }

std::optional<std::int64_t> WordPieceTokenizer::token_to_id(std::string_view token) const {
  for (const AddedToken& added : impl_->added) {
    if (added.content == token) return added.id;
  }
  const auto it = impl_->vocab.ids.find(token);
  if (it == impl_->vocab.ids.end()) return std::nullopt;
  return it->second;
}

const char* wordpiece_tokenizers_version() { return wordpiece_tables::kTokenizersVersion; }

}  // namespace secondopinion
