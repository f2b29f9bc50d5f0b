// Loading: schema defaults <- _BASE_ chain <- file <- overrides (validate.cc checks the
// result).
//
// Every value that enters the tree is checked against the schema node of the same
// key: maps must stay maps, lists lists, and scalars must parse as the default's
// kind (bool, integer, number, string). Values are stored in canonical form
// (integers and numbers re-printed) so dump() and hash() do not depend on how a
// user spelled "1e-3" versus "0.001".
#include <filesystem>
#include <sstream>

#include "dualtune/config/config.h"
#include "dualtune/config/scalar.h"
#include "dualtune/util/error.h"

namespace fs = std::filesystem;

namespace dualtune::config {
namespace {

using detail::format_float;
using detail::found_text;
using detail::parse_bool;
using detail::parse_float;
using detail::parse_int;

enum class Kind { Bool, Int, Float, String, List, Map };

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::Bool: return "a boolean (true/false)";
    case Kind::Int: return "an integer";
    case Kind::Float: return "a number";
    case Kind::String: return "a string";
    case Kind::List: return "a list";
    case Kind::Map: return "a map";
  }
  return "?";
}

bool is_quoted(const YAML::Node& n) { return n.Tag() == "!"; }

/// Kind of a schema default (the schema spells integers without a dot).
Kind schema_kind(const YAML::Node& n) {
  if (n.IsMap()) return Kind::Map;
  if (n.IsSequence()) return Kind::List;
  if (is_quoted(n)) return Kind::String;
  const std::string& s = n.Scalar();
  bool b;
  int64_t i;
  double d;
  if (parse_bool(s, b)) return Kind::Bool;
  if (parse_int(s, i)) return Kind::Int;
  if (parse_float(s, d)) return Kind::Float;
  return Kind::String;
}

std::string join_keys(const YAML::Node& map) {
  std::string out;
  for (const auto& kv : map) {
    if (!out.empty()) out += ", ";
    out += kv.first.Scalar();
  }
  return out;
}

/// Canonical copy of a scalar value `v` for a schema scalar of kind `k`; throws on mismatch.
YAML::Node canonical_scalar(Kind k, const YAML::Node& v, const std::string& key, const std::string& source) {
  auto mismatch = [&]() {
    DT_THROW("config ", source, ": key '", key, "' expects ", kind_name(k), ", found ", found_text(v));
  };
  if (!v.IsScalar() && !(v.IsNull() && k == Kind::String)) mismatch();
  if (k == Kind::String) {
    YAML::Node n(v.IsNull() ? std::string() : v.Scalar());
    return n;
  }
  const std::string& s = v.Scalar();
  if (is_quoted(v)) mismatch();  // "3" where a number is expected is a string
  if (k == Kind::Bool) {
    bool b;
    if (!parse_bool(s, b)) mismatch();
    return YAML::Node(b);
  }
  if (k == Kind::Int) {
    int64_t i;
    if (!parse_int(s, i)) mismatch();
    return YAML::Node(std::to_string(i));
  }
  double d;
  if (!parse_float(s, d)) mismatch();
  return YAML::Node(format_float(d));
}

/// Canonical copy of list `v` whose schema default is `def` (all schema lists are numeric).
YAML::Node canonical_list(const YAML::Node& def, const YAML::Node& v, const std::string& key,
                          const std::string& source) {
  Kind elem = Kind::Float;
  if (def.size() > 0) elem = schema_kind(def[0]);
  if (key == "optim.milestones") elem = Kind::Int;
  YAML::Node out(YAML::NodeType::Sequence);
  for (size_t i = 0; i < v.size(); ++i) {
    if (!v[i].IsScalar())
      DT_THROW("config ", source, ": key '", key, "' expects a list of ", kind_name(elem), " values, found ",
               found_text(v[i]), " at position ", i);
    out.push_back(canonical_scalar(elem, v[i], key + "[" + std::to_string(i) + "]", source));
  }
  out.SetStyle(YAML::EmitterStyle::Flow);
  return out;
}

/// Sections that may also be a list of entries of the same schema (several old models).
bool top_level_repeatable(const std::string& key) { return key == "old"; }

/// Merges `src` into `dst` (both maps at dotted prefix `prefix`), checking every key
/// against the schema map `schema`. Maps merge recursively; scalars and lists replace.
void merge_checked(YAML::Node dst, const YAML::Node& src, const YAML::Node& schema, const std::string& prefix,
                   const std::string& source, bool top_level) {
  for (const auto& kv : src) {
    const std::string name = kv.first.Scalar();
    if (top_level && name == "_BASE_") continue;
    const std::string key = prefix.empty() ? name : prefix + "." + name;
    const YAML::Node def = schema[name];
    if (!def.IsDefined()) {
      DT_THROW("unknown key '", key, "' in ", source, "; valid keys ",
               prefix.empty() ? std::string("at the top level") : "in '" + prefix + "'", ": ", join_keys(schema));
    }
    const YAML::Node& v = kv.second;
    const Kind k = schema_kind(def);
    if (k == Kind::Map && top_level_repeatable(key) && v.IsSequence()) {
      // A list of entries, each a map of the section's schema merged onto its defaults.
      // One entry is stored as the plain map, so `old: {path: x}` and `old: [{path: x}]`
      // resolve (and hash) the same.
      YAML::Node list(YAML::NodeType::Sequence);
      for (size_t i = 0; i < v.size(); ++i) {
        const std::string at = key + "[" + std::to_string(i) + "]";
        if (!v[i].IsMap()) DT_THROW("config ", source, ": key '", at, "' expects a map, found ", found_text(v[i]));
        YAML::Node entry = YAML::Clone(def);
        merge_checked(entry, def, def, at, "schema", false);
        merge_checked(entry, v[i], def, at, source, false);
        list.push_back(entry);
      }
      if (list.size() == 0) {
        YAML::Node entry = YAML::Clone(def);
        merge_checked(entry, def, def, key, "schema", false);
        dst[name] = entry;
      } else {
        dst[name] = list.size() == 1 ? list[0] : list;
      }
    } else if (k == Kind::Map) {
      if (v.IsNull()) continue;  // "data:" with nothing under it
      if (!v.IsMap()) DT_THROW("config ", source, ": key '", key, "' expects a map, found ", found_text(v));
      if (dst[name].IsSequence())
        DT_THROW("config ", source, ": '", key, "' is a list of ", dst[name].size(), " entries here; set the whole list "
                 "(", key, "=[{path: a}, {path: b}]) instead of one key of it");
      merge_checked(dst[name], v, def, key, source, false);
    } else if (k == Kind::List) {
      if (!v.IsSequence()) DT_THROW("config ", source, ": key '", key, "' expects a list, found ", found_text(v));
      dst[name] = canonical_list(def, v, key, source);
    } else {
      dst[name] = canonical_scalar(k, v, key, source);
    }
  }
}

const YAML::Node& schema_root() {
  static const YAML::Node schema = YAML::Load(schema_yaml());
  return schema;
}

YAML::Node load_yaml_file(const std::string& path) {
  try {
    return YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    DT_THROW("cannot open config file ", path);
  } catch (const YAML::Exception& e) {
    DT_THROW("config file ", path, ": YAML syntax error at line ", e.mark.line + 1, ", column ", e.mark.column + 1,
             ": ", e.msg);
  }
}

YAML::Node load_yaml_string(const std::string& text, const std::string& source) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    DT_THROW("config ", source, ": YAML syntax error at line ", e.mark.line + 1, ", column ", e.mark.column + 1,
             ": ", e.msg);
  }
}

// Applies a parsed document (and, first, its _BASE_ chain) onto root.
void apply_document(YAML::Node root, const YAML::Node& doc, const std::string& source, const fs::path& dir,
                    std::vector<std::string>& stack);

void apply_file(YAML::Node root, const fs::path& path, std::vector<std::string>& stack) {
  std::error_code ec;
  fs::path canon = fs::weakly_canonical(path, ec);
  if (ec) canon = path;
  const std::string id = canon.string();
  for (const auto& s : stack) {
    if (s == id) {
      std::string chain;
      for (const auto& t : stack) chain += t + " -> ";
      DT_THROW("cycle in _BASE_ chain: ", chain, id);
    }
  }
  stack.push_back(id);
  const YAML::Node doc = load_yaml_file(path.string());
  apply_document(root, doc, path.string(), canon.parent_path(), stack);
  stack.pop_back();
}

void apply_document(YAML::Node root, const YAML::Node& doc, const std::string& source, const fs::path& dir,
                    std::vector<std::string>& stack) {
  if (doc.IsNull() || !doc.IsDefined()) return;  // empty file
  if (!doc.IsMap()) DT_THROW("config ", source, ": expected a map of keys at the top level, found ", found_text(doc));
  const YAML::Node base = doc["_BASE_"];
  if (base.IsDefined() && !base.IsNull()) {
    std::vector<std::string> bases;
    if (base.IsScalar()) {
      bases.push_back(base.Scalar());
    } else if (base.IsSequence()) {
      for (const auto& b : base) {
        if (!b.IsScalar()) DT_THROW("config ", source, ": _BASE_ expects file names, found ", found_text(b));
        bases.push_back(b.Scalar());
      }
    } else {
      DT_THROW("config ", source, ": _BASE_ expects a file name or a list of file names, found a map");
    }
    for (const auto& b : bases) {
      fs::path p(b);
      if (p.is_relative()) p = dir / p;
      apply_file(root, p, stack);
    }
  }
  merge_checked(root, doc, schema_root(), "", source, true);
}

/// {parts[i]: {parts[i+1]: ... value}}
YAML::Node nest(const std::vector<std::string>& parts, size_t i, const YAML::Node& value) {
  YAML::Node m(YAML::NodeType::Map);
  m[parts[i]] = i + 1 == parts.size() ? value : nest(parts, i + 1, value);
  return m;
}

}  // namespace

Config::Config() : root_(YAML::Clone(schema_root())) {
  // Canonicalise the defaults exactly as user values are (same dump for same values).
  merge_checked(root_, schema_root(), schema_root(), "", "schema", true);
}

Config Config::load(const std::string& path, const std::vector<std::string>& overrides) {
  Config c;
  std::vector<std::string> stack;
  apply_file(c.root_, fs::path(path), stack);
  for (const auto& o : overrides) c.set(o);
  c.validate();
  return c;
}

Config Config::from_string(const std::string& yaml, const std::vector<std::string>& overrides) {
  Config c;
  std::vector<std::string> stack;
  const YAML::Node doc = load_yaml_string(yaml, "<string>");
  apply_document(c.root_, doc, "<string>", fs::current_path(), stack);
  for (const auto& o : overrides) c.set(o);
  c.validate();
  return c;
}

void Config::set(const std::string& assignment) {
  const std::string source = "override '" + assignment + "'";
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    DT_THROW("config ", source, ": expected 'section.key=value', found no '='");
  const std::string key = assignment.substr(0, eq);
  const std::string text = assignment.substr(eq + 1);
  YAML::Node value = text.empty() ? YAML::Node(YAML::NodeType::Null) : load_yaml_string(text, source);
  // Build {a: {b: {c: value}}} and merge it like a file.
  std::vector<std::string> parts;
  std::stringstream ss(key);
  std::string part;
  while (std::getline(ss, part, '.')) {
    if (part.empty()) DT_THROW("config ", source, ": empty component in key '", key, "'");
    parts.push_back(part);
  }
  if (parts.empty()) DT_THROW("config ", source, ": empty key");
  merge_checked(root_, nest(parts, 0, value), schema_root(), "", source, false);
}

}  // namespace dualtune::config
