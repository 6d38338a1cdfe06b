// Reading tokenizer.json into a WordPieceTokenizer::Impl. Every refusal names
// the file and the field, so a user can tell a corrupt file from one of a
// kind this tokenizer does not reproduce.
#include <algorithm>
#include <stdexcept>

#include "json.hpp"
#include "wordpiece_impl.hpp"

namespace secondopinion {

namespace {

class Loader {
 public:
  Loader(std::string_view text, const std::string& source) : source_(source) {
    try {
      root_ = json::parse(text);
    } catch (const json::ParseError& e) {
      throw std::invalid_argument(source_ + ": not valid JSON (" + e.what() + ")");
    }
    if (!root_.is_object()) fail("the file must hold a JSON object");
  }

  std::shared_ptr<WordPieceTokenizer::Impl> load() {
    auto impl = std::make_shared<WordPieceTokenizer::Impl>();
    impl->source = source_;
    read_added_tokens(*impl);
    read_normalizer(*impl);
    read_pre_tokenizer();
    read_model(*impl);
    read_post_processor(*impl);
    read_pad_id(*impl);
    return impl;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::invalid_argument(source_ + ": " + what);
  }

  const json::Value& member(const json::Value& object, const char* key, const std::string& where) const {
    const json::Value* v = object.find(key);
    if (v == nullptr) fail(where + " has no \"" + key + "\"");
    return *v;
  }

  const json::Value& object_member(const json::Value& object, const char* key,
                                   const std::string& where) const {
    const json::Value& v = member(object, key, where);
    if (!v.is_object()) fail(where + "." + key + " must be an object, got " + json::type_name(v.type()));
    return v;
  }

  bool bool_member(const json::Value& object, const char* key, const std::string& where,
                   bool fallback) const {
    const json::Value* v = object.find(key);
    if (v == nullptr) return fallback;
    if (!v->is_bool()) fail(where + "." + key + " must be true or false, got " + json::type_name(v->type()));
    return v->as_bool();
  }

  std::string string_member(const json::Value& object, const char* key, const std::string& where) const {
    const json::Value& v = member(object, key, where);
    if (!v.is_string()) fail(where + "." + key + " must be a string, got " + json::type_name(v.type()));
    return v.as_string();
  }

  std::int64_t int_of(const json::Value& v, const std::string& where, std::int64_t min) const {
    if (!v.is_number() || !v.as_number().integer || *v.as_number().integer < min) {
      fail(where + " must be an integer >= " + std::to_string(min));
    }
    return *v.as_number().integer;
  }

  std::string type_of(const json::Value& v, const std::string& where) const {
    if (!v.is_object()) fail(where + " must be an object or null, got " + json::type_name(v.type()));
    return string_member(v, "type", where);
  }

  void read_added_tokens(WordPieceTokenizer::Impl& impl) const {
    const json::Value* list = root_.find("added_tokens");
    if (list == nullptr || list->is_null()) return;
    if (!list->is_array()) fail("added_tokens must be an array");
    for (std::size_t i = 0; i < list->as_array().size(); ++i) {
      const json::Value& entry = list->as_array()[i];
      const std::string where = "added_tokens[" + std::to_string(i) + "]";
      if (!entry.is_object()) fail(where + " must be an object");
      AddedToken token;
      token.id = int_of(member(entry, "id", where), where + ".id", 0);
      token.content = string_member(entry, "content", where);
      if (token.content.empty()) fail(where + ".content is empty");
      // Options that change where a token matches; BERT files set none.
      for (const char* option : {"single_word", "lstrip", "rstrip", "normalized"}) {
        if (bool_member(entry, option, where, false)) {
          fail(where + " (\"" + token.content + "\") sets " + option +
               ", which this tokenizer does not support");
        }
      }
      impl.added.push_back(std::move(token));
    }
    std::stable_sort(impl.added.begin(), impl.added.end(), [](const AddedToken& a, const AddedToken& b) {
      return a.content.size() > b.content.size();
    });
    for (const AddedToken& token : impl.added) {
      impl.added_first_byte[static_cast<unsigned char>(token.content[0])] = true;
    }
  }

  void read_normalizer(WordPieceTokenizer::Impl& impl) const {
    const json::Value* n = root_.find("normalizer");
    if (n == nullptr || n->is_null()) {
      impl.normalizer.enabled = false;
      return;
    }
    const std::string type = type_of(*n, "normalizer");
    if (type != "BertNormalizer") {
      fail("normalizer type \"" + type + "\" is not supported (only BertNormalizer)");
    }
    BertNormalizerOptions& o = impl.normalizer;
    o.clean_text = bool_member(*n, "clean_text", "normalizer", true);
    o.handle_chinese_chars = bool_member(*n, "handle_chinese_chars", "normalizer", true);
    o.lowercase = bool_member(*n, "lowercase", "normalizer", true);
    const json::Value* strip = n->find("strip_accents");
    o.strip_accents = (strip == nullptr || strip->is_null()) ? o.lowercase
                                                             : bool_member(*n, "strip_accents", "normalizer", false);
  }

  void read_pre_tokenizer() const {
    const json::Value* p = root_.find("pre_tokenizer");
    if (p == nullptr || p->is_null()) fail("pre_tokenizer is missing (only BertPreTokenizer is supported)");
    const std::string type = type_of(*p, "pre_tokenizer");
    if (type != "BertPreTokenizer") {
      fail("pre_tokenizer type \"" + type + "\" is not supported (only BertPreTokenizer)");
    }
  }

  void read_model(WordPieceTokenizer::Impl& impl) const {
    const json::Value& model = object_member(root_, "model", "the file");
    const json::Value* type = model.find("type");
    if (type == nullptr || !type->is_string() || type->as_string() != "WordPiece") {
      fail("model.type must be \"WordPiece\" (this tokenizer reads BERT WordPiece files)");
    }
    WordPieceVocab& vocab = impl.vocab;
    vocab.continuing_prefix = string_member(model, "continuing_subword_prefix", "model");
    vocab.max_input_chars_per_word = static_cast<std::size_t>(
        int_of(member(model, "max_input_chars_per_word", "model"), "model.max_input_chars_per_word", 0));
    const json::Value& entries = object_member(model, "vocab", "model");
    const json::Object& items = entries.as_object();
    if (items.empty()) fail("model.vocab is empty");
    std::size_t bytes = 0;
    for (const auto& [token, id] : items) bytes += token.size();
    // Reserve first: the map's keys are views into this string.
    vocab.storage.reserve(bytes);
    vocab.ids.reserve(items.size());
    for (const auto& [token, id] : items) {
      const std::int64_t value = int_of(id, "model.vocab[\"" + token + "\"]", 0);
      const std::size_t at = vocab.storage.size();
      vocab.storage.append(token);
      vocab.ids.emplace(std::string_view(vocab.storage).substr(at, token.size()), value);
      vocab.max_token_bytes = std::max(vocab.max_token_bytes, token.size());
    }
    const std::string unk = string_member(model, "unk_token", "model");
    const auto it = vocab.ids.find(unk);
    if (it == vocab.ids.end()) fail("model.unk_token \"" + unk + "\" is not in model.vocab");
    vocab.unk_id = it->second;
  }

  // The ids of a template's special token `name`.
  std::vector<std::int64_t> special_ids(const json::Value& specials, const std::string& name) const {
    const json::Value* s = specials.find(name);
    if (s == nullptr || !s->is_object()) {
      fail("post_processor.special_tokens has no entry for \"" + name + "\"");
    }
    const json::Value& ids = member(*s, "ids", "post_processor.special_tokens[\"" + name + "\"]");
    if (!ids.is_array()) fail("post_processor.special_tokens[\"" + name + "\"].ids must be an array");
    std::vector<std::int64_t> out;
    for (const json::Value& id : ids.as_array()) {
      out.push_back(int_of(id, "post_processor.special_tokens[\"" + name + "\"].ids[]", 0));
    }
    return out;
  }

  // TemplateProcessing's "single" or "pair": special tokens around sequence
  // A (and B), in that order, as tokenize.py's _read_template requires.
  EncodingTemplate read_template(const json::Value& processor, const char* key, bool pair) const {
    const std::string where = std::string("post_processor.") + key;
    const json::Value& pieces = member(processor, key, "post_processor");
    if (!pieces.is_array()) fail(where + " must be an array");
    const json::Value& specials = object_member(processor, "special_tokens", "post_processor");
    EncodingTemplate t;
    int seen = 0;  // sequences placed so far
    for (const json::Value& piece : pieces.as_array()) {
      if (const json::Value* special = piece.find("SpecialToken")) {
        const std::string name = string_member(*special, "id", where + "[].SpecialToken");
        const std::int64_t type = int_of(member(*special, "type_id", where), where + "[].type_id", 0);
        auto& ids = seen == 0 ? t.prefix : (seen == 1 && pair ? t.middle : t.suffix);
        auto& types = seen == 0 ? t.prefix_types : (seen == 1 && pair ? t.middle_types : t.suffix_types);
        for (std::int64_t id : special_ids(specials, name)) {
          ids.push_back(id);
          types.push_back(type);
        }
      } else if (const json::Value* sequence = piece.find("Sequence")) {
        const std::string id = string_member(*sequence, "id", where + "[].Sequence");
        const std::int64_t type = int_of(member(*sequence, "type_id", where), where + "[].type_id", 0);
        const char* expected = seen == 0 ? "A" : "B";
        if (seen >= (pair ? 2 : 1) || id != expected) {
          fail(where + " must hold sequence A" + (pair ? " then B" : "") + " once each");
        }
        (seen == 0 ? t.first_type : t.second_type) = type;
        ++seen;
      } else {
        fail(where + " holds a piece that is neither SpecialToken nor Sequence");
      }
    }
    if (seen != (pair ? 2 : 1)) fail(where + " must hold sequence A" + (pair ? " then B" : ""));
    return t;
  }

  void read_post_processor(WordPieceTokenizer::Impl& impl) const {
    const json::Value* p = root_.find("post_processor");
    if (p == nullptr || p->is_null()) {
      fail("post_processor is missing (TemplateProcessing or BertProcessing needed for [CLS]/[SEP])");
    }
    const std::string type = type_of(*p, "post_processor");
    if (type == "TemplateProcessing") {
      impl.single = read_template(*p, "single", false);
      impl.pair = read_template(*p, "pair", true);
    } else if (type == "BertProcessing") {
      auto token_id = [&](const char* key) {
        const json::Value& v = member(*p, key, "post_processor");
        if (!v.is_array() || v.as_array().size() != 2) {
          fail(std::string("post_processor.") + key + " must be [token, id]");
        }
        return int_of(v.as_array()[1], std::string("post_processor.") + key + "[1]", 0);
      };
      const std::int64_t cls = token_id("cls"), sep = token_id("sep");
      impl.single.prefix = {cls};
      impl.single.prefix_types = {0};
      impl.single.suffix = {sep};
      impl.single.suffix_types = {0};
      impl.pair = impl.single;
      impl.pair.middle = {sep};
      impl.pair.middle_types = {0};
      impl.pair.suffix_types = {1};
      impl.pair.second_type = 1;
    } else {
      fail("post_processor type \"" + type + "\" is not supported (TemplateProcessing or BertProcessing)");
    }
  }

  void read_pad_id(WordPieceTokenizer::Impl& impl) const {
    const json::Value* padding = root_.find("padding");
    if (padding != nullptr && padding->is_object()) {
      impl.pad_id = int_of(member(*padding, "pad_id", "padding"), "padding.pad_id", 0);
      return;
    }
    for (const char* name : {"[PAD]", "<pad>"}) {
      for (const AddedToken& token : impl.added) {
        if (token.content == name) {
          impl.pad_id = token.id;
          return;
        }
      }
      const auto it = impl.vocab.ids.find(name);
      if (it != impl.vocab.ids.end()) {
        impl.pad_id = it->second;
        return;
      }
    }
    impl.pad_id = 0;
  }

  std::string source_;
  json::Value root_;
};

}  // namespace

std::shared_ptr<const WordPieceTokenizer::Impl> load_wordpiece(std::string_view json,
                                                               const std::string& source) {
  return Loader(json, source).load();
}

}  // namespace secondopinion
