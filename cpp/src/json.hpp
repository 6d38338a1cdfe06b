// A small strict JSON reader (RFC 8259) for the files of a model directory
// (tokenizer.json, secondopinion.json). Internal to the core.
//
// Why not a library: the build already downloads two Debian packages; a third
// (nlohmann-json) would be one more thing to fetch for every build and would
// add seconds of compile time per file that includes it, for the one reading
// task below. Strict means what a corrupted file needs: no comments, trailing
// commas, NaN/Infinity, leading zeros, bare control characters, lone
// surrogates, ill-formed UTF-8, duplicate keys, or anything after the value;
// nesting is capped so hostile input cannot exhaust the stack. Every error
// says where (line, column, byte offset) and what was expected.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace secondopinion::json {

// Deeper nesting than this is rejected; real tokenizer.json files nest ~6 deep.
inline constexpr std::size_t kMaxDepth = 128;

class ParseError : public std::runtime_error {
 public:
  ParseError(const std::string& what, std::size_t offset)
      : std::runtime_error(what), offset_(offset) {}
  std::size_t offset() const { return offset_; }

 private:
  std::size_t offset_;
};

class Value;
using Array = std::vector<Value>;
// Members in file order (keys are unique: duplicates are a parse error).
using Object = std::vector<std::pair<std::string, Value>>;

// A number keeps whether it was written as an integer literal that fits in
// int64, so ids and lengths are read exactly rather than through a double.
struct Number {
  double value = 0.0;
  std::optional<std::int64_t> integer;
};

enum class Type { null, boolean, number, string, array, object };

class Value {
 public:
  Value() = default;
  explicit Value(bool b) : data_(b) {}
  explicit Value(Number n) : data_(n) {}
  explicit Value(std::string s) : data_(std::move(s)) {}
  explicit Value(Array a) : data_(std::move(a)) {}
  explicit Value(Object o) : data_(std::move(o)) {}

  Type type() const { return static_cast<Type>(data_.index()); }
  bool is_null() const { return type() == Type::null; }
  bool is_bool() const { return type() == Type::boolean; }
  bool is_number() const { return type() == Type::number; }
  bool is_string() const { return type() == Type::string; }
  bool is_array() const { return type() == Type::array; }
  bool is_object() const { return type() == Type::object; }

  // The accessors below require the matching type (checked with the is_*
  // functions first); a mismatch throws std::bad_variant_access.
  bool as_bool() const { return std::get<bool>(data_); }
  const Number& as_number() const { return std::get<Number>(data_); }
  const std::string& as_string() const { return std::get<std::string>(data_); }
  const Array& as_array() const { return std::get<Array>(data_); }
  const Object& as_object() const { return std::get<Object>(data_); }

  // The member `key` of an object, or nullptr (also when this is no object).
  const Value* find(std::string_view key) const;

 private:
  std::variant<std::monostate, bool, Number, std::string, Array, Object> data_;
};

// "null", "boolean", "number", "string", "array" or "object".
const char* type_name(Type type);

// Parses one JSON document. Throws ParseError, whose message has the line,
// column and byte offset of the problem.
Value parse(std::string_view text);

}  // namespace secondopinion::json
