#include "secondopinion/model_config.hpp"

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "json.hpp"

namespace secondopinion {

namespace {

constexpr std::int64_t kConfigFormat = 1;

std::string describe(const json::Value* v) {
  if (v == nullptr) return "nothing";
  switch (v->type()) {
    case json::Type::string: return "\"" + v->as_string() + "\"";
    case json::Type::number: {
      std::ostringstream s;
      s << v->as_number().value;
      return s.str();
    }
    case json::Type::boolean: return v->as_bool() ? "true" : "false";
    default: return json::type_name(v->type());
  }
}

}  // namespace

ModelConfig load_model_config(const std::string& config_file, const std::string& kind) {
  if (kind != "cross-encoder" && kind != "embedder") {
    throw std::invalid_argument("kind must be \"cross-encoder\" or \"embedder\", got \"" + kind + "\"");
  }
  std::ifstream in(config_file, std::ios::binary);
  if (!in) throw std::invalid_argument(config_file + ": missing or unreadable; a model directory needs it");
  std::ostringstream contents;
  contents << in.rdbuf();
  json::Value raw;
  try {
    raw = json::parse(contents.str());
  } catch (const json::ParseError& e) {
    throw std::invalid_argument(config_file + ": not valid JSON (" + e.what() + ")");
  }
  if (!raw.is_object()) throw std::invalid_argument(config_file + ": must hold a JSON object");
  auto bad = [&](const std::string& key, const std::string& why) {
    return std::invalid_argument(config_file + ": '" + key + "' " + why + " (got " +
                                 describe(raw.find(key)) + ")");
  };
  auto string_in = [&](const char* key, const char* fallback, std::initializer_list<const char*> allowed) {
    const json::Value* v = raw.find(key);
    if (v == nullptr) return std::string(fallback);
    if (v->is_string()) {
      for (const char* a : allowed) {
        if (v->as_string() == a) return v->as_string();
      }
    }
    std::string list;
    for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
    throw bad(key, "must be one of " + list);
  };

  const json::Value* format = raw.find("format");
  if (format == nullptr || !format->is_number() || format->as_number().integer != kConfigFormat) {
    throw bad("format", "must be " + std::to_string(kConfigFormat));
  }
  ModelConfig config;
  config.kind = string_in("kind", "", {"cross-encoder", "embedder"});
  if (config.kind != kind) {
    throw std::invalid_argument(config_file + ": this is a " + config.kind + " model, not a " + kind);
  }
  const json::Value* max_length = raw.find("max_length");
  if (max_length == nullptr || !max_length->is_number() || !max_length->as_number().integer ||
      *max_length->as_number().integer < 2) {
    throw bad("max_length", "must be an integer >= 2");
  }
  config.max_length = static_cast<std::size_t>(*max_length->as_number().integer);
  if (const json::Value* name = raw.find("name")) {
    if (!name->is_string()) throw bad("name", "must be a string");
    config.name = name->as_string();
  } else {
    // As Python (Path.parent.name): the name of the directory holding the file.
    const std::size_t slash = config_file.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "" : config_file.substr(0, slash);
    const std::size_t prev = dir.find_last_of('/');
    config.name = prev == std::string::npos ? dir : dir.substr(prev + 1);
  }
  if (const json::Value* external = raw.find("external_initializers")) {
    if (!external->is_object()) {
      throw bad("external_initializers", "must be an object of tensor name: .npy path");
    }
    const std::size_t slash = config_file.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "" : config_file.substr(0, slash + 1);
    for (const auto& [tensor, path] : external->as_object()) {
      // A NUL would cut the path short where the file is opened: another file.
      if (!path.is_string() || path.as_string().empty() || path.as_string().front() == '/' ||
          path.as_string().find('\0') != std::string::npos) {
        throw std::invalid_argument(config_file + ": 'external_initializers' entry '" + tensor +
                                    "' must be a relative path to a .npy file (got " +
                                    describe(&path) + ")");
      }
      config.external_initializers.emplace_back(tensor, dir + path.as_string());
    }
  }
  if (kind == "cross-encoder") {
    config.activation = string_in("activation", "sigmoid", {"sigmoid", "softmax", "none"});
    if (const json::Value* floor = raw.find("floor"); floor != nullptr && !floor->is_null()) {
      if (!floor->is_number() || !(floor->as_number().value >= 0.0 && floor->as_number().value <= 1.0)) {
        throw bad("floor", "must be null or a number in [0, 1]");
      }
      config.floor = floor->as_number().value;
    }
  } else {
    config.pooling = string_in("pooling", "mean", {"mean", "cls"});
    if (const json::Value* normalize = raw.find("normalize")) {
      if (!normalize->is_bool()) throw bad("normalize", "must be true or false");
      config.normalize = normalize->as_bool();
    }
  }
  return config;
}

}  // namespace secondopinion
