#include "json.hpp"

#include <charconv>
#include <cmath>
#include <unordered_set>

#include "utf8.hpp"

namespace secondopinion::json {

const Value* Value::find(std::string_view key) const {
  if (!is_object()) return nullptr;
  for (const auto& [name, value] : as_object()) {
    if (name == key) return &value;
  }
  return nullptr;
}

const char* type_name(Type type) {
  switch (type) {
    case Type::null: return "null";
    case Type::boolean: return "boolean";
    case Type::number: return "number";
    case Type::string: return "string";
    case Type::array: return "array";
    case Type::object: return "object";
  }
  return "?";
}

namespace {

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Value document() {
    skip_whitespace();
    Value v = value(0);
    skip_whitespace();
    if (pos_ != text_.size()) fail("unexpected data after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { fail_at(what, pos_); }

  [[noreturn]] void fail_at(const std::string& what, std::size_t at) const {
    std::size_t line = 1, column = 1;
    for (std::size_t i = 0; i < at && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line;
        column = 1;
      } else if ((static_cast<unsigned char>(text_[i]) & 0xC0) != 0x80) {
        ++column;  // count code points, not continuation bytes
      }
    }
    throw ParseError(what + " at line " + std::to_string(line) + ", column " +
                         std::to_string(column) + " (byte " + std::to_string(at) + ")",
                     at);
  }

  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return text_[pos_]; }

  void skip_whitespace() {
    while (!at_end()) {
      const char c = peek();
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
      ++pos_;
    }
  }

  void expect_literal(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) fail("invalid literal (expected '" + std::string(word) + "')");
    pos_ += word.size();
  }

  Value value(std::size_t depth) {
    if (at_end()) fail("unexpected end of input (expected a value)");
    switch (peek()) {
      case '{': return object(depth + 1);
      case '[': return array(depth + 1);
      case '"': return Value(string());
      case 't': expect_literal("true"); return Value(true);
      case 'f': expect_literal("false"); return Value(false);
      case 'n': expect_literal("null"); return Value();
      default:
        if (peek() == '-' || (peek() >= '0' && peek() <= '9')) return Value(number());
        fail(std::string("unexpected character (expected a value)"));
    }
  }

  void check_depth(std::size_t depth) const {
    if (depth > kMaxDepth) fail("nesting deeper than " + std::to_string(kMaxDepth));
  }

  Value object(std::size_t depth) {
    check_depth(depth);
    ++pos_;  // '{'
    Object members;
    std::unordered_set<std::string> keys;
    skip_whitespace();
    if (!at_end() && peek() == '}') {
      ++pos_;
      return Value(std::move(members));
    }
    for (;;) {
      skip_whitespace();
      if (at_end() || peek() != '"') fail("expected a string key");
      const std::size_t key_at = pos_;
      std::string key = string();
      if (!keys.insert(key).second) fail_at("duplicate key \"" + key + "\"", key_at);
      skip_whitespace();
      if (at_end() || peek() != ':') fail("expected ':' after an object key");
      ++pos_;
      skip_whitespace();
      Value v = value(depth);
      members.emplace_back(std::move(key), std::move(v));
      skip_whitespace();
      if (at_end()) fail("unexpected end of input in an object (expected ',' or '}')");
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == '}') {
        ++pos_;
        return Value(std::move(members));
      }
      fail("expected ',' or '}' in an object");
    }
  }

  Value array(std::size_t depth) {
    check_depth(depth);
    ++pos_;  // '['
    Array items;
    skip_whitespace();
    if (!at_end() && peek() == ']') {
      ++pos_;
      return Value(std::move(items));
    }
    for (;;) {
      skip_whitespace();
      items.push_back(value(depth));
      skip_whitespace();
      if (at_end()) fail("unexpected end of input in an array (expected ',' or ']')");
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == ']') {
        ++pos_;
        return Value(std::move(items));
      }
      fail("expected ',' or ']' in an array");
    }
  }

  unsigned hex4() {
    if (text_.size() - pos_ < 4) fail("truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = text_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= unsigned(c - '0');
      else if (c >= 'a' && c <= 'f') v |= unsigned(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= unsigned(c - 'A' + 10);
      else fail_at("invalid hex digit in a \\u escape", pos_ - 1);
    }
    return v;
  }

  std::string string() {
    ++pos_;  // opening quote
    std::string out;
    for (;;) {
      if (at_end()) fail("unterminated string");
      const auto c = static_cast<unsigned char>(peek());
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c < 0x20) fail("control character in a string (must be escaped)");
      if (c == '\\') {
        const std::size_t escape_at = pos_;
        ++pos_;
        if (at_end()) fail("unterminated escape");
        const char e = text_[pos_++];
        switch (e) {
          case '"': out.push_back('"'); break;
          case '\\': out.push_back('\\'); break;
          case '/': out.push_back('/'); break;
          case 'b': out.push_back('\b'); break;
          case 'f': out.push_back('\f'); break;
          case 'n': out.push_back('\n'); break;
          case 'r': out.push_back('\r'); break;
          case 't': out.push_back('\t'); break;
          case 'u': {
            char32_t cp = hex4();
            if (cp >= 0xDC00 && cp <= 0xDFFF) fail_at("lone low surrogate in a \\u escape", escape_at);
            if (cp >= 0xD800 && cp <= 0xDBFF) {
              if (text_.substr(pos_, 2) != "\\u") fail_at("lone high surrogate in a \\u escape", escape_at);
              pos_ += 2;
              const char32_t low = hex4();
              if (low < 0xDC00 || low > 0xDFFF) fail_at("high surrogate not followed by a low one", escape_at);
              cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            }
            utf8::append(out, cp);
            break;
          }
          default: fail_at("invalid escape", escape_at);
        }
        continue;
      }
      std::size_t length = 1;
      if (c >= 0x80 && utf8::decode(text_, pos_, &length) == utf8::kInvalid) {
        fail("ill-formed UTF-8 in a string");
      }
      out.append(text_.substr(pos_, length));
      pos_ += length;
    }
  }

  Number number() {
    const std::size_t start = pos_;
    auto digit = [&] { return !at_end() && peek() >= '0' && peek() <= '9'; };
    if (peek() == '-') ++pos_;
    if (!digit()) fail("expected a digit");
    if (peek() == '0') {
      ++pos_;
      if (digit()) fail("leading zero in a number");
    } else {
      while (digit()) ++pos_;
    }
    bool integral = true;
    if (!at_end() && peek() == '.') {
      integral = false;
      ++pos_;
      if (!digit()) fail("expected a digit after '.'");
      while (digit()) ++pos_;
    }
    if (!at_end() && (peek() == 'e' || peek() == 'E')) {
      integral = false;
      ++pos_;
      if (!at_end() && (peek() == '+' || peek() == '-')) ++pos_;
      if (!digit()) fail("expected a digit in an exponent");
      while (digit()) ++pos_;
    }
    const char* first = text_.data() + start;
    const char* last = text_.data() + pos_;
    Number n;
    // from_chars is locale-independent, unlike strtod.
    const auto parsed = std::from_chars(first, last, n.value);
    if (parsed.ec == std::errc::result_out_of_range || !std::isfinite(n.value)) {
      fail_at("number out of range", start);
    }
    if (parsed.ec != std::errc() || parsed.ptr != last) fail_at("invalid number", start);
    if (integral) {
      std::int64_t i = 0;
      const auto as_int = std::from_chars(first, last, i);
      if (as_int.ec == std::errc() && as_int.ptr == last) n.integer = i;
    }
    return n;
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

}  // namespace

Value parse(std::string_view text) { return Parser(text).document(); }

}  // namespace secondopinion::json
